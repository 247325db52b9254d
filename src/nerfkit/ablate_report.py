"""The report of `nerfkit ablate` (the study is `nerfkit.ablate`): statistics, tables and plots.

From the run results (the `ablation_row.json` dicts of `nerfkit.ablate.run_row`, one per row and
seed) and the run folders in OUTPUT, `write_report` writes, each atomically:

- `ablation.csv`: one line per row (TABLE_COLUMNS): means over seeds, 95 % t-intervals, the
  paired difference to `complete` and whether it is distinguishable from 0;
- `ablation.md`: the settings, the table beside the paper's PSNR, how to read it;
- `psnr_vs_steps.png` (`psnr_vs_time.png` with --equal-time): PSNR of the first val view during
  training, one curve per row (mean over seeds) with the band between the seeds' lowest and
  highest value;
- `grid.png`: one test view rendered by every row (first seed) beside the truth, and beneath
  each render its error image |render - truth| (`error_image`);
- `cost.png`: quality against cost along the study's series (COST_SERIES: L = 5 / 10 / 15 and
  the sample counts; the grid resolution), mean and 95 % interval, seconds per step beside.

Statistics (`mean_ci`, `paired_difference`): the mean over seeds with the 95 % Student-t
interval mean +- t(0.975, n-1) s / sqrt(n) (s: sample standard deviation); none from one seed.
A row is compared to `complete` by the paired differences d_k = row_k - complete_k over the seeds
k both ran (same seed: same initialisation stream and ray batches); "not distinguishable" when
the t-interval of the mean difference contains 0.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from nerfkit.atomic import atomic_path, write_text_atomic

if TYPE_CHECKING:
    from nerfkit.ablate import AblationConfig

# two-sided 95 % quantiles t(0.975, df) of Student's t for df = 1..30 (`t_quantile`)
T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
METRICS = ("psnr", "ssim")
BASELINE = "complete"

# the study's cost-versus-quality series: (title, x label, [(row, x value)])
COST_SERIES: dict[str, list[tuple[str, str, list[tuple[str, float]]]]] = {
    "nerf": [
        ("positional encoding", "L (octaves of γ(x))", [("no_pe", 0), ("L5", 5), ("complete", 10),
                                                         ("L15", 15)]),
        ("samples per ray", "coarse + fine samples (paper scale)",
         [("samples_32_64", 96), ("complete", 192), ("samples_64_128", 192),
          ("samples_128_256", 384)]),
    ],
    "grid": [
        ("grid resolution", "voxels per side", [("res_64", 64), ("res_96", 96), ("complete", -1),
                                                ("res_160", 160)]),
    ],
}  # fmt: skip
"""x = -1: the row's own resolution (the base --grid-resolution)."""


# -- statistics ---------------------------------------------------------------------------------
def t_quantile(df: int) -> float:
    """t(0.975, df): the two-sided 95 % quantile of Student's t (df >= 1).

    The table T975 up to 30; beyond, the Cornish-Fisher expansion about the normal quantile
    z = 1.959964: z + (z^3 + z) / (4 df) + (5 z^5 + 16 z^3 + 3 z) / (96 df^2) (error < 1e-4).
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: list[float]) -> tuple[float, float | None]:
    """Mean of `values` and the half-width of its 95 % t-interval (None for fewer than 2)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), None
    return float(x.mean()), t_quantile(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))


def paired_difference(row: dict[int, float], base: dict[int, float]) -> dict:
    """Mean difference row - base over the seeds both have, its 95 % t-interval half-width,
    the number of pairs and `distinguishable` (the interval excludes 0; None: < 2 pairs)."""
    seeds = sorted(set(row) & set(base))
    mean, ci = mean_ci([row[s] - base[s] for s in seeds])
    dist = None if ci is None else bool(abs(mean) > ci)
    return {"mean": mean, "ci": ci, "pairs": len(seeds), "distinguishable": dist}


