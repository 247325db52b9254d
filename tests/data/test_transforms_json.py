"""nerfstudio / instant-ngp transforms.json: fixtures with distortion written here, bad inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.cameras import ndc_ray_box
from nerfkit.data import load_scene
from nerfkit.data.loaders import detect_format
from nerfkit.data.transforms_json import load_transforms_json
from nerfkit.errors import DataError
from nerfkit.poses import normalize_poses, rotation_between

W, H = 24, 18
INTR = {"fl_x": 20.0, "fl_y": 21.0, "cx": 12.3, "cy": 8.7, "w": W, "h": H}
OPENCV = {"camera_model": "OPENCV", "k1": -0.12, "k2": 0.02, "p1": 0.001, "p2": -0.002}
N = 10


def rot(axis, angle) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


# the capture's world: arbitrary orientation (up is not +z), offset and scale
WORLD_R = rot([1.0, 0.3, -0.2], 1.1)
WORLD_T = np.array([2.0, -4.0, 7.0])
WORLD_S = 5.0
CENTRE = WORLD_T  # the ring of cameras looks at the world point WORLD_T


def ring_c2w(n: int = N) -> np.ndarray:
    """n OpenGL camera-to-worlds on a ring around the world y axis (the capture's up),
    looking at the centre, then moved into the arbitrary world frame."""
    out = []
    for i in range(n):
        a = 2 * math.pi * i / n
        eye = np.array([3 * math.cos(a), 0.5 + 0.1 * i, 3 * math.sin(a)])
        back = eye / np.linalg.norm(eye)
        right = np.cross([0.0, 1.0, 0.0], back)
        right /= np.linalg.norm(right)
        up = np.cross(back, right)
        m = np.eye(4)
        m[:3, :3] = WORLD_R @ np.stack([right, up, back], 1)
        m[:3, 3] = WORLD_S * (WORLD_R @ eye) + WORLD_T
        out.append(m)
    return np.stack(out)


def forward_c2w(n: int = N) -> np.ndarray:
    """n cameras on a 5 x 2 grid (spacing 0.25), looking along the capture's -z, each slightly
    turned (a forward-facing capture), moved into the arbitrary world frame."""
    out = []
    for i in range(n):
        turn = rot([0.3, 1.0, 0.1], 0.04 * (i % 5 - 2)) @ rot([1, 0, 0], 0.05 * (i // 5))
        m = np.eye(4)
        m[:3, :3] = WORLD_R @ turn
        m[:3, 3] = WORLD_S * (WORLD_R @ np.array([0.25 * (i % 5 - 2), 0.25 * (i // 5), 0.0]))
        m[:3, 3] += WORLD_T
        out.append(m)
    return np.stack(out)


def forward_points() -> np.ndarray:
    """Content 3 to 6 ahead of the forward cameras, in the world frame [P, 3]."""
    p = np.random.default_rng(2).uniform([-1.2, -0.8, -6.0], [1.2, 0.8, -3.0], (200, 3))
    return WORLD_S * p @ WORLD_R.T + WORLD_T


def write_ply(path: Path, pts: np.ndarray, fmt: str = "ascii", kind: str = "float") -> None:
    """A PLY point cloud with colours and an empty face element after the vertices."""
    props = "".join(f"property {kind} {k}\n" for k in "xyz")
    props += "".join(f"property uchar {c}\n" for c in ("red", "green", "blue"))
    head = f"ply\nformat {fmt} 1.0\ncomment test\nelement vertex {len(pts)}\n{props}"
    head += "element face 0\nproperty list uchar int vertex_indices\nend_header\n"
    if fmt == "ascii":
        body = "".join(f"{x:.17g} {y:.17g} {z:.17g} 10 20 30\n" for x, y, z in pts).encode()
    else:
        e = "<" if fmt == "binary_little_endian" else ">"
        t = e + {"float": "f4", "double": "f8"}[kind]
        dt = np.dtype([("x", t), ("y", t), ("z", t), ("r", "u1"), ("g", "u1"), ("b", "u1")])
        v = np.zeros(len(pts), dt)
        v["x"], v["y"], v["z"] = pts.T
        body = v.tobytes()
    path.write_bytes(head.encode() + body)


def frame_image(i: int, size=(H, W)) -> np.ndarray:
    img = np.zeros((*size, 3), np.uint8)
    img[..., 0] = 10 + 20 * i
    img[..., 1] = np.arange(size[1])[None] * 5
    return img


def write_scene(
    root: Path, n: int = N, top: dict | None = None, frame_extra=None, rig=ring_c2w
) -> Path:
    """A transforms.json scene: images/frame_XXXXX.png, global intrinsics with OPENCV distortion
    (or `top`), frames listed in reverse order (the loader sorts them), cameras rig(n)."""
    (root / "images").mkdir(parents=True)
    frames = []
    for i, m in enumerate(rig(n)):
        name = f"images/frame_{i:05d}.png"
        Image.fromarray(frame_image(i)).save(root / name)
        fr = {"file_path": name, "transform_matrix": m.tolist()}
        if frame_extra:
            fr.update(frame_extra(i))
        frames.append(fr)
    meta = dict(INTR, **OPENCV) if top is None else dict(top)
    meta["frames"] = frames[::-1]
    (root / "transforms.json").write_text(json.dumps(meta, indent=2))
    return root


@pytest.fixture
def scene_dir(tmp_path) -> Path:
    return write_scene(tmp_path / "ns")


def edit_json(root: Path, fn) -> None:
    p = root / "transforms.json"
    meta = json.loads(p.read_text())
    fn(meta)
    p.write_text(json.dumps(meta))


def opencv_pixel(c2w: np.ndarray, p: np.ndarray, k: dict, intr: dict) -> tuple[float, float]:
    """OpenCV's forward projection of world point p (cv::projectPoints, written out) for an
    OpenGL camera-to-world c2w."""
    p_gl = c2w[:3, :3].T @ (p - c2w[:3, 3])
    x, y, z = p_gl[0], -p_gl[1], -p_gl[2]  # OpenCV camera frame
    assert z > 0
    x, y = x / z, y / z
    k1, k2, p1, p2 = (k.get(n, 0.0) for n in ("k1", "k2", "p1", "p2"))
    r2 = x * x + y * y
    rad = 1 + k1 * r2 + k2 * r2 * r2
    xd = x * rad + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * rad + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return intr["fl_x"] * xd + intr["cx"], intr["fl_y"] * yd + intr["cy"]


def frame_index(name: str) -> int:
    return int(name.split("_")[1])


def miss_distance(split, p_scene: np.ndarray, pixels) -> torch.Tensor:
    """Distance from p_scene to the rays of the split's cameras through the given pixels."""
    px, py = (torch.tensor(v, dtype=torch.float64) for v in zip(*pixels))
    rays = split.cameras.rays(torch.arange(len(split)), px, py, near=0.0, far=1.0)
    v = torch.tensor(p_scene, dtype=torch.float64) - rays.origins.double()
    d = rays.directions.double()
    t = (v * d).sum(-1)
    assert (t > 0).all()
    return (v - t[:, None] * d).norm(dim=-1)


def test_loads_intrinsics_distortion_and_splits(scene_dir):
    scene = load_scene(scene_dir)
    assert scene.meta.format == "transforms_json"
    tr, te = scene.split("train"), scene.split("test")
    # sorted by file_path, every 8th held out
    assert te.names == ["frame_00000", "frame_00008"]
    assert scene.split("val").names == te.names
    assert tr.names == [f"frame_{i:05d}" for i in range(N) if i % 8]
    assert tr.images.shape == (8, H, W, 3)
    assert tr.images[0, 0, 0, 0].item() == pytest.approx(30 / 255)  # frame 1
    cams = tr.cameras
    assert cams.model == "opencv" and (cams.width, cams.height) == (W, H)
    torch.testing.assert_close(cams.fx, torch.full((8,), 20.0))
    torch.testing.assert_close(cams.cy, torch.full((8,), 8.7))
    torch.testing.assert_close(cams.distortion[0], torch.tensor([-0.12, 0.02, 0, 0, 0.001, -0.002]))


def test_normalisation_centres_orients_and_scales(scene_dir):
    scene = load_scene(scene_dir)
    c2w = torch.cat([scene.split("train").cameras.c2w, scene.split("test").cameras.c2w]).double()
    pos = c2w[:, :3, 3]
    assert pos.abs().max().item() == pytest.approx(1.0)
    assert pos.mean(0).norm() < 1e-6
    up = c2w[:, :3, 1].mean(0)
    assert (up / up.norm())[2] > 0.9999  # mean camera up is world +z
    rot = c2w[:, :3, :3]
    torch.testing.assert_close(
        rot.transpose(1, 2) @ rot,
        torch.eye(3, dtype=torch.float64).expand_as(rot),
        atol=1e-6,
        rtol=0,
    )
    # data_transform maps the file's camera positions onto the scene's
    t = np.array(scene.meta.data_transform)
    names = scene.split("train").names + scene.split("test").names
    orig = ring_c2w()[[frame_index(n) for n in names], :3, 3]
    np.testing.assert_allclose(orig @ t[:3, :3].T + t[:3, 3], pos.numpy(), atol=1e-5)
    m = scene.meta
    assert m.kind == "object" and not m.ndc
    assert m.aabb == [[-1.0] * 3, [1.0] * 3]
    assert 0 < m.near < 0.2 and m.far > 2.0


def test_rays_through_distorted_pixels_hit_the_point(scene_dir):
    """The pixel where OpenCV's model projects a 3D point: the loaded camera's ray through it
    passes through that point (after the loader's normalisation)."""
    scene = load_scene(scene_dir)
    p_world = CENTRE + WORLD_S * (WORLD_R @ np.array([0.9, 0.6, -0.7]))  # far off-axis
    t = np.array(scene.meta.data_transform)
    p_scene = t[:3, :3] @ p_world + t[:3, 3]
    split = scene.split("train")
    c2w = ring_c2w()
    pix = [opencv_pixel(c2w[frame_index(n)], p_world, OPENCV, INTR) for n in split.names]
    assert miss_distance(split, p_scene, pix).max() < 1e-5
    # the coefficients matter: a pinhole reading of the same pixels misses
    edit_json(scene_dir, lambda m: m.update(camera_model="PINHOLE"))
    plain = load_scene(scene_dir).split("train")
    assert plain.cameras.model == "pinhole"
    assert miss_distance(plain, p_scene, pix).max() > 1e-3


def test_without_normalisation_poses_are_kept(scene_dir):
    scene = load_transforms_json(scene_dir, normalize=False)
    names = scene.split("train").names
    np.testing.assert_allclose(
        scene.split("train").cameras.c2w.numpy(),
        ring_c2w()[[frame_index(n) for n in names]],
        atol=1e-5,
    )
    assert scene.meta.data_transform == []
    assert scene.meta.near < scene.meta.far


def test_split_lists(scene_dir):
    edit_json(
        scene_dir,
        lambda m: m.update(
            train_filenames=[f"images/frame_{i:05d}.png" for i in range(7)],
            test_filenames=["./images/frame_00008.png", "images/frame_00009.png"],
            val_filenames=["images/frame_00007.png"],
        ),
    )
    scene = load_scene(scene_dir)
    assert scene.split("train").names == [f"frame_{i:05d}" for i in range(7)]
    assert scene.split("test").names == ["frame_00008", "frame_00009"]
    assert scene.split("val").names == ["frame_00007"]


def test_split_list_naming_an_unknown_frame(scene_dir):
    edit_json(scene_dir, lambda m: m.update(test_filenames=["images/nope.png"]))
    with pytest.raises(DataError, match=r"transforms.json: 'test_filenames' names 'images/nope"):
        load_scene(scene_dir)


def test_empty_train_split(scene_dir):
    edit_json(scene_dir, lambda m: m.update(train_filenames=[]))
    with pytest.raises(DataError, match=r"transforms.json: 'train_filenames' is empty"):
        load_scene(scene_dir)


def test_per_frame_intrinsics_and_camera_angle_fallback(tmp_path):
    top = {"camera_angle_x": 1.0, "w": W, "h": H}
    root = write_scene(tmp_path / "s", top=top, frame_extra=lambda i: {"cx": 11.0 + 0.1 * i})
    scene = load_scene(root)
    cams = scene.split("train").cameras
    focal = 0.5 * W / math.tan(0.5)
    torch.testing.assert_close(cams.fx, torch.full((8,), focal))
    torch.testing.assert_close(cams.fy, torch.full((8,), focal))
    expect = [11.0 + 0.1 * frame_index(n) for n in scene.split("train").names]
    torch.testing.assert_close(cams.cx, torch.tensor(expect))
    torch.testing.assert_close(cams.cy, torch.full((8,), H / 2))
    assert cams.model == "pinhole" and cams.distortion is None


def test_fisheye_model(tmp_path):
    top = dict(INTR, camera_model="OPENCV_FISHEYE", k1=0.05, k2=-0.01, k3=0.002, k4=-0.001)
    scene = load_scene(write_scene(tmp_path / "s", top=top))
    cams = scene.split("train").cameras
    assert cams.model == "opencv_fisheye"
    torch.testing.assert_close(cams.distortion[0], torch.tensor([0.05, -0.01, 0.002, -0.001, 0, 0]))
    rays = cams.image_rays(0, near=0.1, far=1.0)
    assert torch.isfinite(rays.directions).all()


def test_ngp_style_distortion_without_camera_model(tmp_path):
    top = dict(INTR, k1=-0.1, p2=0.001)  # instant-ngp writes coefficients, no camera_model
    cams = load_scene(write_scene(tmp_path / "s", top=top)).split("train").cameras
    assert cams.model == "opencv"


def test_aabb_scale_gives_the_instant_ngp_box(tmp_path):
    root = write_scene(tmp_path / "s")
    edit_json(root, lambda m: m.update(aabb_scale=4))
    raw = load_transforms_json(root, normalize=False)
    half = 0.5 * 4 / 0.33
    np.testing.assert_allclose(raw.meta.aabb, [[-half] * 3, [half] * 3], rtol=1e-6)
    norm = load_scene(root)
    t = np.array(norm.meta.data_transform)
    s = np.cbrt(np.linalg.det(t[:3, :3]))
    box = np.array(norm.meta.aabb)
    # the rotated cube's bounding box: at least the scaled half size, at most sqrt(3) times it
    sizes = (box[1] - box[0]) / 2
    assert (sizes >= half * s * 0.999).all() and (sizes <= half * s * math.sqrt(3) + 1e-6).all()
    assert norm.meta.far > np.linalg.norm(box[1] - box[0]) / 2


def test_near_far_from_the_file_are_scaled(scene_dir):
    edit_json(scene_dir, lambda m: m.update(near=1.0, far=30.0))
    scene = load_scene(scene_dir)
    s = np.cbrt(np.linalg.det(np.array(scene.meta.data_transform)[:3, :3]))
    assert scene.meta.near == pytest.approx(s)
    assert scene.meta.far == pytest.approx(30 * s)


def test_downscale_uses_images_k_copies_or_memory(tmp_path):
    root = write_scene(tmp_path / "s")
    half = load_scene(root, downscale=2)
    assert half.split("train").images.shape[1:3] == (H // 2, W // 2)
    torch.testing.assert_close(half.split("train").cameras.fx, torch.full((8,), 10.0))
    # nerfstudio's images_2/ copies (here 12 x 9 solid colours) are used when present
    (root / "images_2").mkdir()
    for i in range(N):
        Image.new("RGB", (W // 2, H // 2), (i, 99, 0)).save(root / f"images_2/frame_{i:05d}.png")
    copies = load_scene(root, downscale=2).split("train")
    assert copies.images[0, 0, 0, 1].item() == pytest.approx(99 / 255)
    torch.testing.assert_close(copies.cameras.cx, torch.full((8,), 12.3 / 2))


# --- forward-facing captures -------------------------------------------------------------------


def check_forward_scene(scene, ndc_miss) -> None:
    """LLFF's treatment (NDC, recentred, nearest content at 1 / 0.75), and the rays through the
    pixels where OpenCV's model projects the true points, in the scene frame and mapped back out
    of NDC, pass through them."""
    m = scene.meta
    assert (m.ndc, m.kind, m.near, m.far) == (True, "forward", 0.0, 1.0)
    assert m.aabb == ndc_ray_box(scene.split("train").cameras) and m.format == "transforms_json"
    assert m.bounds[0] == pytest.approx(1 / 0.75)
    t = np.array(m.data_transform)
    c2w = forward_c2w()
    for split in (scene.split("train"), scene.split("test")):
        view = -split.cameras.c2w[:, :3, 2].double().mean(0)
        assert (view / view.norm())[2] < -0.99
        for p_world in forward_points()[:20]:
            p_scene = t[:3, :3] @ p_world + t[:3, 3]
            pix = [opencv_pixel(c2w[frame_index(n)], p_world, OPENCV, INTR) for n in split.names]
            assert miss_distance(split, p_scene, pix).max() < 1e-5
            px, py = (torch.tensor(v, dtype=torch.float64) for v in zip(*pix))
            p = torch.tensor(p_scene).expand(len(split), 3)
            dist, t_ndc = ndc_miss(split.cameras, torch.arange(len(split)), px, py, p)
            assert dist.max() < 1e-4 and ((t_ndc > 0) & (t_ndc < 1)).all()


def test_forward_facing_with_near_far_loads_as_ndc(tmp_path, ndc_miss):
    root = write_scene(tmp_path / "s", rig=forward_c2w)
    edit_json(root, lambda m: m.update(near=2.5 * WORLD_S, far=8.0 * WORLD_S))
    scene = load_scene(root)
    check_forward_scene(scene, ndc_miss)
    assert scene.meta.bounds[1] == pytest.approx(8.0 / 2.5 / 0.75)


@pytest.mark.parametrize(
    "fmt,kind",
    [("ascii", "float"), ("binary_little_endian", "float"), ("binary_big_endian", "double")],
)
def test_forward_facing_with_a_point_cloud_loads_as_ndc(tmp_path, ndc_miss, fmt, kind):
    """As `nerfkit process` and nerfstudio write them: ply_file_path names the sparse points."""
    root = write_scene(tmp_path / "s", rig=forward_c2w)
    write_ply(root / "sparse_pc.ply", forward_points(), fmt, kind)
    edit_json(root, lambda m: m.update(ply_file_path="sparse_pc.ply"))
    scene = load_scene(root)
    check_forward_scene(scene, ndc_miss)
    # the nearest content each frame sees: its 1st percentile depth, at 1 / 0.75 at the least
    t = np.array(scene.meta.data_transform)
    pts = forward_points() @ t[:3, :3].T + t[:3, 3]
    c2w = torch.cat([scene.split("train").cameras.c2w, scene.split("test").cameras.c2w])
    nearest = min(np.percentile((pts - c[:3, 3]) @ -c[:3, 2], 1) for c in c2w.double().numpy())
    assert nearest == pytest.approx(1 / 0.75, rel=0.05)


def test_forward_facing_without_depths_loads_as_before_with_a_warning(tmp_path):
    root = write_scene(tmp_path / "s", rig=forward_c2w)
    with pytest.warns(UserWarning, match=r"transforms.json: the cameras face one way .* without"):
        scene = load_scene(root)
    assert not scene.meta.ndc and scene.meta.kind == "forward"
    assert scene.meta.to_dict() == load_transforms_json(root, ndc=False).meta.to_dict()
    with pytest.raises(DataError, match=r"transforms.json: cannot use NDC rays: the depths"):
        load_scene(root, ndc=True)
    with pytest.raises(DataError, match=r"NDC rays are for forward-facing formats"):
        load_scene(root, format="blender", ndc=True)


def test_object_capture_loads_as_before_whatever_its_point_cloud(scene_dir, recwarn):
    before = load_scene(scene_dir).meta.to_dict()
    edit_json(scene_dir, lambda m: m.update(ply_file_path="missing.ply"))  # never read
    assert load_scene(scene_dir).meta.to_dict() == before
    assert not recwarn.list


def test_forced_ndc_with_a_point_cloud_and_several_cameras(tmp_path):
    root = write_scene(tmp_path / "s", rig=forward_c2w, frame_extra=lambda i: {"fl_x": 20 + i})
    write_ply(root / "pc.ply", forward_points())
    edit_json(root, lambda m: m.update(ply_file_path="pc.ply"))
    with pytest.warns(UserWarning, match=r"several cameras"):
        assert not load_scene(root).meta.ndc
    with pytest.raises(DataError, match=r"cannot use NDC rays: its frames have several cameras"):
        load_scene(root, ndc=True)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda p: p.write_text("hello"), r"pc.ply: not a PLY file"),
        (lambda p: p.write_bytes(p.read_bytes()[:-40]), r"pc.ply: truncated"),
        (lambda p: p.unlink(), r"pc.ply: cannot read the point cloud"),
        (
            lambda p: p.write_bytes(
                p.read_bytes().replace(b"property float z", b"property float w")
            ),
            r"pc.ply: expected a PLY format line and vertices with x, y, z",
        ),
    ],
)
def test_broken_point_cloud(tmp_path, damage, message):
    root = write_scene(tmp_path / "s", rig=forward_c2w)
    write_ply(root / "pc.ply", forward_points(), "binary_little_endian")
    edit_json(root, lambda m: m.update(ply_file_path="pc.ply"))
    damage(root / "pc.ply")
    with pytest.raises(DataError, match=message) as e:
        load_scene(root)
    assert "\n" not in str(e.value) and "ply_file_path" in str(e.value)


# --- bad input ----------------------------------------------------------------------------------


def test_json_syntax_error_names_line_and_column(scene_dir):
    (scene_dir / "transforms.json").write_text('{\n  "fl_x": 20,\n  "frames": [,]\n}\n')
    with pytest.raises(DataError, match=r"transforms.json: invalid JSON at line 3, column 14"):
        load_scene(scene_dir)


def test_missing_image(scene_dir):
    (scene_dir / "images" / "frame_00003.png").unlink()
    with pytest.raises(DataError, match=r"frame_00003.png: image not found"):
        load_scene(scene_dir)


def test_truncated_image(scene_dir):
    p = scene_dir / "images" / "frame_00004.png"
    noise = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(noise).save(p)  # incompressible: cutting the file cuts pixel data
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) * 2 // 3])
    with pytest.raises(DataError, match=r"frame_00004.png: unreadable or truncated image"):
        load_scene(scene_dir)


