"""Pose maths (nerfkit.poses): look_at, orbit poses, averaging and recentring, the OpenCV ->
OpenGL conversion, boxes, the forward-facing detector on known poses. (focus_point is tested
with the orbit path in test_paths.py, rotation_between / normalize_poses with the
transforms.json loader.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfkit.poses import (
    average_pose,
    box_corners,
    far_from_box,
    forward_facing_frame,
    is_forward_facing,
    look_at,
    normalize,
    opencv_w2c_to_c2w,
    orbit_pose,
    recenter_poses,
    scene_kind,
    transform_box,
    view_matrix,
)

F64 = torch.float64


def test_look_at_is_a_rotation_looking_at_the_target():
    up = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    for eye, target in [([4.0, 0.0, 0.0], [0.0, 0.0, 0.0]), ([1.0, -2.0, 3.0], [0.5, 0.5, -1.0])]:
        eye, target = torch.tensor(eye, dtype=F64), torch.tensor(target, dtype=F64)
        m = look_at(eye, target, up)
        rot = m[:3, :3]
        torch.testing.assert_close(rot.T @ rot, torch.eye(3, dtype=F64))
        assert torch.linalg.det(rot).item() == pytest.approx(1.0)
        torch.testing.assert_close(m[:3, 3], eye)
        torch.testing.assert_close(m[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=F64))
        # looks along -z at the target, camera +y has a positive component along `up`
        fwd = -rot[:, 2]
        torch.testing.assert_close(fwd, (target - eye) / (target - eye).norm())
        assert rot[:, 1] @ up > 0
        assert abs((rot[:, 0] @ up).item()) < 1e-12  # no roll: right stays horizontal


@pytest.mark.parametrize(
    "eye, up", [([0, 0, 5], [0, 0, 1]), ([5, 0, 0], [1, 0, 0]), ([0, -3, 0], [0, 1, 0])]
)
def test_look_at_along_up_is_still_a_rotation(eye, up):
    # Regression: looking along `up` when `up` is the x axis used to give NaNs.
    eye = torch.tensor(eye, dtype=F64)
    m = look_at(eye, torch.zeros(3, dtype=F64), torch.tensor(up, dtype=F64))
    rot = m[:3, :3]
    assert torch.isfinite(m).all()
    torch.testing.assert_close(rot.T @ rot, torch.eye(3, dtype=F64))
    assert torch.linalg.det(rot).item() == pytest.approx(1.0)
    torch.testing.assert_close(-rot[:, 2], -eye / eye.norm())


def test_normalize_numpy_and_torch():
    v = np.array([[3.0, 0.0, 4.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(normalize(v), [[0.6, 0.0, 0.8], [0.0, 0.0, 0.0]])
    t = normalize(torch.tensor(v))
    assert isinstance(t, torch.Tensor) and t.dtype == F64
    torch.testing.assert_close(t, torch.tensor([[0.6, 0.0, 0.8], [0.0, 0.0, 0.0]], dtype=F64))


def test_orbit_pose_looks_at_the_origin_from_its_angles():
    m = orbit_pose(math.radians(30.0), math.radians(45.0), 4.0)
    assert m.shape == (4, 4) and m.dtype == F64
    eye = m[:3, 3]
    assert eye.norm().item() == pytest.approx(4.0)
    assert math.degrees(math.asin(eye[2].item() / 4.0)) == pytest.approx(45.0)
    assert math.degrees(math.atan2(eye[1].item(), eye[0].item())) == pytest.approx(30.0)
    torch.testing.assert_close(-m[:3, 2], -eye / 4.0)  # looks along -z at the origin
    assert m[2, 1] > 0  # camera up has a +z component


def rig(n: int = 6) -> np.ndarray:
    """n cameras [n, 4, 4] side by side, looking roughly along world -x (not the frame's -z)."""
    out = []
    for i in range(n):
        m = np.eye(4)
        back, up = np.array([1.0, 0.05 * i, 0.02]), np.array([0.0, 0.0, 1.0])
        m[:3, :3] = view_matrix(back, up, np.zeros(3))[:, :3]
        m[:3, 3] = [5.0 + 0.1 * i, 2.0 + 0.3 * i, -1.0 + 0.05 * i]
        out.append(m)
    return np.stack(out)


def test_view_matrix_is_a_rotation_with_the_given_back_axis():
    m = view_matrix(np.array([0.0, 0.0, 2.0]), np.array([0.0, 1.0, 0.1]), np.array([1.0, 2, 3]))
    assert m.shape == (3, 4)
    np.testing.assert_allclose(m[:, :3].T @ m[:, :3], np.eye(3), atol=1e-12)
    assert np.linalg.det(m[:, :3]) == pytest.approx(1.0)
    np.testing.assert_allclose(m[:, 2], [0, 0, 1.0])
    np.testing.assert_allclose(m[:, 3], [1.0, 2, 3])


def test_recentred_poses_average_to_the_identity():
    c2w = rig()
    avg = average_pose(c2w)
    np.testing.assert_allclose(avg[:, 3], c2w[:, :3, 3].mean(0))
    out = recenter_poses(c2w[:, :3])  # [N, 3, 4] input works too
    assert out.shape == (6, 4, 4)
    np.testing.assert_allclose(average_pose(out), np.eye(4)[:3], atol=1e-12)
    # a rigid change of frame: relative poses are kept
    np.testing.assert_allclose(
        np.linalg.inv(out[0]) @ out[3], np.linalg.inv(c2w[0]) @ c2w[3], atol=1e-12
    )


def test_opencv_world_to_camera_becomes_opengl_camera_to_world():
    c2w = rig()
    r_cv = np.transpose(c2w[:, :3, :3] @ np.diag([1.0, -1.0, -1.0]), (0, 2, 1))
    t = -np.einsum("nij,nj->ni", r_cv, c2w[:, :3, 3])
    np.testing.assert_allclose(opencv_w2c_to_c2w(r_cv, t), c2w, atol=1e-12)
    # a point straight ahead of an OpenCV camera (+z) is along -z of the OpenGL one
    p = c2w[0, :3, 3] - 2.0 * c2w[0, :3, 2]
    np.testing.assert_allclose((r_cv[0] @ p + t[0]), [0, 0, 2.0], atol=1e-12)


def test_scene_kind():
    assert scene_kind(rig()) == "forward"
    ring = np.stack([orbit_pose(2 * math.pi * k / 8, 0.3, 4.0).numpy() for k in range(8)])
    assert scene_kind(ring) == "object"


def test_boxes():
    box = np.array([[-1.0, -2.0, -3.0], [1.0, 2.0, 3.0]])
    corners = box_corners(box)
    assert corners.shape == (8, 3) and len({tuple(c) for c in corners}) == 8
    t = np.eye(4)
    t[:3, :3] = 2.0 * np.array([[0, -1.0, 0], [1.0, 0, 0], [0, 0, 1.0]])  # x2, 90 deg about z
    t[:3, 3] = [1.0, 0.0, 0.0]
    np.testing.assert_allclose(transform_box(box, t), [[-3.0, -2.0, -6.0], [5.0, 2.0, 6.0]])
    c2w = np.eye(4)[None]
    assert far_from_box(c2w, box) == pytest.approx(math.sqrt(1 + 4 + 9))


# ----------------------------------------------------------------------------- forward-facing


def gl(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world [4, 4] (numpy) of a camera at eye looking at target."""
    t = [torch.tensor(v, dtype=F64) for v in (eye, target, up)]
    return look_at(*t).numpy()


def forward_rig(spread: float = 0.4, depth: float = 4.0) -> np.ndarray:
    """A 4 x 3 grid of cameras (half-width `spread`) in the plane y = 0, each looking at a
    slightly different point `depth` ahead along +y: a hand-held LLFF-style capture."""
    rng = np.random.default_rng(3)
    out = []
    for i in range(12):
        eye = np.array([spread * ((i % 4) / 1.5 - 1), 0.0, spread * ((i // 4) - 1) * 0.6])
        target = np.array([0.0, depth, 0.0]) + rng.normal(0, 0.05 * depth, 3)
        out.append(gl(eye, target))
    return np.stack(out)


def llff_flower(shared_data) -> tuple[np.ndarray, np.ndarray]:
    from nerfkit.data.llff import read_poses_bounds

    npy = shared_data / "nerf_llff_data" / "flower" / "poses_bounds.npy"
    if not npy.is_file():
        pytest.skip(f"{npy} not present")
    poses, bds = read_poses_bounds(npy)
    # LLFF's [down, right, back] rotation columns -> OpenGL's [right, up, back]
    c2w = np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:4]], axis=2)
    return c2w, bds


def test_flower_is_forward_facing(shared_data):
    c2w, bds = llff_flower(shared_data)
    assert is_forward_facing(c2w, bds[:, 0])
    # a similarity changes nothing: the re-framed poses with the scaled bounds also pass
    c2w2, bds2, _ = forward_facing_frame(c2w, bds)
    assert is_forward_facing(c2w2, bds2[:, 0])
    # flower's baseline is 0.28 of its nearest content: with content 2x closer it is not
    assert not is_forward_facing(c2w, bds[:, 0] / 2)


def test_synthetic_forward_rig_is_forward_facing():
    assert is_forward_facing(forward_rig(), 3.0)
    assert is_forward_facing(forward_rig(), np.full(12, 3.5))
    assert is_forward_facing(rig(), 5.0)  # side by side, looking along -x
    assert is_forward_facing(forward_rig())  # depth unknown: directions only


def test_objects_and_rings_are_not_forward_facing(shared_data):
    from nerfkit.data.synthetic import camera_poses

    orbit = camera_poses(20, 4, 4)["train"].numpy()  # the procedural object scene
    ring = np.stack([orbit_pose(2 * math.pi * k / 24, 0.2, 4.0).numpy() for k in range(24)])
    for c2w in (orbit, ring):
        assert not is_forward_facing(c2w)
        assert not is_forward_facing(c2w, 3.0)  # content 1 from the centre, cameras at 4
    lego = shared_data / "nerf_synthetic" / "lego" / "transforms_train.json"
    if lego.is_file():
        import json

        frames = json.loads(lego.read_text())["frames"]
        assert not is_forward_facing(np.array([f["transform_matrix"] for f in frames]), 2.0)


def test_a_walk_around_is_not_forward_facing():
    """Hand-held: half a circle around an object at 2.5, jittered height and aim."""
    rng = np.random.default_rng(0)
    c2w = []
    for k in range(15):
        a = math.pi * k / 14
        eye = [2.5 * math.cos(a), 2.5 * math.sin(a), 1.2 + rng.normal(0, 0.1)]
        c2w.append(gl(eye, rng.normal(0, 0.1, 3)))
    c2w = np.stack(c2w)
    assert not is_forward_facing(c2w)
    assert not is_forward_facing(c2w, 1.5)
    # even a quarter of it: 90 degrees of view directions
    assert not is_forward_facing(c2w[:8], 1.5)


def test_a_sweep_is_not_forward_facing():
    """Cameras facing a wall 2 away, spread 6 along it: one way, but no shared frustum."""
    c2w = np.stack([gl([x, 0.0, 0.0], [x, 2.0, 0.0]) for x in np.linspace(-3, 3, 10)])
    assert not is_forward_facing(c2w, 2.0)
    assert is_forward_facing(c2w)  # without depths only the directions are checked
    assert is_forward_facing(c2w, 20.0)  # the same cameras before a wall 20 away


def test_forward_facing_edge_cases():
    pair = np.stack([gl([0, 0, 0], [0, 5, 0]), gl([0.3, 0, 0], [0.2, 5, 0])])
    assert is_forward_facing(pair, 4.0)
    facing = np.stack([gl([0, -2, 0], [0, 0, 0]), gl([0, 2, 0], [0, 0, 0])])
    assert not is_forward_facing(facing, 1.0)
    assert not is_forward_facing(pair[:1], 4.0)  # one camera: no evidence
    # 30 degrees is the limit of the view directions (the docstring's rule)
    tilt = [gl([0, 0, 0], [math.sin(a), math.cos(a), 0]) for a in np.radians([-29.0, 29.0])]
    assert is_forward_facing(np.stack(tilt), 1.0)
    tilt = [gl([0, 0, 0], [math.sin(a), math.cos(a), 0]) for a in np.radians([-31.0, 31.0])]
    assert not is_forward_facing(np.stack(tilt), 1.0)


def test_forward_facing_frame_is_llffs_recipe():
    c2w = forward_rig()
    bounds = np.stack([np.linspace(3.0, 3.6, 12), np.linspace(8.0, 9.0, 12)], 1)
    out, bds, t = forward_facing_frame(c2w, bounds)
    assert out.shape == (12, 4, 4)
    assert bds.min() == pytest.approx(1 / 0.75)  # the nearest content at depth 1 / 0.75
    np.testing.assert_allclose(bds / bounds, 1 / (0.75 * 3.0))
    np.testing.assert_allclose(average_pose(out), np.eye(4)[:3], atol=1e-12)  # recentred
    # T maps camera centres and points onto the new frame, a similarity of scale bds / bounds
    np.testing.assert_allclose(c2w[:, :3, 3] @ t[:3, :3].T + t[:3, 3], out[:, :3, 3], atol=1e-12)
    s = 1 / (0.75 * 3.0)
    np.testing.assert_allclose(t[:3, :3] @ c2w[:, :3, :3] / s, out[:, :3, :3], atol=1e-12)
    assert forward_facing_frame(c2w[:, :3], bounds)[0] == pytest.approx(out)  # [N, 3, 4] too
