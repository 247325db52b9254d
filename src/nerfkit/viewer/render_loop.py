"""The viewer's render thread: renders what a viewer camera sees, chunk by chunk, beside training.

Sharing the method with the Trainer: both take one `FairLock` -- the Trainer around each
`train_step`, the render thread around each chunk of rays it renders -- so the render thread
never reads half-updated parameters (or a grid the method is replacing), and training waits at
most one chunk (the chunk is sized from the measured rays/s to take about `max_hold_s`). The lock
is first come, first served: the Trainer, which takes it again straight after releasing it, cannot
starve the render thread (with a plain `threading.Lock` it usually would).

Resolution: while the camera moves, frames are rendered at the height that the measured rays/s
renders in `frame_s` (`adaptive_height`); once the camera has rested for `rest_s`, at full
resolution. A full-resolution render is abandoned between chunks as soon as the camera moves
again (a moving frame is short: it is finished, then the latest camera is drawn). While training
runs, a resting view is re-rendered to show the progress every `refresh_s`, or less often
where a frame's rendering would otherwise take more than `rest_share` of the time.

No viser here: `show` is any callback taking the finished uint8 image (tested without a browser).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from nerfkit.data.scene import SceneMeta
from nerfkit.media import colorize_depth, to_uint8
from nerfkit.methods.base import Method, RenderedImage
from nerfkit.viewer.camera import view_size, viewer_cameras

OutputMode = Literal["rgb", "depth", "opacity"]
OUTPUT_MODES: tuple[OutputMode, ...] = ("rgb", "depth", "opacity")


class FairLock:
    """A first-come, first-served mutex (a ticket lock): threads get it in the order they asked.

    Used as `with lock:`. Uncontended it costs two condition-variable round trips (microseconds).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0

    def acquire(self) -> None:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while self._serving != ticket:
                self._cond.wait()

    def release(self) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def waiting(self) -> int:
        """Threads holding or waiting for the lock."""
        with self._cond:
            return self._next_ticket - self._serving


def adaptive_height(rays_per_s: float, frame_s: float, aspect: float, lo: int, hi: int) -> int:
    """Image height whose rays take about `frame_s` seconds at `rays_per_s`, within [lo, hi].

    A `h` x `aspect * h` image has aspect * h^2 rays, so h = sqrt(rays_per_s * frame_s / aspect).
    """
    if not rays_per_s > 0:
        return lo
    h = int(math.sqrt(rays_per_s * frame_s / aspect))
    return max(lo, min(hi, h))


def chunk_rays(rays_per_s: float, max_hold_s: float, lo: int, hi: int) -> int:
    """Rays per chunk so that one chunk (one hold of the lock) takes about `max_hold_s`."""
    if not rays_per_s > 0:
        return lo
    return max(lo, min(hi, int(rays_per_s * max_hold_s)))


@dataclass(frozen=True)
class ViewState:
    """What one viewer client looks at.

    c2w: [4, 4] camera-to-world (OpenGL frame); fov_y: vertical field of view (radians);
    aspect: width / height of the client's canvas; height: the canvas height in pixels (the full
    resolution, capped by the loop's `max_height`); time: the time slider (dynamic runs) or None.
    """

    c2w: np.ndarray
    fov_y: float
    aspect: float
    height: int
    mode: OutputMode = "rgb"
    time: float | None = None


def view_bounds(meta: SceneMeta, position: np.ndarray) -> tuple[float, float]:
    """(near, far) of the rays of a viewer camera at `position` [3].

    The scene's [near, far] holds the content as seen from the training cameras. A viewer camera
    may be farther out (or nearer in): its bounds are the scene's moved by how much farther from
    the centre of the scene box it is than the median training camera, so the content stays
    between them (unchanged at the training cameras' distance; near stays > 0). NDC scenes, and
    runs without training poses, keep the scene's bounds.
    """
    if meta.ndc or not meta.train_c2w:
        return meta.near, meta.far
    center = np.asarray(meta.aabb, dtype=np.float64).mean(0)
    train = np.asarray(meta.train_c2w, dtype=np.float64)[:, :3, 3]
    offset = np.linalg.norm(np.asarray(position) - center) - np.median(
        np.linalg.norm(train - center, axis=-1)
    )
    near = max(meta.near + offset, 1e-3 * (meta.far - meta.near))
    return float(near), float(max(meta.far + offset, near + 1e-3))


