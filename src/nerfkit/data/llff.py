"""The LLFF format (real forward-facing scenes): poses_bounds.npy + images/, images_4/, images_8/.

poses_bounds.npy holds N rows of 17 numbers: a 3x5 matrix [R | t | hwf] flattened row-major
(rotation columns [down, right, back], camera centre t, and the FULL-SIZE image height, width and
focal length in pixels), then the near and far depth bounds of the scene content in that view.

Processing follows the reference `load_llff_data(recenter=True, bd_factor=0.75)` of the NeRF code:

1. rotation columns [down, right, back] -> [right, up, back] (the OpenGL frame, DESIGN.md 2);
2. scale positions and bounds by 1 / (0.75 * min(bounds)), so the nearest content lies at depth
   ~1.33 and the NDC near plane (depth 1) is in front of everything;
3. recentre: express all poses in the frame of the average pose (mean position, mean viewing
   direction along -z, mean up), so the scene lies roughly along -z of the origin;
4. every 8th image (0, 8, 16, ...) is the test split (and the val split, as in the reference).

Rays are mapped to NDC (near plane at depth 1, bounds 0..1 along the NDC ray), so SceneMeta has
ndc=True, near=0, far=1 and an NDC aabb of [-1, 1]^3; the rescaled scene-space bounds are kept in
SceneMeta.bounds for spiral render paths (see `spiral_path`).

Image folders: `--downscale K` reads `images_K/` (or, if absent, a folder `images_F/` with F
dividing K, downscaled by K/F in memory, or `images/`). With the default K = 1 and no full-size
`images/` (the NeRF release of flower ships only `images_8/`), the least-downscaled folder present
is used and a warning says so, so that `--data DIR` alone trains. The focal length is the full-size
one from poses_bounds.npy scaled by (image width / full width).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch

from nerfkit.cameras import Cameras
from nerfkit.data.io import read_image, rgb_tensor
from nerfkit.data.scene import Scene, Split
from nerfkit.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
BD_FACTOR = 0.75
LLFF_HOLD = 8


def is_llff(root: Path) -> bool:
    return (root / "poses_bounds.npy").is_file()


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder, sorted by name (the LLFF order)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def view_matrix(z: np.ndarray, up: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Camera-to-world [3, 4] with back axis `z`, roughly-up `up`, position `pos` (each [3])."""
    z = _normalize(z)
    x = _normalize(np.cross(up, z))
    y = _normalize(np.cross(z, x))
    return np.stack([x, y, z, pos], 1)


def average_pose(c2w: np.ndarray) -> np.ndarray:
    """The reference `poses_avg`: mean position, back (+z) axis and up. [N, 3|4, 4] -> [3, 4]."""
    return view_matrix(c2w[:, :3, 2].sum(0), c2w[:, :3, 1].sum(0), c2w[:, :3, 3].mean(0))


def recenter_poses(c2w: np.ndarray) -> np.ndarray:
    """Express poses [N, 3|4, 4] in the frame of their average pose. Returns [N, 4, 4]."""
    n = c2w.shape[0]
    full = np.tile(np.eye(4), (n, 1, 1))
    full[:, :3, :4] = c2w[:, :3, :4]
    avg = np.eye(4)
    avg[:3, :4] = average_pose(full)
    return np.linalg.inv(avg) @ full


