"""Small building blocks shared by methods: a linear layer with bias and ReLU fused on CPU."""

from __future__ import annotations

import torch
from torch import Tensor


def _has_fused_linear() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(
            torch.ops.mkldnn, "_linear_pointwise"
        )
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


FUSED_LINEAR = _has_fused_linear()
"""Whether oneDNN's linear with fused post-ops is available (CPU builds with oneDNN)."""


def fused_linear(h: Tensor, w: Tensor, b: Tensor, relu: bool) -> Tensor:
    """relu?(h @ w.T + b) in one kernel where possible.

    On CPU, oneDNN's linear with the bias and the ReLU as fused post-ops costs the same as the
    bare matrix product; addmm + relu_ first copies the broadcast bias into the output and then
    makes a second pass for the ReLU (about 30 % more time per layer, measured).
    """
    if FUSED_LINEAR and h.device.type == "cpu":
        return torch.ops.mkldnn._linear_pointwise(h, w, b, "relu" if relu else "none", [], "")
    out = torch.addmm(b, h, w.t())
    return out.relu_() if relu else out
