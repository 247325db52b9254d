"""The run folder: resolved config, scene facts, checkpoints. Everything eval/render need."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from nerfkit.config import TrainConfig, from_dict, save_json_atomic, to_dict
from nerfkit.data.scene import SceneMeta
from nerfkit.errors import NerfkitError
from nerfkit.methods import METHODS, Method

CONFIG_FILE = "config.json"
SCENE_FILE = "scene.json"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NerfkitError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def build_method(cfg: TrainConfig, meta: SceneMeta) -> Method:
    if cfg.method not in METHODS:
        raise NerfkitError(f"unknown --method '{cfg.method}'; known: {', '.join(sorted(METHODS))}")
    spec = METHODS[cfg.method]
    return spec.method_cls(cfg.method_config(), meta)


def save_run_files(run_dir: Path, cfg: TrainConfig, meta: SceneMeta) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    save_json_atomic(run_dir / CONFIG_FILE, to_dict(cfg))
    save_json_atomic(run_dir / SCENE_FILE, meta.to_dict())


def save_checkpoint(run_dir: Path, state: dict) -> Path:
    """torch.save to a temporary file, then rename: a crash never leaves a broken checkpoint."""
    path = run_dir / CHECKPOINT_FILE
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


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
