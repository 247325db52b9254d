"""`nerfkit render`: render a camera path of a trained run to MP4 (colour and depth); for
dynamic runs, with time sweeping 0 -> 1 or frozen, or a fixed camera while time sweeps."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from nerfkit.camera_path import (
    CameraPath,
    applied_transform,
    focal_from_fov,
    fov_from_focal,
    load_camera_path,
    path_cameras,
    perspective_path,
    save_camera_path,
)
from nerfkit.cameras import Cameras
from nerfkit.errors import NerfkitError
from nerfkit.media import colorize_depth, to_uint8, write_mp4
from nerfkit.paths import check_time, frame_times, interp_path, orbit_path, spiral_path
from nerfkit.run import LoadedRun, load_run

KEYFRAMES = 8  # key poses written for an editor along orbit and spiral paths


def depth_range(
    depths: list[tuple[torch.Tensor, torch.Tensor]], default: tuple[float, float]
) -> tuple[float, float]:
    """Colour-map range shared by all frames: 1st-99th percentile of the depth where something
    is hit (opacity > 0.5), so the scene spans the whole colour map; `default` if nothing is."""
    hit = torch.cat([d[a > 0.5].flatten() for d, a in depths])
    if hit.numel() < 2:
        return default
    lo, hi = torch.quantile(hit[:: max(1, hit.numel() // 100_000)], torch.tensor([0.01, 0.99]))
    return (float(lo), float(hi)) if hi > lo else default


def frame_size(
    width: int, height: int, focal: float, trained: int, downscale: int | None
) -> tuple[int, int, float]:
    """Width, height and focal (pixels) of rendered frames.

    Args:
        width, height, focal: the size and focal the run was trained at (`SceneMeta`).
        trained: the run's training `--downscale` (of the dataset's full resolution).
        downscale: divide the dataset's full resolution by this; None: the trained size.
    Returns:
        the trained size where `downscale` is None or `trained`; else the full size (trained
        size times `trained`) divided by `downscale`, rounded down, focal scaled exactly.
    """
    if downscale is None or downscale == trained:
        return width, height, focal
    if downscale < 1:
        raise NerfkitError(f"--downscale must be >= 1, got {downscale}")
    return width * trained // downscale, height * trained // downscale, focal * trained / downscale


def pinhole_cameras(c2w: torch.Tensor, w: int, h: int, f: float) -> Cameras:
    """Pinhole cameras [N] of one size and focal, principal point at the centre."""
    n = c2w.shape[0]
    full = torch.full((n,), f)
    return Cameras(
        c2w=c2w,
        fx=full,
        fy=full.clone(),
        cx=torch.full((n,), w / 2),
        cy=torch.full((n,), h / 2),
        width=w,
        height=h,
    )


def view_camera(
    run: LoadedRun, view: int | None = None, split: str | None = None, downscale: int | None = None
) -> tuple[Cameras, str]:
    """One camera of the run's dataset, at the dataset's full resolution divided by `downscale`
    (None: the run's training --downscale), with its own intrinsics and distortion.

    Args:
        view: index in the split (None: 0).
        split: a split name; None: the test split if the dataset has one, else train. When the
            dataset folder is gone and `split` is None, the training pose `view` stored in the
            run folder (`SceneMeta.train_c2w`, pinhole at `frame_size`).
    Returns:
        (cameras [1], label "<split><view>", e.g. "test0").
    """
    cfg, meta = run.config, run.meta
    k = 0 if view is None else int(view)
    if split is None and (cfg.data is None or not Path(cfg.data).is_dir()):
        n = len(meta.train_c2w)
        if not 0 <= k < n:
            raise NerfkitError(f"--view {k} out of range: the run has {n} training views")
        w, h, f = frame_size(meta.width, meta.height, meta.focal, cfg.downscale, downscale)
        c2w = torch.tensor(meta.train_c2w[k], dtype=torch.float32)[None]
        return pinhole_cameras(c2w, w, h, f), f"train{k}"
    from nerfkit.data import load_scene

    if cfg.data is None:
        raise NerfkitError(f"{run.run_dir}: the run's config names no dataset folder")
    scene = load_scene(
        cfg.data,
        format=cfg.format,
        downscale=cfg.downscale if downscale is None else downscale,
        ndc=meta.ndc,
    )
    if split is None:
        split = "test" if len(scene.splits.get("test", ())) > 0 else "train"
    sp = scene.split(split)
    if not 0 <= k < len(sp):
        raise NerfkitError(
            f"--view {k} out of range: the {split} split has {len(sp)} views (0..{len(sp) - 1})"
        )
    return sp.cameras[k : k + 1], f"{split}{k}"


def _static_error(run: LoadedRun, flag: str) -> NerfkitError:
    return NerfkitError(
        f"{run.run_dir}: a static run (its training images have no time stamps); {flag} is for "
        "dynamic runs"
    )


def make_camera_path(
    run: LoadedRun,
    path: str = "auto",
    frames: int = 120,
    fps: float | None = None,
    downscale: int | None = None,
    path_frame: str | None = None,
) -> tuple[CameraPath, str]:
    """The camera path `path` (orbit | spiral | auto | interp | a camera-path JSON) of a run, in
    its scene frame, and its name for output files.

    Generated paths have `frames` frames at the size `frame_size` gives, `fps` (None: 30), the
    run's SceneMeta.data_transform as scene_from_dataset and a few key poses for an editor
    (interp: the training views it passes through). A JSON file is read by
    `nerfkit.camera_path.load_camera_path` in `path_frame` (None: the file's own, else
    "dataset"): its frames, size and fps; `downscale` divides its size, `fps` overrides its.
    """
    meta = run.meta
    if fps is not None and not fps > 0:
        raise NerfkitError(f"--fps must be positive, got {fps}")
    train_c2w = torch.tensor(meta.train_c2w, dtype=torch.float32)
    w, h, f = frame_size(meta.width, meta.height, meta.focal, run.config.downscale, downscale)
    sfd = torch.tensor(meta.data_transform, dtype=torch.float64) if meta.data_transform else None
    name = path
    if path == "auto":
        name = "orbit" if meta.kind == "object" else "spiral"
    keys = None
    if name == "orbit":
        poses = orbit_path(train_c2w, frames)
    elif name == "spiral":
        if meta.ndc and not meta.bounds:
            raise NerfkitError(f"{run.run_dir}: scene has no depth bounds for a spiral path")
        lo, hi = meta.bounds or (meta.near, meta.far)
        poses = spiral_path(train_c2w, (lo, hi), frames)
    elif name == "interp":
        poses, idx = interp_path(train_c2w, frames)
        keys = train_c2w[idx]
    elif path.endswith(".json"):
        cp = load_camera_path(
            Path(path),
            path_frame,
            meta.data_transform,
            applied_transform(run.config.data, meta.format),
            default_size=(w, h),
            default_fov=fov_from_focal(f, h),
        )
        if downscale is not None:  # (frame_size refused a downscale < 1)
            cp = replace(cp, width=cp.width // downscale, height=cp.height // downscale)
        if fps is not None:
            cp = replace(cp, fps=float(fps), seconds=len(cp) / fps)
        return _check_ndc(run, cp), Path(path).stem
    else:
        raise NerfkitError(
            f"unknown --path '{path}'; use orbit, spiral, auto, interp, fixed (dynamic runs) or "
            "a FILE.json"
        )
    if path_frame is not None:
        raise NerfkitError("--path-frame says which frame a --path FILE.json is in; drop it here")
    if keys is None:
        keys = poses[:: max(1, len(poses) // KEYFRAMES)]
    cp = perspective_path(poses, w, h, f, 30.0 if fps is None else fps, None, keys, sfd, True)
    return cp, name


def _check_ndc(run: LoadedRun, cp: CameraPath) -> CameraPath:
    """`cp` if the run can render it: NDC runs (forward-facing) take only perspective frames
    with the trained focal over width and height (their NDC space is defined by those)."""
    meta = run.meta
    if not meta.ndc:
        return cp
    if cp.camera_type != "perspective":
        raise NerfkitError(
            f"{run.run_dir}: a forward-facing (NDC) run renders only perspective cameras, not "
            f"{cp.camera_type} ones; render a perspective path"
        )
    fov = fov_from_focal(meta.focal, meta.height)
    focal = focal_from_fov(cp.fov, cp.height)
    off = (focal / cp.height - meta.focal / meta.height).abs() / (meta.focal / meta.height)
    if float(off.max()) > 1e-3 or abs(cp.width / cp.height - meta.width / meta.height) > 1e-2:
        raise NerfkitError(
            f"{run.run_dir}: a forward-facing (NDC) run renders only at its trained field of view "
            f"({fov:.4g} deg vertical) and aspect {meta.width}:{meta.height}; set the path's fov "
            "and render_width/height to those"
        )
    return cp


def render_path(
    run_dir: Path | LoadedRun,
    path: str = "auto",
    output: Path | None = None,
    frames: int = 120,
    fps: float | None = None,
    downscale: int | None = None,
    device: str = "auto",
    progress: bool = True,
    time: float | None = None,
    view: int | None = None,
    path_frame: str | None = None,
    save_path: Path | None = None,
    render: bool = True,
) -> tuple[Path, Path] | None:
    """Render `path` (orbit | spiral | auto | interp | fixed | a camera-path JSON; see
    `make_camera_path`) to `<out>.mp4` and `<out>_depth.mp4` at the dataset's full resolution
    divided by `downscale` (None: the size the run was trained at; see `frame_size`). Returns
    both paths; None when `render` is False.

    `save_path`: also write the path as a camera-path JSON (`save_camera_path`; scene frame,
    with the frame times of a dynamic run as render_time); with `render` False, only that.

    Dynamic runs (`SceneMeta.dynamic`): along a moving path time runs from 0 to 1 over the
    frames, or follows a JSON path's render_time, or stays at `time` (a frozen instant, which
    wins; output `<path>_t<time>.mp4`); `fixed` holds one camera of the dataset (`view_camera`:
    test view `view`, default 0, else the training view) still while time runs from 0 to 1
    (output `fixed_<split><view>.mp4`). Static runs render without time and refuse `time` and
    `fixed`.
    """
    run = run_dir if isinstance(run_dir, LoadedRun) else load_run(run_dir, device)
    meta = run.meta
    if time is not None:
        time = check_time(time)
        if not meta.dynamic:
            raise _static_error(run, "--time")
    if path == "fixed":
        if not meta.dynamic:
            raise _static_error(run, "--path fixed")
        if time is not None:
            raise NerfkitError(
                "--time freezes time and --path fixed holds the camera still: nothing would "
                "move; drop one of them (a still image: `nerfkit eval`)"
            )
        if save_path is not None:
            raise NerfkitError(
                "--path fixed renders a dataset camera with its own intrinsics, which a camera "
                "path file cannot hold; --save-path is for moving paths"
            )
        cams, label = view_camera(run, view, downscale=downscale)
        name = f"fixed_{label}"
        cam_index = [0] * frames
        path_times = None
    else:
        if view is not None:
            raise NerfkitError("--view chooses the camera of --path fixed; use them together")
        cp, name = make_camera_path(run, path, frames, fps, downscale, path_frame)
        fps = cp.fps
        cams = path_cameras(cp)
        cam_index = list(range(len(cp)))
        path_times = cp.times
    n = len(cam_index)
    times: list[float | None] = [None] * n
    if meta.dynamic:
        if time is not None:
            times = frame_times(n, "frozen", time).tolist()
            name = f"{name}_t{time:g}"
        elif path_times is not None:
            times = path_times.tolist()
        else:
            times = frame_times(n, "sweep").tolist()
    if save_path is not None:
        saved_times = torch.tensor(times, dtype=torch.float64) if meta.dynamic else cp.times
        save_camera_path(Path(save_path), replace(cp, times=saved_times))
    if not render:
        return None
    out = Path(output) if output else Path(run.run_dir) / "render" / f"{name}.mp4"
    if out.suffix != ".mp4":
        out = out / f"{name}.mp4"
    depth_out = out.with_name(out.stem + "_depth.mp4")
    rgb_frames, depths = [], []
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"render {name}", unit="frame")
    for i in it:
        r = run.method.render_image(
            cams, cam_index[i], meta.near, meta.far, ndc=meta.ndc, time=times[i]
        )
        rgb_frames.append(to_uint8(r.rgb))
        depths.append((r.depth, r.acc))
    lo, hi = depth_range(depths, (0.0, 1.0) if meta.ndc else (meta.near, meta.far))
    fps = 30.0 if fps is None else fps
    write_mp4(out, rgb_frames, fps=fps)
    write_mp4(depth_out, [colorize_depth(d, lo, hi, acc=a) for d, a in depths], fps=fps)
    return out, depth_out
