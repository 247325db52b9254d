"""The figures of docs/how-nerf-works.md, made with nerfkit's own functions (about a minute).

    python benchmarks/how_nerf_works_figures.py [--out docs/img]

- hnw_volume.png: one ray through a thin dense wall and a soft blob: σ(t), T(t), the exact
  weight density T(t)σ(t) against the quadrature weights w_i (`nerfkit.render.volume`), the
  quadrature's colour error against the number of samples (closed form for piecewise-constant
  σ and c), and ∂C/∂σ_i by autograd (why it is differentiable, and what the gradient says);
- hnw_encoding.png: γ(p) for L = 2, 5, 10 (`nerfkit.inspect_ray.encoding_curves`) and a small
  MLP fitted to a 1-D signal with fine detail from raw p versus from γ(p);
- hnw_sampling.png: coarse stratified samples, their weights, and the fine (inverse-CDF) samples
  they place on the thin wall (`nerfkit.render.sampling`);
- hnw_study_scene.png: views of the study scene and its region masks
  (`nerfkit.data.synthetic_study`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from nerfkit.ablate_report import _pyplot, _save_figure
from nerfkit.inspect_ray import encoding_curves
from nerfkit.render.encoding import positional_encoding
from nerfkit.render.sampling import sample_pdf, stratified_samples
from nerfkit.render.volume import composite, render_weights, sample_deltas

ROOT = Path(__file__).resolve().parents[1]
NEAR, FAR = 2.0, 6.0
# a ray's content: (start, end, density, colour): a thin dense red wall, then a soft blue blob
SEGMENTS = [(3.0, 3.06, 30.0, (0.9, 0.2, 0.1)), (4.0, 4.8, 2.5, (0.1, 0.3, 0.9))]


def density(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """σ(t) [N] and c(t) [N, 3] of the example ray at distances t [N]."""
    sigma = torch.zeros_like(t)
    colour = torch.zeros(*t.shape, 3, dtype=t.dtype)  # black where empty (weight 0 there)
    for a, b, s, c in SEGMENTS:
        inside = (t >= a) & (t < b)
        sigma = torch.where(inside, s, sigma)
        colour = torch.where(inside[..., None], torch.tensor(c, dtype=t.dtype), colour)
    return sigma, colour


def exact_colour() -> np.ndarray:
    """C = ∫ T(t) σ(t) c(t) dt in closed form: segment k adds T_k (1 - exp(-σ_k len_k)) c_k."""
    trans, out = 1.0, np.zeros(3)
    for a, b, s, c in SEGMENTS:
        alpha = 1.0 - math.exp(-s * (b - a))
        out += trans * alpha * np.array(c)
        trans *= 1.0 - alpha
    return out


def quadrature(n: int, gen: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """The paper's quadrature with n stratified samples (evenly spaced without `gen`)."""
    t = stratified_samples(
        torch.tensor([NEAR], dtype=torch.float64),
        torch.tensor([FAR], dtype=torch.float64),
        n,
        perturb=gen is not None,
        generator=gen,
    )[0]
    sigma, colour = density(t)
    w, trans, _ = render_weights(sigma, sample_deltas(t, FAR - t[-1]))
    return t, sigma, colour, w, trans


