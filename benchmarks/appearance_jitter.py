"""Per-image appearance compensation on photos whose exposure and white balance vary (issue 10).

Makes a copy of a transforms.json scene (default: the procedural unbounded scene) in which every
training photo (the views the loader does not hold out: `nerfkit.data.core.hold_out`) is
multiplied by its own seeded colour gain, an exposure factor in [1 - e, 1 + e] times per-channel
white-balance factors in [1 - w, 1 + w]; the held-out photos are left as rendered. Then trains
`grid` on it for the same number of steps with appearance compensation on and off and evaluates
the held-out views (which get the average transform, nerfstudio's convention). Exact ground
truth: the held-out photos show the scene under the neutral appearance the gains average to.

    python benchmarks/appearance_jitter.py --data DIR --steps 840
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from quality_vs_time import evaluate
from train_speed import cpu_model, git_commit

from nerfkit.config import TrainConfig
from nerfkit.data import load_scene
from nerfkit.data.core import hold_out
from nerfkit.perf import configure_allocator
from nerfkit.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


def jittered_copy(src: Path, dst: Path, exposure: float, balance: float, seed: int) -> list:
    """Copy the scene at `src` to `dst` with each training photo scaled by a random colour gain
    (see the module docstring); returns the gains [[r, g, b], ...] of the training photos."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    meta = json.loads((dst / "transforms.json").read_text())
    paths = sorted(f["file_path"] for f in meta["frames"])
    rng = np.random.default_rng(seed)
    gains = []
    for i in hold_out(len(paths))["train"]:
        gain = rng.uniform(1 - exposure, 1 + exposure) * rng.uniform(1 - balance, 1 + balance, 3)
        path = dst / paths[i]
        img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        out = np.clip(img * gain, 0, 1)
        Image.fromarray((out * 255 + 0.5).astype(np.uint8)).save(path)
        gains.append(gain.round(3).tolist())
    return gains


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a transforms.json scene")
    ap.add_argument("--steps", type=int, default=840)
    ap.add_argument("--exposure", type=float, default=0.3)
    ap.add_argument("--balance", type=float, default=0.1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/nerfkit_appearance"))
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()
    configure_allocator()
    data = args.work / "scene"
    jittered_copy(args.data, data, args.exposure, args.balance, seed=0)
    scene = load_scene(data)
    test = scene.split("test")
    rows = []
    for appearance in (True, False):
        cfg = TrainConfig(
            data=data,
            output=args.work / f"run_{appearance}",
            max_steps=args.steps,
            val_every=0,
            ckpt_every=0,
            progress=False,
        )
        cfg.grid.appearance = appearance
        trainer = Trainer(cfg, scene)
        t0 = time.perf_counter()
        while trainer.step < args.steps:
            trainer.train_step()
        train_s = time.perf_counter() - t0
        res = evaluate(trainer.method, test, list(range(len(test))), scene.meta)
        rows.append({"appearance": appearance, "train_s": round(train_s, 1), **res})
        print(json.dumps(rows[-1]), flush=True)
    if args.no_write:
        return
    commit = git_commit()
    lines = [
        "",
        f"### grid: appearance compensation on jittered photos ({datetime.date.today()}, "
        f"commit {commit})",
        "",
        f"Machine: {cpu_model()}, {torch.get_num_threads()} torch threads. Scene {args.data} with "
        f"each training photo multiplied by a seeded gain (exposure +-{args.exposure:g}, white "
        f"balance +-{args.balance:g} per channel); held-out photos as rendered; "
        f"{args.steps} steps each; all {len(test)} held-out views.",
        f"Command: `python benchmarks/appearance_jitter.py --data {args.data} --steps "
        f"{args.steps} --exposure {args.exposure:g} --balance {args.balance:g}`",
        "",
        "| appearance compensation | held-out PSNR (dB) | SSIM | train (s) |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        on = "on (per-photo affine)" if r["appearance"] else "off"
        lines.append(f"| {on} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['train_s']:.0f} |")
    with open(ROOT / "BENCHMARKS.md", "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("appended to BENCHMARKS.md")


if __name__ == "__main__":
    main()
