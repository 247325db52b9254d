"""The viser viewer: a web page that shows a method as it trains (or a trained run).

One `RenderLoop` per connected browser renders what its camera sees and sends it as the page's
background image. The page shows the training cameras as frustums with thumbnails (click one to
look through it), an output switch (RGB / depth / opacity), a time slider for dynamic runs, the
training progress and PSNR, and a keyframe camera-path editor that writes nerfstudio
camera-path JSON and shows the `nerfkit render` command for it.

Nothing waits for a browser: without one the server only listens. viser ships its web client in
its wheel, so the viewer works offline; it binds `host:port` (127.0.0.1 by default: reach it from
another machine through SSH port forwarding, `ssh -L PORT:127.0.0.1:PORT HOST`).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nerfkit.data.scene import SceneMeta
from nerfkit.media import to_uint8
from nerfkit.methods.base import Method
from nerfkit.poses import focus_point
from nerfkit.viewer import require_viser
from nerfkit.viewer.camera import c2w_to_viser, fov_y_of, viser_to_c2w
from nerfkit.viewer.path_editor import Keyframe, render_command, save_keyframe_path
from nerfkit.viewer.render_loop import OUTPUT_MODES, FairLock, RenderLoop, ViewState

THUMBNAIL_SIZE = 96  # longest side of a frustum's thumbnail, pixels


def thumbnails(images: torch.Tensor, size: int = THUMBNAIL_SIZE) -> list[np.ndarray]:
    """Training images [N, H, W, 3] in [0, 1] -> uint8 thumbnails, longest side <= `size`."""
    n, h, w = images.shape[:3]
    step = max(1, math.ceil(max(h, w) / size))
    return [to_uint8(images[k, ::step, ::step]) for k in range(n)]


def server_url(host: str, port: int) -> str:
    """The address to open in a browser (0.0.0.0 / :: listen everywhere: localhost works)."""
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


@dataclass
class ViewerProgress:
    """What the status line shows: the step, the planned steps (None: a time budget or a
    finished run), the latest training PSNR and validation PSNR."""

    step: int = 0
    max_steps: int | None = None
    psnr: float | None = None
    val_psnr: float | None = None
    training: bool = False

    def markdown(self) -> str:
        what = "Training" if self.training else "Trained run"
        steps = f"step {self.step:,}" + (f" / {self.max_steps:,}" if self.max_steps else "")
        out = f"**{what}**: {steps}"
        if self.psnr is not None and math.isfinite(self.psnr):
            out += f"  \ntrain PSNR {self.psnr:.2f} dB"
        if self.val_psnr is not None:
            out += f"  \nval PSNR {self.val_psnr:.2f} dB"
        return out


class Viewer:
    """A viser server showing `method` to every connected browser.

    Args:
        method, meta: what to show (the Trainer's live method, or a loaded run's).
        lock: shared with the Trainer (`Trainer.render_lock`); None: a private one.
        host, port: where to listen (viser moves to the next free port if `port` is taken; the
            `url` says where it is).
        run_dir: the run folder (camera paths are saved under RUN/camera_paths/).
        thumbnails: one uint8 image per training camera (frustum pictures), or None.
        image_format: how frames travel to the browser, "jpeg" (small) or "png" (exact).
        max_height: full resolution cap (pixels).
        loop_options: more `RenderLoop` arguments (frame_s, rest_s, ...).
    """

    def __init__(
        self,
        method: Method,
        meta: SceneMeta,
        lock: FairLock | None = None,
        host: str = "127.0.0.1",
        port: int = 7007,
        run_dir: Path | None = None,
        thumbnails: list[np.ndarray] | None = None,
        image_format: str = "jpeg",
        max_height: int = 1080,
        loop_options: dict | None = None,
        progress: ViewerProgress | None = None,
    ) -> None:
        viser = require_viser()
        self.method, self.meta = method, meta
        self.lock = lock if lock is not None else FairLock()
        self.run_dir = Path(run_dir) if run_dir is not None else Path("runs/latest")
        self.image_format = image_format
        self.loop_options = {"max_height": max_height, **(loop_options or {})}
        self.progress = progress or ViewerProgress()
        self.loops: dict[int, RenderLoop] = {}
        self.keyframes: list[Keyframe] = []
        self._loops_lock = threading.Lock()
        self._last_status = 0.0
        self.farewell = ""
        """Printed when the viewer closes."""
        check_host(host, port)  # viser waits forever for an address it cannot bind
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.host, self.port = host, self.server.get_port()
        self._train_c2w = np.asarray(meta.train_c2w, dtype=np.float64).reshape(-1, 4, 4)
        self._train_fov = fov_y_of(meta.focal, meta.height) if meta.focal else 0.9
        self._setup_scene(thumbnails)
        self._setup_gui()
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)

    @property
    def url(self) -> str:
        return server_url(self.host, self.port)

    # -- the scene -------------------------------------------------------------------------------
    def _setup_scene(self, thumbs: list[np.ndarray] | None) -> None:
        scene, c2w = self.server.scene, self._train_c2w
        self.frustums = []
        self._frustum_scale = 0.1
        if len(c2w) == 0:
            return
        up = c2w[:, :3, 1].mean(0)
        up = up / max(np.linalg.norm(up), 1e-9)
        scene.set_up_direction(tuple(float(x) for x in up))
        center = focus_point(torch.tensor(c2w, dtype=torch.float32)).double().numpy()
        radius = float(np.median(np.linalg.norm(c2w[:, :3, 3] - center, axis=-1)))
        scale = self._frustum_scale = 0.05 * radius if radius > 0 else 0.1
        cam = self.server.initial_camera  # behind training camera 0, the cameras in view
        cam.position = tuple(center + 1.8 * (c2w[0, :3, 3] - center))
        cam.look_at = tuple(center)
        cam.up = tuple(up)
        cam.fov = self._train_fov
        aspect = self.meta.width / max(self.meta.height, 1)
        for k, pose in enumerate(c2w):
            wxyz, pos = c2w_to_viser(pose)
            handle = scene.add_camera_frustum(
                f"/train_cameras/{k:04d}",
                fov=self._train_fov,
                aspect=aspect,
                scale=scale,
                thickness=0.03 * scale,
                color=(60, 60, 200),
                image=None if thumbs is None else thumbs[k],
                wxyz=wxyz,
                position=pos,
            )
            handle.on_click(lambda event, k=k: self.look_through(event.client, k))
            self.frustums.append(handle)

    def look_through(self, client: object, k: int) -> None:
        """Move `client`'s camera onto training camera k (and its time, for dynamic runs)."""
        wxyz, pos = c2w_to_viser(self._train_c2w[k])
        cam = client.camera  # type: ignore[attr-defined]
        with client.atomic():  # type: ignore[attr-defined]
            cam.fov = self._train_fov
            cam.wxyz = wxyz
            cam.position = pos
        if self.meta.dynamic and hasattr(self, "time_slider"):
            self.time_slider.value = float(self.meta.train_times[k])

    def set_cameras_visible(self, visible: bool) -> None:
        for h in self.frustums:
            h.visible = visible

    # -- the panel -------------------------------------------------------------------------------
    def _setup_gui(self) -> None:
        gui = self.server.gui
        self.status = gui.add_markdown(self.progress.markdown())
        self.mode = gui.add_dropdown("Output", OUTPUT_MODES, initial_value="rgb")
        self.mode.on_update(lambda _: self._update_loops(mode=self.mode.value))
        if self.meta.dynamic:
            self.time_slider = gui.add_slider("Time", 0.0, 1.0, 0.01, 0.0)
            self.time_slider.on_update(lambda _: self._update_loops(time=self.time_slider.value))
        self.resolution = gui.add_slider(
            "Max resolution", 64, 2048, 16, int(self.loop_options["max_height"])
        )
        self.resolution.on_update(lambda _: self._set_max_height(int(self.resolution.value)))
        self.show_cameras = gui.add_checkbox("Training cameras", True)
        self.show_cameras.on_update(lambda _: self.set_cameras_visible(self.show_cameras.value))
        with gui.add_folder("Camera path"):
            self.key_count = gui.add_markdown("0 keyframes")
            add = gui.add_button("Add keyframe")
            add.on_click(lambda event: self.add_keyframe(event.client))
            clear = gui.add_button("Clear keyframes")
            clear.on_click(lambda _: self.clear_keyframes())
            self.seconds = gui.add_number("Seconds", 4.0, min=0.1, step=0.1)
            self.fps = gui.add_number("FPS", 30, min=1, max=120, step=1)
            default = self.run_dir / "camera_paths" / "path.json"
            self.path_file = gui.add_text("File", str(default))
            save = gui.add_button("Save camera path")
            save.on_click(lambda event: self.save_path(event.client))
            self.command = gui.add_markdown("")

    def _set_max_height(self, height: int) -> None:
        self.loop_options["max_height"] = height
        for loop in self._all_loops():
            loop.max_height = height
            loop.update_view()

    def _update_loops(self, **changes: object) -> None:
        for loop in self._all_loops():
            loop.update_view(**changes)

    def _all_loops(self) -> list[RenderLoop]:
        with self._loops_lock:
            return list(self.loops.values())

    # -- clients ---------------------------------------------------------------------------------
    def _connect(self, client: object) -> None:
        fmt = self.image_format

        def show(img: np.ndarray) -> None:
            client.scene.set_background_image(img, format=fmt)  # type: ignore[attr-defined]

        loop = RenderLoop(self.method, self.meta, show, lock=self.lock, **self.loop_options)
        with self._loops_lock:
            self.loops[client.client_id] = loop  # type: ignore[attr-defined]
        client.camera.on_update(lambda cam: loop.set_view(self.view_state(cam)))  # type: ignore
        loop.start()

    def _disconnect(self, client: object) -> None:
        with self._loops_lock:
            loop = self.loops.pop(client.client_id, None)  # type: ignore[attr-defined]
        if loop is not None:
            loop.stop()

    def view_state(self, cam: object) -> ViewState:
        """The `ViewState` of a viser camera handle with the panel's output and time."""
        return ViewState(
            c2w=viser_to_c2w(cam.wxyz, cam.position),  # type: ignore[attr-defined]
            fov_y=float(cam.fov),  # type: ignore[attr-defined]
            aspect=float(cam.aspect),  # type: ignore[attr-defined]
            height=int(cam.image_height),  # type: ignore[attr-defined]
            mode=self.mode.value,
            time=float(self.time_slider.value) if self.meta.dynamic else None,
        )

    # -- camera path -----------------------------------------------------------------------------
    def add_keyframe(self, client: object) -> Keyframe:
        """The client's current camera (and time) as the next keyframe, drawn as a frustum."""
        view = self.view_state(client.camera)  # type: ignore[attr-defined]
        key = Keyframe(view.c2w, math.degrees(view.fov_y), view.time)
        self.keyframes.append(key)
        wxyz, pos = c2w_to_viser(key.c2w)
        self.server.scene.add_camera_frustum(
            f"/keyframes/{len(self.keyframes) - 1:03d}", fov=view.fov_y, aspect=view.aspect,
            scale=self._frustum_scale, thickness=0.03 * self._frustum_scale, color=(230, 120, 20),
            wxyz=wxyz, position=pos,
        )  # fmt: skip
        self.key_count.content = f"{len(self.keyframes)} keyframes"
        return key

    def clear_keyframes(self) -> None:
        self.keyframes.clear()
        self.server.scene.remove_by_name("/keyframes")
        self.key_count.content = "0 keyframes"

    def save_path(self, client: object | None = None) -> str:
        """Write the keyframe path to the File box's path; show and return the render command."""
        from nerfkit.errors import NerfkitError

        path = Path(self.path_file.value).expanduser()
        height = self.meta.height or 400
        aspect = float(client.camera.aspect) if client is not None else 1.0  # type: ignore
        try:
            save_keyframe_path(
                path,
                self.keyframes,
                width=round(height * aspect),
                height=height,
                seconds=float(self.seconds.value),
                fps=float(self.fps.value),
                scene_from_dataset=self.meta.data_transform or None,
            )
        except NerfkitError as e:
            self.command.content = f"**Not saved**: {e}"
            return ""
        cmd = render_command(self.run_dir, path)
        self.command.content = f"Saved. Render it with:\n\n```\n{cmd}\n```"
        return cmd

    # -- training --------------------------------------------------------------------------------
    def update_progress(
        self,
        step: int,
        max_steps: int | None = None,
        psnr: float | None = None,
        val_psnr: float | None = None,
        every_s: float = 0.5,
    ) -> None:
        """Training moved on: re-render resting views soon; refresh the status line (at most
        every `every_s` seconds)."""
        p = self.progress
        p.step, p.max_steps, p.training = step, max_steps, True
        if psnr is not None:
            p.psnr = psnr
        if val_psnr is not None:
            p.val_psnr = val_psnr
        for loop in self._all_loops():
            loop.invalidate()
        now = time.monotonic()
        if now - self._last_status >= every_s:
            self._last_status = now
            self.status.content = p.markdown()

    def close(self) -> None:
        for loop in self._all_loops():
            loop.stop()
        self.server.stop()
        if self.farewell:
            print(self.farewell, flush=True)