def spiral_path(
    c2w: np.ndarray | torch.Tensor,
    bounds: tuple[float, float] | list[float],
    n_frames: int = 120,
    n_rots: int = 2,
    zrate: float = 0.5,
) -> torch.Tensor:
    """The reference NeRF spiral render path for a (recentred, rescaled) forward-facing scene.

    The cameras circle the average pose with radii the 90th percentile of |positions| and look at
    a point at the "mean focus depth" 1 / (0.25 / (0.9 near) + 0.75 / (5 far)).

    Args:
        c2w: [N, 3|4, 4] training camera-to-world matrices (OpenGL frame).
        bounds: scene-space (near, far) content depths, e.g. SceneMeta.bounds.
        n_frames: number of poses; n_rots: turns of the spiral; zrate: turns of the depth wobble
            per turn of the spiral.
    Returns:
        [n_frames, 4, 4] camera-to-world matrices, float32.
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    avg = average_pose(c2w)
    up = _normalize(c2w[:, :3, 1].sum(0))
    close_depth, inf_depth = bounds[0] * 0.9, bounds[1] * 5.0
    dt = 0.75
    focus = 1.0 / ((1.0 - dt) / close_depth + dt / inf_depth)
    rads = np.append(np.percentile(np.abs(c2w[:, :3, 3]), 90, 0), 1.0)
    out = []
    for theta in np.linspace(0.0, 2.0 * np.pi * n_rots, n_frames + 1)[:-1]:
        local = np.array([np.cos(theta), -np.sin(theta), -np.sin(theta * zrate), 1.0]) * rads
        c = avg @ local
        z = _normalize(c - avg @ np.array([0.0, 0.0, -focus, 1.0]))
        m = np.eye(4)
        m[:3, :4] = view_matrix(z, up, c)
        out.append(m)
    return torch.tensor(np.stack(out), dtype=torch.float32)


def _image_folder(root: Path, downscale: int) -> tuple[Path, int]:
    """The folder to read for a downscale factor. Returns (folder, extra in-memory factor)."""
    found: dict[int, Path] = {}
    for p in root.iterdir():
        if not p.is_dir():
            continue
        if p.name == "images":
            found[1] = p
        elif m := re.fullmatch(r"images_(\d+)", p.name):
            found[int(m.group(1))] = p
    if not found:
        raise DataError(
            f"{root}: poses_bounds.npy but no images/, images_4/ or images_8/ folder; "
            "put the photos next to poses_bounds.npy"
        )
    have = ", ".join(found[f].name for f in sorted(found))
    if downscale in found:
        return found[downscale], 1
    divisors = [f for f in found if downscale % f == 0]
    if divisors:
        f = max(divisors)
        return found[f], downscale // f
    if downscale == 1:
        f = min(found)
        warnings.warn(
            f"{root}: no full-size images/ folder; using {found[f].name}/ (as --downscale {f})",
            stacklevel=3,
        )
        return found[f], 1
    raise DataError(
        f"{root}: no image folder for --downscale {downscale} (have: {have}); "
        "use a factor one of those folders divides"
    )


def load_llff(
    root: Path,
    downscale: int = 1,
    ndc: bool = True,
    hold: int = LLFF_HOLD,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Scene:
    """Load an LLFF scene (see the module docstring for the conventions).

    Args:
        root: folder with poses_bounds.npy and images*/ folders.
        downscale: image size divisor (picks images_<downscale>/).
        ndc: map rays to NDC (forward-facing); if False, near/far are 0.9 * min and max bounds.
        hold: every `hold`-th image is held out for test/val (0 keeps all for training).
        background: colour for transparent pixels (LLFF photos are opaque).
    """
    root = Path(root)
    npy = root / "poses_bounds.npy"
    try:
        arr = np.load(npy, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{npy}: cannot read ({e}); re-create it with LLFF's imgs2poses") from None
    if arr.ndim != 2 or arr.shape[1] != 17 or arr.shape[0] == 0:
        raise DataError(f"{npy}: shape {arr.shape}, expected N x 17 (3x5 pose + 2 bounds per row)")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.nonzero(~np.all(np.isfinite(arr), axis=1))[0][0])
        raise DataError(f"{npy}: row {bad} has non-finite values; re-create the file")
    poses = arr[:, :15].reshape(-1, 3, 5)
    bds = arr[:, 15:17]
    full_h, full_w, full_f = poses[0, :, 4]
    if np.any(bds <= 0) or full_h <= 0 or full_w <= 0 or full_f <= 0:
        raise DataError(f"{npy}: bounds and h, w, focal must be positive; re-create the file")
    for i in range(poses.shape[0]):
        r = poses[i, :, :3]
        if not np.allclose(r.T @ r, np.eye(3), atol=1e-3) or abs(abs(np.linalg.det(r)) - 1) > 1e-3:
            raise DataError(f"{npy}: row {i} rotation is not rigid (not orthonormal)")

    folder, extra = _image_folder(root, downscale)
    files = list_images(folder)
    if len(files) != poses.shape[0]:
        raise DataError(
            f"{npy}: {poses.shape[0]} poses but {len(files)} images in {folder}; "
            "the folder must hold exactly the images the poses were computed from"
        )

    # [down, right, back] -> [right, up, back]
    c2w = np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:4]], axis=2)
    sc = 1.0 / (bds.min() * BD_FACTOR)
    c2w[:, :, 3] *= sc
    bds = bds * sc
    c2w = recenter_poses(c2w)
    for i in range(c2w.shape[0]):
        if np.linalg.det(c2w[i, :3, :3]) < 0:
            raise DataError(f"{npy}: row {i} rotation is a reflection (det -1); re-create the file")

    bg = np.asarray(background, dtype=np.float32)
    images, size = [], None
    for p in files:
        img = read_image(p)
        if size is None:
            size = img.shape[:2]
        elif img.shape[:2] != size:
            raise DataError(
                f"{p}: size {img.shape[1]}x{img.shape[0]} differs from {files[0].name}'s "
                f"{size[1]}x{size[0]}; all LLFF images must have one size"
            )
        images.append(rgb_tensor(img, bg, extra))
    h, w = size
    sx, sy = w / full_w, h / full_h
    if abs(sx / sy - 1.0) > 0.02:
        raise DataError(
            f"{files[0]}: size {w}x{h} does not match the aspect of poses_bounds.npy's "
            f"{full_w:.0f}x{full_h:.0f}; are these the right images?"
        )
    n = len(files)
    cams = Cameras(
        c2w=torch.tensor(c2w, dtype=torch.float32),
        fx=torch.full((n,), full_f * sx, dtype=torch.float32),
        fy=torch.full((n,), full_f * sy, dtype=torch.float32),
        cx=torch.full((n,), w / 2.0, dtype=torch.float32),
        cy=torch.full((n,), h / 2.0, dtype=torch.float32),
        width=w,
        height=h,
    ).scaled(extra)
    imgs = torch.stack(images)
    names = [p.stem for p in files]

    idx = np.arange(n)
    test_idx = idx[::hold] if hold > 0 else np.array([], dtype=int)
    train_idx = np.setdiff1d(idx, test_idx)
    if len(train_idx) == 0:
        raise DataError(f"{npy}: only {n} image(s): nothing left for training after holding out")

    def make(ix: np.ndarray) -> Split:
        t = torch.as_tensor(ix, dtype=torch.long)
        return Split(images=imgs[t], cameras=cams[t], names=[names[i] for i in ix])

    splits = {"train": make(train_idx)}
    if len(test_idx):
        splits["test"] = make(test_idx)
        splits["val"] = splits["test"]
    near, far = (0.0, 1.0) if ndc else (float(bds.min() * 0.9), float(bds.max()))
    return Scene.from_splits(
        splits,
        near=near,
        far=far,
        background=bg.tolist(),
        ndc=ndc,
        kind="forward",
        aabb=[[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]] if ndc else _scene_aabb(c2w, bds),
        data_path=str(root),
        format="llff",
        bounds=[float(bds.min()), float(bds.max())],
    )


def _scene_aabb(c2w: np.ndarray, bds: np.ndarray) -> list[list[float]]:
    """A box holding the cameras and the content up to the far bound (non-NDC mode)."""
    o = c2w[:, :3, 3]
    fwd = o - c2w[:, :3, 2] * bds[:, 1:2]  # content straight ahead at the far bound
    pts = np.concatenate([o, fwd], 0)
    return [pts.min(0).tolist(), pts.max(0).tolist()]