def render_chunked(
    method: Method,
    meta: SceneMeta,
    view: ViewState,
    height: int,
    lock: FairLock,
    chunk: int,
    cancelled: Callable[[], bool] = lambda: False,
    stats: dict[str, float] | None = None,
) -> RenderedImage | None:
    """Render `view` at `height` pixels high, `chunk` rays per forward call, each call holding
    `lock` (and the method in eval mode only while it is held). None when `cancelled()` turns
    true between chunks. `stats["busy_s"]` (if given) accumulates the seconds the lock was held.

    Returns:
        rgb [H, W, 3], depth [H, W], acc [H, W] on the CPU (as `Method.render_image`).
    """
    w, h = view_size(height, view.aspect)
    cams = viewer_cameras(view.c2w, view.fov_y, w, h)
    near, far = view_bounds(meta, view.c2w[:3, 3])
    rays = cams.image_rays(0, near, far, ndc=meta.ndc, time=view.time)
    device = method.background.device
    parts: list[tuple[torch.Tensor, ...]] = []
    for i in range(0, len(rays), chunk):
        if cancelled():
            return None
        batch = rays[i : i + chunk].to(device)
        with lock, torch.no_grad():
            t0 = time.perf_counter()
            was_training = method.training
            method.eval()
            try:
                out = method(batch)
            finally:
                method.train(was_training)
            parts.append((out.rgb.float().cpu(), out.depth.float().cpu(), out.acc.float().cpu()))
            if stats is not None:
                stats["busy_s"] = stats.get("busy_s", 0.0) + time.perf_counter() - t0
    rgb, depth, acc = (torch.cat(p) for p in zip(*parts))
    return RenderedImage(rgb.reshape(h, w, 3).clamp(0, 1), depth.reshape(h, w), acc.reshape(h, w))


def display_image(
    img: RenderedImage, mode: OutputMode, depth_range: tuple[float, float]
) -> np.ndarray:
    """The uint8 [H, W, 3] picture of one output: the colour, the depth (turbo colour map over
    `depth_range`, white where nothing is hit, as `nerfkit eval`'s depth PNGs) or the opacity
    (grey levels)."""
    if mode == "rgb":
        return to_uint8(img.rgb)
    if mode == "depth":
        return colorize_depth(img.depth, *depth_range, acc=img.acc)
    if mode == "opacity":
        return to_uint8(img.acc[..., None].expand(-1, -1, 3))
    raise ValueError(f"unknown output mode {mode!r}; one of {OUTPUT_MODES}")


