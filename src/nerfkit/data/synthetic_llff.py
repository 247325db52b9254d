"""A procedural forward-facing scene, ray-traced exactly, in the LLFF layout.

The tracer, shapes and shading are those of the object scene (`nerfkit.data.synthetic`; world +z
up, the same light). Here the cameras stand on a small jittered planar grid around the origin
(x in [-0.4, 0.4], z in [-0.25, 0.25]), all looking along +y at nearly the same point, like a
hand-held LLFF capture; in front of them lie a checkered floor (top at z = -1.5), a checkered
back wall (its face at y = 7.25) that fills every view, and objects at depths 1.7 to 6: a shiny
red sphere, a green box, a banded "beach ball" on the floor, a floating blue sphere and a yellow
pillar. At landscape sizes (width >= height) every pixel hits something, so the images are
opaque photos, as LLFF's are (elsewhere rays that miss are black, their depth inf).

Files (read with `nerfkit.data.llff.load_llff`):

- `poses_bounds.npy`: one row of 17 numbers per view, the 3x5 matrix [R | t | hwf] flattened
  row-major with the rotation columns in LLFF's [down, right, back] convention, the camera
  centre t and the image height, width and focal length in pixels, then the view's near and far
  bounds: the exact least and greatest depth (along the viewing axis) of its content;
- `images/image000.png`, ...: the RGB photos (8-bit), in the order of the rows;
- `depths.npy`: float32 [N, H, W], the exact distance along each unit pixel-centre ray to the
  first surface, in the units of poses_bounds.npy (the loader scales positions by
  1 / (0.75 min(bounds)), so multiply by that to compare with the loaded scene). The LLFF loader
  does not read it: it is ground truth for tests;
- `nerfkit_scene.json`: the generator's parameters (see `nerfkit.data.synthetic.install_scene`
  for the atomic writing and caching).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nerfkit.data.synthetic import (
    BEACH_BALL,
    BLUE_SPHERE,
    RED_SPHERE,
    Box,
    Shape,
    Sphere,
    counts,
    install_scene,
    marker_matches,
    render_ground_truth,
    write_marker,
    write_png8,
)
from nerfkit.poses import look_at

FORWARD_SCENE_VERSION = 1  # bump when the scene or the file layout changes
FOV_X_DEG = 60.0  # horizontal field of view
GRID_HALF = (0.4, 0.25)  # half extents in x and z of the camera grid (world units)
LOOK_AT = (0.0, 6.0, -0.5)  # every camera looks at this point, jittered per view
IMAGE_FOLDER = "images"

WALL = Box(
    centre=(0.0, 7.5, 0.5),
    half=(7.0, 0.25, 5.0),
    yaw=0.0,
    colour=(0.86, 0.80, 0.68),
    checker_colour=(0.45, 0.30, 0.22),
    checker_size=0.8,  # the face y = 7.25 lies inside a row of cubes, not on a boundary
)
FLOOR = Box(
    centre=(0.0, 3.75, -1.6),
    half=(7.0, 3.5, 0.1),
    yaw=0.0,
    colour=(0.93, 0.90, 0.82),
    checker_colour=(0.20, 0.36, 0.62),
    checker_size=0.6,  # the top z = -1.5 lies inside a layer of cubes
)
FORWARD_OBJECTS: tuple[Shape, ...] = (
    WALL,
    FLOOR,
    Sphere(
        centre=(0.55, 2.0, 0.2),
        radius=0.3,
        colour=RED_SPHERE.colour,
        specular=0.7,
        shininess=60.0,
    ),
    Box(
        centre=(0.9, 3.4, -1.0),
        half=(0.5, 0.5, 0.5),
        yaw=math.radians(30.0),
        colour=(0.16, 0.66, 0.26),
    ),
    Sphere(
        centre=(-0.2, 4.8, -0.8),
        radius=0.7,
        colour=BEACH_BALL.colour,
        specular=0.15,
        shininess=20.0,
        band_colour=BEACH_BALL.band_colour,
    ),
    Sphere(
        centre=(-1.0, 5.6, 1.0), radius=0.4, colour=BLUE_SPHERE.colour, specular=0.8, shininess=80.0
    ),
    Box(
        centre=(-2.2, 6.2, 0.0),
        half=(0.35, 0.35, 1.5),
        yaw=math.radians(20.0),
        colour=(0.95, 0.75, 0.20),
    ),
)


def forward_focal(width: int) -> float:
    """Focal length in pixels of a `width`-pixel image with the scene's field of view."""
    return 0.5 * width / math.tan(math.radians(0.5 * FOV_X_DEG))


