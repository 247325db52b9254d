"""Procedural dynamic scenes with exact ground truth, in the D-NeRF and the Nerfies layouts.

Three scenes, each an object within [-1.5, 1.5]^3 (world +z up) on a transparent background,
defined by a signed distance function (SDF) of the point and the time t in [0, 1]:

- `split`: a blob that splits in two and merges back: two spheres of radius SPLIT_RADIUS joined
  by a polynomial smooth minimum (blend width SPLIT_BLEND), centres at (+-s(t), 0, 0) with
  s(t) = SPLIT_AMPLITUDE sin(pi t): one round blob (radius SPLIT_RADIUS + SPLIT_BLEND / 4) at
  t = 0 and 1, two separate blobs while s(t) > SPLIT_RADIUS + SPLIT_BLEND / 4.
- `mouth`: an opening mouth: a sphere of radius MOUTH_RADIUS cut at z = 0 into two halves that
  turn about a hinge (the line through (-MOUTH_RADIUS, 0, 0) along y, at the back) by +-theta/2,
  theta(t) = MOUTH_MAX_ANGLE ((sin(pi t) - c) / (1 - c))^2 where positive (else 0), c =
  sin(pi MOUTH_CLOSED): closed (the cut is a cavity of zero thickness) until t = MOUTH_CLOSED,
  then the cavity opens and shows the flat inner faces (dark red, chequered), and closes again
  at 1 - MOUTH_CLOSED.
- `ring`: a ball (radius BALL_RADIUS) moving along x from -BALL_TRAVEL to +BALL_TRAVEL through
  a static ring (a torus about the x axis): motion without topology change, the control. The
  ball clears the ring's tube by 0.18 units (RING_MAJOR - RING_MINOR - BALL_RADIUS).
- `wide_ring`: the same motion through a wider, thinner ring with a smaller ball
  (`RINGS["wide_ring"]`): 0.45 units of clearance, so a deformation that must move the ball
  and hold the ring still has 2.5 times the room to change between them (the control without
  a near approach).

Shading is Lambertian with the light and ambient of the static scenes
(`nerfkit.data.synthetic`), without shadows, so colour depends on the surface point only (no
view dependence). Every moving part carries a smooth chequer-like texture attached to its own
local frame, so its motion is visible and trackable. Images are traced exactly: SDF sphere
tracing (`trace_sdf`, to 1e-5, then Newton steps on the ray in float64 for the exact hit),
colour and alpha averaged over supersample^2 rays per pixel, depth the distance along the unit
pixel-centre ray (inf where nothing is hit). Each scene folder holds `events.json`: the time
interval in which the topology differs from t = 0 (`event_interval`; for ring, the interval
in which the ball is inside the ring), so benchmarks can score the frames around the change.

Rigs (the cameras, all looking at the origin, field of view CAMERA_ANGLE_X):
- "teleport" (D-NeRF): training frame i at time i / (N - 1) from a random camera on the upper
  hemisphere (radius 4, `nerfkit.data.synthetic.camera_poses`); test frames at times halfway
  between training times, from other random cameras.
- "vrig" (Nerfies' validation rig): a left and a right camera RIG_BASELINE apart, moving
  smoothly around the object over time (`rig_poses`); the left camera's frames are the
  training frames, the right camera's at n_test evenly spread training instants the test ones.
- "interp" (HyperNeRF's interpolation protocol): one moving camera, 2N - 1 frames; the even
  frames train, n_test of the odd ones (evenly spread) are held out.

Layouts:
- "blender" (D-NeRF): transforms_{train,val,test}.json (val = test) with camera_angle_x, near
  2, far 6, aabb and per frame `time`, `transform_matrix`, `depth_file_path`; RGBA PNGs
  `<split>/r_<i>.png` and float32 depth maps `<split>/r_<i>_depth.npy` (as
  `nerfkit.data.synthetic` writes them). Loads with `nerfkit.data.blender`.
- "nerfies": the Nerfies/HyperNeRF layout (`nerfkit.data.nerfies`): RGB PNGs composited on
  white (a phone has no alpha) in rgb/1x/ and area-downscaled by 2 in rgb/2x/; camera/<id>.json
  (world-to-camera `orientation` in the OpenCV frame, `position`, intrinsics, zero distortion)
  in a file frame that is the scene frame scaled by 1 / NERFIES_SCALE about NERFIES_CENTER;
  scene.json (`center`, `scale`, `near`, `far`, the capture tools' `bbox`: the box the content
  sweeps, in file units, and nerfkit's `background`: the images show the content on white,
  nothing else); dataset.json (`ids`, `train_ids`, `val_ids`); metadata.json (`warp_id`,
  `appearance_id`, `time_id`, `camera_id`: 0 left or single, 1 right); points.npy: points of
  the static surfaces (what Nerfies' background loss holds still: the ring; the split and
  mouth scenes have no static surface and no points.npy). Time ids are integers on a grid
  of step 1 / (2 (N - 1)) (teleport, interp) or 1 / (N - 1) (vrig).

`generate_dynamic_scene` writes a scene folder atomically and caches it like every procedural
scene (`nerfkit.data.synthetic.install_scene`).
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

from nerfkit.data import synthetic
from nerfkit.data.io import downscale_image
from nerfkit.data.synthetic import (
    AMBIENT,
    CAMERA_ANGLE_X,
    DIFFUSE,
    FAR,
    LIGHT_DIR,
    NEAR,
    RADIUS,
    _camera,
    camera_poses,
    write_png8,
)
from nerfkit.errors import DataError
from nerfkit.perf import one_thread
from nerfkit.poses import normalize, orbit_pose

DYNAMIC_SCENE_VERSION = 1  # bump when a scene or the file layout changes: old folders regenerate
SCENES = ("split", "mouth", "ring", "wide_ring")
LAYOUTS = ("blender", "nerfies")
RIGS = ("teleport", "vrig", "interp")
AABB = [[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]]

SPLIT_RADIUS = 0.45
SPLIT_AMPLITUDE = 0.7
SPLIT_BLEND = 0.2  # k of the polynomial smooth minimum
MOUTH_RADIUS = 0.5
MOUTH_MAX_ANGLE = math.radians(60.0)
MOUTH_CLOSED = 0.25  # the mouth is closed for t <= MOUTH_CLOSED and t >= 1 - MOUTH_CLOSED
RING_MAJOR = 0.6  # the torus about the x axis: radius of its centre circle ...
RING_MINOR = 0.12  # ... and of its tube
BALL_RADIUS = 0.3
BALL_TRAVEL = 1.0  # the ball's centre moves along x from -BALL_TRAVEL to +BALL_TRAVEL


@dataclass(frozen=True)
class Ring:
    """A ring scene's geometry: the torus (centre-circle radius `major`, tube radius `minor`)
    and the ball's radius."""

    major: float
    minor: float
    ball_radius: float

    @property
    def clearance(self) -> float:
        """The smallest distance between the ball and the ring as the ball passes through."""
        return self.major - self.minor - self.ball_radius


