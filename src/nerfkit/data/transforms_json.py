"""nerfstudio / instant-ngp `transforms.json`: one file describing every frame.

Keys read (top level, each overridable per frame): `fl_x`, `fl_y` (or `camera_angle_x`,
`camera_angle_y`), `cx`, `cy` (default: the image centre), `w`, `h` (default: the image size),
`camera_model` (PINHOLE / SIMPLE_PINHOLE / OPENCV / OPENCV_FISHEYE; absent: OPENCV if any
coefficient is non-zero, OPENCV_FISHEYE if instant-ngp's `is_fisheye`), `k1`..`k4`, `p1`, `p2`.
Each frame has `file_path` (relative to the folder; ".png" is appended when it has no image
extension) and `transform_matrix`, a camera-to-world matrix ALREADY in the OpenGL frame (both
nerfstudio and instant-ngp store it that way; instant-ngp's own conversion to its internal frame,
`scale`/`offset` and axis cycling, happens inside instant-ngp and is not applied here).
Distorted pixels are undistorted exactly when rays are generated (nerfkit.distortion).

Splits: `train_filenames` / `val_filenames` / `test_filenames` (paths as in `file_path`) when
present; otherwise frames sorted by `file_path` and every 8th (0, 8, ...) held out for test (and
val). `--downscale K` reads `images_K/<name>` when every frame has such a copy (as nerfstudio
writes them) and the frames give `w` and `h`, else downscales in memory (nerfkit.data.core).

Normalisation (`normalize=True`, the default, as nerfstudio's auto-orient "up" + auto-scale):
the poses are centred on the mean camera position, rotated so that the mean camera up vector is
world +z (as in Blender scenes) and scaled so that every camera position lies in [-1, 1]^3. The
4x4 similarity is saved as SceneMeta.data_transform (scene = T @ file).

Scene box (SceneMeta.aabb): with instant-ngp's `aabb_scale` k, the box instant-ngp renders: a cube
of side k around its unit cube, i.e. (box - offset) / scale in the file's frame (`scale` default
0.33, `offset` default 0.5), mapped through the normalisation. Without it: [-1, 1]^3 after
normalisation (nerfstudio's scene box), else the cube centred on the cameras that holds them.
near/far: the file's `near`/`far` if present (scaled with the poses); else near = 0.05 x the
camera spread (0.05 after normalisation) and far = the distance from the cameras to the farthest
corner of the box.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from nerfkit.data.core import (
    HOLD,
    Frame,
    hold_out,
    normalize_frames,
    resolve_image,
    scene_from_frames,
)
from nerfkit.data.io import read_json
from nerfkit.data.scene import Scene
from nerfkit.errors import DataError
from nerfkit.poses import far_from_box, scene_kind, similarity_scale, transform_box

MODELS = {
    "PINHOLE": "pinhole",
    "SIMPLE_PINHOLE": "pinhole",
    "OPENCV": "opencv",
    "OPENCV_FISHEYE": "opencv_fisheye",
}
DIST_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def is_transforms_json(root: Path) -> bool:
    return (root / "transforms.json").is_file()


def _norm_name(p: str) -> str:
    return str(PurePosixPath(*[s for s in PurePosixPath(p.replace("\\", "/")).parts if s != "."]))


def _num(v: object, where: str, key: str) -> float:
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{where}: '{key}' is not a number ({v!r})") from None
    if not np.isfinite(x):
        raise DataError(f"{where}: '{key}' is not finite")
    return x


def _camera(meta: dict, fr: dict, where: str) -> dict:
    """One frame's intrinsics as Frame fields (frame keys override top-level ones)."""

    def get(k: str) -> float | None:
        v = fr.get(k, meta.get(k))
        return None if v is None else _num(v, where, k)

    w, h = get("w"), get("h")
    k = {
        "w": None if w is None else int(w),
        "h": None if h is None else int(h),
        "fx": get("fl_x"),
        "fy": get("fl_y"),
        "fov_x": get("camera_angle_x"),
        "fov_y": get("camera_angle_y"),
        "cx": get("cx"),
        "cy": get("cy"),
    }
    if k["fx"] is None and k["fov_x"] is None:
        raise DataError(f"{where}: needs 'fl_x' (or 'camera_angle_x'); add the focal length")
    dist = [get(key) or 0.0 for key in DIST_KEYS]
    cm = fr.get("camera_model", meta.get("camera_model"))
    if cm is None:
        if fr.get("is_fisheye", meta.get("is_fisheye")):
            model = "opencv_fisheye"
        else:
            model = "opencv" if any(dist) else "pinhole"
    else:
        if str(cm).upper() not in MODELS:
            raise DataError(
                f"{where}: camera_model '{cm}' not supported (known: {', '.join(MODELS)})"
            )
        model = MODELS[str(cm).upper()]
    return dict(k, model=model, distortion=dist)


