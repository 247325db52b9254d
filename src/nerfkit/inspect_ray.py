"""`nerfkit inspect`: what happens along one ray of a trained NeRF.

`ray_profile` returns the numbers (samples, density, transmittance, weights, colours) and
`plot_ray` draws them: density sigma(t), transmittance T(t) and weights w(t) along the ray with the
coarse (stratified) and fine (importance) sample positions marked, the rendered colour beside the
true one, the view with the pixel marked, and the positional-encoding features gamma(p) of a
coordinate for a few L.

In eval mode the coarse samples are the evenly spaced bin starts and the fine samples are drawn
deterministically from the coarse weights, so a profile is reproducible. The curves shown for
the fine network are evaluated at the union of coarse and fine samples (as the model does); with
`n_fine = 0` the coarse network's curves are shown and there are no fine samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nerfkit.data.scene import Scene
from nerfkit.errors import NerfkitError
from nerfkit.render.encoding import positional_encoding
from nerfkit.run import LoadedRun, load_run


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


@torch.no_grad()
def ray_profile(
    run: LoadedRun | Path,
    view: int,
    x: int,
    y: int,
    split: str = "test",
    scene: Scene | None = None,
    device: str = "auto",
) -> dict:
    """Everything along the ray through pixel (x = column, y = row) of view `view` of `split`.

    Args:
        run: a loaded run (`nerfkit.run.load_run`) or its folder.
        scene: the dataset (default: loaded from the run's config, same format and downscale).
    Returns:
        dict of numpy arrays / floats: t, sigma, trans, weights (the curves of the network that
        produced the colour: fine if there is one, else coarse; [S]); t_coarse, sigma_coarse,
        weights_coarse ([Sc]); t_fine ([Sf], empty without a fine network); rgb [3], acc, depth
        (rendered); rgb_true [3]; image [H, W, 3] (true image); and view, x, y, near, far,
        origin [3], direction [3], split, name, step, run_dir, include_pi, pos_freqs.
    """
    if not isinstance(run, LoadedRun):
        run = load_run(Path(run), device)
    cfg, meta = run.config, run.meta
    if scene is None:
        from nerfkit.data import load_scene

        if cfg.data is None:
            raise NerfkitError(f"{run.run_dir}: the run's config names no dataset folder")
        scene = load_scene(cfg.data, format=cfg.format, downscale=cfg.downscale, ndc=run.meta.ndc)
    sp = scene.split(split)
    if not 0 <= view < len(sp):
        raise NerfkitError(
            f"--view {view} out of range: the {split} split has {len(sp)} views (0..{len(sp) - 1})"
        )
    w, h = sp.cameras.width, sp.cameras.height
    if not (0 <= x < w and 0 <= y < h):
        raise NerfkitError(
            f"--pixel {x} {y} out of range: {split} images are {w} x {h} (x in 0..{w - 1}, "
            f"y in 0..{h - 1})"
        )
    cam = torch.tensor([view], dtype=torch.long)
    t_time = None if sp.times is None else sp.times[cam].float()
    rays = sp.cameras.rays(
        cam,
        torch.tensor([x + 0.5]),
        torch.tensor([y + 0.5]),
        meta.near,
        meta.far,
        ndc=meta.ndc,
        time=t_time,
    )
    method = run.method
    method.eval()
    dev = next(method.parameters()).device
    out = method(rays.to(dev))
    if out.samples is None or out.coarse is None or out.coarse.samples is None:
        raise NerfkitError(
            f"inspect needs a run of the 'nerf' method (this run: '{cfg.method}'), whose "
            "renders expose their samples"
        )
    s, c = out.samples, out.coarse.samples
    t_f = c.t.new_zeros(1, 0) if out.t_fine is None else out.t_fine
    nerf_cfg = cfg.method_config()
    return {
        "t": _np(s.t[0]),
        "sigma": _np(s.sigma[0]),
        "trans": _np(s.trans[0]),
        "weights": _np(s.weights[0]),
        "t_coarse": _np(c.t[0]),
        "sigma_coarse": _np(c.sigma[0]),
        "weights_coarse": _np(c.weights[0]),
        "t_fine": _np(t_f[0]),
        "rgb": _np(out.rgb[0]),
        "acc": float(out.acc[0]),
        "depth": float(out.depth[0]),
        "rgb_true": _np(sp.images[view, y, x]),
        "image": _np(sp.images[view]),
        "origin": _np(rays.origins[0]),
        "direction": _np(rays.directions[0]),
        "near": float(rays.near[0]),
        "far": float(rays.far[0]),
        "view": view,
        "x": x,
        "y": y,
        "split": split,
        "name": sp.names[view],
        "step": run.step,
        "run_dir": str(run.run_dir),
        "include_pi": bool(getattr(nerf_cfg, "include_pi", False)),
        "pos_freqs": int(getattr(nerf_cfg, "pos_freqs", 10)),
    }


def encoding_curves(
    levels: tuple[int, ...] = (2, 5, 10), n: int = 2000, include_pi: bool = False
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """gamma(p) of a scalar coordinate p over [-1, 1] for each L: {L: (p [n], features [n, 2L])}.

    Features in the order sin(2^0 w p), cos(2^0 w p), ..., as `positional_encoding` (input
    itself left out); w = pi with `include_pi`, else 1 (nerfkit's default, like the reference code).
    """
    p = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)[:, None]
    return {
        L: (
            _np(p[:, 0]),
            _np(positional_encoding(p, L, include_input=False, include_pi=include_pi)),
        )
        for L in levels
    }


def plot_ray(prof: dict, path: Path, levels: tuple[int, ...] = (2, 5, 10)) -> Path:
    """Draw `ray_profile`'s data (and gamma(p) for `levels`) into one PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec

    fig = plt.figure(figsize=(13, 8.2), dpi=100)
    gs = GridSpec(3, 4, figure=fig, height_ratios=[1, 1, 1.1], width_ratios=[1, 1, 1, 0.9])
    t, sig, trans, wts = prof["t"], prof["sigma"], prof["trans"], prof["weights"]
    has_fine = len(prof["t_fine"]) > 0
    net = "fine network (coarse + fine samples)" if has_fine else "coarse network (no fine samples)"

    ax_s = fig.add_subplot(gs[0, :3])
    ax_s.plot(t, sig, "-", color="tab:red", lw=1.2, marker=".", ms=3, label=f"σ(t), {net}")
    if has_fine:
        ax_s.plot(
            prof["t_coarse"],
            prof["sigma_coarse"],
            ":",
            color="tab:gray",
            lw=1,
            label="σ(t), coarse",
        )
    ax_s.set_ylabel("density σ")
    ax_s.set_title(
        f"{prof['split']} view {prof['view']} ({prof['name']}), pixel x={prof['x']} y={prof['y']}, "
        f"step {prof['step']}: opacity {prof['acc']:.3f}, depth {prof['depth']:.3f}",
        fontsize=10,
    )
    ax_s.legend(fontsize=8, loc="upper right")
    ax_s.grid(alpha=0.3)

    ax_w = fig.add_subplot(gs[1, :3], sharex=ax_s)
    ax_w.plot(t, trans, "-", color="tab:blue", lw=1.3, label="transmittance T(t) (left axis)")
    ax_ww = ax_w.twinx()  # weights on their own scale: a few samples share a total of <= 1
    ax_ww.vlines(t, 0, wts, color="tab:green", lw=1.5)
    ax_ww.plot(t, wts, ".", color="tab:green", ms=3)
    w_top = max(float(wts.max()), 1e-6) * 1.1
    ax_ww.set_ylim(-0.2 / 1.05 * w_top, w_top)
    ax_ww.set_ylabel("weight w", color="tab:green")
    ax_w.plot(
        [], [], "-", color="tab:green", label=f"weights w(t), right axis (Σw = {wts.sum():.3f})"
    )
    # the sample positions as ticks below the curves
    ticks = [
        ("coarse", prof["t_coarse"], -0.06, "k"),
        ("fine", prof["t_fine"], -0.14, "tab:orange"),
    ]
    for name, ts, y, colour in ticks[: 2 if has_fine else 1]:
        ax_w.plot(
            ts, np.full(len(ts), y), "|", color=colour, ms=9, label=f"{name} samples ({len(ts)})"
        )
    ax_w.axvline(prof["depth"], color="k", ls="--", lw=0.8)
    ax_w.set_ylim(-0.2, 1.05)
    ax_w.set_xlim(prof["near"], prof["far"])
    ax_w.set_xlabel("distance t along the ray")
    ax_w.set_ylabel("T, w")
    ax_w.legend(fontsize=8, loc="upper right")
    ax_w.grid(alpha=0.3)

    ax_i = fig.add_subplot(gs[0, 3])
    ax_i.imshow(np.clip(prof["image"], 0, 1), interpolation="nearest")
    ax_i.plot([prof["x"]], [prof["y"]], "o", mfc="none", mec="magenta", ms=10, mew=1.5)
    ax_i.plot([prof["x"]], [prof["y"]], "+", color="magenta", ms=6)
    ax_i.set_title("true image, pixel marked", fontsize=9)
    ax_i.axis("off")

    ax_c = fig.add_subplot(gs[1, 3])
    sw = np.stack([prof["rgb"], prof["rgb_true"]])[None]  # [1, 2, 3]
    ax_c.imshow(np.clip(sw, 0, 1), interpolation="nearest")
    ax_c.set_xticks([0, 1], ["rendered", "true"])
    ax_c.set_yticks([])
    err = np.abs(prof["rgb"] - prof["rgb_true"]).max()
    ax_c.set_title(
        "rgb " + " ".join(f"{v:.2f}" for v in prof["rgb"]) + "\nvs "
        + " ".join(f"{v:.2f}" for v in prof["rgb_true"]) + f"  (max err {err:.3f})",
        fontsize=8,
    )  # fmt: skip

    # positional encoding of a coordinate: the x coordinate of the expected surface point
    px = float(prof["origin"][0] + prof["depth"] * prof["direction"][0])
    curves = encoding_curves(levels, include_pi=prof["include_pi"])
    for j, L in enumerate(levels):
        ax = fig.add_subplot(gs[2, j])
        p, feats = curves[L]
        for k in range(L):
            ax.plot(p, feats[:, 2 * k] + 2.4 * k, "-", lw=0.7, color="tab:purple")
            ax.plot(p, feats[:, 2 * k + 1] + 2.4 * k, "-", lw=0.7, color="tab:cyan")
        if -1 <= px <= 1:
            ax.axvline(px, color="k", ls="--", lw=0.8)
        ax.set_yticks([2.4 * k for k in range(L)], [f"2^{k}" for k in range(L)], fontsize=6)
        ax.set_xlabel("coordinate p")
        ax.set_title(f"γ(p), L = {L}: sin (purple), cos (cyan)", fontsize=9)
    ax = fig.add_subplot(gs[2, 3])
    ax.axis("off")
    pi = "2^k π p" if prof["include_pi"] else "2^k p\n(no π, as in the reference code)"
    ax.text(
        0,
        0.95,
        "γ(p) = (sin(f_k), cos(f_k)), f_k = " + pi + "\n"
        f"this run uses L = {prof['pos_freqs']} for positions\n"
        f"dashed line: x of the expected surface point\n(p_x = {px:.3f})",
        fontsize=8,
        va="top",
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def inspect_ray(
    run_dir: Path,
    view: int,
    x: int,
    y: int,
    split: str = "test",
    output: Path | None = None,
    device: str = "auto",
) -> tuple[Path, dict]:
    """Profile one ray of a trained run and write the figure (default RUN/inspect/...png)."""
    prof = ray_profile(Path(run_dir), view, x, y, split=split, device=device)
    if output is None:
        output = Path(run_dir) / "inspect" / f"{split}_{view}_x{x}_y{y}.png"
    return plot_ray(prof, Path(output)), prof
