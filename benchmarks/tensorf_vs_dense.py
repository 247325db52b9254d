"""Prototype comparison at equal wall-clock time: dense grids (the `grid` method) vs TensoRF VM.

Issue 4 asks for at least two representations prototyped and compared by time per step, samples
per ray and PSNR at equal training time. Both variants here share everything except the field:
the same sampler (occupancy-skipped packed samples every half voxel), box fitting, coarse-to-fine
growth, colour MLP, losses and schedule (`GridConfig` defaults), so the difference measured is the
representation alone.
  dense : `nerfkit.methods.grid.GridMethod` (1 + 12 channel vertex grids, fused C++ kernel)
  vm    : TensoRF's vector-matrix factorisation (Chen et al. 2022) of the same two fields:
          density = sum_m sum_r P^m_r(u, v) L^m_r(w) over the three plane/line pairs;
          features = B [P^m_r(u, v) L^m_r(w)]_(m, r), via F.grid_sample (TensoRF's code path),
          `--vm-density` / `--vm-app` components per plane; planes and lines sized to the same
          vertex grid the dense variant has at each step.
Each variant trains for `--minutes` (loading and evaluation excluded), then renders the first
`--test-views` test views at `--eval-downscale` and reports PSNR/SSIM (8-bit), steps, time per step,
samples per ray (mean over the last 100 steps) and the render time of one view.

Run (about 2 x minutes + evaluation):
    python benchmarks/tensorf_vs_dense.py --minutes 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from quality_vs_time import evaluate  # the same test-view evaluation (benchmarks/ is on sys.path)
from torch import Tensor, nn
from train_speed import git_commit

from nerfkit.config import TrainConfig
from nerfkit.data import load_scene
from nerfkit.data.scene import SceneMeta
from nerfkit.methods.base import RenderOutput
from nerfkit.methods.grid import GridConfig, GridMethod
from nerfkit.perf import configure_allocator
from nerfkit.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
_MATS = ((0, 1), (0, 2), (1, 2))  # plane axes (u, v)
_VECS = (2, 1, 0)  # the line axis w paired with each plane


class VMGridMethod(GridMethod):
    """`GridMethod` with its density and feature grids replaced by TensoRF VM factorisations."""

    def __init__(
        self, config: GridConfig, meta: SceneMeta, n_density: int = 8, n_app: int = 24
    ) -> None:
        super().__init__(config, meta)
        shape = tuple(self.density.shape[:3])
        del self.density, self.features
        self._shape = shape
        self.n_density, self.n_app = n_density, n_app
        g = torch.Generator().manual_seed(0)
        self.dp, self.dl = self._init_vm(n_density, shape, g)
        self.ap, self.al = self._init_vm(n_app, shape, g)
        self.basis = nn.Linear(3 * n_app, config.feature_dim, bias=False)

    @staticmethod
    def _init_vm(n: int, shape: tuple, g: torch.Generator) -> tuple[nn.ParameterList, ...]:
        planes = nn.ParameterList(
            nn.Parameter(0.1 * torch.randn(1, n, shape[m[1]], shape[m[0]], generator=g))
            for m in _MATS
        )
        lines = nn.ParameterList(
            nn.Parameter(0.1 * torch.randn(1, n, shape[v], 1, generator=g)) for v in _VECS
        )
        return planes, lines

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return self._shape  # type: ignore[return-value]

    def _products(self, planes: nn.ParameterList, lines: nn.ParameterList, coords: Tensor) -> list:
        size = torch.tensor(self._shape, dtype=coords.dtype) - 1
        x = (coords / size * 2.0 - 1.0).clamp(-1.0, 1.0)  # align_corners=True normalisation
        out = []
        for (a, b), w, pl, li in zip(_MATS, _VECS, planes, lines, strict=True):
            uv = x[:, [a, b]].view(1, -1, 1, 2)  # grid_sample: (x = width = a, y = height = b)
            wv = torch.stack([torch.zeros_like(x[:, w]), x[:, w]], -1).view(1, -1, 1, 2)
            p = F.grid_sample(pl, uv, mode="bilinear", align_corners=True)[0, :, :, 0]
            q = F.grid_sample(li, wv, mode="bilinear", align_corners=True)[0, :, :, 0]
            out.append(p * q)  # [n, P]
        return out

    def density_at(self, coords: Tensor) -> Tensor:
        return sum(t.sum(0) for t in self._products(self.dp, self.dl, coords))

    def features_at(self, coords: Tensor) -> Tensor:
        return self.basis(torch.cat(self._products(self.ap, self.al, coords)).T)

    def _render_fused(self, rays) -> RenderOutput | None:  # noqa: ANN001
        return None  # the fused kernel reads a dense density grid

    def _alpha_grid(self) -> Tensor:
        with torch.no_grad():
            dens = 0.0
            for (a, b), w, pl, li in zip(_MATS, _VECS, self.dp, self.dl, strict=True):
                # plane [n, size_b, size_a], line [n, size_w] -> [X, Y, Z] at the vertices
                t = torch.einsum("nba,nw->abw", pl[0], li[0, :, :, 0])
                order = [a, b, w]
                dens = dens + t.permute(*[order.index(k) for k in range(3)])
            sigma = self.sigma_from_raw(dens)
            return 1.0 - torch.exp(-sigma * self.config.step_ratio * self.step_unit)

    def total_variation(self, count: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("tv weights must be 0 for the VM prototype")

    @torch.no_grad()
    def resample(self, lo: Tensor, hi: Tensor, shape: tuple[int, int, int]) -> None:
        old_lo, old_hi = self._grid_box
        # new vertex positions in the old grid's [-1, 1] coordinates, per axis
        span = old_hi - old_lo
        ax = [
            (torch.linspace(float(lo[k]), float(hi[k]), shape[k]) - old_lo[k]) / span[k] * 2.0 - 1.0
            for k in range(3)
        ]

        def planes(pl: nn.ParameterList) -> nn.ParameterList:
            out = []
            for (a, b), p in zip(_MATS, pl, strict=True):
                gy, gx = torch.meshgrid(ax[b], ax[a], indexing="ij")
                grid = torch.stack([gx, gy], -1)[None]
                out.append(nn.Parameter(F.grid_sample(p, grid, align_corners=True)))
            return nn.ParameterList(out)

        def lines(li: nn.ParameterList) -> nn.ParameterList:
            out = []
            for w, line in zip(_VECS, li, strict=True):
                grid = torch.stack([torch.zeros_like(ax[w]), ax[w]], -1)[None, :, None]
                out.append(nn.Parameter(F.grid_sample(line, grid, align_corners=True)))
            return nn.ParameterList(out)

        self.dp, self.dl = planes(self.dp), lines(self.dl)
        self.ap, self.al = planes(self.ap), lines(self.al)
        self._shape = tuple(shape)
        self.occupancy = torch.ones(shape, dtype=torch.bool)
        self._grid_box = (lo.clone(), hi.clone())

    def param_groups(self, lr: float) -> list[dict]:
        # TensoRF's learning rates: 0.02 for the factors, 1e-3 for the basis and the MLP
        factors = [*self.dp, *self.dl, *self.ap, *self.al]
        return [
            {"params": factors, "lr": 0.02, "name": "factors"},
            {"params": [*self.basis.parameters(), *self.mlp.parameters()], "lr": lr, "name": "mlp"},
        ]


def run_variant(name: str, args: argparse.Namespace, scene, test_scene) -> dict:  # noqa: ANN001
    cfg = TrainConfig(
        data=args.data,
        output=Path("/tmp") / f"nerfkit_proto_{name}",
        method="grid",
        max_minutes=args.minutes,
        val_every=0,
        ckpt_every=0,
        progress=False,
    )
    trainer = Trainer(cfg, scene)
    if name == "vm":
        torch.manual_seed(cfg.seed)
        trainer.method = VMGridMethod(cfg.grid, scene.meta, args.vm_density, args.vm_app)
        trainer.build_optimizer()
    samples: list[float] = []
    while trainer.elapsed < 60.0 * args.minutes:
        t0 = time.perf_counter()
        info = trainer.train_step()
        trainer.elapsed += time.perf_counter() - t0
        samples = [*samples[-99:], info.get("samples_per_ray", float("nan"))]
        if trainer.step % 200 == 0:
            print(f"{name} step {trainer.step} t={trainer.elapsed:.0f}s psnr {info['psnr']:.2f}")
    test = test_scene.split("test")
    views = list(range(min(args.test_views, len(test))))
    res = evaluate(trainer.method, test, views, test_scene.meta)  # quality_vs_time's
    return {
        "variant": name,
        "steps": trainer.step,
        "s_per_step": trainer.elapsed / trainer.step,
        "samples_per_ray": sum(samples) / len(samples),
        **res,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared/data/nerf_synthetic/lego")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--variants", nargs="+", default=["dense", "vm"])
    ap.add_argument("--vm-density", type=int, default=8, help="density components per plane")
    ap.add_argument("--vm-app", type=int, default=24, help="appearance components per plane")
    ap.add_argument("--test-views", type=int, default=5)
    ap.add_argument("--eval-downscale", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()
    configure_allocator()
    scene = load_scene(args.data)
    test_scene = load_scene(args.data, downscale=args.eval_downscale)
    rows = []
    for name in args.variants:
        rows.append(run_variant(name, args, scene, test_scene))
        print(json.dumps(rows[-1]), flush=True)
    if args.no_write:
        return
    commit = git_commit()
    t = test_scene.split("test").cameras
    lines = [
        "",
        f"### Prototypes at equal time: dense vs TensoRF VM ({datetime.date.today()}, "
        f"commit {commit})",
        "",
        f"Command: `python benchmarks/tensorf_vs_dense.py --minutes {args.minutes:g} "
        f"--vm-density {args.vm_density} --vm-app {args.vm_app} --test-views {args.test_views} "
        f"--eval-downscale {args.eval_downscale}`; {torch.get_num_threads()} threads; "
        f"{args.data.name}, train views at full size, first {args.test_views} test views at "
        f"{t.width}x{t.height}.",
        "",
        "| variant | training (min) | steps | s/step | samples/ray | PSNR (dB) | SSIM | "
        "render 1 view (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {args.minutes:g} | {r['steps']} | {r['s_per_step']:.3f} | "
            f"{r['samples_per_ray']:.1f} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
            f"{r['render_s_median']:.2f} |"
        )
    with open(ROOT / "BENCHMARKS.md", "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("appended to BENCHMARKS.md")


if __name__ == "__main__":
    main()
