"""The Nerfies / HyperNeRF layout (google/nerfies, google/hypernerf: `datasets/nerfies.py`).

    camera/<id>.json     one camera per frame (below)
    rgb/{1x,2x,4x,..}/<id>.png   the frames at full size and downscaled by 2, 4, ...
    dataset.json         `ids`, `train_ids`, `val_ids`
    metadata.json        id -> `warp_id`, `appearance_id`, `camera_id`, `time_id` (optional)
    scene.json           `center`, `scale`, `near`, `far` (optional: the capture tools' `bbox`)
    points.npy           optional [P, 3] points of the static background

A camera file holds the release's `Camera` (nerfies/camera.py): `orientation`, the world-to-
camera rotation [3, 3] in the OpenCV frame (x right, y down, z forward); `position`, the camera
centre in world units; `focal_length` (pixels along x), `pixel_aspect_ratio` (fy = fx times it),
`principal_point` [2] (pixels, with pixel centres at +0.5 as in nerfkit: the release's
`get_pixel_centers` adds 0.5), `skew`, `radial_distortion` [k1, k2, k3], `tangential` [p1, p2]
(also read as `tangential_distortion`, the name in HyperNeRF's tf signature), `image_size`
[width, height] of the rgb/1x images.

Conversion to nerfkit's conventions:
- poses: camera-to-world in the OpenGL frame (the OpenCV camera's y and z axes flipped), the
  position moved as the release moves it: (position - center) * scale; the rotation is kept.
  SceneMeta.data_transform is that similarity (scene = T @ file). near and far are scene.json's
  (already in scaled units, as in the release).
- intrinsics: fx = focal_length, fy = focal_length * pixel_aspect_ratio, (cx, cy) =
  principal_point; distortion (k1, k2, k3, 0, p1, p2) with model "opencv" when any coefficient is
  non-zero (the release's model is OpenCV's), else pinhole. nerfkit cameras have no skew: a
  non-zero skew is a DataError.
- `--downscale K`: rgb/Kx/ when present, with the intrinsics divided by K (as the release's
  `Camera.scale(1 / K)`); else the largest rgb/Fx/ with F dividing K, downscaled by K / F in
  memory (`Cameras.scaled`). With K = 1 and no rgb/1x/, the least-downscaled folder (a warning
  says so).
- times: metadata `time_id` (HyperNeRF; else `warp_id`, Nerfies' per-frame id, as the release
  falls back; else the frame's position in `ids`) divided by the largest one over the frames
  loaded (the release divides by the largest training time id; here the val frames count too, so
  that every time lies in [0, 1]).
- rig cameras: metadata `camera_id` (the release's `get_camera_id`) when every frame has one
  (`Split.rig_cameras`; Nerfies' camera code is indexed by it).
- splits: train = train_ids; val and test = val_ids (the vrig protocol: the other camera of the
  rig; the interp protocol: the frames between the training frames). Without val_ids, every
  8th of train_ids is held out for test (and val), as for the other formats.
- scene: kind from the poses (`nerfkit.poses.scene_kind`); aabb: the box holding points.npy (its
  1st..99th percentile per axis) and scene.json's `bbox` (the capture notebook's box of the
  points and cameras, file units), each where present, made 10% larger; with neither, the cube
  about the origin reaching `far` - (the cameras' mean distance from the origin), at least
  (far - near) / 2. The static points, in the scene frame, are Scene.points (Nerfies'
  background loss). Captures are unbounded (SceneMeta.unbounded: the background is part of the
  content), unless scene.json holds nerfkit's `background` key (an RGB colour, as
  `nerfkit.data.synthetic_dynamic` writes it): the images then show the content on that colour,
  and it is the scene's background colour (else white, or the `background` argument).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch

from nerfkit.data.core import HOLD, Frame, hold_out, scene_from_frames
from nerfkit.data.io import read_json
from nerfkit.data.scene import Scene
from nerfkit.errors import DataError
from nerfkit.poses import opencv_w2c_to_c2w, scene_kind, transform_box

REQUIRED = ("dataset.json", "scene.json", "camera")
CAMERA_KEYS = ("orientation", "position", "focal_length", "image_size")


def is_nerfies(root: Path) -> bool:
    return (
        (root / "dataset.json").is_file()
        and (root / "scene.json").is_file()
        and (root / "camera").is_dir()
    )


def _numbers(v: object, shape: tuple[int, ...], path: Path, key: str) -> np.ndarray:
    """A JSON value as a finite float64 array of `shape` (a DataError naming the file else)."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        a = None
    if a is None or a.shape != shape or not np.all(np.isfinite(a)):
        want = "a number" if shape == () else f"{'x'.join(map(str, shape))} numbers"
        raise DataError(f"{path}: '{key}' must be {want}, got {v!r}; fix the camera file")
    return a


