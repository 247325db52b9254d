"""`nerfkit <command>`: thin wrappers that parse flags, call the library and report.

User errors print one line and exit with code 2; Ctrl-C saves what it can and exits 130.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from nerfkit.config import TrainConfig
from nerfkit.errors import NerfkitError


@dataclass
class EvalArgs:
    """Render every view of a split of a trained run: PNGs, depth PNGs and metrics.json."""

    run: tyro.conf.Positional[Path]
    split: str = "test"
    data: Path | None = None
    """Evaluate another dataset folder's split (same scene frame) instead of the run's."""
    output: Path | None = None
    """Output folder (default: RUN/eval_<split>)."""
    downscale: int = 1
    """Evaluate at the dataset's resolution divided by this (default: full resolution)."""
    device: str = "auto"


@dataclass
class RenderArgs:
    """Render a camera path of a trained run to MP4 (colour and depth)."""

    run: tyro.conf.Positional[Path]
    path: str = "auto"
    """orbit (object scenes), spiral (forward-facing), auto, or a nerfstudio camera-path .json."""
    output: Path | None = None
    """Output .mp4 file or folder (default: RUN/render/<path>.mp4)."""
    frames: int = 120
    fps: int = 30
    downscale: int = 1
    """Divide the training resolution by this."""
    device: str = "auto"


@dataclass
class DemoArgs:
    """Generate the built-in scene, train, evaluate and render a video, in a few minutes."""

    output: Path = Path("runs/demo")
    minutes: float = 3.0
    """Training budget (the whole demo takes about one minute more)."""
    resolution: int = 64
    frames: int = 60


@dataclass
class MethodsArgs:
    """List the available methods."""


def _run(cmd: object) -> int:
    if isinstance(cmd, TrainConfig):
        from nerfkit.train import train

        res = train(cmd)
        val = f", val PSNR {res.val_psnr:.2f} dB" if res.val_psnr is not None else ""
        print(f"trained to step {res.step} in {res.elapsed / 60:.1f} min{val}; run: {res.run_dir}")
    elif isinstance(cmd, EvalArgs):
        from nerfkit.evaluate import evaluate_run

        r = evaluate_run(cmd.run, cmd.split, cmd.data, cmd.output, cmd.downscale, cmd.device)
        m = r["mean"]
        print(
            f"{r['num_views']} {cmd.split} views at {r['resolution'][0]}x{r['resolution'][1]}: "
            f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} -> {r['output']}"
        )
    elif isinstance(cmd, RenderArgs):
        from nerfkit.video import render_path

        rgb, depth = render_path(
            cmd.run, cmd.path, cmd.output, cmd.frames, cmd.fps, cmd.downscale, cmd.device
        )
        print(f"wrote {rgb} and {depth}")
    elif isinstance(cmd, DemoArgs):
        from nerfkit.demo import run_demo

        run_demo(cmd.output, cmd.minutes, cmd.resolution, cmd.frames)
    elif isinstance(cmd, MethodsArgs):
        from nerfkit.methods import METHODS

        for name, spec in METHODS.items():
            print(f"{name:12s} {spec.summary}")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `nerfkit` console script."""
    from nerfkit.perf import configure_allocator

    configure_allocator()
    cmd = tyro.cli(
        Annotated[TrainConfig, tyro.conf.subcommand("train")]
        | Annotated[EvalArgs, tyro.conf.subcommand("eval")]
        | Annotated[RenderArgs, tyro.conf.subcommand("render")]
        | Annotated[DemoArgs, tyro.conf.subcommand("demo")]
        | Annotated[MethodsArgs, tyro.conf.subcommand("methods")],
        args=argv,
        prog="nerfkit",
        description="Neural Radiance Fields: train, evaluate and render on a CPU or GPU.",
    )
    try:
        code = _run(cmd)
    except NerfkitError as e:
        from nerfkit.train import TrainingInterrupted

        print(f"nerfkit: {e}", file=sys.stderr)
        code = 130 if isinstance(e, TrainingInterrupted) else 2
    except KeyboardInterrupt:
        print("nerfkit: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
