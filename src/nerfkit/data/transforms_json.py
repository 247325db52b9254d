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

Forward-facing captures (`nerfkit.poses.is_forward_facing`; `ndc=True`/`False` forces it) load
as LLFF scenes do when the depths of their content are known: from the file's `near` and `far`,
else from the point cloud `ply_file_path` names (nerfstudio and `nerfkit process` write one; its
points inside each frame's image give that frame's 1st..99th percentile depths). Then: NDC rays
(near 0, far 1, kind "forward"), poses scaled so the nearest content is at depth 1 / 0.75 and
recentred on their average pose instead of normalised (`nerfkit.data.core.ndc_frames`), the
scaled depths in SceneMeta.bounds and the similarity in SceneMeta.data_transform. Without depths
a warning says so and the capture loads as above.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from nerfkit.data.core import (
    HOLD,
    Frame,
    content_bounds,
    hold_out,
    ndc_frames,
    normalize_frames,
    resolve_image,
    scene_from_frames,
    use_ndc,
)
from nerfkit.data.io import read_json
from nerfkit.data.scene import Scene
from nerfkit.errors import DataError
from nerfkit.poses import (
    far_from_box,
    is_forward_facing,
    scene_kind,
    similarity_scale,
    transform_box,
)

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
    ndc: bool | None = None,
) -> Scene:
    """Load a nerfstudio / instant-ngp transforms.json scene (see the module docstring).

    Args:
        root: folder with transforms.json (image paths are relative to it).
        downscale: integer image size divisor.
        normalize: centre, orient (mean up -> +z) and scale the poses into [-1, 1]^3.
        hold: without split lists, every `hold`-th frame is held out for test/val.
        background: colour RGBA images are composited onto.
        ndc: load as a forward-facing scene with NDC rays (True; needs content depths), as is
            (False), or when the cameras are forward-facing (None; only with `normalize`). True
            re-frames the poses whatever `normalize` says.
    """
    root = Path(root)
    jpath = root / "transforms.json"
    meta = read_json(jpath)
    if not isinstance(meta, dict):
        raise DataError(f"{jpath}: expected a JSON object with a 'frames' list")
    frames, paths = read_frames(root, meta, jpath)
    split_idx = _splits(meta, paths, jpath, hold)
    if ndc is None and not normalize:
        ndc = False
    bounds = None
    if ndc or (ndc is None and is_forward_facing(np.stack([f.c2w for f in frames]))):
        bounds = _content_depths(root, meta, jpath, frames)
    if use_ndc(frames, bounds, ndc, jpath):
        frames, facts = ndc_frames(frames, bounds)
    else:
        frames, facts = _normalized(meta, jpath, frames, normalize)
    facts["format"] = "transforms_json"
    return scene_from_frames(
        frames,
        split_idx,
        root=root,
        source=jpath,
        downscale=downscale,
        background=background,
        **facts,
    )


def _normalized(
    meta: dict, jpath: Path, frames: list[Frame], normalize: bool
) -> tuple[list[Frame], dict]:
    """Frames normalised (`normalize_frames`) and their SceneMeta facts: box and near/far
    (the module docstring)."""
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
    return frames, dict(
        near=float(near),
        far=float(far),
        kind=scene_kind(c2w),
        unbounded=True,
        aabb=box.tolist(),
        data_transform=t.tolist() if normalize else [],
    )


def _content_depths(root: Path, meta: dict, jpath: Path, frames: list[Frame]) -> np.ndarray | None:
    """Per-frame near/far content depths [N, 2] in the file's units: the file's `near` and `far`,
    else from the point cloud `ply_file_path` names; None when neither is given."""
    if "near" in meta and "far" in meta:
        near, far = _num(meta["near"], str(jpath), "near"), _num(meta["far"], str(jpath), "far")
        return np.tile([near, far], (len(frames), 1)) if 0 < near < far else None
    if "ply_file_path" not in meta:
        return None
    pts = read_ply_points(root / str(meta["ply_file_path"]))
    return content_bounds([_depths_in_view(f, pts) for f in frames])


