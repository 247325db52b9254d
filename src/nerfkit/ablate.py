"""`nerfkit ablate`: the NeRF paper's ablation study (Mildenhall et al. 2020, Table 2) as one sweep.

Every row trains the `nerf` method under the same wall-clock budget into its own ordinary run
folder `OUTPUT/<row>/` (so `nerfkit eval / render / inspect` work on it), evaluates it on the
test split and writes `OUTPUT/<row>/ablation_row.json`. When all selected rows are done the sweep
writes `OUTPUT/ablation.md`, `OUTPUT/ablation.csv`, `OUTPUT/psnr_vs_time.png` and
`OUTPUT/grid.png` from every row result present in OUTPUT (`nerfkit.ablate_report`). This module
is the study: the rows, the sweep's config, training and resuming rows, their evaluation.

The paper's model takes ~10 s per step on a 2-core CPU, so the rows are built from a *base*
configuration that can be shrunk (width, depth, rays per step, and a scale on every sample count);
each ablation changes only what the paper's row changes:

========================  ==========================================================
row                       change from the base configuration
========================  ==========================================================
complete                  none (positional encoding, view dependence, coarse + fine)
no_pe                     pos_freqs = dir_freqs = 0 (raw coordinates)
no_viewdirs               use_viewdirs = False (colour from position only)
no_hierarchy              coarse only with the same total samples: n_coarse = (64+128)s
L5 / L15                  pos_freqs = 5 / 15
images_25 / images_50     25 / 50 training images (evenly spaced over the train split)
samples_32_64 ...         n_coarse + n_fine = (32+64)s, (64+128)s, (128+256)s
========================  ==========================================================

(s = `sample_scale`). samples_64_128 has the same configuration as complete; its separate run
shows how much two identical rows differ under a wall-clock budget (timing noise). Two base
settings differ from the paper by default, for every row alike: softplus density (ReLU often
collapses to an empty scene in short runs of small models) and a 100-step centre-crop warm-up.

Image subsets: `k` images at indices round(linspace(0, N-1, k)) of the train split (evenly
spaced, deterministic; no seed needed). With fewer than k train images the row uses them all and
says so. The row's config.json names the full dataset (the views used are listed in its
ablation_row.json), so resume such a row through `nerfkit ablate`, not `nerfkit train --resume`.

Resuming: a row is done when its `ablation_row.json` exists. A row folder with a checkpoint but no
result is continued with the Trainer's resume (the checkpoint holds the training time spent, so the
budget is honoured; metrics logged after that checkpoint are dropped). A row folder without a
checkpoint holds nothing worth keeping and is restarted from scratch. The sweep's settings are
saved in `OUTPUT/ablation_config.json`; rerunning into the same OUTPUT with other settings is an
error (results would not be comparable).

FLOPs per ray (`flops_per_ray`): multiply-adds count 2 FLOPs. Per sample, an MLP costs
2 * sum(in * out) over its linear layers (biases and activations ignored); the positional
encoding of a point costs 9 L (3 L multiplies for the frequencies, 3 L sines, 3 L cosines, each
counted as one FLOP). The coarse network runs on n_coarse samples, the fine network on the
n_coarse + n_fine union; the viewing direction is encoded once per ray per network (9 L_dir).
Sampling, inverse-CDF and compositing (a few FLOPs per sample) are left out.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from nerfkit.ablate_report import write_report
from nerfkit.atomic import save_json_atomic, write_text_atomic
from nerfkit.config import TrainConfig, to_dict
from nerfkit.data.scene import Scene, Split
from nerfkit.errors import NerfkitError
from nerfkit.methods.nerf import NeRFConfig, NeRFMLP
from nerfkit.render.encoding import encoded_dim

RESULT_FILE = "ablation_row.json"
SWEEP_CONFIG_FILE = "ablation_config.json"


@dataclass(frozen=True)
class Row:
    """One ablation row: how it changes the base NeRF config (and the training images)."""

    name: str
    label: str
    paper_psnr: float | None
    """Mean PSNR on the synthetic scenes in the paper's Table 2 (None: not in the table)."""
    change: Callable[[NeRFConfig, float], NeRFConfig]
    """(base config, sample scale) -> this row's config."""
    n_images: int | None = None
    """Train on this many images (evenly spaced subset); None: all."""


def _samples(coarse: int, fine: int) -> Callable[[NeRFConfig, float], NeRFConfig]:
    def change(c: NeRFConfig, s: float) -> NeRFConfig:
        return replace(c, n_coarse=_scaled(coarse, s), n_fine=_scaled(fine, s))

    return change


