"""The user's path on a capture, end to end, with no tuning flags:
`nerfkit process walk.mp4 --output scene && nerfkit train --data scene && nerfkit render RUN`,
on a phone-like walk-around video of the unbounded procedural scene (objects on a wide ground
inside a far environment: `nerfkit.data.synthetic_360`)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import imageio.v2 as iio2
import numpy as np
import pytest
from helpers import run_cli

needs_pycolmap = pytest.mark.skipif(
    importlib.util.find_spec("pycolmap") is None,
    reason="pycolmap is not installed (pip install pycolmap): nerfkit process needs it",
)

# The smallest video nerfkit process places every frame of, reliably: 40 frames of 160 x 120
# (40 of 40 for seeds 0-5, seed 0 four times, ~4 s). With 30 frames, or at 128 x 96, the walk
# falls apart into several partial models on some seeds (the largest 18-28 of 30 frames).
SIZE = (160, 120)
N_FRAMES = 40
# Texture on the surfaces around the objects, as real ones have: on the photos' plain surfaces
# (repeating checkers, uniform colours) SIFT finds ~11 inlier matches per frame pair (60 on the
# far environment, too far away to triangulate), and at sizes up to 480 x 360 and up to 80
# frames no model held more than about half of the walk.
DETAIL = 0.7
# The step budget given to `nerfkit train`, its only flag: the fewest steps whose orbit shows
# the objects on the ground under the environment. Measured (seed 0, held-out views: every 8th
# frame): training PSNR 18.2 dB at step 100, held-out PSNR 14.0 dB (13.8-14.9 dB up to 600
# steps; a constant image of the mean colour scores 13.6 dB).
STEPS = 100
HELD_OUT_PSNR_FLOOR = 11.0  # measured 14.0 dB, less 3 dB
TRAIN_PSNR_FLOOR = 15.0  # measured 18.2 dB, less 3 dB
RENDER_FRAMES = 24


def _read_video(path: Path) -> np.ndarray:
    """All frames of an MP4 as uint8 [N, H, W, 3]."""
    reader = iio2.get_reader(path, format="FFMPEG")
    try:  # not list(reader): its len() is inf
        return np.stack([frame for frame in reader])
    finally:
        reader.close()


@needs_pycolmap
def test_video_to_rendered_orbit_without_flags(tmp_path: Path) -> None:
    from nerfkit.data import load_scene
    from nerfkit.data.synthetic_360 import unbounded_video_frames
    from nerfkit.media import write_mp4
    from nerfkit.run import load_run

    video = write_mp4(
        tmp_path / "walk.mp4",
        unbounded_video_frames(N_FRAMES, SIZE, seed=0, detail=DETAIL),
        fps=15,
    )
    scene, run = tmp_path / "scene", tmp_path / "run"

    assert run_cli(["process", video, "--output", scene]) == 0
    frames = json.loads((scene / "transforms.json").read_text())["frames"]
    # usually all 40 (seeds 0-5 here); pycolmap's threaded mapping is not deterministic and a
    # clean CI run once placed 31: the rest of the path must work either way
    assert len(frames) >= 0.75 * N_FRAMES, f"only {len(frames)} of {N_FRAMES} frames placed"
    meta = load_scene(scene).meta
    assert meta.unbounded and not meta.ndc and meta.kind == "object"

    assert run_cli(["train", "--data", scene, "--output", run, "--max-steps", STEPS]) == 0
    assert load_run(run, "cpu").method.contracted, "grid models all of space for this capture"
    logged = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    train_psnr = [r["psnr"] for r in logged if "psnr" in r][-1]
    assert train_psnr > TRAIN_PSNR_FLOOR, f"training PSNR {train_psnr:.2f} dB at the end"

    assert run_cli(["render", run, "--frames", RENDER_FRAMES]) == 0
    rgb = _read_video(run / "render" / "orbit.mp4")
    assert rgb.shape == (RENDER_FRAMES, SIZE[1], SIZE[0], 3)
    assert (run / "render" / "orbit_depth.mp4").stat().st_size > 0
    assert rgb.std(axis=(1, 2)).min() > 10, "a frame is (nearly) constant"
    # every ray of the capture ends on a surface: where the render shows the background colour
    # instead, the far environment was clipped away (weak: a bounded model's fog at the box
    # edge passes too; the depth check below is the real one)
    bg = np.asarray(meta.background) * 255
    flat = (np.abs(rgb - bg).max(-1) < 12).mean(axis=(1, 2))
    assert flat.max() < 0.05, f"a frame is {100 * flat.max():.0f}% background colour"

    assert run_cli(["eval", run]) == 0
    psnr = json.loads((run / "eval_test" / "metrics.json").read_text())["mean"]["psnr"]
    assert psnr > HELD_OUT_PSNR_FLOOR, f"held-out views: PSNR {psnr:.2f} dB"

    # the far environment (the top rows of every view) lies far behind the objects (the centre)
    test = load_scene(scene).split("test")
    method = load_run(run, "cpu").method
    for k in range(len(test)):
        depth = method.render_image(test.cameras, k, meta.near, meta.far).depth
        h, w = depth.shape
        sky = depth[: h // 10].median()
        centre = depth[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].median()
        assert sky > 5 * centre, f"view {k}: environment at {sky / centre:.1f}x the objects"


def test_walk_video_frames_and_poses() -> None:
    """The video's frames (shape, type, the photos' renderer when plain) and its smooth walk."""
    import math

    import torch

    from nerfkit.data.synthetic_360 import (
        CAMERA_RADIUS,
        ELEVATION_DEG,
        VIDEO_SWEEP_DEG,
        _render_view,
        unbounded_video_frames,
        unbounded_video_poses,
    )
    from nerfkit.media import to_uint8

    poses = unbounded_video_poses(60, seed=1)
    assert poses.shape == (60, 4, 4) and poses.dtype == torch.float64
    pos = poses[:, :3, 3]
    radius = pos.norm(dim=-1)
    assert CAMERA_RADIUS[0] <= radius.min() and radius.max() <= CAMERA_RADIUS[1]
    el = torch.rad2deg(torch.asin(pos[:, 2] / radius))
    assert ELEVATION_DEG[0] <= el.min() and el.max() <= ELEVATION_DEG[1]
    view = -poses[:, :3, 2]  # OpenGL: the camera looks along -z, at the origin
    assert torch.allclose(view, -pos / radius[:, None], atol=1e-9)
    az = torch.atan2(pos[:, 1], pos[:, 0]).numpy()
    step = (np.diff(az) + math.pi) % (2 * math.pi) - math.pi
    assert np.allclose(step, math.radians(VIDEO_SWEEP_DEG) / 59), "steady sweep"
    # per 5 degrees of azimuth, the drift is gentle
    assert radius.diff().abs().max() < 0.05 and el.diff().abs().max() < 1.5, "smooth drift"

    frames = unbounded_video_frames(2, (16, 12), seed=1)
    assert [(f.shape, f.dtype) for f in frames] == [((12, 16, 3), np.uint8)] * 2
    for frame, c2w in zip(frames, poses[[0, -1]]):  # the first and last of any length
        assert np.array_equal(frame, to_uint8(_render_view(c2w, (16, 12), 2)[0][..., :3]))
    textured = unbounded_video_frames(2, (16, 12), seed=1, detail=0.7)
    assert not np.array_equal(textured[0], frames[0])