def test_image_size_differs_from_w_h(scene_dir):
    Image.new("RGB", (W + 2, H)).save(scene_dir / "images" / "frame_00002.png")
    with pytest.raises(DataError, match=r"frame_00002.png: size 26x18 differs from 24x18"):
        load_scene(scene_dir)


def test_per_frame_sizes_differ_within_a_split(tmp_path):
    top = {"fl_x": 20.0}
    root = write_scene(tmp_path / "s", top=top)
    Image.new("RGB", (W + 2, H)).save(root / "images" / "frame_00002.png")
    with pytest.raises(DataError, match=r"transforms.json: the train split has images of sizes"):
        load_scene(root)


@pytest.mark.parametrize(
    "value,message",
    [
        ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, float("nan")], [0, 0, 0, 1]], "non-finite"),
        ([[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "not rigid"),
        ([[1, 0, 0], [0, 1, 0]], "not a 4x4 or 3x4"),
    ],
)
def test_bad_matrix(scene_dir, value, message):
    edit_json(scene_dir, lambda m: m["frames"][0].update(transform_matrix=value))
    with pytest.raises(
        DataError, match=rf"transforms.json frame 'images/frame_00009.png'.*{message}"
    ):
        load_scene(scene_dir)


def test_empty_frames(scene_dir):
    edit_json(scene_dir, lambda m: m.update(frames=[]))
    with pytest.raises(DataError, match=r"transforms.json: 'frames' is empty"):
        load_scene(scene_dir)


