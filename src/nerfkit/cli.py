"""`nerfkit <command>`: thin wrappers that parse flags, call the library and report.

User errors print one line and exit with code 2; Ctrl-C saves what it can and exits 130.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from nerfkit.ablate import AblationConfig
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
    downscale: int | None = None
    """Evaluate at the dataset's full resolution divided by this (default: the run's training
    --downscale, i.e. the resolution it was trained at; 1: full resolution)."""
    device: str = "auto"


@dataclass
class RenderArgs:
    """Render a camera path of a trained run to MP4 (colour and depth). Dynamic runs: time runs
    from 0 to 1 over the frames (or stays at --time); --path fixed sweeps time at one camera."""

    run: tyro.conf.Positional[Path]
    path: str = "auto"
    """orbit (object scenes), spiral (forward-facing), auto, interp (a smooth loop through
    training views), a nerfstudio camera-path .json (perspective, fisheye or equirectangular;
    its size, fps and render_time are used), or fixed (dynamic runs: one dataset camera held
    still while time sweeps 0 -> 1)."""
    output: Path | None = None
    """Output .mp4 file or folder (default: RUN/render/<path>.mp4)."""
    frames: int = 120
    """Frames of a generated path (orbit, spiral, interp, fixed); a .json path has its own."""
    fps: float | None = None
    """Video frame rate (default: a .json path's, else 30)."""
    downscale: int | None = None
    """Render at the dataset's full resolution divided by this (default: the run's training
    --downscale, i.e. the resolution it was trained at; 1: full resolution). A .json path: its
    render_width/height divided by this."""
    path_frame: str | None = None
    """World frame of a --path .json: scene (the run's cameras, scene.json), dataset (the
    dataset's own pose file), or nerfstudio:FILE (a nerfstudio run on the same data, FILE its
    dataparser_transforms.json; for paths from nerfstudio's viewer). Default: the frame the
    file names (nerfkit writes "scene"), else dataset."""
    save_path: Path | None = None
    """Also write the camera path that is rendered as an editable nerfstudio camera-path .json
    (scene frame, keyframes included); with --no-render, write only that file."""
    render: bool = True
    """Render the video (--no-render: only --save-path)."""
    time: float | None = None
    """Dynamic runs: freeze time at this instant in [0, 1] along the moving camera path."""
    view: int | None = None
    """--path fixed: the camera, an index into the test split (default 0; the training split
    where there is no test split)."""
    device: str = "auto"


@dataclass
class DemoArgs:
    """Generate the built-in scene, train, evaluate and render a video, in a few minutes.
    --dynamic: the dynamic scene (a blob that splits in two and merges back) instead."""

    output: Path | None = None
    """Demo folder (default: runs/demo; --dynamic: runs/demo_dynamic)."""
    minutes: float = 3.0
    """Training budget (the whole demo takes about one to two minutes more)."""
    resolution: int = 100
    """Width and height of the generated scene's images."""
    frames: int = 90
    """Frames of the orbit video (--dynamic: of each of its two videos)."""
    method: str | None = None
    """Method to train (default: grid; --dynamic: dgrid; `nerf`: the paper's design, smaller,
    much slower to converge)."""
    dynamic: bool = False
    """The dynamic demo: the split scene, rendered along the orbit with time running 0 -> 1
    and with a fixed camera while time runs."""


@dataclass
class MethodsArgs:
    """List the available methods."""


@dataclass
class InspectArgs:
    """Plot what happens along one ray of a trained NeRF run: sigma, T, weights, samples
    (--view V --pixel X Y); or, for dynamic runs, the deformation and ambient coordinates of a
    view over time (--deformation [--view V] [--times N])."""

    run: tyro.conf.Positional[Path]
    view: int | None = None
    """Index of the view in the split (required with --pixel; --deformation: default 0)."""
    pixel: tuple[int, int] | None = None
    """Pixel X Y (column, row) of the ray to plot."""
    split: str = "test"
    output: Path | None = None
    """PNG file (default: RUN/inspect/<split>_<view>_x<X>_y<Y>.png; --deformation:
    RUN/inspect/deformation_<split>_<view>.png, and the MP4 beside it)."""
    deformation: bool = False
    """Dynamic runs: render the view at --times times in [0, 1]; one figure with the RGB, the
    displacement field and the ambient coordinates w, and an MP4 of them over --video-frames."""
    times: int = 5
    """--deformation: columns of the figure (times evenly spaced in [0, 1])."""
    video_frames: int = 60
    """--deformation: frames (times) of the MP4; 0: no MP4."""
    device: str = "auto"


@dataclass
class ProcessArgs:
    """Estimate camera poses for photos or a video (COLMAP via pycolmap): a transforms.json
    dataset that `nerfkit train --data` reads."""

    input: tyro.conf.Positional[Path]
    """A folder of photos, or a video file (mp4, mov, ...)."""
    output: Path
    """Dataset folder to create (transforms.json, images/, colmap/sparse/0/)."""
    downscale: int = 1
    """Divide the written images' size by this (SfM runs at full resolution)."""
    num_frames: int = 100
    """Video: keep the sharpest frame of each of this many evenly spaced windows."""
    matching: Literal["auto", "exhaustive", "sequential"] = "auto"
    """auto: exhaustive under 100 photos, else sequential (by name); video: sequential."""
    camera_model: Literal[
        "SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE"
    ] = "SIMPLE_RADIAL"
    """COLMAP camera model shared by all images (SIMPLE_RADIAL: focal + one distortion term)."""
    min_registered: float = 0.5
    """Fail unless this fraction of the images (and at least 3) get a pose."""
    overwrite: bool = False
    """Replace a non-empty output folder."""
    verbose: bool = False
    """Show COLMAP's own log."""


@dataclass
class ViewArgs:
    """Show a trained run in the live viewer (a web page; needs `pip install 'nerfkit[viewer]'`)
    until Ctrl-C: move the camera, switch RGB / depth / opacity, click a training camera, edit
    a camera path for `nerfkit render`."""

    run: tyro.conf.Positional[Path]
    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0: all interfaces; or SSH port forwarding to 127.0.0.1)."""
    port: int = 7007
    """Port to listen on (the next free one if taken; the printed URL says)."""
    device: str = "auto"


@dataclass
class ExportArgs:
    """Export a trained run's geometry: `mesh` (marching cubes on the density, vertex colours;
    PLY, OBJ or GLB) or `pointcloud` (expected-depth points of the training views with colours
    and normals, outliers removed; PLY), in the dataset's frame and scale by default."""

    kind: tyro.conf.Positional[Literal["mesh", "pointcloud"]]
    run: tyro.conf.Positional[Path]
    output: Path | None = None
    """Output file (mesh: its suffix .ply/.obj/.glb sets the format) or folder (default:
    RUN/export/mesh.<format> or RUN/export/pointcloud.ply)."""
    format: str = "ply"
    """mesh: ply, obj or glb (point clouds: ply)."""
    frame: str = "dataset"
    """dataset: the dataset's own frame and scale (undoing the loader's recentring/rescaling
    and NDC); scene: the frame of the run's cameras."""
    time: float | None = None
    """Dynamic runs: the instant in [0, 1] to export (default 0)."""
    resolution: int | None = None
    """mesh: vertices along the longest side of the density volume (default: the grid's own
    vertices for `grid`, 256 for the other methods)."""
    threshold: str = "auto"
    """mesh: the density level of the surface, or auto (ln 2 / voxel: a one-voxel slab is
    half opaque)."""
    views: int = 20
    """pointcloud: training views to use, evenly chosen (0: all)."""
    downscale: int | None = None
    """pointcloud: render the views at full resolution divided by this (default: as trained)."""
    min_opacity: float = 0.9
    """pointcloud: pixels whose opacity is at most this give no point."""
    neighbours: int = 16
    """pointcloud: k of the statistical outlier removal (0: keep every point)."""
    std_ratio: float = 2.0
    """pointcloud: drop points whose mean k-neighbour distance exceeds the mean by this many
    standard deviations."""
    device: str = "auto"


