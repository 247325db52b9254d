"""One trainer per run folder (RUN/.lock), and temporary checkpoints orphaned by a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY_NERF, run_cli

from nerfkit.data.synthetic import generate_scene
from nerfkit.errors import NerfkitError
from nerfkit.run import CHECKPOINT_FILE, LOCK_FILE, run_lock, save_checkpoint
from nerfkit.train import Trainer

pytest.importorskip("fcntl", reason="run folder locks need fcntl (POSIX)")

HOLD_LOCK = """
import sys, time
from nerfkit.run import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lock") / "tiny"
    generate_scene(root, resolution=16, n_train=4, n_val=1, n_test=1, seed=0, supersample=1)
    return root


def _train_args(scene: Path, run: Path, steps: int) -> list:
    return [
        "train", "--data", scene, "--method", "nerf", "--output", run, "--max-steps", steps,
        "--batch-rays", "32", "--val-every", "0", "--ckpt-every", "2", "--no-progress", *TINY_NERF,
    ]  # fmt: skip


def _hold_lock_in_subprocess(run: Path) -> subprocess.Popen:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True, env=env
    )
    line = proc.stdout.readline()  # blocks until the lock is held (or the child died)
    assert line.strip() == "locked", f"the child did not take the lock (exit {proc.poll()})"
    return proc


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_second_trainer_fails_at_once_then_runs_once_the_holder_is_killed(
    scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    proc = _hold_lock_in_subprocess(run)
    try:
        t0 = time.perf_counter()
        assert run_cli(_train_args(scene, run, 2)) == 2
        assert time.perf_counter() - t0 < 10, "must fail before loading data or training"
        err = _one_line_error(capsys)
        assert str(run) in err and f"another process (pid {proc.pid})" in err
        assert "another --output" in err
        assert not (run / CHECKPOINT_FILE).exists()
    finally:
        proc.send_signal(signal.SIGKILL)  # dies holding the lock: the kernel releases it
        proc.wait()
    assert run_cli(_train_args(scene, run, 2)) == 0
    assert torch.load(run / CHECKPOINT_FILE, weights_only=False)["step"] == 2


def test_lock_is_held_while_training_and_released_after(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    seen = []
    original = Trainer.train_step

    def probing(self: Trainer) -> dict:
        # a second open file description of RUN/.lock, as another process would have
        with pytest.raises(NerfkitError, match=f"another process \\(pid {os.getpid()}\\)"):
            with run_lock(run):
                pass
        seen.append(self.step)
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", probing)
    assert run_cli(_train_args(scene, run, 2)) == 0  # fresh run
    assert seen == [0, 1]
    # resume (to 4 steps) holds it too
    cfg = run / "config.json"
    cfg.write_text(cfg.read_text().replace('"max_steps": 2', '"max_steps": 4'))
    assert run_cli(["train", "--resume", run, "--no-progress"]) == 0
    assert seen == [0, 1, 2, 3]
    monkeypatch.setattr(Trainer, "train_step", original)

    # released after the run, and after a failed resume
    with run_lock(run) as lock:
        assert lock == run / LOCK_FILE
        assert lock.read_text().strip() == str(os.getpid())
    assert (run / LOCK_FILE).read_text() == ""  # no stale pid once released
    (run / CHECKPOINT_FILE).unlink()
    assert run_cli(["train", "--resume", run, "--no-progress"]) == 2
    assert "no checkpoint.pt to resume from" in _one_line_error(capsys)
    with run_lock(run):
        pass


def test_orphaned_temp_checkpoints_are_deleted_on_resume_and_save(
    scene: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    assert run_cli(_train_args(scene, run, 2)) == 0
    # a crash mid-save leaves the temporary checkpoint of the dead process
    orphans = [run / ".checkpoint.pt.tmp999999", run / ".checkpoint.pt.tmp999998.pt"]
    for p in orphans:
        p.write_bytes(b"half a checkpoint")
    cfg = run / "config.json"
    cfg.write_text(cfg.read_text().replace('"max_steps": 2', '"max_steps": 3'))
    assert run_cli(["train", "--resume", run, "--no-progress"]) == 0
    assert not any(p.exists() for p in orphans)
    assert torch.load(run / CHECKPOINT_FILE, weights_only=False)["step"] == 3

    orphans[0].write_bytes(b"half a checkpoint")
    save_checkpoint(run, {"step": 3})
    assert not orphans[0].exists()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [LOCK_FILE]
