"""Process-level performance settings."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_configured = False


def configure_allocator() -> bool:
    """Stop glibc malloc from returning large freed blocks to the kernel after every step.

    NeRF training allocates and frees the same large activation tensors every step; by default
    glibc serves them with mmap and unmaps them on free, so every step page-faults them back in.
    Raising the mmap and trim thresholds keeps that memory in the heap for reuse.
    Returns True if the settings were applied (glibc only; elsewhere a no-op).
    """
    global _configured
    if _configured or not sys.platform.startswith("linux"):
        return _configured
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 31)
        _configured = bool(ok)
    except (OSError, AttributeError):
        _configured = False
    return _configured


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (the previous count is restored).

    For work made of many small element-wise ops (ray tracing the procedural scenes, tiny test
    models): a second thread buys nothing there, and on a busy machine OpenMP's synchronisation
    makes such ops 10x slower and more.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
