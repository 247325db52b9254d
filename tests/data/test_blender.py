"""The Blender loader and image reading: tiny fixtures written here, and the real lego scene."""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.data import load_scene
from nerfkit.data.blender import load_blender
from nerfkit.data.io import read_image
from nerfkit.errors import DataError

ANGLE_X = 0.9
SIZE = 8
TRANSPARENT_RGB = (200, 10, 30)  # colour under a fully transparent pixel: must not show
HALF_ALPHA = 128


def pose(i: int) -> list[list[float]]:
    """A rigid camera-to-world: a rotation about z by 0.5 i and a translation at radius 4."""
    c, s = math.cos(0.5 * i), math.sin(0.5 * i)
    return [[c, -s, 0.0, 4 * s], [s, c, 0.0, -4 * c], [0.0, 0.0, 1.0, 0.5], [0.0, 0.0, 0.0, 1.0]]


def rgba_image(i: int, size=(SIZE, SIZE)) -> np.ndarray:
    """Opaque (10 + 40 i, 100 + (row * 8 + col), 200); (0, 0) transparent with a non-black colour,
    (1, 2) half transparent red, (7, 7) transparent black."""
    h, w = size
    img = np.zeros((h, w, 4), np.uint8)
    img[..., 0] = 10 + 40 * i
    img[..., 1] = 100 + np.arange(h * w).reshape(h, w)
    img[..., 2] = 200
    img[..., 3] = 255
    img[0, 0] = (*TRANSPARENT_RGB, 0)
    img[1, 2] = (255, 0, 0, HALF_ALPHA)
    img[h - 1, w - 1] = (0, 0, 0, 0)
    return img


def composited(i: int) -> np.ndarray:
    """rgba_image(i) over white, computed by hand."""
    img = rgba_image(i).astype(np.float64) / 255.0
    rgb = img[..., :3].copy()
    rgb[0, 0] = rgb[-1, -1] = 1.0
    a = HALF_ALPHA / 255.0
    rgb[1, 2] = (1.0, 1.0 - a, 1.0 - a)
    return rgb


def write_scene(root: Path, splits=None) -> Path:
    """Train r_0, r_1 (file_path without extension) and test r_0 (with extension, 3x4 matrix)."""
    splits = splits or {"train": 2, "test": 1}
    for split, n in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for i in range(n):
            Image.fromarray(rgba_image(i)).save(root / split / f"r_{i}.png")
            m = pose(i)
            fp = f"./{split}/r_{i}"
            if split == "test":
                m, fp = m[:3], fp + ".png"
            frames.append({"file_path": fp, "rotation": 0.1, "transform_matrix": m})
        meta = {"camera_angle_x": ANGLE_X, "frames": frames}
        (root / f"transforms_{split}.json").write_text(json.dumps(meta, indent=2))
    return root


def edit_json(root: Path, split: str, fn) -> Path:
    path = root / f"transforms_{split}.json"
    meta = json.loads(path.read_text())
    fn(meta)
    path.write_text(json.dumps(meta))
    return path


@pytest.fixture
def scene_dir(tmp_path) -> Path:
    return write_scene(tmp_path / "scene")


# --- loading -------------------------------------------------------------------------------------


def test_loads_splits_cameras_and_composited_images(scene_dir):
    scene = load_scene(scene_dir)
    assert set(scene.splits) == {"train", "test"}
    train = scene.split("train")
    assert train.images.shape == (2, SIZE, SIZE, 3) and train.images.dtype == torch.float32
    assert train.names == ["r_0", "r_1"]
    for i in range(2):
        np.testing.assert_allclose(train.images[i].numpy(), composited(i), atol=1e-6)
    # the fully transparent pixels are pure white, whatever RGB they hold
    assert torch.equal(train.images[:, 0, 0], torch.ones(2, 3))
    assert torch.equal(train.images[:, -1, -1], torch.ones(2, 3))
    cams = train.cameras
    focal = 0.5 * SIZE / math.tan(0.5 * ANGLE_X)
    assert (cams.width, cams.height) == (SIZE, SIZE)
    torch.testing.assert_close(cams.fx, torch.full((2,), focal))
    torch.testing.assert_close(cams.fy, torch.full((2,), focal))
    torch.testing.assert_close(cams.cx, torch.full((2,), SIZE / 2))
    torch.testing.assert_close(cams.c2w[1], torch.tensor(pose(1), dtype=torch.float32))
    # the 3x4 test matrix got its last row
    torch.testing.assert_close(scene.split("test").cameras.c2w[0], torch.tensor(pose(0)))
    meta = scene.meta
    assert (meta.near, meta.far, meta.background) == (2.0, 6.0, [1.0, 1.0, 1.0])
    assert (meta.width, meta.height, meta.format) == (SIZE, SIZE, "blender")
    assert meta.focal == pytest.approx(focal, rel=1e-6)
    with pytest.raises(DataError, match="no 'val' split"):
        scene.split("val")


