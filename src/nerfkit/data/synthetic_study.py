"""The ablation "study" scene: what NeRF's design is for, with exact ground truth, Blender layout.

The NeRF paper's ablations (Table 2) are about scenes where their parts matter: fine texture
(positional encoding), non-Lambertian surfaces (view dependence) and thin structures in mostly
empty space (hierarchical sampling). This scene has each, on the object scene's platform, lit
and framed like it (`nerfkit.data.synthetic`: world +z up, the same light, cameras at radius 4
looking at the origin, near 2, far 6, scene box [-1.5, 1.5]^3):

- a **mirror** sphere and a **glossy** sphere (a red diffuse base blended with a mirror
  reflection) reflecting a textured environment at infinity (`env_radiance`: sky and ground,
  bright sectors in azimuth, coarse blobs), so their colour changes with the viewpoint;
- a **glass** sphere (index 1.5): rays refract in and out by Snell's law, with Schlick's Fresnel
  reflectance and total internal reflection, so it shows the scene behind it bent and flipped;
- a **textured** box and ball: a high-contrast checker of period 0.16 units and 24 bands
  (a few pixels per period at the default 80 pixels), which an MLP on raw coordinates blurs;
- **thin** structures in empty space: a wire-frame cube of 12 bars and three vertical rods,
  0.05 units thick (about a pixel), which coarse samples spaced 0.08 apart mostly miss.

The tracer is exact and deterministic (no Monte Carlo): each ray's colour is a finite tree of
mirror reflections and refractions (`scatter`, `radiance`) down to MAX_BOUNCES or a weight below
MIN_WEIGHT; diffuse and glossy bases are shaded by `nerfkit.data.synthetic.shade` (Lambert plus
Blinn-Phong, hard shadows: mirror and glass spheres cast shadows like opaque ones, no caustics).
Rays leaving the scene after a bounce see `env_radiance`; primary rays that miss are transparent
(alpha 0), as Blender's "film transparent" renders the environment only in reflections, so the
images composite onto white like NeRF-synthetic.

Files (`generate_study_scene`): those of `nerfkit.data.synthetic.generate_scene` (transforms_*
.json, RGBA PNGs, exact depth maps at pixel centres, `nerfkit_scene.json`) plus
`masks/<split>.npz`: `coverage` uint8 [N, H, W, C], the fraction (x 255, rounded) of each pixel's
sub-pixel rays whose first hit is of class `classes[c]` (CLASSES), so `region_masks` can score
the reflective, textured and thin pixels apart (REGIONS), at any downscale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from nerfkit.data import synthetic
from nerfkit.data.synthetic import (
    FAR,
    NEAR,
    PLATFORM,
    Box,
    Colour,
    Shape,
    Sphere,
    _camera,
    _dot,
    _t,
    detail_texture,
    shade,
    trace,
)
from nerfkit.errors import DataError
from nerfkit.poses import normalize

STUDY_SCENE_VERSION = 1  # bump when the scene or the file layout changes
MAX_BOUNCES = 6  # reflections / refractions followed per ray
MIN_WEIGHT = 1e-3  # a branch whose weight falls below this (every channel) is dropped
OFFSET = 1e-4  # secondary rays start this far off the surface (on the side they leave to)
MASK_FOLDER = "masks"

CLASSES: tuple[str, ...] = ("background", "plain", "textured", "thin", "mirror", "glossy", "glass")
"""What a pixel's first hit is: the classes of `coverage` in masks/<split>.npz."""
REGIONS: dict[str, tuple[str, ...]] = {
    "reflective": ("mirror", "glossy", "glass"),
    "textured": ("textured",),
    "thin": ("thin",),
}
"""Scored regions: a pixel belongs to a region if any of its sub-pixel rays first hits one of
its classes (so the regions may overlap at their edges)."""


@dataclass(frozen=True)
class Material:
    """How a surface turns an incoming ray into colour and secondary rays.

    diffuse: `synthetic.shade` (the shape's albedo, Lambert + Blinn-Phong, shadows).
    mirror: `tint` x the colour along the reflected ray.
    glossy: (1 - reflectance) x diffuse + reflectance x `tint` x the reflected colour.
    glass: Schlick reflectance R of the interface (index `ior` against air; 1 under total
        internal reflection): R x the reflected colour + (1 - R) x the refracted colour, the
        latter times `tint` on entering. The shape must be a Sphere.
    `label` is the pixel class (CLASSES) of a first hit on it.
    """

    kind: Literal["diffuse", "mirror", "glossy", "glass"] = "diffuse"
    label: str = "plain"
    tint: Colour = (1.0, 1.0, 1.0)
    reflectance: float = 1.0
    ior: float = 1.5


