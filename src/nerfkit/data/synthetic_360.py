"""A procedural unbounded 360° scene, ray-traced exactly, in the transforms.json layout.

The tracer, shapes and shading are those of the object scene (`nerfkit.data.synthetic`; world +z
up, the same light). The object scene's red sphere, beach ball, green box and blue sphere stand
within radius 1 of the origin on a wide checkered ground disc (radius 6, top at z = -0.5), and
everything lies inside a far, self-lit, textured environment: the inside of a sphere of radius
50 (50x the objects' radius) whose pattern has detail at three scales, so that a blurry
background is measurable. The cameras walk around the objects like a phone capture: a ring of
seeded jittered azimuths at radius 3.2 to 3.8 and elevations 5 to 35 degrees, all looking at the
origin. Every ray hits something, so the images are opaque (the background is the environment).

The folder (`nerfkit.data.load_scene` reads it as format transforms_json) holds
`transforms.json` in nerfstudio's layout (PINHOLE `fl_x`, `fl_y`, `cx`, `cy`, `w`, `h`; per frame
`file_path` images/imageNNN.png and `transform_matrix`, OpenGL camera-to-world in the generator's
world frame: the loader's normalisation is SceneMeta.data_transform), the 8-bit RGB photos in
`images/`, and ground truth the loader ignores: `depths.npy`, float32 [N, H, W], the exact
distance along each unit pixel-centre ray to its first surface (file units), and `env_mask.npy`,
bool [N, H, W], True where that surface is the environment (`environment_mask`), so a benchmark
can report the object region's and the background's PSNR apart. `nerfkit_scene.json` records the
parameters (atomic writing and caching: `nerfkit.data.synthetic.install_scene`).

`unbounded_video_frames` renders a phone-like video of the scene instead (a smooth walk around
the objects, `unbounded_video_poses`), for `nerfkit process VIDEO`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nerfkit.data import synthetic
from nerfkit.data.synthetic import (
    BEACH_BALL,
    BLUE_SPHERE,
    GREEN_BOX,
    PLATFORM,
    RED_SPHERE,
    Environment,
    Platform,
    Shape,
    render_ground_truth,
)
from nerfkit.data.synthetic_llff import forward_focal, image_names
from nerfkit.media import to_uint8
from nerfkit.poses import orbit_pose

UNBOUNDED_SCENE_VERSION = 1  # bump when the scene or the file layout changes
ENV_RADIUS = 50.0
CAMERA_RADIUS = (3.2, 3.8)  # camera distances from the origin (uniform, seeded)
ELEVATION_DEG = (5.0, 35.0)  # camera elevations above the xy plane (uniform, seeded)
IMAGE_FOLDER = "images"
VIDEO_SWEEP_DEG = 300.0  # azimuth covered by `unbounded_video_poses`

ENVIRONMENT = Environment(
    centre=(0.0, 0.0, 0.0),
    radius=ENV_RADIUS,
    colour=(0.55, 0.72, 0.95),
    band_colour=(0.85, 0.60, 0.35),
)
GROUND = Platform(
    centre_xy=(0.0, 0.0),
    radius=6.0,
    z_bottom=PLATFORM.z_bottom,
    z_top=PLATFORM.z_top,
    colour=PLATFORM.colour,
    checker_colour=PLATFORM.checker_colour,
    checker_size=0.5,
    side_colour=PLATFORM.side_colour,
)
UNBOUNDED_OBJECTS: tuple[Shape, ...] = (
    ENVIRONMENT,
    GROUND,
    RED_SPHERE,
    BEACH_BALL,
    GREEN_BOX,
    BLUE_SPHERE,
)


def unbounded_camera_poses(n_views: int, seed: int = 0) -> Tensor:
    """Camera-to-world matrices [N, 4, 4] (float64, OpenGL frame) around the origin, facing it.

    View k is at azimuth 2 pi (k + u) / N with u uniform in [-0.3, 0.3], an elevation uniform in
    ELEVATION_DEG and a distance uniform in CAMERA_RADIUS (seeded), with world +z up.
    """
    rng = np.random.default_rng(seed)
    az = 2 * math.pi * (np.arange(n_views) + rng.uniform(-0.3, 0.3, n_views)) / n_views
    el = np.radians(rng.uniform(*ELEVATION_DEG, n_views))
    radius = rng.uniform(*CAMERA_RADIUS, n_views)
    return torch.stack(
        [orbit_pose(float(a), float(e), float(r)) for a, e, r in zip(az, el, radius)]
    )


def environment_mask(depth: Tensor) -> Tensor:
    """Which pixels see the environment: depth [..., H, W] -> bool [..., H, W].

    Exact for this scene: all other content lies within 6.1 units of the origin and every camera
    within 3.8, so their depths are below 10 and the environment's above ENV_RADIUS - 3.8.
    """
    return depth > 0.5 * ENV_RADIUS


def unbounded_video_poses(n_frames: int, seed: int = 0) -> Tensor:
    """Camera-to-world matrices [n_frames, 4, 4] (float64, OpenGL frame) of a walk around the
    objects, as a phone video of them would be filmed: facing the origin, the azimuth sweeps
    VIDEO_SWEEP_DEG at a steady pace from a seeded start while the distance and the elevation
    drift smoothly (seeded phases) within CAMERA_RADIUS and ELEVATION_DEG, world +z up.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.0, 2 * math.pi)
    phase_r, phase_e = rng.uniform(0.0, 2 * math.pi, 2)
    s = np.linspace(0.0, 1.0, n_frames)  # progress along the walk
    az = start + math.radians(VIDEO_SWEEP_DEG) * s
    mid_r, half_r = np.mean(CAMERA_RADIUS), 0.4 * np.ptp(CAMERA_RADIUS)
    mid_e, half_e = np.mean(ELEVATION_DEG), 0.4 * np.ptp(ELEVATION_DEG)
    radius = mid_r + half_r * np.sin(2 * math.pi * 1.5 * s + phase_r)
    el = np.radians(mid_e + half_e * np.sin(2 * math.pi * s + phase_e))
    return torch.stack(
        [orbit_pose(float(a), float(e), float(r)) for a, e, r in zip(az, el, radius)]
    )


