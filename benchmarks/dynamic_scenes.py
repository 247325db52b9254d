"""Dynamic scenes: held-out PSNR of methods (and their variants) per scene, seed and budget.

For each scene folder, variant and seed: trains (a step budget `--steps`, equal for every
variant, or a wall-clock budget `--minutes`), then renders every test view at its own time and
reports the mean PSNR/SSIM (8-bit) over all test views and over the views whose time lies in the
scene's event interval (events.json of the procedural dynamic scenes: the split blob apart, the
mouth open, the ball inside the ring) widened by `--event-margin`. With two variants and several
seeds it also reports the paired difference (second minus first) with a 95 % t-interval. Appends
a table to BENCHMARKS.md.

Variants are METHOD or METHOD:key=value,key=value (options of the method's config), e.g.
    python benchmarks/dynamic_scenes.py --data /work/scenes/dyn_split /work/scenes/dyn_ring \\
        --variants dgrid:ambient_dims=0 dgrid --seeds 0 1 2 --steps 2000 --note "m = 0 vs m = 2"
    python benchmarks/dynamic_scenes.py --data ../shared/data/tiny_dnerf --variants grid dgrid \\
        --minutes 5 --note "tiny D-NeRF, 5 minutes"
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import statistics
import time
from pathlib import Path

import torch
from train_speed import cpu_model, git_commit  # benchmarks/ is on sys.path when a script here runs

from nerfkit.config import TrainConfig
from nerfkit.data import load_scene
from nerfkit.metrics import image_metrics
from nerfkit.perf import configure_allocator
from nerfkit.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def parse_variant(spec: str) -> tuple[str, dict[str, object]]:
    """'dgrid:ambient_dims=0,deform_res=32' -> ('dgrid', {'ambient_dims': 0, ...})."""
    name, _, rest = spec.partition(":")
    opts: dict[str, object] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        opts[key] = json.loads(value) if value not in ("True", "False") else value == "True"
    return name, opts


def event_interval(data: Path, margin: float) -> tuple[float, float] | None:
    path = data / "events.json"
    if not path.exists():
        return None
    lo, hi = json.loads(path.read_text())["event"]
    return lo - margin, hi + margin


def run_one(data: Path, variant: str, seed: int, args: argparse.Namespace, out: Path) -> dict:
    name, opts = parse_variant(variant)
    scene = load_scene(data, downscale=args.downscale)
    cfg = TrainConfig(
        data=data,
        output=out,
        method=name,
        seed=seed,
        max_steps=args.steps,
        max_minutes=args.minutes,
        val_every=0,
        ckpt_every=10**9,
        progress=False,
    )
    base = getattr(cfg, name)
    setattr(cfg, name, dataclasses.replace(base, **opts))
    trainer = Trainer(cfg, scene)
    t0 = time.perf_counter()
    result = trainer.fit()
    train_s = time.perf_counter() - t0
    test = scene.split("test")
    meta = scene.meta
    window = event_interval(data, args.event_margin)
    psnr, ssim, in_event, render_s = [], [], [], []
    for k in range(len(test)):
        tk = None if test.times is None else float(test.times[k])
        r0 = time.perf_counter()
        img = trainer.method.render_image(
            test.cameras, k, meta.near, meta.far, ndc=meta.ndc, time=tk
        )
        render_s.append(time.perf_counter() - r0)
        m = image_metrics(img.rgb, test.images[k])
        psnr.append(m["psnr"])
        ssim.append(m["ssim"])
        if window is not None and tk is not None and window[0] <= tk <= window[1]:
            in_event.append(m["psnr"])
    return {
        "data": data.name,
        "variant": variant,
        "seed": seed,
        "steps": trainer.step,
        "train_min": train_s / 60,
        "psnr": statistics.fmean(psnr),
        "ssim": statistics.fmean(ssim),
        "psnr_event": statistics.fmean(in_event) if in_event else float("nan"),
        "n_event": len(in_event),
        "render_s": statistics.median(render_s),
        "final_loss": getattr(result, "final_loss", None),
    }


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95 % t-interval (nan half-width for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, T95.get(len(values) - 1, 2.0) * statistics.stdev(values) / math.sqrt(len(values))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, nargs="+", required=True)
    p.add_argument("--variants", nargs="+", default=["dgrid"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--downscale", type=int, default=1)
    p.add_argument("--event-margin", type=float, default=0.05)
    p.add_argument("--work", type=Path, default=Path("/tmp/nerfkit_dynamic_bench"))
    p.add_argument("--note", default="")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    if (args.steps is None) == (args.minutes is None):
        p.error("give exactly one of --steps and --minutes")
    configure_allocator()
    rows = []
    for data in args.data:
        for seed in args.seeds:
            for variant in args.variants:
                out = args.work / f"{data.name}_{variant.replace(':', '_')}_s{seed}"
                row = run_one(data, variant, seed, args, out)
                rows.append(row)
                print(json.dumps(row), flush=True)
    budget = f"{args.steps} steps" if args.steps else f"{args.minutes:g} min"
    lines = [
        f"\n### Dynamic scenes: {args.note or ', '.join(args.variants)}\n",
        f"- Date: {datetime.date.today()}; machine: {cpu_model()}, "
        f"{torch.get_num_threads()} threads; commit {git_commit()}",
        f"- Command: `python benchmarks/dynamic_scenes.py --data "
        f"{' '.join(str(d) for d in args.data)} --variants {' '.join(args.variants)} "
        f"--seeds {' '.join(map(str, args.seeds))} "
        + (f"--steps {args.steps}" if args.steps else f"--minutes {args.minutes:g}")
        + (f" --downscale {args.downscale}" if args.downscale > 1 else "")
        + "`",
        f"- Budget: {budget} per run; test views rendered at their own time; 'event' = test "
        f"views in the scene's event interval +- {args.event_margin:g} (events.json).\n",
        "| scene | variant | seed | steps | train min | PSNR | SSIM | PSNR event (n) | "
        "render s/view |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['variant']} | {r['seed']} | {r['steps']} | "
            f"{r['train_min']:.1f} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
            f"{r['psnr_event']:.2f} ({r['n_event']}) | {r['render_s']:.2f} |"
        )
    if len(args.variants) == 2 and len(args.seeds) >= 1:
        a, b = args.variants
        lines.append(
            f"\nPaired difference `{b}` minus `{a}` (mean ± 95 % t-interval over seeds):\n"
        )
        lines.append("| scene | PSNR all | PSNR event |")
        lines.append("|---|---|---|")
        for data in args.data:

            def diffs(key: str, name: str = data.name) -> list[float]:
                by = {(r["variant"], r["seed"]): r[key] for r in rows if r["data"] == name}
                return [by[(b, s)] - by[(a, s)] for s in args.seeds]

            cells = []
            for key in ("psnr", "psnr_event"):
                mean, half = ci95(diffs(key))
                cells.append(
                    f"{mean:+.2f} ± {half:.2f}" if not math.isnan(half) else f"{mean:+.2f}"
                )
            lines.append(f"| {data.name} | {cells[0]} | {cells[1]} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        with open(ROOT / "BENCHMARKS.md", "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