class RenderLoop:
    """A daemon thread that renders the latest `ViewState` and hands each frame to `show`.

    Args:
        method, meta: what to render (the Trainer's live method, or a loaded run's).
        lock: shared with the Trainer (`Trainer.render_lock`); a private one when viewing a run.
        show: called with each finished frame, uint8 [H, W, 3], from the render thread.
        max_height: full resolution is the client's canvas height, capped at this.
        min_height: the smallest moving-camera frame.
        frame_s: seconds per frame while the camera moves (adaptive resolution).
        rest_s: the camera rests once it has not moved for this long: full resolution.
        max_hold_s: seconds one chunk may hold the lock (training waits at most this).
        refresh_s: while training (`invalidate` called), re-render a resting view this often...
        rest_share: ...or so that these re-renders hold the lock at most this share of the time.
    """

    def __init__(
        self,
        method: Method,
        meta: SceneMeta,
        show: Callable[[np.ndarray], None],
        lock: FairLock | None = None,
        max_height: int = 1080,
        min_height: int = 24,
        frame_s: float = 0.1,
        rest_s: float = 0.3,
        max_hold_s: float = 0.02,
        refresh_s: float = 2.0,
        rest_share: float = 0.1,
    ) -> None:
        self.method, self.meta, self.show = method, meta, show
        self.lock = lock if lock is not None else FairLock()
        self.max_height, self.min_height = max_height, min_height
        self.frame_s, self.rest_s = frame_s, rest_s
        self.max_hold_s, self.refresh_s, self.rest_share = max_hold_s, refresh_s, rest_share
        self.rays_per_s = 0.0
        """Measured frame speed, rays per second (moving average; the waits for training steps
        included): sets the moving-camera resolution."""
        self.compute_rays_per_s = 0.0
        """Rays per second while holding the lock (moving average): sets the chunk size."""
        self.frames = 0
        """Frames shown so far."""
        self.last_height = 0
        """Height of the last frame shown."""
        self.error: BaseException | None = None
        """The exception that stopped the thread, if one did."""
        self._state = threading.Condition()
        self._view: ViewState | None = None
        self._version = 0
        self._moved_at = 0.0
        self._params_version = 0
        self._stop = False
        self._shown: tuple[int, int] | None = None  # (view version, height) of the last frame
        self._thread = threading.Thread(target=self._run, name="nerfkit-viewer-render", daemon=True)

    # -- called from other threads -------------------------------------------------------------
    def start(self) -> RenderLoop:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop (it stops between chunks) and wait for it."""
        with self._state:
            self._stop = True
            self._state.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def set_view(self, view: ViewState) -> None:
        """A new camera (or output, or time): abandons the frame being rendered."""
        with self._state:
            self._view = view
            self._version += 1
            self._moved_at = time.monotonic()
            self._state.notify_all()

    def update_view(self, **changes: object) -> None:
        """`set_view` with some fields of the current view changed (mode=, time=, ...)."""
        with self._state:
            view = self._view
        if view is not None:
            self.set_view(replace(view, **changes))

    def invalidate(self) -> None:
        """The parameters changed (a training step): re-render within `refresh_s`."""
        with self._state:
            self._params_version += 1
            self._state.notify_all()

    def wait_frames(self, count: int, timeout: float) -> bool:
        """Block until `count` frames have been shown in all (True) or `timeout` passes."""
        end = time.monotonic() + timeout
        with self._state:
            while self.frames < count and self.error is None:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._state.wait(left)
        return self.frames >= count

    def idle(self, height: int | None = None) -> bool:
        """The current view has been shown at full resolution (of `height`, if given)."""
        with self._state:
            view, version, shown = self._view, self._version, self._shown
        if view is None or shown is None:
            return False
        full = self.target_height(view, moving=False)
        return shown == (version, full) and (height is None or full == height)

    # -- the thread ------------------------------------------------------------------------------
    def target_height(self, view: ViewState, moving: bool) -> int:
        """The adaptive rule: full height (canvas, capped) at rest; while moving, the height the
        measured rays/s renders in `frame_s` (at most the full height)."""
        full = max(1, min(view.height, self.max_height))
        if not moving:
            return full
        return adaptive_height(
            self.rays_per_s, self.frame_s, view.aspect, min(self.min_height, full), full
        )

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - reported through `error`, never silently
            with self._state:
                self.error = e
                self._state.notify_all()

    def _loop(self) -> None:
        done: tuple[int, int, int] | None = None  # (view version, height, params version) shown
        last_frame_t, period = 0.0, self.refresh_s
        while True:
            with self._state:
                if self._stop:
                    return
                view, version, moved_at = self._view, self._version, self._moved_at
                params = self._params_version
            if view is None:
                self._idle(0.05)
                continue
            now = time.monotonic()
            moving = now - moved_at < self.rest_s
            height = self.target_height(view, moving)
            fresh = done is not None and done[:2] == (version, height)
            stale = done is not None and params != done[2] and now - last_frame_t >= period
            if fresh and not stale:
                self._idle(0.02 if moving else 0.1)
                continue
            t0 = time.perf_counter()
            hi = self.method.eval_chunk_rays
            chunk = chunk_rays(self.compute_rays_per_s, self.max_hold_s, min(256, hi), hi)
            stats: dict[str, float] = {}
            # a moving frame (sized to take `frame_s`) is finished, then the latest view is
            # drawn; a full-resolution frame is abandoned as soon as the camera moves
            img = render_chunked(
                self.method, self.meta, view, height, self.lock, chunk,
                cancelled=lambda v=version, m=moving: self._stop or (
                    not m and self._version != v
                ),
                stats=stats,
            )  # fmt: skip
            if img is None:
                continue
            rays = img.rgb.shape[0] * img.rgb.shape[1]
            self.rays_per_s = _average(self.rays_per_s, rays / (time.perf_counter() - t0))
            busy = stats.get("busy_s", 0.0)
            self.compute_rays_per_s = _average(self.compute_rays_per_s, rays / max(busy, 1e-6))
            drange = (0.0, 1.0) if self.meta.ndc else view_bounds(self.meta, view.c2w[:3, 3])
            self.show(display_image(img, view.mode, drange))
            done, last_frame_t = (version, height, params), time.monotonic()
            period = max(self.refresh_s, busy / self.rest_share)
            with self._state:
                self.frames += 1
                self.last_height = height
                self._shown = (version, height)
                self._state.notify_all()

    def _idle(self, seconds: float) -> None:
        with self._state:
            if not self._stop:
                self._state.wait(seconds)


def _average(old: float, new: float, keep: float = 0.7) -> float:
    """Exponential moving average (the first measurement as it is)."""
    return new if old == 0 else keep * old + (1 - keep) * new