def _scaled(n: int, s: float) -> int:
    return max(2, int(round(n * s)))


def _same(c: NeRFConfig, s: float) -> NeRFConfig:
    return c


def _no_pe(c: NeRFConfig, s: float) -> NeRFConfig:
    return replace(c, pos_freqs=0, dir_freqs=0)


def _no_viewdirs(c: NeRFConfig, s: float) -> NeRFConfig:
    return replace(c, use_viewdirs=False)


ROWS: dict[str, Row] = {
    r.name: r
    for r in (
        Row("complete", "Complete model", 31.01, _same),
        Row("no_pe", "No positional encoding", 28.77, _no_pe),
        Row("no_viewdirs", "No view dependence", 27.66, _no_viewdirs),
        Row(
            "no_hierarchy",
            "No hierarchical sampling",
            30.06,
            lambda c, s: replace(c, n_coarse=_scaled(64, s) + _scaled(128, s), n_fine=0),
        ),
        Row("L5", "L = 5", 30.59, lambda c, s: replace(c, pos_freqs=5)),
        Row("L15", "L = 15", 30.81, lambda c, s: replace(c, pos_freqs=15)),
        Row("images_25", "25 images", 27.78, _same, n_images=25),
        Row("images_50", "50 images", 29.79, _same, n_images=50),
        Row("samples_32_64", "32 + 64 samples", None, _samples(32, 64)),
        Row("samples_64_128", "64 + 128 samples", None, _samples(64, 128)),
        Row("samples_128_256", "128 + 256 samples", None, _samples(128, 256)),
    )
}  # fmt: skip
ROW_NAMES: tuple[str, ...] = tuple(ROWS)

# settings that make results comparable: a rerun into the same OUTPUT must keep them
COMPARED_SETTINGS: tuple[str, ...] = (
    "data", "budget_minutes", "downscale", "width", "depth", "skip", "sample_scale", "pos_freqs",
    "dir_freqs", "batch_rays", "lr", "max_steps", "max_test_views", "eval_downscale", "val_every",
    "seed", "precrop_steps", "density_activation",
)  # fmt: skip


@dataclass
class AblationConfig:
    """Run the NeRF paper's ablation rows under one equal wall-clock budget each.

    Each row trains into OUTPUT/<row>/ (a normal run folder), is evaluated on the test split and
    the sweep writes ablation.md, ablation.csv, psnr_vs_time.png and grid.png into OUTPUT.
    A killed sweep resumes with the rows not yet done when run again with the same flags.
    """

    data: Path
    """Dataset folder (any format `nerfkit train` reads)."""
    budget_minutes: float = 2.0
    """Training time per row (loading, validation and evaluation excluded)."""
    output: Path = Path("runs/ablation")
    """Sweep folder: one run folder per row plus the tables and plots."""
    rows: tuple[str, ...] = ROW_NAMES
    """Rows to run (default: all), e.g. --rows complete no_pe."""
    downscale: int = 1
    """Divide the dataset's image size and focal length by this."""
    width: int = 64
    """Base MLP width (paper: 256)."""
    depth: int = 4
    """Base MLP depth (paper: 8)."""
    skip: int | None = None
    """Layer after which the input is concatenated again (default: depth // 2; paper: 4)."""
    sample_scale: float = 0.25
    """Multiplies every sample count of every row (paper: 1; 0.25 makes complete 16 + 32)."""
    pos_freqs: int = 10
    """Base L for positions (paper: 10; the L rows replace it)."""
    dir_freqs: int = 4
    """Base L for directions (paper: 4)."""
    density_activation: Literal["relu", "softplus"] = "softplus"
    """Density activation of every row (paper: relu). With ReLU, small models on short budgets
    often collapse to an empty scene (all densities negative, zero gradient) in the first ~100
    steps; softplus (as mip-NeRF) keeps a gradient."""
    batch_rays: int = 512
    """Rays per step (paper: 4096)."""
    lr: float = 1e-3
    """Initial learning rate, decayed exponentially to lr / 20 over the budget (paper: 5e-4)."""
    max_steps: int | None = None
    """Also stop each row after this many steps (for tests and step-equal comparisons)."""
    max_test_views: int | None = None
    """Evaluate at most this many test views (evenly spaced; default: all)."""
    eval_downscale: int = 1
    """Evaluate (and draw the grid) at the training resolution divided by this."""
    precrop_steps: int = 100
    """Draw rays only from the central half of the images for this many first steps (the
    reference code's remedy, 500 steps on synthetic scenes, against the density collapsing to an
    empty scene early in training; 0 = off)."""
    val_every: int = 100
    """Render the first val view every N steps for the PSNR-versus-time curves (0 = never)."""
    grid_view: int = 0
    """Test view shown in the grid (an index into the evaluated views)."""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None
    """CPU threads for torch (default: torch's choice)."""
    progress: bool = True
    """Show progress bars."""

    def base_nerf(self) -> NeRFConfig:
        """The base NeRF configuration every row modifies."""
        return NeRFConfig(
            width=self.width,
            depth=self.depth,
            skip=self.depth // 2 if self.skip is None else self.skip,
            pos_freqs=self.pos_freqs,
            dir_freqs=self.dir_freqs,
            n_coarse=_scaled(64, self.sample_scale),
            n_fine=_scaled(128, self.sample_scale),
            density_activation=self.density_activation,
        )

    def compared(self) -> dict:
        """The settings that must not change when a sweep is resumed (JSON-friendly)."""
        d = {k: getattr(self, k) for k in COMPARED_SETTINGS}
        d["data"] = str(Path(self.data).resolve())
        return d


