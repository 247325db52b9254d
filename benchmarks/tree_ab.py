"""Compare two source trees of nerfkit on the same work: training steps, results, render time.

For refactors that must not change behaviour or speed: run this once per tree (each in its own
process, with that tree's `src` first on PYTHONPATH), alternating trees, then compare the JSON
lines. `train` trains the `grid` method for a fixed number of steps (seeded; a step budget, so
the learning-rate schedule does not depend on timing), reports the median step time, the test
PSNR of the first views and writes the model's state_dict; `render` loads one state_dict and
times the full-resolution render of the same views, so both trees render the same model.

    OLD=/tmp/nerfkit_old/src NEW=src
    PYTHONPATH=$OLD python benchmarks/tree_ab.py train --out /tmp/ab_old.pt
    PYTHONPATH=$NEW python benchmarks/tree_ab.py train --out /tmp/ab_new.pt
    PYTHONPATH=$OLD python benchmarks/tree_ab.py render --state /tmp/ab_new.pt   # A B A B
    PYTHONPATH=$NEW python benchmarks/tree_ab.py render --state /tmp/ab_new.pt

The API differences between trees it bridges: `Method.render_image` (new) or
`nerfkit.evaluate.render_image` (old); `nerfkit.metrics` or `nerfkit.evaluate` for metrics.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import nerfkit
from nerfkit.config import TrainConfig
from nerfkit.data import load_scene
from nerfkit.perf import configure_allocator
from nerfkit.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


def _render(method, cams, k: int, meta):  # noqa: ANN001, ANN202
    if hasattr(method, "render_image"):
        r = method.render_image(cams, k, meta.near, meta.far, ndc=meta.ndc)
        return r.rgb
    from nerfkit.evaluate import render_image  # older trees

    return render_image(method, cams, k, meta.near, meta.far, ndc=meta.ndc)["rgb"]


def _metrics():  # noqa: ANN202
    try:
        from nerfkit.metrics import image_metrics
    except ImportError:  # older trees
        from nerfkit.evaluate import image_metrics
    return image_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("mode", choices=["train", "render"])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared/data/nerf_synthetic/lego")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--downscale", type=int, default=1, help="image downscale (flower: 8)")
    ap.add_argument("--views", type=int, default=4, help="first N test views")
    ap.add_argument("--out", type=Path, help="train: where to write the state_dict")
    ap.add_argument("--state", type=Path, help="render: the state_dict to render")
    args = ap.parse_args()
    configure_allocator()
    scene = load_scene(args.data, downscale=args.downscale)
    test = scene.split("test")
    cfg = TrainConfig(
        data=args.data,
        output=Path("/tmp/nerfkit_tree_ab"),
        downscale=args.downscale,
        max_steps=args.steps,
        val_every=0,
        ckpt_every=0,
        progress=False,
    )
    trainer = Trainer(cfg, scene)
    step_s = []
    if args.mode == "train":
        for _ in range(args.steps):
            t0 = time.perf_counter()
            trainer.train_step()
            dt = time.perf_counter() - t0
            trainer.elapsed += dt
            step_s.append(dt)
        torch.save(trainer.method.state_dict(), args.out)
    else:
        # grow the grids to the saved shapes: load_state_dict resamples as on resume
        trainer.method.load_state_dict(torch.load(args.state, weights_only=False))
    method, image_metrics = trainer.method, _metrics()
    _render(method, test.cameras, 0, scene.meta)  # warm-up
    render_s, psnrs = [], []
    for k in range(args.views):
        t0 = time.perf_counter()
        rgb = _render(method, test.cameras, k, scene.meta)
        render_s.append(time.perf_counter() - t0)
        psnrs.append(image_metrics(rgb, test.images[k])["psnr"])
    rec = {
        "tree": str(Path(nerfkit.__file__).parents[2]),
        "mode": args.mode,
        "steps": trainer.step,
        "step_s_median": round(statistics.median(step_s), 4) if step_s else None,
        "train_s": round(sum(step_s), 1),
        "psnr_views": [round(p, 4) for p in psnrs],
        "render_s": [round(t, 3) for t in render_s],
        "render_s_median": round(statistics.median(render_s), 3),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
