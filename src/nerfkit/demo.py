"""`nerfkit demo`: the built-in procedural scene, trained, evaluated and rendered in minutes."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from nerfkit.config import TrainConfig
from nerfkit.evaluate import evaluate_run
from nerfkit.methods.nerf import NeRFConfig
from nerfkit.train import train
from nerfkit.video import render_path


def demo_config(output: Path, minutes: float, method: str = "grid") -> TrainConfig:
    """A configuration that learns the demo scene within `minutes` on a 2-core CPU.

    The default `grid` method uses its own training defaults. With `method="nerf"` the paper's
    design (encoding, coarse + fine sampling, view dependence) is kept with a smaller network
    and fewer samples, since the paper's model needs ~8 s per step here.
    """
    small = NeRFConfig(width=128, depth=4, skip=2, n_coarse=32, n_fine=32, pos_freqs=8)
    nerf_train = {"batch_rays": 1024, "lr": 1e-3, "lr_final": 5e-5} if method == "nerf" else {}
    return TrainConfig(
        data=output / "data",
        output=output / "run",
        method=method,
        max_minutes=minutes,
        val_every=0,
        ckpt_every=500,
        log_every=25,
        nerf=small,
        **nerf_train,
    )


def run_demo(
    output: Path | None = None,
    minutes: float = 3.0,
    resolution: int = 100,
    frames: int = 90,
    method: str | None = None,
    dynamic: bool = False,
) -> dict:
    """Generate the scene, train for `minutes`, evaluate the test views, render an orbit.

    `dynamic`: the dynamic split scene (`generate_dynamic_scene(scene="split")`, D-NeRF's Blender
    layout) trained with `dgrid` (default), rendered along the orbit with time running 0 -> 1
    and with the first test camera held still while time runs (`render_path(path="fixed")`).
    Default folders: runs/demo, runs/demo_dynamic.
    """
    t0 = time.perf_counter()
    output = Path(output or ("runs/demo_dynamic" if dynamic else "runs/demo"))
    method = method or ("dgrid" if dynamic else "grid")
    steps = 5 if dynamic else 4
    print(f"[1/{steps}] procedural {'dynamic ' if dynamic else ''}scene -> {output / 'data'}")
    if dynamic:
        from nerfkit.data.synthetic_dynamic import generate_dynamic_scene

        # 10 test views (not the generator's 20): evaluation renders each, within the budget
        generate_dynamic_scene(
            output / "data", scene="split", layout="blender", size=(resolution, resolution),
            n_test=10,
        )  # fmt: skip
    else:
        from nerfkit.data.synthetic import generate_scene

        generate_scene(output / "data", resolution=resolution)
    cfg = demo_config(output, minutes, method)
    print(f"[2/{steps}] training '{cfg.method}' for {minutes:g} min -> {cfg.output}")
    if (Path(cfg.output) / "checkpoint.pt").exists():
        res = train(replace(cfg, resume=Path(cfg.output)))
    else:
        res = train(cfg)
    print(f"[3/{steps}] evaluating the test views")
    metrics = evaluate_run(cfg.output)
    what = "the orbit video, time running 0 -> 1" if dynamic else "the orbit video"
    print(f"[4/{steps}] rendering {what}")
    video, depth_video = render_path(cfg.output, "orbit", frames=frames, downscale=1)
    videos = f"  video      : {video}\n  depth video: {depth_video}"
    fixed = None
    if dynamic:
        print(f"[5/{steps}] rendering a fixed camera while time runs 0 -> 1")
        fixed, _ = render_path(cfg.output, "fixed", frames=frames, downscale=1)
        videos = (
            f"  video (orbit, time 0 -> 1): {video}\n  depth video: {depth_video}\n"
            f"  video (fixed camera)      : {fixed}"
        )
    total = time.perf_counter() - t0
    m = metrics["mean"]
    print(
        f"\nDone in {total / 60:.1f} min: {res.step} steps, test PSNR {m['psnr']:.2f} dB, "
        f"SSIM {m['ssim']:.3f}\n"
        f"  run folder : {cfg.output}\n"
        f"  test views : {metrics['output']}\n" + videos
    )
    if dynamic:
        print(f"  look inside: nerfkit inspect {cfg.output} --deformation")
    return {
        "psnr": m["psnr"],
        "ssim": m["ssim"],
        "steps": res.step,
        "seconds": total,
        "video": str(video),
        "fixed_video": None if fixed is None else str(fixed),
        "run": str(cfg.output),
    }
