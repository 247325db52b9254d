"""`nerfkit ablate`: ablation studies of the NeRF paper (Table 2) and of the `grid` method.

`--study nerf` (the default) runs the paper's rows with the `nerf` method; `--study grid` runs the
same machinery over the `grid` method's own design (GRID_ROWS: occupancy skipping, coarse-to-fine
growth, the view-dependent colour MLP, the grid resolution). Every (row, seed) pair trains into
its own ordinary run folder `OUTPUT/<row>/seed<k>/` (so `nerfkit eval / render / inspect` work on
it), is evaluated on the test split and writes `ablation_row.json` there. When all selected runs
are done the sweep writes `OUTPUT/ablation.md`, `ablation.csv`, the PSNR-versus-steps (or -time)
plot, `grid.png` (renders and error images) and `cost.png` from every result present in OUTPUT
(`nerfkit.ablate_report`, which also holds the statistics). This module is the study: the rows,
the sweep's config, training and resuming runs, their evaluation.

**Equal steps** (the default): every row trains `--max-steps` steps (DEFAULT_STEPS when not
given), the learning rate decaying over those steps, so rows differ by their design, not by how
many steps their cost allowed. `--equal-time` keeps the old comparison: every row trains
`--budget-minutes` of wall-clock time (optionally capped by `--max-steps`), the learning rate
decaying over that time. **Seeds**: `--seeds N` (default 3) runs each row with seeds
seed, seed + 1, ...; a seed sets the weights' initialisation and the order of the ray batches,
and rows run with the same seed see the same batches (the comparisons are paired). The report
gives each row's mean and 95 % t-interval over seeds, and the paired difference to `complete`.

On a study scene (`nerfkit.data.synthetic_study`: masks/<split>.npz present) each run is also
scored on the reflective, textured and thin pixels apart (`region_masks`).

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

(s = `sample_scale`). samples_64_128 has the same configuration as complete; under a wall-clock
budget its separate run shows how much two identical rows differ (timing noise). Two base
settings differ from the paper by default, for every row alike: softplus density (ReLU often
collapses to an empty scene in short runs of small models) and a 100-step centre-crop warm-up.
The grid study uses the `grid` method's defaults (its learning rates and rays per step) with
the final resolution `--grid-resolution`^3 voxels; the NeRF-only flags do not apply to it.

Image subsets: `k` images at indices round(linspace(0, N-1, k)) of the train split (evenly
spaced, deterministic; no seed needed). With fewer than k train images the row uses them all and
says so. The run's config.json names the full dataset (the views used are listed in its
ablation_row.json), so resume such a row through `nerfkit ablate`, not `nerfkit train --resume`.

Resuming: a run is done when its `ablation_row.json` exists. A run folder with a checkpoint but no
result is continued with the Trainer's resume (the checkpoint holds the steps and training time
spent, so the budget is honoured; metrics logged after that checkpoint are dropped). A run folder
without a checkpoint holds nothing worth keeping and is restarted from scratch. The sweep's
settings are saved in `OUTPUT/ablation_config.json`; rerunning into the same OUTPUT with other
settings is an error (results would not be comparable), except `--seeds` and `--rows`: more seeds
or rows add runs to the same study.

FLOPs per ray (`flops_per_ray`, NeRF rows): multiply-adds count 2 FLOPs. Per sample, an MLP costs
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
from typing import Any, Literal

import numpy as np
import torch

from nerfkit.ablate_report import write_report
from nerfkit.atomic import save_json_atomic, write_text_atomic
from nerfkit.config import TrainConfig, to_dict
from nerfkit.data.scene import Scene, Split
from nerfkit.errors import DataError, NerfkitError
from nerfkit.methods.grid import GridConfig
from nerfkit.methods.nerf import NeRFConfig, NeRFMLP
from nerfkit.render.encoding import encoded_dim

RESULT_FILE = "ablation_row.json"
SWEEP_CONFIG_FILE = "ablation_config.json"
DEFAULT_STEPS = 1000  # steps per row in the equal-steps comparison when --max-steps is not given
NEVER = 10**9  # a step no run reaches: switches a scheduled feature of `grid` off


@dataclass(frozen=True)
class Row:
    """One ablation row: how it changes the base method config (and the training images)."""

    name: str
    label: str
    paper_psnr: float | None
    """Mean PSNR on the synthetic scenes in the paper's Table 2 (None: not in the table)."""
    change: Callable[[Any, float], Any]
    """(base method config, sample scale) -> this row's config (NeRFConfig or GridConfig)."""
    n_images: int | None = None
    """Train on this many images (evenly spaced subset); None: all."""


