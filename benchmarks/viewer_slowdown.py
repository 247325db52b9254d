"""The live viewer's effect on training speed: steps/s of the same Trainer with no viewer, with
a viewer whose camera rests (a full-resolution frame re-rendered every `--refresh` seconds, the
viewer's default while training) and with a camera that keeps moving (adaptive-resolution frames
back to back: the worst case). The render thread shares the Trainer's lock exactly as
`nerfkit train --viewer` does (`Trainer.render_lock`, one chunk at a time); only the browser
is left out (frames go nowhere), so no viser or browser is needed.

The variants alternate block by block on one training run (A B C A B C ..., after `--warmup`
untimed steps), as ../shared/BENCHMARKING.md asks; reported: the median steps/s of each and its
ratio to no viewer, and the frames the viewer rendered.

Examples (from the repository root)::

    python benchmarks/viewer_slowdown.py --steps 200 --rounds 5
    python benchmarks/viewer_slowdown.py --steps 20 --rounds 1 --warmup 5   # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from nerfkit.config import TrainConfig
from nerfkit.data import load_scene
from nerfkit.data.synthetic import generate_scene
from nerfkit.poses import focus_point
from nerfkit.train import Trainer
from nerfkit.viewer.camera import fov_y_of
from nerfkit.viewer.render_loop import RenderLoop, ViewState

VARIANTS = ("none", "resting", "moving")


def orbit_view(c2w0: np.ndarray, center: np.ndarray, angle: float, fov: float, height: int,
               aspect: float) -> ViewState:  # fmt: skip
    """The first training camera turned by `angle` about the world z axis through `center`."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    m = np.eye(4)
    m[:3, :3] = rot @ c2w0[:3, :3]
    m[:3, 3] = rot @ (c2w0[:3, 3] - center) + center
    return ViewState(m, fov, aspect, height)


def timed_block(trainer: Trainer, steps: int, loop: RenderLoop | None) -> float:
    """Steps per second over `steps` training steps taken as `Trainer.fit` takes them."""
    t0 = time.perf_counter()
    for _ in range(steps):
        with trainer.render_lock:
            trainer.train_step()
        if loop is not None:
            loop.invalidate()  # what Viewer.update_progress does after every step
    return steps / (time.perf_counter() - t0)


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="viewer_slowdown_"))
    data = generate_scene(root / "scene", resolution=args.resolution, n_train=args.views,
                          n_val=0, n_test=1)  # fmt: skip
    scene = load_scene(data)
    cfg = TrainConfig(data=data, output=root / "run", method=args.method, max_steps=10**9,
                      val_every=0, ckpt_every=0, progress=False)  # fmt: skip
    trainer = Trainer(cfg, scene)
    meta = scene.meta
    c2w = np.asarray(meta.train_c2w, dtype=np.float64)
    center = focus_point(torch.tensor(c2w, dtype=torch.float32)).double().numpy()
    fov = fov_y_of(meta.focal, meta.height)
    timed_block(trainer, args.warmup, None)
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    frames: dict[str, int] = dict.fromkeys(VARIANTS, 0)
    for _ in range(args.rounds):
        for variant in VARIANTS:
            loop, stop, mover = None, threading.Event(), None
            if variant != "none":
                loop = RenderLoop(trainer.method, meta, lambda img: None, lock=trainer.render_lock,
                                  max_height=args.view_height, refresh_s=args.refresh)  # fmt: skip
                loop.set_view(orbit_view(c2w[0], center, 0.0, fov, args.view_height, args.aspect))
                loop.start()
                if variant == "moving":

                    def move(lp: RenderLoop = loop, stop: threading.Event = stop) -> None:
                        a = 0.0
                        while not stop.wait(0.05):  # a camera dragged at 20 updates per second
                            a += 0.02
                            lp.set_view(
                                orbit_view(c2w[0], center, a, fov, args.view_height, args.aspect)
                            )

                    mover = threading.Thread(target=move, daemon=True)
                    mover.start()
            try:
                rates[variant].append(timed_block(trainer, args.steps, loop))
            finally:
                stop.set()
                if mover is not None:
                    mover.join()
                if loop is not None:
                    loop.stop()
                    frames[variant] += loop.frames
    base = statistics.median(rates["none"])
    result = {
        "method": trainer.cfg.method,
        "resolution": args.resolution,
        "view": [round(args.view_height * args.aspect), args.view_height],
        "threads": torch.get_num_threads(),
        "steps_per_block": args.steps,
        "rounds": args.rounds,
        "steps_per_s": {v: r for v, r in rates.items()},
        "median": {v: statistics.median(r) for v, r in rates.items()},
        "ratio": {v: statistics.median(r) / base for v, r in rates.items()},
        "frames": frames,
    }
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", default="grid")
    p.add_argument("--resolution", type=int, default=100, help="training images' size")
    p.add_argument("--views", type=int, default=50, help="training images")
    p.add_argument("--steps", type=int, default=100, help="steps per timed block")
    p.add_argument("--rounds", type=int, default=3, help="blocks of each variant")
    p.add_argument("--warmup", type=int, default=50, help="untimed steps first")
    p.add_argument("--view-height", type=int, default=480, help="viewer's full resolution")
    p.add_argument("--aspect", type=float, default=16 / 9, help="viewer's width / height")
    p.add_argument("--refresh", type=float, default=2.0, help="resting re-render period, s")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--workdir", type=Path, default=None, help="scene + run folder (default: tmp)")
    r = run(p.parse_args())
    for v in VARIANTS:
        print(f"{v:8s} {r['median'][v]:8.2f} steps/s  x{r['ratio'][v]:.3f}  "
              f"({r['frames'][v]} frames)")  # fmt: skip
    print(json.dumps(r))


if __name__ == "__main__":
    main()