def test_missing_focal(tmp_path):
    root = write_scene(tmp_path / "s", top={"w": W, "h": H})
    with pytest.raises(DataError, match=r"transforms.json frame .*needs 'fl_x'"):
        load_scene(root)


def test_unknown_camera_model(scene_dir):
    edit_json(scene_dir, lambda m: m.update(camera_model="EQUIRECTANGULAR"))
    with pytest.raises(DataError, match=r"camera_model 'EQUIRECTANGULAR' not supported"):
        load_scene(scene_dir)


# --- helpers ------------------------------------------------------------------------------------


def test_rotation_between_and_normalize_poses():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.normal(size=3), rng.normal(size=3)
        r = rotation_between(a, b)
        np.testing.assert_allclose(r @ (a / np.linalg.norm(a)), b / np.linalg.norm(b), atol=1e-9)
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-9)
    r = rotation_between(np.array([0, 0, 1.0]), np.array([0, 0, -1.0]))
    np.testing.assert_allclose(r @ [0, 0, 1.0], [0, 0, -1.0], atol=1e-9)
    assert np.linalg.det(r) == pytest.approx(1.0)
    out, t = normalize_poses(ring_c2w())
    pts = ring_c2w()[:, :3, 3]
    np.testing.assert_allclose(pts @ t[:3, :3].T + t[:3, 3], out[:, :3, 3], atol=1e-9)


def test_detection_order_prefers_blender_and_transforms_json(scene_dir, shared_data):
    assert detect_format(scene_dir) == "transforms_json"
    (scene_dir / "poses_bounds.npy").write_bytes(b"")  # transforms.json wins over LLFF
    assert detect_format(scene_dir) == "transforms_json"
    lego = shared_data / "nerf_synthetic" / "lego"
    if lego.is_dir():
        assert detect_format(lego) == "blender"
