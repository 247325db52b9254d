"""Volume rendering quadrature (Max 1995; Mildenhall et al. 2020, eq. 3).

Along a ray with samples t_1 < ... < t_S, densities sigma_i and interval lengths delta_i:
    alpha_i = 1 - exp(-sigma_i delta_i)
    T_i     = prod_{j<i} (1 - alpha_j) = exp(-sum_{j<i} sigma_j delta_j)
    w_i     = T_i alpha_i
    C       = sum_i w_i c_i + (1 - sum_i w_i) * background
The quadrature is exact when sigma and c are constant on each interval.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

INFINITE_DELTA = 1e10


def softplus_bias_for_opacity(length: float, opacity: float) -> float:
    """The raw density b with softplus(b) = the density sigma that makes an interval of
    `length` `opacity` opaque (1 - exp(-sigma length) = opacity): a field of raw density 0
    behind softplus(raw + b) starts at that opacity."""
    sigma = -math.log(1.0 - opacity) / max(length, 1e-6)
    return math.log(math.expm1(sigma))


def sample_deltas(t: Tensor, last: Tensor | float = INFINITE_DELTA) -> Tensor:
    """Interval lengths delta_i = t_{i+1} - t_i, with `last` for the final sample.

    The reference code uses an effectively infinite last interval (1e10), so whatever the final
    sample sees is opaque; pass `far - t[..., -1]` to end the ray at the far bound instead.

    Args:
        t: [..., S] sorted distances.
        last: scalar or [...] length of the last interval.
    Returns:
        [..., S]
    """
    d = t[..., 1:] - t[..., :-1]
    if isinstance(last, Tensor):
        tail = last[..., None].to(t.dtype).expand(*t.shape[:-1], 1)
    else:
        tail = torch.full_like(t[..., :1], float(last))
    return torch.cat([d, tail], dim=-1)


def render_weights(sigma: Tensor, deltas: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Compositing weights from densities.

    Args:
        sigma: [..., S] non-negative densities.
        deltas: [..., S] interval lengths.
    Returns:
        weights w: [..., S]; transmittance T (before each sample): [..., S]; alpha: [..., S].
    """
    tau = sigma * deltas  # optical depth of each interval
    alpha = 1.0 - torch.exp(-tau)
    # exclusive cumulative sum: optical depth accumulated before sample i. Not cumsum - tau:
    # with the (effectively infinite) last interval, tau_S ~ 1e10 swamps the sum in float32
    # and the subtraction cancels to 0, giving T_S = 1 and weights summing to more than 1.
    accum = torch.cat([torch.zeros_like(tau[..., :1]), torch.cumsum(tau[..., :-1], dim=-1)], -1)
    trans = torch.exp(-accum)
    return trans * alpha, trans, alpha


def composite(weights: Tensor, values: Tensor) -> Tensor:
    """sum_i w_i v_i.

    Args:
        weights: [..., S]; values: [..., S, C].
    Returns:
        [..., C]
    """
    return torch.einsum("...s,...sc->...c", weights, values)


def render_along_rays(
    sigma: Tensor,
    rgb: Tensor,
    t: Tensor,
    deltas: Tensor,
    background: Tensor | None = None,
) -> dict[str, Tensor]:
    """Composite colour, expected depth and opacity of each ray.

    Args:
        sigma: [R, S] densities; rgb: [R, S, 3] colours; t: [R, S] sample distances;
        deltas: [R, S] interval lengths; background: [3] colour behind the scene (None = black).
    Returns:
        dict with rgb [R, 3], depth [R] (expected termination distance given that the ray
        terminates: sum w t / sum w; 0 where nothing is hit), acc [R] (opacity sum w),
        weights [R, S], trans [R, S].
    """
    weights, trans, _ = render_weights(sigma, deltas)
    acc = weights.sum(dim=-1)
    color = composite(weights, rgb)
    if background is not None:
        color = color + (1.0 - acc[..., None]) * background.to(color)
    depth = (weights * t).sum(dim=-1) / acc.clamp(min=1e-10)
    return {"rgb": color, "depth": depth, "acc": acc, "weights": weights, "trans": trans}


# --- packed (ragged) samples -------------------------------------------------------------------
# Samples of all rays in one flat list of P entries, `ray_indices` [P] telling which ray each
# belongs to (as nerfacc does), so that a ray costs only as many samples as it really has.
# Layout: the samples of one ray are contiguous and sorted by distance along it; rays appear in
# increasing order (ray_indices is non-decreasing). Rays with no samples simply do not appear.

PACKED_TAU_CLAMP = 80.0
"""Optical depths are clamped to this in the transmittance sum (exp(-80) ~ 2e-35 is zero in
float32 weights), which keeps the float64 running sum exact across rays."""