def _run(cmd: object) -> int:
    if isinstance(cmd, TrainConfig):
        from nerfkit.train import train

        res = train(cmd)
        val = f", val PSNR {res.val_psnr:.2f} dB" if res.val_psnr is not None else ""
        if res.rank == 0:  # under torchrun, one summary line for the job
            print(
                f"trained to step {res.step} in {res.elapsed / 60:.1f} min{val}; run: {res.run_dir}"
            )
    elif isinstance(cmd, EvalArgs):
        from nerfkit.evaluate import evaluate_run

        r = evaluate_run(cmd.run, cmd.split, cmd.data, cmd.output, cmd.downscale, cmd.device)
        m = r["mean"]
        print(
            f"{r['num_views']} {cmd.split} views at {r['resolution'][0]}x{r['resolution'][1]} "
            f"(--downscale {r['downscale']}): "
            f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} -> {r['output']}"
        )
    elif isinstance(cmd, RenderArgs):
        from nerfkit.video import render_path

        if not cmd.render and cmd.save_path is None:
            raise NerfkitError("--no-render writes nothing without --save-path FILE.json")
        out = render_path(
            cmd.run, cmd.path, cmd.output, cmd.frames, cmd.fps, cmd.downscale, cmd.device,
            time=cmd.time, view=cmd.view, path_frame=cmd.path_frame, save_path=cmd.save_path,
            render=cmd.render,
        )  # fmt: skip
        if cmd.save_path is not None:
            print(f"wrote camera path {cmd.save_path}")
        if out is not None:
            print(f"wrote {out[0]} and {out[1]}")
    elif isinstance(cmd, DemoArgs):
        from nerfkit.demo import run_demo

        run_demo(cmd.output, cmd.minutes, cmd.resolution, cmd.frames, cmd.method, cmd.dynamic)
    elif isinstance(cmd, MethodsArgs):
        from nerfkit.methods import METHODS

        for name, spec in sorted(METHODS.items()):
            print(f"{name:12s} {spec.summary}")
    elif isinstance(cmd, AblationConfig):
        from nerfkit.ablate import run_ablation

        results = run_ablation(cmd)
        print(f"{len(results)} run(s) in {cmd.output}: ablation.md, ablation.csv, plots")
    elif isinstance(cmd, InspectArgs):
        if cmd.deformation:
            _inspect_deformation(cmd)
            return 0
        from nerfkit.inspect_ray import inspect_ray

        if cmd.view is None or cmd.pixel is None:
            raise NerfkitError(
                "inspect needs --view V --pixel X Y (one ray), or --deformation (dynamic runs)"
            )
        path, prof = inspect_ray(cmd.run, cmd.view, *cmd.pixel, cmd.split, cmd.output, cmd.device)
        print(f"wrote {path} (opacity {prof['acc']:.3f}, depth {prof['depth']:.3f})")
    elif isinstance(cmd, ExportArgs):
        from nerfkit.export import run_export

        r = run_export(cmd)
        print(f"wrote {r['path']} ({r['summary']})")
    elif isinstance(cmd, ProcessArgs):
        from nerfkit.process import process

        r = process(
            cmd.input,
            cmd.output,
            downscale=cmd.downscale,
            num_frames=cmd.num_frames,
            matching=cmd.matching,
            camera_model=cmd.camera_model,
            min_registered=cmd.min_registered,
            overwrite=cmd.overwrite,
            verbose=cmd.verbose,
        )
        print(
            f"registered {r.num_registered} of {r.num_inputs} images "
            f"({r.num_points} points, reprojection error {r.mean_reprojection_error:.2f} px) "
            f"-> {r.output}/transforms.json"
        )
    elif isinstance(cmd, ViewArgs):
        from nerfkit.viewer import require_viser
        from nerfkit.viewer.server import view_run

        require_viser()
        view_run(cmd.run, cmd.host, cmd.port, cmd.device)
    return 0