RINGS = {"ring": Ring(RING_MAJOR, RING_MINOR, BALL_RADIUS), "wide_ring": Ring(0.8, 0.1, 0.25)}

TEXTURE_FREQ = 12.0  # radians per unit of the chequer-like textures (cells ~0.26 units)
TRACE_EPS = 1e-5

RIG_BASELINE = 0.4  # distance between the vrig's left and right cameras (scene units)
RIG_START_DEG = 255.0  # azimuth of the moving camera at t = 0 (45 degrees at t = 0.5)
RIG_SWEEP_DEG = 300.0  # azimuth it covers from t = 0 to t = 1
RIG_ELEVATION_DEG = (15.0, 45.0)  # its elevation oscillates once between these
NERFIES_CENTER = (0.3, -0.2, 0.1)  # the Nerfies layout's file frame: file = center + scene / scale
NERFIES_SCALE = 0.5
POINTS_PER_SURFACE = 2000

Colour = tuple[float, float, float]
SPLIT_COLOURS: tuple[Colour, Colour] = ((0.95, 0.55, 0.15), (0.20, 0.35, 0.85))
MOUTH_COLOURS: tuple[Colour, Colour] = ((0.30, 0.70, 0.35), (0.95, 0.88, 0.30))
MOUTH_INSIDE: tuple[Colour, Colour] = ((0.40, 0.03, 0.06), (0.80, 0.25, 0.25))
BALL_COLOURS: tuple[Colour, Colour] = ((0.90, 0.15, 0.15), (0.95, 0.85, 0.20))
RING_COLOURS: tuple[Colour, Colour] = ((0.88, 0.88, 0.92), (0.50, 0.20, 0.60))


# ----------------------------------------------------------------------------- motion


def split_offset(t: float) -> float:
    """Distance s(t) of the split scene's sphere centres from the origin along x."""
    return SPLIT_AMPLITUDE * math.sin(math.pi * t)


def mouth_angle(t: float) -> float:
    """Opening angle theta(t) (radians) between the mouth's two halves (0: closed)."""
    c = math.sin(math.pi * MOUTH_CLOSED)
    u = max(0.0, math.sin(math.pi * t) - c) / (1.0 - c)
    return MOUTH_MAX_ANGLE * u * u