def forward_camera_poses(n_views: int, seed: int = 0) -> Tensor:
    """Camera-to-world matrices [N, 4, 4] (float64, OpenGL frame), all facing +y.

    The cameras fill a grid of ceil(sqrt(1.25 N)) columns in raster order over
    [-0.4, 0.4] x [-0.25, 0.25] (x, z) at y = 0, each moved (seeded) by up to a quarter of the
    grid spacing in x and z and 0.05 in y, and looks at LOOK_AT moved by up to 0.2 in x and z,
    with world +z up.
    """
    rng = np.random.default_rng(seed)
    cols = math.ceil(math.sqrt(1.25 * n_views))
    rows = math.ceil(n_views / cols)
    xs = np.linspace(-GRID_HALF[0], GRID_HALF[0], cols) if cols > 1 else np.zeros(1)
    zs = np.linspace(GRID_HALF[1], -GRID_HALF[1], rows) if rows > 1 else np.zeros(1)
    step = np.array([2 * GRID_HALF[0] / max(cols - 1, 1), 0.2, 2 * GRID_HALF[1] / max(rows - 1, 1)])
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    out = []
    for k in range(n_views):
        eye = np.array([xs[k % cols], 0.0, zs[k // cols]]) + rng.uniform(-0.25, 0.25, 3) * step
        target = np.array(LOOK_AT) + rng.uniform(-0.2, 0.2, 3) * np.array([1.0, 0.0, 1.0])
        out.append(look_at(torch.from_numpy(eye), torch.from_numpy(target), up))
    return torch.stack(out)


def llff_rows(
    c2w: np.ndarray, bounds: np.ndarray, height: int, width: int, focal: float
) -> np.ndarray:
    """poses_bounds.npy rows from OpenGL camera-to-worlds.

    Args:
        c2w: [N, 4, 4] (or [N, 3, 4]) camera-to-world, columns [right, up, back, centre].
        bounds: [N, 2] near and far depths of each view's content.
        height, width, focal: image size and focal length in pixels (the `hwf` column).
    Returns:
        [N, 17] float64: [down, right, back, centre, hwf] as a row-major 3x5, then the bounds.
    """
    c2w = np.asarray(c2w, dtype=np.float64)[:, :3, :4]
    n = c2w.shape[0]
    hwf = np.broadcast_to(np.array([height, width, focal], dtype=np.float64)[:, None], (n, 3, 1))
    mat = np.concatenate([-c2w[:, :, 1:2], c2w[:, :, 0:1], c2w[:, :, 2:4], hwf], axis=2)
    return np.concatenate([mat.reshape(n, 15), np.asarray(bounds, dtype=np.float64)], axis=1)


def axial_depth(distance: Tensor, focal: float) -> Tensor:
    """Depth along the viewing axis (camera -z) from the distance along unit pixel-centre rays.

    Args:
        distance: [H, W] distance t along each unit ray (principal point at the image centre,
            pixel centres at +0.5); focal: focal length in pixels.
    Returns:
        [H, W] t / |(x, y, 1)| where (x, y) is the pixel's offset from the centre over `focal`.
    """
    h, w = distance.shape
    x = (torch.arange(w, dtype=torch.float64) + 0.5 - w / 2) / focal
    y = (torch.arange(h, dtype=torch.float64) + 0.5 - h / 2) / focal
    norm = torch.sqrt(1.0 + x[None, :] ** 2 + y[:, None] ** 2)
    return (distance.double() / norm).to(distance.dtype)


def image_names(n_views: int) -> list[str]:
    """File names of the photos, in the order of the poses_bounds.npy rows."""
    digits = max(3, len(str(n_views - 1)))
    return [f"image{i:0{digits}d}.png" for i in range(n_views)]


def generate_forward_scene(
    out_dir: Path,
    size: tuple[int, int] = (64, 48),
    n_views: int = 20,
    seed: int = 0,
    supersample: int = 2,
) -> Path:
    """Write the forward-facing procedural scene in the LLFF layout (see the module docstring).

    Views are `size` = (width, height) pixels (60 degrees across); `supersample`^2 rays per pixel
    anti-alias the photos (the depth maps are at pixel centres). The folder appears
    atomically; calling again with the same parameters on a complete folder returns at once; a
    folder made by an older version or with other parameters is replaced; any other non-empty
    folder is an error (DataError).

    Returns:
        out_dir.
    """
    width, height = size
    sizes = counts(
        width=(width, 1), height=(height, 1), n_views=(n_views, 1), supersample=(supersample, 1)
    )
    params = {"scene": "forward", "version": FORWARD_SCENE_VERSION, **sizes, "seed": int(seed)}
    return install_scene(Path(out_dir), params, _write_forward_scene, _is_complete)


def _is_complete(root: Path, params: dict) -> bool:
    """True if `root` holds a finished forward scene generated with exactly `params`."""
    files = [root / "poses_bounds.npy", root / "depths.npy"]
    files += [root / IMAGE_FOLDER / name for name in image_names(params["n_views"])]
    return marker_matches(root, params) and all(p.is_file() for p in files)


def _write_forward_scene(root: Path, params: dict) -> None:
    w, h, n = params["width"], params["height"], params["n_views"]
    focal = forward_focal(w)
    poses = forward_camera_poses(n, params["seed"])
    (root / IMAGE_FOLDER).mkdir()
    depths, bounds = [], []
    for c2w, name in zip(poses, image_names(n)):
        rgba, depth = render_ground_truth(
            c2w, w, h, focal, params["supersample"], objects=FORWARD_OBJECTS
        )
        write_png8(root / IMAGE_FOLDER / name, rgba[..., :3] * rgba[..., 3:])  # over black
        z = axial_depth(depth, focal)
        z = z[torch.isfinite(z)]
        bounds.append([float(z.min()), float(z.max())])
        depths.append(depth.numpy().astype(np.float32))
    np.save(root / "depths.npy", np.stack(depths))
    np.save(root / "poses_bounds.npy", llff_rows(poses.numpy(), np.array(bounds), h, w, focal))
    write_marker(root, "nerfkit.data.synthetic_llff", params)
