"""The LLFF format (real forward-facing scenes): poses_bounds.npy + images/, images_4/, images_8/.

poses_bounds.npy holds N rows of 17 numbers: a 3x5 matrix [R | t | hwf] flattened row-major
(rotation columns [down, right, back], camera centre t, and the FULL-SIZE image height, width and
focal length in pixels), then the near and far depth bounds of the scene content in that view.

Processing follows the reference `load_llff_data(recenter=True, bd_factor=0.75)` of the NeRF code:

1. rotation columns [down, right, back] -> [right, up, back] (OpenGL, docs/conventions.md);
2. scale positions and bounds by 1 / (0.75 * min(bounds)), so the nearest content lies at depth
   ~1.33 and the NDC near plane (depth 1) is in front of everything;
3. recentre: express all poses in the frame of the average pose (mean position, mean viewing
   direction along -z, mean up), so the scene lies roughly along -z of the origin;
4. every 8th image (0, 8, 16, ...) is the test split (and the val split, as in the reference).

Steps 2 and 3 are `nerfkit.poses.forward_facing_frame`, which forward-facing COLMAP and
transforms.json captures share; the similarity they apply is SceneMeta.data_transform.

Rays are mapped to NDC (near plane at depth 1, bounds 0..1 along the NDC ray), so SceneMeta has
ndc=True, near=0, far=1 and an NDC aabb of [-1, 1]^3; the rescaled scene-space bounds are kept in
SceneMeta.bounds for spiral render paths (see `nerfkit.paths.spiral_path`).

Image folders (`nerfkit.data.core.image_folder`): `--downscale K` reads `images_K/` (or, if
absent, a folder `images_F/` with F dividing K, downscaled by K/F in memory, or `images/`). With
the default K = 1 and no full-size `images/` (the NeRF release of flower ships only `images_8/`),
the least-downscaled folder present is used and a warning says so, so that `--data DIR` alone
trains. The focal length is the full-size one from poses_bounds.npy scaled by (image width / full
width).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfkit.data.core import HOLD, Frame, image_folder, list_images, ndc_facts, scene_from_frames
from nerfkit.data.scene import Scene
from nerfkit.errors import DataError
from nerfkit.poses import forward_facing_frame


def is_llff(root: Path) -> bool:
    return (root / "poses_bounds.npy").is_file()


def read_poses_bounds(npy: Path) -> tuple[np.ndarray, np.ndarray]:
    """poses_bounds.npy -> (poses [N, 3, 5] as stored, bounds [N, 2]), checked."""
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
    return poses, bds


def load_llff(
    root: Path,
    downscale: int = 1,
    ndc: bool = True,
    hold: int = HOLD,
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
    poses, bds = read_poses_bounds(npy)
    picked = image_folder(root, downscale)
    if picked is None:
        raise DataError(
            f"{root}: poses_bounds.npy but no images/, images_4/ or images_8/ folder; "
            "put the photos next to poses_bounds.npy"
        )
    folder, extra = picked
    files = list_images(folder)
    if len(files) != poses.shape[0]:
        raise DataError(
            f"{npy}: {poses.shape[0]} poses but {len(files)} images in {folder}; "
            "the folder must hold exactly the images the poses were computed from"
        )

    # [down, right, back] -> [right, up, back]
    c2w = np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:4]], axis=2)
    c2w, bds, t = forward_facing_frame(c2w, bds)  # steps 2 and 3
    for i in range(c2w.shape[0]):
        if np.linalg.det(c2w[i, :3, :3]) < 0:
            raise DataError(f"{npy}: row {i} rotation is a reflection (det -1); re-create the file")

    full_h, full_w, full_f = poses[0, :, 4]
    frames = [
        Frame(
            image=p,
            c2w=c2w[i],
            name=p.stem,
            where=f"{npy} row {i}",
            w=full_w,
            h=full_h,
            fx=full_f,
            fy=full_f,
            resized=True,  # images_K/ hold the photos at any size: the focal scales with it
        )
        for i, p in enumerate(files)
    ]
    facts = ndc_facts(bds, t)
    if not ndc:
        facts.update(
            near=float(bds.min() * 0.9), far=float(bds.max()), ndc=False, aabb=_scene_aabb(c2w, bds)
        )
    return scene_from_frames(
        frames,
        hold,
        root=root,
        source=npy,
        downscale=extra,
        background=background,
        format="llff",
        **facts,
    )


def _scene_aabb(c2w: np.ndarray, bds: np.ndarray) -> list[list[float]]:
    """A box holding the cameras and the content up to the far bound (non-NDC mode)."""
    o = c2w[:, :3, 3]
    fwd = o - c2w[:, :3, 2] * bds[:, 1:2]  # content straight ahead at the far bound
    pts = np.concatenate([o, fwd], 0)
    return [pts.min(0).tolist(), pts.max(0).tolist()]
