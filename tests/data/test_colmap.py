"""COLMAP sparse models: text and binary fixtures written here (and by pycolmap when installed)."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.cameras import ndc_ray_box
from nerfkit.data import load_scene
from nerfkit.data.colmap import MODEL_IDS, load_colmap, read_model
from nerfkit.errors import DataError

W, H = 32, 24
N = 9
PARAMS = {  # COLMAP parameter lists
    "SIMPLE_PINHOLE": [26.0, 16.2, 11.8],
    "PINHOLE": [26.0, 27.5, 16.2, 11.8],
    "SIMPLE_RADIAL": [26.0, 16.2, 11.8, -0.15],
    "RADIAL": [26.0, 16.2, 11.8, -0.15, 0.03],
    "OPENCV": [26.0, 27.5, 16.2, 11.8, -0.15, 0.03, 0.002, -0.001],
    "OPENCV_FISHEYE": [26.0, 27.5, 16.2, 11.8, 0.05, -0.01, 0.002, -0.001],
    "FULL_OPENCV": [26.0, 27.5, 16.2, 11.8, -0.15, 0.03, 0.002, -0.001, 0.01, 0, 0, 0],
}


def rot(axis, angle) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


WORLD_R = rot([0.4, -1.0, 0.3], 2.0)  # COLMAP's world frame is arbitrary


def rotmat_to_qvec(r: np.ndarray) -> np.ndarray:
    """Rotation [3, 3] -> unit quaternion (w, x, y, z), w >= 0."""
    w = math.sqrt(max(0.0, 1 + r[0, 0] + r[1, 1] + r[2, 2])) / 2
    x = math.copysign(math.sqrt(max(0.0, 1 + r[0, 0] - r[1, 1] - r[2, 2])) / 2, r[2, 1] - r[1, 2])
    y = math.copysign(math.sqrt(max(0.0, 1 - r[0, 0] + r[1, 1] - r[2, 2])) / 2, r[0, 2] - r[2, 0])
    z = math.copysign(math.sqrt(max(0.0, 1 - r[0, 0] - r[1, 1] + r[2, 2])) / 2, r[1, 0] - r[0, 1])
    return np.array([w, x, y, z])


def true_c2w() -> np.ndarray:
    """N OpenGL camera-to-worlds on a ring (radius 4) looking at the origin, world rotated."""
    out = []
    for i in range(N):
        a = 2 * math.pi * i / N
        eye = np.array([4 * math.cos(a), 4 * math.sin(a), 1.0 + 0.1 * i])
        back = eye / np.linalg.norm(eye)
        right = np.cross([0.0, 0.0, 1.0], back)
        right /= np.linalg.norm(right)
        m = np.eye(4)
        m[:3, :3] = WORLD_R @ np.stack([right, np.cross(back, right), back], 1)
        m[:3, 3] = WORLD_R @ eye
        out.append(m)
    return np.stack(out)


def points() -> np.ndarray:
    return np.random.default_rng(1).uniform(-1, 1, (60, 3)) @ WORLD_R.T


FORWARD_T = np.array([1.0, -2.0, 0.5])


def forward_c2w() -> np.ndarray:
    """N cameras on a 3 x 3 grid (spacing 0.3) looking along -z, each slightly turned: a
    forward-facing capture, in the rotated and moved world frame."""
    out = []
    for i in range(N):
        m = np.eye(4)
        turn = rot([0.2, 1.0, 0.1], 0.04 * (i % 3 - 1)) @ rot([1, 0, 0], 0.03 * (i // 3 - 1))
        m[:3, :3] = WORLD_R @ turn
        m[:3, 3] = WORLD_R @ np.array([0.3 * (i % 3 - 1), 0.3 * (i // 3 - 1), 0.01 * i])
        m[:3, 3] += FORWARD_T
        out.append(m)
    return np.stack(out)


def forward_points() -> np.ndarray:
    """Content 3 to 6 ahead of the forward cameras."""
    p = np.random.default_rng(2).uniform([-1.2, -0.9, -6.0], [1.2, 0.9, -3.0], (80, 3))
    return p @ WORLD_R.T + FORWARD_T


RIGS = {"ring": (true_c2w, points), "forward": (forward_c2w, forward_points)}


def colmap_project(model: str, params: list[float], p_cam: np.ndarray) -> np.ndarray:
    """COLMAP's camera models (src/colmap/sensor/models.h), written out: points [K, 3] in the
    OpenCV camera frame -> pixels [K, 2]."""
    p = params
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        fx = fy = p[0]
        cx, cy, extra = p[1], p[2], p[3:]
    else:
        fx, fy, cx, cy, extra = p[0], p[1], p[2], p[3], p[4:]
    u, v = p_cam[:, 0] / p_cam[:, 2], p_cam[:, 1] / p_cam[:, 2]
    if model == "OPENCV_FISHEYE":
        r = np.hypot(u, v)
        th = np.arctan(r)
        k1, k2, k3, k4 = extra
        thd = th * (1 + k1 * th**2 + k2 * th**4 + k3 * th**6 + k4 * th**8)
        u, v = u * thd / r, v * thd / r
    elif model != "PINHOLE" and model != "SIMPLE_PINHOLE":
        k1, k2, p1, p2, k3 = {
            "SIMPLE_RADIAL": lambda e: (e[0], 0, 0, 0, 0),
            "RADIAL": lambda e: (e[0], e[1], 0, 0, 0),
            "OPENCV": lambda e: (e[0], e[1], e[2], e[3], 0),
            "FULL_OPENCV": lambda e: (e[0], e[1], e[2], e[3], e[4]),
        }[model](extra)
        r2 = u * u + v * v
        rad = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        u, v = (
            u * rad + 2 * p1 * u * v + p2 * (r2 + 2 * u * u),
            v * rad + 2 * p2 * u * v + p1 * (r2 + 2 * v * v),
        )
    return np.stack([fx * u + cx, fy * v + cy], 1)


def build_model(model: str = "OPENCV", rig: str = "ring") -> dict:
    """cameras / images (with observations) / points consistent with each other; the cameras
    and points of RIGS[rig]."""
    c2w, pts = RIGS[rig][0](), RIGS[rig][1]()
    images, tracks = [], {pid: [] for pid in range(1, len(pts) + 1)}
    ids = [5, 2, 9, 1, 7, 3, 8, 4, 6]  # image ids are not in name order
    for i, m in enumerate(c2w):
        r_cv = (m[:3, :3] @ np.diag([1.0, -1.0, -1.0])).T  # world -> OpenCV camera
        t = -r_cv @ m[:3, 3]
        p_cam = pts @ r_cv.T + t
        pix = colmap_project(model, PARAMS[model], p_cam)
        obs = []
        for j, (x, y) in enumerate(pix):
            if p_cam[j, 2] > 0 and 0 <= x < W and 0 <= y < H:
                tracks[j + 1].append((ids[i], len(obs)))
                obs.append((x, y, j + 1))
        obs.append((1.0, 1.0, -1))  # a keypoint without a 3D point
        images.append(
            dict(id=ids[i], q=rotmat_to_qvec(r_cv), t=t, name=f"img_{i:02d}.png", obs=obs)
        )
    return dict(model=model, params=PARAMS[model], images=images, points=pts, tracks=tracks)


def write_text(d: Path, m: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "cameras.txt").write_text(
        "# Camera list\n1 " + m["model"] + f" {W} {H} " + " ".join(map(repr, m["params"])) + "\n"
    )
    lines = ["# Image list with two lines of data per image:"]
    for im in m["images"]:
        pose = " ".join(repr(float(v)) for v in [*im["q"], *im["t"]])
        lines.append(f"{im['id']} {pose} 1 {im['name']}")
        lines.append(" ".join(f"{float(x)!r} {float(y)!r} {pid}" for x, y, pid in im["obs"]))
    (d / "images.txt").write_text("\n".join(lines) + "\n")
    lines = ["# 3D point list"]
    for pid, p in enumerate(m["points"], 1):
        track = " ".join(f"{a} {b}" for a, b in m["tracks"][pid])
        xyz = " ".join(repr(float(v)) for v in p)
        lines.append(f"{pid} {xyz} 128 128 128 0.5 {track}")
    (d / "points3D.txt").write_text("\n".join(lines) + "\n")


def write_binary(d: Path, m: dict) -> None:
    """COLMAP's binary layout (read_write_model.py)."""
    d.mkdir(parents=True, exist_ok=True)
    mid, npar = MODEL_IDS[m["model"]]
    (d / "cameras.bin").write_bytes(
        struct.pack("<QiiQQ", 1, 1, mid, W, H) + struct.pack(f"<{npar}d", *m["params"])
    )
    b = struct.pack("<Q", len(m["images"]))
    for im in m["images"]:
        b += struct.pack("<i7di", im["id"], *im["q"], *im["t"], 1) + im["name"].encode() + b"\0"
        b += struct.pack("<Q", len(im["obs"]))
        for x, y, pid in im["obs"]:
            b += struct.pack("<ddq", x, y, pid)
    (d / "images.bin").write_bytes(b)
    b = struct.pack("<Q", len(m["points"]))
    for pid, p in enumerate(m["points"], 1):
        tr = m["tracks"][pid]
        b += struct.pack("<Q3d3BdQ", pid, *p, 1, 2, 3, 0.5, len(tr))
        b += b"".join(struct.pack("<ii", a, c) for a, c in tr)
    (d / "points3D.bin").write_bytes(b)