def _inspect_deformation(cmd: InspectArgs) -> None:
    from nerfkit.inspect_dynamic import inspect_deformation

    if cmd.pixel is not None:
        raise NerfkitError("--pixel plots one ray; --deformation draws whole views: drop one")
    r = inspect_deformation(
        cmd.run, 0 if cmd.view is None else cmd.view, cmd.times, cmd.split, cmd.output,
        cmd.video_frames, device=cmd.device,
    )  # fmt: skip
    print(f"rows: {', '.join(r['rows'])}")
    if r["missing"]:
        print(f"not reported by this method (rows left out): {', '.join(r['missing'])}")
    print(f"wrote {r['png']}" + (f" and {r['mp4']}" if r["mp4"] else ""))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `nerfkit` console script."""
    from nerfkit.perf import configure_allocator

    configure_allocator()
    cmd = tyro.cli(
        Annotated[TrainConfig, tyro.conf.subcommand("train")]
        | Annotated[EvalArgs, tyro.conf.subcommand("eval")]
        | Annotated[RenderArgs, tyro.conf.subcommand("render")]
        | Annotated[DemoArgs, tyro.conf.subcommand("demo")]
        | Annotated[MethodsArgs, tyro.conf.subcommand("methods")]
        | Annotated[AblationConfig, tyro.conf.subcommand("ablate")]
        | Annotated[InspectArgs, tyro.conf.subcommand("inspect")]
        | Annotated[ProcessArgs, tyro.conf.subcommand("process")]
        | Annotated[ViewArgs, tyro.conf.subcommand("view")]
        | Annotated[ExportArgs, tyro.conf.subcommand("export")],
        args=argv,
        prog="nerfkit",
        description="Neural Radiance Fields: train, evaluate and render on a CPU or GPU.",
    )
    try:
        code = _run(cmd)
    except NerfkitError as e:
        from nerfkit.distributed import DistributedError
        from nerfkit.train import TrainingInterrupted

        print(f"nerfkit: {e}", file=sys.stderr)
        code = 130 if isinstance(e, TrainingInterrupted) else 2
        if isinstance(e, DistributedError):
            # a peer is gone: gloo's threads may abort the interpreter's shutdown ("terminate
            # called without an active exception", SIGABRT instead of 2), seen once in CI;
            # leave without running the C++ destructors
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    except KeyboardInterrupt:
        print("nerfkit: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