def _by_seed(runs: list[dict], key: str) -> dict[int, float]:
    """{seed: value} of a metric ("psnr", "ssim" or "region:<name>") over a row's runs."""
    out = {}
    for r in runs:
        v = r["regions"].get(key[7:]) if key.startswith("region:") else r[key]
        if v is not None:
            out[r["seed"]] = float(v)
    return out


def aggregate(results: list[dict]) -> list[dict]:
    """One summary per row (in the order of first appearance) from per-(row, seed) results.

    Each holds the row's facts (from its first run), `seeds`, and for every metric key ("psnr",
    "ssim", "region:<name>") {"mean", "ci"} under `stats` and, against BASELINE's runs,
    `paired_difference` under `diff` (absent for the baseline itself or without it).
    """
    rows: dict[str, list[dict]] = {}
    for r in results:
        rows.setdefault(r["row"], []).append(r)
    regions = sorted({k for r in results for k in r.get("regions", {})})
    keys = [*METRICS, *(f"region:{k}" for k in regions)]
    base = rows.get(BASELINE)
    out = []
    for name, runs in rows.items():
        s = dict(runs[0])
        s["seeds"] = sorted(r["seed"] for r in runs)
        s["stats"], s["diff"] = {}, {}
        for key in keys:
            vals = _by_seed(runs, key)
            mean, ci = mean_ci(list(vals.values()))
            s["stats"][key] = {"mean": mean, "ci": ci}
            if base is not None and name != BASELINE:
                s["diff"][key] = paired_difference(vals, _by_seed(base, key))
        for k in ("steps", "sec_per_step", "train_seconds"):
            s[k] = float(np.mean([r[k] for r in runs]))
        out.append(s)
    return out


# -- tables -------------------------------------------------------------------------------------
TABLE_COLUMNS = (
    "row", "paper_psnr", "seeds", "psnr", "psnr_ci95", "psnr_diff", "psnr_diff_ci95",
    "psnr_distinguishable", "ssim", "ssim_ci95", "steps", "sec_per_step", "params",
    "mflops_per_ray",
)  # fmt: skip


def _r(x: float | None, n: int) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, n)


def _csv_row(s: dict, regions: list[str]) -> dict:
    st, df = s["stats"], s["diff"]
    d = {
        "row": s["row"],
        "paper_psnr": s.get("paper_psnr"),
        "seeds": len(s["seeds"]),
        "steps": round(s["steps"], 1),
        "sec_per_step": _r(s["sec_per_step"], 4),
        "params": s.get("params"),
        "mflops_per_ray": _r(s["flops_per_ray"] / 1e6, 4) if s.get("flops_per_ray") else None,
    }
    for key in ("psnr", "ssim", *(f"region:{k}" for k in regions)):
        col = key.replace("region:", "psnr_")
        nd = 4 if key == "ssim" else 3
        d[col], d[f"{col}_ci95"] = _r(st[key]["mean"], nd), _r(st[key]["ci"], nd)
        if key != "ssim":
            diff = df.get(key, {})
            d[f"{col}_diff"] = _r(diff.get("mean"), nd)
            d[f"{col}_diff_ci95"] = _r(diff.get("ci"), nd)
            d[f"{col}_distinguishable"] = diff.get("distinguishable")
    return d


def csv_table(summary: list[dict]) -> str:
    """The row summaries (`aggregate`) as CSV: TABLE_COLUMNS, then per region its PSNR, interval,
    difference to complete, its interval and whether it is distinguishable."""
    regions = _regions(summary)
    extra = [
        f"psnr_{k}{suffix}"
        for k in regions
        for suffix in ("", "_ci95", "_diff", "_diff_ci95", "_distinguishable")
    ]
    f = io.StringIO(newline="")
    w = csv.DictWriter(f, fieldnames=[*TABLE_COLUMNS, *extra])
    w.writeheader()
    for s in summary:
        w.writerow(_csv_row(s, regions))
    return f.getvalue()


