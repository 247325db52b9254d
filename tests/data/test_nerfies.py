"""The Nerfies / HyperNeRF loader: camera conversion against the release's projection, times,
splits, rgb/Kx downscaling, points.npy, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.data import load_scene
from nerfkit.data.loaders import detect_format
from nerfkit.data.nerfies import load_nerfies
from nerfkit.errors import DataError

W, H = 20, 16
CENTER = np.array([1.0, -2.0, 0.5])
SCALE = 0.25


def _orientation(position, target) -> np.ndarray:
    """World-to-camera rotation (OpenCV: x right, y down, z forward) of a camera at `position`
    looking at `target`, world +z up."""
    z = np.asarray(target, float) - np.asarray(position, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def _camera(position, target=CENTER, **kw) -> dict:
    cam = {
        "orientation": _orientation(position, target).tolist(),
        "position": list(map(float, position)),
        "focal_length": 18.0,
        "principal_point": [W / 2, H / 2],
        "skew": 0.0,
        "pixel_aspect_ratio": 1.0,
        "radial_distortion": [0.0, 0.0, 0.0],
        "tangential": [0.0, 0.0],
        "image_size": [W, H],
    }
    cam.update(kw)
    return cam


def _release_project(cam: dict, x: np.ndarray) -> np.ndarray:
    """Pixel [N, 2] of world points x [N, 3] by the release's `Camera.project` (nerfies/camera.py,
    written out from its formulas; no skew)."""
    r, pos = np.asarray(cam["orientation"]), np.asarray(cam["position"])
    local = (x - pos) @ r.T
    u, v = local[:, 0] / local[:, 2], local[:, 1] / local[:, 2]
    k1, k2, k3 = cam["radial_distortion"]
    p1, p2 = cam["tangential"]
    r2 = u * u + v * v
    radial = 1 + r2 * (k1 + r2 * (k2 + k3 * r2))
    ud = u * radial + 2 * p1 * u * v + p2 * (r2 + 2 * u * u)
    vd = v * radial + 2 * p2 * u * v + p1 * (r2 + 2 * v * v)
    f, par = cam["focal_length"], cam["pixel_aspect_ratio"]
    pp = cam["principal_point"]
    return np.stack([f * ud + pp[0], f * par * vd + pp[1]], -1)


def _write(root, cams: dict, train, val=None, metadata=None, scene=None, sizes=(1,), colour=None):
    """A Nerfies capture in `root`: cameras {id: json}, flat images in rgb/<k>x/ for k in
    sizes (colour per factor: colour(k) -> RGB), dataset/metadata/scene JSONs."""
    (root / "camera").mkdir(parents=True)
    for fid, cam in cams.items():
        (root / "camera" / f"{fid}.json").write_text(json.dumps(cam))
        for k in sizes:
            (root / "rgb" / f"{k}x").mkdir(parents=True, exist_ok=True)
            rgb = (colour or (lambda k: (40 * k, 90, 200)))(k)
            img = np.zeros((H // k, W // k, 3), np.uint8) + np.array(rgb, np.uint8)
            Image.fromarray(img).save(root / "rgb" / f"{k}x" / f"{fid}.png")
    dataset = {"ids": list(cams), "train_ids": train}
    if val is not None:
        dataset["val_ids"] = val
    (root / "dataset.json").write_text(json.dumps(dataset))
    if metadata is not None:
        (root / "metadata.json").write_text(json.dumps(metadata))
    sj = {"center": CENTER.tolist(), "scale": SCALE, "near": 0.1, "far": 2.0}
    sj.update(scene or {})
    (root / "scene.json").write_text(json.dumps(sj))
    return root


def _positions(n: int) -> list[np.ndarray]:
    """Camera centres (file units) on a circle of radius 3 about CENTER, 1 above it."""
    return [
        CENTER + [3 * math.cos(2 * math.pi * k / n), 3 * math.sin(2 * math.pi * k / n), 1.0]
        for k in range(n)
    ]


def _ids(n: int) -> list[str]:
    return [f"{k:06d}" for k in range(n)]


def _scene_point(x: np.ndarray) -> np.ndarray:
    return (x - CENTER) * SCALE


def test_detected_and_poses_match_the_release_projection(tmp_path):
    pos = CENTER + np.array([2.0, -1.5, 1.2])
    cam = _camera(pos, pixel_aspect_ratio=1.1, principal_point=[9.3, 7.1])
    root = _write(tmp_path / "cap", {"a": cam, "b": _camera(_positions(2)[1])}, ["a"], ["b"])
    assert detect_format(root) == "nerfies"
    scene = load_scene(root)
    assert scene.meta.format == "nerfies"
    cams = scene.split("train").cameras
    assert cams.model == "pinhole"
    assert float(cams.fx[0]) == pytest.approx(18.0)
    assert float(cams.fy[0]) == pytest.approx(18.0 * 1.1)
    assert (float(cams.cx[0]), float(cams.cy[0])) == pytest.approx((9.3, 7.1))
    c2w = cams.c2w[0].double().numpy()
    np.testing.assert_allclose(c2w[:3, 3], _scene_point(pos), atol=1e-6)
    # the target, CENTER, is the scene origin: it lies on the optical axis (-z, OpenGL)
    local = np.linalg.inv(c2w) @ np.array([0.0, 0.0, 0.0, 1.0])
    assert abs(local[0]) < 1e-5 and abs(local[1]) < 1e-5 and local[2] < 0
    # any point: nerfkit's pinhole projection of the scene point = the release's pixel
    rng = np.random.default_rng(0)
    x = CENTER + rng.normal(scale=0.5, size=(20, 3))
    want = _release_project(cam, x)
    p = (np.linalg.inv(c2w)[:3, :3] @ _scene_point(x).T).T + np.linalg.inv(c2w)[:3, 3]
    u = float(cams.cx[0]) + float(cams.fx[0]) * p[:, 0] / -p[:, 2]
    v = float(cams.cy[0]) - float(cams.fy[0]) * p[:, 1] / -p[:, 2]
    np.testing.assert_allclose(np.stack([u, v], -1), want, atol=1e-4)
    m = scene.meta.data_transform
    np.testing.assert_allclose(np.asarray(m)[:3, :3], SCALE * np.eye(3))
    np.testing.assert_allclose(np.asarray(m)[:3, 3], -SCALE * CENTER)
    assert (scene.meta.near, scene.meta.far) == (0.1, 2.0)
    assert scene.meta.unbounded and scene.meta.background == [1.0, 1.0, 1.0]


def test_distortion_maps_to_opencv_coefficients(tmp_path):
    pos = CENTER + np.array([-2.0, 2.0, 1.0])
    cam = _camera(pos, radial_distortion=[0.08, -0.03, 0.01], tangential=[0.004, -0.002])
    root = _write(tmp_path / "cap", {"a": cam}, ["a"])
    cams = load_nerfies(root).split("train").cameras
    assert cams.model == "opencv"
    np.testing.assert_allclose(
        cams.distortion[0].numpy(), [0.08, -0.03, 0.01, 0.0, 0.004, -0.002], atol=1e-7
    )
    # the ray through the pixel where the release projects a point passes through that point
    x = CENTER + np.random.default_rng(1).normal(scale=0.4, size=(10, 3))
    px = torch.tensor(_release_project(cam, x))
    rays = cams.rays(torch.zeros(10, dtype=torch.long), px[:, 0], px[:, 1], 0.0, 1.0)
    v = torch.tensor(_scene_point(x)) - rays.origins.double()
    miss = torch.linalg.cross(v, rays.directions.double()).norm(dim=-1)
    assert float(miss.max()) < 1e-4


def test_times_from_time_id_then_warp_id_then_position(tmp_path):
    ids = _ids(4)
    cams = {i: _camera(p) for i, p in zip(ids, _positions(4))}
    meta = {i: {"warp_id": k, "appearance_id": k, "camera_id": 0, "time_id": 2 * k} for k, i in
            enumerate(ids)}  # fmt: skip
    scene = load_nerfies(_write(tmp_path / "a", cams, ids[:3], [ids[3]], meta))
    assert scene.split("train").times.tolist() == pytest.approx([0.0, 1 / 3, 2 / 3])
    assert scene.split("test").times.tolist() == pytest.approx([1.0])
    assert scene.meta.train_times == pytest.approx([0.0, 1 / 3, 2 / 3])
    warp_only = {i: {"warp_id": 3 - k} for k, i in enumerate(ids)}
    scene = load_nerfies(_write(tmp_path / "b", cams, ids[:3], [ids[3]], warp_only))
    assert scene.split("train").times.tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])
    scene = load_nerfies(_write(tmp_path / "c", cams, [ids[2], ids[0]], [ids[1]]))
    assert scene.split("train").times.tolist() == pytest.approx([1.0, 0.0])  # index in ids / 2
    assert scene.split("val").times.tolist() == pytest.approx([0.5])


def test_rig_cameras_from_camera_id(tmp_path):
    ids = _ids(4)
    cams = {i: _camera(p) for i, p in zip(ids, _positions(4))}
    meta = {i: {"time_id": k, "camera_id": k % 2} for k, i in enumerate(ids)}
    scene = load_nerfies(_write(tmp_path / "a", cams, ids[:3], [ids[3]], meta))
    assert scene.split("train").rig_cameras.tolist() == [0, 1, 0]
    assert scene.split("test").rig_cameras.tolist() == [1]
    assert scene.meta.train_rig_cameras == [0, 1, 0]
    assert scene.split("test").view_args(0) == {"time": 1.0, "rig_camera": 1}
    partial = {i: {"time_id": k} | ({"camera_id": 0} if k else {}) for k, i in enumerate(ids)}
    scene = load_nerfies(_write(tmp_path / "b", cams, ids[:3], [ids[3]], partial))
    assert scene.split("train").rig_cameras is None and scene.meta.train_rig_cameras == []
    assert scene.split("train").view_args(1) == {"time": pytest.approx(1 / 3), "rig_camera": None}
    for bad in (-1, 0.5, "left", True, float("inf"), float("nan")):
        wrong = {i: {"camera_id": bad if k == 1 else 0} for k, i in enumerate(ids)}
        with pytest.raises(DataError, match=f"metadata.json: frame '{ids[1]}' has camera_id"):
            load_nerfies(_write(tmp_path / f"c{bad}", cams, ids[:3], [ids[3]], wrong))


def test_splits_from_val_ids_or_held_out(tmp_path):
    ids = _ids(9)
    cams = {i: _camera(p) for i, p in zip(ids, _positions(9))}
    scene = load_nerfies(_write(tmp_path / "a", cams, ids[1::2], ids[0::2]))
    assert scene.split("train").names == ids[1::2]
    assert scene.split("test").names == scene.split("val").names == ids[0::2]
    scene = load_nerfies(_write(tmp_path / "b", cams, ids))  # no val_ids: every 8th held out
    assert scene.split("test").names == [ids[0], ids[8]]
    assert scene.split("train").names == ids[1:8]


def test_downscale_reads_rgb_kx(tmp_path):
    ids = _ids(2)
    cams = {i: _camera(p, principal_point=[9.0, 7.0]) for i, p in zip(ids, _positions(2))}
    root = _write(tmp_path / "a", cams, ids, ids[:1], sizes=(1, 2))
    full, half = load_nerfies(root), load_nerfies(root, downscale=2)
    assert full.split("train").images.shape == (2, H, W, 3)
    assert half.split("train").images.shape == (2, H // 2, W // 2, 3)
    assert float(half.split("train").images[0, 0, 0, 0]) == pytest.approx(80 / 255)  # rgb/2x
    c1, c2 = full.split("train").cameras, half.split("train").cameras
    for k in ("fx", "fy", "cx", "cy"):
        assert float(getattr(c2, k)[0]) == pytest.approx(float(getattr(c1, k)[0]) / 2)
    quarter = load_nerfies(root, downscale=4)  # rgb/2x/, halved again in memory
    assert quarter.split("train").images.shape == (2, H // 4, W // 4, 3)
    assert float(quarter.split("train").cameras.cx[0]) == pytest.approx(9.0 / 4)
    third = load_nerfies(root, downscale=3)  # rgb/1x/, divided by 3 in memory
    assert third.split("train").images.shape == (2, H // 3, W // 3, 3)


def test_no_full_size_folder_warns_and_uses_the_smallest_factor(tmp_path):
    ids = _ids(2)
    cams = {i: _camera(p) for i, p in zip(ids, _positions(2))}
    root = _write(tmp_path / "a", cams, ids, ids[:1], sizes=(2, 4))
    with pytest.warns(UserWarning, match="2x"):
        scene = load_nerfies(root)
    assert scene.split("train").images.shape == (2, H // 2, W // 2, 3)
    assert float(scene.split("train").cameras.fx[0]) == pytest.approx(9.0)
    with pytest.raises(DataError, match="no image folder for --downscale 3"):
        load_nerfies(root, downscale=3)


def test_points_give_scene_points_and_box(tmp_path):
    ids = _ids(2)
    cams = {i: _camera(p) for i, p in zip(ids, _positions(2))}
    lo, hi = CENTER - [0.4, 0.8, 0.2], CENTER + [0.4, 0.4, 0.6]
    corners = np.array([[a[0], b[1], c[2]] for a in (lo, hi) for b in (lo, hi) for c in (lo, hi)])
    pts = np.concatenate([np.repeat(corners, 100, 0), [CENTER + 50.0]])  # one far outlier
    root = _write(tmp_path / "a", cams, ids)
    np.save(root / "points.npy", pts)
    scene = load_nerfies(root)
    np.testing.assert_allclose(scene.points.numpy(), _scene_point(pts), rtol=1e-6, atol=1e-6)
    box = np.array([_scene_point(lo), _scene_point(hi)])  # 1st..99th percentile: no outlier
    pad = 0.05 * (box[1] - box[0]).max()
    np.testing.assert_allclose(scene.meta.aabb, box + [[-pad], [pad]], atol=1e-9)
    # the capture notebook's bbox (file units) widens it
    root = _write(tmp_path / "b", cams, ids, scene={"bbox": [(CENTER - 2).tolist(), lo.tolist()]})
    box = np.array([_scene_point(CENTER - 2), _scene_point(lo)])
    pad = 0.05 * (box[1] - box[0]).max()
    np.testing.assert_allclose(load_nerfies(root).meta.aabb, box + [[-pad], [pad]], atol=1e-9)
    # neither: a cube about the origin from far and the cameras' distance
    scene = load_nerfies(_write(tmp_path / "c", cams, ids, scene={"far": 3.0}))
    half = 3.0 - SCALE * math.sqrt(3.0**2 + 1.0)
    np.testing.assert_allclose(scene.meta.aabb, [[-half] * 3, [half] * 3])
    assert scene.points is None


def test_background_key_makes_a_bounded_scene_on_that_colour(tmp_path):
    ids = _ids(2)
    cams = {i: _camera(p) for i, p in zip(ids, _positions(2))}
    scene = load_nerfies(_write(tmp_path / "a", cams, ids, scene={"background": [0, 0, 1]}))
    assert scene.meta.background == [0.0, 0.0, 1.0] and not scene.meta.unbounded


def test_errors_name_the_file(tmp_path):
    ids = _ids(2)
    cams = {i: _camera(p) for i, p in zip(ids, _positions(2))}
    root = _write(tmp_path / "a", cams, ids)
    (root / "camera" / f"{ids[1]}.json").unlink()
    with pytest.raises(DataError, match=f"camera/{ids[1]}.json: file not found"):
        load_scene(root)
    skewed = {ids[0]: _camera(_positions(1)[0], skew=0.5)}
    with pytest.raises(DataError, match=r"000000\.json: skew 0\.5 is not supported"):
        load_nerfies(_write(tmp_path / "b", skewed, [ids[0]]))
    root = _write(tmp_path / "c", cams, ids)
    (root / "scene.json").write_text('{"center": [0, 0, 0], "scale": 1,')
    with pytest.raises(DataError, match=r"scene\.json: invalid JSON"):
        load_nerfies(root)
    no_focal = {ids[0]: {k: v for k, v in _camera(_positions(1)[0]).items() if k != "focal_length"}}
    with pytest.raises(DataError, match="lacks focal_length"):
        load_nerfies(_write(tmp_path / "d", no_focal, [ids[0]]))
    bad = {ids[0]: _camera(_positions(1)[0], orientation=np.eye(3)[::-1].tolist())}  # det -1
    with pytest.raises(DataError, match="not rigid"):
        load_nerfies(_write(tmp_path / "e", bad, [ids[0]]))
    root = _write(tmp_path / "f", cams, ids)
    (root / "rgb" / "1x" / f"{ids[0]}.png").unlink()
    with pytest.raises(DataError, match=f"1x/{ids[0]}.png: image not found"):
        load_nerfies(root)
