"""Helpers shared by tests (import as `from helpers import ...`)."""

from __future__ import annotations

import pytest

# A NeRF small enough to train for a few dozen steps in seconds on 2 cores; the paper's design
# (encoding, coarse + fine, view dependence) with narrow layers and few samples.
TINY_NERF = [
    "--nerf.width", "32", "--nerf.depth", "2", "--nerf.skip", "0",
    "--nerf.n-coarse", "8", "--nerf.n-fine", "8", "--nerf.pos-freqs", "4",
]  # fmt: skip


def run_cli(args: list) -> int:
    """Run `nerfkit ARGS` in-process; returns the exit code."""
    from nerfkit.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return int(exc.value.code or 0)
