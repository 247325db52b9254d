"""What every loader shares: per-frame records -> a Scene.

A format module parses its own metadata into `Frame`s (one per view: image, camera-to-world in
the OpenGL frame, intrinsics) plus its scene facts (near/far, box, kind), chooses the splits
(explicit index lists, or `hold_out`), and calls `scene_from_frames`, which does the rest the
same way for every format:

- downscaled copies: with `--downscale K`, a frame's image `<root>/<folder>/<path>` is read from
  `<root>/<folder>_K/<path>` when every frame has such a copy (as nerfstudio and COLMAP's
  tooling write them) and its full size is known; else the image is area-downscaled in memory;
- intrinsics: focal from the field of view where a format gives that, principal point at the
  image centre by default, all scaled with the image actually read (a resized copy: by its size
  ratio, the aspect checked; in-memory downscaling: `Cameras.scaled`);
- images: read (`read_image`), composited onto the scene background, checked against the size
  the metadata gives, and one size per split;
- poses: checked when a Frame is made (`check_pose`), so formats that re-frame poses (recentre,
  normalise) work on valid ones.

LLFF picks a whole image folder first (`image_folder`: images_K, or images_F with F dividing K).

Forward-facing scenes (LLFF, and COLMAP / transforms.json captures `use_ndc` picks) share one
preparation for NDC rays: `ndc_frames` (LLFF's re-framing, `nerfkit.poses.forward_facing_frame`)
and `ndc_facts`, with per-view content depths from sparse points by `content_bounds`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nerfkit.cameras import Cameras, ndc_ray_box
from nerfkit.data.io import downscale_image, read_image, rgb_tensor
from nerfkit.data.scene import Scene, Split
from nerfkit.errors import DataError
from nerfkit.poses import forward_facing_frame, is_forward_facing, normalize_poses

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".exr", ".webp", ".bmp", ".tif", ".tiff")
HOLD = 8  # every HOLD-th frame (0, 8, 16, ...) is held out for test (and val), as in NeRF's LLFF


def check_pose(m: object, where: str) -> np.ndarray:
    """A camera-to-world matrix from a 4x4 or 3x4 array or nested list -> [4, 4] float64.

    Rejects (DataError naming `where`) anything else, non-finite values and rotations that are
    not rigid (orthonormal with det +1).
    """
    if not isinstance(m, np.ndarray) and not _is_matrix(m):
        raise DataError(f"{where}: transform_matrix is not a 4x4 or 3x4 list of numbers")
    m = np.asarray(m, dtype=np.float64)
    if m.shape not in ((4, 4), (3, 4)):
        raise DataError(f"{where}: transform_matrix has shape {m.shape}, not a 4x4 or 3x4")
    if not np.all(np.isfinite(m)):
        raise DataError(f"{where}: transform_matrix has non-finite values")
    r = m[:3, :3]
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-3) or abs(np.linalg.det(r) - 1) > 1e-3:
        raise DataError(
            f"{where}: transform_matrix rotation is not rigid (not orthonormal with det +1)"
        )
    if m.shape == (3, 4):
        m = np.concatenate([m, [[0.0, 0.0, 0.0, 1.0]]], 0)
    return m


def _is_matrix(v: object) -> bool:
    """A list of 3 or 4 rows of 4 numbers (as JSON gives matrices)."""
    return (
        isinstance(v, list)
        and len(v) in (3, 4)
        and all(isinstance(r, list) and len(r) == 4 for r in v)
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for r in v for x in r)
    )


@dataclass
class Frame:
    """One view as a format's metadata describes it, before any image is read.

    name: the frame's name in outputs (file stem). where: how errors name the frame.
    image: the image file, or the image itself as float32 [H, W, 3|4] in [0, 1] (formats that
        hold pixels in memory, such as .npz).
    c2w: camera-to-world in the OpenGL frame, [4, 4] or [3, 4] (checked and made [4, 4] here).
    w, h: the image size the intrinsics are given for (None: the size of the image read).
    fx, fy: focal lengths in pixels; None: from fov_x / fov_y, the horizontal / vertical field of
        view in radians (fy: else fx). cx, cy: principal point (None: the image centre).
    model: one of cameras.CAMERA_MODELS; distortion: (k1, k2, k3, k4, p1, p2) or None (zeros).
    time: time stamp in [0, 1] (dynamic scenes); depth: a .npy depth map [H, W] at image size.
    rig_camera: which camera of a capture rig took the frame (Nerfies' metadata `camera_id`;
        None: the format does not say).
    camera: whose size w x h is, for errors (e.g. "camera 1"; empty: the frame's).
    resized: the image may be any resized copy of w x h (LLFF's images_K/ folders): the
        intrinsics scale with the size actually read, instead of that size having to be w x h.
    """

    name: str
    where: str
    image: Path | np.ndarray
    c2w: np.ndarray
    w: float | None = None
    h: float | None = None
    fx: float | None = None
    fy: float | None = None
    fov_x: float | None = None
    fov_y: float | None = None
    cx: float | None = None
    cy: float | None = None
    model: str = "pinhole"
    distortion: tuple[float, ...] | list[float] | None = None
    time: float | None = None
    rig_camera: int | None = None
    depth: Path | None = None
    camera: str = ""
    resized: bool = False

    def __post_init__(self) -> None:
        self.c2w = check_pose(self.c2w, self.where)


def normalize_frames(frames: list[Frame], enabled: bool = True) -> tuple[list[Frame], np.ndarray]:
    """Frames re-framed by `nerfkit.poses.normalize_poses` (centred on the cameras, mean up ->
    +z, camera positions in [-1, 1]^3), and the similarity T [4, 4] applied (scene = T @ file).
    Not enabled: the frames as they are and the identity."""
    if not enabled:
        return frames, np.eye(4)
    c2w, t = normalize_poses(np.stack([f.c2w for f in frames]))
    return [replace(f, c2w=m) for f, m in zip(frames, c2w)], t


def content_bounds(depths: list[np.ndarray]) -> np.ndarray | None:
    """Per-view near and far depths of the content: the 1st and 99th percentiles of the depths
    of the points each view sees (only those in front, depth > 0, count).

    Args:
        depths: N arrays [K_i], the depths along each view's axis of the points it sees.
    Returns:
        [N, 2]; a view that sees no point gets the smallest near and largest far of the others.
        None when no view sees a point.
    """
    rows = []
    for z in depths:
        z = z[z > 0]
        rows.append([np.percentile(z, 1), np.percentile(z, 99)] if len(z) else [np.nan, np.nan])
    b = np.array(rows, dtype=np.float64).reshape(-1, 2)
    seen = ~np.isnan(b[:, 0])
    if not seen.any():
        return None
    b[~seen] = [b[seen, 0].min(), b[seen, 1].max()]
    return b


def ndc_facts(bounds: np.ndarray, t: np.ndarray) -> dict:
    """The SceneMeta facts of a forward-facing scene re-framed by
    `nerfkit.poses.forward_facing_frame`: NDC rays over [0, 1], the scaled scene-space content
    bounds (bounds [N, 2]) for spiral paths, and the similarity T [4, 4]. The box is left to
    `scene_from_frames`: the NDC box of the training rays (`cameras.ndc_ray_box`), wider than
    [-1, 1]^3 where cameras moved or turned from the reference pose."""
    return dict(
        near=0.0,
        far=1.0,
        ndc=True,
        kind="forward",
        bounds=[float(bounds.min()), float(bounds.max())],
        data_transform=t.tolist(),
    )


def ndc_frames(frames: list[Frame], bounds: np.ndarray) -> tuple[list[Frame], dict]:
    """Frames re-framed for NDC rays as LLFF scenes are (`forward_facing_frame`: nearest content
    at depth 1 / 0.75, recentred on the average pose) and their SceneMeta facts (`ndc_facts`).

    Args:
        frames: N frames, poses as the format gives them. bounds: [N, 2] their content depths.
    """
    c2w, bds, t = forward_facing_frame(np.stack([f.c2w for f in frames]), bounds)
    return [replace(f, c2w=m) for f, m in zip(frames, c2w)], ndc_facts(bds, t)


def use_ndc(frames: list[Frame], bounds: np.ndarray | None, ndc: bool | None, source: Path) -> bool:
    """Whether to load a scene as forward-facing with NDC rays.

    ndc True / False: as asked (True needs content bounds and one camera for all frames, else a
    DataError). None: when `nerfkit.poses.is_forward_facing` says so; a capture that looks
    forward-facing but lacks bounds or has several cameras loads without NDC, with a warning.

    Args:
        frames: the frames (poses as the format gives them). bounds: [N, 2] or None (unknown).
        source: the metadata file, naming the dataset in messages.
    """
    if ndc is False:
        return False
    c2w = np.stack([f.c2w for f in frames])
    if ndc is None and not is_forward_facing(c2w, None if bounds is None else bounds[:, 0]):
        return False
    cams = {(f.fx, f.fy, f.fov_x, f.fov_y, f.w, f.h) for f in frames}
    problem = ""
    if bounds is None:
        problem = "the depths of its content are unknown (give near/far or a sparse point cloud)"
    elif len(cams) > 1:
        problem = "its frames have several cameras (NDC takes one focal length and image size)"
    if not problem:
        return True
    if ndc:
        raise DataError(f"{source}: cannot use NDC rays: {problem}; load it without NDC")
    warnings.warn(
        f"{source}: the cameras face one way (forward-facing) but {problem}; "
        "loading without NDC rays",
        stacklevel=3,
    )
    return False


def resolve_image(root: Path, file_path: str) -> Path:
    """The image a metadata file names: root / file_path, ".png" appended when it has no image
    extension (the Blender convention)."""
    p = root / file_path
    return p if p.suffix.lower() in IMAGE_EXTS else p.with_name(p.name + ".png")


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder (extensions IMAGE_EXTS), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def hold_out(n: int, hold: int = HOLD) -> dict[str, list[int]]:
    """Split indices 0..n-1: every `hold`-th (0, hold, 2 hold, ...) for test and val, the rest
    for training; everything for training when hold <= 0 or there is only one frame."""
    test = list(range(0, n, hold)) if hold > 0 and n > 1 else []
    held = set(test)
    train = [i for i in range(n) if i not in held]
    return {"train": train, "test": test, "val": test} if test else {"train": train}


def image_folder(root: Path, downscale: int, base: str = "images") -> tuple[Path, int] | None:
    """The image folder to read for `--downscale K`, LLFF style. None if there is none at all.

    `<base>_K/` if present; else `<base>_F/` (or `<base>/`, F = 1) with the largest F dividing K,
    downscaled by K / F in memory; with K = 1 and no `<base>/`, the least-downscaled folder (a
    warning says so). Returns (folder, the factor left to downscale in memory).
    """
    found: dict[int, Path] = {}
    for p in root.iterdir():
        if not p.is_dir():
            continue
        if p.name == base:
            found[1] = p
        elif m := re.fullmatch(rf"{re.escape(base)}_(\d+)", p.name):
            found[int(m.group(1))] = p
    if not found:
        return None
    if downscale in found:
        return found[downscale], 1
    divisors = [f for f in found if downscale % f == 0]
    if divisors:
        f = max(divisors)
        return found[f], downscale // f
    if downscale == 1:
        f = min(found)
        warnings.warn(
            f"{root}: no full-size {base}/ folder; using {found[f].name}/ (as --downscale {f})",
            stacklevel=3,
        )
        return found[f], 1
    have = ", ".join(found[f].name for f in sorted(found))
    raise DataError(
        f"{root}: no image folder for --downscale {downscale} (have: {have}); "
        "use a factor one of those folders divides"
    )


def _copy_path(image: Path, root: Path, k: int) -> Path | None:
    """`<root>/<folder>_k/<rest>` for the image `<root>/<folder>/<rest>`; None if it has no
    folder below root."""
    try:
        parts = image.relative_to(root).parts
    except ValueError:
        return None
    if len(parts) < 2 or parts[0] == "..":
        return None
    return root.joinpath(f"{parts[0]}_{k}", *parts[1:])


def downscaled_copies(frames: list[Frame], root: Path, k: int) -> list[Path] | None:
    """Every frame's copy in `<folder>_k/` (see _copy_path), or None unless all exist and every
    frame gives its full size (to scale the intrinsics by)."""
    if k == 1 or not all(
        isinstance(f.image, Path) and f.w is not None and f.h is not None and not f.resized
        for f in frames
    ):
        return None
    copies = [_copy_path(Path(f.image), root, k) for f in frames]
    if not all(c is not None and c.is_file() for c in copies):
        return None
    return [c for c in copies if c is not None]


@dataclass
class _Loaded:
    """A frame's image as read: rgb [h, w, 3] after in-memory downscaling, the size (width,
    height) read, whether it is a resized copy, the file (or None), the depth [h, w]."""

    rgb: Tensor
    size: tuple[int, int]
    resized: bool
    path: Path | None
    depth: Tensor | None
    transparent: bool = False
    """Whether the image had an alpha channel with a pixel below 1 (composited onto bg)."""


def _size(w: float, h: float) -> str:
    return f"{w:.0f}x{h:.0f}"


def _declared_size(frame: Frame, iw: int, ih: int) -> tuple[float, float]:
    """The size (w, h) frame's intrinsics are given for; the image's (iw, ih) where not given."""
    return (iw if frame.w is None else frame.w), (ih if frame.h is None else frame.h)


def _load(
    frame: Frame, path: Path | None, copy: bool, bg: np.ndarray, extra: int, downscale: int
) -> _Loaded:
    """Read one frame's image (and depth); a full-size image must have the size its metadata
    gives."""
    img = read_image(path) if path is not None else np.asarray(frame.image)
    ih, iw = img.shape[:2]
    resized = copy or frame.resized
    if not resized:
        w, h = _declared_size(frame, iw, ih)
        if (iw, ih) != (w, h):
            owner = f"{frame.camera}'s " if frame.camera else ""
            raise DataError(
                f"{path or frame.name}: size {_size(iw, ih)} differs from {owner}{_size(w, h)} "
                f"({frame.where}); use the images the metadata was made for, or fix the size"
            )
    depth = None
    if frame.depth is not None:
        if not frame.depth.is_file():
            raise DataError(f"{frame.depth}: depth map not found")
        depth = torch.from_numpy(np.load(frame.depth).astype(np.float32))
        depth = downscale_image(depth[..., None], downscale if copy else extra)[..., 0]
    transparent = img.ndim == 3 and img.shape[2] == 4 and bool((img[..., 3] < 1).any())
    rgb = rgb_tensor(img, bg, extra)
    return _Loaded(rgb, (iw, ih), resized, path, depth, transparent)


def _intrinsics(frame: Frame, loaded: _Loaded) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) in pixels of the image as read (before in-memory downscaling)."""
    iw, ih = loaded.size
    w, h = _declared_size(frame, iw, ih)
    if frame.fx is not None:
        fx = frame.fx
    elif frame.fov_x is not None:
        fx = 0.5 * w / np.tan(0.5 * frame.fov_x)
    else:
        raise DataError(f"{frame.where}: needs a focal length or a field of view")
    if frame.fy is not None:
        fy = frame.fy
    elif frame.fov_y is not None:
        fy = 0.5 * h / np.tan(0.5 * frame.fov_y)
    else:
        fy = fx
    if not (fx > 0 and fy > 0):
        raise DataError(f"{frame.where}: focal length must be positive")
    sx, sy = 1.0, 1.0
    if loaded.resized:
        sx, sy = iw / w, ih / h
        if abs(sx / sy - 1.0) > 0.02:
            raise DataError(
                f"{loaded.path}: size {_size(iw, ih)} does not match the aspect of "
                f"{_size(w, h)} ({frame.where}); are these the right images?"
            )
    cx = frame.cx * sx if frame.cx is not None else iw / 2.0
    cy = frame.cy * sy if frame.cy is not None else ih / 2.0
    return fx * sx, fy * sy, cx, cy


def _common_model(frames: list[Frame], source: Path) -> str:
    """The one camera model of all frames (pinhole frames join a distortion model)."""
    models = {f.model for f in frames}
    rest = models - {"pinhole"}
    if len(rest) > 1:
        raise DataError(f"{source}: frames mix camera models {sorted(models)}; use one per dataset")
    return rest.pop() if rest else "pinhole"


def _split(
    name: str,
    ix: list[int],
    frames: list[Frame],
    loaded: dict[int, _Loaded],
    model: str,
    extra: int,
    source: Path,
) -> Split:
    """One split's images, cameras, names, depths and times; its images must share one size."""
    first = loaded[ix[0]]
    for i in ix:
        if loaded[i].size != first.size:
            sizes = ", ".join(sorted({_size(*loaded[j].size) for j in ix}))
            raise DataError(
                f"{source}: the {name} split has images of sizes {sizes}: "
                f"{loaded[i].path or frames[i].name}: size {_size(*loaded[i].size)} differs from "
                f"{_size(*first.size)} of {frames[ix[0]].name}; "
                "all images of a split must have one size"
            )
    k = np.array([_intrinsics(frames[i], loaded[i]) for i in ix], dtype=np.float64)
    col = torch.tensor(k, dtype=torch.float32)
    cams = Cameras(
        c2w=torch.tensor(np.stack([frames[i].c2w for i in ix]), dtype=torch.float32),
        fx=col[:, 0].contiguous(),
        fy=col[:, 1].contiguous(),
        cx=col[:, 2].contiguous(),
        cy=col[:, 3].contiguous(),
        width=first.size[0],
        height=first.size[1],
        model=model,
        distortion=None
        if model == "pinhole"
        else torch.tensor(
            [list(frames[i].distortion or [0.0] * 6) for i in ix], dtype=torch.float32
        ),
    )
    if extra > 1:
        cams = cams.scaled(extra)
    depths = [loaded[i].depth for i in ix]
    times = [frames[i].time for i in ix]
    rigs = [frames[i].rig_camera for i in ix]
    return Split(
        images=torch.stack([loaded[i].rgb for i in ix]),
        cameras=cams,
        names=[frames[i].name for i in ix],
        depths=None if any(d is None for d in depths) else torch.stack(depths),
        times=torch.tensor(times, dtype=torch.float32)
        if all(t is not None for t in times)
        else None,
        rig_cameras=torch.tensor(rigs, dtype=torch.long)
        if all(r is not None for r in rigs)
        else None,
    )


def scene_from_frames(
    frames: list[Frame],
    splits: dict[str, list[int]] | int,
    *,
    root: Path,
    source: Path,
    downscale: int = 1,
    background: tuple[float, float, float] | list[float] = (1.0, 1.0, 1.0),
    **facts: object,
) -> Scene:
    """Read the frames' images into a Scene (see the module docstring for the rules).

    Args:
        frames: every frame of the dataset.
        splits: split name -> frame indices (in output order; an empty list drops the split;
            equal lists share one Split, as val and test), or `hold` for `hold_out`.
        root: the dataset folder (downscaled copies are looked up below it; SceneMeta.data_path).
        source: the metadata file, naming the dataset in errors.
        downscale: integer image size divisor. background: colour RGBA images are composited on.
        facts: the remaining SceneMeta fields the format knows (near, far, kind, aabb, ...).
            unbounded=True is dropped when an image has transparent pixels (the content then
            ends where the alpha says: an object on the background colour).
    """
    bg = np.asarray(background, dtype=np.float32)
    if isinstance(splits, int):
        splits = hold_out(len(frames), splits)
    splits = {name: list(ix) for name, ix in splits.items() if len(ix)}
    if "train" not in splits:
        raise DataError(f"{source}: the train split is empty; add frames or change the split lists")
    used = sorted({i for ix in splits.values() for i in ix})
    model = _common_model([frames[i] for i in used], source)
    copies = downscaled_copies([frames[i] for i in used], root, downscale)
    extra = 1 if copies is not None else downscale
    loaded = {}
    for n, i in enumerate(used):
        f = frames[i]
        path = copies[n] if copies is not None else f.image if isinstance(f.image, Path) else None
        loaded[i] = _load(f, path, copies is not None, bg, extra, downscale)
    out: dict[str, Split] = {}
    built: dict[tuple[int, ...], Split] = {}
    for name, ix in splits.items():
        if tuple(ix) not in built:
            built[tuple(ix)] = _split(name, ix, frames, loaded, model, extra, source)
        out[name] = built[tuple(ix)]
    if facts.get("unbounded") and any(ld.transparent for ld in loaded.values()):
        facts = {**facts, "unbounded": False}
    scene = Scene.from_splits(out, background=bg.tolist(), data_path=str(root), **facts)
    if scene.meta.ndc and "aabb" not in facts:  # the box that holds every training ray
        scene.meta.aabb = ndc_ray_box(scene.split("train").cameras)
    return scene
