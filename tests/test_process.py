"""`nerfkit process`: poses from photos (pycolmap), checked against the true cameras."""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_NERF, run_cli
from PIL import Image

from nerfkit.data.synthetic import render_ground_truth
from nerfkit.errors import NerfkitError
from nerfkit.poses import look_at, opencv_w2c_to_c2w, orbit_pose, rotation_angle_deg, umeyama
from nerfkit.process import (
    _prepare_photos,
    intrinsics_json,
    sample_video_frames,
    sharpness,
)

needs_pycolmap = pytest.mark.skipif(
    importlib.util.find_spec("pycolmap") is None,
    reason="pycolmap is not installed (pip install pycolmap): nerfkit process needs it",
)

F64 = torch.float64
RES = 200  # SIFT needs resolution: at 100 px too few features survive
N_VIEWS = 30
RADIUS = 3.0
DETAIL = 0.7  # extra solid texture: the plain scene gives ~150 SIFT features per view


def _c2w(azimuth: float, elevation: float, radius: float = RADIUS) -> torch.Tensor:
    return orbit_pose(azimuth, elevation, radius)


def _save_rgb(path: Path, rgba: torch.Tensor) -> None:
    """Composite onto white and save as an 8-bit RGB PNG."""
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    Image.fromarray((rgb.numpy() * 255 + 0.5).astype(np.uint8)).save(path)


def _render_views(folder: Path) -> np.ndarray:
    """Render N_VIEWS views on two interleaved rings around the scene; true c2w [N, 4, 4]."""
    folder.mkdir(parents=True)
    focal = 0.5 * RES / math.tan(0.5 * 0.69)
    poses = []
    for k in range(N_VIEWS):
        el = math.radians(25.0 if k % 2 == 0 else 50.0)
        c2w = _c2w(2 * math.pi * k / N_VIEWS, el)
        rgba, _ = render_ground_truth(c2w, RES, RES, focal, supersample=2, detail=DETAIL)
        _save_rgb(folder / f"view_{k:03d}.png", rgba)
        poses.append(c2w.numpy())
    return np.stack(poses)


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, float]:
    """(dataset folder written by `nerfkit process`, true poses, seconds taken by process)."""
    if importlib.util.find_spec("pycolmap") is None:
        pytest.skip("pycolmap is not installed")
    root = tmp_path_factory.mktemp("process")
    true = _render_views(root / "photos")
    t0 = time.perf_counter()
    assert run_cli(["process", root / "photos", "--output", root / "dataset"]) == 0
    return root / "dataset", true, time.perf_counter() - t0


# ----------------------------------------------------------------------------- unit tests


def test_opencv_w2c_to_c2w_inverts_colmap_world_to_camera() -> None:
    c2w = _c2w(0.7, 0.4).numpy()
    # the same camera in COLMAP's terms: OpenCV axes (y down, z forward), world-to-camera
    c2w_cv = c2w @ np.diag([1.0, -1.0, -1.0, 1.0])
    w2c = np.linalg.inv(c2w_cv)[:3]
    got = opencv_w2c_to_c2w(w2c[None, :3, :3], w2c[None, :3, 3])[0]
    np.testing.assert_allclose(got, c2w, atol=1e-12)
    # the camera looks along -z (OpenGL) at the origin
    view = -got[:3, 2]
    to_origin = -c2w[:3, 3] / np.linalg.norm(c2w[:3, 3])
    np.testing.assert_allclose(view, to_origin, atol=1e-12)


def test_umeyama_recovers_a_similarity() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.linalg.det(q))
    y = 2.5 * x @ rot.T + np.array([1.0, -2.0, 0.5])
    s, r, t = umeyama(x, y)
    assert s == pytest.approx(2.5)
    np.testing.assert_allclose(r, rot, atol=1e-10)
    np.testing.assert_allclose(t, [1.0, -2.0, 0.5], atol=1e-10)
    assert rotation_angle_deg(r, rot) < 1e-5