def write_scene(
    root: Path, model: str = "OPENCV", binary: bool = False, sub="sparse/0", rig: str = "ring"
) -> Path:
    m = build_model(model, rig)
    (write_binary if binary else write_text)(root / sub, m)
    (root / "images").mkdir(parents=True)
    for i, im in enumerate(m["images"]):
        Image.new("RGB", (W, H), (20 * i, 50, 100)).save(root / "images" / im["name"])
    return root


@pytest.fixture
def colmap_dir(tmp_path) -> Path:
    return write_scene(tmp_path / "c")


def rays_miss(scene, model: str, rig: str = "ring") -> float:
    """Largest distance between a scene-space 3D point and the ray through a pixel observing it."""
    m = build_model(model, rig)
    t = np.eye(4) if not scene.meta.data_transform else np.array(scene.meta.data_transform)
    pts = m["points"] @ t[:3, :3].T + t[:3, 3]
    by_name = {im["name"][:-4]: im for im in m["images"]}
    worst = 0.0
    for split in (scene.split("train"), scene.split("test")):
        for k, name in enumerate(split.names):
            obs = [o for o in by_name[name]["obs"] if o[2] > 0]
            px = torch.tensor([o[0] for o in obs], dtype=torch.float64)
            py = torch.tensor([o[1] for o in obs], dtype=torch.float64)
            rays = split.cameras.rays(torch.full((len(obs),), k), px, py, near=0.0, far=1.0)
            p = torch.tensor(pts[[o[2] - 1 for o in obs]])
            v = p - rays.origins.double()
            d = rays.directions.double()
            tt = (v * d).sum(-1)
            assert (tt > 0).all()
            worst = max(worst, (v - tt[:, None] * d).norm(dim=-1).max().item())
    return worst


