"""Image metrics (PSNR, SSIM with the paper's protocol) and rendering whole images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nerfkit.cameras import Cameras
from nerfkit.methods.base import Method


def psnr(pred: Tensor, true: Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1]: -10 log10(MSE)."""
    mse = torch.mean((pred.float() - true.float()) ** 2).item()
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def mse_to_psnr(mse: float) -> float:
    return -10.0 * math.log10(max(mse, 1e-12))


def _gaussian_window(size: int, sigma: float) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: Tensor, true: Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al. 2004) as the NeRF papers compute it.

    Gaussian window 11 x 11 with sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, statistics
    from 'valid' windows only (no padding), averaged over channels and pixels; this matches
    tf.image.ssim and skimage's structural_similarity(gaussian_weights=True,
    use_sample_covariance=False).

    Args:
        pred, true: [H, W, C] in [0, 1].
    """
    x = pred.double().permute(2, 0, 1)[:, None]  # [C, 1, H, W]
    y = true.double().permute(2, 0, 1)[:, None]
    g = _gaussian_window(window, sigma).to(x.device)

    def filt(z: Tensor) -> Tensor:  # separable valid convolution
        z = F.conv2d(z, g.view(1, 1, 1, -1))
        return F.conv2d(z, g.view(1, 1, -1, 1))

    c1, c2 = 0.01**2, 0.03**2
    mx, my = filt(x), filt(y)
    sxx = filt(x * x) - mx * mx
    syy = filt(y * y) - my * my
    sxy = filt(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return float((num / den).mean())


def quantize(img: Tensor) -> Tensor:
    """Round to 8 bits as a saved PNG would (metrics are computed on these, as the papers do)."""
    return torch.round(img.clamp(0, 1) * 255.0) / 255.0


@torch.no_grad()
def render_image(
    method: Method,
    cameras: Cameras,
    k: int,
    near: float,
    far: float,
    ndc: bool = False,
    chunk: int | None = None,
    time: float | None = None,
) -> dict[str, Tensor]:
    """Render camera k's full image in chunks of rays (bounded memory).

    Returns:
        rgb [H, W, 3], depth [H, W], acc [H, W] on the CPU.
    """
    was_training = method.training
    method.eval()
    device = method.background.device
    rays = cameras.image_rays(k, near, far, ndc=ndc, time=time)
    chunk = chunk or getattr(method, "eval_chunk_rays", 4096)
    outs: dict[str, list[Tensor]] = {"rgb": [], "depth": [], "acc": []}
    for i in range(0, len(rays), chunk):
        o = method(rays[i : i + chunk].to(device))
        outs["rgb"].append(o.rgb.float().cpu())
        outs["depth"].append(o.depth.float().cpu())
        outs["acc"].append(o.acc.float().cpu())
    method.train(was_training)
    h, w = cameras.height, cameras.width
    return {
        "rgb": torch.cat(outs["rgb"]).reshape(h, w, 3).clamp(0, 1),
        "depth": torch.cat(outs["depth"]).reshape(h, w),
        "acc": torch.cat(outs["acc"]).reshape(h, w),
    }


def image_metrics(pred: Tensor, true: Tensor) -> dict[str, float]:
    """PSNR and SSIM of 8-bit-quantised images [H, W, 3]."""
    p, t = quantize(pred), quantize(true)
    return {"psnr": psnr(p, t), "ssim": ssim(p, t)}


def summarize(per_view: list[dict[str, float]]) -> dict[str, float]:
    keys = [k for k in per_view[0] if isinstance(per_view[0][k], float | int)]
    return {k: float(np.mean([v[k] for v in per_view])) for k in keys}


def evaluate_run(
    run_dir: Path,
    split: str = "test",
    data: Path | None = None,
    output: Path | None = None,
    downscale: int = 1,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Render every view of a split at the dataset's resolution divided by `downscale`.

    Writes `<frame stem>.png`, `<frame stem>_depth.png` and `metrics.json` (PSNR and SSIM per view
    and their means, on 8-bit images) into `output` (default: RUN/eval_<split>).
    `data` evaluates another folder's split, in the same scene frame, instead of the run's data.
    """
    from nerfkit.config import save_json_atomic
    from nerfkit.data import load_scene
    from nerfkit.media import colorize_depth, write_png
    from nerfkit.run import load_run

    run = load_run(run_dir, device)
    cfg, meta = run.config, run.meta
    scene = load_scene(data or cfg.data, format=None if data else cfg.format, downscale=downscale)
    sp = scene.split(split)
    out_dir = Path(output) if output else Path(run_dir) / f"eval_{split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    near, far = meta.near, meta.far
    drange = (0.0, 1.0) if meta.ndc else (near, far)
    views = []
    it = range(len(sp))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"eval {split}", unit="view")
    for k in it:
        t = None if sp.times is None else float(sp.times[k])
        r = render_image(run.method, sp.cameras, k, near, far, ndc=meta.ndc, time=t)
        m = image_metrics(r["rgb"], sp.images[k])
        views.append({"name": sp.names[k], **m})
        write_png(out_dir / f"{sp.names[k]}.png", r["rgb"])
        write_png(
            out_dir / f"{sp.names[k]}_depth.png", colorize_depth(r["depth"], *drange, acc=r["acc"])
        )
    result = {
        "run": str(run_dir),
        "step": run.step,
        "split": split,
        "data": str(data or cfg.data),
        "resolution": [sp.cameras.width, sp.cameras.height],
        "num_views": len(views),
        "mean": summarize([{k: v[k] for k in ("psnr", "ssim")} for v in views]),
        "views": views,
    }
    save_json_atomic(out_dir / "metrics.json", result)
    result["output"] = str(out_dir)
    return result