@dataclass(frozen=True)
class StudyObject:
    shape: Shape
    material: Material


StudyScene = tuple[StudyObject, ...]


# -- the environment at infinity -----------------------------------------------------------------
SKY, HORIZON, GROUND = (0.30, 0.50, 0.90), (0.95, 0.85, 0.65), (0.35, 0.28, 0.22)
ENV_SECTORS = 8  # bright / dark sectors of azimuth


def env_radiance(d: Tensor) -> Tensor:
    """Colour [R, 3] of the environment at infinity seen along unit directions d [R, 3].

    Sky above the horizon (+z up), ground below, a bright band at the horizon, ENV_SECTORS
    alternating sectors of azimuth (contrast 0.6 : 1) and coarse blobs (`detail_texture` at
    quarter scale): smooth enough to be resolved in a small sphere's reflection, varied enough
    that every direction looks different.
    """
    z = d[:, 2]
    sky, horizon, ground = _t(SKY, d), _t(HORIZON, d), _t(GROUND, d)
    up = z.clamp(min=0)[:, None] ** 0.5
    base = torch.where((z >= 0)[:, None], horizon + (sky - horizon) * up, ground)
    base = base + (horizon - base) * torch.exp(-((z / 0.08) ** 2))[:, None] * 0.8
    az = torch.atan2(d[:, 1], d[:, 0])
    sector = torch.floor((az + math.pi) / (2 * math.pi) * ENV_SECTORS).long() % 2
    blobs = detail_texture(0.25 * d)
    return (base * (0.6 + 0.4 * sector.to(d))[:, None] * (0.7 + 0.5 * blobs)[:, None]).clamp(0, 1)


# -- optics ----------------------------------------------------------------------------------------
def reflect(d: Tensor, n: Tensor) -> Tensor:
    """Mirror directions r = d - 2 (d.n) n of unit directions d [R, 3] at unit normals n [R, 3]."""
    return d - 2.0 * _dot(d, n)[:, None] * n


def refract(d: Tensor, n: Tensor, eta: Tensor | float) -> tuple[Tensor, Tensor]:
    """Snell's law: directions of rays d [R, 3] refracted at normals n [R, 3] facing them.

    Args:
        d, n: unit vectors with d.n <= 0. eta: n1 / n2 [R] or scalar, the ratio of the indices
            of the side the ray comes from and the side it enters.
    Returns:
        unit refracted directions [R, 3] (t = eta d + (eta cos_i - cos_t) n; zero where total
        internal reflection) and the TIR mask [R] (sin_t = eta sin_i > 1).
    """
    eta = torch.as_tensor(eta, dtype=d.dtype, device=d.device).expand(d.shape[0])
    cos_i = (-_dot(d, n)).clamp(-1, 1)
    k = 1.0 - eta**2 * (1.0 - cos_i**2)  # cos_t^2
    tir = k < 0
    cos_t = k.clamp(min=0).sqrt()
    t = eta[:, None] * d + (eta * cos_i - cos_t)[:, None] * n
    return torch.where(tir[:, None], 0.0, normalize(t)), tir


def schlick(cos_i: Tensor, eta: Tensor | float) -> Tensor:
    """Schlick's Fresnel reflectance [R] of an interface n1 -> n2, eta = n1 / n2.

    R0 = ((n1 - n2) / (n1 + n2))^2 and R = R0 + (1 - R0) (1 - c)^5 with c the cosine on the
    less dense side (cos_i entering a denser medium, cos_t leaving it); 1 under total internal
    reflection.
    """
    eta = torch.as_tensor(eta, dtype=cos_i.dtype, device=cos_i.device).expand_as(cos_i)
    r0 = ((eta - 1.0) / (eta + 1.0)) ** 2
    k = 1.0 - eta**2 * (1.0 - cos_i**2)
    c = torch.where(eta <= 1.0, cos_i, k.clamp(min=0).sqrt())
    r = r0 + (1.0 - r0) * (1.0 - c).clamp(0, 1) ** 5
    return torch.where(k < 0, torch.ones_like(r), r)


