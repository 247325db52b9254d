"""The ablation study of docs/ablation.md in one command (issue 13): scene, NeRF table, grid table.

1. Writes the study scene (`nerfkit.data.synthetic_study.generate_study_scene`: mirror, glossy
   and glass spheres, fine texture, thin bars; exact ground truth and per-pixel region masks) to
   OUTPUT/scene (kept if already there).
2. Runs `nerfkit ablate --study nerf` into OUTPUT/nerf: the paper's rows that the issue's targets
   need (NERF_ROWS) at equal steps, --seeds seeds each, scored on the whole image and on the
   reflective, textured and thin pixels; then `--study grid` into OUTPUT/grid.
3. With --docs-img, copies the figures to docs/img/study_*.png for docs/ablation.md.

Everything resumes: rerun the same command after a kill and only the runs not yet done train
(each (row, seed) run is its own run folder with checkpoints).

The full study (defaults: NeRF rows 4,000 steps at lr 5e-3, where the 64-wide model has learnt
the objects, about 2-3 minutes a run on the 2-core development machine alone, 24 runs; grid
rows 1,000 steps, 21 runs):
    python benchmarks/ablation_study.py --output runs/study --threads 2 --docs-img
Smoke run (tiny scene, a few steps; a minute or two):
    python benchmarks/ablation_study.py --output /tmp/study_smoke --smoke
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from nerfkit.ablate import AblationConfig, run_ablation
from nerfkit.data.synthetic_study import generate_study_scene

ROOT = Path(__file__).resolve().parents[1]
NERF_ROWS = (
    "complete", "no_pe", "no_viewdirs", "no_hierarchy", "L5", "L15", "samples_32_64",
    "samples_128_256",
)  # fmt: skip
GRID_ROWS = ("complete", "no_occupancy", "no_growth", "no_view_mlp", "res_64", "res_96", "res_160")
FIGURES = ("grid.png", "psnr_vs_steps.png", "cost.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=Path("runs/study"))
    ap.add_argument("--resolution", type=int, default=80, help="study scene image size")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--nerf-steps", type=int, default=4000)
    ap.add_argument("--grid-steps", type=int, default=1000, help=">= 800: the grid's growth ends")
    ap.add_argument("--studies", nargs="+", default=["nerf", "grid"], choices=["nerf", "grid"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--docs-img", action="store_true", help="copy figures to docs/img/study_*")
    ap.add_argument("--smoke", action="store_true", help="tiny scene, few steps: a quick check")
    args = ap.parse_args()

    t0 = time.perf_counter()
    size = dict(resolution=args.resolution, n_train=100, n_val=4, n_test=8, supersample=3)
    small: dict = {}
    steps = {"nerf": args.nerf_steps, "grid": args.grid_steps}
    if args.smoke:
        size = dict(resolution=24, n_train=12, n_val=1, n_test=2, supersample=1)
        small = dict(width=16, depth=2, sample_scale=0.125, batch_rays=64, grid_resolution=24)
        steps = {"nerf": 6, "grid": 6}
        args.seeds = min(args.seeds, 2)
    scene = generate_study_scene(args.output / "scene", **size)
    print(f"study scene: {scene} ({time.perf_counter() - t0:.0f} s)")
    for study in args.studies:
        cfg = AblationConfig(
            data=scene,
            study=study,
            output=args.output / study,
            rows=NERF_ROWS if study == "nerf" else GRID_ROWS,
            seeds=args.seeds,
            max_steps=steps[study],
            val_every=max(50, steps[study] // 20) if not args.smoke else 3,
            threads=args.threads,
            **small,
        )
        run_ablation(cfg)
        print(f"{study}: {cfg.output / 'ablation.md'} ({time.perf_counter() - t0:.0f} s so far)")
        if args.docs_img:
            for name in FIGURES:
                dst = ROOT / "docs" / "img" / f"study_{study}_{name}"
                shutil.copyfile(cfg.output / name, dst)
                print(f"  copied {dst.relative_to(ROOT)}")
    print(f"done in {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
