"""nerfkit's built-in procedural scene: analytic objects ray-traced exactly, in Blender format.

The scene (world +z up, like Blender's scenes) stands on a checkered disc-shaped platform of
radius 1.1 whose top is at z = -0.5: a shiny red sphere, a matte "beach ball" with tilted
yellow/purple bands, a green box turned about z, and a small shiny blue sphere resting on the box.
Shading is Lambertian (one directional light plus ambient) with hard shadows, and a Blinn-Phong
highlight (view dependent) on the shiny objects. Rays that miss everything are transparent, so
images composite onto white like NeRF-synthetic. Everything lies well inside the scene box
[-1.5, 1.5]^3, and is framed by cameras at radius 4 looking at the origin (near 2, far 6).

Every pixel is exact: colour is the area average of `supersample`^2 sub-pixel rays (colour and
alpha), and the depth maps hold the exact distance t along the unit-direction pixel-centre ray
to the first surface (inf where the ray hits nothing). Rays come from `Cameras.image_rays`, the
same code the loaders and training use.

The shapes, tracer and shading serve other scenes too (`objects=`): a forward-facing scene in
the LLFF layout is `nerfkit.data.synthetic_llff`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nerfkit.atomic import install_folder, staging_folder
from nerfkit.cameras import Cameras
from nerfkit.errors import DataError
from nerfkit.poses import normalize, orbit_pose

SCENE_VERSION = 1  # bump when the scene or the file layout changes: old folders regenerate
MARKER = "nerfkit_scene.json"
CAMERA_ANGLE_X = 0.6911112070083618  # NeRF-synthetic's horizontal field of view (radians)
RADIUS = 4.0  # camera distance from the origin
NEAR, FAR = 2.0, 6.0
AABB = [[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]]
TRAIN_ELEVATION_DEG = (10.0, 70.0)  # train views: uniform on this band of the upper hemisphere
VAL_ELEVATION_DEG = 45.0  # val views: a ring of azimuths at this elevation
TEST_ELEVATION_DEG = 30.0  # test views: another ring, azimuths offset by half a step

LIGHT_DIR = (0.45, -0.35, 0.82)  # towards the light (normalised where used)
AMBIENT = 0.3
DIFFUSE = 0.75
_EPS = 1e-6  # smallest accepted hit distance
_SHADOW_OFFSET = 1e-5

Colour = tuple[float, float, float]
Vec3 = tuple[float, float, float]


def _t(v: Vec3 | float, like: Tensor) -> Tensor:
    return torch.as_tensor(v, dtype=like.dtype, device=like.device)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot product of [R, k] tensors -> [R] (written out: faster than sum(-1))."""
    out = a[..., 0] * b[..., 0]
    for i in range(1, a.shape[-1]):
        out = out + a[..., i] * b[..., i]
    return out


def _safe_inverse(x: Tensor) -> Tensor:
    """1 / x with zeros nudged to +-1e-30 so slab tests see +-inf-like values, never nan."""
    tiny = torch.where(x >= 0, 1e-30, -1e-30).to(x)
    return 1.0 / torch.where(x.abs() < 1e-30, tiny, x)


def _solid_distance(q: Tensor) -> Tensor:
    """Signed distance [N] to a box from q [N, k] = |local coordinates| - half-sizes (negative
    inside): |max(q, 0)| outside, max_i q_i (minus the distance to the nearest face) inside."""
    return q.clamp(min=0).norm(dim=-1) + q.amax(-1).clamp(max=0)


def _first_hit(t_near: Tensor, t_far: Tensor) -> Tensor:
    """Distance to a convex solid from its ray interval [t_near, t_far]; inf on a miss. [R]"""
    hit = (t_near <= t_far) & (t_far > _EPS)
    t = torch.where(t_near > _EPS, t_near, t_far)
    return torch.where(hit, t, torch.full_like(t, math.inf))