@dataclass
class Scattered:
    """One bounce of a batch of R rays (`scatter`)."""

    t: Tensor
    """[R] distance to the hit (inf: miss)."""
    index: Tensor
    """[R] object index into the scene (-1: miss)."""
    direct: Tensor
    """[R, 3] colour the hit contributes itself (diffuse shading, zero on a miss)."""
    parent: Tensor
    """[M] which ray each secondary ray continues."""
    origins: Tensor
    """[M, 3] secondary rays' origins."""
    directions: Tensor
    """[M, 3] secondary rays' unit directions."""
    weights: Tensor
    """[M, 3] their colour's weight in their parent's colour."""


def scatter(origins: Tensor, directions: Tensor, scene: StudyScene) -> Scattered:
    """First hit of each ray [R, 3] in `scene`: its own colour and the rays it spawns.

    A ray's colour is direct + sum over its children of weight x colour(child), and
    env_radiance(direction) when it leaves the scene (the caller decides for primary rays).
    """
    shapes = tuple(ob.shape for ob in scene)
    t, n, idx = trace(origins, directions, shapes)
    direct = torch.zeros_like(origins)
    kinds = [ob.material.kind for ob in scene]
    parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    hit = idx >= 0
    p = origins + torch.where(hit, t, 0.0)[:, None] * directions

    def of(kind: str) -> Tensor:
        ks = torch.tensor([k for k, m in enumerate(kinds) if m == kind], dtype=torch.long)
        return (hit & torch.isin(idx, ks.to(idx.device))).nonzero()[:, 0]

    lit = torch.cat([of("diffuse"), of("glossy")])
    if lit.numel():
        direct[lit] = shade(origins[lit], directions[lit], 0.0, shapes)[0]
    for j, ob in enumerate(scene):
        m = ob.material
        sel = (idx == j).nonzero()[:, 0]
        if sel.numel() == 0 or m.kind == "diffuse":
            continue
        d, nj, pj = directions[sel], n[sel], p[sel]
        tint = _t(m.tint, pj).expand_as(pj)
        if m.kind in ("mirror", "glossy"):
            k = 1.0 if m.kind == "mirror" else m.reflectance
            direct[sel] = direct[sel] * (1.0 - k)
            parts.append((sel, pj + OFFSET * nj, reflect(d, nj), k * tint))
            continue
        if not isinstance(ob.shape, Sphere):
            raise ValueError(f"glass needs a Sphere, got {type(ob.shape).__name__}")
        outward = (pj - _t(ob.shape.centre, pj)) / ob.shape.radius
        entering = _dot(d, outward) < 0
        eta = torch.where(entering, 1.0 / m.ior, m.ior).to(pj)
        cos_i = (-_dot(d, nj)).clamp(0, 1)  # nj faces the ray (trace flips it)
        r = schlick(cos_i, eta)
        t_dir, tir = refract(d, nj, eta)
        parts.append((sel, pj + OFFSET * nj, reflect(d, nj), r[:, None].expand_as(pj)))
        through = ~tir
        w = (1.0 - r)[:, None] * torch.where(entering[:, None], tint, 1.0)
        parts.append((sel[through], (pj - OFFSET * nj)[through], t_dir[through], w[through]))
    if parts:
        parent, o2, d2, w2 = (torch.cat(x) for x in zip(*parts))
    else:
        parent = torch.zeros(0, dtype=torch.long, device=origins.device)
        o2 = d2 = w2 = origins.new_zeros(0, 3)
    return Scattered(t, idx, direct, parent, o2, d2, w2)


def radiance(
    origins: Tensor, directions: Tensor, scene: StudyScene, max_bounces: int = MAX_BOUNCES
) -> tuple[Tensor, Tensor, Tensor]:
    """Exact colour of each ray [R, 3] in `scene`, following its reflection/refraction tree.

    Returns:
        rgb [R, 3] in [0, 1] (zero where the ray misses everything: transparent), the first
        hit's t [R] (inf: miss) and object index [R] (-1: miss).
    """
    rgb = torch.zeros_like(origins)
    ray = torch.arange(origins.shape[0], device=origins.device)
    weight = torch.ones_like(origins)
    o, d = origins, directions
    t0 = idx0 = None
    for bounce in range(max_bounces + 1):
        s = scatter(o, d, scene)
        if t0 is None:
            t0, idx0 = s.t, s.index
        miss = s.index < 0
        if bounce > 0 and bool(miss.any()):
            rgb.index_add_(0, ray[miss], weight[miss] * env_radiance(d[miss]))
        rgb.index_add_(0, ray, weight * s.direct)
        w = weight[s.parent] * s.weights
        keep = (w.amax(-1) >= MIN_WEIGHT).nonzero()[:, 0]
        if bounce == max_bounces or keep.numel() == 0:
            break
        ray, weight = ray[s.parent[keep]], w[keep]
        o, d = s.origins[keep], s.directions[keep]
    return rgb.clamp(0, 1), t0, idx0


