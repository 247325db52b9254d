"""Bad input: one line on stderr, exit code 2, no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli


def _one_line_error(capsys: pytest.CaptureFixture, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_missing_data_folder(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope"
    assert run_cli(["train", "--data", missing, "--output", tmp_path / "run"]) == 2
    _one_line_error(capsys, str(missing), "not found")
    assert not (tmp_path / "run").exists()


def test_unknown_layout(tmp_path: Path, capsys) -> None:
    (tmp_path / "data").mkdir()
    assert run_cli(["train", "--data", tmp_path / "data", "--output", tmp_path / "run"]) == 2
    _one_line_error(capsys, "unknown dataset layout", "transforms_train.json")


def test_bad_json(tmp_path: Path, capsys) -> None:
    d = tmp_path / "data"
    d.mkdir()
    (d / "transforms_train.json").write_text('{"camera_angle_x": 0.5,\n "frames": [,]}')
    assert run_cli(["train", "--data", d, "--output", tmp_path / "run"]) == 2
    _one_line_error(capsys, "transforms_train.json", "line 2")


def test_unknown_method(tiny_scene: Path, tmp_path: Path, capsys) -> None:
    assert run_cli(["train", "--data", tiny_scene, "--method", "nope",
                    "--output", tmp_path / "run"]) == 2  # fmt: skip
    _one_line_error(capsys, "unknown --method 'nope'")


def test_eval_on_a_folder_that_is_not_a_run(tmp_path: Path, capsys) -> None:
    assert run_cli(["eval", tmp_path]) == 2
    _one_line_error(capsys, "config.json", "not a nerfkit run folder")
    assert run_cli(["render", tmp_path / "missing"]) == 2
    _one_line_error(capsys, "run folder not found")


def test_resume_without_checkpoint(tmp_path: Path, capsys) -> None:
    assert run_cli(["train", "--resume", tmp_path / "none"]) == 2
    _one_line_error(capsys, "run folder not found")
