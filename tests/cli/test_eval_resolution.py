"""`eval` and `render` work at the resolution a run was trained at unless --downscale says."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v2 as iio2
import imageio.v3 as iio
import pytest
from helpers import TINY_NERF, run_cli

from nerfkit.errors import NerfkitError
from nerfkit.video import frame_size


def _video_size(path: Path) -> tuple[int, int]:
    reader = iio2.get_reader(path, format="FFMPEG")
    try:
        frame = reader.get_data(0)
    finally:
        reader.close()
    return frame.shape[1], frame.shape[0]


@pytest.fixture(scope="module")
def run_at_half(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained (a few steps) at --downscale 2: the 24x24 scene at 12x12."""
    run = tmp_path_factory.mktemp("half") / "run"
    args = [
        "train", "--data", tiny_scene, "--output", run, "--downscale", "2", "--max-steps", "3",
        "--batch-rays", "32", "--val-every", "0", "--no-progress", "--method", "nerf", *TINY_NERF,
    ]  # fmt: skip
    assert run_cli(args) == 0
    return run


def test_eval_defaults_to_the_trained_resolution(run_at_half: Path, tmp_path: Path) -> None:
    out = tmp_path / "default"
    assert run_cli(["eval", run_at_half, "--output", out]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["resolution"], m["downscale"]) == ([12, 12], 2)
    assert iio.imread(out / f"{m['views'][0]['name']}.png").shape == (12, 12, 3)

    full = tmp_path / "full"
    assert run_cli(["eval", run_at_half, "--output", full, "--downscale", "1"]) == 0
    m = json.loads((full / "metrics.json").read_text())
    assert (m["resolution"], m["downscale"]) == ([24, 24], 1)
    assert iio.imread(full / f"{m['views'][0]['name']}.png").shape == (24, 24, 3)


def test_render_defaults_to_the_trained_resolution(run_at_half: Path, tmp_path: Path) -> None:
    video = tmp_path / "default.mp4"
    assert run_cli(["render", run_at_half, "--frames", "2", "--output", video]) == 0
    assert _video_size(video) == (12, 12)
    assert _video_size(tmp_path / "default_depth.mp4") == (12, 12)

    full = tmp_path / "full.mp4"
    args = ["render", run_at_half, "--frames", "2", "--output", full, "--downscale", "1"]
    assert run_cli(args) == 0
    assert _video_size(full) == (24, 24)


def test_frame_size() -> None:
    assert frame_size(100, 75, 50.0, 4, None) == (100, 75, 50.0)  # the trained size
    assert frame_size(100, 75, 50.0, 4, 4) == (100, 75, 50.0)
    assert frame_size(100, 75, 50.0, 4, 1) == (400, 300, 200.0)  # full resolution
    assert frame_size(100, 75, 50.0, 4, 8) == (50, 37, 25.0)  # sizes rounded down, focal exact
    assert frame_size(100, 75, 50.0, 1, 3) == (33, 25, 50.0 / 3)
    with pytest.raises(NerfkitError, match="--downscale must be >= 1"):
        frame_size(100, 75, 50.0, 1, 0)