# -- model cost ---------------------------------------------------------------------------------
def mlp_flops_per_sample(cfg: NeRFConfig) -> int:
    """2 * sum(in * out) over the linear layers of one NeRF MLP (multiply-add = 2 FLOPs)."""
    net = _mlp(cfg)
    return sum(
        2 * m.in_features * m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)
    )


def _mlp(cfg: NeRFConfig) -> NeRFMLP:
    in_pos = encoded_dim(3, cfg.pos_freqs)
    in_dir = encoded_dim(3, cfg.dir_freqs) if cfg.use_viewdirs else 0
    return NeRFMLP(in_pos, in_dir, cfg.width, cfg.depth, cfg.skip, cfg.use_viewdirs)


def flops_per_ray(cfg: NeRFConfig) -> int:
    """Forward FLOPs per ray of the NeRF model (formula in the module docstring).

    coarse: n_coarse * (mlp + 9 L_pos); fine: (n_coarse + n_fine) * (mlp + 9 L_pos);
    plus 9 L_dir per network pass when colour is view dependent.
    """
    per_sample = mlp_flops_per_sample(cfg) + 9 * cfg.pos_freqs
    samples = cfg.n_coarse + (cfg.n_coarse + cfg.n_fine if cfg.n_fine > 0 else 0)
    passes = 2 if cfg.n_fine > 0 else 1
    return samples * per_sample + (passes * 9 * cfg.dir_freqs if cfg.use_viewdirs else 0)


def param_count(cfg: NeRFConfig) -> int:
    """Trainable parameters of the NeRF model (coarse + fine networks)."""
    one = sum(p.numel() for p in _mlp(cfg).parameters())
    return one * (2 if cfg.n_fine > 0 else 1)


# -- data ---------------------------------------------------------------------------------------
def subset_indices(n: int, k: int) -> list[int]:
    """k evenly spaced indices of range(n): round(linspace(0, n - 1, k)) (all of them if k >= n)."""
    if k >= n:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def subset_split(split: Split, idx: list[int]) -> Split:
    """A Split holding only the views `idx`."""
    t = torch.as_tensor(idx, dtype=torch.long)
    return Split(
        images=split.images[t],
        cameras=split.cameras[t],
        names=[split.names[i] for i in idx],
        depths=None if split.depths is None else split.depths[t],
        times=None if split.times is None else split.times[t],
    )


def scene_with_train_subset(scene: Scene, k: int) -> Scene:
    """The scene with its train split cut to k evenly spaced views."""
    train = scene.split("train")
    splits = dict(scene.splits)
    splits["train"] = subset_split(train, subset_indices(len(train), k))
    return Scene(splits=splits, meta=scene.meta)


# -- one row ------------------------------------------------------------------------------------
def row_train_config(cfg: AblationConfig, row: Row) -> TrainConfig:
    """The TrainConfig of one row (method 'nerf', set explicitly)."""
    nerf = row.change(cfg.base_nerf(), cfg.sample_scale)
    return TrainConfig(
        data=Path(cfg.data),
        output=Path(cfg.output) / row.name,
        method="nerf",
        downscale=cfg.downscale,
        max_steps=cfg.max_steps,
        max_minutes=cfg.budget_minutes,
        batch_rays=cfg.batch_rays,
        lr=cfg.lr,
        lr_final=cfg.lr / 20.0,
        precrop_steps=cfg.precrop_steps,
        precrop_frac=0.5,
        seed=cfg.seed,
        log_every=10,
        val_every=cfg.val_every,
        ckpt_every=200,
        device=cfg.device,
        threads=cfg.threads,
        progress=cfg.progress,
        nerf=nerf,
    )


