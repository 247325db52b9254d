"""Image metrics as the NeRF papers report them: PSNR and SSIM on 8-bit-quantised images."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, true: Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1]: -10 log10(MSE)."""
    mse = torch.mean((pred.float() - true.float()) ** 2).item()
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def mse_to_psnr(mse: float) -> float:
    """PSNR in dB of a mean squared error of images in [0, 1] (floored at MSE 1e-12)."""
    return -10.0 * math.log10(max(mse, 1e-12))


def _gaussian_window(size: int, sigma: float) -> Tensor:
    """[size] normalised 1-D Gaussian (float64)."""
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


def image_metrics(pred: Tensor, true: Tensor) -> dict[str, float]:
    """PSNR and SSIM of 8-bit-quantised images [H, W, 3]."""
    p, t = quantize(pred), quantize(true)
    return {"psnr": psnr(p, t), "ssim": ssim(p, t)}


def summarize(per_view: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each numeric entry over views (keys taken from the first view)."""
    keys = [k for k in per_view[0] if isinstance(per_view[0][k], float | int)]
    return {k: float(np.mean([v[k] for v in per_view])) for k in keys}