def _samples(coarse: int, fine: int) -> Callable[[NeRFConfig, float], NeRFConfig]:
    def change(c: NeRFConfig, s: float) -> NeRFConfig:
        return replace(c, n_coarse=_scaled(coarse, s), n_fine=_scaled(fine, s))

    return change


def _scaled(n: int, s: float) -> int:
    """n * s rounded, at least 3 (the fine samples' inverse CDF needs an interior coarse bin)."""
    return max(3, int(round(n * s)))


def _same(c: Any, s: float) -> Any:
    return c


def _no_pe(c: NeRFConfig, s: float) -> NeRFConfig:
    return replace(c, pos_freqs=0, dir_freqs=0)


def _no_viewdirs(c: NeRFConfig, s: float) -> NeRFConfig:
    return replace(c, use_viewdirs=False)


def _grid_resolution(side: int) -> Callable[[GridConfig, float], GridConfig]:
    def change(c: GridConfig, s: float) -> GridConfig:
        return replace(c, num_voxels_final=side**3)

    return change


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

GRID_ROWS: dict[str, Row] = {
    r.name: r
    for r in (
        Row("complete", "Complete grid model", None, _same),
        Row("no_occupancy", "No occupancy skipping", None,
            lambda c, s: replace(c, occ_start=NEVER)),
        Row("no_growth", "No coarse-to-fine growth", None,
            lambda c, s: replace(c, upsample_steps=())),
        Row("no_view_mlp", "No view-dependent colour MLP", None,
            lambda c, s: replace(c, mlp_start=NEVER)),
        Row("res_64", "64^3 voxels", None, _grid_resolution(64)),
        Row("res_96", "96^3 voxels", None, _grid_resolution(96)),
        Row("res_160", "160^3 voxels", None, _grid_resolution(160)),
    )
}  # fmt: skip
"""The `grid` method's design, row by row (complete: `--grid-resolution`^3 voxels)."""

STUDIES: dict[str, tuple[str, dict[str, Row]]] = {
    "nerf": ("nerf", ROWS),
    "grid": ("grid", GRID_ROWS),
}
"""study -> (method, rows)."""

# the rows each study runs when --rows is not given (all of them)
STUDY_ROWS: dict[str, tuple[str, ...]] = {
    "nerf": ROW_NAMES,
    "grid": tuple(GRID_ROWS),
}

# settings that make results comparable: a rerun into the same OUTPUT must keep them
COMPARED_SETTINGS: tuple[str, ...] = (
    "study", "equal_time", "data", "budget_minutes", "downscale", "width", "depth", "skip",
    "sample_scale", "pos_freqs", "dir_freqs", "batch_rays", "lr", "max_steps", "max_test_views",
    "eval_downscale", "val_every", "seed", "precrop_steps", "density_activation",
    "grid_resolution",
)  # fmt: skip


