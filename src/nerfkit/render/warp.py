"""Warp-field maths of Nerfies and HyperNeRF: rigid-body exponential maps, the coarse-to-fine
windowed positional encoding, the annealing schedules, and the robust regularisers.

Pure functions (no state), ported from the released code rather than from the papers:
- google/nerfies `nerfies/rigid_body.py`: `skew`, `exp_so3` (Rodrigues), `exp_se3` (Modern
  Robotics eq. 3.88), `to_homogeneous` / `from_homogeneous`; `nerfies/warping.py`
  (`SE3Field.warp`): `screw_warp`, the log-space screw (w, v) -> theta = |w|, axis w / theta,
  v / theta -> exp_se3 -> applied to the point.
- `nerfies/modules.py` (`AnnealedSinusoidalEncoder.cosine_easing_window`) and
  google/hypernerf `hypernerf/model_utils.py` (`posenc_window`): `posenc_window`,
  `windowed_positional_encoding`.
- `nerfies/schedules.py` (LinearSchedule, PiecewiseSchedule) with the constants of
  `nerfies/configs/gpu_vrig_paper.gin` and `hypernerf/configs/hypernerf_vrig_ds_2d.gin` /
  `defaults.gin` (DELAYED_HYPER_ALPHA_SCHED): `linear_schedule`, `warp_alpha`, `hyper_alpha`.
- `nerfies/utils.py` (`general_loss_with_squared_residual` at alpha = -2, Geman-McClure) and
  `nerfies/training.py` / `hypernerf/training.py` (`compute_elastic_loss` with 'log_svals',
  `compute_background_loss`): `geman_mcclure`, `elastic_loss`, `background_loss`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nerfkit.render.encoding import positional_encoding

ELASTIC_SCALE = 0.03
"""Scale c of the Geman-McClure loss on the elastic residual (nerfies/training.py)."""
BACKGROUND_SCALE = 0.001
"""Scale c of the Geman-McClure loss on the background points' displacement (ibid.)."""


# --------------------------------------------------------------------------- rigid bodies
def skew(w: Tensor) -> Tensor:
    """Cross-product matrix W of w, so that W @ v = w x v.

    Args:
        w: [..., 3].
    Returns:
        [..., 3, 3]
    """
    zero = torch.zeros_like(w[..., 0])
    wx, wy, wz = w.unbind(-1)
    rows = [zero, -wz, wy, wz, zero, -wx, -wy, wx, zero]
    return torch.stack(rows, dim=-1).reshape(*w.shape[:-1], 3, 3)


def exp_so3(w: Tensor, theta: Tensor) -> Tensor:
    """Rotation by angle theta about the unit axis w (Rodrigues' formula,
    R = I + sin(theta) W + (1 - cos(theta)) W^2).

    Args:
        w: [..., 3] unit axes; theta: [...] angles.
    Returns:
        [..., 3, 3]
    """
    big_w = skew(w)
    s, c = torch.sin(theta)[..., None, None], torch.cos(theta)[..., None, None]
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    return eye + s * big_w + (1.0 - c) * (big_w @ big_w)


def exp_se3(screw: Tensor, theta: Tensor) -> Tensor:
    """Rigid transform reached by moving theta along the screw axis S = (w, v) (w a unit axis):
    R = exp_so3(w, theta), p = (theta I + (1 - cos theta) W + (theta - sin theta) W^2) v.

    Args:
        screw: [..., 6] as (w, v); theta: [...].
    Returns:
        [..., 4, 4] homogeneous transforms [[R, p], [0, 0, 0, 1]].
    """
    w, v = screw[..., :3], screw[..., 3:]
    big_w = skew(w)
    w2 = big_w @ big_w
    th = theta[..., None, None]
    s, c = torch.sin(th), torch.cos(th)
    eye = torch.eye(3, dtype=screw.dtype, device=screw.device)
    rot = eye + s * big_w + (1.0 - c) * w2  # exp_so3(w, theta), sharing W and W^2
    g = th * eye + (1.0 - c) * big_w + (th - s) * w2
    p = (g @ v[..., None])[..., 0]
    top = torch.cat([rot, p[..., None]], dim=-1)  # [..., 3, 4]
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def to_homogeneous(v: Tensor) -> Tensor:
    """[..., 3] -> [..., 4] with a trailing 1."""
    return torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)


def from_homogeneous(v: Tensor) -> Tensor:
    """[..., 4] -> [..., 3], dividing by the last coordinate."""
    return v[..., :3] / v[..., 3:]


def screw_warp(w: Tensor, v: Tensor, points: Tensor, eps: float = 1e-12) -> Tensor:
    """Move points by the rigid transform whose screw is given in log space, as the released
    SE3Field does: theta = |w|, S = (w / theta, v / theta), x' = exp_se3(S, theta) x.

    At w = v = 0 this is the identity. (The release divides by theta unguarded; theta is
    clamped to `eps` here, which changes nothing unless |w| < eps, and gives the limit
    x' = x + v (to first order x + w x x + v) there.)

    Args:
        w, v: [..., 3] the rotation and translation parts; points: [..., 3].
    Returns:
        [..., 3] warped points.
    """
    theta = torch.linalg.vector_norm(w, dim=-1).clamp(min=eps)
    inv = 1.0 / theta
    screw = torch.cat([w * inv[..., None], v * inv[..., None]], dim=-1)
    transform = exp_se3(screw, theta)
    return from_homogeneous((transform @ to_homogeneous(points)[..., None])[..., 0])