def fig_volume(out: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), dpi=90)
    tt = torch.linspace(NEAR, FAR, 4000, dtype=torch.float64)
    sig, _ = density(tt)
    dt = tt[1] - tt[0]
    trans = torch.exp(-torch.cumsum(sig * dt, 0) + sig * dt)
    ax = axes[0, 0]
    ax.plot(tt, sig, color="tab:red", label="density σ(t)")
    ax.set_ylabel("σ")
    ax.twinx().plot(tt, trans, color="tab:blue", label="T(t)")
    ax.plot([], [], color="tab:blue", label="transmittance T(t) (right axis)")
    ax.set_title("a ray: thin dense wall at t = 3, soft blob at t = 4-4.8", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    ax = axes[0, 1]
    ax.plot(tt, trans * sig, color="k", lw=1, label="T(t) σ(t): where the ray ends")
    t, _, _, w, _ = quadrature(64)
    ax.vlines(t, 0, w / (FAR - NEAR) * 64, color="tab:green", lw=2, label="w_i / δ, 64 samples")
    ax.set_title("exact weight density vs. quadrature weights", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    exact = exact_colour()
    ns = [4, 8, 16, 32, 64, 128, 256, 512]
    gen = torch.Generator().manual_seed(0)
    every = np.arange(4, 513)
    err_even = [np.abs(composite(*quadrature(n)[3:4], quadrature(n)[2]).numpy() - exact).max()
                for n in every]  # fmt: skip
    err_strat = []
    for n in ns:
        e = []
        for _ in range(20):
            _, _, c, w, _ = quadrature(n, gen)
            e.append(np.abs(composite(w, c).numpy() - exact).max())
        err_strat.append(np.mean(e))
    ax.loglog(every, err_even, "-", lw=0.6, label="evenly spaced (test time), every n")
    ax.loglog(ns, err_strat, "s-", label="stratified (training), mean of 20 draws")
    ax.set_xlabel("samples per ray")
    ax.set_ylabel("max |C_quad − C_exact|")
    ax.set_title("quadrature → integral (even spacing: depends on the wall's edges)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax = axes[1, 1]
    t, sigma, colour, _, _ = quadrature(64)
    sigma = sigma.clone().requires_grad_(True)
    deltas = sample_deltas(t, FAR - t[-1])
    w, trans, alpha = render_weights(sigma, deltas)
    red = composite(w, colour)[0]
    (grad,) = torch.autograd.grad(red, sigma)
    # closed form: dC/dsigma_i = delta_i (T_{i+1} c_i - sum_{j>i} w_j c_j)
    w, trans, alpha = w.detach(), trans.detach(), alpha.detach()
    behind = torch.flip(torch.cumsum(torch.flip(w * colour[:, 0], [0]), 0), [0]) - w * colour[:, 0]
    closed = deltas * (trans * (1 - alpha) * colour[:, 0] - behind)
    ax.vlines(t, 0, grad.numpy(), color="tab:purple", lw=2, label="autograd")
    ax.plot(t, closed.numpy(), ".", color="k", ms=4, label="δ_i (T_{i+1} c_i − Σ_{j>i} w_j c_j)")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("t")
    ax.set_ylabel("∂C_red / ∂σ_i")
    ax.legend(fontsize=8)
    ax.set_title("∂C/∂σ_i: density in front of the red wall would hide it (< 0)", fontsize=9)
    for a in axes.flat:
        a.grid(alpha=0.3)
    return _save_figure(fig, out / "hnw_volume.png")


def fig_encoding(out: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), dpi=80)
    p5, f5 = encoding_curves((5,))[5]
    for k in range(5):
        axes[0].plot(p5, f5[:, 2 * k] + 2.4 * k, lw=1)
        axes[0].text(1.03, 2.4 * k, f"sin(2^{k} p)", fontsize=7, va="center")
    axes[0].set_yticks([])
    axes[0].set_xlim(-1, 1.45)
    axes[0].set_title("γ(p), L = 5 (cos alike); L = 10 goes on to 2^9", fontsize=9)
    axes[0].set_xlabel("p")
    # fit y(p) with fine detail from raw p and from γ(p): an MLP's spectral bias
    torch.manual_seed(0)
    p = torch.linspace(-1, 1, 512)[:, None]
    y = 0.5 + 0.3 * torch.sin(3 * p) + 0.15 * torch.sign(torch.sin(40 * p))
    for ax, L in ((axes[1], 0), (axes[2], 8)):
        x = positional_encoding(p, L)
        net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
            torch.nn.ReLU(), torch.nn.Linear(64, 1),
        )  # fmt: skip
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        for _ in range(1500):
            opt.zero_grad()
            loss = ((net(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
        psnr = -10 * math.log10(loss.item())
        ax.plot(p, y, color="0.6", lw=2, label="signal")
        ax.plot(p, net(x).detach(), color="tab:red", lw=1, label="MLP fit")
        what = "raw p" if L == 0 else f"γ(p), L = {L}"
        ax.set_title(f"MLP on {what}: fit {psnr:.1f} dB (1500 steps)", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
        ax.set_xlabel("p")
    for a in axes:
        a.grid(alpha=0.3)
    return _save_figure(fig, out / "hnw_encoding.png")


def fig_sampling(out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.5), dpi=90)
    gen = torch.Generator().manual_seed(3)
    t, _, _, w, _ = quadrature(16, gen)
    mids = 0.5 * (t[1:] + t[:-1])
    t_fine = sample_pdf(mids[None], w[None, 1:-1], 32, deterministic=True)[0]
    tt = torch.linspace(NEAR, FAR, 2000, dtype=torch.float64)
    sig, _ = density(tt)
    ax.fill_between(tt, 0, (sig > 0).double(), color="0.85", label="content (wall, blob)")
    ax.vlines(t, 0, w / w.max(), color="tab:green", lw=2, label="coarse weights (16 stratified)")
    ax.plot(t, np.full(len(t), -0.08), "|", color="k", ms=10, label="coarse samples")
    ax.plot(t_fine, np.full(len(t_fine), -0.2), "|", color="tab:orange", ms=10,
            label="fine samples (32, inverse CDF of the coarse weights)")  # fmt: skip
    ax.set_ylim(-0.3, 1.1)
    ax.set_xlabel("t")
    ax.set_yticks([])
    ax.set_title(
        "hierarchical sampling: the fine samples go where the coarse weights are. Here no coarse\n"
        "sample landed in the 0.06-thick wall (each does with probability 0.06 / 0.27), so the "
        "fine samples never look there",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    return _save_figure(fig, out / "hnw_sampling.png")


def fig_study_scene(out: Path) -> Path:
    from nerfkit.data.synthetic import CAMERA_ANGLE_X, camera_poses
    from nerfkit.data.synthetic_study import CLASSES, REGIONS, render_study_view

    plt = _pyplot()
    res = 96
    focal = 0.5 * res / math.tan(0.5 * CAMERA_ANGLE_X)
    poses = camera_poses(2, 0, 2)
    views = [poses["train"][0], poses["test"][1]]
    fig, axes = plt.subplots(2, 4, figsize=(10, 5.2), dpi=80)
    for row, c2w in enumerate(views):
        rgba, _, cov = render_study_view(c2w, res, res, focal, supersample=3)
        img = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
        axes[row, 0].imshow(img.numpy())
        axes[row, 0].set_title("study scene" if row == 0 else "", fontsize=9)
        for col, (name, members) in enumerate(REGIONS.items(), 1):
            m = cov[..., [CLASSES.index(c) for c in members]].sum(-1) > 0
            shown = img.numpy() * 0.35 + 0.65 * np.where(m.numpy()[..., None], [1, 0.2, 0.2], 1)
            axes[row, col].imshow(shown.clip(0, 1))
            if row == 0:
                axes[row, col].set_title(f"{name} pixels", fontsize=9)
    for a in axes.flat:
        a.axis("off")
    return _save_figure(fig, out / "hnw_study_scene.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args()
    for make in (fig_volume, fig_encoding, fig_sampling, fig_study_scene):
        print(make(args.out))


if __name__ == "__main__":
    main()
