"""The Trainer: random ray batches across all training images, Adam with exponential decay,
progress, validation renders, metrics (JSON lines + TensorBoard), atomic checkpoints, resume,
and Ctrl-C that saves before exiting."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from nerfkit import distributed
from nerfkit.cameras import Rays
from nerfkit.config import AUTO_METHOD, TrainConfig, to_dict
from nerfkit.data import Scene, Split, load_scene
from nerfkit.errors import NerfkitError
from nerfkit.media import colorize_depth, to_uint8, write_png
from nerfkit.methods import Method
from nerfkit.metrics import image_metrics, mse_to_psnr
from nerfkit.run import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    build_method,
    load_checkpoint,
    pick_device,
    read_run_config,
    remove_orphaned_checkpoints,
    run_lock,
    save_checkpoint,
    save_run_files,
)
from nerfkit.viewer import require_viser
from nerfkit.viewer.render_loop import FairLock
from nerfkit.viewer.server import training_viewer

DEFAULT_MAX_STEPS = 200_000


class TrainingInterrupted(NerfkitError):
    """Ctrl-C during training; the checkpoint has been saved."""


class RayBatcher:
    """Draws random batches of rays (and their true colours) across all images of a split; each
    ray carries the index of its image in the split (`Rays.camera`)."""

    def __init__(self, split: Split, near: float, far: float, ndc: bool, seed: int) -> None:
        self.split, self.near, self.far, self.ndc = split, near, far, ndc
        self.n, self.h, self.w = split.images.shape[:3]
        self.pixels = split.images.reshape(-1, 3)
        self.gen = torch.Generator().manual_seed(seed)

    def sample(
        self,
        count: int,
        crop_frac: float | None = None,
        part: slice | None = None,
        max_time: float | None = None,
        one_image: bool = False,
    ) -> tuple[Rays, Tensor]:
        """`count` random rays; with `crop_frac`, only from the central crop of each image.
        With `part`, only those rows of the `count` drawn (a rank's slice of the global batch:
        every rank draws the whole batch, so the generator stays the same on all of them).
        With `max_time` (dynamic scenes), only from the images whose time is at most it (at
        least the earliest image): a curriculum over time (`Method.max_train_time`). With
        `one_image`, every ray from the same random image (`Method.one_image_per_step`)."""
        g = self.gen
        allowed = self._allowed(max_time)
        n = self.n if allowed is None else allowed.shape[0]
        if crop_frac is None and not one_image:
            idx = torch.randint(0, n * self.h * self.w, (count,), generator=g)
            cam = idx // (self.h * self.w)
            rem = idx % (self.h * self.w)
            if allowed is not None:
                cam = allowed[cam]
                idx = cam * (self.h * self.w) + rem
            py, px = rem // self.w, rem % self.w
        else:
            frac = 1.0 if crop_frac is None else crop_frac
            ch, cw = max(1, int(self.h * frac)), max(1, int(self.w * frac))
            # one image per ray, or (one_image) one image for the whole batch
            cam = torch.randint(0, n, (1 if one_image else count,), generator=g).expand(count)
            if allowed is not None:
                cam = allowed[cam]
            py = torch.randint(0, ch, (count,), generator=g) + (self.h - ch) // 2
            px = torch.randint(0, cw, (count,), generator=g) + (self.w - cw) // 2
            idx = (cam * self.h + py) * self.w + px
        if part is not None:
            idx, cam, py, px = idx[part], cam[part], py[part], px[part]
        times = None if self.split.times is None else self.split.times[cam]
        rays = self.split.cameras.rays(
            cam, px.float() + 0.5, py.float() + 0.5, self.near, self.far, ndc=self.ndc, time=times
        )
        rays.camera = cam  # the image index: per-image appearance
        if self.split.rig_cameras is not None:
            rays.rig_camera = self.split.rig_cameras[cam]
        return rays, self.pixels[idx]

    def _allowed(self, max_time: float | None) -> Tensor | None:
        """Indices [K] of the images with time <= max_time (the earliest if none), or None for
        all images (no limit, no times, or every image allowed)."""
        times = self.split.times
        if max_time is None or times is None:
            return None
        ok = times <= max_time + 1e-9
        if bool(ok.all()):
            return None
        if not bool(ok.any()):
            ok = times == times.min()
        return ok.nonzero()[:, 0]


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    elapsed: float
    train_psnr: float
    val_psnr: float | None
    rank: int = 0
    """Under torchrun, the rank that returned this (only rank 0 validates and reports)."""


def _lr_at(cfg: TrainConfig, progress: float) -> float:
    return cfg.lr * (cfg.lr_final / cfg.lr) ** min(max(progress, 0.0), 1.0)


def _progress(cfg: TrainConfig, step: int, elapsed: float) -> float:
    p = 0.0
    if cfg.max_steps is not None:
        p = max(p, step / max(cfg.max_steps, 1))
    if cfg.max_minutes is not None:
        p = max(p, elapsed / (60.0 * cfg.max_minutes))
    return p


def _fmt_seconds(s: float) -> str:
    s = int(max(s, 0))
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


class Trainer:
    """Trains one method on one scene into one run folder."""

    def __init__(self, cfg: TrainConfig, scene: Scene | None = None) -> None:
        self.cfg = cfg
        if cfg.viewer:
            require_viser()  # a missing extra fails before any data is read
        self.render_lock = FairLock()
        """Held around each training step; the viewer's render thread takes it per chunk."""
        if cfg.method != AUTO_METHOD:
            cfg.method_spec()  # an unknown --method fails before the data is read
        if cfg.max_steps is None and cfg.max_minutes is None:
            cfg.max_steps = DEFAULT_MAX_STEPS
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        if scene is None:
            if cfg.data is None:
                raise NerfkitError("--data DIR is required (or --resume RUN)")
            scene = load_scene(
                cfg.data, format=cfg.format, downscale=cfg.downscale, ndc=cfg.ndc_choice()
            )
        self.scene = scene
        cfg.resolve_method(scene.meta.dynamic)
        cfg.resolve_defaults()
        self.run_dir = Path(cfg.output)
        meta = scene.meta
        torch.manual_seed(cfg.seed)
        self.method: Method = build_method(cfg, meta).to(self.device)
        if scene.points is not None:
            self.method.use_points(scene.points.to(self.device))
        self.build_optimizer()
        train = scene.split("train")
        self.batcher = RayBatcher(train, meta.near, meta.far, meta.ndc, cfg.seed)
        # under torchrun: this rank's contiguous slice of every global batch
        self.rank, self.world = distributed.rank(), distributed.world_size()
        if cfg.batch_rays < self.world:
            raise NerfkitError(
                f"--batch-rays {cfg.batch_rays} is fewer than the {self.world} ranks; give each "
                "rank at least one ray (--batch-rays is the global batch)"
            )
        self.part = distributed.shard(cfg.batch_rays, self.rank, self.world)
        self.val_split = scene.splits.get("val") or scene.splits.get("test") or train
        self.step, self.elapsed = 0, 0.0
        self.last_val: float | None = None

    def build_optimizer(self) -> None:
        """(Re)create Adam over the method's current parameter groups (fresh moments)."""
        cfg = self.cfg
        groups = self.method.param_groups(cfg.lr)
        params = [p for g in groups for p in g["params"]]
        # fused Adam: one pass over each tensor instead of ~6 (5x faster on 50M grid values)
        fused = all(p.dtype == torch.float32 and p.device.type in ("cpu", "cuda") for p in params)
        self.optim = torch.optim.Adam(
            groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-7, fused=fused or None
        )
        self.base_lrs = [g["lr"] for g in self.optim.param_groups]

    # -- checkpoints --------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "model": self.method.state_dict(),
            "optimizer": self.optim.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "rng_batch": self.batcher.gen.get_state(),
            "method": self.cfg.method,
        }

    def load_state(self, ckpt: dict) -> None:
        self.method.load_state_dict(ckpt["model"])
        self.build_optimizer()  # the method's parameters may have been replaced (grown grids)
        self.optim.load_state_dict(ckpt["optimizer"])
        self.step, self.elapsed = int(ckpt["step"]), float(ckpt["elapsed"])
        torch.set_rng_state(ckpt["rng_torch"])
        self.batcher.gen.set_state(ckpt["rng_batch"])

    def save(self) -> None:
        """Write the checkpoint (rank 0 only under torchrun: the others hold the same state)."""
        if distributed.is_main_process():
            save_checkpoint(self.run_dir, self.state())

    # -- validation ---------------------------------------------------------------------------
    def validate(self, max_size: int = 200) -> float:
        """Render the first validation view (reduced to <= max_size pixels a side) as a PNG."""
        split, meta = self.val_split, self.scene.meta
        factor = max(1, math.ceil(max(split.cameras.height, split.cameras.width) / max_size))
        cams = split.cameras.scaled(factor)
        view = split.view_args(0)
        out = self.method.render_image(cams, 0, meta.near, meta.far, ndc=meta.ndc, **view)
        from nerfkit.data.io import downscale_image

        true = downscale_image(split.images[0], factor)[: cams.height, : cams.width]
        val_psnr = image_metrics(out.rgb, true)["psnr"]
        depth = colorize_depth(out.depth, *self._depth_range(), acc=out.acc)
        panel = torch.cat([out.rgb, true], dim=1)
        import numpy as np

        img = np.concatenate([to_uint8(panel), depth], axis=1)
        write_png(self.run_dir / "val" / f"step_{self.step:07d}.png", img)
        return val_psnr

    def _depth_range(self) -> tuple[float, float]:
        meta = self.scene.meta
        return (0.0, 1.0) if meta.ndc else (meta.near, meta.far)

    # -- the loop -----------------------------------------------------------------------------
    def done(self) -> bool:
        cfg = self.cfg
        return (cfg.max_steps is not None and self.step >= cfg.max_steps) or (
            cfg.max_minutes is not None and self.elapsed >= 60.0 * cfg.max_minutes
        )

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        if self.method.step_callback(self.step):
            # the method replaced its parameters (e.g. grew its grids): new optimiser state
            self.build_optimizer()
        progress = _progress(cfg, self.step, self.elapsed)
        lr_scale = _lr_at(cfg, progress) / cfg.lr
        for g, base in zip(self.optim.param_groups, self.base_lrs):
            g["lr"] = base * lr_scale
        crop = cfg.precrop_frac if self.step < cfg.precrop_steps else None
        max_time = self.method.max_train_time(self.step, progress)
        one = self.method.one_image_per_step
        rays, rgb = self.batcher.sample(cfg.batch_rays, crop, self.part, max_time, one)
        rays, rgb = rays.to(self.device), rgb.to(self.device)
        # per-ray random draws (jitter, noise) are this rank's rows of the global batch's
        with distributed.global_batch_draws(self.part, cfg.batch_rays):
            out = self.method(rays)
            losses = self.method.loss(out, rgb)
        # each rank's mean loss weighted by its share of the global batch: the ranks' averaged
        # gradient is the gradient of the global batch's mean loss (1 for a single process)
        share = self.world * len(rays) / cfg.batch_rays
        self.optim.zero_grad(set_to_none=True)
        (losses["loss"] * share).backward()
        with torch.no_grad():
            mse = torch.mean((out.rgb.detach() - rgb) ** 2)
            stats = [losses["loss"].detach().float(), mse.float()]
            if out.num_samples is not None:  # methods with adaptive sampling report their count
                stats.append(out.num_samples.to(mse).float() / len(rays))
            stats = torch.stack(stats) * share
        params = [p for g in self.optim.param_groups for p in g["params"]]
        stats = distributed.average_gradients(params, stats)  # the global batch's values
        self.optim.step()
        self.step += 1
        loss, mse, *samples = stats.tolist()
        info = {"loss": loss, "psnr": mse_to_psnr(mse), "lr": cfg.lr * lr_scale}
        if samples:
            info["samples_per_ray"] = samples[0]
        return info

    def fit(self) -> TrainResult:
        cfg = self.cfg
        # under torchrun, rank 0 alone writes the run folder, logs and shows progress
        main = distributed.is_main_process()
        if self.world > 1:
            distributed.check_same(self._digest(), "config, step or initial model")
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_run_files(self.run_dir, cfg, self.scene.meta)
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step or None) if main else None
        log_path = self.run_dir / METRICS_FILE if main else Path(os.devnull)
        log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115
        bar = None
        if cfg.progress and main:
            from tqdm import tqdm

            # a step budget counts steps; a time budget alone counts seconds of training
            by_time = cfg.max_steps is None
            bar = tqdm(
                total=round(60 * cfg.max_minutes) if by_time else cfg.max_steps,
                initial=int(self.elapsed) if by_time else self.step,
                unit="s" if by_time else "step",
                dynamic_ncols=True,
                desc="train",
                smoothing=0.05,
            )
        self.method.prepare()  # before the clock: e.g. the first build of a compiled kernel
        viewer = training_viewer(self) if main and cfg.viewer else None
        start_step, last = self.step, {"psnr": float("nan")}
        window_t, window_rays = 0.0, 0
        try:
            while not self.done():
                t0 = time.perf_counter()
                with self.render_lock:  # the viewer renders between steps, never during one
                    last = self.train_step()
                dt = time.perf_counter() - t0
                self.elapsed += dt
                if self.world > 1 and cfg.max_minutes is not None:
                    # rank 0's clock for the time-based schedule and stop: ranks never drift
                    (self.elapsed,) = distributed.broadcast_values([self.elapsed])
                window_t += dt
                window_rays += cfg.batch_rays
                if bar is not None:
                    if by_time:
                        bar.n = min(int(self.elapsed), bar.total)
                        bar.set_description(f"train step {self.step}", refresh=False)
                    bar.update(0 if by_time else 1)
                if main and (self.step % cfg.log_every == 0 or self.done()):
                    rps = window_rays / max(window_t, 1e-9)
                    rec = {
                        "step": self.step,
                        "time": round(self.elapsed, 3),
                        **last,
                        "rays_per_s": round(rps, 1),
                    }
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    for k in ("loss", "psnr", "lr", "rays_per_s", "samples_per_ray"):
                        if k in rec:
                            tb.add_scalar(f"train/{k}", rec[k], self.step)
                    if bar is not None:
                        bar.set_postfix_str(
                            f"loss={last['loss']:.4f} psnr={last['psnr']:.2f} "
                            f"rays/s={rps:,.0f} left={_fmt_seconds(self._time_left(window_t))}"
                        )
                    window_t, window_rays = 0.0, 0
                if main and cfg.val_every and self.step % cfg.val_every == 0:
                    self._validate_and_log(tb, log)
                if viewer is not None:
                    viewer.update_progress(self.step, cfg.max_steps, last["psnr"], self.last_val)
                if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                    self.save()
        except KeyboardInterrupt:
            self.save()
            if bar is not None:
                bar.close()
            raise TrainingInterrupted(
                f"interrupted at step {self.step}; checkpoint saved in "
                f"{self.run_dir / CHECKPOINT_FILE}; continue with: nerfkit train --resume "
                f"{self.run_dir}"
            ) from None
        finally:
            log.close()
            if viewer is not None:
                viewer.close()
        if bar is not None:
            bar.close()
        if main and (self.step > start_step or not (self.run_dir / CHECKPOINT_FILE).exists()):
            if cfg.val_every and self.step % cfg.val_every != 0:  # else validated in the loop
                with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as log:
                    self._validate_and_log(tb, log)
            self.save()
        if tb is not None:
            tb.close()
        return TrainResult(
            self.run_dir, self.step, self.elapsed, last["psnr"], self.last_val, self.rank
        )

    def _time_left(self, window_t: float) -> float:
        cfg = self.cfg
        per_step = self.elapsed / max(self.step, 1)
        left = math.inf
        if cfg.max_steps is not None:
            left = (cfg.max_steps - self.step) * per_step
        if cfg.max_minutes is not None:
            left = min(left, 60.0 * cfg.max_minutes - self.elapsed)
        return left

    def _digest(self) -> str:
        """What all ranks must share to train together: config, step, model (a digest)."""
        h = hashlib.sha256(json.dumps(to_dict(self.cfg), sort_keys=True).encode())
        h.update(str(self.step).encode())
        for p in self.method.parameters():
            h.update(f"{tuple(p.shape)}{float(p.detach().double().sum())!r}".encode())
        return h.hexdigest()

    def _validate_and_log(self, tb: object, log: object) -> None:
        # validation draws nothing from the training's random stream (ranks stay in step)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            self.last_val = self.validate()
        tb.add_scalar("val/psnr", self.last_val, self.step)  # type: ignore[attr-defined]
        log.write(
            json.dumps(
                {
                    "step": self.step,
                    "time": round(self.elapsed, 3),  # type: ignore
                    "val_psnr": self.last_val,
                }
            )
            + "\n"
        )
        log.flush()  # type: ignore[attr-defined]