def _regions(summary: list[dict]) -> list[str]:
    return sorted({k[7:] for s in summary for k in s["stats"] if k.startswith("region:")})


def _pm(stat: dict, nd: int = 2) -> str:
    """'mean ± ci' (or just the mean without an interval)."""
    if stat["mean"] is None or math.isnan(stat["mean"]):
        return "—"
    ci = "" if stat["ci"] is None else f" ± {stat['ci']:.{nd}f}"
    return f"{stat['mean']:.{nd}f}{ci}"


def _diff_cell(diff: dict | None, nd: int = 2) -> str:
    """A paired difference: '+1.23 ± 0.40' bold when distinguishable, '≈ ... (n.d.)' when the
    interval contains 0, '... (1 seed)' without an interval, '—' for the baseline."""
    if not diff or diff["pairs"] == 0:
        return "—"
    m = f"{diff['mean']:+.{nd}f}"
    if diff["ci"] is None:
        return f"{m} ({diff['pairs']} seed)"
    cell = f"{m} ± {diff['ci']:.{nd}f}"
    return f"**{cell}**" if diff["distinguishable"] else f"{cell} (n.d.)"


def markdown_table(summary: list[dict]) -> str:
    """The summaries as a Markdown table: PSNR (mean ± 95 % CI over seeds), its paired
    difference to complete, SSIM and the cost columns."""
    grid = bool(summary) and summary[0].get("study") == "grid"
    head = ["row", "paper PSNR", "seeds", "PSNR", "Δ vs complete", "SSIM", "steps", "s/step",
            "params"]  # fmt: skip
    head += ["voxels", "occupancy", "growth", "view MLP"] if grid else ["MFLOPs/ray", "samples",
                                                                        "L (pos/dir)", "view dep.",
                                                                        "train images"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    yes = {True: "yes", False: "no"}
    for s in summary:
        paper = "—" if s.get("paper_psnr") is None else f"{s['paper_psnr']:.2f}"
        cells = [s["row"], paper, str(len(s["seeds"])), _pm(s["stats"]["psnr"]),
                 _diff_cell(s["diff"].get("psnr")), _pm(s["stats"]["ssim"], 3),
                 f"{s['steps']:.0f}", f"{s['sec_per_step']:.3f}", f"{s['params']:,}"]  # fmt: skip
        if grid:
            side = round(s["voxels"] ** (1 / 3))
            cells += [f"{side}³", yes[s["occupancy"]], yes[s["growth"]], yes[s["view_mlp"]]]
        else:
            cells += [
                f"{s['flops_per_ray'] / 1e6:.2f}",
                f"{s['n_coarse']}+{s['n_fine']}",
                f"{s['pos_freqs']}/{s['dir_freqs']}",
                yes[s["use_viewdirs"]],
                str(s["n_train_images"]),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def region_table(summary: list[dict]) -> str:
    """Per-region PSNR (mean ± 95 % CI) and its paired difference to complete, one column pair
    per region; empty when no run was scored by region."""
    regions = _regions(summary)
    if not regions:
        return ""
    head = ["row"] + [f"{c} {k}" for k in regions for c in ("PSNR", "Δ")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        cells = [s["row"]]
        for k in regions:
            cells += [_pm(s["stats"][f"region:{k}"]), _diff_cell(s["diff"].get(f"region:{k}"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_report(cfg: AblationConfig, summary: list[dict]) -> str:
    """OUTPUT/ablation.md: settings, the table, how to read it."""
    if cfg.equal_time:
        budget = f"{cfg.budget_minutes:g} min of training per run (equal wall-clock time)" + (
            f", or {cfg.max_steps} steps, whichever comes first" if cfg.max_steps else ""
        )
    else:
        budget = f"{cfg.steps()} steps per run (equal steps)"
    res = summary[0]["eval_resolution"] if summary else ["?", "?"]
    nviews = len(summary[0]["views"]) if summary else 0
    if cfg.study == "nerf":
        base = cfg.base_nerf()
        setting = (
            f"Base configuration (the paper's in brackets): MLP width {base.width} (256), depth "
            f"{base.depth} (8), skip after layer {base.skip} (4), samples {base.n_coarse}+"
            f"{base.n_fine} (64+128; every sample count scaled by {cfg.sample_scale:g}), L = "
            f"{base.pos_freqs}/{base.dir_freqs} (10/4), {cfg.batch_rays} rays per step (4096), "
            f"lr {cfg.lr:g} -> {cfg.lr / 20:g} over the run (5e-4 -> 5e-5 over 500k steps), "
            f"centre-crop rays for the first {cfg.precrop_steps} steps (500), density activation "
            f"{cfg.density_activation} (relu).\n\n"
            "Paper PSNR: mean over the 8 Blender scenes (Table 2), full model trained for 500k "
            "steps; sample-count rows are not in that table.\n\n"
        )
    else:
        setting = (
            f"Base configuration: the `grid` method's defaults with {cfg.grid_resolution}³ voxels "
            "at the end of growth (its own learning rates and rays per step). The rows switch "
            "off occupancy skipping (`occ_start` never reached), coarse-to-fine growth (no "
            "`upsample_steps`: the final resolution from step 0), the view-dependent colour MLP "
            "(`mlp_start` never reached: colour is sigmoid of the first 3 grid features, the "
            "same from every direction), or change the final resolution.\n\n"
        )
    seeds = ", ".join(str(s) for s in cfg.seed_values())
    curve = "psnr_vs_time.png" if cfg.equal_time else "psnr_vs_steps.png"
    return (
        f"# Ablation ({cfg.study})\n\n"
        f"Data: `{cfg.data}` (downscale {cfg.downscale}); {budget}; method `{cfg.method}`; "
        f"seeds {seeds} per row.\n\n"
        + setting
        + f"Test metrics: mean over {nviews} test view(s) at {res[0]}x{res[1]}, 8-bit images; "
        "per row the mean over its seeds ± the half-width of the 95 % Student-t interval. "
        "Δ vs complete: the mean of the paired differences (same seed) to the complete row ± its "
        "95 % t-interval; **bold** where the interval excludes 0, (n.d.) where it contains 0: "
        "not distinguishable with these seeds.\n\n"
        + markdown_table(summary)
        + (
            "\nBy region (study scenes): PSNR over the pixels whose first hit is reflective "
            "(mirror, glossy, glass), textured or thin, pooled over the test views; Δ as "
            "above.\n\n" + region_table(summary)
            if _regions(summary)
            else ""
        )
        + (
            "\nMFLOPs/ray: forward pass, multiply-add = 2 FLOPs; per sample 2 Σ in·out over "
            "the MLP's linear layers + 9 L for the positional encoding, coarse net on n_coarse "
            "samples, fine net on n_coarse + n_fine; + 9 L_dir per net for the direction."
            if cfg.study == "nerf"
            else ""
        )
        + " Params: of the trained model. s/step: training wall-clock time / steps on this "
        "machine (mean over seeds).\n\n"
        f"![PSNR during training, mean and spread over seeds]({curve})\n\n"
        "![One test view by every row, and |render - truth| beneath](grid.png)\n\n"
        "![Quality against cost](cost.png)\n"
    )


def write_report(cfg: AblationConfig, results: list[dict]) -> dict[str, Path]:
    """ablation.csv, ablation.md, the PSNR curves, grid.png and cost.png in OUTPUT."""
    out = Path(cfg.output)
    by = "time" if cfg.equal_time else "step"
    paths = {
        "csv": out / "ablation.csv",
        "md": out / "ablation.md",
        "plot": out / f"psnr_vs_{by}{'' if by == 'time' else 's'}.png",
        "grid": out / "grid.png",
        "cost": out / "cost.png",
    }
    summary = aggregate(results)
    write_text_atomic(paths["csv"], csv_table(summary))
    write_text_atomic(paths["md"], markdown_report(cfg, summary))
    plot_psnr_curves(out, results, paths["plot"], by)
    plot_grid(out, summary, paths["grid"], cfg.grid_view)
    plot_cost(summary, paths["cost"], cfg.study)
    return paths


# -- figures ------------------------------------------------------------------------------------
def error_image(pred: torch.Tensor, true: torch.Tensor, vmax: float = 0.5) -> np.ndarray:
    """|pred - true| as a heat map: the mean over channels of 8-bit-quantised images [H, W, 3],
    0 -> black (0, 0, 4), >= vmax -> pale yellow through the `inferno` colour map.
    Returns uint8 [H, W, 3]."""
    from matplotlib import colormaps

    from nerfkit.metrics import quantize

    err = (quantize(pred) - quantize(true)).abs().mean(-1).cpu().numpy() / vmax
    rgb = colormaps["inferno"](np.clip(err, 0.0, 1.0))[..., :3]
    return np.round(rgb * 255).astype(np.uint8)


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


def run_curve(run_dir: Path, by: str = "step") -> tuple[np.ndarray, np.ndarray, str] | None:
    """One run's PSNR curve: (x, PSNR, kind) with x the step or the training seconds; kind "val"
    (the first val view, rendered every --val-every steps) or, without such renders, "train"
    (smoothed training-batch PSNR). None without metrics."""
    recs = _metrics(run_dir)
    val = [(m[by], m["val_psnr"]) for m in recs if "val_psnr" in m]
    if len(val) >= 2:
        x, y = np.array(val).T
        return x, y, "val"
    tr = [(m[by], m["psnr"]) for m in recs if "psnr" in m]
    if not tr:
        return None
    x, y = np.array(tr).T
    return x, _smooth(y), "train"


def spread(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Mean, lowest and highest of several curves (x, y) on the x values of the first, over the
    common x range (linear interpolation). Returns x, mean, low, high [K]."""
    lo = max(c[0][0] for c in curves)
    hi = min(c[0][-1] for c in curves)
    x = curves[0][0]
    x = x[(x >= lo) & (x <= hi)]
    ys = np.stack([np.interp(x, cx, cy) for cx, cy in curves])
    return x, ys.mean(0), ys.min(0), ys.max(0)


def plot_psnr_curves(output: Path, results: list[dict], path: Path, by: str = "step") -> Path:
    """One curve per row: the mean over its seeds of PSNR during training against steps (or
    training seconds), shaded between the seeds' lowest and highest; final test PSNR (mean over
    seeds) as a dot at the end."""
    from nerfkit.ablate import run_name

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    cmap = plt.get_cmap("tab10")
    kinds = set()
    rows: dict[str, list[dict]] = {}
    for r in results:
        rows.setdefault(r["row"], []).append(r)
    for i, (name, runs) in enumerate(rows.items()):
        colour, style = cmap(i % 10), "-" if i < 10 else "-."
        curves = []
        for r in runs:
            c = run_curve(Path(output) / run_name(name, r["seed"]), by)
            if c is not None and len(c[0]):
                curves.append(c[:2])
                kinds.add(c[2])
        if curves:
            x, mean, low, high = spread(curves)
            ax.plot(x, mean, style, color=colour, lw=1.4, label=f"{name} ({len(curves)})")
            if len(curves) > 1:
                ax.fill_between(x, low, high, color=colour, alpha=0.18, lw=0)
        end = np.mean([r["steps" if by == "step" else "train_seconds"] for r in runs])
        final = np.mean([r["psnr"] for r in runs])
        ax.plot([end], [final], "o", color=colour, ms=6, mec="k", mew=0.5)
    what = {
        frozenset({"val"}): "PSNR of the first val view during training",
        frozenset({"train"}): "training-batch PSNR (smoothed)",
    }.get(frozenset(kinds), "val-view PSNR / smoothed training PSNR")
    ax.set_title(f"{what}: mean, band = seeds' range; dots: final test PSNR", fontsize=9)
    ax.set_xlabel("training step" if by == "step" else "training time (s)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    if rows:
        ax.legend(fontsize=8, ncol=2, loc="lower right", title="row (seeds)", title_fontsize=8)
    return _save_figure(fig, path)


def plot_psnr_vs_time(output: Path, results: list[dict], path: Path) -> Path:
    """`plot_psnr_curves` against training seconds."""
    return plot_psnr_curves(output, results, path, by="time")


def plot_grid(output: Path, summary: list[dict], path: Path, view: int = 0) -> Path:
    """The same test view rendered by every row (its first seed) and the truth, labelled with
    row and PSNR, each render above its error image |render - truth| (`error_image`)."""
    import imageio.v3 as iio

    from nerfkit.ablate import run_name

    plt = _pyplot()
    output = Path(output)
    panels = []  # (label, render, error)
    for s in summary:
        names = [v["name"] for v in s["views"]]
        if not names:
            continue
        name = names[min(view, len(names) - 1)]
        folder = output / run_name(s["row"], s["seeds"][0]) / "eval_test"
        if (folder / f"{name}.png").is_file():
            p = next(v["psnr"] for v in s["views"] if v["name"] == name)
            err = folder / f"{name}_error.png"
            panels.append(
                (
                    f"{s['row']}\n{p:.2f} dB",
                    iio.imread(folder / f"{name}.png"),
                    iio.imread(err) if err.is_file() else None,
                )
            )
    truth = output / "grid_truth.png"
    if truth.is_file():
        panels.insert(0, ("ground truth\n", iio.imread(truth), None))
    n = max(len(panels), 1)
    cols = min(n, 6)
    blocks = math.ceil(n / cols)
    fig, axes = plt.subplots(
        2 * blocks, cols, figsize=(1.8 * cols, 3.9 * blocks), dpi=100, squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for i, (label, img, err) in enumerate(panels):
        top = axes[2 * (i // cols), i % cols]
        top.imshow(img, interpolation="nearest")
        top.set_title(label, fontsize=8)
        bottom = axes[2 * (i // cols) + 1, i % cols]
        if err is not None:
            bottom.imshow(err, interpolation="nearest")
            bottom.set_title("|render − truth|", fontsize=7)
    return _save_figure(fig, path)


def plot_cost(summary: list[dict], path: Path, study: str = "nerf") -> Path:
    """Quality against cost along each of the study's COST_SERIES present in `summary`: test
    PSNR (mean, 95 % interval as error bars) against the series' x, and seconds per step on a
    second axis (dashed)."""
    plt = _pyplot()
    by_row = {s["row"]: s for s in summary}
    series = [
        (title, xlabel, [(by_row[r], x) for r, x in pts if r in by_row])
        for title, xlabel, pts in COST_SERIES.get(study, [])
    ]
    series = [s for s in series if len(s[2]) >= 2] or [("no series run", "", [])]
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.4), squeeze=False)
    for ax, (title, xlabel, pts) in zip(axes[0], series):
        ax.set_title(title, fontsize=10)
        if not pts:
            continue
        pts = sorted(
            (((round(s["voxels"] ** (1 / 3)) if x == -1 else x), s) for s, x in pts),
            key=lambda p: p[0],
        )
        xs = [x for x, _ in pts]
        mean = [s["stats"]["psnr"]["mean"] for _, s in pts]
        ci = [s["stats"]["psnr"]["ci"] or 0.0 for _, s in pts]
        ax.errorbar(xs, mean, yerr=ci, fmt="o-", capsize=3, color="C0", label="test PSNR")
        for x, s in pts:
            ax.annotate(s["row"], (x, s["stats"]["psnr"]["mean"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test PSNR (dB)", color="C0")
        ax.grid(alpha=0.3)
        twin = ax.twinx()
        twin.plot(xs, [s["sec_per_step"] for _, s in pts], "s--", color="C3", ms=4)
        twin.set_ylabel("s / step", color="C3")
    return _save_figure(fig, path)
