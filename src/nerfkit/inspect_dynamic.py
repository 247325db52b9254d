"""`nerfkit inspect RUN --deformation`: what a dynamic method does over time at one view.

For N times evenly spaced in [0, 1] one camera of the dataset renders the scene
(`Method.render_image(..., time=t)`), and the figure shows a column per time and a row per
quantity:

- the rendered RGB;
- the deformation's offset (`RenderedImage.displacement`, canonical minus observed point) as a
  picture: x, y, z mapped to R, G, B around grey (0), with one symmetric scale +-s shared by all
  frames, and its length |offset| with a colour map (0 .. the largest length over all frames);
- the ambient (slicing-surface) coordinates w (`RenderedImage.ambient`), one row per ambient
  dimension, each with one colour scale shared by all frames: HyperNeRF's figure of the
  slicing surface (Park et al. 2021, fig. 4).

The methods composite offsets and ambient coordinates with the sample weights (a sum, shrunk
where the opacity is below 1); the panels divide by the opacity, so they show the expected value
given a hit (as depth does), and draw white where the opacity is below 0.5 (nothing there), as
`nerfkit.media.colorize_depth`. Rows a method does not report are left out. An MP4 shows the same
panels side by side over more times (its scales are shared by its own frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nerfkit.atomic import atomic_path
from nerfkit.cameras import Cameras
from nerfkit.errors import NerfkitError
from nerfkit.media import to_uint8, write_mp4
from nerfkit.paths import frame_times
from nerfkit.run import LoadedRun, load_run

MIN_ACC = 0.5  # pixels below this opacity show nothing (white), as in colorize_depth


def given_hit(x: Tensor, acc: Tensor, min_acc: float = MIN_ACC) -> tuple[Tensor, Tensor]:
    """A weight-composited quantity as its expected value given a hit.

    Args:
        x: [..., C] values composited with the weights (sum_i w_i x_i).
        acc: [...] opacities (sum_i w_i).
    Returns:
        (x / acc where acc >= min_acc, else 0: [..., C]; the mask acc >= min_acc: [...] bool).
    """
    hit = acc >= min_acc
    return torch.where(hit[..., None], x / acc.clamp_min(min_acc)[..., None], 0.0), hit


def symmetric_scale(x: Tensor, hit: Tensor) -> float:
    """The largest |component| of x [..., C] over the pixels where `hit` [...]; 1 if none or 0."""
    s = float(x[hit].abs().max()) if bool(hit.any()) else 0.0
    return s if s > 0 else 1.0


def value_range(x: Tensor, hit: Tensor) -> tuple[float, float]:
    """(min, max) of x [...] over the pixels where `hit`; widened by 0.5 each side if flat."""
    if not bool(hit.any()):
        return 0.0, 1.0
    lo, hi = float(x[hit].min()), float(x[hit].max())
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def _white_outside(rgb: Tensor, hit: Tensor) -> Tensor:
    """rgb [..., 3] with the pixels where not `hit` [...] set to white."""
    return torch.where(hit[..., None], rgb, torch.ones_like(rgb))


def _colormap(x: Tensor, lo: float, hi: float, name: str) -> Tensor:
    """[...] values -> [..., 3] colours of matplotlib's colour map `name` over [lo, hi]."""
    import matplotlib

    u = ((x - lo) / max(hi - lo, 1e-12)).clamp(0, 1).numpy()
    return torch.from_numpy(matplotlib.colormaps[name](u)[..., :3]).float()


@dataclass
class Panel:
    """One row of the figure: images [N, H, W, 3] in [0, 1] and how to read them.

    label: the row's name; scale: a caption with the colour scale ('' for plain RGB);
    cmap, lo, hi: the colour map and its range, for a colour bar (cmap '' for none).
    """

    label: str
    images: Tensor
    scale: str = ""
    cmap: str = ""
    lo: float = 0.0
    hi: float = 1.0


def deformation_panels(
    rgb: Tensor, acc: Tensor, displacement: Tensor | None, ambient: Tensor | None
) -> list[Panel]:
    """The figure's rows for N rendered frames.

    Args:
        rgb: [N, H, W, 3]; acc: [N, H, W]; displacement: [N, H, W, 3] or None; ambient:
            [N, H, W, m] or None (all as `RenderedImage`, weight-composited).
    Returns:
        Panels: rendered RGB; if displacement: offset xyz -> RGB as 0.5 + 0.5 d / s with s the
        largest |component| over all frames (hit pixels), and |d| with the 'magma' map over
        [0, max]; if ambient: one 'viridis' row per dimension over its [min, max] over all
        frames. Offsets and w are taken given a hit (`given_hit`); white where acc < 0.5.
    """
    panels = [Panel("rendered RGB", rgb.clamp(0, 1))]
    if displacement is not None:
        d, hit = given_hit(displacement, acc)
        s = symmetric_scale(d, hit)
        panels.append(
            Panel(
                "displacement\nxyz → RGB",
                _white_outside((0.5 + 0.5 * d / s).clamp(0, 1), hit),
                f"grey = 0, full = ±{s:.3g}",
            )
        )
        mag = d.norm(dim=-1)
        top = symmetric_scale(mag[..., None], hit)
        panels.append(
            Panel(
                "|displacement|",
                _white_outside(_colormap(mag, 0, top, "magma"), hit),
                f"0 .. {top:.3g}",
                "magma",
                0.0,
                top,
            )
        )
    if ambient is not None:
        w, hit = given_hit(ambient, acc)
        for j in range(w.shape[-1]):
            lo, hi = value_range(w[..., j], hit)
            panels.append(
                Panel(
                    f"ambient w{j + 1}",
                    _white_outside(_colormap(w[..., j], lo, hi, "viridis"), hit),
                    f"{lo:.3g} .. {hi:.3g}",
                    "viridis",
                    lo,
                    hi,
                )
            )
    return panels


