"""`nerfkit render`: render a camera path of a trained run to MP4 (colour and depth); for
dynamic runs, with time sweeping 0 -> 1 or frozen, or a fixed camera while time sweeps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from nerfkit.cameras import Cameras
from nerfkit.errors import NerfkitError
from nerfkit.media import colorize_depth, to_uint8, write_mp4
from nerfkit.paths import check_time, frame_times, orbit_path, spiral_path
from nerfkit.run import LoadedRun, load_run


def _read_camera_path(path: Path, width: int, height: int, focal: float) -> tuple:
    """nerfstudio camera-path JSON: camera_path[i].camera_to_world (16 floats) and fov (deg)."""
    try:
        spec = json.loads(path.read_text())
        frames = spec["camera_path"]
        c2w = torch.tensor([f["camera_to_world"] for f in frames], dtype=torch.float32)
        c2w = c2w.reshape(-1, 4, 4)
    except FileNotFoundError:
        raise NerfkitError(f"{path}: camera path file not found") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise NerfkitError(
            f"{path}: not a camera path (need camera_path[].camera_to_world: {e})"
        ) from None
    h = int(spec.get("render_height", height))
    w = int(spec.get("render_width", width))
    fov = frames[0].get("fov")
    f = 0.5 * h / math.tan(math.radians(fov) / 2) if fov else focal * h / height
    return c2w, w, h, f


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


def render_path(
    run_dir: Path | LoadedRun,
    path: str = "auto",
    output: Path | None = None,
    frames: int = 120,
    fps: int = 30,
    downscale: int | None = None,
    device: str = "auto",
    progress: bool = True,
    time: float | None = None,
    view: int | None = None,
) -> tuple[Path, Path]:
    """Render `path` (orbit | spiral | auto | fixed | a camera-path JSON) to `<out>.mp4` and
    `<out>_depth.mp4` at the dataset's full resolution divided by `downscale` (None: the size
    the run was trained at; see `frame_size`). Returns both paths.

    Dynamic runs (`SceneMeta.dynamic`): along a moving path time runs from 0 to 1 over the
    frames, or stays at `time` (a frozen instant; output `<path>_t<time>.mp4`); `fixed` holds
    one camera of the dataset (`view_camera`: test view `view`, default 0, else the training
    view) still while time runs from 0 to 1 (output `fixed_<split><view>.mp4`). Static runs
    render without time and refuse `time` and `fixed`.
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
    elif view is not None:
        raise NerfkitError("--view chooses the camera of --path fixed; use them together")
    train_c2w = torch.tensor(meta.train_c2w, dtype=torch.float32)
    w, h, f = frame_size(meta.width, meta.height, meta.focal, run.config.downscale, downscale)
    name = path
    if path == "auto":
        name = "orbit" if meta.kind == "object" else "spiral"
    if name == "orbit":
        poses = orbit_path(train_c2w, frames)
    elif name == "spiral":
        if meta.ndc and not meta.bounds:
            raise NerfkitError(f"{run.run_dir}: scene has no depth bounds for a spiral path")
        lo, hi = meta.bounds or (meta.near, meta.far)
        poses = spiral_path(train_c2w, (lo, hi), frames)
    elif path == "fixed":
        poses = None
    elif path.endswith(".json"):
        poses, w, h, f = _read_camera_path(Path(path), w, h, f)
        name = Path(path).stem
    else:
        raise NerfkitError(
            f"unknown --path '{path}'; use orbit, spiral, auto, fixed (dynamic runs) or a FILE.json"
        )
    if poses is None:  # the fixed camera, the same index for every frame
        cams, label = view_camera(run, view, downscale=downscale)
        name = f"fixed_{label}"
        cam_index = [0] * frames
    else:
        cams = pinhole_cameras(poses, w, h, f)
        cam_index = list(range(poses.shape[0]))
    n = len(cam_index)
    times: list[float | None] = [None] * n
    if meta.dynamic:
        mode = "sweep" if time is None else "frozen"
        times = frame_times(n, mode, time).tolist()
        if time is not None:
            name = f"{name}_t{time:g}"
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
    write_mp4(out, rgb_frames, fps=fps)
    write_mp4(depth_out, [colorize_depth(d, lo, hi, acc=a) for d, a in depths], fps=fps)
    return out, depth_out