def check_host(host: str, port: int) -> None:
    """A one-line NerfkitError unless this machine can listen on `host` (any free port)."""
    import socket

    from nerfkit.errors import NerfkitError

    try:
        infos = socket.getaddrinfo(
            host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, addr = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind(addr)
    except OSError as e:
        raise NerfkitError(
            f"the viewer cannot listen on {host}:{port} ({e.strerror or e}); pass another --host "
            "(127.0.0.1: this machine only, 0.0.0.0: all interfaces)"
        ) from None


def announce(viewer: Viewer) -> str:
    """The lines that tell the user where the viewer is (also over SSH)."""
    return (
        f"viewer: {viewer.url}  (on a remote machine: ssh -L {viewer.port}:127.0.0.1:"
        f"{viewer.port} HOST, then open http://localhost:{viewer.port})"
    )


def view_run(
    run_dir: Path,
    host: str = "127.0.0.1",
    port: int = 7007,
    device: str = "auto",
    block: bool = True,
) -> Viewer:
    """`nerfkit view RUN`: show a trained run until Ctrl-C (or, with block=False, return the
    running viewer). The training cameras get thumbnails when the run's dataset is at hand."""
    from nerfkit.run import load_run

    run = load_run(run_dir, device)
    thumbs = _run_thumbnails(run)
    progress = ViewerProgress(step=run.step)
    viewer = Viewer(
        run.method, run.meta, host=host, port=port, run_dir=Path(run_dir), thumbnails=thumbs,
        progress=progress,
    )  # fmt: skip
    print(announce(viewer), flush=True)
    if not block:
        return viewer
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.close()
    return viewer


def _run_thumbnails(run: object) -> list[np.ndarray] | None:
    """Thumbnails of the run's training images, if its dataset folder still loads."""
    cfg, meta = run.config, run.meta  # type: ignore[attr-defined]
    if cfg.data is None or not Path(cfg.data).is_dir():
        return None
    from nerfkit.data import load_scene
    from nerfkit.errors import NerfkitError

    try:
        scene = load_scene(cfg.data, format=cfg.format, downscale=cfg.downscale, ndc=meta.ndc)
    except NerfkitError:
        return None
    train = scene.split("train")
    return thumbnails(train.images) if len(train) == len(meta.train_c2w) else None


def training_viewer(trainer: object) -> Viewer:
    """The viewer of `nerfkit train --viewer`: the Trainer's live method, sharing its
    `render_lock`, its training cameras with thumbnails; prints where it listens."""
    cfg, scene = trainer.cfg, trainer.scene  # type: ignore[attr-defined]
    viewer = Viewer(
        trainer.method, scene.meta, lock=trainer.render_lock,  # type: ignore[attr-defined]
        host=cfg.viewer_host, port=cfg.viewer_port, run_dir=trainer.run_dir,  # type: ignore
        thumbnails=thumbnails(scene.split("train").images),
        progress=ViewerProgress(step=trainer.step, max_steps=cfg.max_steps, training=True),  # type: ignore
    )  # fmt: skip
    print(announce(viewer), flush=True)
    viewer.farewell = (
        f"viewer closed with the training; keep looking: nerfkit view {trainer.run_dir}"  # type: ignore[attr-defined]
    )
    return viewer
