"""Camera paths as nerfstudio camera-path JSON: read (every field checked), write (editable),
convert between world frames, and the cameras a path renders with.

The file (as nerfstudio's viewer exports it and `ns-render camera-path` reads it):

- `camera_type`: "perspective" (default), "fisheye" (nerfstudio's equidistant model: a pixel at
  distance r from the centre, r / focal radians off the axis) or "equirectangular" (longitude
  across the width, latitude down the height, 360 x 180 degrees). Other types (nerfstudio's
  omnidirectional stereo, VR180) are refused.
- `render_width`, `render_height`: the frame size in pixels.
- `fps`, `seconds`: frame rate and length of the video. As nerfstudio does, the video plays the
  frames of `camera_path` in `seconds` (fps = frames / seconds); `fps` alone sets it otherwise.
- `camera_path`: one entry per frame: `camera_to_world` (16 numbers: a 4x4 camera-to-world
  matrix, row-major, OpenGL camera frame as everywhere in nerfkit), `fov` (the VERTICAL field of
  view in degrees: focal = height / 2 / tan(fov / 2), as nerfstudio's three.js camera; fisheye
  uses the same focal; equirectangular ignores it), `aspect` (width / height, kept for editors:
  the frame size is render_width x render_height), `render_time` (dynamic scenes: the scene time
  in [0, 1] of the frame; used only when every frame has one).
- `keyframes` (`matrix`, `fov`, `aspect`, ...), `smoothness_value`, `is_cycle`, `default_fov`,
  `default_transition_sec`: what an editor (nerfstudio's viewer) needs to edit the path. A file
  with keyframes but no `camera_path` is rendered along `nerfkit.paths.interpolate_poses`
  through them (a loop if `is_cycle`), fps * seconds frames at the first keyframe's fov.

World frames. A camera path's matrices are in one of these (`--path-frame`):

- `scene`: nerfkit's scene frame, the one a run's training poses are in (`scene.json`
  train_c2w): the dataset's frame after the loader's recentring / rescaling,
  `SceneMeta.data_transform` (scene = T @ dataset, a similarity; empty: the identity).
- `dataset`: the frame of the dataset's own pose file (transforms.json's transform_matrix,
  COLMAP's world, poses_bounds.npy, ...): a path made by hand next to the data.
- `nerfstudio:FILE`: the frame of a nerfstudio run on the same data, FILE being the
  `dataparser_transforms.json` in its output folder (`transform` 3x4 and `scale`: nerfstudio =
  scale * transform @ original). nerfstudio's "original" frame is the dataset's, except for a
  transforms.json with an `applied_transform` A (ns-process-data's), whose frame is A @ original.
  Paths exported by nerfstudio's viewer or ns-render are in this frame.

Files nerfkit writes (`save_camera_path`) are in the scene frame and say so (`world_frame`:
"scene"), with the run's `scene_from_dataset` (= SceneMeta.data_transform), so another run of
the same data with another normalisation reads them right. A file that names no frame is read
as `dataset`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nerfkit.atomic import save_json_atomic
from nerfkit.cameras import Cameras
from nerfkit.data.io import read_json
from nerfkit.errors import DataError, NerfkitError
from nerfkit.paths import check_time, interpolate_poses
from nerfkit.poses import similarity_scale

CAMERA_TYPES = ("perspective", "fisheye", "equirectangular")
WORLD_FRAMES = ("scene", "dataset", "nerfstudio:FILE")


@dataclass
class CameraPath:
    """F frames of a camera path, in nerfkit's scene frame.

    c2w: [F, 4, 4] camera-to-world (OpenGL frame, rigid). fov: [F] vertical field of view in
    degrees. aspect: [F] width / height (for editors; rendering uses width x height).
    width, height: frame size in pixels. fps: frames per second of the video; seconds: its
    length. times: [F] scene times in [0, 1] (dynamic runs) or None. camera_type: one of
    CAMERA_TYPES. keyframes: [K, 4, 4] an editor's key poses (scene frame) or None;
    keyframe_fov: [K] their fov (None: the first frame's). smoothness, is_cycle: the editor's
    spline settings. scene_from_dataset: [4, 4] the run's SceneMeta.data_transform, recorded in
    saved files (None: unknown, the identity).
    """

    c2w: Tensor
    fov: Tensor
    aspect: Tensor
    width: int
    height: int
    fps: float = 30.0
    seconds: float = 0.0
    times: Tensor | None = None
    camera_type: str = "perspective"
    keyframes: Tensor | None = None
    keyframe_fov: Tensor | None = None
    smoothness: float = 0.5
    is_cycle: bool = False
    scene_from_dataset: Tensor | None = None

    def __post_init__(self) -> None:
        if not self.seconds:
            self.seconds = len(self) / self.fps

    def __len__(self) -> int:
        return self.c2w.shape[0]


def focal_from_fov(fov_deg: Tensor | float, height: int) -> Tensor:
    """Focal length(s) in pixels of a vertical field of view (degrees) over `height` pixels:
    height / 2 / tan(fov / 2). [F] -> [F]"""
    fov = torch.as_tensor(fov_deg, dtype=torch.float64)
    return 0.5 * height / torch.tan(torch.deg2rad(fov) / 2)


def fov_from_focal(focal: float, height: int) -> float:
    """The vertical field of view in degrees of a focal length (pixels) over `height` pixels."""
    return math.degrees(2.0 * math.atan(0.5 * height / focal))


def perspective_path(
    c2w: Tensor,
    width: int,
    height: int,
    focal: float,
    fps: float = 30.0,
    times: Tensor | None = None,
    keyframes: Tensor | None = None,
    scene_from_dataset: Tensor | None = None,
    is_cycle: bool = False,
) -> CameraPath:
    """A perspective CameraPath of poses c2w [F, 4, 4] at one size and focal (pixels)."""
    n = c2w.shape[0]
    fov = fov_from_focal(focal, height)
    return CameraPath(
        c2w=c2w,
        fov=torch.full((n,), fov, dtype=torch.float64),
        aspect=torch.full((n,), width / height, dtype=torch.float64),
        width=width,
        height=height,
        fps=fps,
        times=times,
        keyframes=keyframes,
        keyframe_fov=None if keyframes is None else torch.full((len(keyframes),), fov).double(),
        is_cycle=is_cycle,
        scene_from_dataset=scene_from_dataset,
    )


# ----------------------------------------------------------------------------- rays


def fisheye_directions(x: Tensor, y: Tensor) -> Tensor:
    """Equidistant fisheye (nerfstudio's FISHEYE): the ray through image-plane point (x, y)
    (pixel offsets from the centre over the focal, y up) is theta = |(x, y)| radians off the
    optical axis (-z), clipped at pi. [R], [R] -> [R, 3] unit directions, OpenGL camera frame."""
    theta = torch.sqrt(x * x + y * y).clamp(max=math.pi)
    k = torch.sinc(theta / math.pi)  # sin(theta) / theta, 1 at theta = 0
    return torch.stack([x * k, y * k, -torch.cos(theta)], dim=-1)


def equirect_directions(px: Tensor, py: Tensor, width: int, height: int) -> Tensor:
    """Equirectangular panorama: column px (pixel centres at +0.5) is the longitude
    lon = 2 pi (px / width - 1/2) (0 straight ahead along -z, positive to the right, +x), row
    py the latitude lat = pi (1/2 - py / height) (+pi/2 at the top, +y).
    [R], [R] -> [R, 3] unit directions (sin lon cos lat, sin lat, -cos lon cos lat)."""
    lon = 2 * math.pi * (px / width - 0.5)
    lat = math.pi * (0.5 - py / height)
    return torch.stack(
        [torch.sin(lon) * torch.cos(lat), torch.sin(lat), -torch.cos(lon) * torch.cos(lat)], -1
    )


@dataclass
class PanoramaCameras(Cameras):
    """Cameras whose rays are not pinhole rays: model "fisheye" (`fisheye_directions`, with
    fx, fy, cx, cy as a pinhole's) or "equirectangular" (`equirect_directions`; the intrinsics
    are unused). Every method renders them: `Method.render_image` takes rays from
    `camera_directions`. Not for NDC scenes (rays behind the camera have no NDC image)."""

    def camera_directions(self, cam: Tensor, px: Tensor, py: Tensor) -> Tensor:
        """[R] camera indices, [R] pixel coordinates -> [R, 3] unit directions, camera frame."""
        if self.model == "equirectangular":
            return equirect_directions(px, py, self.width, self.height)
        x = (px - self.cx[cam]) / self.fx[cam]
        y = -(py - self.cy[cam]) / self.fy[cam]
        return fisheye_directions(x, y)


def path_cameras(cp: CameraPath) -> Cameras:
    """The F cameras of a path: per-frame focal from its fov, principal point at the centre.
    Perspective paths give pinhole `Cameras`, fisheye and equirectangular ones
    `PanoramaCameras`."""
    n = len(cp)
    f = focal_from_fov(cp.fov, cp.height).float()
    kw = dict(
        c2w=cp.c2w.float(),
        fx=f,
        fy=f.clone(),
        cx=torch.full((n,), cp.width / 2),
        cy=torch.full((n,), cp.height / 2),
        width=cp.width,
        height=cp.height,
    )
    if cp.camera_type == "perspective":
        return Cameras(**kw)
    return PanoramaCameras(**kw, model=cp.camera_type)


# ----------------------------------------------------------------------------- world frames


def transform_poses(c2w: Tensor | np.ndarray, t: np.ndarray) -> Tensor:
    """Camera poses moved by a similarity t [4, 4] (rotation times uniform scale s, then a
    translation): positions p -> t @ p, rotations turned by t's rotation (the scale divided
    out, so the result stays rigid). [F, 4, 4] -> [F, 4, 4] float64."""
    t = np.asarray(t, dtype=np.float64)
    out = t[None] @ np.asarray(c2w, dtype=np.float64)
    out[:, :3, :3] /= similarity_scale(t)
    return torch.from_numpy(out)


def _similarity(m: object, where: str) -> np.ndarray:
    """A 4x4 (or 3x4) similarity from nested lists -> [4, 4]; DataError naming `where`."""
    try:
        a = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError):
        a = np.zeros(0)
    if a.shape == (3, 4):
        a = np.concatenate([a, [[0.0, 0.0, 0.0, 1.0]]])
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise DataError(f"{where}: expected a 4x4 or 3x4 matrix of finite numbers")
    s = similarity_scale(a)
    r = a[:3, :3] / max(s, 1e-300)
    if s <= 0 or not np.allclose(r.T @ r, np.eye(3), atol=1e-4) or np.linalg.det(r) < 0:
        raise DataError(f"{where}: not a similarity (rotation times a positive scale)")
    return a


def read_dataparser_transforms(path: Path) -> np.ndarray:
    """nerfstudio's `dataparser_transforms.json` -> [4, 4] nerfstudio_from_original:
    diag(scale, scale, scale, 1) @ transform (nerfstudio = scale * transform @ original)."""
    spec = read_json(Path(path))
    if not isinstance(spec, dict) or "transform" not in spec or "scale" not in spec:
        raise DataError(
            f"{path}: not a nerfstudio dataparser_transforms.json (needs 'transform' and "
            "'scale'); pass the one in the nerfstudio run's output folder"
        )
    t = _similarity(spec["transform"], f"{path} transform")
    scale = _number(spec["scale"], path, "scale")
    if scale <= 0:
        raise DataError(f"{path}: scale must be positive, got {scale}")
    return np.diag([scale, scale, scale, 1.0]) @ t


def applied_transform(data_dir: Path | None, fmt: str) -> np.ndarray | None:
    """The `applied_transform` [4, 4] of a transforms.json dataset (the frame change
    ns-process-data made: transforms.json = A @ original), None when there is none."""
    if data_dir is None or fmt != "transforms_json":
        return None
    jpath = Path(data_dir) / "transforms.json"
    if not jpath.is_file():
        return None
    spec = read_json(jpath)
    if not isinstance(spec, dict) or "applied_transform" not in spec:
        return None
    return _similarity(spec["applied_transform"], f"{jpath} applied_transform")


def scene_from_file(
    frame: str,
    scene_from_dataset: np.ndarray | None,
    recorded: np.ndarray | None = None,
    applied: np.ndarray | None = None,
) -> np.ndarray:
    """The similarity [4, 4] taking a path's matrices into the run's scene frame.

    Args:
        frame: "scene", "dataset" or "nerfstudio:FILE" (FILE: dataparser_transforms.json).
        scene_from_dataset: [4, 4] the run's SceneMeta.data_transform (None: the identity).
        recorded: [4, 4] the scene_from_dataset a "scene" file was written with (None: the
            run's own).
        applied: [4, 4] the dataset's applied_transform (`applied_transform`; None: none).
    """
    d = np.eye(4) if scene_from_dataset is None else np.asarray(scene_from_dataset, np.float64)
    if frame == "scene":
        return np.eye(4) if recorded is None else d @ np.linalg.inv(recorded)
    if frame == "dataset":
        return d
    if frame.startswith("nerfstudio:") and len(frame) > len("nerfstudio:"):
        ns = read_dataparser_transforms(Path(frame[len("nerfstudio:") :]))
        a = np.eye(4) if applied is None else applied
        return d @ a @ np.linalg.inv(ns)
    raise NerfkitError(
        f"unknown path frame '{frame}'; use scene, dataset or "
        "nerfstudio:PATH/TO/dataparser_transforms.json"
    )


# ----------------------------------------------------------------------------- reading


def _number(v: object, path: Path, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise DataError(f"{path}: {key} must be a finite number, got {v!r}")
    return float(v)


def _size(v: object, path: Path, key: str) -> int:
    x = _number(v, path, key)
    if x < 1 or x != int(x):
        raise DataError(f"{path}: {key} must be a positive whole number of pixels, got {v!r}")
    return int(x)


def _matrix(v: object, path: Path, key: str) -> np.ndarray:
    """16 numbers (row-major) or a 4x4 / 3x4 nested list -> a rigid [4, 4]."""
    if isinstance(v, list) and len(v) == 16:
        v = [v[i : i + 4] for i in (0, 4, 8, 12)]
    ok = isinstance(v, list) and len(v) in (3, 4)
    ok = ok and all(isinstance(r, list) and len(r) == 4 for r in v)
    if not ok or not all(_is_num(x) for r in v for x in r):
        raise DataError(f"{path}: {key} must be 16 numbers (a 4x4 matrix, row-major)")
    m = np.asarray(v, dtype=np.float64)
    if m.shape == (3, 4):
        m = np.concatenate([m, [[0.0, 0.0, 0.0, 1.0]]])
    r = m[:3, :3]
    if not np.allclose(m[3], [0, 0, 0, 1]) or not np.allclose(r.T @ r, np.eye(3), atol=1e-3):
        raise DataError(f"{path}: {key} is not a rigid camera-to-world matrix")
    if np.linalg.det(r) < 0:
        raise DataError(f"{path}: {key} is a reflection (det -1), not a camera-to-world matrix")
    return m


def _is_num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _fov(v: object, path: Path, key: str) -> float:
    fov = _number(v, path, key)
    if not 0 < fov < 180:
        raise DataError(f"{path}: {key} must be a vertical field of view in (0, 180) degrees")
    return fov


def _entries(spec: dict, path: Path, key: str, pose_key: str) -> list[dict]:
    items = spec.get(key)
    if not isinstance(items, list) or not items:
        raise DataError(f"{path}: {key} must be a non-empty list of frames")
    for i, it in enumerate(items):
        if not isinstance(it, dict) or pose_key not in it:
            raise DataError(f"{path}: {key}[{i}] must be an object with '{pose_key}'")
    return items


def _poses(items: list[dict], path: Path, key: str, pose_key: str) -> Tensor:
    return torch.from_numpy(
        np.stack(
            [_matrix(it[pose_key], path, f"{key}[{i}].{pose_key}") for i, it in enumerate(items)]
        )
    )


def _per_frame(
    items: list[dict],
    path: Path,
    key: str,
    field: str,
    default: float,
    check: Callable[[object, Path, str], float] = _number,
) -> Tensor:
    """One number per entry: items[i][field] (else `default`), checked by `check`. [F]"""
    return torch.tensor(
        [check(it.get(field, default), path, f"{key}[{i}].{field}") for i, it in enumerate(items)],
        dtype=torch.float64,
    )


def load_camera_path(
    path: Path,
    frame: str | None = None,
    scene_from_dataset: np.ndarray | list | None = None,
    applied: np.ndarray | None = None,
    default_size: tuple[int, int] = (0, 0),
    default_fov: float | None = None,
) -> CameraPath:
    """Read a nerfstudio camera-path JSON (module docstring) into the run's scene frame.

    Args:
        path: the .json file.
        frame: the file's world frame ("scene", "dataset", "nerfstudio:FILE"); None: the
            file's own `world_frame`, else "dataset".
        scene_from_dataset: [4, 4] the run's SceneMeta.data_transform (None or []: identity).
        applied: the dataset's applied_transform (`applied_transform`), for nerfstudio frames.
        default_size: (width, height) when the file gives no render_width / render_height.
        default_fov: vertical fov (degrees) of frames that give none (None: fov is required).
    Returns:
        the path; every field is checked, errors are one-line DataErrors naming the file and
        the field.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: camera path file not found")
    spec = read_json(path)
    if not isinstance(spec, dict):
        raise DataError(f"{path}: expected a JSON object (a nerfstudio camera path)")
    ctype = spec.get("camera_type", "perspective")
    ctype = {"pinhole": "perspective"}.get(ctype, ctype) if isinstance(ctype, str) else ctype
    if ctype not in CAMERA_TYPES:
        raise DataError(
            f"{path}: camera_type {ctype!r} is not rendered by nerfkit; use one of "
            f"{', '.join(CAMERA_TYPES)}"
        )
    w = _size(spec.get("render_width", default_size[0]), path, "render_width")
    h = _size(spec.get("render_height", default_size[1]), path, "render_height")
    fps = _number(spec.get("fps", 30.0), path, "fps")
    seconds = _number(spec.get("seconds", 0.0), path, "seconds") if "seconds" in spec else None
    if fps <= 0 or (seconds is not None and seconds <= 0):
        raise DataError(f"{path}: fps and seconds must be positive")
    need_fov = ctype != "equirectangular" and default_fov is None
    fov_default = default_fov if default_fov is not None else 90.0
    fov_check = _fov if ctype != "equirectangular" else _number

    keys = key_fov = None
    legacy = "camera_path" in spec and _legacy_keyframes(spec.get("keyframes"))
    if spec.get("keyframes") and not legacy:
        kitems = _entries(spec, path, "keyframes", "matrix")
        keys = _poses(kitems, path, "keyframes", "matrix")
        key_fov = _per_frame(kitems, path, "keyframes", "fov", fov_default, fov_check)
    is_cycle = spec.get("is_cycle", False)
    if not isinstance(is_cycle, bool):
        raise DataError(f"{path}: is_cycle must be true or false")
    smooth = _number(spec.get("smoothness_value", 0.5), path, "smoothness_value")

    if "camera_path" in spec or keys is None:
        items = _entries(spec, path, "camera_path", "camera_to_world")
        if need_fov:
            for i, it in enumerate(items):
                if "fov" not in it:
                    raise DataError(f"{path}: camera_path[{i}].fov (vertical, degrees) missing")
        c2w = _poses(items, path, "camera_path", "camera_to_world")
        fov = _per_frame(items, path, "camera_path", "fov", fov_default, fov_check)
        aspect = _per_frame(items, path, "camera_path", "aspect", w / h)
        times = None
        if all("render_time" in it for it in items):
            times = _per_frame(items, path, "camera_path", "render_time", 0.0, _time)
    else:  # keyframes only: the path through them at the first keyframe's fov, fps * seconds
        n = max(1, round(fps * (seconds or len(keys))))  # frames (no seconds: 1 s per keyframe)
        if len(keys) > 1:
            c2w = interpolate_poses(keys, n, closed=is_cycle).double()
        else:
            c2w = keys.expand(n, 4, 4).clone()
        fov = torch.full((n,), float(key_fov[0]), dtype=torch.float64)
        aspect = torch.full((n,), w / h, dtype=torch.float64)
        times = None
    if float(aspect.min()) <= 0:
        raise DataError(f"{path}: camera_path aspect must be positive")

    if frame is None:
        frame = spec.get("world_frame", "dataset")
        if not isinstance(frame, str) or frame not in ("scene", "dataset"):
            raise DataError(f"{path}: world_frame must be 'scene' or 'dataset', got {frame!r}")
    recorded = None
    if frame == "scene" and spec.get("scene_from_dataset") is not None:
        recorded = _similarity(spec["scene_from_dataset"], f"{path} scene_from_dataset")
    has_sfd = scene_from_dataset is not None and len(scene_from_dataset) > 0
    sfd = np.asarray(scene_from_dataset, np.float64) if has_sfd else None
    t = scene_from_file(frame, sfd, recorded, applied)
    if not np.allclose(t, np.eye(4), rtol=0, atol=1e-12):
        c2w = transform_poses(c2w, t)
        keys = None if keys is None else transform_poses(keys, t)
    n = c2w.shape[0]
    if seconds and abs(n / seconds - fps) > 1e-9 * fps:  # nerfstudio plays F frames in seconds
        fps = n / seconds
    return CameraPath(
        c2w=c2w,
        fov=fov,
        aspect=aspect,
        width=w,
        height=h,
        fps=fps,
        seconds=seconds or n / fps,
        times=times,
        camera_type=ctype,
        keyframes=keys,
        keyframe_fov=key_fov,
        smoothness=smooth,
        is_cycle=is_cycle,
        scene_from_dataset=None if sfd is None else torch.from_numpy(sfd),
    )


def _legacy_keyframes(keys: object) -> bool:
    """Keyframes of nerfstudio's former three.js viewer (matrices as strings, column-major, in
    that viewer's frame): not read; the frames in camera_path are what renders."""
    return isinstance(keys, list) and any(
        isinstance(k, dict) and isinstance(k.get("matrix"), str) for k in keys
    )


def _time(v: object, path: Path, key: str) -> float:
    try:
        return check_time(_number(v, path, key), f"{path}: {key}")
    except NerfkitError as e:
        raise DataError(str(e)) from None


# ----------------------------------------------------------------------------- writing


def _flat(m: Tensor) -> list[float]:
    return [float(x) for x in m.reshape(16).tolist()]


def save_camera_path(path: Path, cp: CameraPath) -> Path:
    """Write `cp` as a nerfstudio camera-path JSON (atomically): camera_path[] with
    camera_to_world (16 numbers, row-major), fov, aspect and, where cp.times is set,
    render_time; render_width/height, fps, seconds, camera_type, smoothness_value, is_cycle,
    keyframes (cp.keyframes, else every frame: editable in nerfstudio's viewer); and nerfkit's
    world_frame "scene" with scene_from_dataset (module docstring). `load_camera_path` reads
    it back exactly. Returns path."""
    path = Path(path)
    if path.suffix != ".json":
        raise NerfkitError(f"{path}: a camera path file must end in .json")
    if cp.camera_type not in CAMERA_TYPES:
        raise NerfkitError(f"camera_type {cp.camera_type!r} is not one of {CAMERA_TYPES}")
    frames = []
    for i in range(len(cp)):
        fr = {"camera_to_world": _flat(cp.c2w[i]), "fov": float(cp.fov[i])}
        fr["aspect"] = float(cp.aspect[i])
        if cp.times is not None:
            fr["render_time"] = float(cp.times[i])
        frames.append(fr)
    keys = cp.c2w if cp.keyframes is None else cp.keyframes
    key_fov = cp.fov if cp.keyframes is None or cp.keyframe_fov is None else cp.keyframe_fov
    keyframes = [
        {
            "matrix": _flat(keys[i]),
            "fov": float(key_fov[min(i, len(key_fov) - 1)]),
            "aspect": cp.width / cp.height,
            "override_transition_enabled": False,
            "override_transition_sec": None,
        }
        for i in range(len(keys))
    ]
    spec = {
        "camera_type": cp.camera_type,
        "render_width": int(cp.width),
        "render_height": int(cp.height),
        "fps": float(cp.fps),
        "seconds": float(cp.seconds),
        "smoothness_value": float(cp.smoothness),
        "is_cycle": bool(cp.is_cycle),
        "default_fov": float(cp.fov[0]),
        "default_transition_sec": float(cp.seconds) / max(len(keyframes) - 1, 1),
        "keyframes": keyframes,
        "camera_path": frames,
        "world_frame": "scene",
    }
    if cp.scene_from_dataset is not None:
        spec["scene_from_dataset"] = torch.as_tensor(cp.scene_from_dataset).double().tolist()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_json_atomic(path, spec)


__all__ = [
    "CAMERA_TYPES",
    "CameraPath",
    "PanoramaCameras",
    "perspective_path",
    "equirect_directions",
    "fisheye_directions",
    "focal_from_fov",
    "fov_from_focal",
    "load_camera_path",
    "path_cameras",
    "read_dataparser_transforms",
    "save_camera_path",
    "scene_from_file",
    "transform_poses",
]
