"""Camera paths: the orbit keeps the training cameras' distance and elevation around their focus."""

from __future__ import annotations

import math

import torch

from nerfkit.paths import orbit_path
from nerfkit.poses import focus_point, look_at


def _hemisphere_cameras(center: torch.Tensor, radius: float, elev_deg: float) -> torch.Tensor:
    up = torch.tensor([0.0, 0.0, 1.0])
    poses = []
    for k in range(12):
        az, el = 2 * math.pi * k / 12, math.radians(elev_deg)
        eye = center + radius * torch.tensor(
            [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
        )
        poses.append(look_at(eye, center, up))
    return torch.stack(poses)


def test_focus_point_is_where_cameras_look() -> None:
    center = torch.tensor([0.3, -0.2, 0.1])
    c2w = _hemisphere_cameras(center, 4.0, 30.0)
    torch.testing.assert_close(focus_point(c2w), center, atol=1e-5, rtol=0)


def test_orbit_radius_elevation_and_gaze() -> None:
    center = torch.tensor([0.3, -0.2, 0.1])
    c2w = _hemisphere_cameras(center, 4.0, 30.0)
    path = orbit_path(c2w, n_frames=24)
    assert path.shape == (24, 4, 4)
    offsets = path[:, :3, 3] - center
    torch.testing.assert_close(offsets.norm(dim=-1), torch.full((24,), 4.0), atol=1e-4, rtol=0)
    elev = torch.rad2deg(torch.asin(offsets[:, 2] / offsets.norm(dim=-1)))
    torch.testing.assert_close(elev, torch.full((24,), 30.0), atol=0.5, rtol=0)
    # every frame looks at the centre (along -z of the camera)
    gaze = -path[:, :3, 2]
    to_center = -offsets / offsets.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(gaze, to_center, atol=1e-4, rtol=0)
    # a full turn: azimuths evenly spread
    az = torch.atan2(offsets[:, 1], offsets[:, 0])
    steps = torch.remainder(az.roll(-1) - az, 2 * math.pi)
    torch.testing.assert_close(steps, torch.full((24,), 2 * math.pi / 24), atol=1e-4, rtol=0)