def render_weights_packed(
    sigma: Tensor, deltas: Tensor, ray_indices: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Compositing weights of packed samples: `render_weights` for ragged rays.

    Args:
        sigma: [P] non-negative densities.
        deltas: [P] interval lengths.
        ray_indices: [P] int64 ray of each sample, non-decreasing; each ray's samples contiguous
            and sorted along the ray.
    Returns:
        weights w: [P]; transmittance T before each sample: [P]; alpha: [P]; for each ray the
        same values `render_weights` gives on that ray's samples alone.
    """
    tau = sigma * deltas
    alpha = 1.0 - torch.exp(-tau)
    if tau.numel() == 0:
        return alpha, torch.ones_like(alpha), alpha
    # exclusive per-ray cumulative sum as a global cumsum minus the sum before each ray's first
    # sample; float64 and clamped taus so earlier rays' sums do not swamp later ones.
    accum = _exclusive_segment_cumsum(tau.clamp(max=PACKED_TAU_CLAMP), ray_indices)
    trans = torch.exp(-accum.to(tau.dtype))
    return trans * alpha, trans, alpha


def _exclusive_segment_cumsum(x: Tensor, ray_indices: Tensor) -> Tensor:
    """Per-ray exclusive cumulative sums of packed values x [P] (float64): for sample i of ray r,
    the sum of x over the samples of r before i. ray_indices [P]: the packed layout above."""
    x = x.double()
    excl = torch.cumsum(x, dim=0) - x
    first = torch.ones_like(ray_indices, dtype=torch.bool)
    first[1:] = ray_indices[1:] != ray_indices[:-1]
    start = torch.cumsum(first.long(), 0) - 1
    return excl - excl[first][start]


def distortion_loss_packed(
    weights: Tensor, s: Tensor, deltas: Tensor, ray_indices: Tensor, num_rays: int
) -> Tensor:
    """mip-NeRF 360's distortion loss (Barron et al. 2022, eq. 15) of packed samples, per ray:

        L(r) = sum_i sum_j w_i w_j |s_i - s_j| + 1/3 sum_i w_i^2 delta_i

    with s the samples' positions (interval midpoints) along the ray, normalised (e.g. to
    [0, 1] over [near, far]), and delta their interval lengths in the same units. It is small
    when a ray's weight sits in one short interval. The double sum is computed in O(P) as
    2 sum_i w_i (s_i W_i - S_i), W_i and S_i the sums of w and w s over the ray's earlier
    samples (DVGO v2's form).

    Args:
        weights: [P]; s: [P] sorted along each ray; deltas: [P]; ray_indices: [P] (packed layout
        above); num_rays: R.
    Returns:
        [R] the loss of each ray (0 for rays without samples).
    """
    if weights.numel() == 0:
        return weights.new_zeros(num_rays)
    w64, s64 = weights.double(), s.double()
    cross = (
        2.0
        * w64
        * (
            s64 * _exclusive_segment_cumsum(w64, ray_indices)
            - _exclusive_segment_cumsum(w64 * s64, ray_indices)
        )
    )
    self_term = w64**2 * deltas.double() / 3.0
    return accumulate_packed((cross + self_term).to(weights.dtype), ray_indices, num_rays)


def accumulate_packed(values: Tensor, ray_indices: Tensor, num_rays: int) -> Tensor:
    """Per-ray sums of packed values: out[r] = sum of values[i] over samples i of ray r.

    Args:
        values: [P] or [P, C]; ray_indices: [P] int64; num_rays: R.
    Returns:
        [R] or [R, C] (zero for rays without samples).
    """
    out = values.new_zeros((num_rays, *values.shape[1:]))
    return out.index_add(0, ray_indices, values)


def render_packed(
    sigma: Tensor,
    rgb: Tensor,
    t: Tensor,
    deltas: Tensor,
    ray_indices: Tensor,
    num_rays: int,
    background: Tensor | None = None,
) -> dict[str, Tensor]:
    """`render_along_rays` for packed samples.

    Args:
        sigma: [P]; rgb: [P, 3]; t: [P] sample distances; deltas: [P]; ray_indices: [P] (layout
        above); num_rays: R; background: [3] (None = black).
    Returns:
        dict with rgb [R, 3], depth [R] (sum w t / sum w; 0 where nothing is hit), acc [R],
        weights [P], trans [P].
    """
    weights, trans, _ = render_weights_packed(sigma, deltas, ray_indices)
    acc = accumulate_packed(weights, ray_indices, num_rays)
    color = accumulate_packed(weights[:, None] * rgb, ray_indices, num_rays)
    if background is not None:
        color = color + (1.0 - acc[:, None]) * background.to(color)
    depth = accumulate_packed(weights * t, ray_indices, num_rays) / acc.clamp(min=1e-10)
    return {"rgb": color, "depth": depth, "acc": acc, "weights": weights, "trans": trans}