@dataclass(frozen=True)
class Sphere:
    """A sphere; with `band_colour`, tilted bands alternate `colour` and `band_colour`."""

    centre: Vec3
    radius: float
    colour: Colour
    specular: float = 0.0
    shininess: float = 1.0
    band_colour: Colour | None = None
    band_axis: Vec3 = (0.3, 0.4, 0.87)
    n_bands: int = 7

    def intersect(self, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """Ray [R, 3] origins and unit directions -> distance t [R] (inf: miss), normal [R, 3]."""
        c = _t(self.centre, o)
        oc = o - c
        b = _dot(oc, d)
        disc = b * b - (_dot(oc, oc) - self.radius**2)
        sq = disc.clamp(min=0).sqrt()
        t = _first_hit(torch.where(disc >= 0, -b - sq, math.inf), -b + sq)
        p = o + torch.nan_to_num(t, posinf=0.0)[:, None] * d
        return t, (p - c) / self.radius

    def bounding_sphere(self) -> tuple[Vec3, float]:
        return self.centre, self.radius

    def distance(self, p: Tensor) -> Tensor:
        """Exact unsigned distance [N] of points p [N, 3] to the sphere's surface."""
        return ((p - _t(self.centre, p)).norm(dim=-1) - self.radius).abs()

    def albedo(self, p: Tensor, n: Tensor) -> Tensor:
        """Surface colour [R, 3] at points p [R, 3] with normals n [R, 3]."""
        col = _t(self.colour, p).expand_as(p)
        if self.band_colour is None:
            return col
        axis = normalize(_t(self.band_axis, p))
        s = _dot((p - _t(self.centre, p)) / self.radius, axis)  # in [-1, 1]
        band = torch.floor((s + 1) * 0.5 * self.n_bands).long() % 2 == 1
        return torch.where(band[:, None], _t(self.band_colour, p).expand_as(p), col)


@dataclass(frozen=True)
class Box:
    """A box of half-sizes `half` centred at `centre`, turned by `yaw` radians about +z.

    With `checker_colour`, a solid checkerboard of world-axis cubes of side `checker_size`
    alternates `colour` and `checker_colour` (a 2D checker on each axis-aligned face).
    """

    centre: Vec3
    half: Vec3
    yaw: float
    colour: Colour
    specular: float = 0.0
    shininess: float = 1.0
    checker_colour: Colour | None = None
    checker_size: float = 1.0

    def _rotation(self, like: Tensor) -> Tensor:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return _t(((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0)), like)  # local -> world

    def intersect(self, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """Ray [R, 3] origins and unit directions -> distance t [R] (inf: miss), normal [R, 3]."""
        rot, half = self._rotation(o), _t(self.half, o)
        ol, dl = (o - _t(self.centre, o)) @ rot, d @ rot  # world -> local (row vectors)
        inv = _safe_inverse(dl)
        t1, t2 = (-half - ol) * inv, (half - ol) * inv
        t = _first_hit(torch.minimum(t1, t2).amax(-1), torch.maximum(t1, t2).amin(-1))
        pl = ol + torch.nan_to_num(t, posinf=0.0)[:, None] * dl
        axis = (pl.abs() / half).argmax(-1)
        nl = torch.nn.functional.one_hot(axis, 3).to(pl) * torch.sign(pl)
        return t, nl @ rot.T

    def bounding_sphere(self) -> tuple[Vec3, float]:
        return self.centre, math.sqrt(sum(h * h for h in self.half))

    def distance(self, p: Tensor) -> Tensor:
        """Exact unsigned distance [N] of points p [N, 3] to the box's surface (`_solid_distance`
        of the local coordinates' excess over the half-sizes)."""
        pl = (p - _t(self.centre, p)) @ self._rotation(p)  # world -> local (row vectors)
        return _solid_distance(pl.abs() - _t(self.half, p)).abs()

    def albedo(self, p: Tensor, n: Tensor) -> Tensor:
        """Surface colour [R, 3] at points p [R, 3] with normals n [R, 3]."""
        col = _t(self.colour, p).expand_as(p)
        if self.checker_colour is None:
            return col
        odd = torch.floor(p / self.checker_size).long().sum(-1) % 2 == 1
        return torch.where(odd[:, None], _t(self.checker_colour, p).expand_as(p), col)


@dataclass(frozen=True)
class Platform:
    """A flat vertical cylinder (a disc-shaped slab) with a checkerboard on its top face."""

    centre_xy: tuple[float, float]
    radius: float
    z_bottom: float
    z_top: float
    colour: Colour
    checker_colour: Colour
    checker_size: float
    side_colour: Colour
    specular: float = 0.0
    shininess: float = 1.0

    def intersect(self, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """Ray [R, 3] origins and unit directions -> distance t [R] (inf: miss), normal [R, 3]."""
        cxy = _t(self.centre_xy, o)
        oxy, dxy = o[:, :2] - cxy, d[:, :2]
        a, b = _dot(dxy, dxy), _dot(oxy, dxy)
        cc = _dot(oxy, oxy) - self.radius**2
        disc = b * b - a * cc
        sq = disc.clamp(min=0).sqrt()
        a_safe = a.clamp(min=1e-300)
        inf = torch.full_like(a, math.inf)
        parallel = a < 1e-24  # ray along z: inside the infinite cylinder for all t, or never
        tc0 = torch.where(parallel, torch.where(cc <= 0, -inf, inf), (-b - sq) / a_safe)
        tc1 = torch.where(parallel, torch.where(cc <= 0, inf, -inf), (-b + sq) / a_safe)
        missed = ~parallel & (disc < 0)
        tc0, tc1 = torch.where(missed, inf, tc0), torch.where(missed, -inf, tc1)
        inv = _safe_inverse(d[:, 2])
        tz0, tz1 = (self.z_bottom - o[:, 2]) * inv, (self.z_top - o[:, 2]) * inv
        t_near = torch.maximum(tc0, torch.minimum(tz0, tz1))
        t_far = torch.minimum(tc1, torch.maximum(tz0, tz1))
        t = _first_hit(t_near, t_far)
        p = o + torch.nan_to_num(t, posinf=0.0)[:, None] * d
        rho = (p[:, :2] - cxy).norm(dim=-1)
        d_top, d_bottom = (p[:, 2] - self.z_top).abs(), (p[:, 2] - self.z_bottom).abs()
        d_side = (rho - self.radius).abs()
        radial = torch.cat([(p[:, :2] - cxy) / rho.clamp(min=1e-12)[:, None], 0 * a[:, None]], -1)
        n = torch.where(
            (torch.minimum(d_top, d_bottom) < d_side)[:, None],
            torch.stack([0 * a, 0 * a, torch.where(d_top < d_bottom, 1.0, -1.0).to(a)], -1),
            radial,
        )
        return t, n

    def bounding_sphere(self) -> tuple[Vec3, float]:
        half_h = 0.5 * (self.z_top - self.z_bottom)
        centre = (*self.centre_xy, 0.5 * (self.z_top + self.z_bottom))
        return centre, math.sqrt(self.radius**2 + half_h**2)

    def distance(self, p: Tensor) -> Tensor:
        """Exact unsigned distance [N] of points p [N, 3] to the slab's surface (top, bottom and
        side): `_solid_distance` in the (radial, axial) half-plane, where the solid is a
        rectangle."""
        rho = (p[:, :2] - _t(self.centre_xy, p)).norm(dim=-1)
        half_h = 0.5 * (self.z_top - self.z_bottom)
        axial = (p[:, 2] - 0.5 * (self.z_top + self.z_bottom)).abs()
        return _solid_distance(torch.stack([rho - self.radius, axial - half_h], -1)).abs()

    def albedo(self, p: Tensor, n: Tensor) -> Tensor:
        xy = (p[:, :2] - _t(self.centre_xy, p)) / self.checker_size
        odd = torch.floor(xy).long().sum(-1) % 2 == 1
        top = torch.where(odd[:, None], _t(self.checker_colour, p), _t(self.colour, p))
        return torch.where((n[:, 2] > 0.5)[:, None], top, _t(self.side_colour, p).expand_as(p))


@dataclass(frozen=True)
class Environment(Sphere):
    """A far, self-lit backdrop: the inside of a sphere (rays from inside hit its far side).

    Its colour is not shaded (no light, no shadow, casts none): `colour` and `band_colour`
    blended by a coarse `detail_texture` of the view direction, times medium and fine ones, so
    it has detail at three scales (blobs of about 1, 0.2 and 0.05 radians).
    """

    def albedo(self, p: Tensor, n: Tensor) -> Tensor:
        """Emitted colour [R, 3] at points p [R, 3] on the sphere (normals n [R, 3] unused)."""
        u = (p - _t(self.centre, p)) / self.radius  # unit direction from the centre
        coarse = detail_texture(0.25 * u)[:, None]
        medium, fine = detail_texture(u + 7.0), detail_texture(4.0 * u + 13.0)
        other = self.colour if self.band_colour is None else self.band_colour
        base = _t(self.colour, p) * (1 - coarse) + _t(other, p) * coarse
        return base * (0.5 + 0.3 * medium + 0.2 * fine)[:, None]


PLATFORM = Platform(
    centre_xy=(0.0, 0.0),
    radius=1.1,
    z_bottom=-0.62,
    z_top=-0.5,
    colour=(0.93, 0.90, 0.82),
    checker_colour=(0.20, 0.36, 0.62),
    checker_size=0.275,
    side_colour=(0.35, 0.33, 0.36),
)
RED_SPHERE = Sphere(
    centre=(-0.35, -0.4, -0.05),
    radius=0.45,
    colour=(0.85, 0.08, 0.06),
    specular=0.7,
    shininess=60.0,
)
BEACH_BALL = Sphere(
    centre=(0.55, -0.35, -0.18),
    radius=0.32,
    colour=(0.98, 0.80, 0.10),
    specular=0.15,
    shininess=20.0,
    band_colour=(0.50, 0.18, 0.72),
)
GREEN_BOX = Box(
    centre=(0.1, 0.45, -0.2),
    half=(0.3, 0.3, 0.3),
    yaw=math.radians(25.0),
    colour=(0.16, 0.66, 0.26),
)
BLUE_SPHERE = Sphere(
    centre=(0.1, 0.45, 0.28),
    radius=0.18,
    colour=(0.12, 0.30, 0.95),
    specular=0.8,
    shininess=80.0,
)
Shape = Platform | Sphere | Box  # an Environment is a Sphere
OBJECTS: tuple[Shape, ...] = (
    PLATFORM,
    RED_SPHERE,
    BEACH_BALL,
    GREEN_BOX,
    BLUE_SPHERE,
)


def trace(
    origins: Tensor, directions: Tensor, objects: tuple[Shape, ...] = OBJECTS
) -> tuple[Tensor, Tensor, Tensor]:
    """First hit of each ray with the scene `objects` (default: the object scene).

    Args:
        origins, directions: [R, 3], directions unit length.
    Returns:
        t [R] distance to the first hit (inf: miss), normals [R, 3] facing the ray (zero on a
        miss), object index [R] into `objects` (-1 on a miss).
    """
    r = origins.shape[0]
    t = origins.new_full((r,), math.inf)
    n = torch.zeros_like(origins)
    idx = torch.full((r,), -1, dtype=torch.long, device=origins.device)
    for k, obj in enumerate(objects):
        # cull with the object's bounding sphere; intersect only the rays that may hit it
        centre, radius = obj.bounding_sphere()
        oc = origins - _t(centre, origins)
        b = _dot(oc, directions)
        disc = b * b - (_dot(oc, oc) - radius**2)
        cand = ((disc >= 0) & (-b + disc.clamp(min=0).sqrt() > _EPS)).nonzero()[:, 0]
        if cand.numel() == 0:
            continue
        tk, nk = obj.intersect(origins[cand], directions[cand])
        closer = tk < t[cand]
        sel = cand[closer]
        t[sel], n[sel], idx[sel] = tk[closer], nk[closer], k
    n = torch.where((_dot(n, directions) > 0)[:, None], -n, n)
    return t, n, idx


def surface_distance(points: Tensor, objects: tuple[Shape, ...] = OBJECTS) -> Tensor:
    """Exact unsigned distance [N] of points [N, 3] to the nearest surface of the scene
    `objects` (default: the object scene): the minimum of the objects' `distance`.

    This is the distance to the union of the objects' surfaces; where objects only touch (as in
    OBJECTS, all standing on the platform's top) that is the scene's visible surface, but where
    one object reaches into another the buried part of its surface counts too.
    """
    return torch.stack([obj.distance(points) for obj in objects]).amin(0)


# fixed plane waves of `detail_texture`: directions, frequencies (cycles per unit) and phases
_DETAIL_RNG = np.random.default_rng(20240611)
_DETAIL_WAVES = _DETAIL_RNG.normal(size=(24, 3))
_DETAIL_WAVES = (
    _DETAIL_WAVES
    / np.linalg.norm(_DETAIL_WAVES, axis=1, keepdims=True)
    * _DETAIL_RNG.uniform(3.0, 14.0, size=(24, 1))
    * 2
    * math.pi
)
_DETAIL_PHASES = _DETAIL_RNG.uniform(0.0, 2 * math.pi, size=24)


def detail_texture(p: Tensor) -> Tensor:
    """A solid (3D) blotchy texture in [0, 1] at world points p [R, 3] -> [R].

    A fixed sum of 24 plane waves (periods 0.07..0.33 units) squashed by tanh into contrasty,
    non-repeating blobs: structure-from-motion finds many distinct features on it, unlike on the
    plain scene's uniform colours and repeating checkers.
    """
    k = torch.as_tensor(_DETAIL_WAVES, dtype=p.dtype, device=p.device)
    phase = torch.as_tensor(_DETAIL_PHASES, dtype=p.dtype, device=p.device)
    s = torch.sin(p @ k.T + phase).sum(-1) / math.sqrt(0.5 * len(phase))  # ~unit variance
    return 0.5 + 0.5 * torch.tanh(1.5 * s)


def shade(
    origins: Tensor,
    directions: Tensor,
    detail: float = 0.0,
    objects: tuple[Shape, ...] = OBJECTS,
) -> tuple[Tensor, Tensor]:
    """Colour of each ray's first hit with the scene `objects` (default: the object scene).

    Args:
        origins, directions: [R, 3], directions unit length.
        detail: strength in [0, 1] of `detail_texture` multiplied into every surface's albedo
            (0: the plain scene).
    Returns:
        rgb [R, 3] in [0, 1] (zero on a miss) and t [R] (inf on a miss).
    """
    t, n, idx = trace(origins, directions, objects)
    rgb = torch.zeros_like(origins)
    hit = (idx >= 0).nonzero()[:, 0]
    if hit.numel() == 0:
        return rgb, t
    d, n, k = directions[hit], n[hit], idx[hit]  # shade only the rays that hit something
    p = origins[hit] + t[hit, None] * d
    albedo = torch.empty_like(p)
    for j, obj in enumerate(objects):
        m = (k == j).nonzero()[:, 0]
        if m.numel():
            albedo[m] = obj.albedo(p[m], n[m])
    if detail > 0:
        albedo = albedo * (1.0 - detail + detail * detail_texture(p))[:, None]
    ks = _t([obj.specular for obj in objects], p)[k]
    shininess = _t([obj.shininess for obj in objects], p)[k]
    light = normalize(_t(LIGHT_DIR, p))
    ndl = _dot(n, light).clamp(min=0)
    lit = ndl > 0
    facing = lit.nonzero()[:, 0]
    casters = tuple(obj for obj in objects if not isinstance(obj, Environment))
    if facing.numel():  # hard shadows: is anything between the point and the light?
        so = p[facing] + _SHADOW_OFFSET * n[facing]
        lit[facing] = torch.isinf(trace(so, light.expand_as(so), casters)[0])
    spec = ks * _dot(n, normalize(light - d)).clamp(min=0) ** shininess
    lit_f = lit.to(p)
    col = albedo * (AMBIENT + DIFFUSE * ndl * lit_f)[:, None] + (spec * lit_f)[:, None]
    if len(casters) < len(objects):  # an Environment is self-lit: its colour is its albedo
        emits = torch.tensor([isinstance(obj, Environment) for obj in objects], device=k.device)
        col = torch.where(emits[k][:, None], albedo, col)
    rgb[hit] = col.clamp(0, 1)
    return rgb, t


def _camera(c2w: Tensor, width: int, height: int, focal: float) -> Cameras:
    m = torch.as_tensor(c2w, dtype=torch.float64).reshape(-1, 4)
    if m.shape[0] == 3:
        m = torch.cat([m, m.new_tensor([[0.0, 0.0, 0.0, 1.0]])])

    def full(v: float) -> Tensor:
        return torch.full((1,), float(v), dtype=torch.float64)

    return Cameras(
        c2w=m[None],
        fx=full(focal),
        fy=full(focal),
        cx=full(width / 2),
        cy=full(height / 2),
        width=width,
        height=height,
    )


def render_ground_truth(
    c2w: Tensor,
    width: int,
    height: int,
    focal: float,
    supersample: int = 1,
    detail: float = 0.0,
    objects: tuple[Shape, ...] = OBJECTS,
) -> tuple[Tensor, Tensor]:
    """Render a procedural scene exactly from any pinhole camera (principal point centred).

    Args:
        c2w: [4, 4] (or [3, 4]) camera-to-world, OpenGL frame. width, height: image size in
            pixels; focal: focal length in pixels. supersample: each pixel averages
            supersample^2 sub-pixel rays (colour and coverage). detail: strength in [0, 1]
            of the extra solid texture on every surface (`detail_texture`; 0: the plain scene,
            as generate_scene writes it). objects: the scene (default: the object scene;
            `nerfkit.data.synthetic_llff.FORWARD_OBJECTS`: the forward-facing one).
    Returns:
        rgba [H, W, 4] float32, straight (not premultiplied) colour with alpha = coverage, and
        depth [H, W] float32: the distance along the unit pixel-centre ray to the first hit,
        inf where the ray hits nothing.
    """
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    rays = _camera(c2w, width * s, height * s, focal * s).image_rays(0, NEAR, FAR)
    rgb, t = shade(rays.origins, rays.directions, detail, objects)
    alpha = torch.isfinite(t).to(rgb)[:, None]
    premult = torch.cat([rgb * alpha, alpha], -1).reshape(height, s, width, s, 4).mean((1, 3))
    a = premult[..., 3:]
    rgb_out = torch.where(a > 0, premult[..., :3] / a.clamp(min=1e-12), 0.0)
    rgba = torch.cat([rgb_out.clamp(0, 1), a], -1).float()
    if s == 1:
        depth = t.reshape(height, width)
    else:
        r1 = _camera(c2w, width, height, focal).image_rays(0, NEAR, FAR)
        depth = trace(r1.origins, r1.directions, objects)[0].reshape(height, width)
    return rgba, depth.float()


def camera_poses(n_train: int, n_val: int, n_test: int, seed: int = 0) -> dict[str, Tensor]:
    """Camera-to-world matrices [N, 4, 4] (float64) per split, all at radius 4 looking at 0.

    Train views are drawn (seeded) uniformly over the band of elevations TRAIN_ELEVATION_DEG;
    val and test views are two fixed rings, different from each other and from the train views,
    so evaluation sees novel views.
    """
    rng = np.random.default_rng(seed)
    lo, hi = (math.sin(math.radians(e)) for e in TRAIN_ELEVATION_DEG)
    az = rng.uniform(0.0, 2 * math.pi, n_train)
    el = np.arcsin(rng.uniform(lo, hi, n_train))  # uniform in area over the band
    train = [orbit_pose(float(a), float(e), RADIUS) for a, e in zip(az, el)]
    val = [
        orbit_pose(2 * math.pi * k / n_val, math.radians(VAL_ELEVATION_DEG), RADIUS)
        for k in range(n_val)
    ]
    test = [
        orbit_pose(2 * math.pi * (k + 0.5) / n_test, math.radians(TEST_ELEVATION_DEG), RADIUS)
        for k in range(n_test)
    ]
    empty = torch.zeros(0, 4, 4, dtype=torch.float64)
    return {
        name: torch.stack(v) if v else empty
        for name, v in (("train", train), ("val", val), ("test", test))
    }


def _split_files(root: Path, split: str) -> list[Path] | None:
    """The files a split's JSON names, or None if the JSON is missing or unreadable."""
    try:
        with open(root / f"transforms_{split}.json", encoding="utf-8") as f:
            frames = json.load(f)["frames"]
        return [root / (fr["file_path"] + ".png") for fr in frames] + [
            root / fr["depth_file_path"] for fr in frames
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def marker_matches(root: Path, params: dict) -> bool:
    """True if `root`'s MARKER file records exactly `params`."""
    try:
        with open(root / MARKER, encoding="utf-8") as f:
            return json.load(f).get("params") == params
    except (OSError, ValueError, AttributeError):
        return False


def write_marker(root: Path, generator: str, params: dict) -> None:
    """Write MARKER (the generator's module and `params`); write it last: it marks completion."""
    with open(root / MARKER, "w", encoding="utf-8") as f:
        json.dump({"generator": generator, "params": params}, f, indent=1)


def counts(**checks: tuple[float, int]) -> dict[str, int]:
    """{name: int(value)} for checks name=(value, least); DataError unless every value is an
    integer >= its least."""
    for name, (v, least) in checks.items():
        if int(v) != v or v < least:
            raise DataError(f"synthetic scene: {name} must be an integer >= {least}, got {v}")
    return {name: int(v) for name, (v, _) in checks.items()}


def install_scene(
    out_dir: Path,
    params: dict,
    write: Callable[[Path, dict], None],
    is_complete: Callable[[Path, dict], bool],
) -> Path:
    """Write a procedural scene folder atomically, unless it is already there.

    `is_complete(folder, params)` says whether a folder holds the finished scene made with
    exactly `params`; then nothing is written. Else `write(folder, params)` builds the scene in
    a staging folder beside `out_dir` (writing MARKER last), which then replaces `out_dir`: a
    folder made by an older version or with other parameters is replaced; any other non-empty
    folder is an error (DataError).

    Returns:
        out_dir.
    """
    out_dir = Path(out_dir)
    if is_complete(out_dir, params):
        return out_dir
    if out_dir.exists():
        if not out_dir.is_dir():
            raise DataError(f"{out_dir}: exists and is not a folder; choose another output path")
        if any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
            raise DataError(
                f"{out_dir}: folder is not empty and holds no nerfkit synthetic scene; "
                "choose another output path or empty it"
            )
    with staging_folder(out_dir) as tmp:
        write(tmp, params)
        try:
            install_folder(tmp, out_dir)  # an outdated scene there is replaced
        except OSError:  # fine if another writer of the same scene installed it meanwhile
            if not is_complete(out_dir, params):
                raise
    return out_dir


def _is_complete(root: Path, params: dict) -> bool:
    """True if `root` holds a finished scene generated with exactly `params`."""
    if not marker_matches(root, params):
        return False
    for split in ("train", "val", "test"):
        n = params[f"n_{split}"]
        if n == 0:
            continue
        files = _split_files(root, split)
        if files is None or len(files) != 2 * n or not all(p.is_file() for p in files):
            return False
    return True


def write_png8(path: Path, rgba: Tensor) -> None:
    """Write [H, W, 3|4] float in [0, 1] as an 8-bit PNG (rounded to nearest; fast, not atomic:
    for files inside a staging folder)."""
    from PIL import Image

    arr = np.round(rgba.numpy() * 255.0).clip(0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, compress_level=1)


def generate_scene(
    out_dir: Path,
    resolution: int = 100,
    n_train: int = 100,
    n_val: int = 8,
    n_test: int = 8,
    seed: int = 0,
    supersample: int = 2,
) -> Path:
    """Write the procedural scene in Blender format (read it with `load_blender`).

    Writes transforms_{train,val,test}.json (a split with zero views is left out), RGBA PNGs
    `<split>/r_<i>.png` of `resolution` x `resolution` pixels, exact depth maps
    `<split>/r_<i>_depth.npy` (float32 [H, W], inf on background) and `nerfkit_scene.json`
    with the parameters. The folder appears atomically (built beside it, then renamed); calling
    again with the same parameters on a complete folder returns at once. A folder made by an
    older version or with other parameters is replaced; any other non-empty folder is an error.

    Returns:
        out_dir.
    """
    sizes = counts(
        resolution=(resolution, 1), n_train=(n_train, 1), n_val=(n_val, 0), n_test=(n_test, 0)
    )
    ss = counts(supersample=(supersample, 1))
    params = {"version": SCENE_VERSION, **sizes, "seed": int(seed), **ss}
    return install_scene(Path(out_dir), params, _write_scene, _is_complete)


def _write_scene(root: Path, params: dict) -> None:
    ss = params["supersample"]

    def render(split: str, i: int, c2w: Tensor, res: int, focal: float) -> tuple[Tensor, Tensor]:
        return render_ground_truth(c2w, res, res, focal, ss)

    write_blender_splits(root, params, render)
    write_marker(root, "nerfkit.data.synthetic", params)


ViewRenderer = Callable[[str, int, Tensor, int, float], tuple[Tensor, Tensor]]
"""(split, index, c2w [4, 4], resolution, focal) -> (rgba [H, W, 4], depth [H, W])."""


def write_blender_splits(root: Path, params: dict, render: ViewRenderer) -> None:
    """Write the splits of a procedural object scene in Blender format into `root`.

    Cameras from `camera_poses` (params n_train, n_val, n_test, seed); each view is rendered by
    `render` at params["resolution"] square pixels with NeRF-synthetic's field of view, written
    as `<split>/r_<i>.png` (8-bit RGBA) and `<split>/r_<i>_depth.npy`, and listed in
    `transforms_<split>.json` (a split with zero views is left out). MARKER is not written.
    """
    res = params["resolution"]
    focal = 0.5 * res / math.tan(0.5 * CAMERA_ANGLE_X)
    poses = camera_poses(params["n_train"], params["n_val"], params["n_test"], params["seed"])
    for split, c2ws in poses.items():
        if len(c2ws) == 0:
            continue
        (root / split).mkdir()
        frames = []
        for i, c2w in enumerate(c2ws):
            rgba, depth = render(split, i, c2w, res, focal)
            write_png8(root / split / f"r_{i}.png", rgba)
            np.save(root / split / f"r_{i}_depth.npy", depth.numpy().astype(np.float32))
            frames.append(
                {
                    "file_path": f"./{split}/r_{i}",
                    "depth_file_path": f"{split}/r_{i}_depth.npy",
                    "transform_matrix": c2w.tolist(),
                }
            )
        meta = {
            "camera_angle_x": CAMERA_ANGLE_X,
            "near": NEAR,
            "far": FAR,
            "aabb": AABB,
            "frames": frames,
        }
        with open(root / f"transforms_{split}.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
