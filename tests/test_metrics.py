"""PSNR and SSIM (paper protocol) against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfkit.metrics import image_metrics, psnr, quantize, ssim


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM as skimage computes it with gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1: scipy Gaussian filters (truncate 3.5 -> 11x11),
    borders of 5 pixels cropped, mean over pixels and channels."""
    nd = pytest.importorskip("scipy.ndimage")

    def f(z: np.ndarray) -> np.ndarray:
        return nd.gaussian_filter(z, sigma=1.5, truncate=3.5)

    vals = []
    for c in range(x.shape[-1]):
        a, b = x[..., c].astype(np.float64), y[..., c].astype(np.float64)
        mx, my = f(a), f(b)
        vx, vy, vxy = f(a * a) - mx * mx, f(b * b) - my * my, f(a * b) - mx * my
        c1, c2 = 0.01**2, 0.03**2
        s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        vals.append(s[5:-5, 5:-5].mean())
    return float(np.mean(vals))


def test_psnr_closed_form() -> None:
    a = torch.zeros(4, 4, 3)
    b = torch.full((4, 4, 3), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)  # -10 log10(0.01)
    assert math.isinf(psnr(a, a))


def test_ssim_matches_reference_and_bounds() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((40, 37, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
    ours = ssim(torch.from_numpy(x), torch.from_numpy(y))
    assert ours == pytest.approx(_ssim_reference(x, y), abs=1e-6)
    assert ssim(torch.from_numpy(x), torch.from_numpy(x)) == pytest.approx(1.0)
    assert ours < 0.99


def test_metrics_on_8bit_images() -> None:
    x = torch.rand(16, 16, 3)
    q = quantize(x)
    assert torch.all((q * 255 - torch.round(q * 255)).abs() < 1e-4)
    m = image_metrics(x, x + 0.001)  # below half an 8-bit step: mostly identical after rounding
    assert m["psnr"] > 45
