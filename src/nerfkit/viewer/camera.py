"""Viewer cameras: viser's camera <-> nerfkit's camera-to-world, and the pinhole they render.

viser (like OpenCV) describes a camera by `wxyz`, the rotation R of `P_world = R p_camera + t`,
and `position` t, in a camera frame with +x right, +y down, looking along +z; its `fov` is the
vertical field of view in radians. nerfkit's camera-to-world is in the OpenGL frame (+x right,
+y up, looking along -z; docs/conventions.md). The two camera frames differ by a half turn about
the camera's x axis, so R_opengl = R_viser @ diag(1, -1, -1); positions are the same world points.
The viewer shows the scene in its own world frame (no change of world coordinates).

Only numpy and torch here (no viser), so this is tested without the `viewer` extra.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nerfkit.cameras import Cameras
from nerfkit.data.colmap import qvec_to_rotmat
from nerfkit.paths import rotmat_to_quat

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])
"""[3, 3] camera-frame change: R_opengl = R_opencv @ OPENCV_TO_OPENGL (its own inverse)."""


def viser_to_c2w(wxyz: np.ndarray, position: np.ndarray) -> np.ndarray:
    """A viser camera (wxyz [4], position [3]) -> camera-to-world [4, 4] (OpenGL frame)."""
    c2w = np.eye(4)
    c2w[:3, :3] = qvec_to_rotmat(np.asarray(wxyz, dtype=np.float64)) @ OPENCV_TO_OPENGL
    c2w[:3, 3] = np.asarray(position, dtype=np.float64)
    return c2w


def c2w_to_viser(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-to-world [3|4, 4] (OpenGL frame) -> viser's (wxyz [4], position [3])."""
    c2w = np.asarray(c2w, dtype=np.float64)
    return rotmat_to_quat(c2w[:3, :3] @ OPENCV_TO_OPENGL), c2w[:3, 3].copy()


def fov_y_of(focal: float, height: int) -> float:
    """viser's field of view (vertical, radians) of a focal length in pixels over `height`."""
    from nerfkit.camera_path import fov_from_focal

    return math.radians(fov_from_focal(focal, height))


def view_size(height: int, aspect: float) -> tuple[int, int]:
    """(width, height) of a view `height` pixels high at `aspect` = width / height (>= 1 px)."""
    h = max(1, int(height))
    return max(1, round(h * aspect)), h


def viewer_cameras(c2w: np.ndarray, fov_y: float, width: int, height: int) -> Cameras:
    """One pinhole camera [1] of `width` x `height` at `c2w` [4, 4] (OpenGL), square pixels,
    principal point at the image centre, vertical field of view `fov_y` (radians)."""
    from nerfkit.camera_path import focal_from_fov
    from nerfkit.video import pinhole_cameras

    pose = torch.as_tensor(np.asarray(c2w)[None], dtype=torch.float32)
    return pinhole_cameras(pose, width, height, float(focal_from_fov(math.degrees(fov_y), height)))
