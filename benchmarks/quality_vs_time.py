"""Test PSNR/SSIM of a method after fixed wall-clock training budgets (issue 4).

Trains on a Blender scene (default ../shared/data/nerf_synthetic/lego, train split) and, when the
training time (loading and evaluation excluded) reaches each checkpoint, evaluates the test views
at full resolution on the scene's white background (PSNR/SSIM of 8-bit images via
nerfkit.metrics.image_metrics). Also measures the render time of one test view and the peak
resident memory. Appends a table to BENCHMARKS.md (under its own heading) and writes a
PSNR-vs-time plot to benchmarks/results/.

Full run (about 2 h including evaluation):
    python benchmarks/quality_vs_time.py
Quick smoke run:
    python benchmarks/quality_vs_time.py --checkpoints-min 2 --test-views 5 --eval-downscale 4
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import time
from pathlib import Path

import torch
from train_speed import cpu_model, git_commit  # benchmarks/ is on sys.path when a script here runs

from nerfkit.config import TrainConfig
from nerfkit.data import load_scene
from nerfkit.methods import Method
from nerfkit.metrics import image_metrics
from nerfkit.perf import configure_allocator
from nerfkit.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def region_psnr(pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor) -> float:
    """8-bit PSNR of pred vs true [H, W, 3] over the pixels where mask [H, W] is True."""
    p = (pred.clamp(0, 1) * 255).round() / 255
    t = (true.clamp(0, 1) * 255).round() / 255
    mse = ((p - t) ** 2).mean(-1)[mask].mean()
    return float(-10 * torch.log10(mse.clamp(min=1e-12)))


def evaluate(method: Method, scene_test, views: list[int], meta, masks=None) -> dict:  # noqa: ANN001
    """Mean PSNR/SSIM (8-bit) of the given test views and the median render time per view; with
    `masks` (one [H, W] bool per view), the mean PSNR inside (`psnr_in`) and outside them."""
    psnrs, ssims, times, p_in, p_out = [], [], [], [], []
    for n, k in enumerate(views):
        t0 = time.perf_counter()
        out = method.render_image(scene_test.cameras, k, meta.near, meta.far, ndc=meta.ndc)
        times.append(time.perf_counter() - t0)
        m = image_metrics(out.rgb, scene_test.images[k])
        psnrs.append(m["psnr"])
        ssims.append(m["ssim"])
        if masks is not None:
            p_in.append(region_psnr(out.rgb, scene_test.images[k], masks[n]))
            p_out.append(region_psnr(out.rgb, scene_test.images[k], ~masks[n]))
    res = {
        "psnr": sum(psnrs) / len(psnrs),
        "ssim": sum(ssims) / len(ssims),
        "render_s_median": sorted(times)[len(times) // 2],
    }
    if masks is not None:
        res["psnr_in"] = sum(p_in) / len(p_in)
        res["psnr_out"] = sum(p_out) / len(p_out)
    return res


def view_masks(data: Path, mask_file: str, names: list[str], downscale: int) -> list[torch.Tensor]:
    """[H, W] bool masks of the named views from data/mask_file ([N, H, W] in the order of the
    sorted image files in data/images), reduced by `downscale` (majority of each block)."""
    import numpy as np

    stems = sorted(p.stem for p in (data / "images").iterdir())
    allm = torch.from_numpy(np.load(data / mask_file)).float()
    out = []
    for name in names:
        m = allm[stems.index(name)]
        if downscale > 1:
            h, w = m.shape[0] // downscale, m.shape[1] // downscale
            m = m[: h * downscale, : w * downscale].reshape(h, downscale, w, downscale)
            m = m.mean((1, 3))
        out.append(m > 0.5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared/data/nerf_synthetic/lego")
    ap.add_argument("--method", default="grid")
    ap.add_argument("--checkpoints-min", type=float, nargs="+", default=[5, 15, 30, 60])
    ap.add_argument("--train-downscale", type=int, default=1, help="training image downscale")
    ap.add_argument("--eval-downscale", type=int, default=1, help="1 = full 800x800 (the protocol)")
    ap.add_argument("--test-views", type=int, default=25, help="first N test views (25 = all)")
    ap.add_argument("--output", type=Path, default=Path("/tmp/nerfkit_quality_vs_time"))
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--note", default="", help="free text recorded with the results")
    ap.add_argument(
        "--region-mask",
        default="",
        help="file of [N, H, W] bool masks in --data (e.g. env_mask.npy of the unbounded "
        "procedural scene): also report PSNR inside and outside the mask",
    )
    args = ap.parse_args()
    configure_allocator()

    t_load = time.perf_counter()
    scene = load_scene(args.data, downscale=args.train_downscale)
    if args.eval_downscale == args.train_downscale:
        test_scene = scene
    else:
        test_scene = load_scene(args.data, downscale=args.eval_downscale)
    test = test_scene.split("test")
    views = list(range(min(args.test_views, len(test))))
    masks = None
    if args.region_mask:
        names = [test.names[k] for k in views]
        masks = view_masks(args.data, args.region_mask, names, args.eval_downscale)
    load_s = time.perf_counter() - t_load
    budget = max(args.checkpoints_min)
    cfg = TrainConfig(
        data=args.data,
        output=args.output,
        method=args.method,
        downscale=args.train_downscale,
        max_minutes=budget,
        val_every=0,
        ckpt_every=0,
        progress=False,
    )
    trainer = Trainer(cfg, scene)
    rows = []
    pending = sorted(args.checkpoints_min)
    print(f"loaded in {load_s:.0f}s; training {args.method} for {budget} min", flush=True)
    spr: list[float] = []  # samples per ray of the last 100 steps
    while pending:
        t0 = time.perf_counter()
        info = trainer.train_step()
        trainer.elapsed += time.perf_counter() - t0
        spr = [*spr[-99:], info.get("samples_per_ray", float("nan"))]
        if trainer.step % 200 == 0:
            print(
                f"step {trainer.step} t={trainer.elapsed:.0f}s train psnr {info['psnr']:.2f} "
                f"samples/ray {info.get('samples_per_ray', float('nan')):.1f}",
                flush=True,
            )
        if trainer.elapsed >= 60.0 * pending[0]:
            minutes = pending.pop(0)
            t_eval = time.perf_counter()
            res = evaluate(trainer.method, test, views, test_scene.meta, masks)
            rows.append(
                {
                    "minutes": minutes,
                    "train_s": round(trainer.elapsed, 1),
                    "steps": trainer.step,
                    "samples_per_ray": round(sum(spr) / len(spr), 1),
                    **{k: round(v, 4) for k, v in res.items()},
                    "eval_s": round(time.perf_counter() - t_eval, 1),
                    "peak_rss_gb": round(peak_rss_gb(), 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)

    results_dir = ROOT / "benchmarks" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    (results_dir / f"quality_vs_time_{stamp}.json").write_text(json.dumps(rows, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([r["minutes"] for r in rows], [r["psnr"] for r in rows], "o-", label=args.method)
        ax.set_xlabel("training time (min, 2-core CPU)")
        ax.set_ylabel("test PSNR (dB)")
        ax.set_title(f"{args.data.name}: PSNR vs training time")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        plot = results_dir / f"quality_vs_time_{stamp}.png"
        fig.savefig(plot, dpi=120)
        print(f"plot: {plot}")
    except ImportError:
        pass
    if args.no_write:
        return
    commit = git_commit()
    res = test.cameras.width, test.cameras.height
    meta = test_scene.meta
    bg = "NDC, no background" if meta.ndc else f"background {meta.background}"
    lines = [
        "",
        f"### {args.method}: quality vs time, {args.data.name} ({datetime.date.today()}, "
        f"commit {commit})",
        "",
        f"Machine: {cpu_model()}, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}. Method `{args.method}`, training images "
        f"downscaled {args.train_downscale}x; evaluation of {len(views)} test views at "
        f"{res[0]}x{res[1]} ({bg}; 8-bit PSNR/SSIM). Load {load_s:.0f}s and evaluation "
        "excluded from the budget.",
        f"Command: `python benchmarks/quality_vs_time.py --data {args.data} --method {args.method} "
        f"--checkpoints-min {' '.join(f'{m:g}' for m in args.checkpoints_min)} "
        f"--train-downscale {args.train_downscale} --eval-downscale {args.eval_downscale} "
        f"--test-views {args.test_views}"
        + (f" --region-mask {args.region_mask}" if args.region_mask else "")
        + "`",
    ]
    if args.note:
        lines.append(f"Note: {args.note}")
    lines += [
        "",
        "| budget (min) | steps | samples/ray (last 100 steps) | PSNR (dB) | SSIM | "
        "render 1 view (s) | peak RSS (GB) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if masks is not None:
        lines[-2] = lines[-2].replace(
            "| SSIM |", f"| SSIM | PSNR in {args.region_mask} | PSNR outside |"
        )
        lines[-1] += "---:|---:|"
    for r in rows:
        region = f"{r['psnr_in']:.2f} | {r['psnr_out']:.2f} | " if masks is not None else ""
        lines.append(
            f"| {r['minutes']:g} | {r['steps']} | {r['samples_per_ray']:.1f} | {r['psnr']:.2f} | "
            f"{r['ssim']:.4f} | {region}"
            f"{r['render_s_median']:.2f} | {r['peak_rss_gb']:.2f} |"
        )
    with open(ROOT / "BENCHMARKS.md", "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("appended to BENCHMARKS.md")


if __name__ == "__main__":
    main()
