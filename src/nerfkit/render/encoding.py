"""Positional encoding gamma(p) (Mildenhall et al. 2020, eq. 4)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def encoded_dim(in_dim: int, num_freqs: int, include_input: bool = True) -> int:
    """Width of `positional_encoding`'s output for an `in_dim`-dimensional input."""
    return in_dim * (int(include_input) + 2 * num_freqs)


def positional_encoding(
    x: Tensor, num_freqs: int, include_input: bool = True, include_pi: bool = False
) -> Tensor:
    """gamma(x) = (x, sin(2^0 w x), cos(2^0 w x), ..., sin(2^(L-1) w x), cos(2^(L-1) w x)).

    The paper writes the frequencies as 2^k * pi; the authors' reference code omits pi (w = 1),
    which is what nerfkit does by default so that results match the released models. With
    `include_pi=True`, w = pi as in the paper's equation.

    Args:
        x: [..., D] coordinates.
        num_freqs: L, the number of octaves. L = 0 returns x itself (no encoding).
        include_input: prepend x itself, as the reference code does.
        include_pi: multiply the frequencies by pi.
    Returns:
        [..., D * (include_input + 2L)] in the order (x, sin f0 x, cos f0 x, sin f1 x, ...), where
        each sin/cos block holds all D coordinates.
    """
    if num_freqs == 0:
        if not include_input:
            raise ValueError("positional_encoding with num_freqs=0 needs include_input=True")
        return x
    scale = math.pi if include_pi else 1.0
    freqs = scale * 2.0 ** torch.arange(num_freqs, device=x.device, dtype=x.dtype)  # [L]
    xb = x[..., None, :] * freqs[:, None]  # [..., L, D]
    sc = torch.stack([torch.sin(xb), torch.cos(xb)], dim=-2)  # [..., L, 2, D]
    enc = sc.flatten(-3)  # [..., L*2*D]
    if include_input:
        enc = torch.cat([x, enc], dim=-1)
    return enc