def test_text_model_loads(colmap_dir):
    scene = load_scene(colmap_dir)
    assert scene.meta.format == "colmap"
    tr, te = scene.split("train"), scene.split("test")
    assert te.names == ["img_00", "img_08"]  # sorted by name, every 8th
    assert scene.split("val").names == te.names
    assert tr.names == [f"img_{i:02d}" for i in range(1, 8)]
    assert tr.images.shape == (7, H, W, 3)
    assert tr.images[0, 0, 0, 0].item() == pytest.approx(20 / 255)
    cams = tr.cameras
    assert cams.model == "opencv" and (cams.width, cams.height) == (W, H)
    torch.testing.assert_close(cams.fx, torch.full((7,), 26.0))
    torch.testing.assert_close(cams.fy, torch.full((7,), 27.5))
    torch.testing.assert_close(cams.cx, torch.full((7,), 16.2))
    torch.testing.assert_close(cams.distortion[0], torch.tensor([-0.15, 0.03, 0, 0, 0.002, -0.001]))
    # normalised: cameras in [-1, 1], mean up along +z
    c2w = torch.cat([tr.cameras.c2w, te.cameras.c2w])
    assert c2w[:, :3, 3].abs().max().item() == pytest.approx(1.0, abs=1e-6)
    up = c2w[:, :3, 1].mean(0)
    assert (up / up.norm())[2] > 0.9999
    assert scene.meta.kind == "object"