def ball_centre(t: float) -> tuple[float, float, float]:
    """Centre of the ring scene's ball at time t."""
    return (BALL_TRAVEL * (2.0 * t - 1.0), 0.0, 0.0)


def event_interval(scene: str) -> tuple[float, float]:
    """The times (t0, t1) in which `scene`'s topology differs from t = 0: the blobs are apart
    (split), the mouth is open (mouth), the ball overlaps the ring's slab |x| < minor + ball
    radius (the ring scenes, where nothing changes topology)."""
    _check_choice("scene", scene, SCENES)
    if scene == "split":
        t0 = math.asin((SPLIT_RADIUS + SPLIT_BLEND / 4) / SPLIT_AMPLITUDE) / math.pi
    elif scene == "mouth":
        t0 = MOUTH_CLOSED
    else:
        g = RINGS[scene]
        t0 = 0.5 - (g.minor + g.ball_radius) / (2.0 * BALL_TRAVEL)
    return t0, 1.0 - t0


# ----------------------------------------------------------------------------- SDFs


def _vec(v: tuple[float, ...], like: Tensor) -> Tensor:
    return torch.tensor(v, dtype=like.dtype, device=like.device)


def sphere_sdf(p: Tensor, centre: tuple[float, float, float], radius: float) -> Tensor:
    """Signed distance [P] from points p [P, 3] to a sphere."""
    return (p - _vec(centre, p)).norm(dim=-1) - radius


def torus_sdf(p: Tensor, major: float, minor: float) -> Tensor:
    """Signed distance [P] from points p [P, 3] to the torus about the x axis centred at the
    origin (centre circle of radius `major` in the yz plane, tube radius `minor`)."""
    rho = torch.sqrt(p[:, 1] ** 2 + p[:, 2] ** 2)
    return torch.sqrt((rho - major) ** 2 + p[:, 0] ** 2) - minor


def smooth_min(a: Tensor, b: Tensor, k: float) -> Tensor:
    """Polynomial smooth minimum of a, b [P] over a blend width k: min(a, b) - h^2 k / 4 with
    h = max(k - |a - b|, 0) / k (a lower bound of min(a, b); equal where |a - b| >= k)."""
    h = (k - (a - b).abs()).clamp(min=0) / k
    return torch.minimum(a, b) - h * h * (k / 4)


def _split_centres(t: float) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    s = split_offset(t)
    return (-s, 0.0, 0.0), (s, 0.0, 0.0)


def split_sdf(p: Tensor, t: float) -> Tensor:
    """The split scene's SDF [P] at points p [P, 3] and time t."""
    ca, cb = _split_centres(t)
    return smooth_min(sphere_sdf(p, ca, SPLIT_RADIUS), sphere_sdf(p, cb, SPLIT_RADIUS), SPLIT_BLEND)


def hinge_turn(p: Tensor, phi: float) -> Tensor:
    """Points p [P, 3] turned by phi radians about the mouth's hinge (the line through
    (-MOUTH_RADIUS, 0, 0) along y); phi > 0 turns +x towards -z. Returns [P, 3]."""
    hinge = _vec((-MOUTH_RADIUS, 0.0, 0.0), p)
    x, y, z = (p - hinge).unbind(-1)
    c, s = math.cos(phi), math.sin(phi)
    return hinge + torch.stack([c * x + s * z, y, -s * x + c * z], -1)