def _depths_in_view(frame: Frame, pts: np.ndarray) -> np.ndarray:
    """Depths [K] along the frame's view axis of the points [P, 3] in front of it that project
    into its image (pinhole, distortion ignored; all points in front when its size is not given
    in the file)."""
    cam = (pts - frame.c2w[:3, 3]) @ frame.c2w[:3, :3]  # OpenGL camera frame: looks along -z
    cam = cam[cam[:, 2] < 0]
    z = -cam[:, 2]
    if frame.w is None or frame.h is None:
        return z
    fx = frame.fx if frame.fx is not None else 0.5 * frame.w / np.tan(0.5 * (frame.fov_x or 1.0))
    fy = frame.fy if frame.fy is not None else fx
    cx = frame.w / 2 if frame.cx is None else frame.cx
    cy = frame.h / 2 if frame.cy is None else frame.cy
    u, v = cx + fx * cam[:, 0] / z, cy - fy * cam[:, 1] / z
    return z[(u >= 0) & (u <= frame.w) & (v >= 0) & (v <= frame.h)]


PLY_TYPES = {
    **dict.fromkeys(("char", "int8"), "i1"),
    **dict.fromkeys(("uchar", "uint8"), "u1"),
    **dict.fromkeys(("short", "int16"), "i2"),
    **dict.fromkeys(("ushort", "uint16"), "u2"),
    **dict.fromkeys(("int", "int32"), "i4"),
    **dict.fromkeys(("uint", "uint32"), "u4"),
    **dict.fromkeys(("float", "float32"), "f4"),
    **dict.fromkeys(("double", "float64"), "f8"),
}
PLY_ENDIAN = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}


def read_ply_points(path: Path) -> np.ndarray:
    """The vertex positions [P, 3] (float64) of a PLY point cloud: ascii or binary, the vertex
    element first, with scalar properties including x, y, z (as nerfstudio, COLMAP and
    `nerfkit process` write them)."""
    fix = "re-export the point cloud or remove ply_file_path from transforms.json"
    try:
        buf = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read the point cloud ({e.strerror}); {fix}") from None
    end = buf.find(b"end_header")
    if not buf.startswith(b"ply") or end < 0:
        raise DataError(f"{path}: not a PLY file (no ply ... end_header header); {fix}")
    fmt, count, props = "", -1, []
    for line in buf[:end].decode("ascii", "replace").splitlines()[1:]:
        w = line.split()
        if w[:1] == ["format"] and len(w) > 1:
            fmt = w[1]
        elif w[:1] == ["element"]:
            if count >= 0:
                break  # only the first element is read
            if len(w) != 3 or w[1] != "vertex" or not w[2].isdigit():
                raise DataError(f"{path}: the first element is not 'vertex N'; {fix}")
            count = int(w[2])
        elif w[:1] == ["property"] and count >= 0:
            if len(w) != 3 or w[1] not in PLY_TYPES:
                raise DataError(f"{path}: vertex property '{line.strip()}' not supported; {fix}")
            props.append((w[2], PLY_TYPES[w[1]]))
    names = [n for n, _ in props]
    if fmt not in PLY_ENDIAN or count < 0 or not {"x", "y", "z"} <= set(names):
        raise DataError(f"{path}: expected a PLY format line and vertices with x, y, z; {fix}")
    body = buf[buf.index(b"\n", end) + 1 :]
    try:
        if fmt == "ascii":
            rows = np.loadtxt(body.decode("ascii").splitlines()[:count], ndmin=2)
            pts = rows[:, [names.index(k) for k in "xyz"]]
        else:
            dt = np.dtype([(n, PLY_ENDIAN[fmt] + t) for n, t in props])
            v = np.frombuffer(body, dtype=dt, count=count)
            pts = np.stack([v[k] for k in "xyz"], 1)
    except (ValueError, IndexError, UnicodeDecodeError):
        raise DataError(f"{path}: truncated or malformed vertex data; {fix}") from None
    if pts.shape[0] != count or not np.all(np.isfinite(pts)):
        raise DataError(f"{path}: truncated or non-finite vertex data; {fix}")
    return pts.astype(np.float64)


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