def _padded(v: object, n: int, path: Path, key: str) -> np.ndarray:
    """Up to n distortion coefficients, zero-padded to n."""
    if not isinstance(v, list) or len(v) > n:
        raise DataError(f"{path}: '{key}' must be a list of at most {n} numbers, got {v!r}")
    return np.concatenate([_numbers(v, (len(v),), path, key), np.zeros(n - len(v))])


def read_camera(path: Path) -> dict:
    """A camera file -> {orientation [3, 3], position [3], fx, fy, cx, cy, distortion [6]
    (k1, k2, k3, 0, p1, p2), image_size (w, h)} (full-size pixels, file units).

    DataError naming the file for a missing file or key, bad JSON or values, a non-zero skew.
    """
    cam = read_json(path)
    if not isinstance(cam, dict):
        raise DataError(f"{path}: expected a JSON object (a Nerfies camera)")
    missing = [k for k in CAMERA_KEYS if k not in cam]
    if missing:
        raise DataError(f"{path}: camera lacks {', '.join(missing)}; re-export the camera")
    skew = float(_numbers(cam.get("skew", 0.0), (), path, "skew"))
    if skew != 0.0:
        raise DataError(
            f"{path}: skew {skew:g} is not supported (nerfkit cameras have no skew); "
            "re-calibrate without skew or resample the images"
        )
    f = float(_numbers(cam["focal_length"], (), path, "focal_length"))
    aspect = float(_numbers(cam.get("pixel_aspect_ratio", 1.0), (), path, "pixel_aspect_ratio"))
    w, h = _numbers(cam["image_size"], (2,), path, "image_size")
    if not (f > 0 and aspect > 0 and w >= 1 and h >= 1):
        raise DataError(f"{path}: focal_length, pixel_aspect_ratio and image_size must be positive")
    pp = cam.get("principal_point")
    cx, cy = (w / 2, h / 2) if pp is None else _numbers(pp, (2,), path, "principal_point")
    radial = _padded(cam.get("radial_distortion", []), 3, path, "radial_distortion")
    tkey = "tangential" if "tangential" in cam else "tangential_distortion"
    tangential = _padded(cam.get(tkey, []), 2, path, tkey)
    return {
        "orientation": _numbers(cam["orientation"], (3, 3), path, "orientation"),
        "position": _numbers(cam["position"], (3,), path, "position"),
        "fx": f,
        "fy": f * aspect,
        "cx": float(cx),
        "cy": float(cy),
        "distortion": [*radial, 0.0, *tangential],
        "image_size": (int(round(w)), int(round(h))),
    }


def scene_transform(center: np.ndarray, scale: float) -> np.ndarray:
    """The similarity T [4, 4] of the release's scene normalisation: x -> (x - center) * scale."""
    t = np.eye(4)
    t[:3, :3] *= scale
    t[:3, 3] = -scale * np.asarray(center, dtype=np.float64)
    return t


