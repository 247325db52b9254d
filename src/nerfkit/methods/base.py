"""The one interface every method implements (docs/extending.md) and its named outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from nerfkit.cameras import Cameras, Rays
from nerfkit.data.scene import SceneMeta


@dataclass
class RaySamples:
    """S samples along each of R rays and what volume rendering made of them.

    t: [R, S] sorted distances along the rays; sigma: [R, S] densities; weights: [R, S]
    compositing weights w_i = T_i alpha_i; trans: [R, S] transmittance T_i before each sample.
    """

    t: Tensor
    sigma: Tensor
    weights: Tensor
    trans: Tensor


@dataclass
class RenderOutput:
    """What a method returns for R rays.

    rgb: [R, 3] composited onto the background; depth: [R] expected distance given a hit;
    acc: [R] opacity. The optional fields are filled by the methods that have them and read by
    name elsewhere (the Trainer, `nerfkit inspect`); a method's private outputs (read only by its
    own loss) belong in a subclass in the method's file.
    """

    rgb: Tensor
    depth: Tensor
    acc: Tensor
    samples: RaySamples | None = None
    """The samples of the network that produced `rgb` (methods with S samples per ray)."""
    coarse: RenderOutput | None = None
    """The coarse pass of a hierarchical method: its own rgb, depth, acc and samples."""
    t_fine: Tensor | None = None
    """[R, Sf] importance samples drawn from the coarse weights (also in `samples.t`)."""
    num_samples: Tensor | None = None
    """Scalar: samples the field evaluated for these rays (adaptive samplers; the Trainer logs it
    per ray)."""
    displacement: Tensor | None = None
    """[R, 3] dynamic methods: the deformation's offset (canonical minus observed point),
    averaged with the compositing weights over what the ray sees (sum w_i dx_i / acc, like
    depth); what `nerfkit inspect` draws."""
    ambient: Tensor | None = None
    """[R, m] hyper-space methods: the ambient (slicing-surface) coordinates w, averaged like
    `displacement`."""


@dataclass
class RenderedImage:
    """A whole rendered view, on the CPU: rgb [H, W, 3] in [0, 1], depth [H, W], acc [H, W];
    for dynamic methods that report them, displacement [H, W, 3] and ambient [H, W, m]."""

    rgb: Tensor
    depth: Tensor
    acc: Tensor
    displacement: Tensor | None = None
    ambient: Tensor | None = None


class Method(torch.nn.Module):
    """A radiance-field method: rays in, rendered colours out.

    Training, evaluation, rendering and export use only this interface. A subclass is built as
    `Method(config, scene_meta)` and registered, with its config class, in
    `nerfkit.methods.METHODS`.
    """

    eval_chunk_rays: ClassVar[int] = 4096
    """Rays per forward call when rendering whole images (`render_image`); override per method
    (a property where it depends on the config)."""
    train_defaults: ClassVar[dict[str, float | int]] = {}
    """Trainer values (lr, lr_final, batch_rays) used when the user gives none; the keys left
    out fall back to `nerfkit.config.TRAIN_DEFAULTS`."""

    one_image_per_step: bool = False
    """True: every training step draws all its rays from one random image (D-NeRF's
    `no_batching`: one time per step); False: across all images."""

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

    def prepare(self) -> None:
        """Called by the Trainer once before its clock starts: one-off work that is not
        training (building a compiled kernel), so a time budget is spent training. Default:
        nothing."""

    def step_callback(self, step: int) -> bool | None:
        """Called by the Trainer before each step (e.g. to refresh an occupancy grid).

        Return True when the method replaced its parameters (e.g. grew a grid): the Trainer then
        rebuilds its optimiser from `param_groups` (fresh Adam moments).
        """

    def max_train_time(self, step: int, progress: float = 0.0) -> float | None:
        """Dynamic methods with a curriculum over time: training rays at `step` (`progress`: the
        fraction of the run's step or time budget done, in [0, 1]) come only from the images
        whose time is at most this; None (the default): from every image."""
        return None

    def use_points(self, points: Tensor) -> None:
        """Receive the scene's static background points [P, 3] (`Scene.points`) before training;
        methods with a background loss (Nerfies) keep them, the others ignore them."""

    # the field at single points: what `nerfkit export` meshes and colours
    def point_density(self, points: Tensor, time: float | None = None) -> Tensor:
        """Density sigma [P] (per unit length of the model's space: NDC for NDC scenes) at
        points [P, 3] of that space, at `time` for dynamic methods (None: static, or t = 0).
        Every registered method implements it; a method without it cannot be exported
        (`nerfkit export` says so)."""
        raise NotImplementedError

    def point_radiance(self, points: Tensor, viewdirs: Tensor, time: float | None = None) -> Tensor:
        """Colour [P, 3] in [0, 1] emitted at points [P, 3] towards the unit viewing directions
        viewdirs [P, 3] (the direction of travel of the ray that sees it, in the scene frame; a
        zero row: any direction); implemented together with `point_density`."""
        raise NotImplementedError

    def field_box(self) -> tuple[Tensor, Tensor, float | None]:
        """(lo [3], hi [3], voxel): the box of the model's space that holds the scene (what
        export meshes) and the length of the method's own voxel edge where it has a grid (None:
        export chooses a resolution). Default: the scene's `SceneMeta.aabb`, no grid."""
        box = torch.tensor(self.meta.aabb, dtype=torch.float32, device=self.background.device)
        return box[0], box[1], None

    def density_grid(self, time: float | None = None) -> Tensor | None:
        """Densities [X, Y, Z] at the vertices of an X x Y x Z lattice spanning `field_box`
        exactly, where the method stores its density that way (a static voxel grid: export
        meshes it directly, no resampling); None (default): export samples `point_density`."""
        return None

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups; override for per-group learning rates."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    @torch.no_grad()
    def render_image(
        self,
        cameras: Cameras,
        k: int,
        near: float,
        far: float,
        ndc: bool = False,
        time: float | None = None,
        rig_camera: int | None = None,
    ) -> RenderedImage:
        """Render camera k's full image in eval mode, `eval_chunk_rays` rays per forward call
        (bounded memory); the training mode is restored afterwards.

        Args:
            time: the view's time for dynamic scenes (None: static).
            rig_camera: the rig camera whose code to use (methods with per-camera codes; None:
                their default). `Split.view_args(k)` gives both for a dataset image.
        """
        was_training = self.training
        self.eval()
        rays = cameras.image_rays(k, near, far, ndc=ndc, time=time)
        if rig_camera is not None:
            rays.rig_camera = torch.full((len(rays),), rig_camera, dtype=torch.long)
        rgb, depth, acc = [], [], []
        extra: dict[str, list[Tensor]] = {"displacement": [], "ambient": []}
        for i in range(0, len(rays), self.eval_chunk_rays):
            out = self(rays[i : i + self.eval_chunk_rays].to(self.background.device))
            rgb.append(out.rgb.float().cpu())
            depth.append(out.depth.float().cpu())
            acc.append(out.acc.float().cpu())
            for name, parts in extra.items():
                value = getattr(out, name)
                if value is not None:
                    parts.append(value.float().cpu())
        self.train(was_training)
        h, w = cameras.height, cameras.width
        more = {n: torch.cat(p).reshape(h, w, -1) for n, p in extra.items() if p}
        return RenderedImage(
            torch.cat(rgb).reshape(h, w, 3).clamp(0, 1),
            torch.cat(depth).reshape(h, w),
            torch.cat(acc).reshape(h, w),
            **more,
        )
