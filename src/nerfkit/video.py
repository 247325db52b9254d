"""`nerfkit render`: render a camera path of a trained run to MP4 (colour and depth)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from nerfkit.cameras import Cameras
from nerfkit.errors import NerfkitError
from nerfkit.media import colorize_depth, to_uint8, write_mp4
from nerfkit.paths import orbit_path, spiral_path
from nerfkit.run import load_run


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


def render_path(
    run_dir: Path,
    path: str = "auto",
    output: Path | None = None,
    frames: int = 120,
    fps: int = 30,
    downscale: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> tuple[Path, Path]:
    """Render `path` (orbit | spiral | auto | a camera-path JSON) to `<out>.mp4` and
    `<out>_depth.mp4` at the dataset's full resolution divided by `downscale` (None: the size
    the run was trained at; see `frame_size`). Returns both paths."""
    run = load_run(run_dir, device)
    meta = run.meta
    train_c2w = torch.tensor(meta.train_c2w, dtype=torch.float32)
    w, h, f = frame_size(meta.width, meta.height, meta.focal, run.config.downscale, downscale)
    name = path
    if path == "auto":
        name = "orbit" if meta.kind == "object" else "spiral"
    if name == "orbit":
        poses = orbit_path(train_c2w, frames)
    elif name == "spiral":
        if meta.ndc and not meta.bounds:
            raise NerfkitError(f"{run_dir}: scene has no depth bounds for a spiral path")
        lo, hi = meta.bounds or (meta.near, meta.far)
        poses = spiral_path(train_c2w, (lo, hi), frames)
    elif path.endswith(".json"):
        poses, w, h, f = _read_camera_path(Path(path), w, h, f)
        name = Path(path).stem
    else:
        raise NerfkitError(f"unknown --path '{path}'; use orbit, spiral, auto or a FILE.json")
    n = poses.shape[0]
    cams = Cameras(
        c2w=poses,
        fx=torch.full((n,), f),
        fy=torch.full((n,), f),
        cx=torch.full((n,), w / 2),
        cy=torch.full((n,), h / 2),
        width=w,
        height=h,
    )
    out = Path(output) if output else Path(run_dir) / "render" / f"{name}.mp4"
    if out.suffix != ".mp4":
        out = out / f"{name}.mp4"
    depth_out = out.with_name(out.stem + "_depth.mp4")
    rgb_frames, depths = [], []
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"render {name}", unit="frame")
    for k in it:
        r = run.method.render_image(cams, k, meta.near, meta.far, ndc=meta.ndc)
        rgb_frames.append(to_uint8(r.rgb))
        depths.append((r.depth, r.acc))
    lo, hi = depth_range(depths, (0.0, 1.0) if meta.ndc else (meta.near, meta.far))
    write_mp4(out, rgb_frames, fps=fps)
    write_mp4(depth_out, [colorize_depth(d, lo, hi, acc=a) for d, a in depths], fps=fps)
    return out, depth_out
