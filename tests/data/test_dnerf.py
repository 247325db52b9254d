"""Dynamic scenes: D-NeRF's Blender format with per-frame time, and the single-file .npz."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.data import load_scene
from nerfkit.data.dnerf_npz import load_npz
from nerfkit.data.loaders import detect_format
from nerfkit.errors import DataError

SIZE = 8


def pose(i: int) -> list[list[float]]:
    c, s = math.cos(0.4 * i), math.sin(0.4 * i)
    return [[c, -s, 0.0, 4 * s], [s, c, 0.0, -4 * c], [0.0, 0.0, 1.0, 0.5], [0.0, 0.0, 0.0, 1.0]]


def write_dnerf(root: Path, counts=None) -> Path:
    """A D-NeRF-style Blender scene: transforms_<split>.json frames carry a 'time'."""
    counts = counts or {"train": 5, "val": 2, "test": 3}
    for split, n in counts.items():
        (root / split).mkdir(parents=True)
        frames = []
        for i in range(n):
            Image.new("RGBA", (SIZE, SIZE), (10 * i, 50, 200, 255)).save(
                root / split / f"r_{i:03d}.png"
            )
            frames.append(
                {
                    "file_path": f"./{split}/r_{i:03d}",
                    "time": i / max(n - 1, 1),
                    "transform_matrix": pose(i),
                }
            )
        (root / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": 0.7, "frames": frames})
        )
    return root


def test_blender_format_keeps_time(tmp_path):
    scene = load_scene(write_dnerf(tmp_path / "d"))
    assert scene.meta.format == "blender"
    torch.testing.assert_close(scene.split("train").times, torch.tensor([0, 0.25, 0.5, 0.75, 1]))
    torch.testing.assert_close(scene.split("val").times, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(scene.split("test").times, torch.tensor([0.0, 0.5, 1.0]))
    # rays carry the frame's time through to the methods
    split = scene.split("test")
    rays = split.cameras.image_rays(1, 2.0, 6.0, time=float(split.times[1]))
    assert rays.time.shape == (SIZE * SIZE,) and (rays.time == 0.5).all()


def test_static_scene_has_no_times(tmp_path):
    root = write_dnerf(tmp_path / "d")
    p = root / "transforms_train.json"
    meta = json.loads(p.read_text())
    for fr in meta["frames"]:
        del fr["time"]
    p.write_text(json.dumps(meta))
    assert load_scene(root).split("train").times is None


# --- single-file .npz ---------------------------------------------------------------------------


def write_npz(root: Path, n: int = 12, times: np.ndarray | None = None, **extra) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (n, SIZE, SIZE, 3)).astype(np.float32)
    poses = np.stack([np.array(pose(i), np.float32) for i in range(n)])
    data = dict(images=images, poses=poses, focal=np.float64(9.5), **extra)
    if times is not None:
        data["times"] = times.astype(np.float32)
    np.savez(root / "data.npz", **data)
    return root


def test_npz_splits_from_time_restarts(tmp_path):
    times = np.concatenate([np.linspace(0, 1, 6), np.linspace(0, 1, 2), np.linspace(0, 1, 4)])
    root = write_npz(tmp_path / "z", times=times)
    assert detect_format(root) == "npz"
    scene = load_scene(root)
    assert {k: len(v) for k, v in scene.splits.items()} == {"train": 6, "val": 2, "test": 4}
    torch.testing.assert_close(scene.split("test").times, torch.tensor([0, 1 / 3, 2 / 3, 1]))
    assert scene.split("val").names == ["frame_006", "frame_007"]
    cams = scene.split("train").cameras
    torch.testing.assert_close(cams.fx, torch.full((6,), 9.5))
    assert scene.meta.background == [0.0, 0.0, 0.0]
    assert (scene.meta.near, scene.meta.far) == (2.0, 6.0)
    data = np.load(root / "data.npz")
    torch.testing.assert_close(scene.split("test").images, torch.from_numpy(data["images"][8:]))


def test_npz_without_times_holds_out_every_8th(tmp_path):
    scene = load_scene(write_npz(tmp_path / "z", n=17))
    assert scene.split("test").names == ["frame_000", "frame_008", "frame_016"]
    assert len(scene.split("train")) == 14 and scene.split("train").times is None


def test_npz_i_split(tmp_path):
    i_split = np.stack([np.arange(8), np.r_[8:12, 8:12]])  # train, val (no test)
    scene = load_scene(write_npz(tmp_path / "z", i_split=i_split))
    assert scene.split("train").names[-1] == "frame_007"
    assert len(scene.split("val")) == 8 and "test" not in scene.splits


def test_npz_downscale(tmp_path):
    scene = load_scene(write_npz(tmp_path / "z"), downscale=2)
    assert scene.split("train").images.shape[1:] == (SIZE // 2, SIZE // 2, 3)
    assert scene.meta.focal == pytest.approx(9.5 / 2)


def test_npz_bad_inputs(tmp_path):
    root = write_npz(tmp_path / "a")
    data = dict(np.load(root / "data.npz"))
    data["poses"][3, 0, 0] = 3.0
    np.savez(root / "data.npz", **data)
    with pytest.raises(DataError, match=r"data.npz pose 3: transform_matrix rotation is not rigid"):
        load_scene(root)
    data["poses"][3, 0, 0] = np.inf
    np.savez(root / "data.npz", **data)
    with pytest.raises(DataError, match=r"data.npz pose 3: transform_matrix has non-finite"):
        load_scene(root)
    data["poses"] = data["poses"][:5]
    np.savez(root / "data.npz", **data)
    with pytest.raises(DataError, match=r"data.npz: 'poses' has shape \(5, 4, 4\)"):
        load_scene(root)
    (root / "data.npz").write_bytes(b"PK\x03\x04broken")
    with pytest.raises(DataError, match=r"data.npz: cannot read"):
        load_npz(root / "data.npz")


# --- the real tiny D-NeRF file (developers' ../shared/data) -------------------------------------


def test_real_tiny_dnerf(shared_data):
    root = shared_data / "tiny_dnerf"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    scene = load_scene(root)
    assert scene.meta.format == "npz"
    assert {k: len(v) for k, v in scene.splits.items()} == {"train": 50, "val": 11, "test": 20}
    for split in scene.splits.values():
        assert split.images.shape[1:] == (100, 100, 3)
        assert split.times[0] == 0 and split.times[-1] == 1
        assert (split.times.diff() > 0).all()
    assert scene.meta.focal == pytest.approx(138.889, rel=1e-4)
    assert scene.meta.background == [0.0, 0.0, 0.0]
    c2w = scene.split("train").cameras.c2w
    torch.testing.assert_close(
        c2w[:, :3, 3].norm(dim=-1), torch.full((50,), 4.0311), atol=1e-3, rtol=0
    )