@pytest.mark.parametrize("model", sorted(PARAMS))
def test_rays_through_observations_hit_the_points(tmp_path, model):
    scene = load_scene(write_scene(tmp_path / "c", model=model))
    assert rays_miss(scene, model) < 1e-5


def test_near_far_bracket_the_points(colmap_dir):
    scene = load_colmap(colmap_dir, normalize=False)
    m = build_model()
    depths = []
    for split in (scene.split("train"), scene.split("test")):
        for k in range(len(split)):
            c = split.cameras.c2w[k].double().numpy()
            d = (m["points"] - c[:3, 3]) @ -c[:3, 2]  # depth along the viewing axis
            depths.append(d[d > 0])
    d = np.concatenate(depths)
    assert scene.meta.near < np.percentile(d, 1) and scene.meta.far > np.percentile(d, 99)
    assert scene.meta.near > 0.5 * d.min() * 0.8 and scene.meta.far < 2 * d.max()
    box = np.array(scene.meta.aabb)
    inside = np.all((m["points"] >= box[0]) & (m["points"] <= box[1]), axis=1)
    assert inside.mean() > 0.9
    # normalised: the same bounds, scaled
    norm = load_scene(colmap_dir)
    s = np.cbrt(np.linalg.det(np.array(norm.meta.data_transform)[:3, :3]))
    assert norm.meta.near == pytest.approx(scene.meta.near * s)
    assert norm.meta.far == pytest.approx(scene.meta.far * s)


def test_without_normalisation_poses_are_the_true_cameras(colmap_dir):
    scene = load_colmap(colmap_dir, normalize=False)
    c2w = true_c2w()
    for split in (scene.split("train"), scene.split("test")):
        idx = [int(n[4:]) for n in split.names]
        np.testing.assert_allclose(split.cameras.c2w.numpy(), c2w[idx], atol=1e-5)


def test_binary_model_equals_text(tmp_path):
    text = load_scene(write_scene(tmp_path / "t"))
    binary = load_scene(write_scene(tmp_path / "b", binary=True))
    for name in ("train", "test"):
        a, b = text.split(name), binary.split(name)
        assert a.names == b.names
        torch.testing.assert_close(a.cameras.c2w, b.cameras.c2w)
        torch.testing.assert_close(a.cameras.distortion, b.cameras.distortion)
    assert text.meta.near == pytest.approx(binary.meta.near)
    np.testing.assert_allclose(text.meta.aabb, binary.meta.aabb)