@dataclass
class AblationConfig:
    """Run an ablation study (the NeRF paper's rows, or the `grid` method's design) at equal
    steps (or equal wall-clock time), several seeds per row.

    Each (row, seed) trains into OUTPUT/<row>/seed<k>/ (a normal run folder), is evaluated on
    the test split and the sweep writes ablation.md, ablation.csv, the PSNR curves, grid.png
    (renders and |render - truth|) and cost.png into OUTPUT. A killed sweep resumes with the
    runs not yet done when run again with the same flags.
    """

    data: Path
    """Dataset folder (any format `nerfkit train` reads)."""
    study: Literal["nerf", "grid"] = "nerf"
    """nerf: the paper's Table 2 rows (method nerf); grid: the grid method's design rows."""
    output: Path = Path("runs/ablation")
    """Sweep folder: one run folder per row and seed, plus the tables and plots."""
    rows: tuple[str, ...] | None = None
    """Rows to run (default: all of the study), e.g. --rows complete no_pe."""
    seeds: int = 3
    """Runs per row, with seeds seed, seed + 1, ... (more seeds can be added later)."""
    equal_time: bool = False
    """Compare rows at an equal wall-clock budget (--budget-minutes) instead of equal steps."""
    max_steps: int | None = None
    """Steps per row (equal steps; default 1000). With --equal-time: also stop each row after
    this many steps."""
    budget_minutes: float = 2.0
    """With --equal-time: training time per row (loading, validation and evaluation excluded)."""
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
    """Rays per step (paper: 4096; nerf study only)."""
    lr: float = 5e-3
    """Initial learning rate, decayed exponentially to lr / 20 over the steps or the budget
    (paper: 5e-4 for its 8x256 model; nerf study only). The 64-wide base model learns far
    faster with 5e-3: on the study scene 18.0 dB at 1,000 steps against 16.0 with 1e-3, and
    23.5 dB at 4,000 steps against 18.1 (docs/ablation.md)."""
    grid_resolution: int = 128
    """Grid study: voxels per side at the end of growth of every row but res_* (default 128)."""
    max_test_views: int | None = None
    """Evaluate at most this many test views (evenly spaced; default: all)."""
    eval_downscale: int = 1
    """Evaluate (and draw the grid) at the training resolution divided by this."""
    precrop_steps: int = 100
    """Draw rays only from the central half of the images for this many first steps (the
    reference code's remedy, 500 steps on synthetic scenes, against the density collapsing to an
    empty scene early in training; 0 = off; nerf study only)."""
    val_every: int = 100
    """Render the first val view every N steps for the PSNR curves (0 = never)."""
    grid_view: int = 0
    """Test view shown in the grid (an index into the evaluated views)."""
    seed: int = 0
    """Seed of each row's first run."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None
    """CPU threads for torch (default: torch's choice)."""
    progress: bool = True
    """Show progress bars."""

    @property
    def method(self) -> str:
        """The method the study trains."""
        return STUDIES[self.study][0]

    @property
    def study_rows(self) -> dict[str, Row]:
        """The rows of the study, by name."""
        return STUDIES[self.study][1]

    def row_names(self) -> tuple[str, ...]:
        """The rows to run: --rows (unique, in the order given) or all of the study."""
        return tuple(dict.fromkeys(self.rows)) if self.rows else STUDY_ROWS[self.study]

    def seed_values(self) -> list[int]:
        """The seeds of every row's runs."""
        return [self.seed + k for k in range(self.seeds)]

    def steps(self) -> int | None:
        """Steps per row: max_steps, or DEFAULT_STEPS at equal steps (None: time only)."""
        if self.max_steps is not None or self.equal_time:
            return self.max_steps
        return DEFAULT_STEPS

    def base_nerf(self) -> NeRFConfig:
        """The base NeRF configuration every NeRF row modifies."""
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

    def base_grid(self) -> GridConfig:
        """The base grid configuration every grid row modifies (the method's defaults at
        `grid_resolution`^3 voxels)."""
        return GridConfig(num_voxels_final=self.grid_resolution**3)

    def base(self) -> NeRFConfig | GridConfig:
        """The base configuration of the study's method."""
        return self.base_nerf() if self.study == "nerf" else self.base_grid()

    def compared(self) -> dict:
        """The settings that must not change when a sweep is resumed (JSON-friendly)."""
        d = {k: getattr(self, k) for k in COMPARED_SETTINGS}
        d["data"] = str(Path(self.data).resolve())
        d["max_steps"] = self.steps()
        if not self.equal_time:
            d["budget_minutes"] = None  # not used at equal steps
        return d


def run_name(row: str, seed: int) -> str:
    """The run folder of (row, seed), relative to OUTPUT."""
    return f"{row}/seed{seed}"


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


# -- one run ------------------------------------------------------------------------------------
def row_method_config(cfg: AblationConfig, row: Row) -> NeRFConfig | GridConfig:
    """The method config of one row of the study."""
    return row.change(cfg.base(), cfg.sample_scale)


def row_train_config(cfg: AblationConfig, row: Row, seed: int | None = None) -> TrainConfig:
    """The TrainConfig of one (row, seed) run (method set explicitly; seed default cfg.seed)."""
    seed = cfg.seed if seed is None else seed
    nerf = cfg.study == "nerf"
    method_cfg = {cfg.method: row_method_config(cfg, row)}
    return TrainConfig(
        data=Path(cfg.data),
        output=Path(cfg.output) / run_name(row.name, seed),
        method=cfg.method,
        downscale=cfg.downscale,
        max_steps=cfg.steps(),
        max_minutes=cfg.budget_minutes if cfg.equal_time else None,
        batch_rays=cfg.batch_rays if nerf else None,
        lr=cfg.lr if nerf else None,
        lr_final=cfg.lr / 20.0 if nerf else None,
        precrop_steps=cfg.precrop_steps if nerf else 0,
        precrop_frac=0.5,
        seed=seed,
        log_every=10,
        val_every=cfg.val_every,
        ckpt_every=200,
        device=cfg.device,
        threads=cfg.threads,
        progress=cfg.progress,
        **method_cfg,
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


def train_row(cfg: AblationConfig, row: Row, scene: Scene, seed: int | None = None) -> dict:
    """Train one (row, seed) run (resuming a checkpointed partial run). Returns facts."""
    from nerfkit.run import CHECKPOINT_FILE
    from nerfkit.train import train

    tcfg = row_train_config(cfg, row, seed)
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


def _eval_split(scene: Scene) -> str:
    return "test" if "test" in scene.splits else "val"


def region_errors(
    pred: torch.Tensor, true: torch.Tensor, masks: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Squared error of 8-bit-quantised images per region: {region: {sse, values}}.

    Args:
        pred, true: [H, W, 3] in [0, 1]. masks: {region: bool [H, W]}.
    Returns:
        the sum of squared errors and the number of values (3 per pixel) in each region, to be
        pooled over views (`pooled_psnr`).
    """
    from nerfkit.metrics import quantize

    err = ((quantize(pred) - quantize(true)) ** 2).sum(-1).double().cpu().numpy()
    return {
        name: {"sse": float(err[m].sum()), "values": 3 * int(m.sum())} for name, m in masks.items()
    }


def pooled_psnr(views: list[dict], region: str) -> float | None:
    """PSNR of a region over all evaluated views (one MSE over all their region pixels)."""
    from nerfkit.metrics import mse_to_psnr

    sse = sum(v["regions"][region]["sse"] for v in views)
    n = sum(v["regions"][region]["values"] for v in views)
    return mse_to_psnr(sse / n) if n else None


def _view_masks(
    masks: dict[str, np.ndarray], k: int, image: torch.Tensor, data: Path
) -> dict[str, np.ndarray]:
    """View k's region masks [H, W]; a DataError when they do not fit its image [H, W, 3]."""
    shape = tuple(image.shape[:2])
    for m in masks.values():
        if len(m) <= k or m.shape[1:] != shape:
            raise DataError(
                f"{Path(data) / 'masks'}: the region masks do not match the images (view {k}, "
                f"image {shape[1]}x{shape[0]}); regenerate the study scene"
            )
    return {name: m[k] for name, m in masks.items()}


def evaluate_row(cfg: AblationConfig, row: Row, scene: Scene, seed: int | None = None) -> dict:
    """Evaluate one (row, seed) run on (part of) the test split.

    Writes the renders and the error images |render - truth| (`<name>_error.png`) to
    OUTPUT/<row>/seed<k>/eval_test/ and the grid view's truth to OUTPUT/grid_truth.png.
    """
    from nerfkit.ablate_report import error_image
    from nerfkit.data.io import downscale_image
    from nerfkit.data.synthetic_study import region_masks
    from nerfkit.media import write_png
    from nerfkit.metrics import image_metrics, summarize
    from nerfkit.run import load_run

    seed = cfg.seed if seed is None else seed
    run_dir = Path(cfg.output) / run_name(row.name, seed)
    run = load_run(run_dir, cfg.device)
    split = _eval_split(scene)
    sp = scene.split(split)
    idx = eval_indices(len(sp), cfg.max_test_views)
    f = cfg.eval_downscale
    masks = region_masks(cfg.data, split, cfg.downscale * f)
    cams = sp.cameras.scaled(f) if f > 1 else sp.cameras
    meta = run.meta
    out_dir = run_dir / "eval_test"
    views = []
    it = idx
    if cfg.progress:
        from tqdm import tqdm

        it = tqdm(idx, desc=f"  eval {row.name}", unit="view", leave=False)
    for k in it:
        r = run.method.render_image(cams, k, meta.near, meta.far, ndc=meta.ndc, **sp.view_args(k))
        true = downscale_image(sp.images[k], f)[: cams.height, : cams.width]
        view = {"name": sp.names[k], **image_metrics(r.rgb, true)}
        if masks is not None:
            view["regions"] = region_errors(r.rgb, true, _view_masks(masks, k, true, cfg.data))
        views.append(view)
        write_png(out_dir / f"{sp.names[k]}.png", r.rgb)
        write_png(out_dir / f"{sp.names[k]}_error.png", error_image(r.rgb, true))
        if k == idx[min(cfg.grid_view, len(idx) - 1)]:
            write_png(Path(cfg.output) / "grid_truth.png", true)
    regions = {}
    if masks is not None:
        regions = {name: pooled_psnr(views, name) for name in masks}
    return {
        "psnr": summarize(views)["psnr"],
        "ssim": summarize(views)["ssim"],
        "regions": regions,
        "eval_resolution": [cams.width, cams.height],
        "views": views,
        "step": run.step,
        "params": sum(p.numel() for p in run.method.parameters()),
    }


def run_row(cfg: AblationConfig, row: Row, scene: Scene, seed: int | None = None) -> dict:
    """Train and evaluate one (row, seed) run; writes and returns its result."""
    seed = cfg.seed if seed is None else seed
    t0 = time.perf_counter()
    facts = train_row(cfg, row, scene, seed)
    ev = evaluate_row(cfg, row, scene, seed)
    mc = row_method_config(cfg, row)
    result = {
        "row": row.name,
        "label": row.label,
        "seed": seed,
        "study": cfg.study,
        "paper_psnr": row.paper_psnr,
        **{k: ev[k] for k in ("psnr", "ssim", "regions", "eval_resolution", "params")},
        "steps": facts["steps"],
        "train_seconds": facts["train_seconds"],
        "sec_per_step": facts["sec_per_step"],
        "n_train_images": len(facts["train_images"]),
        "train_images": facts["train_images"],
        "views": ev["views"],
        "wall_seconds": time.perf_counter() - t0,
        "sweep": cfg.compared(),
    }
    if isinstance(mc, NeRFConfig):
        result |= {
            "flops_per_ray": flops_per_ray(mc),
            "n_coarse": mc.n_coarse,
            "n_fine": mc.n_fine,
            "pos_freqs": mc.pos_freqs,
            "dir_freqs": mc.dir_freqs,
            "use_viewdirs": mc.use_viewdirs,
        }
    else:
        result |= {
            "voxels": mc.num_voxels_final,
            "occupancy": mc.occ_start < NEVER,
            "growth": len(mc.upsample_steps) > 0,
            "view_mlp": mc.mlp_start < NEVER,
        }
    save_json_atomic(Path(cfg.output) / run_name(row.name, seed) / RESULT_FILE, result)
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


def load_results(output: Path, study: str = "nerf") -> list[dict]:
    """Every run result in OUTPUT, in the study's row order, seeds ascending."""
    out = []
    for name in STUDIES[study][1]:
        found = []
        for p in (Path(output) / name).glob(f"seed*/{RESULT_FILE}"):
            found.append(json.loads(p.read_text()))
        out += sorted(found, key=lambda r: r["seed"])
    return out


def warm_up(cfg: AblationConfig, scene: Scene, steps: int = 3) -> None:
    """A few untimed training steps of the complete row's model, written nowhere."""
    from nerfkit.train import Trainer

    row = cfg.study_rows["complete"]
    tcfg = replace(row_train_config(cfg, row), progress=False, max_steps=steps)
    trainer = Trainer(tcfg, scene)
    for _ in range(steps):
        trainer.train_step()


def _check(cfg: AblationConfig) -> list[Row]:
    """The rows to run; NerfkitError (one line) for unknown rows or bad numbers."""
    rows = cfg.study_rows
    unknown = [r for r in cfg.row_names() if r not in rows]
    if unknown:
        raise NerfkitError(
            f"unknown {cfg.study} ablation row(s) {', '.join(unknown)}; known: {', '.join(rows)}"
        )
    if cfg.equal_time and cfg.budget_minutes <= 0:
        raise NerfkitError(f"--budget-minutes must be > 0, got {cfg.budget_minutes}")
    for name in ("eval_downscale", "downscale", "seeds"):
        if getattr(cfg, name) < 1:
            raise NerfkitError(f"--{name.replace('_', '-')} must be >= 1")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise NerfkitError(f"--max-steps must be >= 1, got {cfg.max_steps}")
    return [rows[r] for r in cfg.row_names()]


def run_ablation(cfg: AblationConfig) -> list[dict]:
    """Run (or resume) the sweep, seed by seed (every row with the first seed, then the next);
    returns the results of every run done in OUTPUT."""
    from nerfkit.data import load_scene
    from nerfkit.train import TrainingInterrupted

    rows = _check(cfg)
    scene = load_scene(cfg.data, downscale=cfg.downscale)
    _check_sweep_config(cfg)
    base = cfg.base()
    budget = (
        f"{cfg.budget_minutes:g} min each" + (f" or {cfg.max_steps} steps" if cfg.max_steps else "")
        if cfg.equal_time
        else f"{cfg.steps()} steps each"
    )
    if isinstance(base, NeRFConfig):
        what = (
            f"base NeRF width {base.width}, depth {base.depth}, samples {base.n_coarse}+"
            f"{base.n_fine}, L {base.pos_freqs}/{base.dir_freqs}, {cfg.batch_rays} rays/step"
        )
    else:
        what = f"base grid {cfg.grid_resolution}^3 voxels"
    print(
        f"ablation ({cfg.study}): {len(rows)} row(s) x {cfg.seeds} seed(s), {budget}; {what} "
        f"-> {cfg.output}"
    )
    runs = [(row, seed) for seed in cfg.seed_values() for row in rows]
    warm = False
    for i, (row, seed) in enumerate(runs, 1):
        tag = f"[{i}/{len(runs)}] {row.name} seed {seed}"
        name = run_name(row.name, seed)
        if (Path(cfg.output) / name / RESULT_FILE).is_file():
            print(f"{tag}: done already (delete {name}/{RESULT_FILE} to rerun)")
            continue
        print(f"{tag}: {row.label}", flush=True)
        if not warm:  # torch's first steps are slow: keep them out of the budget and s/step
            warm_up(cfg, scene)
            warm = True
        try:
            r = run_row(cfg, row, scene, seed)
        except TrainingInterrupted:
            raise TrainingInterrupted(
                f"interrupted in row {row.name} seed {seed}; its checkpoint is saved; rerun the "
                "same `nerfkit ablate` command to resume the sweep"
            ) from None
        print(
            f"{tag}: test PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}, {r['steps']} steps, "
            f"{r['sec_per_step']:.3f} s/step",
            flush=True,
        )
    results = load_results(cfg.output, cfg.study)
    write_report(cfg, results)
    return results


__all__ = [
    "GRID_ROWS",
    "ROWS",
    "ROW_NAMES",
    "AblationConfig",
    "Row",
    "flops_per_ray",
    "param_count",
    "run_ablation",
    "subset_indices",
]
