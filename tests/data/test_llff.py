"""The LLFF loader: a synthetic poses_bounds.npy written here, bad inputs, and the real flower."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.data import load_scene
from nerfkit.data.llff import load_llff
from nerfkit.errors import DataError
from nerfkit.paths import spiral_path

H, W, F = 48, 64, 50.0  # full-size image and focal stored in the npy
N = 10
BOUNDS = (4.0, 16.0)


def rot(axis, angle) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


# the capture's world frame is arbitrary: the rig below is rotated and moved by this
WORLD_R = rot([0.2, 1.0, -0.4], 0.9)
WORLD_T = np.array([3.0, -1.0, 2.0])
TARGET = np.array([0.1, -0.2, -9.0])  # a point in front of the rig (rig frame)


def rig_c2w() -> np.ndarray:
    """N OpenGL camera-to-worlds on a 5 x 2 grid at z = 0, looking roughly along -z."""
    out = []
    for i in range(N):
        m = np.eye(4)
        m[:3, :3] = rot([0.3, 1.0, 0.1], 0.05 * (i % 5 - 2)) @ rot([1, 0, 0], 0.04 * (i // 5))
        m[:3, 3] = [0.25 * (i % 5 - 2), 0.3 * (i // 5), 0.02 * i]
        w = np.eye(4)
        w[:3, :3], w[:3, 3] = WORLD_R, WORLD_T
        out.append(w @ m)
    return np.stack(out)


def to_llff_rows(c2w: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world -> poses_bounds.npy rows ([down, right, back] columns)."""
    rows = []
    for m in c2w:
        r = m[:3, :3]
        mat = np.concatenate([-r[:, 1:2], r[:, 0:1], r[:, 2:3], m[:3, 3:4], [[H], [W], [F]]], 1)
        rows.append(np.concatenate([mat.reshape(-1), BOUNDS]))
    return np.stack(rows)


def world_target() -> np.ndarray:
    return WORLD_R @ TARGET + WORLD_T