def _truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metric lines logged after the checkpoint at `step` (they will be logged again)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a half-written last line of a killed run
    write_text_atomic(path, "".join(s + "\n" for s in keep))


def train_row(cfg: AblationConfig, row: Row, scene: Scene) -> dict:
    """Train one row into OUTPUT/<row> (resuming a checkpointed partial run). Returns facts."""
    from nerfkit.run import CHECKPOINT_FILE
    from nerfkit.train import train

    tcfg = row_train_config(cfg, row)
    run_dir = Path(tcfg.output)
    if row.n_images is not None:
        scene = scene_with_train_subset(scene, row.n_images)
    ckpt = run_dir / CHECKPOINT_FILE
    if ckpt.is_file():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        _truncate_metrics(run_dir, int(saved["step"]))
        del saved
        print(f"  resuming the partial run in {run_dir}")
        res = train(replace(tcfg, resume=run_dir), scene)
        steps, elapsed = res.step, res.elapsed
        if math.isnan(res.train_psnr):  # already complete: take the facts from the checkpoint
            saved = torch.load(ckpt, map_location="cpu", weights_only=False)
            steps, elapsed = int(saved["step"]), float(saved["elapsed"])
    else:
        if run_dir.exists():  # killed before its first checkpoint: nothing to keep
            shutil.rmtree(run_dir)
        res = train(tcfg, scene)
        steps, elapsed = res.step, res.elapsed
    return {
        "steps": steps,
        "train_seconds": elapsed,
        "sec_per_step": elapsed / max(steps, 1),
        "train_images": scene.split("train").names,
        "config": to_dict(tcfg),
    }


def eval_indices(n: int, max_views: int | None) -> list[int]:
    """The test views evaluated: all, or `max_views` evenly spaced ones (always including 0)."""
    return list(range(n)) if max_views is None else subset_indices(n, max_views)


def evaluate_row(cfg: AblationConfig, row: Row, scene: Scene) -> dict:
    """Evaluate OUTPUT/<row> on (part of) the test split; PNGs go to OUTPUT/<row>/eval_test/."""
    from nerfkit.data.io import downscale_image
    from nerfkit.media import write_png
    from nerfkit.metrics import image_metrics, summarize
    from nerfkit.run import load_run

    run = load_run(Path(cfg.output) / row.name, cfg.device)
    sp = scene.splits.get("test") or scene.split("val")
    idx = eval_indices(len(sp), cfg.max_test_views)
    f = cfg.eval_downscale
    cams = sp.cameras.scaled(f) if f > 1 else sp.cameras
    meta = run.meta
    out_dir = Path(cfg.output) / row.name / "eval_test"
    views = []
    it = idx
    if cfg.progress:
        from tqdm import tqdm

        it = tqdm(idx, desc=f"  eval {row.name}", unit="view", leave=False)
    for k in it:
        t = None if sp.times is None else float(sp.times[k])
        r = run.method.render_image(cams, k, meta.near, meta.far, ndc=meta.ndc, time=t)
        true = downscale_image(sp.images[k], f)[: cams.height, : cams.width]
        views.append({"name": sp.names[k], **image_metrics(r.rgb, true)})
        write_png(out_dir / f"{sp.names[k]}.png", r.rgb)
        if k == idx[min(cfg.grid_view, len(idx) - 1)]:
            write_png(Path(cfg.output) / "grid_truth.png", true)
    return {
        "psnr": summarize(views)["psnr"],
        "ssim": summarize(views)["ssim"],
        "eval_resolution": [cams.width, cams.height],
        "views": views,
        "step": run.step,
    }


def run_row(cfg: AblationConfig, row: Row, scene: Scene) -> dict:
    """Train and evaluate one row; writes and returns its result."""
    t0 = time.perf_counter()
    facts = train_row(cfg, row, scene)
    ev = evaluate_row(cfg, row, scene)
    nerf = row.change(cfg.base_nerf(), cfg.sample_scale)
    result = {
        "row": row.name,
        "label": row.label,
        "paper_psnr": row.paper_psnr,
        **{k: ev[k] for k in ("psnr", "ssim", "eval_resolution")},
        "steps": facts["steps"],
        "train_seconds": facts["train_seconds"],
        "sec_per_step": facts["sec_per_step"],
        "params": param_count(nerf),
        "flops_per_ray": flops_per_ray(nerf),
        "n_coarse": nerf.n_coarse,
        "n_fine": nerf.n_fine,
        "pos_freqs": nerf.pos_freqs,
        "dir_freqs": nerf.dir_freqs,
        "use_viewdirs": nerf.use_viewdirs,
        "n_train_images": len(facts["train_images"]),
        "train_images": facts["train_images"],
        "views": ev["views"],
        "wall_seconds": time.perf_counter() - t0,
        "sweep": cfg.compared(),
    }
    save_json_atomic(Path(cfg.output) / row.name / RESULT_FILE, result)
    return result


