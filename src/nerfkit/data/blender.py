"""The Blender / NeRF-synthetic format: transforms_{train,val,test}.json + images.

Each split file has `camera_angle_x` (the horizontal field of view) and `frames`, each with a
`file_path` (".png" appended when it has no image extension) and a camera-to-world
`transform_matrix` in the OpenGL frame; optional per frame: `time` (D-NeRF), `depth_file_path`
(a .npy, nerfkit's procedural scene). Top-level `near`, `far`, `aabb` override the defaults.
"""

from __future__ import annotations

from pathlib import Path

from nerfkit.data.core import Frame, resolve_image, scene_from_frames
from nerfkit.data.io import read_json
from nerfkit.data.scene import Scene
from nerfkit.errors import DataError

SPLITS = ("train", "val", "test")


def is_blender(root: Path) -> bool:
    return (root / "transforms_train.json").is_file()


def split_frames(root: Path, split: str) -> tuple[list[Frame], dict]:
    """The frames of transforms_<split>.json and its top-level scene hints (near, far, aabb)."""
    jpath = root / f"transforms_{split}.json"
    meta = read_json(jpath)
    frames = meta.get("frames")
    if not isinstance(frames, list):
        raise DataError(f"{jpath}: no 'frames' list")
    if not frames:
        raise DataError(f"{jpath}: the split has no frames; add frames or remove the file")
    if "camera_angle_x" not in meta:
        raise DataError(f"{jpath}: missing 'camera_angle_x'")
    out = []
    for i, fr in enumerate(frames):
        where = f"{jpath} frame {i}"
        if "file_path" not in fr or "transform_matrix" not in fr:
            raise DataError(f"{where}: needs 'file_path' and 'transform_matrix'")
        out.append(
            Frame(
                image=resolve_image(root, fr["file_path"]),
                c2w=fr["transform_matrix"],
                name=Path(fr["file_path"]).stem,
                where=where,
                fov_x=float(meta["camera_angle_x"]),
                time=float(fr["time"]) if "time" in fr else None,
                depth=root / fr["depth_file_path"] if "depth_file_path" in fr else None,
            )
        )
    return out, {k: meta[k] for k in ("near", "far", "aabb") if k in meta}


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
    if not is_blender(root):
        raise DataError(f"{root}: transforms_train.json not found")
    frames: list[Frame] = []
    split_idx: dict[str, list[int]] = {}
    hints: dict = {}
    for s in splits:
        if (root / f"transforms_{s}.json").is_file():
            fr, h = split_frames(root, s)
            split_idx[s] = list(range(len(frames), len(frames) + len(fr)))
            frames += fr
            hints.update(h)
    return scene_from_frames(
        frames,
        split_idx,
        root=root,
        source=root,
        downscale=downscale,
        background=background,
        near=float(hints.get("near", near)),
        far=float(hints.get("far", far)),
        aabb=hints.get("aabb", [[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]]),
        format="blender",
    )