def camera_c2w(orientation: np.ndarray, position: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Camera-to-world [4, 4] in the OpenGL frame (scene units) of a Nerfies camera (OpenCV
    world-to-camera rotation [3, 3], centre [3] in file units), with the similarity t [4, 4]
    (`scene_transform`) applied to its centre."""
    centre = t[:3, :3] @ position + t[:3, 3]
    return opencv_w2c_to_c2w(orientation[None], -(orientation @ centre)[None])[0]


def rgb_folder(root: Path, downscale: int) -> tuple[Path, int]:
    """The rgb/Fx/ folder to read for `--downscale K` and its factor F (module docstring)."""
    base = root / "rgb"
    found: dict[int, Path] = {}
    if base.is_dir():
        for p in base.iterdir():
            if p.is_dir() and (m := re.fullmatch(r"(\d+)x", p.name)) and int(m.group(1)) > 0:
                found[int(m.group(1))] = p
    if not found:
        raise DataError(f"{base}: no image folder rgb/<K>x/ (e.g. rgb/1x/); add the frames")
    if downscale in found:
        return found[downscale], downscale
    divisors = [f for f in found if downscale % f == 0]
    if divisors:
        return found[max(divisors)], max(divisors)
    if downscale == 1:
        f = min(found)
        warnings.warn(
            f"{base}: no full-size 1x/ folder; using {f}x/ (as --downscale {f})", stacklevel=3
        )
        return found[f], f
    have = ", ".join(f"{f}x" for f in sorted(found))
    raise DataError(
        f"{base}: no image folder for --downscale {downscale} (have: {have}); "
        "use a factor one of those folders divides"
    )


def _id_list(v: object, path: Path, key: str) -> list[str]:
    if not isinstance(v, list):
        raise DataError(f"{path}: '{key}' must be a list of frame ids")
    return [str(i) for i in v]


def frame_times(ids: list[str], metadata: dict, all_ids: list[str]) -> list[float]:
    """Times in [0, 1] of frames `ids`: metadata's time_id, else warp_id, else the position in
    `all_ids` (whichever every frame has), divided by the largest (0 if that is 0)."""
    for key in ("time_id", "warp_id"):
        if ids and all(isinstance(metadata.get(i), dict) and key in metadata[i] for i in ids):
            raw = [float(metadata[i][key]) for i in ids]
            break
    else:
        pos = {i: k for k, i in enumerate(all_ids)}
        raw = [float(pos.get(i, len(all_ids) + k)) for k, i in enumerate(ids)]
    top = max(raw) if raw else 0.0
    return [r / top if top > 0 else 0.0 for r in raw]


def frame_rig_cameras(ids: list[str], metadata: dict, path: Path) -> list[int | None]:
    """Rig camera ids of frames `ids`: metadata's `camera_id` when every frame has one (a
    DataError naming `path` if one is not a non-negative integer), else None for each."""
    if not ids or not all(
        isinstance(metadata.get(i), dict) and "camera_id" in metadata[i] for i in ids
    ):
        return [None] * len(ids)
    out: list[int | None] = []
    for i in ids:
        v = metadata[i]["camera_id"]
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or v < 0
            or not float(v).is_integer()
        ):
            raise DataError(
                f"{path}: frame {i!r} has camera_id {v!r}; camera ids are integers >= 0"
            )
        out.append(int(v))
    return out


def _points(root: Path, t: np.ndarray) -> np.ndarray | None:
    """points.npy in the scene frame [P, 3] (None when absent)."""
    path = root / "points.npy"
    if not path.is_file():
        return None
    try:
        pts = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable ({e}); re-export the points") from None
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.all(np.isfinite(pts)):
        raise DataError(f"{path}: expected finite points of shape [P, 3], got {pts.shape}")
    return pts.astype(np.float64) @ t[:3, :3].T + t[:3, 3]


def scene_box(
    points: np.ndarray | None, bbox: np.ndarray | None, c2w: np.ndarray, near: float, far: float
) -> np.ndarray:
    """The scene box [2, 3] (scene units; module docstring) from the static points [P, 3], the
    capture's bbox [2, 3] (both in the scene frame; None: absent) and else the cameras c2w
    [N, 4, 4] and the near/far bounds."""
    parts = []
    if points is not None and len(points):
        parts.append(np.stack([np.percentile(points, 1, 0), np.percentile(points, 99, 0)]))
    if bbox is not None:
        parts.append(bbox)
    if not parts:
        dist = float(np.linalg.norm(c2w[:, :3, 3], axis=-1).mean())
        half = max(far - dist, 0.5 * (far - near))
        return np.array([[-half] * 3, [half] * 3])
    box = np.stack([np.min([p[0] for p in parts], 0), np.max([p[1] for p in parts], 0)])
    pad = 0.05 * float((box[1] - box[0]).max())
    return box + np.array([[-pad], [pad]])


def load_nerfies(
    root: Path,
    downscale: int = 1,
    background: tuple[float, float, float] | None = None,
    hold: int = HOLD,
) -> Scene:
    """Load a Nerfies / HyperNeRF capture (see the module docstring).

    Args:
        root: the capture folder. downscale: integer image size divisor.
        background: the scene's background colour (None: scene.json's `background`, else
            white). hold: without val_ids, every `hold`-th training frame is held out.
    """
    root = Path(root)
    for name in REQUIRED:
        if not (root / name).exists():
            raise DataError(f"{root / name}: not found; a Nerfies capture needs {REQUIRED}")
    sjson, djson = root / "scene.json", root / "dataset.json"
    info, dataset = read_json(sjson), read_json(djson)
    if not isinstance(info, dict) or not isinstance(dataset, dict):
        raise DataError(f"{root}: scene.json and dataset.json must hold JSON objects")
    for key in ("center", "scale", "near", "far"):
        if key not in info:
            raise DataError(f"{sjson}: missing '{key}'; it needs center, scale, near and far")
    center = _numbers(info["center"], (3,), sjson, "center")
    scale = float(_numbers(info["scale"], (), sjson, "scale"))
    near, far = (float(_numbers(info[k], (), sjson, k)) for k in ("near", "far"))
    if not (scale > 0 and 0 <= near < far):
        raise DataError(f"{sjson}: needs scale > 0 and 0 <= near < far")
    if "train_ids" not in dataset:
        raise DataError(f"{djson}: missing 'train_ids'")
    train_ids = _id_list(dataset["train_ids"], djson, "train_ids")
    val_ids = _id_list(dataset.get("val_ids", []), djson, "val_ids")
    all_ids = _id_list(dataset.get("ids", train_ids + val_ids), djson, "ids")
    if not train_ids:
        raise DataError(f"{djson}: 'train_ids' is empty; list the training frames")
    ids = list(dict.fromkeys(train_ids + val_ids))
    if val_ids:
        splits = {"train": [ids.index(i) for i in train_ids]}
        splits["test"] = splits["val"] = [ids.index(i) for i in val_ids]
    else:
        splits = hold_out(len(ids), hold)
    mpath = root / "metadata.json"
    metadata = read_json(mpath) if mpath.is_file() else {}
    if not isinstance(metadata, dict):
        raise DataError(f"{mpath}: expected a JSON object mapping frame ids to their ids")
    t = scene_transform(center, scale)
    folder, factor = rgb_folder(root, downscale)
    frames = []
    times, rigs = frame_times(ids, metadata, all_ids), frame_rig_cameras(ids, metadata, mpath)
    for i, time, rig in zip(ids, times, rigs):
        frames.append(_frame(root, i, folder, factor, t, time, rig))
    c2w = np.stack([f.c2w for f in frames])
    bbox = None
    if "bbox" in info:
        bbox = transform_box(_numbers(info["bbox"], (2, 3), sjson, "bbox"), t)
    points = _points(root, t)
    bg = info.get("background") if background is None else background
    if bg is not None:
        bg = _numbers(bg, (3,), sjson, "background").tolist()
    scene = scene_from_frames(
        frames,
        splits,
        root=root,
        source=root,
        downscale=max(1, downscale // factor),
        background=bg if bg is not None else (1.0, 1.0, 1.0),
        near=near,
        far=far,
        kind=scene_kind(c2w),
        unbounded="background" not in info,
        aabb=scene_box(points, bbox, c2w, near, far).tolist(),
        data_transform=t.tolist(),
        format="nerfies",
    )
    if points is not None:
        scene.points = torch.from_numpy(points).float()
    return scene


def _frame(
    root: Path, fid: str, folder: Path, factor: int, t: np.ndarray, time: float, rig: int | None
) -> Frame:
    """Frame `fid`: its camera (intrinsics divided by the folder's factor) and rgb image."""
    cam = read_camera(root / "camera" / f"{fid}.json")
    image = folder / f"{fid}.png"
    w, h = cam["image_size"]
    size = (w, h)
    if factor > 1:  # the copy's size: W / F rounded either way (the release rounds)
        size = _image_size(image)
        if any(abs(s - full / factor) >= 1 for s, full in zip(size, (w, h))):
            raise DataError(
                f"{image}: size {size[0]}x{size[1]} is not the camera's {w}x{h} / {factor}; "
                f"use the images made for camera/{fid}.json"
            )
    return Frame(
        name=fid,
        where=f"{root / 'camera' / f'{fid}.json'}",
        image=image,
        c2w=camera_c2w(cam["orientation"], cam["position"], t),
        w=size[0],
        h=size[1],
        fx=cam["fx"] / factor,
        fy=cam["fy"] / factor,
        cx=cam["cx"] / factor,
        cy=cam["cy"] / factor,
        model="opencv" if any(cam["distortion"]) else "pinhole",
        distortion=cam["distortion"],
        time=time,
        rig_camera=rig,
        camera=f"camera/{fid}.json",
    )


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image from its header (DataError naming it if unreadable)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError(f"{path}: image not found; every frame id needs rgb/<K>x/<id>.png")
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: unreadable image ({e}); re-export it") from None
