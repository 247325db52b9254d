"""The loader core (nerfkit.data.core): frames -> Scene, the hold-out, copies, size checks."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.data.core import Frame, check_pose, hold_out, image_folder, scene_from_frames
from nerfkit.errors import DataError


def frame(i: int, size=(6, 8), **kw) -> Frame:
    """An in-memory frame: image [h, w, 3] of value i / 10, a camera at z = 4 + i."""
    h, w = size
    c2w = np.eye(4)
    c2w[2, 3] = 4.0 + i
    kw.setdefault("fx", 10.0)
    return Frame(f"f{i}", f"frame {i}", np.full((h, w, 3), i / 10, np.float32), c2w, **kw)


def build(frames: list[Frame], splits, root: Path, source: Path | None = None, **kw):
    """scene_from_frames with near/far 2, 6 and the metadata file root/meta.json."""
    kw = {"near": 2.0, "far": 6.0, **kw}
    return scene_from_frames(frames, splits, root=root, source=source or root / "meta.json", **kw)


def test_hold_out():
    assert hold_out(10) == {"train": [1, 2, 3, 4, 5, 6, 7, 9], "test": [0, 8], "val": [0, 8]}
    assert hold_out(5, 2)["test"] == [0, 2, 4]
    assert hold_out(5, 0) == {"train": [0, 1, 2, 3, 4]}
    assert hold_out(1) == {"train": [0]}  # a single frame is never held out


def test_check_pose_pads_and_rejects():
    m = check_pose([[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3]], "here")
    assert m.shape == (4, 4) and m.dtype == np.float64 and m[3, 3] == 1.0
    for bad, msg in [
        ([[1, 0, 0], [0, 1, 0]], "not a 4x4 or 3x4"),
        ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, True]], "not a 4x4 or 3x4"),
        (np.eye(3), "not a 4x4 or 3x4"),
        (np.diag([1.0, 1, 1, 1]) * [1, 1, 1, np.nan], "non-finite"),
        (np.diag([1.0, 1, -1, 1]), "not rigid"),
    ]:
        with pytest.raises(DataError, match=rf"^here: transform_matrix .*{msg}"):
            check_pose(bad, "here")


def test_in_memory_frames_become_a_scene(tmp_path):
    frames = [frame(i, time=i / 9) for i in range(10)]
    scene = build(frames, 8, tmp_path, downscale=2, near=1.0, far=9.0, format="test")
    assert list(scene.splits) == ["train", "test", "val"]
    assert scene.split("val") is scene.split("test")
    test = scene.split("test")
    assert test.names == ["f0", "f8"] and test.images.shape == (2, 3, 4, 3)
    torch.testing.assert_close(test.images[1], torch.full((3, 4, 3), 0.8))
    torch.testing.assert_close(test.times, torch.tensor([0.0, 8 / 9]))
    cams = test.cameras
    torch.testing.assert_close(cams.fx, torch.full((2,), 5.0))
    torch.testing.assert_close(cams.cx, torch.full((2,), 2.0))  # the centre, then halved
    assert (cams.width, cams.height) == (4, 3)
    assert (scene.meta.near, scene.meta.far, scene.meta.format) == (1.0, 9.0, "test")
    assert scene.meta.data_path == str(tmp_path)


def test_field_of_view_and_principal_point(tmp_path):
    f = frame(0, fx=None, fov_x=1.0, fov_y=0.8, cx=3.5)
    cams = build([f], {"train": [0]}, tmp_path).split("train").cameras
    assert cams.fx.item() == pytest.approx(0.5 * 8 / math.tan(0.5))
    assert cams.fy.item() == pytest.approx(0.5 * 6 / math.tan(0.4))
    assert (cams.cx.item(), cams.cy.item()) == (3.5, 3.0)


def test_size_checks(tmp_path):
    frames = [frame(0), frame(1, size=(6, 9))]
    with pytest.raises(DataError, match=r"meta.json: the train split has images of sizes"):
        build(frames, {"train": [0, 1]}, tmp_path)
    # different sizes in different splits are fine
    scene = build(frames, {"train": [0], "test": [1]}, tmp_path)
    assert scene.split("test").cameras.width == 9
    with pytest.raises(DataError, match=r"f0: size 8x6 differs from camera 2's 8x7 \(frame 0\)"):
        build([frame(0, w=8, h=7, camera="camera 2")], {"train": [0]}, tmp_path)
    # a resized copy scales the intrinsics with its size, if the aspect is kept
    half = frame(0, size=(6, 8), w=16, h=12, fx=20.0, cx=7.0, resized=True)
    cams = build([half], 8, tmp_path).split("train").cameras
    torch.testing.assert_close(cams.fx, torch.tensor([10.0]))
    torch.testing.assert_close(cams.cx, torch.tensor([3.5]))
    wrong = frame(0, size=(6, 8), w=16, h=16, resized=True)
    with pytest.raises(DataError, match=r"size 8x6 does not match the aspect of 16x16"):
        build([wrong], 8, tmp_path)


def test_empty_train_split_and_mixed_models(tmp_path):
    with pytest.raises(DataError, match=r"x: the train split is empty"):
        build([frame(0)], {"train": [], "test": [0]}, tmp_path, Path("x"))
    mixed = [frame(0, model="opencv"), frame(1, model="opencv_fisheye"), frame(2)]
    with pytest.raises(DataError, match=r"x: frames mix camera models"):
        build(mixed, 0, tmp_path, Path("x"))
    ok = [frame(0, model="opencv", distortion=[0.1, 0, 0, 0, 0, 0]), frame(1)]
    cams = build(ok, 0, tmp_path).split("train").cameras
    assert cams.model == "opencv"
    torch.testing.assert_close(cams.distortion[:, 0], torch.tensor([0.1, 0.0]))


def write_images(folder: Path, n: int, size=(8, 6)) -> list[Path]:
    folder.mkdir(parents=True)
    paths = [folder / f"im{i}.png" for i in range(n)]
    for i, p in enumerate(paths):
        Image.new("RGB", size, (10 * i, 0, 0)).save(p)
    return paths


def test_downscaled_copies_keep_subfolders(tmp_path):
    paths = write_images(tmp_path / "images" / "cam0", 2, size=(8, 6))
    copies = write_images(tmp_path / "images_2" / "cam0", 2, size=(4, 3))
    Image.new("RGB", (4, 3), (0, 200, 0)).save(copies[1])
    frames = [Frame(p.stem, p.name, p, np.eye(4), w=8, h=6, fx=10.0) for p in paths]
    scene = build(frames, 0, tmp_path, downscale=2)
    train = scene.split("train")
    assert train.images[1, 0, 0, 1].item() == pytest.approx(200 / 255)  # read from the copy
    torch.testing.assert_close(train.cameras.fx, torch.full((2,), 5.0))
    copies[0].unlink()  # not every frame has a copy: all downscaled in memory
    train = build(frames, 0, tmp_path, downscale=2).split("train")
    assert train.images[1, 0, 0, 1].item() == 0.0 and train.images.shape[1:3] == (3, 4)


def test_image_folder_rule(tmp_path):
    assert image_folder(tmp_path, 4) is None
    for name in ("images_2", "images_8"):
        (tmp_path / name).mkdir()
    assert image_folder(tmp_path, 8) == (tmp_path / "images_8", 1)
    assert image_folder(tmp_path, 4) == (tmp_path / "images_2", 2)
    with pytest.raises(DataError, match=r"no image folder for --downscale 3"):
        image_folder(tmp_path, 3)
    with pytest.warns(UserWarning, match="using images_2/"):
        assert image_folder(tmp_path, 1) == (tmp_path / "images_2", 1)
    (tmp_path / "images").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert image_folder(tmp_path, 3) == (tmp_path / "images", 3)
