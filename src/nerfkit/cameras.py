"""Cameras and rays.

Conventions (fixed, see docs/conventions.md): camera-to-world matrices in the OpenGL/Blender
frame (camera +x right, +y up, looking along -z); pixel (i, j) = (column, row) is sampled at its
centre (i + 0.5, j + 0.5); ray directions are unit length (except in NDC); t is distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor

from nerfkit.render.ndc import ndc_rays

CAMERA_MODELS = ("pinhole", "opencv", "opencv_fisheye")


@dataclass
class Rays:
    """A batch of R rays: x(t) = origins + t * directions for t in [near, far].

    origins, directions: [R, 3]; near, far: [R]; viewdirs: [R, 3] unit viewing directions used
    for view-dependent colour (differ from `directions` only in NDC); time: [R] for dynamic scenes.
    camera: [R] int64 index of each ray's image in its split (training batches: per-image
    appearance); rig_camera: [R] int64 id of the rig camera that took it (`Split.rig_cameras`).
    """

    origins: Tensor
    directions: Tensor
    near: Tensor
    far: Tensor
    viewdirs: Tensor | None = None
    time: Tensor | None = None
    camera: Tensor | None = None
    rig_camera: Tensor | None = None

    def __post_init__(self) -> None:
        if self.viewdirs is None:
            self.viewdirs = self.directions / self.directions.norm(dim=-1, keepdim=True)

    def __len__(self) -> int:
        return self.origins.shape[0]

    def _map(self, fn) -> Rays:  # noqa: ANN001
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = None if v is None else fn(v)
        return Rays(**kw)

    def __getitem__(self, idx: slice | Tensor) -> Rays:
        return self._map(lambda v: v[idx])

    def to(self, device: torch.device | str) -> Rays:
        return self._map(lambda v: v.to(device, non_blocking=True))

    @staticmethod
    def at_points(
        points: Tensor, viewdirs: Tensor | None = None, time: float | None = None
    ) -> Rays:
        """Rays [P] of length zero starting at points [P, 3], travelling along viewdirs [P, 3]
        (None, or a zero row where no direction is defined: +z), at `time` (dynamic methods):
        what a method evaluates to read its field at single points (`Method.point_density`)."""
        up = torch.zeros_like(points)
        up[:, 2] = 1.0
        if viewdirs is None:
            d = up
        else:
            d = torch.where(viewdirs.norm(dim=-1, keepdim=True) > 0, viewdirs, up)
        zeros = points.new_zeros(points.shape[0])
        t = None if time is None else torch.full_like(zeros, float(time))
        return Rays(points, d, zeros, zeros, time=t)

    @staticmethod
    def cat(parts: list[Rays]) -> Rays:
        kw = {}
        for f in fields(Rays):
            vals = [getattr(p, f.name) for p in parts]
            kw[f.name] = None if vals[0] is None else torch.cat(vals, dim=0)
        return Rays(**kw)


@dataclass
class Cameras:
    """N pinhole (optionally distorted) cameras sharing one image size.

    c2w: [N, 4, 4] camera-to-world, OpenGL frame. fx, fy, cx, cy: [N] in pixels.
    width, height: image size in pixels. model: one of CAMERA_MODELS. distortion: [N, 6] as
    (k1, k2, k3, k4, p1, p2) (OpenCV: radial k1..k3 and tangential p1, p2; fisheye: k1..k4).
    """

    c2w: Tensor
    fx: Tensor
    fy: Tensor
    cx: Tensor
    cy: Tensor
    width: int
    height: int
    model: str = "pinhole"
    distortion: Tensor | None = field(default=None)

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, idx: slice | Tensor | list[int]) -> Cameras:
        return replace(
            self,
            c2w=self.c2w[idx],
            fx=self.fx[idx],
            fy=self.fy[idx],
            cx=self.cx[idx],
            cy=self.cy[idx],
            distortion=None if self.distortion is None else self.distortion[idx],
        )

    def scaled(self, factor: float) -> Cameras:
        """Cameras for images downscaled by `factor` (sizes rounded down, pixel pitch exact)."""
        # New pixel i covers old pixels [i k, (i + 1) k): coordinates (and so fx, cx) divide by k
        # exactly; the rows/columns cut by rounding down lie at the far edges and move nothing.
        # (Scaling by w / width instead would change the pitch when the size is not divisible.)
        w, h = int(self.width // factor), int(self.height // factor)
        return replace(
            self,
            fx=self.fx / factor,
            fy=self.fy / factor,
            cx=self.cx / factor,
            cy=self.cy / factor,
            width=w,
            height=h,
        )

    def camera_directions(self, cam: Tensor, px: Tensor, py: Tensor) -> Tensor:
        """Directions in the camera frame (z = -1) through pixel positions.

        Args:
            cam: [R] camera indices; px, py: [R] continuous pixel coordinates (column, row),
                pixel centres at +0.5.
        Returns:
            [R, 3] un-normalised directions (x, y, -1) in the OpenGL camera frame.
        """
        x = (px - self.cx[cam]) / self.fx[cam]
        y = (py - self.cy[cam]) / self.fy[cam]
        if self.model != "pinhole" and self.distortion is not None:
            from nerfkit.distortion import undistort_points

            x, y = undistort_points(x, y, self.distortion[cam], self.model)
        return torch.stack([x, -y, -torch.ones_like(x)], dim=-1)

    def rays(
        self,
        cam: Tensor,
        px: Tensor,
        py: Tensor,
        near: float,
        far: float,
        ndc: bool = False,
        time: Tensor | None = None,
    ) -> Rays:
        """World-space rays through pixel positions of the given cameras.

        Args:
            cam: [R] camera indices; px, py: [R] pixel coordinates (use index + 0.5 for centres).
            near, far: bounds; ndc: map rays into NDC (forward-facing scenes), which makes the
                bounds [0, 1] and keeps the original directions as viewdirs.
        Returns:
            Rays of length R.
        """
        cam = cam.to(self.c2w.device)
        d_cam = self.camera_directions(cam, px.to(self.fx), py.to(self.fx))
        rot = self.c2w[cam, :3, :3]  # [R, 3, 3]
        d = torch.einsum("rij,rj->ri", rot, d_cam)
        d = d / d.norm(dim=-1, keepdim=True)
        o = self.c2w[cam, :3, 3].expand_as(d)
        r = d.shape[0]
        if ndc:
            o_ndc, d_ndc = ndc_rays(o, d, float(self.fx[0]), self.width, self.height, near=1.0)
            return Rays(o_ndc, d_ndc, d.new_zeros(r), d.new_ones(r), viewdirs=d, time=time)
        return Rays(o.contiguous(), d, d.new_full((r,), near), d.new_full((r,), far), time=time)

    def image_rays(
        self, k: int, near: float, far: float, ndc: bool = False, time: float | None = None
    ) -> Rays:
        """All H*W rays of camera k in row-major order (pixel centres)."""
        ys, xs = torch.meshgrid(
            torch.arange(self.height, dtype=torch.float32),
            torch.arange(self.width, dtype=torch.float32),
            indexing="ij",
        )
        px, py = xs.reshape(-1) + 0.5, ys.reshape(-1) + 0.5
        cam = torch.full_like(px, k, dtype=torch.long)
        t = None if time is None else torch.full_like(px, time)
        return self.rays(cam, px, py, near, far, ndc=ndc, time=t)


def ndc_ray_box(cameras: Cameras) -> list[list[float]]:
    """The box [[xmin, ymin, zmin], [xmax, ymax, zmax]] holding every NDC ray of `cameras`.

    NDC x and y in [-1, 1] are only the frustum of a camera at the reference pose: cameras moved
    or turned from it see beyond, so a fixed [-1, 1]^3 box clips the edges of their images (on
    LLFF flower ~16 % of the training rays leave it at mid-depth). An NDC ray is a straight
    segment from t = 0 (near plane, z = -1) to t = 1 (infinity, z = +1), and both ends are
    projective images of the pixel grid, so their extremes lie on the image border: the box of
    the border pixels' ray ends holds every ray.

    Args:
        cameras: N cameras (forward-facing scene, NDC with the near plane at depth 1).
    Returns:
        the box as nested lists [2][3].
    """
    w, h = cameras.width, cameras.height
    xs = torch.arange(w, dtype=torch.float32) + 0.5
    ys = torch.arange(h, dtype=torch.float32) + 0.5
    px = torch.cat([xs, xs, torch.full((h,), 0.5), torch.full((h,), w - 0.5)])
    py = torch.cat([torch.full((w,), 0.5), torch.full((w,), h - 0.5), ys, ys])
    lo = torch.full((3,), math.inf)
    hi = torch.full((3,), -math.inf)
    for k in range(len(cameras)):
        r = cameras.rays(torch.full_like(px, k, dtype=torch.long), px, py, 0.0, 1.0, ndc=True)
        ends = torch.cat([r.origins, r.origins + r.directions])
        lo = torch.minimum(lo, ends.min(0).values)
        hi = torch.maximum(hi, ends.max(0).values)
    return [lo.tolist(), hi.tolist()]
