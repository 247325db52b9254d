"""The report of `nerfkit ablate` (the study is `nerfkit.ablate`): tables and plots of the rows.

From the row results (the `ablation_row.json` dicts of `nerfkit.ablate.run_row`) and the row run
folders in OUTPUT, `write_report` writes, each atomically:

- `ablation.csv`: one line per row (TABLE_COLUMNS);
- `ablation.md`: the settings, the table beside the paper's PSNR, how to read it;
- `psnr_vs_time.png`: PSNR against training time, one curve per row (from its metrics.jsonl);
- `grid.png`: one test view rendered by every row, beside the truth (`OUTPUT/grid_truth.png`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nerfkit.atomic import atomic_path, write_text_atomic

if TYPE_CHECKING:
    from nerfkit.ablate import AblationConfig

TABLE_COLUMNS = (
    "row", "paper_psnr", "psnr", "ssim", "steps", "sec_per_step", "params", "mflops_per_ray",
    "n_coarse", "n_fine", "pos_freqs", "dir_freqs", "use_viewdirs", "n_train_images",
)  # fmt: skip


def _csv_row(r: dict) -> dict:
    d = {k: r.get(k) for k in TABLE_COLUMNS}
    d["mflops_per_ray"] = round(r["flops_per_ray"] / 1e6, 4)
    d["psnr"], d["ssim"] = round(r["psnr"], 3), round(r["ssim"], 4)
    d["sec_per_step"] = round(r["sec_per_step"], 4)
    return d


def csv_table(results: list[dict]) -> str:
    """The results as CSV text: a header of TABLE_COLUMNS, one line per row (rounded)."""
    f = io.StringIO(newline="")
    w = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
    w.writeheader()
    for r in results:
        w.writerow(_csv_row(r))
    return f.getvalue()


def write_report(cfg: AblationConfig, results: list[dict]) -> dict[str, Path]:
    """ablation.csv, ablation.md, psnr_vs_time.png and grid.png in OUTPUT from `results`."""
    out = Path(cfg.output)
    paths = {
        "csv": out / "ablation.csv",
        "md": out / "ablation.md",
        "plot": out / "psnr_vs_time.png",
        "grid": out / "grid.png",
    }
    write_text_atomic(paths["csv"], csv_table(results))
    write_text_atomic(paths["md"], markdown_report(cfg, results))
    plot_psnr_vs_time(out, results, paths["plot"])
    plot_grid(out, results, paths["grid"], cfg.grid_view)
    return paths


def markdown_table(results: list[dict]) -> str:
    """The results as a Markdown table, the paper's synthetic PSNR beside ours."""
    head = (
        "| row | paper PSNR | PSNR | SSIM | steps | s/step | params | MFLOPs/ray | samples "
        "| L (pos/dir) | view dep. | train images |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|\n"
    )
    lines = []
    for r in results:
        paper = "—" if r["paper_psnr"] is None else f"{r['paper_psnr']:.2f}"
        samples = f"{r['n_coarse']}+{r['n_fine']}"
        lines.append(
            f"| {r['row']} | {paper} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['steps']} "
            f"| {r['sec_per_step']:.3f} | {r['params']:,} | {r['flops_per_ray'] / 1e6:.2f} "
            f"| {samples} | {r['pos_freqs']}/{r['dir_freqs']} "
            f"| {'yes' if r['use_viewdirs'] else 'no'} "
            f"| {r['n_train_images']} |"
        )
    return head + "\n".join(lines) + "\n"