def test_pycolmap_written_models_read_the_same(tmp_path):
    """pycolmap reads our text fixture and writes binary and text models in its own (COLMAP 4)
    layout, with rigs and frames; our parser reads both the same."""
    pycolmap = pytest.importorskip("pycolmap")
    src = write_scene(tmp_path / "src")
    rec = pycolmap.Reconstruction(str(src / "sparse" / "0"))
    assert rec.num_reg_images() == N
    ref = read_model(src / "sparse" / "0")
    for kind in ("bin", "txt"):
        out = tmp_path / kind / "sparse" / "0"
        out.mkdir(parents=True)
        (rec.write_binary if kind == "bin" else rec.write_text)(str(out))
        assert (out / f"images.{kind}").is_file()
        got = read_model(out)
        assert sorted(got.images) == sorted(ref.images)
        for i, im in ref.images.items():
            g = got.images[i]
            assert g.name == im.name and g.camera_id == im.camera_id
            q = g.qvec * np.sign(g.qvec[0]) * np.sign(im.qvec[0])
            np.testing.assert_allclose(q, im.qvec, atol=1e-12)
            np.testing.assert_allclose(g.tvec, im.tvec, atol=1e-12)
            np.testing.assert_array_equal(g.point3d_ids, im.point3d_ids)
        np.testing.assert_allclose(got.cameras[1].params, ref.cameras[1].params)
        order_g, order_r = np.argsort(got.point_ids), np.argsort(ref.point_ids)
        np.testing.assert_array_equal(got.point_ids[order_g], ref.point_ids[order_r])
        np.testing.assert_allclose(got.points[order_g], ref.points[order_r], atol=1e-12)


def test_forward_facing_model_loads_as_ndc(tmp_path, ndc_miss):
    """A forward-facing capture gets LLFF's treatment: NDC rays, recentred poses, the nearest
    content at depth 1 / 0.75; its rays, in the scene frame and mapped back out of NDC, pass
    through the true points."""
    root = write_scene(tmp_path / "f", rig="forward")
    scene = load_scene(root)
    m = scene.meta
    assert (m.ndc, m.kind, m.near, m.far, m.format) == (True, "forward", 0.0, 1.0, "colmap")
    assert m.aabb == ndc_ray_box(scene.split("train").cameras)  # holds every training ray
    assert m.bounds[0] == pytest.approx(1 / 0.75) and 2.0 < m.bounds[1] < 6.5 / 3.0 / 0.75
    c2w = torch.cat([scene.split("train").cameras.c2w, scene.split("test").cameras.c2w]).double()
    view = -c2w[:, :3, 2].mean(0)
    assert (view / view.norm())[2] < -0.999 and c2w[:, :3, 3].mean(0).norm() < 1e-5
    assert rays_miss(scene, "OPENCV", "forward") < 1e-5  # uses data_transform
    # the scale: the nearest content seen (1st percentile per image) lies at depth 1 / 0.75
    t = np.array(m.data_transform)
    pts = forward_points() @ t[:3, :3].T + t[:3, 3]
    nearest = min(np.percentile((pts - c[:3, 3]) @ -c[:3, 2], 1) for c in c2w.numpy())
    assert nearest == pytest.approx(1 / 0.75, rel=0.05)
    by_name = {im["name"][:-4]: im for im in build_model(rig="forward")["images"]}
    for split in (scene.split("train"), scene.split("test")):
        obs = [(k, o) for k, n in enumerate(split.names) for o in by_name[n]["obs"] if o[2] > 0]
        cam = torch.tensor([k for k, _ in obs])
        px, py = (torch.tensor([o[i] for _, o in obs], dtype=torch.float64) for i in (0, 1))
        p = torch.tensor(pts[[o[2] - 1 for _, o in obs]])
        dist, t_ndc = ndc_miss(split.cameras, cam, px, py, p)
        assert dist.max() < 1e-5 and ((t_ndc > 0) & (t_ndc < 1)).all()


