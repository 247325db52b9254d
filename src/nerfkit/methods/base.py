"""The one interface every method implements (DESIGN.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta


@dataclass
class RenderOutput:
    """What a method returns for R rays.

    rgb: [R, 3] composited onto the background; depth: [R] expected distance given a hit;
    acc: [R] opacity; extras: anything else (coarse outputs, weights, samples) by name.
    """

    rgb: Tensor
    depth: Tensor
    acc: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)


class Method(torch.nn.Module):
    """A radiance-field method: rays in, rendered colours out.

    Training, evaluation, rendering and export use only this interface. A subclass is built as
    `Method(config, scene_meta)` and registered in `nerfkit.methods.METHODS`.
    """

    def __init__(self, meta: SceneMeta) -> None:
        super().__init__()
        self.meta = meta
        self.register_buffer("background", meta.background_tensor, persistent=False)

    def forward(self, rays: Rays) -> RenderOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def loss(self, out: RenderOutput, rgb_true: Tensor) -> dict[str, Tensor]:
        """Losses by name; 'loss' is the total that is minimised. Default: MSE of rgb."""
        mse = torch.mean((out.rgb - rgb_true) ** 2)
        return {"loss": mse, "mse": mse}

    def step_callback(self, step: int) -> bool | None:
        """Called by the Trainer before each step (e.g. to refresh an occupancy grid).

        Return True when the method replaced its parameters (e.g. grew a grid): the Trainer then
        rebuilds its optimiser from `param_groups` (fresh Adam moments).
        """

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups; override for per-group learning rates."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]
