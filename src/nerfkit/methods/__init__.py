"""Method registry: a method is one file in this package plus one entry in `METHODS`.

An entry names the method (its `--method` value and the prefix of its options, `--NAME.*`) and
gives its config dataclass, its `Method` class and a one-line summary. `nerfkit.config`
generates `TrainConfig`'s option group of each method from here and `nerfkit.run.build_method`
builds methods from here, so a new method touches nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from nerfkit.methods.base import Method, RaySamples, RenderedImage, RenderOutput
from nerfkit.methods.dgrid import DGridConfig, DynamicGridMethod
from nerfkit.methods.dnerf import DNeRF, DNeRFConfig
from nerfkit.methods.grid import GridConfig, GridMethod
from nerfkit.methods.hypernerf import HyperNeRF, HyperNeRFConfig
from nerfkit.methods.nerf import NeRF, NeRFConfig
from nerfkit.methods.nerfies import Nerfies, NerfiesConfig


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: `method_cls(config_cls(...), scene_meta)` is a `Method`."""

    config_cls: type
    method_cls: type[Method]
    summary: str


METHODS: dict[str, MethodSpec] = {
    # (this order is the order of the option groups in `nerfkit train --help`)
    "nerf": MethodSpec(NeRFConfig, NeRF, "the original NeRF (paper configuration, slow on CPU)"),
    "grid": MethodSpec(GridConfig, GridMethod, "dense voxel grids, coarse-to-fine (fast on CPU)"),
    "dnerf": MethodSpec(
        DNeRFConfig, DNeRF, "D-NeRF: deformation into a canonical NeRF (release config, slow)"
    ),
    "nerfies": MethodSpec(
        NerfiesConfig, Nerfies, "Nerfies: SE(3) warp field + template NeRF (paper config, slow)"
    ),
    "hypernerf": MethodSpec(
        HyperNeRFConfig, HyperNeRF, "HyperNeRF: warp + ambient slicing (release config, slow)"
    ),
    "dgrid": MethodSpec(
        DGridConfig,
        DynamicGridMethod,
        "dynamic scenes: grid + space-time deformation planes + ambient dims (fast on CPU)",
    ),
}

__all__ = ["METHODS", "Method", "MethodSpec", "RaySamples", "RenderOutput", "RenderedImage"]