def test_intrinsics_json_models() -> None:
    d = intrinsics_json("SIMPLE_RADIAL", np.array([300.0, 100.0, 80.0, 0.05]), 200, 160)
    assert d == {
        "fl_x": 300.0, "fl_y": 300.0, "cx": 100.0, "cy": 80.0, "camera_model": "OPENCV",
        "k1": 0.05, "k2": 0.0, "p1": 0.0, "p2": 0.0, "w": 200, "h": 160,
    }  # fmt: skip
    d = intrinsics_json("PINHOLE", np.array([300.0, 310.0, 100.0, 80.0]), 200, 160)
    assert d["camera_model"] == "PINHOLE" and d["fl_y"] == 310.0
    d = intrinsics_json("OPENCV", np.arange(1.0, 9.0), 10, 10)
    assert [d[k] for k in ("k1", "k2", "p1", "p2")] == [5.0, 6.0, 7.0, 8.0]
    with pytest.raises(NerfkitError, match="FOV"):
        intrinsics_json("FOV", np.ones(5), 10, 10)


# ----------------------------------------------------------------------------- on truth


@needs_pycolmap
def test_process_recovers_true_cameras(processed: tuple[Path, np.ndarray, float]) -> None:
    data, true, seconds = processed
    meta = json.loads((data / "transforms.json").read_text())
    frames = meta["frames"]
    assert len(frames) == N_VIEWS, "every view registers"
    assert meta["w"] == RES and meta["h"] == RES and meta["camera_model"] == "OPENCV"
    assert (data / "colmap" / "sparse" / "0" / "images.bin").is_file()
    assert not (data / "_work").exists()
    assert sorted(p.name for p in (data / "images").iterdir()) == [
        f"view_{k:03d}.png" for k in range(N_VIEWS)
    ]
    idx = [int(Path(f["file_path"]).stem.split("_")[1]) for f in frames]
    est = np.array([f["transform_matrix"] for f in frames])
    gt = true[idx]

    # align the estimate (arbitrary frame and scale) to the truth by a similarity
    s, rot, t = umeyama(est[:, :3, 3], gt[:, :3, 3])
    centres = s * est[:, :3, 3] @ rot.T + t
    scene_size = np.linalg.norm(gt[:, None, :3, 3] - gt[None, :, :3, 3], axis=-1).max()
    pos_err = np.linalg.norm(centres - gt[:, :3, 3], axis=-1) / scene_size
    rot_err = [rotation_angle_deg(rot @ e[:3, :3], g[:3, :3]) for e, g in zip(est, gt)]
    print(
        f"process {seconds:.1f} s; position error max {100 * pos_err.max():.3f}% "
        f"(mean {100 * pos_err.mean():.3f}%) of {scene_size:.2f}; rotation error max "
        f"{max(rot_err):.3f} deg (mean {np.mean(rot_err):.3f})"
    )
    assert pos_err.max() < 0.01
    assert max(rot_err) < 1.0
    # the focal length is recovered too (SIMPLE_RADIAL trades a little of it for k1)
    true_focal = 0.5 * RES / math.tan(0.5 * 0.69)
    assert meta["fl_x"] == pytest.approx(true_focal, rel=0.05)


@needs_pycolmap
def test_process_output_loads_and_trains(
    processed: tuple[Path, np.ndarray, float], tmp_path: Path
) -> None:
    from nerfkit.data import load_scene

    data, _, _ = processed
    scene = load_scene(data)
    assert scene.meta.format == "transforms_json"
    train = scene.splits["train"]
    assert train.images.shape[1:] == (RES, RES, 3)
    assert len(train.images) + len(scene.splits["test"].images) == N_VIEWS
    assert train.cameras.model == "opencv"
    run = tmp_path / "run"
    args = [
        "train", "--data", data, "--method", "nerf", "--output", run, "--max-steps", 5,
        "--downscale", 4, "--batch-rays", 64, "--val-every", 1000, "--no-progress", *TINY_NERF,
    ]  # fmt: skip
    assert run_cli(args) == 0
    assert (run / "checkpoint.pt").is_file()