def unbounded_video_frames(
    n_frames: int,
    size: tuple[int, int],
    seed: int = 0,
    supersample: int = 2,
    detail: float = 0.0,
) -> list[np.ndarray]:
    """The frames of a phone-like walk-around video of the scene (`unbounded_video_poses`).

    Args:
        n_frames: number of frames. size: (width, height) in pixels; the field of view is the
            photos' (60 degrees wide). seed: the walk's start and drift. supersample: each
            pixel averages supersample^2 rays (a camera's anti-aliasing).
        detail: strength in [0, 1] of `nerfkit.data.synthetic.detail_texture` on the surfaces
            around the objects (not on the environment, where its fine blobs would be pixel
            noise). 0: the photos' plain surfaces, on which structure-from-motion finds too few
            matches to chain the frames (the checkers repeat, the environment is too far to
            triangulate); about 0.7: textured like real surfaces, so `nerfkit process` places
            every frame.
    Returns:
        `n_frames` uint8 arrays [height, width, 3] (RGB, opaque: every ray hits something).
    """
    w, h = size
    s = int(supersample)
    fine = (w * s, h * s)  # one ray per sub-pixel, averaged below
    frames = []
    for c2w in unbounded_video_poses(n_frames, seed):
        rgba, depth = _render_view(c2w, fine, detail=detail)
        if detail > 0:
            sky, _ = _render_view(c2w, fine, objects=(ENVIRONMENT,))
            rgba = torch.where(environment_mask(depth)[..., None], sky, rgba)
        frames.append(to_uint8(rgba[..., :3].reshape(h, s, w, s, 3).mean((1, 3))))
    return frames


def _render_view(
    c2w: Tensor,
    size: Sequence[int],
    supersample: int = 1,
    detail: float = 0.0,
    objects: tuple[Shape, ...] = UNBOUNDED_OBJECTS,
) -> tuple[Tensor, Tensor]:
    """One exact view of the scene, 60 degrees wide, from c2w [4, 4] at size (W, H): rgba
    [H, W, 4] and depth [H, W] float32 (`nerfkit.data.synthetic.render_ground_truth`)."""
    w, h = size
    return render_ground_truth(c2w, w, h, forward_focal(w), supersample, detail, objects)


def generate_unbounded_scene(
    out_dir: Path | str,
    size: tuple[int, int] = (64, 48),
    n_views: int = 40,
    seed: int = 0,
    supersample: int = 2,
) -> Path:
    """Write the unbounded 360° procedural scene as a transforms.json folder (module docstring).

    Each of the `n_views` photos is `size` = (width, height) pixels, 60 degrees wide, each pixel
    the mean of `supersample`^2 rays; depths and the environment mask are at pixel centres.
    Caching as for every procedural scene (`nerfkit.data.synthetic.install_scene`): the folder
    appears atomically, a complete one with the same parameters is kept, an older or different
    scene is replaced, any other non-empty folder is a DataError. Returns `out_dir` as a Path.
    """
    w, h = size
    params = {"scene": "unbounded", "version": UNBOUNDED_SCENE_VERSION}
    params |= synthetic.counts(
        width=(w, 1), height=(h, 1), n_views=(n_views, 1), supersample=(supersample, 1)
    )
    params["seed"] = int(seed)
    return synthetic.install_scene(Path(out_dir), params, _write_unbounded_scene, _is_complete)


def _is_complete(root: Path, params: dict) -> bool:
    """True if `root` holds a finished unbounded scene generated with exactly `params`."""
    names = ["transforms.json", "depths.npy", "env_mask.npy"]
    names += [f"{IMAGE_FOLDER}/{name}" for name in image_names(params["n_views"])]
    return synthetic.marker_matches(root, params) and all((root / name).is_file() for name in names)


def _write_unbounded_scene(root: Path, params: dict) -> None:
    w, h, n = params["width"], params["height"], params["n_views"]
    focal, names = forward_focal(w), image_names(n)
    poses = unbounded_camera_poses(n, params["seed"])
    views = [_render_view(m, (w, h), params["supersample"]) for m in poses]
    (root / IMAGE_FOLDER).mkdir()
    for name, (rgba, _) in zip(names, views):
        synthetic.write_png8(root / IMAGE_FOLDER / name, rgba[..., :3])  # every ray hits: opaque
    depths = torch.stack([depth for _, depth in views])  # float32 [N, H, W]
    np.save(root / "depths.npy", depths.numpy())
    np.save(root / "env_mask.npy", environment_mask(depths).numpy())
    frames = [
        {"file_path": f"{IMAGE_FOLDER}/{name}", "transform_matrix": m.tolist()}
        for name, m in zip(names, poses)
    ]
    meta = {
        "camera_model": "PINHOLE",
        "fl_x": focal,
        "fl_y": focal,
        "cx": w / 2,
        "cy": h / 2,
        "w": w,
        "h": h,
        "frames": frames,
    }
    with open(root / "transforms.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    synthetic.write_marker(root, "nerfkit.data.synthetic_360", params)
