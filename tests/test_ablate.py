"""`nerfkit ablate`: rows (nerf and grid studies), cost formulas, the statistics over seeds, region
scores and error images, the sweep end to end on a tiny study scene, and resuming a killed sweep."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import run_cli

from nerfkit import ablate
from nerfkit.ablate import (
    DEFAULT_STEPS,
    GRID_ROWS,
    NEVER,
    RESULT_FILE,
    ROWS,
    AblationConfig,
    flops_per_ray,
    param_count,
    pooled_psnr,
    region_errors,
    row_train_config,
    subset_indices,
)
from nerfkit.ablate_report import (
    aggregate,
    error_image,
    markdown_table,
    mean_ci,
    paired_difference,
    t_quantile,
)
from nerfkit.data.synthetic_study import generate_study_scene
from nerfkit.methods.nerf import NeRFConfig
from nerfkit.train import Trainer


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ablate") / "tiny"
    generate_study_scene(root, resolution=24, n_train=12, n_val=2, n_test=2, supersample=1)
    return root


def _args(scene: Path, out: Path, *rows: str) -> list:
    return [
        "ablate", "--data", scene, "--output", out, "--rows", *rows, "--seeds", "2",
        "--max-steps", "6", "--width", "16", "--depth", "2", "--sample-scale", "0.0625",
        "--batch-rays", "32", "--val-every", "3", "--max-test-views", "1", "--no-progress",
    ]  # fmt: skip


def test_rows_change_only_what_the_paper_changes() -> None:
    cfg = AblationConfig(data=Path("x"), sample_scale=1.0, width=256, depth=8)
    base = cfg.base_nerf()
    assert (base.n_coarse, base.n_fine, base.skip, base.pos_freqs) == (64, 128, 4, 10)

    def nerf(name: str) -> NeRFConfig:
        tc = row_train_config(cfg, ROWS[name])
        assert tc.method == "nerf"
        return tc.nerf

    assert nerf("complete") == base
    assert (nerf("no_pe").pos_freqs, nerf("no_pe").dir_freqs) == (0, 0)
    assert nerf("no_viewdirs").use_viewdirs is False
    assert (nerf("no_hierarchy").n_coarse, nerf("no_hierarchy").n_fine) == (192, 0)
    assert nerf("L5").pos_freqs == 5 and nerf("L15").pos_freqs == 15
    assert (nerf("samples_32_64").n_coarse, nerf("samples_32_64").n_fine) == (32, 64)
    assert nerf("samples_64_128") == base
    assert (nerf("samples_128_256").n_coarse, nerf("samples_128_256").n_fine) == (128, 256)
    assert ROWS["images_25"].n_images == 25 and nerf("images_25") == base
    # scaled base: every sample count scales, no_hierarchy keeps the same total
    small = AblationConfig(data=Path("x"), sample_scale=0.25)
    nh = row_train_config(small, ROWS["no_hierarchy"]).nerf
    b = small.base_nerf()
    assert (b.n_coarse, b.n_fine) == (16, 32) and (nh.n_coarse, nh.n_fine) == (48, 0)


def test_params_and_flops_of_the_paper_model() -> None:
    c = NeRFConfig()
    # the paper's MLP: 595,844 parameters, coarse + fine
    assert param_count(c) == 2 * 595_844
    # hand count: layers 63x256, 6 x 256x256, (256+63)x256, alpha 256x1, feature 256x256,
    # views (256+27)x128, rgb 128x3
    mlp = 2 * (63 * 256 + 6 * 256 * 256 + 319 * 256 + 256 + 256 * 256 + 283 * 128 + 128 * 3)
    per_sample = mlp + 9 * 10
    assert flops_per_ray(c) == 64 * per_sample + 192 * per_sample + 2 * 9 * 4
    coarse_only = NeRFConfig(n_coarse=192, n_fine=0, use_viewdirs=False, pos_freqs=0)
    mlp0 = 2 * (3 * 256 + 6 * 256 * 256 + 259 * 256 + 256 * 4)
    assert flops_per_ray(coarse_only) == 192 * mlp0
    assert param_count(coarse_only) == sum(
        p.numel()
        for p in ablate._mlp(coarse_only).parameters()  # noqa: SLF001
    )


def test_subset_indices_are_even_and_deterministic() -> None:
    assert subset_indices(100, 25)[:3] == [0, 4, 8] and subset_indices(100, 25)[-1] == 99
    assert len(subset_indices(100, 50)) == 50
    assert subset_indices(12, 25) == list(range(12))


def test_grid_rows_switch_one_design_choice_each() -> None:
    cfg = AblationConfig(data=Path("x"), study="grid", grid_resolution=100)

    def grid(name: str):
        tc = row_train_config(cfg, GRID_ROWS[name], seed=4)
        assert tc.method == "grid" and tc.seed == 4
        assert tc.lr is None and tc.batch_rays is None  # the method's own defaults
        return tc.grid

    base = grid("complete")
    assert base.num_voxels_final == 100**3
    assert base.occ_start < NEVER and base.upsample_steps and base.mlp_start < NEVER
    changed = {
        "no_occupancy": {"occ_start": NEVER},
        "no_growth": {"upsample_steps": ()},
        "no_view_mlp": {"mlp_start": NEVER},
        "res_64": {"num_voxels_final": 64**3},
    }
    for name, want in changed.items():
        g = grid(name)
        diff = {k: v for k, v in vars(g).items() if vars(base)[k] != v}
        assert diff == want, name


def test_equal_steps_by_default_equal_time_on_request() -> None:
    tc = row_train_config(AblationConfig(data=Path("x")), ROWS["complete"])
    assert (tc.max_steps, tc.max_minutes) == (DEFAULT_STEPS, None)
    tc = row_train_config(AblationConfig(data=Path("x"), max_steps=50), ROWS["complete"], seed=2)
    assert (tc.max_steps, tc.max_minutes, tc.seed) == (50, None, 2)
    assert tc.output == Path("runs/ablation/complete/seed2")
    cfg = AblationConfig(data=Path("x"), equal_time=True, budget_minutes=1.5)
    tc = row_train_config(cfg, ROWS["complete"])
    assert (tc.max_steps, tc.max_minutes) == (None, 1.5)
    assert cfg.seed_values() == [0, 1, 2]


def test_t_interval_and_paired_differences() -> None:
    from scipy import stats

    for df in (1, 2, 4, 10, 29, 30, 31, 50, 200):
        assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-3)
    mean, ci = mean_ci([1.0, 2.0, 3.0])  # sd 1: half-width t(2) / sqrt(3)
    assert mean == 2.0 and ci == pytest.approx(4.303 / 3**0.5)
    assert mean_ci([5.0])[1] is None
    base = {0: 20.0, 1: 22.0, 2: 21.0}
    # seed noise shared by both rows cancels in the paired difference: a clear +0.5 dB
    shifted = {k: v + 0.5 + 0.01 * k for k, v in base.items()}
    d = paired_difference(shifted, base)
    assert d["pairs"] == 3 and d["mean"] == pytest.approx(0.51) and d["distinguishable"]
    noisy = {0: 20.5, 1: 21.6, 2: 21.2}  # differences +0.5, -0.4, +0.2: interval holds 0
    assert paired_difference(noisy, base)["distinguishable"] is False
    one = paired_difference({0: 25.0, 7: 1.0}, base)  # only seed 0 is paired
    assert one["pairs"] == 1 and one["mean"] == 5.0 and one["distinguishable"] is None

    def run(row: str, seed: int, psnr: float, thin: float) -> dict:
        return {"row": row, "seed": seed, "psnr": psnr, "ssim": 0.5, "regions": {"thin": thin},
                "steps": 8, "sec_per_step": 0.1, "train_seconds": 0.8}  # fmt: skip

    results = [run("complete", k, base[k], 15.0 + k) for k in range(3)]
    results += [run("no_hierarchy", k, noisy[k], 14.0 + k) for k in range(3)]
    summary = aggregate(results)
    assert [s["row"] for s in summary] == ["complete", "no_hierarchy"]
    assert summary[0]["diff"] == {} and summary[1]["seeds"] == [0, 1, 2]
    assert summary[1]["diff"]["psnr"]["distinguishable"] is False
    thin = summary[1]["diff"]["region:thin"]  # exactly -1 dB on every seed: distinguishable
    assert thin["mean"] == pytest.approx(-1.0) and thin["distinguishable"]
    assert summary[0]["stats"]["region:thin"]["mean"] == pytest.approx(16.0)


def test_region_psnr_is_pooled_over_views() -> None:
    true = torch.zeros(4, 4, 3)
    pred = true.clone()
    pred[:2] = 51 / 255  # rows 0-1 off by 0.2 (exact in 8 bits)
    top = torch.zeros(4, 4, dtype=torch.bool)
    top[:2] = True
    masks = {"top": top.numpy(), "bottom": (~top).numpy(), "half": (top & (torch.arange(4) < 2))}
    masks["half"] = masks["half"].numpy()
    e = region_errors(pred, true, masks)
    assert e["top"]["values"] == 24 and e["top"]["sse"] == pytest.approx(24 * 0.04)
    assert e["bottom"]["sse"] == 0
    views = [{"regions": e}, {"regions": region_errors(true, true, masks)}]
    assert pooled_psnr(views, "top") == pytest.approx(-10 * torch.log10(torch.tensor(0.02)).item())
    assert pooled_psnr([{"regions": {"none": {"sse": 0.0, "values": 0}}}], "none") is None
    from nerfkit.errors import DataError

    with pytest.raises(DataError, match="regenerate the study scene"):  # masks of another size
        ablate._view_masks({"top": masks["top"][None]}, 0, torch.zeros(5, 4, 3), Path("d"))  # noqa: SLF001
    with pytest.raises(DataError, match="view 1"):
        ablate._view_masks({"top": masks["top"][None]}, 1, true, Path("d"))  # noqa: SLF001


def test_error_image_maps_zero_to_black() -> None:
    true = torch.zeros(2, 3, 3)
    pred = true.clone()
    pred[0, 0] = 1.0  # beyond vmax = 0.5
    pred[0, 1] = 64 / 255  # a quarter of vmax
    img = error_image(pred, true).astype(int)
    assert img.shape == (2, 3, 3)
    assert max(img[1, 1].tolist()) <= 4  # inferno's dark end: (0, 0, 4)
    assert img[0, 0].tolist() == [252, 255, 164]  # its bright end
    assert 4 < img[0, 1].sum() < img[0, 0].sum()


def test_sweep_end_to_end_then_resume(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    out = tmp_path / "abl"
    rows = ("complete", "no_hierarchy")
    assert run_cli(_args(scene, out, *rows)) == 0
    printed = capsys.readouterr().out
    assert "[1/4] complete seed 0" in printed and "[4/4] no_hierarchy seed 1" in printed
    for name in ("ablation.md", "ablation.csv", "psnr_vs_steps.png", "grid.png", "cost.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "ablation.csv", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [r["row"] for r in table] == list(rows)
    assert all(r["seeds"] == "2" and float(r["steps"]) == 6 for r in table)
    assert all(float(r["psnr"]) > 0 and float(r["mflops_per_ray"]) > 0 for r in table)
    for r in table:  # per-region PSNR from the study scene's masks, with intervals over 2 seeds
        for region in ("reflective", "textured", "thin"):
            assert float(r[f"psnr_{region}"]) > 0 and float(r[f"psnr_{region}_ci95"]) >= 0
    assert table[0]["psnr_diff"] == "" and table[1]["psnr_diff"] != ""
    md = (out / "ablation.md").read_text()
    assert "| complete | 31.01 | 2 |" in md and "| no_hierarchy | 30.06 | 2 |" in md
    for row in rows:  # ordinary run folders, one per seed
        for seed in (0, 1):
            for f in ("config.json", "checkpoint.pt", "metrics.jsonl", RESULT_FILE):
                assert (out / row / f"seed{seed}" / f).is_file(), (row, seed, f)
    res = json.loads((out / "complete" / "seed1" / RESULT_FILE).read_text())
    assert res["eval_resolution"] == [24, 24] and len(res["views"]) == 1 and res["seed"] == 1
    assert set(res["regions"]) == {"reflective", "textured", "thin"}
    assert (out / "complete" / "seed1" / "eval_test" / "r_0_error.png").is_file()
    assert res["n_train_images"] == 12
    seeds = [json.loads((out / "complete" / f"seed{k}" / "config.json").read_text())["seed"]
             for k in (0, 1)]  # fmt: skip
    assert seeds == [0, 1]

    # a killed sweep: two results gone; complete seed 0 must not be re-trained
    keep = {p: p.stat().st_mtime_ns for p in (out / "complete" / "seed0").rglob("*") if p.is_file()}
    import shutil

    for f in ("checkpoint.pt", RESULT_FILE):  # killed before its first checkpoint: starts again
        (out / "complete" / "seed1" / f).unlink()
    # no_hierarchy seed 1: interrupt it at step 4 (Ctrl-C saves a checkpoint there)
    shutil.rmtree(out / "no_hierarchy" / "seed1")
    original = Trainer.train_step

    def interrupting(self: Trainer) -> dict:
        if self.step == 4 and self.cfg.output.parent.name == "no_hierarchy":
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupting)
    assert run_cli(_args(scene, out, *rows)) == 130
    assert "rerun the same" in capsys.readouterr().err
    assert json.loads((out / "complete" / "seed1" / RESULT_FILE).read_text())["steps"] == 6
    nh = out / "no_hierarchy" / "seed1"
    assert torch.load(nh / "checkpoint.pt", weights_only=False)["step"] == 4
    monkeypatch.setattr(Trainer, "train_step", original)
    # a hard kill leaves lines logged after the last checkpoint, maybe half a line
    with open(nh / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 5, "time": 1.0, "psnr": 1.0}\n{"step": 5, "ti')

    trained = []
    real_run_row = ablate.run_row

    def spy(cfg: AblationConfig, row: ablate.Row, sc: object, seed: int) -> dict:
        trained.append((row.name, seed))
        return real_run_row(cfg, row, sc, seed)

    monkeypatch.setattr(ablate, "run_row", spy)
    assert run_cli(_args(scene, out, *rows)) == 0
    printed = capsys.readouterr().out
    assert trained == [("no_hierarchy", 1)]
    assert "resuming" in printed and "done already" in printed
    assert {p: p.stat().st_mtime_ns for p in keep} == keep  # complete seed 0 untouched
    assert json.loads((nh / RESULT_FILE).read_text())["steps"] == 6
    steps = [json.loads(s)["step"] for s in (nh / "metrics.jsonl").open()]
    assert 5 not in steps and steps == sorted(steps)  # lines past the checkpoint: dropped

    # other settings into the same folder: refused, one line; more seeds are fine (not run here)
    args = _args(scene, out, "complete")
    args[args.index("--width") + 1] = "32"
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "width" in err[0]
    small = {"width": 16, "depth": 2, "sample_scale": 0.0625, "batch_rays": 32}
    cfg = AblationConfig(data=scene, output=out, seeds=5, max_steps=6, val_every=3,
                         max_test_views=1, **small)  # fmt: skip
    ablate._check_sweep_config(cfg)  # noqa: SLF001


def test_grid_study_end_to_end(scene: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "g"
    args = [
        "ablate", "--study", "grid", "--data", scene, "--output", out, "--rows", "complete",
        "no_view_mlp", "--seeds", "1", "--max-steps", "4", "--grid-resolution", "16",
        "--val-every", "2", "--max-test-views", "1", "--no-progress",
    ]  # fmt: skip
    assert run_cli(args) == 0
    md = (out / "ablation.md").read_text()
    assert "| complete | — | 1 |" in md and "| no_view_mlp | — | 1 |" in md
    assert "view MLP" in md and "16³" in md
    res = json.loads((out / "no_view_mlp" / "seed0" / RESULT_FILE).read_text())
    assert res["view_mlp"] is False and res["occupancy"] is True and res["steps"] == 4
    assert markdown_table([]).startswith("| row |")


def test_unknown_row(scene: Path, tmp_path: Path, capsys) -> None:
    assert run_cli(_args(scene, tmp_path / "x", "complete", "nope")) == 2
    assert "unknown nerf ablation row(s) nope" in capsys.readouterr().err