@needs_pycolmap
def test_process_downscale_sequential_overwrite(
    processed: tuple[Path, np.ndarray, float], tmp_path: Path
) -> None:
    from nerfkit.data import load_scene

    photos = processed[0].parent / "photos"
    out = tmp_path / "small"
    out.mkdir()
    (out / "old.txt").write_text("replaced")
    args = ["process", photos, "--output", out, "--downscale", 2, "--matching", "sequential"]
    assert run_cli([*args, "--overwrite"]) == 0
    assert not (out / "old.txt").exists()
    meta = json.loads((out / "transforms.json").read_text())
    assert len(meta["frames"]) == N_VIEWS
    assert (meta["w"], meta["h"]) == (RES // 2, RES // 2)
    assert meta["cx"] == pytest.approx(RES / 4) and meta["cy"] == pytest.approx(RES / 4)
    true_focal = 0.5 * RES / math.tan(0.5 * 0.69)
    assert meta["fl_x"] == pytest.approx(true_focal / 2, rel=0.05)
    with Image.open(out / meta["frames"][0]["file_path"]) as im:
        assert im.size == (RES // 2, RES // 2)
    assert load_scene(out).splits["train"].images.shape[1:] == (RES // 2, RES // 2, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small"], "no temporary folder left"


def test_missing_pycolmap_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pycolmap", None)  # import pycolmap -> ImportError
    photos = tmp_path / "photos"
    photos.mkdir()
    assert run_cli(["process", photos, "--output", tmp_path / "out"]) == 2
    assert "pip install pycolmap" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


# ----------------------------------------------------------------------------- failures


@needs_pycolmap
def test_blank_images_are_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photos = tmp_path / "blank"
    photos.mkdir()
    for k in range(3):
        Image.new("RGB", (64, 64), (255, 255, 255)).save(photos / f"{k}.png")
    out = tmp_path / "out"
    assert run_cli(["process", photos, "--output", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("nerfkit: ") and "only 0 of 3" in err and "texture" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank"], "nothing half-written"


def test_non_empty_output_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run_cli(["process", photos, "--output", out]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert run_cli(["process", tmp_path / "missing", "--output", tmp_path / "o2"]) == 2


# ----------------------------------------------------------------------------- video


def test_video_sampling_keeps_the_sharpest_frame(tmp_path: Path) -> None:
    from nerfkit.media import write_mp4

    n_windows, per_window, res = 6, 3, 64
    focal = 0.5 * res / math.tan(0.5 * 0.69)
    sharp, frames = [], []
    for k in range(n_windows):
        rgba, _ = render_ground_truth(_c2w(0.4 * k, 0.5), res, res, focal, detail=DETAIL)
        img = ((rgba[..., :3] * rgba[..., 3:] + 1 - rgba[..., 3:]).numpy() * 255 + 0.5).astype(
            np.uint8
        )
        blurred = np.asarray(Image.fromarray(img).resize((16, 16)).resize((res, res)))
        sharp.append(img)
        window = [blurred] * per_window
        window[k % per_window] = img  # the sharp frame moves around inside its window
        frames += window
    video = write_mp4(tmp_path / "walk.mp4", frames, fps=10)

    out = tmp_path / "frames"
    names = sample_video_frames(video, out, n_windows, progress=False)
    assert names == [f"frame_{k:05d}.png" for k in range(1, n_windows + 1)]
    for k, name in enumerate(names):
        got = np.asarray(Image.open(out / name)).astype(np.float32)
        assert got.shape == (res, res, 3)
        err = np.abs(got - sharp[k]).mean()
        assert err < 6.0, f"window {k}: not the sharp frame (mean abs error {err:.1f})"
        a_blurred_one = frames[k * per_window + (k + 1) % per_window]
        assert sharpness(got.astype(np.uint8)) > 2 * sharpness(a_blurred_one)

    # asking for more frames than the video has keeps them all
    assert len(sample_video_frames(video, tmp_path / "all", 100, progress=False)) == len(frames)


@needs_pycolmap
def test_process_video_end_to_end(tmp_path: Path) -> None:
    """A short orbit video: sharp frames sampled, matched sequentially, all registered."""
    from nerfkit.data import load_scene
    from nerfkit.media import write_mp4

    focal = 0.5 * RES / math.tan(0.5 * 0.69)
    frames = []
    for k in range(36):
        c2w = _c2w(1.6 * math.pi * k / 36, math.radians(35 + 10 * math.sin(k / 5)))
        rgba, _ = render_ground_truth(c2w, RES, RES, focal, detail=DETAIL)
        rgb = rgba[..., :3] * rgba[..., 3:] + 1 - rgba[..., 3:]
        frames.append((rgb.numpy() * 255 + 0.5).astype(np.uint8))
    video = write_mp4(tmp_path / "orbit.mp4", frames, fps=20)
    out = tmp_path / "out"
    assert run_cli(["process", video, "--output", out, "--num-frames", 18]) == 0
    meta = json.loads((out / "transforms.json").read_text())
    assert len(meta["frames"]) == 18
    assert len(load_scene(out).splits["train"].images) > 0


@needs_pycolmap
def test_process_forward_facing_photos_get_ndc(tmp_path: Path) -> None:
    """Photos from a small grid of positions all facing the scene (forward-facing): the dataset
    `process` writes loads as LLFF scenes do (NDC rays, spiral path) with the true scale.
    (Training and rendering NDC scenes: tests/data/test_llff.py.)"""
    from nerfkit.data import load_scene

    focal = 0.5 * RES / math.tan(0.5 * 0.69)
    up, target = torch.tensor([0.0, 0.0, 1.0], dtype=F64), torch.tensor([0.0, 0.0, 0.2], dtype=F64)
    (tmp_path / "photos").mkdir()
    true, nearest = [], []
    for k in range(12):  # a 4 x 3 grid, 1.2 wide and 0.72 high, 3.5 from the scene's centre
        eye = torch.tensor([0.6 * (k % 4 / 1.5 - 1), -3.5, 1.0 + 0.36 * (k // 4 - 1)], dtype=F64)
        c2w = look_at(eye, target, up)
        rgba, depth = render_ground_truth(c2w, RES, RES, focal, detail=DETAIL)
        _save_rgb(tmp_path / "photos" / f"view_{k:03d}.png", rgba)
        true.append(c2w.numpy())
        nearest.append(depth[torch.isfinite(depth)].min().item())
    assert run_cli(["process", tmp_path / "photos", "--output", tmp_path / "data"]) == 0
    scene = load_scene(tmp_path / "data")
    m = scene.meta
    assert (m.ndc, m.kind, m.near, m.far) == (True, "forward", 0.0, 1.0)
    assert m.bounds[0] == pytest.approx(1 / 0.75)
    # the scale is the true one: the nearest content lies at depth 1 / 0.75
    names = scene.split("train").names + scene.split("test").names
    c2w = np.concatenate([scene.split(n).cameras.c2w.double().numpy() for n in ("train", "test")])
    gt = np.stack(true)[[int(n.split("_")[1]) for n in names]]
    s, _, _ = umeyama(c2w[:, :3, 3], gt[:, :3, 3])
    assert s / 0.75 == pytest.approx(min(nearest), rel=0.1)


def test_prepare_photos_converts_what_colmap_would_misread(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    plain = np.zeros((8, 12, 3), np.uint8)
    plain[:, :6] = 255  # left half white
    Image.fromarray(plain).save(src / "a.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: view rotated 90 degrees clockwise
    Image.fromarray(plain).save(src / "b.jpg", quality=95, exif=exif)
    rgba = np.zeros((8, 12, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: white after compositing
    Image.fromarray(rgba).save(src / "c.png")
    Image.fromarray(plain).save(src / "b.tif")  # not read as-is by COLMAP: re-encoded...
    (src / "notes.txt").write_text("not an image")
    names = _prepare_photos(src, dst, progress=False)
    assert names == ["a.jpg", "b.png", "b.tif.png", "c.png"]  # ...without taking b.png's name
    assert (dst / "a.jpg").read_bytes() == (src / "a.jpg").read_bytes()
    with Image.open(dst / "b.png") as im:
        assert im.size == (8, 12) and im.mode == "RGB"  # EXIF rotation applied
        b = np.asarray(im)
        assert b[:6].mean() > 200 and b[7:].mean() < 50  # white half now on top
    with Image.open(dst / "c.png") as im:
        assert im.mode == "RGB" and np.asarray(im).min() == 255