def test_forward_facing_ndc_can_be_forced_off_or_on(tmp_path, colmap_dir):
    root = write_scene(tmp_path / "f", rig="forward")
    off = load_colmap(root, ndc=False)  # as before forward-facing captures got NDC
    assert not off.meta.ndc and off.meta.near > 0 and off.meta.kind == "forward"
    assert off.meta.aabb != [[-1.0] * 3, [1.0] * 3]
    assert load_scene(root, ndc=False).meta.to_dict() == off.meta.to_dict()
    assert not load_colmap(root, normalize=False).meta.ndc  # poses as stored: no NDC
    ring = load_scene(colmap_dir, ndc=True)  # forced on, even for an object capture
    assert ring.meta.ndc and ring.meta.near == 0.0


def test_model_directly_in_sparse(tmp_path):
    scene = load_scene(write_scene(tmp_path / "c", sub="sparse"))
    assert len(scene.split("train")) == 7


def test_downscale(colmap_dir):
    scene = load_scene(colmap_dir, downscale=2)
    cams = scene.split("train").cameras
    assert scene.split("train").images.shape[1:3] == (H // 2, W // 2)
    torch.testing.assert_close(cams.fx, torch.full((7,), 13.0))
    torch.testing.assert_close(cams.cx, torch.full((7,), 8.1))


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_no_registered_images(tmp_path, binary):
    root = write_scene(tmp_path / "c", binary=binary)
    m = build_model()
    m["images"] = []
    m["tracks"] = {pid: [] for pid in m["tracks"]}
    (write_binary if binary else write_text)(root / "sparse" / "0", m)
    with pytest.raises(DataError, match=r"sparse/0: the COLMAP model has no registered images"):
        load_scene(root)


def test_missing_image(colmap_dir):
    (colmap_dir / "images" / "img_03.png").unlink()
    with pytest.raises(DataError, match=r"img_03.png: image registered in the COLMAP model not"):
        load_scene(colmap_dir)


def test_truncated_image(colmap_dir):
    p = colmap_dir / "images" / "img_02.png"
    noise = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(noise).save(p)
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) * 2 // 3])
    with pytest.raises(DataError, match=r"img_02.png: unreadable or truncated image"):
        load_scene(colmap_dir)


def test_image_size_differs_from_camera(colmap_dir):
    Image.new("RGB", (W // 2, H // 2)).save(colmap_dir / "images" / "img_04.png")
    with pytest.raises(DataError, match=r"img_04.png: size 16x12 differs from camera 1's 32x24"):
        load_scene(colmap_dir)


def test_unsupported_camera_model(colmap_dir):
    (colmap_dir / "sparse/0/cameras.txt").write_text(f"1 FOV {W} {H} 26 26 16 12 0.1\n")
    with pytest.raises(DataError, match=r"sparse/0: camera 1 uses the FOV model"):
        load_scene(colmap_dir)


def test_malformed_text_line(colmap_dir):
    (colmap_dir / "sparse/0/cameras.txt").write_text("# cams\n1 PINHOLE 32 24 26 26\n")
    with pytest.raises(DataError, match=r"cameras.txt: line 2: PINHOLE takes 4 parameters"):
        load_scene(colmap_dir)


def test_truncated_binary(tmp_path):
    root = write_scene(tmp_path / "c", binary=True)
    p = root / "sparse/0/images.bin"
    p.write_bytes(p.read_bytes()[:150])
    with pytest.raises(DataError, match=r"images.bin: truncated at byte"):
        load_scene(root)


def test_missing_points_file(colmap_dir):
    (colmap_dir / "sparse/0/points3D.txt").unlink()
    with pytest.raises(DataError, match=r"sparse/0: points3D.bin or points3D.txt missing"):
        load_scene(colmap_dir)


def test_unknown_layout_says_what_was_looked_for(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as e:
        load_scene(tmp_path / "empty")
    msg = str(e.value)
    assert "unknown dataset layout" in msg and "\n" not in msg
    for looked in (
        "transforms_train.json",
        "transforms.json",
        "poses_bounds.npy",
        "sparse/",
        "npz",
    ):
        assert looked in msg