def train(cfg: TrainConfig, scene: Scene | None = None) -> TrainResult:
    """Train from scratch, or continue `cfg.resume` with its saved config.

    Holds the run folder's lock (`run_lock`) while it writes there, so a second `train` into
    the same folder fails at once. A new run folder is made (and locked) only once the data
    has loaded and the method is built, so bad input leaves no folder behind.

    Under torchrun (docs/distributed.md) each rank trains on its slice of every batch; rank 0
    alone locks and writes the run folder, and an error while starting on any rank stops all.
    """
    with distributed.process_group(pick_device(cfg.device), cfg.dist_timeout):
        if cfg.resume is not None:
            return _resume(cfg, scene)
        return _train_new(cfg, scene)


def _train_new(cfg: TrainConfig, scene: Scene | None) -> TrainResult:
    out = Path(cfg.output)
    if cfg.data is not None:
        cfg.data = Path(cfg.data).resolve()  # the run folder must work from any directory
    main = distributed.is_main_process()
    with ExitStack() as held:
        with distributed.agreed("starting training"):
            locked = main and out.is_dir()
            if locked:  # another `train` may be writing it: fail before loading any data
                held.enter_context(run_lock(out))
            if main:
                _refuse_trained(out)
            trainer = Trainer(cfg, scene)
        with distributed.agreed("creating the run folder"):  # only once every rank is ready
            if main and not locked:
                out.mkdir(parents=True, exist_ok=True)
                held.enter_context(run_lock(out))
                _refuse_trained(out)  # another `train` may have made it while the data loaded
        return trainer.fit()