def read_frames(root: Path, meta: dict, jpath: Path) -> tuple[list[Frame], list[str]]:
    """The frames of a transforms.json sorted by file_path (poses as stored), and their
    normalised file paths (as the split lists name frames)."""
    frames = meta.get("frames")
    if not isinstance(frames, list):
        raise DataError(f"{jpath}: no 'frames' list")
    if not frames:
        raise DataError(f"{jpath}: 'frames' is empty; add frames")
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
            raise DataError(f"{jpath} frame {i}: needs 'file_path' and 'transform_matrix'")
    frames = sorted(frames, key=lambda fr: _norm_name(str(fr["file_path"])))
    paths = [_norm_name(str(fr["file_path"])) for fr in frames]
    out = []
    for fr, path in zip(frames, paths):
        where = f"{jpath} frame '{fr['file_path']}'"
        out.append(
            Frame(
                image=resolve_image(root, str(fr["file_path"])),
                c2w=fr["transform_matrix"],
                name=PurePosixPath(path).stem,
                where=where,
                **_camera(meta, fr, where),
            )
        )
    return out, paths


def load_transforms_json(
    root: Path,
    downscale: int = 1,
    normalize: bool = True,
    hold: int = HOLD,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Scene:
    """Load a nerfstudio / instant-ngp transforms.json scene (see the module docstring).

    Args:
        root: folder with transforms.json (image paths are relative to it).
        downscale: integer image size divisor.
        normalize: centre, orient (mean up -> +z) and scale the poses into [-1, 1]^3.
        hold: without split lists, every `hold`-th frame is held out for test/val.
        background: colour RGBA images are composited onto.
    """
    root = Path(root)
    jpath = root / "transforms.json"
    meta = read_json(jpath)
    if not isinstance(meta, dict):
        raise DataError(f"{jpath}: expected a JSON object with a 'frames' list")
    frames, paths = read_frames(root, meta, jpath)
    split_idx = _splits(meta, paths, jpath, hold)

    frames, t = normalize_frames(frames, normalize)
    c2w = np.stack([f.c2w for f in frames])
    s = similarity_scale(t)

    # scene box and bounds
    spread = float(np.abs(c2w[:, :3, 3] - c2w[:, :3, 3].mean(0)).max()) or 1.0
    if "aabb_scale" in meta:
        kk = _num(meta["aabb_scale"], str(jpath), "aabb_scale")
        ngp_scale = _num(meta.get("scale", 0.33), str(jpath), "scale")
        off = meta.get("offset", [0.5, 0.5, 0.5])
        off = np.asarray(off, dtype=np.float64) if _is_vec3(off) else np.full(3, 0.5)
        # instant-ngp cycles axes: its (x, y, z) are the file's (y, z, x)
        centre = (0.5 - off[[2, 0, 1]]) / ngp_scale
        half = 0.5 * kk / ngp_scale
        box = transform_box(np.stack([centre - half, centre + half]), t)
    elif normalize:
        box = np.array([[-1.0] * 3, [1.0] * 3])
    else:
        mid = c2w[:, :3, 3].mean(0)
        box = np.stack([mid - spread, mid + spread])
    if "near" in meta or "far" in meta:
        near = _num(meta.get("near", 0.05 * spread / s), str(jpath), "near") * s
        far = _num(meta.get("far", far_from_box(c2w, box) / s), str(jpath), "far") * s
    else:
        near = 0.05 * spread
        far = max(far_from_box(c2w, box), 10.0 * near)
    if not 0 <= near < far:
        raise DataError(f"{jpath}: near {near} must be below far {far}")

    return scene_from_frames(
        frames,
        split_idx,
        root=root,
        source=jpath,
        downscale=downscale,
        background=background,
        near=float(near),
        far=float(far),
        kind=scene_kind(c2w),
        aabb=box.tolist(),
        format="transforms_json",
        data_transform=t.tolist() if normalize else [],
    )


def _is_vec3(v: object) -> bool:
    return isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v)


def _splits(meta: dict, names: list[str], jpath: Path, hold: int) -> dict[str, list[int]]:
    """Frame indices per split from `<split>_filenames`, else every `hold`-th frame for test."""
    index = {n: i for i, n in enumerate(names)}

    def listed(key: str) -> list[int] | None:
        if key not in meta:
            return None
        vals = meta[key]
        if not isinstance(vals, list):
            raise DataError(f"{jpath}: '{key}' must be a list of file paths")
        out = []
        for v in vals:
            n = _norm_name(str(v))
            if n not in index:
                raise DataError(f"{jpath}: '{key}' names '{v}', which no frame has")
            out.append(index[n])
        if not out:
            raise DataError(f"{jpath}: '{key}' is empty; list at least one frame or remove it")
        return sorted(out)

    train = listed("train_filenames")
    test = listed("test_filenames")
    val = listed("val_filenames")
    if train is None and test is None and val is None:
        return hold_out(len(names), hold)
    if train is None:
        held = set(test or []) | set(val or [])
        train = [i for i in range(len(names)) if i not in held]
    if test is None:
        test = val if val is not None else sorted(set(range(len(names))) - set(train))
    return {"train": train, "test": test, "val": val if val is not None else test}
