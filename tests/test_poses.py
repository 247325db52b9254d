"""Pose maths (nerfkit.poses): look_at, orbit poses, averaging and recentring, the OpenCV ->
OpenGL conversion, boxes. (focus_point is tested with the orbit path in test_paths.py,
rotation_between / normalize_poses with the transforms.json loader.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfkit.poses import (
    average_pose,
    box_corners,
    far_from_box,
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