# -- the sweep ----------------------------------------------------------------------------------
def _check_sweep_config(cfg: AblationConfig) -> None:
    out = Path(cfg.output)
    path = out / SWEEP_CONFIG_FILE
    want = cfg.compared()
    if path.is_file():
        have = json.loads(path.read_text())
        diff = sorted(k for k in want if have.get(k) != want[k])
        if diff:
            changes = ", ".join(f"{k}: {have.get(k)!r} -> {want[k]!r}" for k in diff)
            raise NerfkitError(
                f"{out} holds an ablation with other settings ({changes}); rerun with the same "
                "flags to resume it, or choose another --output"
            )
    elif out.exists() and any(out.iterdir()):
        raise NerfkitError(
            f"{out}: folder is not empty and holds no ablation; choose another --output"
        )
    out.mkdir(parents=True, exist_ok=True)
    save_json_atomic(path, want)


def load_results(output: Path) -> list[dict]:
    """Every row result in OUTPUT, in the paper's row order."""
    out = []
    for name in ROW_NAMES:
        p = Path(output) / name / RESULT_FILE
        if p.is_file():
            out.append(json.loads(p.read_text()))
    return out


def warm_up(cfg: AblationConfig, scene: Scene, steps: int = 3) -> None:
    """A few untimed training steps of the complete row's model, written nowhere."""
    from nerfkit.train import Trainer

    tcfg = replace(row_train_config(cfg, ROWS["complete"]), progress=False, max_steps=steps)
    trainer = Trainer(tcfg, scene)
    for _ in range(steps):
        trainer.train_step()


def run_ablation(cfg: AblationConfig) -> list[dict]:
    """Run (or resume) the sweep; returns the results of every row done in OUTPUT."""
    from nerfkit.data import load_scene
    from nerfkit.train import TrainingInterrupted

    unknown = [r for r in cfg.rows if r not in ROWS]
    if unknown:
        raise NerfkitError(
            f"unknown ablation row(s) {', '.join(unknown)}; known: {', '.join(ROW_NAMES)}"
        )
    if cfg.budget_minutes <= 0:
        raise NerfkitError(f"--budget-minutes must be > 0, got {cfg.budget_minutes}")
    for name in ("eval_downscale", "downscale"):
        if getattr(cfg, name) < 1:
            raise NerfkitError(f"--{name.replace('_', '-')} must be >= 1")
    rows = [ROWS[r] for r in dict.fromkeys(cfg.rows)]  # unique, in the order given
    scene = load_scene(cfg.data, downscale=cfg.downscale)
    _check_sweep_config(cfg)
    base = cfg.base_nerf()
    print(
        f"ablation: {len(rows)} row(s), {cfg.budget_minutes:g} min each"
        + (f" or {cfg.max_steps} steps" if cfg.max_steps else "")
        + f"; base NeRF width {base.width}, depth {base.depth}, "
        f"samples {base.n_coarse}+{base.n_fine}, "
        f"L {base.pos_freqs}/{base.dir_freqs}, {cfg.batch_rays} rays/step -> {cfg.output}"
    )
    warm = False
    for i, row in enumerate(rows, 1):
        tag = f"[{i}/{len(rows)}] {row.name}"
        if (Path(cfg.output) / row.name / RESULT_FILE).is_file():
            print(f"{tag}: done already (delete {row.name}/{RESULT_FILE} to rerun)")
            continue
        print(f"{tag}: {row.label}", flush=True)
        if not warm:  # torch's first steps are slow: keep that out of the first row's budget
            warm_up(cfg, scene)
            warm = True
        try:
            r = run_row(cfg, row, scene)
        except TrainingInterrupted:
            raise TrainingInterrupted(
                f"interrupted in row {row.name}; its checkpoint is saved; rerun the same "
                "`nerfkit ablate` command to resume the sweep"
            ) from None
        print(
            f"{tag}: test PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}, {r['steps']} steps, "
            f"{r['sec_per_step']:.3f} s/step",
            flush=True,
        )
    results = load_results(cfg.output)
    write_report(cfg, results)
    return results


__all__ = [
    "ROWS",
    "ROW_NAMES",
    "AblationConfig",
    "Row",
    "flops_per_ray",
    "param_count",
    "run_ablation",
    "subset_indices",
]