# -- the scene -------------------------------------------------------------------------------------
BAR_HALF = 0.025  # half thickness of the thin bars and rods
WIRE_CENTRE, WIRE_HALF, WIRE_YAW = (0.05, 0.0, 0.62), 0.3, math.radians(20.0)


def wire_cube(centre: tuple[float, float, float], half: float, bar: float, yaw: float) -> list[Box]:
    """The 12 edges of a cube (half-size `half`, turned by `yaw` about +z) as bars of half
    thickness `bar`."""
    c, s = math.cos(yaw), math.sin(yaw)
    bars = []
    for axis in range(3):
        for u in (-half, half):
            for v in (-half, half):
                local = [u, v]
                local.insert(axis, 0.0)
                size = [bar, bar]
                size.insert(axis, half + bar)
                x, y, z = local
                world = (centre[0] + c * x - s * y, centre[1] + s * x + c * y, centre[2] + z)
                bars.append(Box(world, tuple(size), yaw, (0.92, 0.92, 0.95), 0.3, 30.0))
    return bars


def rod(x: float, y: float, height: float) -> Box:
    """A thin vertical rod standing on the platform at (x, y)."""
    z0 = PLATFORM.z_top
    return Box((x, y, z0 + height / 2), (BAR_HALF, BAR_HALF, height / 2), 0.0, (0.95, 0.55, 0.1))


PLAIN, TEXTURED, THIN = Material(), Material(label="textured"), Material(label="thin")
MIRROR = Material("mirror", "mirror", tint=(0.95, 0.95, 0.95))
GLOSSY = Material("glossy", "glossy", tint=(1.0, 1.0, 1.0), reflectance=0.45)
GLASS = Material("glass", "glass", tint=(0.92, 0.97, 0.95), ior=1.5)

STUDY_OBJECTS: StudyScene = (
    StudyObject(PLATFORM, PLAIN),
    StudyObject(Sphere((-0.45, -0.45, -0.1), 0.4, (0.9, 0.9, 0.9)), MIRROR),
    StudyObject(Sphere((0.55, -0.5, -0.22), 0.28, (0.85, 0.1, 0.08), 0.6, 60.0), GLOSSY),
    StudyObject(Sphere((0.45, 0.45, -0.15), 0.35, (1.0, 1.0, 1.0)), GLASS),
    StudyObject(
        Box((-0.5, 0.45, -0.25), (0.25, 0.25, 0.25), 0.0, (0.95, 0.93, 0.85),
            checker_colour=(0.08, 0.10, 0.25), checker_size=0.08),
        TEXTURED,
    ),
    StudyObject(
        Sphere((0.0, -0.05, -0.32), 0.18, (0.98, 0.82, 0.12), band_colour=(0.15, 0.55, 0.25),
               n_bands=24),
        TEXTURED,
    ),
    *(StudyObject(b, THIN) for b in wire_cube(WIRE_CENTRE, WIRE_HALF, BAR_HALF, WIRE_YAW)),
    StudyObject(rod(0.9, 0.05, 0.9), THIN),
    StudyObject(rod(-0.1, 0.85, 0.7), THIN),
    StudyObject(rod(0.05, -0.9, 0.8), THIN),
)  # fmt: skip


def labels_of(index: Tensor, scene: StudyScene) -> Tensor:
    """Pixel class (index into CLASSES) [R] of first-hit object indices [R] (-1: background)."""
    lut = torch.tensor([CLASSES.index(ob.material.label) for ob in scene], device=index.device)
    return torch.where(index >= 0, lut[index.clamp(min=0)], 0)