@torch.no_grad()
def render_times(
    run: LoadedRun, cameras: Cameras, times: Tensor, progress: bool = False
) -> dict[str, Tensor | None]:
    """Render camera 0 of `cameras` at each of `times` [N].

    Returns:
        rgb [N, H, W, 3], acc [N, H, W], displacement [N, H, W, 3] and ambient [N, H, W, m]
        (None where the method does not report them).
    """
    meta = run.meta
    it = range(len(times))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="inspect deformation", unit="frame")
    frames = [
        run.method.render_image(cameras, 0, meta.near, meta.far, ndc=meta.ndc, time=float(times[i]))
        for i in it
    ]

    def stack(name: str) -> Tensor | None:
        vals = [getattr(f, name) for f in frames]
        return None if any(v is None for v in vals) else torch.stack(vals)

    return {n: stack(n) for n in ("rgb", "acc", "displacement", "ambient")}


def plot_deformation(panels: list[Panel], times: Tensor, path: Path, title: str = "") -> Path:
    """One PNG: a column per time, a row per panel, a colour bar (or caption) per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, rows = len(times), len(panels)
    h, w = panels[0].images.shape[1:3]
    cell = 2.0
    fig, axes = plt.subplots(
        rows,
        n + 1,
        figsize=(cell * w / h * n + 1.6, cell * rows + 0.5),
        dpi=100,
        squeeze=False,
        gridspec_kw={"width_ratios": [1] * n + [0.08]},
    )
    for r, p in enumerate(panels):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(p.images[c].numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t = {float(times[c]):.3g}", fontsize=9)
            if c == 0:
                ax.set_ylabel(p.label, fontsize=9)
        bar = axes[r, n]
        if p.cmap:
            norm = matplotlib.colors.Normalize(p.lo, p.hi)
            fig.colorbar(matplotlib.cm.ScalarMappable(norm, p.cmap), cax=bar)
            bar.tick_params(labelsize=7)
        else:
            bar.axis("off")
            if p.scale:
                bar.text(0, 0.5, p.scale, rotation=90, va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def panel_frames(panels: list[Panel], gap: int = 2) -> list[np.ndarray]:
    """Video frames: frame i shows every panel's image i side by side (white gaps): uint8
    [H, P W + (P - 1) gap, 3] each."""
    n, h = panels[0].images.shape[:2]
    sep = torch.ones(h, gap, 3)
    out = []
    for i in range(n):
        parts = []
        for j, p in enumerate(panels):
            parts += [sep] * (j > 0) + [p.images[i]]
        out.append(to_uint8(torch.cat(parts, dim=1)))
    return out


def inspect_deformation(
    run_dir: Path | LoadedRun,
    view: int = 0,
    times: int = 5,
    split: str = "test",
    output: Path | None = None,
    video_frames: int = 60,
    fps: int = 15,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Render view `view` of `split` at `times` evenly spaced times in [0, 1] and write the figure
    (`output`: a .png file or a folder; default RUN/inspect/deformation_<split>_<view>.png)
    and, unless `video_frames` is 0, an MP4 of the same panels over `video_frames` times next to
    it (same stem, .mp4).

    Returns:
        {"png": path, "mp4": path or None, "rows": the rows drawn, "missing": the quantities the
        method does not report ("displacement", "ambient")}.
    """
    from nerfkit.video import view_camera

    run = run_dir if isinstance(run_dir, LoadedRun) else load_run(Path(run_dir), device)
    if not run.meta.dynamic:
        raise NerfkitError(
            f"{run.run_dir}: a static run has no time (its training images have no time stamps);"
            " --deformation is for dynamic runs"
        )
    if times < 1:
        raise NerfkitError(f"--times must be >= 1, got {times}")
    if video_frames < 0:
        raise NerfkitError(f"--video-frames must be >= 0, got {video_frames}")
    cams, label = view_camera(run, view, split)
    png = Path(output) if output else run.run_dir / "inspect"
    if png.suffix != ".png":
        png = png / f"deformation_{split}_{view}.png"
    ts = frame_times(times)
    r = render_times(run, cams, ts, progress=progress)
    missing = [k for k in ("displacement", "ambient") if r[k] is None]
    panels = deformation_panels(r["rgb"], r["acc"], r["displacement"], r["ambient"])
    title = f"{run.run_dir.name}: {label}, step {run.step}, method '{run.config.method}'"
    plot_deformation(panels, ts, png, title)
    mp4 = None
    if video_frames:
        r = render_times(run, cams, frame_times(video_frames), progress=progress)
        mp4 = write_mp4(
            png.with_suffix(".mp4"),
            panel_frames(deformation_panels(r["rgb"], r["acc"], r["displacement"], r["ambient"])),
            fps=fps,
        )
    return {
        "png": png,
        "mp4": mp4,
        "rows": [p.label.replace("\n", " ") for p in panels],
        "missing": missing,
    }