# --------------------------------------------------------------------------- annealed encoding
def posenc_window(alpha: float, num_freqs: int, like: Tensor | None = None) -> Tensor:
    """The coarse-to-fine window of Nerfies: frequency band k gets the weight
    0.5 (1 - cos(pi clamp(alpha - k, 0, 1))); alpha = 0 switches every band off, alpha = L
    every band on, and band k eases in while alpha goes from k to k + 1.

    Args:
        alpha: the schedule's value; num_freqs: L.
        like: a tensor whose dtype and device the window takes (default float32 on the CPU).
    Returns:
        [L]
    """
    kw = {} if like is None else {"dtype": like.dtype, "device": like.device}
    bands = torch.arange(num_freqs, **kw)
    x = (alpha - bands).clamp(0.0, 1.0)
    return 0.5 * (1.0 + torch.cos(math.pi * x + math.pi))


def windowed_positional_encoding(
    x: Tensor, num_freqs: int, alpha: float | None = None, include_input: bool = True
) -> Tensor:
    """`positional_encoding` with the sin/cos pair of band k multiplied by posenc_window's
    weight k (the identity part, when included, is never windowed).

    Args:
        x: [..., D]; num_freqs: L; alpha: the window's alpha (None: no window).
        include_input: prepend x itself.
    Returns:
        [..., D * (include_input + 2L)], laid out as `positional_encoding`.
    """
    d = x.shape[-1]
    if num_freqs == 0:
        return x if include_input else x[..., :0]
    enc = positional_encoding(x, num_freqs, include_input=include_input)
    if alpha is None:
        return enc
    head, feats = (enc[..., :d], enc[..., d:]) if include_input else (None, enc)
    win = posenc_window(alpha, num_freqs, x)  # [L]
    feats = (feats.unflatten(-1, (num_freqs, 2 * d)) * win[:, None]).flatten(-2)
    return feats if head is None else torch.cat([head, feats], dim=-1)


# --------------------------------------------------------------------------- schedules
def linear_schedule(step: int, initial: float, final: float, num_steps: int) -> float:
    """The release's LinearSchedule: from `initial` at step 0 to `final` at `num_steps`, then
    constant."""
    if num_steps <= 0:
        return float(final)
    a = min(step / num_steps, 1.0)
    return (1.0 - a) * initial + a * final


def warp_alpha(step: int, num_freqs: int = 6, num_steps: int = 80000) -> float:
    """Window alpha of the warp field's encoding: linear from 0 to L over 80000 steps
    (ANNEALED_WARP_ALPHA_SCHED with the vrig configs' L = 6)."""
    return linear_schedule(step, 0.0, float(num_freqs), num_steps)


def hyper_alpha(step: int, num_freqs: int = 1, delay: int = 1000, num_steps: int = 10000) -> float:
    """Window alpha of the ambient coordinates' encoding (DELAYED_HYPER_ALPHA_SCHED): 0 for
    the first `delay` steps, then linear from 0 to L (hyper_point_max_deg = 1) over
    `num_steps`."""
    if step < delay:
        return 0.0
    return linear_schedule(step - delay, 0.0, float(num_freqs), num_steps)


# --------------------------------------------------------------------------- regularisers
def geman_mcclure(squared: Tensor, scale: float) -> Tensor:
    """Barron's general robust loss at alpha = -2 (Geman-McClure) of a squared residual, as the
    release computes it (including its final multiplication by the scale):
    rho = c * 2 (x^2 / c^2) / (x^2 / c^2 + 4).

    Args:
        squared: [...] squared residuals x^2; scale: c.
    Returns:
        [...]
    """
    s = squared / (scale * scale)
    return scale * 2.0 * s / (s + 4.0)


def elastic_loss(
    jacobian: Tensor, scale: float = ELASTIC_SCALE, eps: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """Nerfies' elastic energy of a warp's Jacobian: the squared residual
    r^2 = sum_i log(s_i)^2 over its singular values (zero for any rotation), through
    Geman-McClure with scale 0.03.

    Args:
        jacobian: [..., 3, 3].
    Returns:
        loss [...], residual r [...].
    """
    svals = torch.linalg.svdvals(jacobian)
    sq = torch.log(svals.clamp(min=eps)).square().sum(dim=-1)
    return geman_mcclure(sq, scale), sq.sqrt()


def background_loss(warped: Tensor, points: Tensor, scale: float = BACKGROUND_SCALE) -> Tensor:
    """Nerfies' background loss: static points should not move, Geman-McClure (scale 0.001)
    of their squared displacement.

    Args:
        warped, points: [P, 3] the warped and the original points.
    Returns:
        [P]
    """
    return geman_mcclure((warped - points).square().sum(dim=-1), scale)