def render_study_view(
    c2w: Tensor,
    width: int,
    height: int,
    focal: float,
    supersample: int = 1,
    scene: StudyScene = STUDY_OBJECTS,
) -> tuple[Tensor, Tensor, Tensor]:
    """Render the study scene exactly from a pinhole camera (principal point centred).

    Args as `nerfkit.data.synthetic.render_ground_truth`.
    Returns:
        rgba [H, W, 4] float32 (straight colour, alpha = coverage), depth [H, W] float32 (t of
        the pixel-centre ray's first hit, inf on background) and coverage [H, W, C] float32: the
        fraction of the pixel's sub-pixel rays whose first hit is of class CLASSES[c].
    """
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    rays = _camera(c2w, width * s, height * s, focal * s).image_rays(0, NEAR, FAR)
    rgb, t, idx = radiance(rays.origins, rays.directions, scene)
    alpha = (idx >= 0).to(rgb)[:, None]
    onehot = torch.nn.functional.one_hot(labels_of(idx, scene), len(CLASSES)).to(rgb)
    cells = (
        torch.cat([rgb * alpha, alpha, onehot], -1).reshape(height, s, width, s, -1).mean((1, 3))
    )
    a = cells[..., 3:4]
    rgb_out = torch.where(a > 0, cells[..., :3] / a.clamp(min=1e-12), 0.0)
    rgba = torch.cat([rgb_out.clamp(0, 1), a], -1).float()
    if s == 1:
        depth = t.reshape(height, width)
    else:
        r1 = _camera(c2w, width, height, focal).image_rays(0, NEAR, FAR)
        depth = trace(r1.origins, r1.directions, tuple(ob.shape for ob in scene))[0]
        depth = depth.reshape(height, width)
    return rgba, depth.float(), cells[..., 4:].float()


# -- files -----------------------------------------------------------------------------------------
def generate_study_scene(
    out_dir: Path | str,
    resolution: int = 80,
    n_train: int = 100,
    n_val: int = 4,
    n_test: int = 8,
    seed: int = 0,
    supersample: int = 3,
) -> Path:
    """Write the study scene in Blender format (read it with `nerfkit.data.load_scene`).

    The files of `nerfkit.data.synthetic.generate_scene` (same cameras, field of view, near,
    far and box) plus masks/<split>.npz (module docstring). Written atomically and cached like
    every procedural scene (`nerfkit.data.synthetic.install_scene`). Returns `out_dir` as a Path.
    """
    sizes = synthetic.counts(
        resolution=(resolution, 1), n_train=(n_train, 1), n_val=(n_val, 0), n_test=(n_test, 0)
    )
    params = {"scene": "study", "version": STUDY_SCENE_VERSION, **sizes, "seed": int(seed)}
    params |= synthetic.counts(supersample=(supersample, 1))
    return synthetic.install_scene(Path(out_dir), params, _write_study_scene, _is_complete)


def _is_complete(root: Path, params: dict) -> bool:
    splits = [s for s in ("train", "val", "test") if params[f"n_{s}"] > 0]
    masks = all((root / MASK_FOLDER / f"{s}.npz").is_file() for s in splits)
    return masks and synthetic._is_complete(root, params)  # noqa: SLF001


def _write_study_scene(root: Path, params: dict) -> None:
    coverage: dict[str, list[Tensor]] = {}
    ss = params["supersample"]

    def render(split: str, i: int, c2w: Tensor, res: int, focal: float) -> tuple[Tensor, Tensor]:
        rgba, depth, cov = render_study_view(c2w, res, res, focal, ss)
        coverage.setdefault(split, []).append(cov)
        return rgba, depth

    synthetic.write_blender_splits(root, params, render)
    (root / MASK_FOLDER).mkdir()
    for split, covs in coverage.items():
        cov = np.round(torch.stack(covs).numpy() * 255.0).astype(np.uint8)
        np.savez_compressed(root / MASK_FOLDER / f"{split}.npz", coverage=cov, classes=CLASSES)
    synthetic.write_marker(root, "nerfkit.data.synthetic_study", params)


def region_masks(root: Path | str, split: str, factor: int = 1) -> dict[str, np.ndarray] | None:
    """The scored regions of a split's views, at its resolution divided by `factor`.

    Args:
        root: a study scene folder. split: train, val or test. factor: the downscale of the
            images compared (sizes rounded down, as `nerfkit.data.io.downscale_image`).
    Returns:
        {region: bool [N, H, W]} for REGIONS (a pixel is in a region if any of its sub-pixel rays
        at full resolution first hits one of the region's classes), or None when the folder
        holds no masks (not a study scene). A broken mask file is a DataError.
    """
    path = Path(root) / MASK_FOLDER / f"{split}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            cov, classes = z["coverage"], [str(c) for c in z["classes"]]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: unreadable masks ({e}); regenerate the study scene") from e
    n, h, w, _ = cov.shape
    h2, w2 = h // factor, w // factor
    cov = cov[:, : h2 * factor, : w2 * factor].reshape(n, h2, factor, w2, factor, -1).max((2, 4))
    return {
        name: cov[..., [classes.index(c) for c in members]].sum(-1) > 0
        for name, members in REGIONS.items()
    }
