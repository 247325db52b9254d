"""Seconds per training step of the faithful dynamic methods (issue 11), fp32 against bf16.

Each method (`dnerf`, `nerfies`, `hypernerf`) at its released configuration (its config's
defaults: sample counts, MLP sizes, Nerfies' elastic loss, HyperNeRF's DS slicing surface) on
`--batch-rays` rays per step, on the tiny D-NeRF data. The precisions given to `--precision` are
timed in one process, alternating step by step (A B A B ..., as ../shared/BENCHMARKING.md asks),
after `--warmup` untimed steps each. Prints the median and range per (method, precision) and
what a paper-length run would take at that rate; nothing is written (paste into BENCHMARKS.md).

    python benchmarks/faithful_step_time.py --steps 3 --warmup 1 --precision fp32 bf16
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from train_speed import cpu_model, git_commit  # benchmarks/ is on sys.path when a script here runs

from nerfkit.config import TrainConfig
from nerfkit.data import load_scene
from nerfkit.perf import configure_allocator
from nerfkit.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "tiny_dnerf"
# paper-length runs: (steps, rays per step) of the releases' configurations
PAPER_RUNS = {"dnerf": (800_000, 500), "nerfies": (250_000, 6144), "hypernerf": (250_000, 6144)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--methods", nargs="+", default=["dnerf", "nerfies", "hypernerf"])
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--batch-rays", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per variant")
    args = ap.parse_args()
    configure_allocator()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {git_commit()}")
    print(f"machine {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    scene = load_scene(args.data)
    for method in args.methods:
        trainers = {}
        for prec in args.precision:
            cfg = TrainConfig(
                method=method,
                data=args.data,
                batch_rays=args.batch_rays,
                max_steps=10**9,
                progress=False,
                output=Path("/tmp/nerfkit-bench-unused"),
            )
            getattr(cfg, method).precision = prec
            trainers[prec] = Trainer(cfg, scene)
        times: dict[str, list[float]] = {p: [] for p in trainers}
        for i in range(args.warmup + args.steps):
            for prec, tr in trainers.items():
                t = time.perf_counter()
                tr.train_step()
                if i >= args.warmup:
                    times[prec].append(time.perf_counter() - t)
        for prec, ts in times.items():
            med = statistics.median(ts)
            steps, rays = PAPER_RUNS.get(method, (0, args.batch_rays))
            days = med * steps * rays / args.batch_rays / 86400
            print(
                f"{method:10s} {prec}: {med:.2f} s/step [{min(ts):.2f}-{max(ts):.2f}], n={len(ts)}"
                f", {args.batch_rays} rays; a paper run ({steps} x {rays} rays) ~{days:.0f} days"
            )
        del trainers


if __name__ == "__main__":
    main()
