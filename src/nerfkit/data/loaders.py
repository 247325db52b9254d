"""Format detection: `--data DIR` -> the loader that understands it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nerfkit.data.blender import is_blender, load_blender
from nerfkit.data.colmap import is_colmap, load_colmap
from nerfkit.data.dnerf_npz import is_npz, load_npz
from nerfkit.data.llff import is_llff, load_llff
from nerfkit.data.nerfies import is_nerfies, load_nerfies
from nerfkit.data.scene import Scene
from nerfkit.data.transforms_json import is_transforms_json, load_transforms_json
from nerfkit.errors import DataError

# name -> (detector, loader(root, downscale) -> Scene, what the detector looks for).
# Detection tries them in this order; the first match wins.
FORMATS: dict[str, tuple[Callable[[Path], bool], Callable[..., Scene], str]] = {
    # first: a Nerfies capture may keep its COLMAP model (colmap/sparse/0) beside it
    "nerfies": (is_nerfies, load_nerfies, "dataset.json + scene.json + camera/"),
    "blender": (is_blender, load_blender, "transforms_train.json"),
    "transforms_json": (is_transforms_json, load_transforms_json, "transforms.json"),
    "llff": (is_llff, load_llff, "poses_bounds.npy"),
    "colmap": (is_colmap, load_colmap, "sparse/0/ or sparse/ with cameras.bin|txt"),
    "npz": (is_npz, load_npz, "one .npz with images, poses, focal"),
}
NDC_FORMATS = ("llff", "colmap", "transforms_json")  # the loaders that take `ndc`


def detect_format(root: Path) -> str:
    for name, (detect, _, _) in FORMATS.items():
        if detect(root):
            return name
    looked = "; ".join(f"{n}: {w}" for n, (_, _, w) in FORMATS.items())
    raise DataError(
        f"{root}: unknown dataset layout (looked for {looked}); pass --format or fix the folder"
    )


def load_scene(
    path: str | Path, format: str | None = None, downscale: int = 1, ndc: bool | None = None
) -> Scene:
    """Load any supported dataset folder into a Scene.

    Args:
        path: dataset folder. format: force a format by name (see FORMATS), else detect.
        downscale: integer factor dividing image size and focal length.
        ndc: NDC rays for forward-facing scenes: True / False forces them on or off (formats in
            NDC_FORMATS); None: the format's choice (LLFF: on; COLMAP, transforms.json: when
            the cameras are forward-facing, `nerfkit.poses.is_forward_facing`).
    """
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found; check --data")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; --data takes the dataset's folder")
    if downscale < 1:
        raise DataError(f"--downscale must be >= 1, got {downscale}")
    name = format or detect_format(root)
    if name not in FORMATS:
        raise DataError(f"unknown --format '{name}'; known: {', '.join(FORMATS)}")
    if ndc is None or (not ndc and name not in NDC_FORMATS):
        return FORMATS[name][1](root, downscale=downscale)
    if name not in NDC_FORMATS:
        raise DataError(
            f"{root}: NDC rays are for forward-facing formats ({', '.join(NDC_FORMATS)}), "
            f"not {name}; load it without them"
        )
    return FORMATS[name][1](root, downscale=downscale, ndc=ndc)
