"""The Blender / NeRF-synthetic format: transforms_{train,val,test}.json + images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nerfkit.cameras import Cameras
from nerfkit.data.io import downscale_image, read_image, read_json, rgb_tensor
from nerfkit.data.scene import Scene, Split
from nerfkit.errors import DataError

SPLITS = ("train", "val", "test")


def is_blender(root: Path) -> bool:
    return (root / "transforms_train.json").is_file()


def check_pose(m: np.ndarray, where: str) -> None:
    """Reject camera matrices that are non-finite or whose rotation is not rigid."""
    if m.shape not in ((4, 4), (3, 4)):
        raise DataError(f"{where}: transform_matrix has shape {m.shape}, expected 4x4 or 3x4")
    if not np.all(np.isfinite(m)):
        raise DataError(f"{where}: transform_matrix has non-finite values")
    r = m[:3, :3]
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-3) or abs(np.linalg.det(r) - 1) > 1e-3:
        raise DataError(
            f"{where}: transform_matrix rotation is not rigid (not orthonormal with det +1)"
        )


def _resolve_image(root: Path, file_path: str) -> Path:
    p = root / file_path
    if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".exr", ".webp"):
        return p
    return p.with_name(p.name + ".png")


def load_split(
    root: Path, split: str, background: np.ndarray, downscale: int = 1
) -> tuple[Split, float | None]:
    """Load one transforms_<split>.json. Returns the split and the file's `near`/`far` hint."""
    jpath = root / f"transforms_{split}.json"
    meta = read_json(jpath)
    frames = meta.get("frames")
    if not isinstance(frames, list):
        raise DataError(f"{jpath}: no 'frames' list")
    if not frames:
        raise DataError(f"{jpath}: the split has no frames; add frames or remove the file")
    if "camera_angle_x" not in meta:
        raise DataError(f"{jpath}: missing 'camera_angle_x'")
    images, poses, names, depths, times = [], [], [], [], []
    size = None
    for i, fr in enumerate(frames):
        where = f"{jpath} frame {i}"
        if "file_path" not in fr or "transform_matrix" not in fr:
            raise DataError(f"{where}: needs 'file_path' and 'transform_matrix'")
        ipath = _resolve_image(root, fr["file_path"])
        img = read_image(ipath)
        if size is None:
            size = img.shape[:2]
        elif img.shape[:2] != size:
            raise DataError(
                f"{ipath}: size {img.shape[1]}x{img.shape[0]} differs from the split's "
                f"{size[1]}x{size[0]}; all images of a split must have one size"
            )
        images.append(rgb_tensor(img, background, downscale))
        m = np.asarray(fr["transform_matrix"], dtype=np.float64)
        check_pose(m, where)
        if m.shape == (3, 4):
            m = np.concatenate([m, [[0, 0, 0, 1]]], 0)
        poses.append(m)
        names.append(Path(fr["file_path"]).stem)
        if "depth_file_path" in fr:
            dpath = root / fr["depth_file_path"]
            if not dpath.is_file():
                raise DataError(f"{dpath}: depth map not found")
            d = torch.from_numpy(np.load(dpath).astype(np.float32))
            if downscale > 1:
                d = downscale_image(d[..., None], downscale)[..., 0]
            depths.append(d)
        if "time" in fr:
            times.append(float(fr["time"]))
    h, w = size
    focal = 0.5 * w / np.tan(0.5 * float(meta["camera_angle_x"]))
    n = len(frames)
    cams = Cameras(
        c2w=torch.tensor(np.stack(poses), dtype=torch.float32),
        fx=torch.full((n,), focal, dtype=torch.float32),
        fy=torch.full((n,), focal, dtype=torch.float32),
        cx=torch.full((n,), w / 2.0, dtype=torch.float32),
        cy=torch.full((n,), h / 2.0, dtype=torch.float32),
        width=w,
        height=h,
    ).scaled(downscale)
    return (
        Split(
            images=torch.stack(images),
            cameras=cams,
            names=names,
            depths=torch.stack(depths) if len(depths) == n else None,
            times=torch.tensor(times) if len(times) == n else None,
        ),
        meta.get("near"),
    )


def load_blender(
    root: Path,
    downscale: int = 1,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    near: float = 2.0,
    far: float = 6.0,
    splits: tuple[str, ...] = SPLITS,
) -> Scene:
    """Load a Blender-format scene (NeRF-synthetic, D-NeRF, nerfkit's procedural scene).

    RGBA images are composited onto `background` (white for the synthetic scenes). near/far
    default to the paper's 2 and 6; a top-level "near"/"far" in the JSON overrides them.
    """
    bg = np.asarray(background, dtype=np.float32)
    out: dict[str, Split] = {}
    hints: dict = {}
    for s in splits:
        if (root / f"transforms_{s}.json").is_file():
            out[s], _ = load_split(root, s, bg, downscale)
            m = read_json(root / f"transforms_{s}.json")
            hints.update({k: m[k] for k in ("near", "far", "aabb") if k in m})
    if "train" not in out:
        raise DataError(f"{root}: transforms_train.json not found")
    near, far = float(hints.get("near", near)), float(hints.get("far", far))
    return Scene.from_splits(
        out,
        near=near,
        far=far,
        background=bg.tolist(),
        ndc=False,
        kind="object",
        aabb=hints.get("aabb", [[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]]),
        data_path=str(root),
        format="blender",
    )
