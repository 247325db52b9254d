"""Process-level performance settings."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
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


def cpu_has_amx(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has AMX tiles with bf16 (Intel Sapphire Rapids and later).

    There, bf16 matrix products run several times faster than fp32 (measured: ~8x on
    [24576, 256] x [256, 256], BENCHMARKS.md); without AMX (AVX-512 BF16 only) they are slower.
    Read from the `flags` line of /proc/cpuinfo (`cpuinfo`: its text, for tests); False where
    that file does not exist (not Linux).
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return "amx_bf16" in line.split(":", 1)[-1].split()
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """`auto` -> `bf16` on a CPU with AMX, `fp32` elsewhere; `fp32` / `bf16` as given.

    CUDA stays fp32 under `auto` until bf16 has been measured there (BENCHMARKS.md).
    """
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cpu" and _this_cpu_has_amx() else "fp32"


@functools.cache
def _this_cpu_has_amx() -> bool:
    return cpu_has_amx()
