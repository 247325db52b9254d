"""`nerfkit train --ndc auto|on|off`: forward-facing scenes train with NDC rays unless told not
to, and eval reloads the data the way the run was trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli

from nerfkit.data.synthetic_llff import generate_forward_scene

SMALL_GRID = [
    "--grid.num-voxels-final-ndc", str(24 * 24 * 12), "--grid.upsample-steps",
    "--grid.fit-box-step", "-1", "--grid.mlp-start", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def forward_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_forward_scene(tmp_path_factory.mktemp("fwd") / "scene", size=(24, 18),
                                  n_views=9, supersample=1)  # fmt: skip


@pytest.mark.parametrize("flag, ndc", [("auto", True), ("off", False)])
def test_ndc_flag_decides_the_rays_and_eval_follows(forward_scene, tmp_path, flag, ndc):
    run = tmp_path / "run"
    args = [
        "train", "--data", forward_scene, "--output", run, "--ndc", flag, "--max-steps", "3",
        "--batch-rays", "64", "--val-every", "0", "--no-progress", *SMALL_GRID,
    ]  # fmt: skip
    assert run_cli(args) == 0
    assert json.loads((run / "scene.json").read_text())["ndc"] is ndc
    assert json.loads((run / "config.json").read_text())["ndc"] == flag
    assert run_cli(["eval", run, "--output", tmp_path / "eval"]) == 0
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_ndc_on_for_an_object_format_is_one_line_error(tiny_scene, tmp_path, capsys):
    args = ["train", "--data", tiny_scene, "--output", tmp_path / "run", "--ndc", "on",
            "--max-steps", "1", "--no-progress"]  # fmt: skip
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NDC rays are for forward-facing formats" in err[0]