def markdown_report(cfg: AblationConfig, results: list[dict]) -> str:
    """OUTPUT/ablation.md: settings, the table, how to read it."""
    base = cfg.base_nerf()
    budget = f"{cfg.budget_minutes:g} min of training per row" + (
        f" (or {cfg.max_steps} steps, whichever comes first)" if cfg.max_steps else ""
    )
    res = results[0]["eval_resolution"] if results else ["?", "?"]
    nviews = len(results[0]["views"]) if results else 0
    return (
        "# NeRF ablation\n\n"
        f"Data: `{cfg.data}` (downscale {cfg.downscale}); {budget}; method `nerf`.\n\n"
        f"Base configuration (the paper's in brackets): MLP width {base.width} (256), depth "
        f"{base.depth} (8), skip after layer {base.skip} (4), "
        f"samples {base.n_coarse}+{base.n_fine} "
        f"(64+128; every sample count scaled by {cfg.sample_scale:g}), L = {base.pos_freqs}/"
        f"{base.dir_freqs} (10/4), {cfg.batch_rays} rays per step (4096), lr {cfg.lr:g} -> "
        f"{cfg.lr / 20:g} over the budget (5e-4 -> 5e-5 over 500k steps), centre-crop rays for "
        f"the first {cfg.precrop_steps} steps (500), density activation "
        f"{cfg.density_activation} (relu), seed {cfg.seed}.\n\n"
        f"Test metrics: mean over {nviews} test view(s) at {res[0]}x{res[1]}, 8-bit images. "
        "Paper PSNR: mean over the 8 Blender scenes (Table 2), full model trained for 500k steps; "
        "sample-count rows are not in that table.\n\n"
        + markdown_table(results)
        + "\nMFLOPs/ray: forward pass, multiply-add = 2 FLOPs; per sample 2 Σ in·out over the "
        "MLP's linear layers + 9 L for the positional encoding, coarse net on n_coarse samples, "
        "fine net on n_coarse + n_fine; + 9 L_dir per net for the direction. Params: coarse + fine "
        "networks. s/step: training wall-clock time / steps on this machine (shared machines make "
        "it noisy, and with it the steps reached in the budget).\n\n"
        "![PSNR versus training time](psnr_vs_time.png)\n\n"
        "![One test view by every row](grid.png)\n"
    )


def _metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    recs = []
    for line in path.read_text().splitlines():
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return recs


def _smooth(y: np.ndarray, n: int = 10) -> np.ndarray:
    if len(y) < 3:
        return y
    n = min(n, len(y))
    k = np.ones(n) / n
    return np.convolve(np.pad(y, (n - 1, 0), mode="edge"), k, mode="valid")


def _pyplot():  # noqa: ANN202 (the matplotlib.pyplot module)
    """matplotlib.pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig: object, path: Path) -> Path:
    """Lay out, write `fig` to `path` atomically (format from the suffix) and close it."""
    fig.tight_layout()  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp)  # type: ignore[attr-defined]
    _pyplot().close(fig)
    return path


def plot_psnr_vs_time(output: Path, results: list[dict], path: Path) -> Path:
    """One curve per row: PSNR of the first val view rendered during training (or, without
    such renders, smoothed training-batch PSNR) against training seconds; final test PSNR as a
    marker at the end of each curve."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    cmap = plt.get_cmap("tab10")
    kinds = set()
    for i, r in enumerate(results):
        recs = _metrics(Path(output) / r["row"])
        val = [(m["time"], m["val_psnr"]) for m in recs if "val_psnr" in m]
        colour = cmap(i % 10)
        style = "-" if i < 10 else "-."
        if len(val) >= 2:
            t, y = np.array(val).T
            kinds.add("val")
            ax.plot(t, y, style, color=colour, lw=1.4, label=r["row"])
        else:
            tr = [(m["time"], m["psnr"]) for m in recs if "psnr" in m]
            if tr:
                t, y = np.array(tr).T
                kinds.add("train")
                ax.plot(t, _smooth(y), ":", color=colour, lw=1.4, label=r["row"])
        ax.plot([r["train_seconds"]], [r["psnr"]], "o", color=colour, ms=6, mec="k", mew=0.5)
    what = {
        frozenset({"val"}): "PSNR of the first val view during training",
        frozenset({"train"}): "training-batch PSNR (smoothed, dotted)",
    }.get(frozenset(kinds), "val-view PSNR / smoothed training PSNR (dotted)")
    ax.set_title(f"{what}; dots: final test PSNR", fontsize=10)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    if results:
        ax.legend(fontsize=8, ncol=2, loc="lower right")
    return _save_figure(fig, path)


def plot_grid(output: Path, results: list[dict], path: Path, view: int = 0) -> Path:
    """The same test view rendered by every row (and the truth), labelled with row and PSNR."""
    import imageio.v3 as iio

    plt = _pyplot()
    output = Path(output)
    panels = []
    truth = output / "grid_truth.png"
    for r in results:
        names = [v["name"] for v in r["views"]]
        if not names:
            continue
        name = names[min(view, len(names) - 1)]
        img_path = output / r["row"] / "eval_test" / f"{name}.png"
        if img_path.is_file():
            p = next(v["psnr"] for v in r["views"] if v["name"] == name)
            panels.append((f"{r['row']}\n{p:.2f} dB", iio.imread(img_path)))
    if truth.is_file():
        panels.insert(0, ("ground truth\n", iio.imread(truth)))
    n = max(len(panels), 1)
    cols = min(n, 6)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 2.05 * rows), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, img) in zip(axes.flat, panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(label, fontsize=8)
    return _save_figure(fig, path)
