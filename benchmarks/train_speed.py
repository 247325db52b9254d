"""Steady-state training speed of the paper NeRF on lego at 400 x 400 (issue 2's benchmark).

The paper configuration: 1024 rays per step, 64 coarse + 128 fine samples, 8 x 256 MLPs,
L = 10 / 4. Reports seconds per step and rays per second (median and spread over the timed
steps after `--warmup` untimed ones), the time to render one 400 x 400 view, and peak RSS.

Variants given to `--precision` are timed in the same process, alternating step by step
(A B A B ...), as ../shared/BENCHMARKING.md asks. `--allocator-ab N` instead compares
`nerfkit.perf.configure_allocator()` (glibc mallopt, applied by the CLI at start-up) against
glibc's defaults: N rounds of two child processes, alternating.

Examples (from the repository root)::

    python benchmarks/train_speed.py --steps 6 --warmup 2
    python benchmarks/train_speed.py --precision fp32 bf16 --steps 6 --render-rays 8192
    python benchmarks/train_speed.py --render-rays 0          # full 400x400 render
    python benchmarks/train_speed.py --allocator-ab 2 --steps 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "nerf_synthetic" / "lego"


def cpu_model() -> str:
    """CPU model name, core count and whether it has AMX (which decides the `auto` precision),
    from /proc/cpuinfo."""
    from nerfkit.perf import cpu_has_amx

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    names = [ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")]
    name = names[0] if names else platform.processor() or "unknown"
    return f"{name}, {os.cpu_count()} cores, {'AMX' if cpu_has_amx(info) else 'no AMX'}"


def git_commit() -> str:
    """Short hash of HEAD (plus '+dirty' when the tree has uncommitted changes)."""
    try:
        h = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return h + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident set size of this process (or its largest child) in MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def summarize(ts: list[float]) -> dict[str, float]:
    """Median, min, max of a list of seconds."""
    return {"median": statistics.median(ts), "min": min(ts), "max": max(ts), "n": len(ts)}


def run_training(args: argparse.Namespace) -> dict:
    """Time train steps (and optionally a render) in this process; returns a results dict."""
    import torch

    if args.mallopt:
        from nerfkit.perf import configure_allocator

        configure_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)

    from nerfkit.config import TrainConfig
    from nerfkit.data import load_scene
    from nerfkit.train import Trainer

    t0 = time.perf_counter()
    scene = load_scene(args.data, downscale=args.downscale)
    load_s = time.perf_counter() - t0
    trainers = {}
    for prec in args.precision:
        cfg = TrainConfig(
            method="nerf",
            data=Path(args.data),
            downscale=args.downscale,
            batch_rays=args.batch_rays,
            lr=5e-4,
            lr_final=5e-5,
            max_steps=10**9,
            progress=False,
            seed=args.seed,
            output=Path("/tmp/nerfkit-bench-unused"),
        )
        cfg.nerf.precision = "bf16" if prec == "bf16" else "fp32"
        tr = Trainer(cfg, scene)
        for net in (tr.method.coarse, tr.method.fine):
            net.fast = prec != "fp32-reference"
        c = tr.method.config  # the paper configuration, checked
        assert (c.n_coarse, c.n_fine, c.width, c.depth) == (64, 128, 256, 8), c
        assert (c.pos_freqs, c.dir_freqs, c.use_viewdirs) == (10, 4, True), c
        trainers[prec] = tr
    times: dict[str, list[float]] = {p: [] for p in trainers}
    cpu_times: dict[str, list[float]] = {p: [] for p in trainers}
    psnr: dict[str, float] = {}
    for i in range(args.warmup + args.steps):
        for prec, tr in trainers.items():
            t, c = time.perf_counter(), time.process_time()
            rec = tr.train_step()
            dt, dc = time.perf_counter() - t, time.process_time() - c
            psnr[prec] = rec["psnr"]
            if i >= args.warmup:
                times[prec].append(dt)
                cpu_times[prec].append(dc)
            if args.verbose:
                print(f"  step {i} {prec}: {dt:.3f} s loss={rec['loss']:.4f}", flush=True)
    res: dict = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_s": load_s,
        "mallopt": args.mallopt,
        "variants": {},
    }
    for prec, ts in times.items():
        s = summarize(ts)
        res["variants"][prec] = {
            "s_per_step": s,
            # process CPU seconds per step: robust to other processes on a shared machine when
            # running 1 thread; with more threads it includes OpenMP spin-waiting
            "cpu_s_per_step": summarize(cpu_times[prec]),
            "rays_per_s": args.batch_rays / s["median"],
            "last_train_psnr": psnr[prec],
        }
    if args.render_rays is not None:
        split = scene.split("test")
        meta = scene.meta
        for prec, tr in trainers.items():
            cams = split.cameras
            n_pix = cams.height * cams.width
            t = time.perf_counter()
            if args.render_rays == 0 or args.render_rays >= n_pix:
                tr.method.render_image(cams, 0, meta.near, meta.far, ndc=meta.ndc)
                dt, frac = time.perf_counter() - t, 1.0
            else:
                rays = cams.image_rays(0, meta.near, meta.far, ndc=meta.ndc)
                sub = rays[: args.render_rays]
                chunk = tr.method.eval_chunk_rays
                tr.method.eval()
                with torch.no_grad():
                    for j in range(0, len(sub), chunk):
                        tr.method(sub[j : j + chunk])
                tr.method.train()
                dt, frac = time.perf_counter() - t, args.render_rays / n_pix
            res["variants"][prec]["render_s"] = dt / frac
            res["variants"][prec]["render_measured_fraction"] = frac
    res["peak_rss_mib"] = peak_rss_mib()
    return res


def allocator_ab(args: argparse.Namespace) -> dict:
    """Alternate child processes with and without mallopt; returns per-variant step times."""
    base = [sys.executable, __file__, "--child", "--data", str(args.data)]
    base += ["--downscale", str(args.downscale), "--steps", str(args.steps)]
    base += ["--warmup", str(args.warmup), "--batch-rays", str(args.batch_rays)]
    base += ["--precision", *args.precision]
    if args.threads:
        base += ["--threads", str(args.threads)]
    out: dict[str, dict] = {}
    for _ in range(args.allocator_ab):
        for name, flag in (("default", "--no-mallopt"), ("mallopt", "--mallopt")):
            p = subprocess.run([*base, flag], capture_output=True, text=True, check=True)
            r = json.loads(p.stdout.strip().splitlines()[-1])
            slot = out.setdefault(name, {"times": {}, "peak_rss_mib": []})
            for prec, v in r["variants"].items():
                slot["times"].setdefault(prec, []).append(v["s_per_step"]["median"])
            slot["peak_rss_mib"].append(r["peak_rss_mib"])
            print(f"  {name}: " + json.dumps(r), flush=True)
    return out


def main() -> None:
    """Parse options, run, print a human summary and a JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--downscale", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per variant")
    ap.add_argument("--batch-rays", type=int, default=1024)
    ap.add_argument(
        "--precision",
        nargs="+",
        default=["fp32"],
        choices=["fp32", "bf16", "fp32-reference"],
        help="variants, timed alternately; fp32-reference = the layer-by-layer MLP "
        "(NeRFMLP.fast = False), the code before issue 2's optimisations",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    ap.add_argument(
        "--render-rays",
        type=int,
        default=None,
        help="also time rendering test view 0: 0 = the full image, N = its first N rays "
        "(extrapolated to the full image)",
    )
    ap.add_argument("--mallopt", dest="mallopt", action="store_true", default=True)
    ap.add_argument("--no-mallopt", dest="mallopt", action="store_false")
    ap.add_argument("--allocator-ab", type=int, default=0, metavar="ROUNDS")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(run_training(args)))
        return
    load = os.getloadavg()
    print(f"date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  commit {git_commit()}")
    print(f"machine {cpu_model()}; load before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("command " + " ".join([Path(sys.executable).name, *sys.argv]))
    if args.allocator_ab:
        out = allocator_ab(args)
        for name, slot in out.items():
            for prec, ts in slot["times"].items():
                s = summarize(ts)
                print(
                    f"{name:8s} {prec}: {s['median']:.3f} s/step (child medians "
                    f"{', '.join(f'{x:.3f}' for x in ts)}); peak RSS "
                    f"{max(slot['peak_rss_mib']):.0f} MiB"
                )
        result: dict = {"allocator_ab": out}
    else:
        result = run_training(args)
        import torch

        print(f"torch {torch.__version__}, {result['threads']} threads, mallopt={args.mallopt}")
        for prec, v in result["variants"].items():
            s = v["s_per_step"]
            line = (
                f"{prec}: {s['median']:.3f} s/step (min {s['min']:.3f}, max {s['max']:.3f}, "
                f"n={s['n']}), {v['rays_per_s']:.0f} rays/s; CPU "
                f"{v['cpu_s_per_step']['median']:.3f} s/step"
            )
            if "render_s" in v:
                line += (
                    f"; 400x400 render {v['render_s']:.1f} s"
                    f" (measured on {100 * v['render_measured_fraction']:.1f}% of the rays)"
                )
            print(line)
        print(f"peak RSS {result['peak_rss_mib']:.0f} MiB")
    load = os.getloadavg()
    print(f"load after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
