"""train -> eval -> render through the command line, resume, and Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch
from helpers import TINY_NERF, run_cli

from nerfkit.train import Trainer


def _train_args(scene: Path, run: Path, steps: int, *extra: str) -> list[str]:
    return [
        "train", "--data", scene, "--output", run, "--max-steps", steps, "--batch-rays", "64",
        "--log-every", "5", "--val-every", "10", "--ckpt-every", "10", "--no-progress",
        *TINY_NERF, *extra,
    ]  # fmt: skip


def test_train_eval_render(tiny_scene: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_cli(_train_args(tiny_scene, run, 20)) == 0
    for name in ("config.json", "scene.json", "checkpoint.pt", "metrics.jsonl"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*")), "no TensorBoard events"
    assert (run / "val" / "step_0000010.png").is_file()
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [5, 10, 15, 20]
    assert all({"loss", "psnr", "lr", "rays_per_s", "time"} <= set(r) for r in lines if "loss" in r)

    out = tmp_path / "eval"
    assert run_cli(["eval", run, "--split", "test", "--output", out]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_views"] == 3 and metrics["step"] == 20
    assert len(metrics["views"]) == 3
    for v in metrics["views"]:
        assert (out / f"{v['name']}.png").is_file()
        assert (out / f"{v['name']}_depth.png").is_file()
        assert 0 < v["psnr"] < 100 and -1 <= v["ssim"] <= 1
    img = iio.imread(out / f"{metrics['views'][0]['name']}.png")
    assert img.shape == (24, 24, 3)

    # --data: another folder's split in the same scene frame (a larger test set)
    from nerfkit.data.synthetic import generate_scene

    bigger = generate_scene(tmp_path / "more", resolution=24, n_train=1, n_val=0, n_test=5,
                            supersample=1)  # fmt: skip
    out2 = tmp_path / "eval_more"
    assert run_cli(["eval", run, "--data", bigger, "--output", out2]) == 0
    more = json.loads((out2 / "metrics.json").read_text())
    assert more["num_views"] == 5 and more["data"] == str(bigger)

    video = tmp_path / "orbit.mp4"
    assert run_cli(["render", run, "--path", "orbit", "--frames", "6", "--output", video]) == 0
    import imageio.v2 as iio2

    reader = iio2.get_reader(video, format="FFMPEG")
    n = sum(1 for _ in reader)
    reader.close()
    assert n == 6
    assert (tmp_path / "orbit_depth.mp4").stat().st_size > 0


def test_existing_run_is_not_overwritten(tiny_scene: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert run_cli(_train_args(tiny_scene, run, 2)) == 0
    before = (run / "checkpoint.pt").read_bytes()
    assert run_cli(_train_args(tiny_scene, run, 2)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0]
    assert (run / "checkpoint.pt").read_bytes() == before


def test_interrupt_then_resume_reaches_same_final_step(
    tiny_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # reference: 30 uninterrupted steps
    ref = tmp_path / "ref"
    assert run_cli(_train_args(tiny_scene, ref, 30)) == 0

    # the same run, Ctrl-C at step 13
    run = tmp_path / "run"
    original = Trainer.train_step

    def interrupting(self: Trainer) -> dict:
        if self.step == 13:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupting)
    assert run_cli(_train_args(tiny_scene, run, 30)) == 130
    assert "--resume" in capsys.readouterr().err
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 13
    monkeypatch.setattr(Trainer, "train_step", original)

    assert run_cli(["train", "--resume", run, "--no-progress"]) == 0
    a = torch.load(run / "checkpoint.pt", weights_only=False)
    b = torch.load(ref / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 30
    # same schedule and random stream: the resumed run ends where the uninterrupted one does
    for k in b["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5)

    # resuming a finished run trains nothing more
    assert run_cli(["train", "--resume", run, "--no-progress"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 30
