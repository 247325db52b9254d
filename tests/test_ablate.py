"""`nerfkit ablate`: rows, cost formulas, the sweep end to end, and resuming a killed sweep."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import run_cli

from nerfkit import ablate
from nerfkit.ablate import (
    RESULT_FILE,
    ROWS,
    AblationConfig,
    flops_per_ray,
    param_count,
    row_train_config,
    subset_indices,
)
from nerfkit.data.synthetic import generate_scene
from nerfkit.methods.nerf import NeRFConfig
from nerfkit.train import Trainer


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ablate") / "tiny"
    generate_scene(root, resolution=24, n_train=12, n_val=2, n_test=2, seed=0, supersample=1)
    return root


def _args(scene: Path, out: Path, *rows: str) -> list:
    return [
        "ablate", "--data", scene, "--output", out, "--rows", *rows, "--budget-minutes", "30",
        "--max-steps", "8", "--width", "16", "--depth", "2", "--sample-scale", "0.0625",
        "--batch-rays", "32", "--val-every", "4", "--max-test-views", "1", "--no-progress",
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


def test_sweep_end_to_end_then_resume(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    out = tmp_path / "abl"
    rows = ("complete", "no_hierarchy", "images_25")
    assert run_cli(_args(scene, out, *rows)) == 0
    printed = capsys.readouterr().out
    assert "[1/3] complete" in printed and "[3/3] images_25" in printed
    for name in ("ablation.md", "ablation.csv", "psnr_vs_time.png", "grid.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "ablation.csv", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [r["row"] for r in table] == list(rows)
    assert all(int(r["steps"]) == 8 for r in table)
    assert all(float(r["psnr"]) > 0 and float(r["mflops_per_ray"]) > 0 for r in table)
    assert table[2]["n_train_images"] == "12"  # only 12 train views: the row says so
    md = (out / "ablation.md").read_text()
    assert "| complete | 31.01 |" in md and "| no_hierarchy | 30.06 |" in md
    for row in rows:  # ordinary run folders
        for f in ("config.json", "checkpoint.pt", "metrics.jsonl", RESULT_FILE):
            assert (out / row / f).is_file(), (row, f)
    res = json.loads((out / "complete" / RESULT_FILE).read_text())
    assert res["eval_resolution"] == [24, 24] and len(res["views"]) == 1

    # a killed sweep: B's result is gone (and its run half done); A must not be re-trained
    keep = {p: p.stat().st_mtime_ns for p in (out / "complete").glob("*") if p.is_file()}
    (out / "no_hierarchy" / RESULT_FILE).unlink()
    (out / "images_25" / RESULT_FILE).unlink()
    import shutil

    shutil.rmtree(out / "images_25")  # killed before its first checkpoint: starts again
    # no_hierarchy: interrupt it at step 5 (Ctrl-C saves a checkpoint there)
    (out / "no_hierarchy").rename(tmp_path / "old_nh")
    original = Trainer.train_step

    def interrupting(self: Trainer) -> dict:
        if self.step == 5 and self.cfg.output.name == "no_hierarchy":
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupting)
    assert run_cli(_args(scene, out, *rows)) == 130
    assert "rerun the same" in capsys.readouterr().err
    assert torch.load(out / "no_hierarchy" / "checkpoint.pt", weights_only=False)["step"] == 5
    monkeypatch.setattr(Trainer, "train_step", original)
    # a hard kill leaves lines logged after the last checkpoint, maybe half a line
    with open(out / "no_hierarchy" / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 7, "time": 1.0, "psnr": 1.0}\n{"step": 7, "ti')

    trained = []
    real_run_row = ablate.run_row

    def spy(cfg: AblationConfig, row: ablate.Row, sc: object) -> dict:
        trained.append(row.name)
        return real_run_row(cfg, row, sc)

    monkeypatch.setattr(ablate, "run_row", spy)
    assert run_cli(_args(scene, out, *rows)) == 0
    printed = capsys.readouterr().out
    assert trained == ["no_hierarchy", "images_25"]
    assert "resuming" in printed and "done already" in printed
    assert {p: p.stat().st_mtime_ns for p in keep} == keep  # row A untouched
    nh = json.loads((out / "no_hierarchy" / RESULT_FILE).read_text())
    assert nh["steps"] == 8
    steps = [json.loads(s)["step"] for s in (out / "no_hierarchy" / "metrics.jsonl").open()]
    assert 7 not in steps and steps == sorted(steps)  # lines past the checkpoint: dropped

    # other settings into the same folder: refused, one line
    args = _args(scene, out, "complete")
    args[args.index("--width") + 1] = "32"
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "width" in err[0]


def test_unknown_row(scene: Path, tmp_path: Path, capsys) -> None:
    assert run_cli(_args(scene, tmp_path / "x", "complete", "nope")) == 2
    assert "unknown ablation row(s) nope" in capsys.readouterr().err
