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
from nerfkit.media import write_png
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
        batch_rays=args.batch_rays,
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
    meta = scene.meta
    window = event_interval(data, args.event_margin)
    row: dict = {"data": data.name, "variant": variant, "seed": seed, "steps": trainer.step}
    row["train_min"] = train_s / 60
    for k, split in enumerate(args.eval_splits):
        views = None if args.save_views is None else args.save_views / f"{out.name}_{split}"
        ev = evaluate_split(trainer.method, scene.split(split), meta, window, views)
        # the first split's numbers under the plain keys (the table), the others suffixed
        row.update(ev if k == 0 else {f"{key}_{split}": v for key, v in ev.items()})
    row["final_loss"] = getattr(result, "final_loss", None)
    return row


def evaluate_split(
    method, split, meta, window: tuple[float, float] | None, views: Path | None = None
) -> dict:
    """Mean PSNR/SSIM over a split's views (each rendered at its own time), the mean over the
    views in `window`, the median render time and (time, PSNR) per view; with `views`, one PNG
    per view there: truth | render | |error| x 3."""
    psnr, ssim, in_event, render_s, per_view = [], [], [], [], []
    if views is not None:
        views.mkdir(parents=True, exist_ok=True)
    for k in range(len(split)):
        view = split.view_args(k)
        tk = view["time"]
        r0 = time.perf_counter()
        img = method.render_image(split.cameras, k, meta.near, meta.far, ndc=meta.ndc, **view)
        render_s.append(time.perf_counter() - r0)
        m = image_metrics(img.rgb, split.images[k])
        psnr.append(m["psnr"])
        ssim.append(m["ssim"])
        per_view.append((tk, round(m["psnr"], 2)))
        if views is not None:
            err = (img.rgb - split.images[k]).abs().mean(-1, keepdim=True).expand_as(img.rgb)
            strip = torch.cat([split.images[k], img.rgb, (3 * err).clamp(0, 1)], 1)
            write_png(views / f"{k:03d}_t{tk if tk is not None else 0:.3f}.png", strip)
        if window is not None and tk is not None and window[0] <= tk <= window[1]:
            in_event.append(m["psnr"])
    return {
        "psnr": statistics.fmean(psnr),
        "ssim": statistics.fmean(ssim),
        "psnr_event": statistics.fmean(in_event) if in_event else float("nan"),
        "n_event": len(in_event),
        "render_s": statistics.median(render_s),
        "per_view": per_view,
    }


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95 % t-interval (nan half-width for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2 or any(math.isnan(v) for v in values):
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
    p.add_argument(
        "--eval-splits",
        nargs="+",
        default=["test"],
        help="splits to evaluate on (the first fills the table's PSNR columns, the others get "
        "a PSNR column each), e.g. test val for D-NeRF's lego, whose test frames disagree with "
        "its training frames",
    )
    p.add_argument(
        "--save-views",
        type=Path,
        default=None,
        help="folder for one PNG per evaluated view: truth | render | |error| x 3",
    )
    p.add_argument("--work", type=Path, default=Path("/tmp/nerfkit_dynamic_bench"))
    p.add_argument(
        "--batch-rays", type=int, default=None, help="rays per step (default: the method's)"
    )
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
    text = report(rows, args)
    print(text)
    if not args.no_write:
        with open(ROOT / "BENCHMARKS.md", "a") as f:
            f.write(text)


def report(rows: list[dict], args: argparse.Namespace) -> str:
    """The BENCHMARKS.md section of the runs' rows (printed JSON lines, re-readable)."""
    splits = args.eval_splits
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
        + (f" --eval-splits {' '.join(splits)}" if splits != ["test"] else "")
        + (f" --batch-rays {args.batch_rays}" if args.batch_rays else "")
        + "`",
        f"- Budget: {budget} per run; {splits[0]} views rendered at their own time; 'event' = "
        f"{splits[0]} views in the scene's event interval +- {args.event_margin:g} "
        "(events.json).\n",
        f"| scene | variant | seed | steps | train min | PSNR ({splits[0]}) | SSIM | "
        "PSNR event (n) | render s/view |" + "".join(f" PSNR ({s}) |" for s in splits[1:]),
        "|---|---|---|---|---|---|---|---|---|" + "---|" * (len(splits) - 1),
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['variant']} | {r['seed']} | {r['steps']} | "
            f"{r['train_min']:.1f} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
            f"{r['psnr_event']:.2f} ({r['n_event']}) | {r['render_s']:.2f} |"
            + "".join(f" {r[f'psnr_{s}']:.2f} |" for s in splits[1:])
        )
    if len(args.variants) == 2 and len(args.seeds) >= 1:
        a, b = args.variants
        lines.append(
            f"\nPaired difference `{b}` minus `{a}` (mean ± 95 % t-interval over seeds):\n"
        )
        keys = ["psnr", "psnr_event", *(f"psnr_{s}" for s in splits[1:])]
        lines.append(
            f"| scene | PSNR all ({splits[0]}) | PSNR event |"
            + "".join(f" PSNR ({s}) |" for s in splits[1:])
        )
        lines.append("|---|---|---|" + "---|" * (len(splits) - 1))
        for data in args.data:

            def diffs(key: str, name: str = data.name) -> list[float]:
                by = {(r["variant"], r["seed"]): r[key] for r in rows if r["data"] == name}
                return [by[(b, s)] - by[(a, s)] for s in args.seeds]

            cells = []
            for key in keys:
                mean, half = ci95(diffs(key))
                cells.append(
                    f"{mean:+.2f} ± {half:.2f}" if not math.isnan(half) else f"{mean:+.2f}"
                )
            lines.append(f"| {data.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
