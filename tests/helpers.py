"""Helpers shared by tests (import as `from helpers import ...`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
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


def split_views(scene, names: list[str]) -> list[tuple]:  # noqa: ANN001
    """(split, index in split, index in `names`) for every train and test view of a loaded
    procedural scene whose image files are `names`."""
    return [
        (sp, k, names.index(f"{sp.names[k]}.png"))
        for sp in (scene.split("train"), scene.split("test"))
        for k in range(len(sp))
    ]


def check_generator_caching(generate: Callable[..., Path], tmp_path: Path) -> Path:
    """A procedural-scene generator `generate(out, size=, n_views=, supersample=)` is a no-op on
    a second identical call, regenerates for other parameters (4 views of 8 x 6 afterwards:
    images, depths.npy), leaves no temp folders, and refuses bad counts and foreign folders.
    Returns the regenerated folder for format-specific checks."""
    from nerfkit.data.synthetic import MARKER
    from nerfkit.errors import DataError

    out = tmp_path / "s"
    generate(out, size=(8, 6), n_views=3, supersample=1)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    assert generate(out, size=(8, 6), n_views=3, supersample=1) == out
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before
    generate(out, size=(8, 6), n_views=4, supersample=1)
    assert json.loads((out / MARKER).read_text())["params"]["n_views"] == 4
    assert len(list((out / "images").iterdir())) == 4
    assert np.load(out / "depths.npy").shape == (4, 6, 8)
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temp folders left
    with pytest.raises(DataError, match="n_views"):
        generate(tmp_path / "x", n_views=0)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        generate(tmp_path / "mine", size=(8, 6), n_views=2)
    return out
