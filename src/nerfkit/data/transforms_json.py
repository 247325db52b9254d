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
writes them), else downscales in memory.

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
import torch

from nerfkit.cameras import Cameras
from nerfkit.data.blender import check_pose
from nerfkit.data.io import composite_background, downscale_image, read_image, read_json
from nerfkit.data.scene import Scene, Split
from nerfkit.errors import DataError

HOLD = 8
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".exr", ".webp", ".bmp", ".tif", ".tiff")
MODELS = {
    "PINHOLE": "pinhole",
    "SIMPLE_PINHOLE": "pinhole",
    "OPENCV": "opencv",
    "OPENCV_FISHEYE": "opencv_fisheye",
}
DIST_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def is_transforms_json(root: Path) -> bool:
    return (root / "transforms.json").is_file()


# ----------------------------------------------------------------------------- normalisation


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation [3, 3] turning unit vector a [3] onto unit vector b [3] (about a x b)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1 + 1e-8:  # opposite: turn by pi about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def normalize_poses(
    c2w: np.ndarray, orient: bool = True, scale: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Centre, orient ("up" -> +z) and scale camera poses, as nerfstudio's auto-orient.

    Args:
        c2w: [N, 4, 4] camera-to-world (OpenGL frame).
        orient: rotate so that the mean camera up (+y) axis becomes world +z.
        scale: scale so that the largest |coordinate| of a camera position is 1.
    Returns:
        (c2w [N, 4, 4] normalised with rigid rotations, T [4, 4] the similarity applied to
        points: p_new = T[:3, :3] @ p + T[:3, 3]).
    """
    centre = c2w[:, :3, 3].mean(0)
    rot = np.eye(3)
    if orient:
        up = c2w[:, :3, 1].mean(0)
        if np.linalg.norm(up) > 1e-8:
            rot = rotation_between(up, np.array([0.0, 0.0, 1.0]))
    pos = (c2w[:, :3, 3] - centre) @ rot.T
    s = 1.0
    if scale:
        extent = float(np.abs(pos).max())
        s = 1.0 / extent if extent > 1e-12 else 1.0
    out = c2w.copy()
    out[:, :3, :3] = rot @ c2w[:, :3, :3]
    out[:, :3, 3] = pos * s
    t = np.eye(4)
    t[:3, :3] = s * rot
    t[:3, 3] = -s * rot @ centre
    return out, t


def transform_box(box: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The axis-aligned box [2, 3] holding box [2, 3] after the similarity t [4, 4]."""
    corners = np.array(
        [[box[i, 0], box[j, 1], box[k, 2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    )
    c = corners @ t[:3, :3].T + t[:3, 3]
    return np.stack([c.min(0), c.max(0)])


def far_from_box(c2w: np.ndarray, box: np.ndarray) -> float:
    """The largest distance from a camera centre to a corner of box [2, 3]."""
    corners = np.array(
        [[box[i, 0], box[j, 1], box[k, 2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    )
    d = np.linalg.norm(c2w[:, None, :3, 3] - corners[None], axis=-1)
    return float(d.max())


def scene_kind(c2w: np.ndarray) -> str:
    """'forward' when all cameras look roughly the same way (|mean view dir| > 0.9), else
    'object'."""
    view = -c2w[:, :3, 2]
    return "forward" if np.linalg.norm(view.mean(0)) > 0.9 else "object"


# ----------------------------------------------------------------------------- loading


def _norm_name(p: str) -> str:
    return str(PurePosixPath(*[s for s in PurePosixPath(p.replace("\\", "/")).parts if s != "."]))


def _resolve(root: Path, file_path: str) -> Path:
    p = root / file_path
    return p if p.suffix.lower() in IMAGE_EXTS else p.with_name(p.name + ".png")


def _num(v: object, where: str, key: str) -> float:
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{where}: '{key}' is not a number ({v!r})") from None
    if not np.isfinite(x):
        raise DataError(f"{where}: '{key}' is not finite")
    return x


def _intrinsics(meta: dict, fr: dict, img_wh: tuple[int, int] | None, where: str) -> dict:
    """Resolve one frame's intrinsics (frame keys override top-level ones)."""

    def get(k: str) -> object:
        return fr.get(k, meta.get(k))

    w = get("w")
    h = get("h")
    w = int(_num(w, where, "w")) if w is not None else None
    h = int(_num(h, where, "h")) if h is not None else None
    if (w is None or h is None) and img_wh is None:
        raise DataError(f"{where}: needs 'w' and 'h'")
    w = w if w is not None else img_wh[0]
    h = h if h is not None else img_wh[1]
    if get("fl_x") is not None:
        fx = _num(get("fl_x"), where, "fl_x")
    elif get("camera_angle_x") is not None:
        fx = 0.5 * w / np.tan(0.5 * _num(get("camera_angle_x"), where, "camera_angle_x"))
    else:
        raise DataError(f"{where}: needs 'fl_x' (or 'camera_angle_x'); add the focal length")
    if get("fl_y") is not None:
        fy = _num(get("fl_y"), where, "fl_y")
    elif get("camera_angle_y") is not None:
        fy = 0.5 * h / np.tan(0.5 * _num(get("camera_angle_y"), where, "camera_angle_y"))
    else:
        fy = fx
    cx = _num(get("cx"), where, "cx") if get("cx") is not None else w / 2.0
    cy = _num(get("cy"), where, "cy") if get("cy") is not None else h / 2.0
    if fx <= 0 or fy <= 0:
        raise DataError(f"{where}: focal length must be positive")
    dist = [_num(get(k), where, k) if get(k) is not None else 0.0 for k in DIST_KEYS]
    cm = get("camera_model")
    if cm is None:
        if get("is_fisheye"):
            model = "opencv_fisheye"
        else:
            model = "opencv" if any(dist) else "pinhole"
    else:
        if str(cm).upper() not in MODELS:
            raise DataError(
                f"{where}: camera_model '{cm}' not supported (known: {', '.join(MODELS)})"
            )
        model = MODELS[str(cm).upper()]
    return {"w": w, "h": h, "fx": fx, "fy": fy, "cx": cx, "cy": cy, "dist": dist, "model": model}


def _common_model(models: set[str], where: str) -> str:
    if len(models) == 1:
        return models.pop()
    rest = models - {"pinhole"}
    if len(rest) == 1:
        return rest.pop()  # pinhole frames become distortion models with zero coefficients
    raise DataError(f"{where}: frames mix camera models {sorted(models)}; use one per dataset")


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
    frames = meta.get("frames")
    if not isinstance(frames, list):
        raise DataError(f"{jpath}: no 'frames' list")
    if not frames:
        raise DataError(f"{jpath}: 'frames' is empty; add frames")
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
            raise DataError(f"{jpath} frame {i}: needs 'file_path' and 'transform_matrix'")
    order = sorted(range(len(frames)), key=lambda i: _norm_name(str(frames[i]["file_path"])))
    frames = [frames[i] for i in order]

    # downscaled copies as nerfstudio writes them: images_K/<file name>
    paths = [_resolve(root, str(fr["file_path"])) for fr in frames]
    extra = downscale
    has_wh = all(fr.get(k, meta.get(k)) is not None for fr in frames for k in ("w", "h"))
    if downscale > 1 and has_wh:  # the full size must be known to scale the intrinsics
        copies = [p.parent.parent / f"{p.parent.name}_{downscale}" / p.name for p in paths]
        if all(c.is_file() for c in copies):
            paths, extra = copies, 1

    bg = np.asarray(background, dtype=np.float32)
    images, poses, intr = [], [], []
    for fr, p in zip(frames, paths):
        where = f"{jpath} frame '{fr['file_path']}'"
        img = read_image(p)
        ih, iw = img.shape[:2]
        resized = extra == 1 and downscale > 1
        k = _intrinsics(meta, fr, None if resized else (iw, ih), where)
        if resized:  # a resized copy: intrinsics scale with its size
            sx, sy = iw / k["w"], ih / k["h"]
            k.update(w=iw, h=ih, fx=k["fx"] * sx, fy=k["fy"] * sy, cx=k["cx"] * sx, cy=k["cy"] * sy)
        elif (iw, ih) != (k["w"], k["h"]):
            raise DataError(
                f"{p}: size {iw}x{ih} differs from {k['w']}x{k['h']} in {jpath.name}; "
                "fix 'w'/'h' or the image"
            )
        m = (
            np.asarray(fr["transform_matrix"], dtype=np.float64)
            if _is_matrix(fr["transform_matrix"])
            else None
        )
        if m is None:
            raise DataError(f"{where}: transform_matrix is not a 4x4 or 3x4 list of numbers")
        check_pose(m, where)
        if m.shape == (3, 4):
            m = np.concatenate([m, [[0.0, 0.0, 0.0, 1.0]]], 0)
        poses.append(m)
        intr.append(k)
        img = composite_background(img, bg)
        images.append(torch.from_numpy(np.ascontiguousarray(img)))

    c2w = np.stack(poses)
    t = np.eye(4)
    if normalize:
        c2w, t = normalize_poses(c2w)
    s = float(np.cbrt(abs(np.linalg.det(t[:3, :3]))))

    names = [_norm_name(str(fr["file_path"])) for fr in frames]
    split_idx = _splits(meta, names, jpath, hold)
    model = _common_model({k["model"] for k in intr}, str(jpath))
    splits: dict[str, Split] = {}
    for name, ix in split_idx.items():
        if name == "val" and ix is split_idx.get("test"):
            splits["val"] = splits["test"]
            continue
        sizes = {(intr[i]["w"], intr[i]["h"]) for i in ix}
        if len(sizes) > 1:
            raise DataError(
                f"{jpath}: the {name} split has images of sizes {sorted(sizes)}; "
                "all images of a split must have one size"
            )
        w, h = sizes.pop()

        def col(key: str, ix: list[int] = ix) -> torch.Tensor:
            return torch.tensor([intr[i][key] for i in ix], dtype=torch.float32)

        cams = Cameras(
            c2w=torch.tensor(c2w[ix], dtype=torch.float32),
            fx=col("fx"),
            fy=col("fy"),
            cx=col("cx"),
            cy=col("cy"),
            width=w,
            height=h,
            model=model,
            distortion=None
            if model == "pinhole"
            else torch.tensor([intr[i]["dist"] for i in ix], dtype=torch.float32),
        )
        imgs = torch.stack([images[i] for i in ix])
        if extra > 1:
            cams = cams.scaled(extra)
            imgs = torch.stack([downscale_image(im, extra) for im in imgs])
        splits[name] = Split(
            images=imgs, cameras=cams, names=[PurePosixPath(names[i]).stem for i in ix]
        )

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

    return Scene.from_splits(
        splits,
        near=float(near),
        far=float(far),
        background=bg.tolist(),
        ndc=False,
        kind=scene_kind(c2w),
        aabb=box.tolist(),
        data_path=str(root),
        format="transforms_json",
        data_transform=t.tolist() if normalize else [],
    )


def _is_matrix(v: object) -> bool:
    return (
        isinstance(v, list)
        and len(v) in (3, 4)
        and all(isinstance(r, list) and len(r) == 4 for r in v)
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for r in v for x in r)
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
    if train is None:
        if test is not None or val is not None:
            held = set(test or []) | set(val or [])
            train = [i for i in range(len(names)) if i not in held]
        else:
            test = list(range(0, len(names), hold)) if hold > 0 else []
            train = [i for i in range(len(names)) if i not in set(test)]
    if not train:
        raise DataError(f"{jpath}: the train split is empty; add frames or change the split lists")
    if test is None:
        if val is None:
            rest = sorted(set(range(len(names))) - set(train))
            test = rest or None
        else:
            test = val
    out: dict[str, list[int]] = {"train": train}
    if test:
        out["test"] = test
        out["val"] = val if val is not None else test
    return out
