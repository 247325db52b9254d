"""The run folder: resolved config, scene facts, checkpoints. Everything eval/render need."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from nerfkit.atomic import atomic_path, remove_orphaned_temp_files, save_json_atomic
from nerfkit.config import TrainConfig, from_dict, to_dict
from nerfkit.data.scene import SceneMeta
from nerfkit.errors import NerfkitError
from nerfkit.methods import Method

CONFIG_FILE = "config.json"
SCENE_FILE = "scene.json"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = ".lock"

try:
    import fcntl
except ImportError:  # Windows: no flock (see run_lock)
    fcntl = None  # type: ignore[assignment]


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NerfkitError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def build_method(cfg: TrainConfig, meta: SceneMeta) -> Method:
    """The registered method `cfg.method`, built from its options (NerfkitError if unknown)."""
    return cfg.method_spec().method_cls(cfg.method_config(), meta)


def save_run_files(run_dir: Path, cfg: TrainConfig, meta: SceneMeta) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    save_json_atomic(run_dir / CONFIG_FILE, to_dict(cfg))
    save_json_atomic(run_dir / SCENE_FILE, meta.to_dict())


def save_checkpoint(run_dir: Path, state: dict) -> Path:
    """torch.save to a temporary file, then rename: a crash never leaves a broken checkpoint.

    Temporary checkpoints an earlier crash left behind are deleted (the caller holds the run
    folder's lock, so no other process is saving one).
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    remove_orphaned_checkpoints(run_dir)
    return path


def remove_orphaned_checkpoints(run_dir: Path) -> list[Path]:
    """Delete the temporary checkpoints (`.checkpoint.pt.tmp<pid>...`) a crash mid-save left in
    the run folder; returns them. Only for the holder of the run folder's lock."""
    return remove_orphaned_temp_files(Path(run_dir) / CHECKPOINT_FILE)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[Path]:
    """Hold an exclusive lock on the existing run folder `run_dir` (a `flock` on RUN/.lock).

    One trainer at a time writes a run folder; readers (eval, render) take no lock. The lock
    file holds the holder's pid (for the message of the next one) and is left in place; the
    kernel releases the lock when the holder exits or dies, so a crash leaves no stale lock.
    Where Python has no `fcntl` (Windows), or the filesystem cannot lock (flock fails with
    another error than "held"), no lock is taken: nothing stops a second trainer there.

    Yields:
        the lock file's path.
    Raises:
        NerfkitError: another process holds the lock (one line: folder, pid if known, what to do).
    """
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None:
        yield path
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held through another open file: another trainer
            raise NerfkitError(
                f"{run_dir}: {_lock_holder(fd)} is training into this run folder; wait for it "
                "to finish (or stop it), or train into another --output"
            ) from None
        except OSError:  # no locks on this filesystem: go on unlocked
            yield path
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # no stale pid for the next holder's contenders to read
    finally:
        os.close(fd)  # releases the lock


def _lock_holder(fd: int) -> str:
    """'another process (pid N)' from the lock file's content, or 'another process'."""
    pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f"another process (pid {pid})" if pid.isdigit() else "another process"


def read_run_config(run_dir: Path) -> tuple[TrainConfig, SceneMeta]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NerfkitError(f"{run_dir}: run folder not found; pass the --output of a train run")
    cpath, spath = run_dir / CONFIG_FILE, run_dir / SCENE_FILE
    for p in (cpath, spath):
        if not p.is_file():
            raise NerfkitError(f"{p}: missing; {run_dir} is not a nerfkit run folder")
    try:
        cfg = from_dict(TrainConfig, json.loads(cpath.read_text()))
        meta = from_dict(SceneMeta, json.loads(spath.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise NerfkitError(f"{run_dir}: unreadable run config ({e})") from None
    return cfg, meta  # type: ignore[return-value]


def load_checkpoint(run_dir: Path, device: torch.device) -> dict | None:
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise NerfkitError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from None


@dataclass
class LoadedRun:
    config: TrainConfig
    meta: SceneMeta
    method: Method
    step: int
    run_dir: Path


def load_run(run_dir: Path, device: str = "auto") -> LoadedRun:
    """A trained method from its run folder, in eval mode, on `device`."""
    run_dir = Path(run_dir)
    cfg, meta = read_run_config(run_dir)
    dev = pick_device(device)
    ckpt = load_checkpoint(run_dir, dev)
    if ckpt is None:
        raise NerfkitError(f"{run_dir}: no {CHECKPOINT_FILE} yet; train first (or wait for one)")
    method = build_method(cfg, meta).to(dev)
    method.load_state_dict(ckpt["model"])
    method.eval()
    return LoadedRun(cfg, meta, method, int(ckpt["step"]), run_dir)
