"""Where to put samples along rays: stratified (coarse) and inverse-CDF (hierarchical, fine)."""

from __future__ import annotations

import torch
from torch import Tensor


def stratified_samples(
    near: Tensor,
    far: Tensor,
    num_samples: int,
    perturb: bool = True,
    lindisp: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Stratified sample distances along each ray (paper eq. 2, reference-code layout).

    The interval [near, far] is cut into `num_samples` evenly spaced points (in depth, or in
    inverse depth with `lindisp`); with `perturb`, each point is replaced by a uniform draw
    in the bin between the midpoints to its neighbours, so every part of the ray is sampled
    over training (the first and last bins are half bins ending at near and far).

    Args:
        near, far: [R] bounds per ray.
        num_samples: S.
        perturb: jitter within bins (training); False gives the evenly spaced points (testing).
        lindisp: space samples linearly in disparity 1/t instead of depth.
    Returns:
        t: [R, S] sorted distances in [near, far].
    """
    u = torch.linspace(0.0, 1.0, num_samples, device=near.device, dtype=near.dtype)  # [S]
    n, f = near[:, None], far[:, None]
    if lindisp:
        t = 1.0 / (1.0 / n * (1.0 - u) + 1.0 / f * u)
    else:
        t = n * (1.0 - u) + f * u  # [R, S]
    if perturb and num_samples > 1:
        mids = 0.5 * (t[:, 1:] + t[:, :-1])
        upper = torch.cat([mids, t[:, -1:]], dim=-1)
        lower = torch.cat([t[:, :1], mids], dim=-1)
        r = torch.rand(t.shape, device=t.device, dtype=t.dtype, generator=generator)
        t = lower + (upper - lower) * r
    return t


def sample_pdf(
    bins: Tensor,
    weights: Tensor,
    num_samples: int,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Inverse-CDF samples of the piecewise-constant density given by `weights` over `bins`.

    Bin k spans [bins[k], bins[k+1]] and holds probability weights[k] / sum(weights) (after
    adding `eps` to every weight so empty rays still sample uniformly, as the reference code
    does). A uniform u in [0, 1) maps to the bin whose CDF interval holds it and then linearly
    inside that bin.

    Args:
        bins: [R, B+1] sorted bin edges.
        weights: [R, B] non-negative.
        num_samples: N.
        deterministic: use u = linspace(0, 1, N) (evaluation) instead of uniform draws.
    Returns:
        [R, N] samples, sorted when `deterministic`, detached from the weights.
    """
    weights = weights.detach() + eps
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cumsum(pdf, dim=-1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], dim=-1)  # [R, B+1]
    cdf[:, -1] = 1.0
    shape = (*cdf.shape[:-1], num_samples)
    if deterministic:
        u = torch.linspace(0.0, 1.0, num_samples, device=bins.device, dtype=bins.dtype)
        u = u.expand(shape).contiguous()
    else:
        u = torch.rand(shape, device=bins.device, dtype=bins.dtype, generator=generator)
    idx = torch.searchsorted(cdf, u, right=True)  # first edge with cdf > u
    below = (idx - 1).clamp(min=0, max=cdf.shape[-1] - 1)
    above = idx.clamp(max=cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = cdf.gather(-1, below), cdf.gather(-1, above)
    bin_lo, bin_hi = bins.detach().gather(-1, below), bins.detach().gather(-1, above)
    denom = cdf_hi - cdf_lo
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    frac = (u - cdf_lo) / denom
    return bin_lo + frac * (bin_hi - bin_lo)


def merge_samples(t_coarse: Tensor, t_fine: Tensor) -> Tensor:
    """Union of coarse and fine sample distances, sorted along the ray.

    Args:
        t_coarse: [R, S]; t_fine: [R, N].
    Returns:
        [R, S + N] sorted.
    """
    return torch.sort(torch.cat([t_coarse, t_fine], dim=-1), dim=-1).values