def _refuse_trained(out: Path) -> None:
    """A fresh run must not overwrite the trained run in `out`."""
    if (out / CHECKPOINT_FILE).exists():
        raise NerfkitError(
            f"{out} already holds a trained run; continue it with --resume {out} or choose "
            "another --output"
        )


def _resume(cfg: TrainConfig, scene: Scene | None) -> TrainResult:
    """Continue the run in `cfg.resume` under its lock; temporary checkpoints a crash left
    there are deleted first. Under torchrun every rank reads the run folder (it must be on a
    filesystem they all see) with any number of ranks; rank 0 alone locks and writes it."""
    run_dir = Path(cfg.resume)
    main = distributed.is_main_process()
    with ExitStack() as held:
        with distributed.agreed("resuming"):
            saved, _ = read_run_config(run_dir)
            saved.output = run_dir
            saved.progress = cfg.progress
            saved.viewer, saved.viewer_host = cfg.viewer, cfg.viewer_host
            saved.viewer_port = cfg.viewer_port
            if main:
                held.enter_context(run_lock(run_dir))
                remove_orphaned_checkpoints(run_dir)
            trainer = Trainer(saved, scene)
            ckpt = load_checkpoint(run_dir, trainer.device)
            if ckpt is None:
                raise NerfkitError(f"{run_dir}: no {CHECKPOINT_FILE} to resume from")
            trainer.load_state(ckpt)
        if trainer.done():
            if main:
                print(f"{run_dir}: already complete at step {trainer.step}; nothing to do")
            return TrainResult(
                run_dir, trainer.step, trainer.elapsed, float("nan"), None, trainer.rank
            )
        return trainer.fit()