def test_background_colour_is_used_for_transparency(scene_dir):
    scene = load_blender(scene_dir, background=(0.0, 0.0, 0.0))
    img = scene.split("train").images[0]
    assert torch.equal(
        img[0, 0], torch.zeros(3)
    )  # transparent over black: black, not (200, 10, 30)
    a = HALF_ALPHA / 255.0
    torch.testing.assert_close(img[1, 2], torch.tensor([a, 0.0, 0.0]))


def test_downscale_halves_size_and_focal_and_averages_pixels(scene_dir):
    full = load_scene(scene_dir).split("train")
    half = load_scene(scene_dir, downscale=2).split("train")
    assert half.images.shape == (2, SIZE // 2, SIZE // 2, 3)
    assert (half.cameras.width, half.cameras.height) == (SIZE // 2, SIZE // 2)
    torch.testing.assert_close(half.cameras.fx, full.cameras.fx / 2)
    torch.testing.assert_close(half.cameras.cx, full.cameras.cx / 2)
    for i in range(2):
        expected = composited(i).reshape(4, 2, 4, 2, 3).mean(axis=(1, 3))
        np.testing.assert_allclose(half.images[i].numpy(), expected, atol=1e-6)


def test_near_far_hints_in_json(scene_dir):
    edit_json(scene_dir, "train", lambda m: m.update(near=0.5, far=3.0))
    meta = load_scene(scene_dir).meta
    assert (meta.near, meta.far) == (0.5, 3.0)


# --- errors: a DataError that names the offending file -------------------------------------------


def test_missing_folder(tmp_path):
    missing = tmp_path / "no_such_scene"
    with pytest.raises(DataError, match="no_such_scene"):
        load_scene(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty"):
        load_scene(empty)
    with pytest.raises(DataError, match="transforms_train.json"):
        load_blender(empty)


def test_json_syntax_error_names_line_and_column(scene_dir):
    path = scene_dir / "transforms_train.json"
    path.write_text('{\n "camera_angle_x": 0.9,\n "frames": oops\n}\n')
    with pytest.raises(DataError) as e:
        load_scene(scene_dir)
    msg = str(e.value)
    assert str(path) in msg and "line 3" in msg and "column 12" in msg


def test_missing_image(scene_dir):
    missing = scene_dir / "train" / "r_1.png"
    missing.unlink()
    with pytest.raises(DataError, match="not found") as e:
        load_scene(scene_dir)
    assert str(missing) in str(e.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_unreadable_image(scene_dir, damage):
    path = scene_dir / "train" / "r_1.png"
    data = path.read_bytes()
    bad = {"truncated": data[: len(data) * 2 // 3], "garbage": b"not a png" * 20, "empty": b""}
    path.write_bytes(bad[damage])
    with pytest.raises(DataError) as e:
        load_scene(scene_dir)
    assert str(path) in str(e.value)


def test_images_of_different_sizes(scene_dir):
    odd = scene_dir / "train" / "r_1.png"
    Image.fromarray(rgba_image(1, size=(6, 8))).save(odd)
    with pytest.raises(DataError, match="size 8x6") as e:
        load_scene(scene_dir)
    assert str(odd) in str(e.value)


@pytest.mark.parametrize(
    "entry, value, message",
    [
        (0, float("nan"), "non-finite"),
        (3, float("inf"), "non-finite"),
        (0, 2.0, "not rigid"),  # scaled
        (-1, None, "not rigid"),  # reflected (det -1)
    ],
)
def test_bad_matrix(scene_dir, entry, value, message):
    def damage(meta):
        m = meta["frames"][1]["transform_matrix"]
        if value is None:
            m[0] = [-x for x in m[0][:3]] + [m[0][3]]
        else:
            m[0][entry] = value

    path = edit_json(scene_dir, "train", damage)
    with pytest.raises(DataError, match=message) as e:
        load_scene(scene_dir)
    assert str(path) in str(e.value) and "frame 1" in str(e.value)


def test_empty_frames_list(scene_dir):
    path = edit_json(scene_dir, "test", lambda m: m.update(frames=[]))
    with pytest.raises(DataError, match="no frames") as e:
        load_scene(scene_dir)
    assert str(path) in str(e.value)


def test_missing_camera_angle(scene_dir):
    path = edit_json(scene_dir, "train", lambda m: m.pop("camera_angle_x"))
    with pytest.raises(DataError, match="camera_angle_x") as e:
        load_scene(scene_dir)
    assert str(path) in str(e.value)


# --- image modes (data/io.read_image) ------------------------------------------------------------


def write_png_rgb16(path: Path, arr: np.ndarray) -> None:
    """A 16-bit RGB PNG written by hand (PIL cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
    path.write_bytes(png + chunk(b"IEND", b""))


def test_greyscale_image_loads_as_rgb(tmp_path):
    grey = np.array([[0, 64], [128, 255]], np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.repeat(grey[..., None] / 255.0, 3, -1), atol=1e-7)


def test_greyscale_16bit_loads_as_rgb(tmp_path):
    # values all below 256 as well: must still be divided by 65535, not 255
    for vals in ([[0, 1000], [32768, 65535]], [[0, 100], [200, 255]]):
        grey = np.array(vals, np.uint16)
        Image.fromarray(grey).save(tmp_path / "g16.png")
        out = read_image(tmp_path / "g16.png")
        assert out.shape == (2, 2, 3)
        np.testing.assert_allclose(out, np.repeat(grey[..., None] / 65535.0, 3, -1), atol=1e-7)


def test_rgb_16bit_loads_in_unit_range(tmp_path):
    arr = np.array([[[0, 65535, 32768], [1000, 20000, 65000]]], np.uint16)
    write_png_rgb16(tmp_path / "c16.png", arr)
    out = read_image(tmp_path / "c16.png")
    assert out.shape == (1, 2, 3)
    np.testing.assert_allclose(out, arr / 65535.0, atol=1.0 / 255 + 1e-6)


def test_palette_images(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0] = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    rgb[1] = [(10, 20, 30), (255, 255, 255), (0, 0, 0)]
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    assert out.shape == (2, 3, 3)
    np.testing.assert_allclose(out, rgb / 255.0, atol=1e-7)
    # a palette with a transparent entry becomes RGBA, and composites like any RGBA image
    idx = np.asarray(pal)
    pal.save(tmp_path / "pt.png", transparency=int(idx[1, 2]))
    out = read_image(tmp_path / "pt.png")
    assert out.shape == (2, 3, 4)
    assert out[1, 2, 3] == 0.0 and out[0, 0, 3] == 1.0


def test_grey_alpha_and_bilevel_images(tmp_path):
    la = np.array([[[50, 255], [200, 0]]], np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png")
    assert out.shape == (1, 2, 4)
    np.testing.assert_allclose(out[0, 0], [50 / 255] * 3 + [1.0], atol=1e-7)
    assert out[0, 1, 3] == 0.0
    Image.fromarray(np.array([[True, False]])).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_image(tmp_path / "b.png"), [[[1, 1, 1], [0, 0, 0]]])


def test_greyscale_scene_loads(tmp_path):
    # a whole Blender scene of greyscale images works like an RGB one
    root = write_scene(tmp_path / "s", {"train": 1})
    Image.fromarray(np.full((SIZE, SIZE), 77, np.uint8), mode="L").save(root / "train" / "r_0.png")
    img = load_scene(root).split("train").images[0]
    torch.testing.assert_close(img, torch.full((SIZE, SIZE, 3), 77 / 255))


# --- the real NeRF-synthetic lego scene (developers' ../shared/data) -----------------------------


@pytest.fixture(scope="module")
def lego(shared_data):
    root = shared_data / "nerf_synthetic" / "lego"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    return load_scene(root, downscale=8)


def test_real_lego_scene(lego):
    sizes = {name: len(split) for name, split in lego.splits.items()}
    assert sizes == {"train": 100, "val": 13, "test": 25}
    for split in lego.splits.values():
        assert split.images.shape[1:] == (100, 100, 3)
        assert (split.cameras.width, split.cameras.height) == (100, 100)
        assert split.cameras.fx[0].item() == pytest.approx(1111.111 / 8, rel=1e-4)
        assert split.images.min() >= 0.0 and split.images.max() <= 1.0
        # the transparent background composited onto white
        corners = split.images[:, [0, 0, -1, -1], [0, -1, 0, -1]]
        torch.testing.assert_close(corners, torch.ones_like(corners))
        radius = split.cameras.c2w[:, :3, 3].norm(dim=-1)
        torch.testing.assert_close(radius, torch.full_like(radius, 4.0311), atol=1e-3, rtol=0)
        # rigid poses, cameras looking at the object at the origin
        rot = split.cameras.c2w[:, :3, :3]
        eye = torch.eye(3).expand_as(rot)
        torch.testing.assert_close(rot.transpose(1, 2) @ rot, eye, atol=1e-4, rtol=0)
    assert lego.meta.focal == pytest.approx(138.889, rel=1e-4)
    assert lego.split("train").names[:2] == ["r_0", "r_1"]
    # the object is in the middle of the picture: the centre pixel is not background
    assert (lego.split("train").images[:, 45:55, 45:55] < 0.99).any(-1).any()