def mouth_frames(p: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """Points p [P, 3] in the closed frames of the mouth's upper and lower halves: each half
    turned back about the hinge by -+theta(t)/2 (the upper half's face then lies on z = 0).
    Returns ([P, 3], [P, 3])."""
    half = 0.5 * mouth_angle(t)
    return hinge_turn(p, half), hinge_turn(p, -half)


def _half_sdfs(p: Tensor, t: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The mouth's halves: (upper SDF, lower SDF, upper local points, lower local points with
    z mirrored so both faces are z = 0 seen from z < 0)."""
    qu, ql = mouth_frames(p, t)
    ql = ql * _vec((1.0, 1.0, -1.0), p)
    du = torch.maximum(qu.norm(dim=-1) - MOUTH_RADIUS, -qu[:, 2])
    dl = torch.maximum(ql.norm(dim=-1) - MOUTH_RADIUS, -ql[:, 2])
    return du, dl, qu, ql


def mouth_sdf(p: Tensor, t: float) -> Tensor:
    """The mouth scene's SDF [P] at points p [P, 3] and time t (a bound: exact off the rims)."""
    du, dl, _, _ = _half_sdfs(p, t)
    return torch.minimum(du, dl)


def ring_sdf(p: Tensor, t: float, ring: Ring = RINGS["ring"]) -> Tensor:
    """A ring scene's SDF [P] at points p [P, 3] and time t (the `ring` scene by default)."""
    return torch.minimum(
        torus_sdf(p, ring.major, ring.minor), sphere_sdf(p, ball_centre(t), ring.ball_radius)
    )


def scene_sdf(scene: str, p: Tensor, t: float) -> Tensor:
    """Signed distance [P] of points p [P, 3] to `scene` (one of SCENES) at time t."""
    _check_choice("scene", scene, SCENES)
    if scene in RINGS:
        return ring_sdf(p, t, RINGS[scene])
    return {"split": split_sdf, "mouth": mouth_sdf}[scene](p, t)


def scene_box(scene: str, t: float, margin: float = 0.02) -> Tensor:
    """An axis-aligned box [2, 3] (float64, [min, max]) holding `scene` at time t, `margin`
    larger on every side (the mouth's extent is that of 4000 points on each half's sphere,
    within 1e-3 of the exact one)."""
    _check_choice("scene", scene, SCENES)
    if scene == "split":
        r = SPLIT_RADIUS + SPLIT_BLEND / 4
        s = split_offset(t) + r
        box = [[-s, -r, -r], [s, r, r]]
    elif scene == "mouth":
        pts = torch.randn(4000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        pts = MOUTH_RADIUS * normalize(pts)
        half = 0.5 * mouth_angle(t)
        both = torch.cat(
            [hinge_turn(pts[pts[:, 2] >= 0], -half), hinge_turn(pts[pts[:, 2] <= 0], half)]
        )
        box = [both.amin(0).tolist(), both.amax(0).tolist()]
    else:
        g = RINGS[scene]
        x, r = ball_centre(t)[0], g.major + g.minor
        box = [
            [min(-g.minor, x - g.ball_radius), -r, -r],
            [max(g.minor, x + g.ball_radius), r, r],
        ]
    return torch.tensor(box, dtype=torch.float64) + torch.tensor([[-margin], [margin]])


def swept_box(scene: str, n_times: int = 65, margin: float = 0.05) -> Tensor:
    """The box [2, 3] (float64, scene units) holding `scene` at all times: the union of
    `scene_box` at n_times times, `margin` larger on every side."""
    boxes = torch.stack([scene_box(scene, float(t), 0.0) for t in np.linspace(0, 1, n_times)])
    return torch.stack([boxes[:, 0].amin(0) - margin, boxes[:, 1].amax(0) + margin])


# ----------------------------------------------------------------------------- colour


def _texture(q: Tensor, colours: tuple[Colour, Colour]) -> Tensor:
    """A smooth 3D chequer [P, 3] blending two colours at local points q [P, 3]."""
    f = TEXTURE_FREQ
    m = 0.5 + 0.5 * torch.sin(f * q[:, 0]) * torch.sin(f * q[:, 1]) * torch.sin(f * q[:, 2])
    c0, c1 = _vec(colours[0], q), _vec(colours[1], q)
    return c0 + (c1 - c0) * m[:, None]


def scene_albedo(scene: str, p: Tensor, t: float) -> Tensor:
    """Surface colour [P, 3] of `scene` at surface points p [P, 3] and time t, from the
    texture of the part each point lies on, in that part's own frame."""
    if scene == "split":
        ca, cb = _split_centres(t)
        da, db = sphere_sdf(p, ca, SPLIT_RADIUS), sphere_sdf(p, cb, SPLIT_RADIUS)
        w = (0.5 + 0.5 * (db - da) / SPLIT_BLEND).clamp(0, 1)[:, None]  # the smooth min's mix
        return w * _texture(p - _vec(ca, p), SPLIT_COLOURS) + (1 - w) * _texture(
            p - _vec(cb, p), SPLIT_COLOURS
        )
    if scene == "mouth":
        du, dl, qu, ql = _half_sdfs(p, t)
        q = torch.where((du <= dl)[:, None], qu, ql)
        face = -q[:, 2] >= q.norm(dim=-1) - MOUTH_RADIUS  # on the flat inner face
        f = TEXTURE_FREQ
        m = (0.5 + 0.5 * torch.sin(f * q[:, 0]) * torch.sin(f * q[:, 1]))[:, None]
        lo, hi = _vec(MOUTH_INSIDE[0], p), _vec(MOUTH_INSIDE[1], p)
        return torch.where(face[:, None], lo + (hi - lo) * m, _texture(q, MOUTH_COLOURS))
    _check_choice("scene", scene, SCENES)
    b, g = ball_centre(t), RINGS[scene]
    on_ball = sphere_sdf(p, b, g.ball_radius) < torus_sdf(p, g.major, g.minor)
    return torch.where(
        on_ball[:, None], _texture(p - _vec(b, p), BALL_COLOURS), _texture(p, RING_COLOURS)
    )


def sdf_normals(sdf: Callable[[Tensor], Tensor], p: Tensor, h: float = 1e-5) -> Tensor:
    """Unit normals [P, 3] of an SDF at points p [P, 3] by central differences (float64)."""
    p = p.double()
    grad = torch.stack(
        [sdf(p + h * e) - sdf(p - h * e) for e in torch.eye(3, dtype=p.dtype, device=p.device)],
        -1,
    )
    return normalize(grad)


# ----------------------------------------------------------------------------- tracing


def trace_sdf(
    sdf: Callable[[Tensor], Tensor],
    origins: Tensor,
    directions: Tensor,
    near: float,
    far: float,
    box: Tensor | None = None,
    eps: float = TRACE_EPS,
    max_steps: int = 300,
) -> Tensor:
    """First hit of each ray with the zero set of `sdf`, by sphere tracing.

    Rays march (in float32) from where they enter `box` (or `near`) by steps of the SDF value
    (which must not exceed the distance to the surface) until it is below `eps`; then three
    Newton steps on f(t) = sdf(o + t d) in float64 give the exact root. Rays that leave the
    box, pass `far` or take `max_steps` steps miss.

    Args:
        sdf: points [P, 3] -> signed distances [P] (any float dtype).
        origins, directions: [R, 3], directions unit length. near, far: the ray interval.
        box: [2, 3] ([min, max]) holding the zero set; default AABB.
    Returns:
        t [R] (dtype of origins): distance to the hit, inf on a miss.
    """
    o32, d32 = origins.float(), directions.float()
    box = torch.as_tensor(AABB if box is None else box, dtype=torch.float32, device=o32.device)
    inv = synthetic._safe_inverse(d32)
    t1, t2 = (box[0] - o32) * inv, (box[1] - o32) * inv
    t_in = torch.minimum(t1, t2).amax(-1).clamp(min=near)
    t_out = torch.maximum(t1, t2).amin(-1).clamp(max=far)
    hit_t = torch.full_like(t_in, math.inf)
    idx = (t_out > t_in).nonzero()[:, 0]  # the rays still marching, and their state:
    o, d, t, t_end = o32[idx], d32[idx], t_in[idx], t_out[idx]
    alive = torch.ones_like(t, dtype=torch.bool)
    for _ in range(max_steps):
        if idx.numel() == 0:
            break
        dist = sdf(o + t[:, None] * d)
        hit = alive & (dist < eps)
        hit_t[idx[hit]] = t[hit]
        t = torch.where(alive, t + dist, t)
        alive = alive & ~hit & (t <= t_end)
        n_alive = int(alive.sum())
        if n_alive < 0.9 * len(idx):  # drop finished rays now and then, not every step
            o, d, t, t_end, idx = o[alive], d[alive], t[alive], t_end[alive], idx[alive]
            alive = alive[alive]
    found = torch.isfinite(hit_t).nonzero()[:, 0]
    hit_t = hit_t.to(origins.dtype)
    if found.numel():
        o, d = origins[found].double(), directions[found].double()
        th = hit_t[found].double()
        h = 1e-6
        for _ in range(3):
            f = sdf(o + th[:, None] * d)
            df = (sdf(o + (th + h)[:, None] * d) - sdf(o + (th - h)[:, None] * d)) / (2 * h)
            step = torch.where(df.abs() > 1e-3, f / df, torch.zeros_like(f))
            th = th - step.clamp(-100 * eps, 100 * eps)  # no jumps to another root
        hit_t[found] = th.to(origins.dtype)
    return hit_t


def shade_dynamic(scene: str, t: float, points: Tensor, directions: Tensor) -> Tensor:
    """Lambertian colour [P, 3] in [0, 1] of `scene` at time t at surface points [P, 3] seen
    along directions [P, 3] (normals turned towards the viewer; no shadows)."""
    n = sdf_normals(lambda q: scene_sdf(scene, q, t), points)
    n = torch.where(((n * directions.double()).sum(-1) > 0)[:, None], -n, n)
    light = normalize(_vec(LIGHT_DIR, n))
    lambert = AMBIENT + DIFFUSE * (n @ light).clamp(min=0)
    albedo = scene_albedo(scene, points.double(), t)
    return (albedo * lambert[:, None]).clamp(0, 1).to(points.dtype)


def render_dynamic_view(
    scene: str,
    t: float,
    c2w: Tensor,
    width: int,
    height: int,
    focal: float,
    supersample: int = 2,
) -> tuple[Tensor, Tensor]:
    """Render `scene` at time t exactly from a pinhole camera (principal point centred).

    Args:
        c2w: [4, 4] camera-to-world, OpenGL frame. width, height: pixels; focal: pixels.
        supersample: each pixel averages supersample^2 sub-pixel rays (colour and coverage).
    Returns:
        rgba [H, W, 4] float32 (straight colour, alpha = coverage) and depth [H, W] float32:
        the distance along the unit pixel-centre ray to the first hit, inf on a miss.
    """
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")

    def sdf(q: Tensor) -> Tensor:
        return scene_sdf(scene, q, t)

    with one_thread():
        box = scene_box(scene, t)
        rays = _camera(c2w, width * s, height * s, focal * s).image_rays(0, NEAR, FAR)
        o, d = rays.origins, rays.directions
        depth = trace_sdf(sdf, o, d, NEAR, FAR, box)
        hit = torch.isfinite(depth)
        rgb = torch.zeros_like(o)
        rgb[hit] = shade_dynamic(scene, t, o[hit] + depth[hit, None] * d[hit], d[hit])
        alpha = hit.to(rgb)[:, None]
        premult = torch.cat([rgb * alpha, alpha], -1).reshape(height, s, width, s, 4).mean((1, 3))
        a = premult[..., 3:]
        rgb_out = torch.where(a > 0, premult[..., :3] / a.clamp(min=1e-12), 0.0)
        rgba = torch.cat([rgb_out.clamp(0, 1), a], -1).float()
        if s > 1:
            r1 = _camera(c2w, width, height, focal).image_rays(0, NEAR, FAR)
            depth = trace_sdf(sdf, r1.origins, r1.directions, NEAR, FAR, box)
    return rgba, depth.reshape(height, width).float()


# ----------------------------------------------------------------------------- cameras


@dataclass
class View:
    """One frame to render: its time id (time = time_id / denominator), camera-to-world [4, 4]
    (float64, OpenGL frame, scene units) and which camera took it (0: left or single, 1:
    right)."""

    time_id: int
    c2w: Tensor
    camera_id: int = 0


def rig_poses(t: np.ndarray, offset: float = 0.0) -> list[Tensor]:
    """Camera-to-world [4, 4] matrices (float64) of the moving camera at times t [N]: azimuth
    RIG_START_DEG + RIG_SWEEP_DEG t, elevation oscillating once within RIG_ELEVATION_DEG,
    distance RADIUS, looking at the origin; shifted by `offset` along its own x axis (the
    vrig's left camera: -RIG_BASELINE / 2, right: +RIG_BASELINE / 2)."""
    lo, hi = RIG_ELEVATION_DEG
    out = []
    for ti in np.asarray(t, dtype=np.float64):
        az = math.radians(RIG_START_DEG + RIG_SWEEP_DEG * ti)
        el = math.radians(0.5 * (lo + hi) + 0.5 * (hi - lo) * math.sin(2 * math.pi * ti))
        m = orbit_pose(az, el, RADIUS)
        m[:3, 3] += offset * m[:3, 0]
        out.append(m)
    return out


def rig_views(rig: str, n_train: int, n_test: int, seed: int) -> tuple[dict[str, list[View]], int]:
    """The train and test views of a rig (module docstring) and the time denominator D (a
    view's time is time_id / D)."""
    _check_choice("rig", rig, RIGS)
    n = n_train
    if rig == "vrig":
        den = n - 1
        ids = np.arange(n)
        test_ids = np.unique(np.round(np.linspace(0, n - 1, n_test)).astype(int))
        left = rig_poses(ids / den, -0.5 * RIG_BASELINE)
        right = rig_poses(test_ids / den, 0.5 * RIG_BASELINE)
        train = [View(int(i), m, 0) for i, m in zip(ids, left)]
        return {"train": train, "test": [View(int(i), m, 1) for i, m in zip(test_ids, right)]}, den
    den = 2 * (n - 1)
    mid = np.floor((np.arange(n_test) + 0.5) * (n - 1) / n_test).astype(int)
    test_ids = 2 * mid + 1  # halfway between training times
    train_ids = 2 * np.arange(n)
    if rig == "teleport":
        poses = camera_poses(n + n_test, 0, 0, seed)["train"]
        train = [View(int(i), poses[k]) for k, i in enumerate(train_ids)]
        test = [View(int(i), poses[n + k]) for k, i in enumerate(test_ids)]
    else:  # interp: one moving camera, every other frame held out
        train = [View(int(i), m) for i, m in zip(train_ids, rig_poses(train_ids / den))]
        test = [View(int(i), m) for i, m in zip(test_ids, rig_poses(test_ids / den))]
    return {"train": train, "test": test}, den


# ----------------------------------------------------------------------------- writing


def _check_choice(name: str, value: str, known: tuple[str, ...]) -> None:
    if value not in known:
        raise DataError(
            f"dynamic scene: unknown {name} '{value}'; choose one of {', '.join(known)}"
        )


def generate_dynamic_scene(
    root: Path | str,
    scene: str = "split",
    layout: str = "blender",
    size: tuple[int, int] = (200, 200),
    n_train: int = 100,
    n_test: int = 20,
    seed: int = 0,
    rig: str = "teleport",
    supersample: int = 2,
) -> Path:
    """Write a procedural dynamic scene folder (see the module docstring).

    Args:
        root: the folder to write. scene: one of SCENES. layout: "blender" or "nerfies".
        size: (width, height) in pixels. n_train: training frames (>= 2), at times
            i / (n_train - 1). n_test: held-out frames (>= 1; interp: at most n_train - 1).
        seed: the teleporting cameras. rig: "teleport", "vrig" or "interp".
        supersample: each pixel averages supersample^2 rays.
    Returns:
        root as a Path. Calling again with the same parameters on a complete folder returns at
        once; a folder made by an older version or with other parameters is replaced; any
        other non-empty folder is a DataError.
    """
    _check_choice("scene", scene, SCENES)
    _check_choice("layout", layout, LAYOUTS)
    _check_choice("rig", rig, RIGS)
    w, h = size
    params: dict = {"version": DYNAMIC_SCENE_VERSION, "scene": scene, "layout": layout, "rig": rig}
    params |= synthetic.counts(
        width=(w, 1), height=(h, 1), n_train=(n_train, 2), n_test=(n_test, 1)
    )
    params |= synthetic.counts(supersample=(supersample, 1))
    params["seed"] = int(seed)
    if rig != "vrig" and n_test > n_train - 1:
        raise DataError(
            f"dynamic scene: the {rig} rig's test frames lie between the training frames; "
            f"n_test must be <= n_train - 1 = {n_train - 1}, got {n_test}"
        )
    if rig == "vrig" and n_test > n_train:
        raise DataError(f"dynamic scene: vrig n_test must be <= n_train ({n_train}), got {n_test}")
    return synthetic.install_scene(Path(root), params, _write, _is_complete)


def _is_complete(root: Path, params: dict) -> bool:
    """True if `root` holds a finished dynamic scene generated with exactly `params`."""
    if not synthetic.marker_matches(root, params) or not (root / "events.json").is_file():
        return False
    if params["layout"] == "blender":
        for split, n in (("train", params["n_train"]), ("test", params["n_test"])):
            files = synthetic._split_files(root, split)
            if files is None or len(files) != 2 * n or not all(p.is_file() for p in files):
                return False
        return (root / "transforms_val.json").is_file()
    try:
        ids = json.loads((root / "dataset.json").read_text(encoding="utf-8"))["ids"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    names = ["scene.json", "metadata.json"]
    names += [f"{d}/{i}.png" for i in ids for d in ("rgb/1x", "rgb/2x")]
    names += [f"camera/{i}.json" for i in ids]
    return all((root / n).is_file() for n in names)


def _write(root: Path, params: dict) -> None:
    scene, w, h = params["scene"], params["width"], params["height"]
    views, den = rig_views(params["rig"], params["n_train"], params["n_test"], params["seed"])
    focal = 0.5 * w / math.tan(0.5 * CAMERA_ANGLE_X)
    renders = {
        split: [
            render_dynamic_view(scene, v.time_id / den, v.c2w, w, h, focal, params["supersample"])
            for v in vs
        ]
        for split, vs in views.items()
    }
    t0, t1 = event_interval(scene)
    events = {
        "scene": scene,
        "event": [t0, t1],
        "meaning": {
            "split": "the blob is two separate blobs",
            "mouth": "the mouth is open",
            "ring": "the ball overlaps the ring (no topology change: the control)",
            "wide_ring": "the ball overlaps the wide ring (no topology change, no near approach)",
        }[scene],
    }
    with open(root / "events.json", "w", encoding="utf-8") as f:
        json.dump(events, f, indent=1)
    if params["layout"] == "blender":
        _write_blender(root, views, renders, den)
    else:
        _write_nerfies(root, params, views, renders, focal)
    synthetic.write_marker(root, "nerfkit.data.synthetic_dynamic", params)


def _write_blender(
    root: Path, views: dict[str, list[View]], renders: dict[str, list], den: int
) -> None:
    for split, vs in views.items():
        (root / split).mkdir()
        frames = []
        for i, (v, (rgba, depth)) in enumerate(zip(vs, renders[split])):
            write_png8(root / split / f"r_{i}.png", rgba)
            np.save(root / split / f"r_{i}_depth.npy", depth.numpy().astype(np.float32))
            frames.append(
                {
                    "file_path": f"./{split}/r_{i}",
                    "depth_file_path": f"{split}/r_{i}_depth.npy",
                    "time": v.time_id / den,
                    "transform_matrix": v.c2w.tolist(),
                }
            )
        meta = {"camera_angle_x": CAMERA_ANGLE_X, "near": NEAR, "far": FAR, "aabb": AABB}
        meta["frames"] = frames
        for name in ("test", "val") if split == "test" else ("train",):
            with open(root / f"transforms_{name}.json", "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=1)


def _view_ids(rig: str, views: dict[str, list[View]]) -> dict[str, list[str]]:
    if rig == "vrig":
        return {
            split: [f"{'left' if v.camera_id == 0 else 'right'}_{v.time_id:06d}" for v in vs]
            for split, vs in views.items()
        }
    return {split: [f"{v.time_id:06d}" for v in vs] for split, vs in views.items()}


def to_file_frame(p: np.ndarray) -> np.ndarray:
    """Scene points [..., 3] -> the Nerfies layout's file frame: center + p / scale."""
    return np.asarray(NERFIES_CENTER) + np.asarray(p) / NERFIES_SCALE


def nerfies_camera(c2w: Tensor, focal: float, width: int, height: int) -> dict:
    """A Nerfies camera JSON (the release's keys) for camera-to-world c2w [4, 4] (OpenGL frame,
    scene units) of a centred pinhole camera: orientation = world-to-camera rotation in the
    OpenCV frame, position in the file frame (`to_file_frame`)."""
    m = c2w.double().numpy()
    rot_cv = m[:3, :3] @ np.diag([1.0, -1.0, -1.0])  # camera-to-world, OpenCV camera axes
    return {
        "orientation": rot_cv.T.tolist(),
        "position": to_file_frame(m[:3, 3]).tolist(),
        "focal_length": focal,
        "principal_point": [width / 2, height / 2],
        "skew": 0.0,
        "pixel_aspect_ratio": 1.0,
        "radial_distortion": [0.0, 0.0, 0.0],
        "tangential": [0.0, 0.0],
        "image_size": [width, height],
    }


def static_points(scene: str, n: int = POINTS_PER_SURFACE, seed: int = 0) -> np.ndarray:
    """Points [P, 3] (scene units) on the surfaces of `scene` that never move: the ring
    scenes' torus; none ([0, 3]) for split and mouth, whose every surface moves."""
    if scene not in RINGS:
        return np.zeros((0, 3))
    g = RINGS[scene]
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(0, 2 * math.pi, (2, n))
    rho = g.major + g.minor * np.cos(v)
    return np.stack([g.minor * np.sin(v), rho * np.cos(u), rho * np.sin(u)], -1)


def _write_nerfies(
    root: Path, params: dict, views: dict[str, list[View]], renders: dict[str, list], focal: float
) -> None:
    scene, w, h = params["scene"], params["width"], params["height"]
    rig_ids = _view_ids(params["rig"], views)
    for d in ("rgb/1x", "rgb/2x", "camera"):
        (root / d).mkdir(parents=True)
    white = torch.ones(3)
    metadata = {}
    for split, vs in views.items():
        for vid, v, (rgba, _) in zip(rig_ids[split], vs, renders[split]):
            rgb = rgba[..., :3] * rgba[..., 3:] + white * (1 - rgba[..., 3:])
            write_png8(root / "rgb/1x" / f"{vid}.png", rgb)
            write_png8(root / "rgb/2x" / f"{vid}.png", downscale_image(rgb, 2))
            with open(root / "camera" / f"{vid}.json", "w", encoding="utf-8") as f:
                json.dump(nerfies_camera(v.c2w, focal, w, h), f, indent=1)
            metadata[vid] = {
                "warp_id": v.time_id,
                "appearance_id": v.time_id,
                "camera_id": v.camera_id,
                "time_id": v.time_id,
            }
    ids = rig_ids["train"] + rig_ids["test"]
    dataset = {
        "count": len(ids),
        "num_exemplars": len(rig_ids["train"]),
        "ids": ids,
        "train_ids": rig_ids["train"],
        "val_ids": rig_ids["test"],
    }
    box = swept_box(scene)
    scene_json = {
        "center": list(NERFIES_CENTER),
        "scale": NERFIES_SCALE,
        "near": NEAR,
        "far": FAR,
        "bbox": to_file_frame(box.numpy()).tolist(),
        "background": [1.0, 1.0, 1.0],
    }
    for name, obj in (("dataset", dataset), ("metadata", metadata), ("scene", scene_json)):
        with open(root / f"{name}.json", "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
    pts = static_points(scene)
    if len(pts):
        np.save(root / "points.npy", to_file_frame(pts).astype(np.float32))