def write_llff(root: Path, factors=(4,), n_images: int = N) -> Path:
    root.mkdir(parents=True)
    np.save(root / "poses_bounds.npy", to_llff_rows(rig_c2w()))
    for f in factors:
        d = root / ("images" if f == 1 else f"images_{f}")
        d.mkdir()
        for i in range(n_images):
            img = np.zeros((H // f, W // f, 3), np.uint8)
            img[..., 0] = 20 * i
            img[..., 1] = np.arange(W // f)[None] * 3
            Image.fromarray(img).save(d / f"image{i:03d}.png")
    return root


@pytest.fixture
def llff(tmp_path) -> Path:
    return write_llff(tmp_path / "scene")


def project_llff(i: int, p: np.ndarray, factor: int) -> tuple[float, float]:
    """Pixel of world point p in view i, read straight from the LLFF row convention
    ([down, right, back] columns; the camera looks along -back), for images_<factor>."""
    row = to_llff_rows(rig_c2w())[i]
    m = row[:15].reshape(3, 5)
    d = p - m[:, 3]
    down, right, depth = d @ m[:, 0], d @ m[:, 1], -(d @ m[:, 2])
    assert depth > 0
    return (W / 2 + F * right / depth) / factor, (H / 2 + F * down / depth) / factor


def closest_point(o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares point nearest to lines o + t d ([R, 3] each); returns it and the distances."""
    o, d = o.double(), d.double() / d.double().norm(dim=-1, keepdim=True)
    proj = torch.eye(3, dtype=torch.float64) - d[:, :, None] * d[:, None, :]
    q = torch.linalg.solve(proj.sum(0), (proj @ o[:, :, None]).sum(0))[:, 0]
    v = q - o
    dist = (v - (v * d).sum(-1, keepdim=True) * d).norm(dim=-1)
    return q, dist


def test_loads_splits_intrinsics_and_meta(llff):
    scene = load_scene(llff, downscale=4)
    assert scene.meta.format == "llff"
    tr, te = scene.split("train"), scene.split("test")
    assert te.names == ["image000", "image008"]
    assert scene.split("val").names == te.names
    assert tr.names == [f"image{i:03d}" for i in range(N) if i % 8]
    assert tr.images.shape == (8, H // 4, W // 4, 3)
    assert (tr.cameras.width, tr.cameras.height) == (W // 4, H // 4)
    torch.testing.assert_close(tr.cameras.fx, torch.full((8,), F / 4))
    torch.testing.assert_close(tr.cameras.cx, torch.full((8,), W / 8))
    # image i has red 20 i
    assert te.images[1, 0, 0, 0].item() == pytest.approx(160 / 255)
    m = scene.meta
    assert (m.ndc, m.kind, m.near, m.far) == (True, "forward", 0.0, 1.0)
    # the box holds every training ray (not just the reference frustum [-1, 1]^3)
    box = torch.tensor(m.aabb)
    torch.testing.assert_close(box[:, 2], torch.tensor([-1.0, 1.0]), atol=1e-5, rtol=0)
    for k in range(len(tr)):
        r = tr.cameras.image_rays(k, 0.0, 1.0, ndc=True)
        for t in (0.0, 0.5, 1.0):
            p = r.origins + t * r.directions
            assert (p >= box[0] - 1e-5).all() and (p <= box[1] + 1e-5).all()
    assert m.focal == pytest.approx(F / 4)
    # bounds rescaled so that the nearest is 1 / 0.75
    assert m.bounds[0] == pytest.approx(1 / 0.75)
    assert m.bounds[1] == pytest.approx(BOUNDS[1] / BOUNDS[0] / 0.75)
    assert len(m.train_c2w) == 8


def test_recentred_frame_looks_along_minus_z(llff):
    scene = load_scene(llff, downscale=4)
    c2w = torch.cat([scene.split("train").cameras.c2w, scene.split("test").cameras.c2w])
    rot = c2w[:, :3, :3]
    torch.testing.assert_close(
        rot.transpose(1, 2) @ rot, torch.eye(3).expand_as(rot), atol=1e-5, rtol=0
    )
    assert torch.det(rot).min() > 0.999
    view = -c2w[:, :3, 2]
    mean = view.mean(0) / view.mean(0).norm()
    assert mean[2] < -0.999  # the average pose looks along -z ...
    assert c2w[:, :3, 3].mean(0).norm() < 1e-5  # ... from the origin
    assert c2w[:, :3, 1].mean(0)[1] > 0.99  # and is upright


def test_rays_meet_at_the_point_the_poses_project(llff):
    """Rays through the pixels where each view sees one 3D point (projected with the raw LLFF
    convention) must all pass through one point, in front of the cameras and beyond the NDC near
    plane; in NDC that point lies on every NDC ray with t' in (0, 1)."""
    scene = load_scene(llff, downscale=4)
    split = scene.split("train")
    views = [int(n[5:]) for n in split.names]
    px, py = zip(*(project_llff(i, world_target(), 4) for i in views))
    cam = torch.arange(len(views))
    px, py = torch.tensor(px), torch.tensor(py)
    rays = split.cameras.rays(cam, px, py, near=0.0, far=1.0)
    q, dist = closest_point(rays.origins, rays.directions)
    assert dist.max() < 1e-4
    assert ((q - rays.origins.double()) @ torch.tensor([0.0, 0, -1], dtype=torch.float64) > 1).all()
    # the same point in NDC, by the paper's formula, lies on the NDC rays
    f = split.cameras.fx[0].item()
    w, h = split.cameras.width, split.cameras.height
    q_ndc = torch.stack([-f / (w / 2) * q[0] / q[2], -f / (h / 2) * q[1] / q[2], 1 + 2 / q[2]])
    nd = split.cameras.rays(cam, px, py, near=0.0, far=1.0, ndc=True)
    torch.testing.assert_close(nd.origins[:, 2], torch.full((len(cam),), -1.0))
    o, d = nd.origins.double(), nd.directions.double()
    t = (q_ndc[2] - o[:, 2]) / d[:, 2]
    assert ((t > 0) & (t < 1)).all()
    torch.testing.assert_close(o + t[:, None] * d, q_ndc.expand(len(cam), 3), atol=1e-4, rtol=0)


def test_default_downscale_uses_smallest_available_folder(llff):
    with pytest.warns(UserWarning, match="images_4"):
        scene = load_scene(llff)
    assert scene.split("train").images.shape[1:3] == (H // 4, W // 4)


def test_downscale_from_a_finer_folder(tmp_path):
    root = write_llff(tmp_path / "s", factors=(1, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = load_scene(root)
        assert full.split("train").images.shape[1:3] == (H, W)
        eight = load_scene(root, downscale=8)  # images_4 halved in memory
        two = load_scene(root, downscale=2)  # images/ halved in memory
    assert eight.split("train").images.shape[1:3] == (H // 8, W // 8)
    assert eight.meta.focal == pytest.approx(F / 8)
    assert two.meta.focal == pytest.approx(F / 2)


def test_downscale_without_a_folder(llff):
    with pytest.raises(DataError, match=r"no image folder for --downscale 3 \(have: images_4\)"):
        load_scene(llff, downscale=3)


def test_no_ndc_mode(llff):
    scene = load_llff(llff, downscale=4, ndc=False)
    assert not scene.meta.ndc
    assert scene.meta.near == pytest.approx(0.9 / 0.75)
    assert scene.meta.far == pytest.approx(BOUNDS[1] / BOUNDS[0] / 0.75)


def test_spiral_path(llff):
    scene = load_scene(llff, downscale=4)
    path = spiral_path(scene.meta.train_c2w, scene.meta.bounds, n_frames=30)
    assert path.shape == (30, 4, 4)
    rot = path[:, :3, :3]
    torch.testing.assert_close(
        rot.transpose(1, 2) @ rot, torch.eye(3).expand_as(rot), atol=1e-5, rtol=0
    )
    assert (path[:, 2, 2] > 0.9).all()  # back axis +z: looking along -z, into the scene
    assert path[:, :3, 3].norm(dim=-1).max() < 1.0


# --- bad input ----------------------------------------------------------------------------------


def test_pose_count_differs_from_image_count(llff):
    (llff / "images_4" / "image009.png").unlink()
    with pytest.raises(DataError, match=r"poses_bounds.npy: 10 poses but 9 images"):
        load_scene(llff, downscale=4)


def test_no_image_folder(tmp_path):
    root = write_llff(tmp_path / "s", factors=())
    with pytest.raises(DataError, match=r"poses_bounds.npy but no images"):
        load_scene(root)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda a: a.__setitem__((3, 7), np.nan), r"poses_bounds.npy: row 3 has non-finite"),
        (lambda a: a.__setitem__((2, 0), a[2, 0] * 2), r"poses_bounds.npy: row 2 rotation is not"),
        (lambda a: a.__setitem__((1, 15), -1.0), r"poses_bounds.npy: bounds .* must be positive"),
    ],
)
def test_bad_matrix_or_bounds(llff, damage, message):
    arr = np.load(llff / "poses_bounds.npy")
    damage(arr)
    np.save(llff / "poses_bounds.npy", arr)
    with pytest.raises(DataError, match=message):
        load_scene(llff, downscale=4)


def test_wrong_shape(llff):
    np.save(llff / "poses_bounds.npy", np.zeros((N, 15)))
    with pytest.raises(DataError, match=r"poses_bounds.npy: shape \(10, 15\), expected N x 17"):
        load_scene(llff, downscale=4)


def test_not_an_npy(llff):
    (llff / "poses_bounds.npy").write_text("hello")
    with pytest.raises(DataError, match=r"poses_bounds.npy: cannot read"):
        load_scene(llff, downscale=4)


def test_images_of_different_sizes(llff):
    Image.new("RGB", (10, 10)).save(llff / "images_4" / "image004.png")
    with pytest.raises(DataError, match=r"image004.png: size 10x10 differs"):
        load_scene(llff, downscale=4)


def test_truncated_image(llff):
    p = llff / "images_4" / "image005.png"
    noise = np.random.default_rng(0).integers(0, 256, (H // 4, W // 4, 3), dtype=np.uint8)
    Image.fromarray(noise).save(p)  # incompressible: cutting the file cuts pixel data
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) * 2 // 3])
    with pytest.raises(DataError, match=r"image005.png: unreadable or truncated"):
        load_scene(llff, downscale=4)


def test_images_of_the_wrong_aspect(tmp_path):
    root = write_llff(tmp_path / "s")
    for p in (root / "images_4").iterdir():
        Image.new("RGB", (16, 16)).save(p)
    with pytest.raises(DataError, match=r"does not match the aspect"):
        load_scene(root, downscale=4)


# --- the real flower scene (developers' ../shared/data) -----------------------------------------


@pytest.fixture(scope="module")
def flower(shared_data):
    root = shared_data / "nerf_llff_data" / "flower"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    # only images_8/ ships: `--data` alone picks it (with a warning), as --downscale 8 would
    with pytest.warns(UserWarning, match="using images_8/"):
        return load_scene(root)


def test_real_flower(flower):
    assert flower.meta.format == "llff"  # detected
    assert len(flower.split("train")) + len(flower.split("test")) == 34
    assert flower.split("test").names == [f"image{i:03d}" for i in (0, 8, 16, 24, 32)]
    assert flower.split("val").names == flower.split("test").names
    tr = flower.split("train")
    assert tr.images.shape[1:] == (378, 504, 3)
    assert tr.cameras.fx[0].item() == pytest.approx(3575.0586 / 8, rel=1e-5)
    assert flower.meta.ndc and flower.meta.kind == "forward"
    assert flower.meta.bounds[0] == pytest.approx(1 / 0.75)
    # every camera looks along -z, towards the scene in front of the recentred frame
    view = -tr.cameras.c2w[:, :3, 2]
    assert (view[:, 2] < -0.95).all()
    assert (view.mean(0) / view.mean(0).norm())[2] < -0.999
    # NDC rays start on the near plane and span [0, 1]
    rays = tr.cameras.image_rays(0, near=0.0, far=1.0, ndc=True)
    torch.testing.assert_close(rays.origins[:, 2], torch.full((378 * 504,), -1.0))
    assert rays.near.max() == 0 and rays.far.min() == 1


def test_forward_facing_train_and_spiral_video(llff, tmp_path):
    """NDC training and the default render path (a spiral) through the command line."""
    from helpers import TINY_NERF, run_cli

    run = tmp_path / "run"
    args = ["train", "--data", llff, "--downscale", "4", "--output", run, "--max-steps", "3",
            "--batch-rays", "32", "--val-every", "0", "--no-progress", "--method", "nerf",
            *TINY_NERF]  # fmt: skip
    assert run_cli(args) == 0
    video = tmp_path / "spiral.mp4"
    assert run_cli(["render", run, "--frames", "4", "--output", video]) == 0
    assert video.stat().st_size > 0 and (tmp_path / "spiral_depth.mp4").is_file()


def test_real_flower_short_training_improves_test_psnr(flower, tmp_path):
    """A short NeRF run on flower (NDC rays) clearly improves PSNR on a held-out view."""
    from nerfkit.config import TrainConfig
    from nerfkit.data.io import downscale_image
    from nerfkit.methods.nerf import NeRFConfig
    from nerfkit.metrics import image_metrics
    from nerfkit.train import Trainer

    cfg = TrainConfig(
        data=Path(flower.meta.data_path), output=tmp_path / "run", method="nerf",
        max_steps=200, batch_rays=256, lr=2e-3, lr_final=2e-4, val_every=0, ckpt_every=0,
        progress=False,
        nerf=NeRFConfig(width=64, depth=3, skip=1, n_coarse=16, n_fine=16, pos_freqs=6),
    )  # fmt: skip
    trainer = Trainer(cfg, flower)
    test = flower.split("test")
    cams = test.cameras.scaled(4)  # 126 x 94: enough to see the improvement, fast to render
    true = downscale_image(test.images[1], 4)

    def psnr() -> float:
        out = trainer.method.render_image(cams, 1, 0.0, 1.0, ndc=True)
        return image_metrics(out.rgb, true)["psnr"]

    before = psnr()
    trainer.fit()
    after = psnr()
    assert after > before + 3.0, (before, after)
