"""Method registry: name -> (config dataclass, Method class).

Adding a method is one new file in this package plus one line here (and a config field in
`nerfkit.config.TrainConfig` so its options appear on the command line).
"""

from __future__ import annotations

from dataclasses import dataclass

from nerfkit.methods.base import Method, RenderOutput
from nerfkit.methods.grid import GridConfig, GridMethod
from nerfkit.methods.nerf import NeRF, NeRFConfig


@dataclass(frozen=True)
class MethodSpec:
    config_cls: type
    method_cls: type[Method]
    summary: str


METHODS: dict[str, MethodSpec] = {
    "grid": MethodSpec(GridConfig, GridMethod, "dense voxel grids, coarse-to-fine (fast on CPU)"),
    "nerf": MethodSpec(NeRFConfig, NeRF, "the original NeRF (paper configuration, slow on CPU)"),
}

__all__ = ["METHODS", "Method", "MethodSpec", "RenderOutput"]
