"""The viewer without a browser: camera conversions, the adaptive resolution rule, the render
thread and its lock beside training, the camera-path editor, and the one-line errors."""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli

from nerfkit.cameras import Rays
from nerfkit.config import TrainConfig
from nerfkit.data.scene import SceneMeta
from nerfkit.data.synthetic import generate_scene
from nerfkit.errors import NerfkitError
from nerfkit.methods import METHODS
from nerfkit.methods.base import Method, RenderOutput
from nerfkit.poses import orbit_pose
from nerfkit.run import build_method
from nerfkit.viewer.camera import c2w_to_viser, fov_y_of, view_size, viewer_cameras, viser_to_c2w
from nerfkit.viewer.path_editor import Keyframe, keyframe_path, render_command, save_keyframe_path
from nerfkit.viewer.render_loop import (
    FairLock,
    RenderLoop,
    ViewState,
    adaptive_height,
    chunk_rays,
    display_image,
    render_chunked,
    view_bounds,
)


def _random_c2w(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    from nerfkit.data.colmap import qvec_to_rotmat

    m = np.eye(4)
    m[:3, :3] = qvec_to_rotmat(q / np.linalg.norm(q))
    m[:3, 3] = rng.normal(size=3) * 3
    return m


# ----------------------------------------------------------------------------- cameras


def test_viser_identity_camera_looks_along_world_z_with_y_down() -> None:
    # viser/OpenCV: identity rotation = camera looking along world +z, image up = world -y
    c2w = viser_to_c2w(np.array([1.0, 0, 0, 0]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(c2w[:3, :3], np.diag([1.0, -1.0, -1.0]))
    np.testing.assert_allclose(-c2w[:3, 2], [0, 0, 1])  # nerfkit looks along its -z column
    np.testing.assert_allclose(c2w[:3, 3], [1, 2, 3])


def test_conversion_round_trips_and_keeps_the_view() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        c2w = _random_c2w(rng)
        wxyz, pos = c2w_to_viser(c2w)
        assert abs(np.linalg.norm(wxyz) - 1) < 1e-12 and wxyz[0] >= 0
        np.testing.assert_allclose(viser_to_c2w(wxyz, pos), c2w, atol=1e-12)
        from nerfkit.data.colmap import qvec_to_rotmat

        r_cv = qvec_to_rotmat(wxyz)
        np.testing.assert_allclose(r_cv[:, 2], -c2w[:3, 2], atol=1e-12)  # same look direction
        np.testing.assert_allclose(-r_cv[:, 1], c2w[:3, 1], atol=1e-12)  # same image up


def test_viewer_camera_rays_project_back_with_viser_intrinsics() -> None:
    """A point on the nerfkit ray through pixel (u, v) of the viewer camera projects, with
    viser's OpenCV pinhole (fov vertical, principal point centred), to (u, v)."""
    rng = np.random.default_rng(1)
    c2w = _random_c2w(rng)
    wxyz, pos = c2w_to_viser(c2w)
    fov, (w, h) = 0.8, view_size(30, 1.5)
    assert (w, h) == (45, 30)
    cams = viewer_cameras(c2w, fov, w, h)
    u = torch.tensor([0.5, 44.5, 20.0, 3.25])
    v = torch.tensor([0.5, 29.5, 11.0, 17.75])
    rays = cams.rays(torch.zeros(4, dtype=torch.long), u, v, 0.0, 1.0)
    pts = (rays.origins + 2.5 * rays.directions).double().numpy()
    from nerfkit.data.colmap import qvec_to_rotmat

    p_cam = (pts - pos) @ qvec_to_rotmat(wxyz)  # R^T (p - t), row vectors
    f = 0.5 * h / math.tan(0.5 * fov)
    np.testing.assert_allclose(f * p_cam[:, 0] / p_cam[:, 2] + w / 2, u.numpy(), atol=1e-4)
    np.testing.assert_allclose(f * p_cam[:, 1] / p_cam[:, 2] + h / 2, v.numpy(), atol=1e-4)
    assert fov_y_of(f, h) == pytest.approx(fov)


# ----------------------------------------------------------------------------- resolution


def test_adaptive_height_renders_a_frame_in_the_frame_time() -> None:
    # h * (aspect h) rays = rays_per_s * frame_s
    assert adaptive_height(1e6, 0.1, 1.0, 16, 2000) == 316
    assert adaptive_height(1e6, 0.1, 2.5, 16, 2000) == int(math.sqrt(1e5 / 2.5))
    assert adaptive_height(1e9, 0.1, 1.0, 16, 480) == 480  # never above full resolution
    assert adaptive_height(10.0, 0.1, 1.0, 16, 480) == 16
    assert adaptive_height(0.0, 0.1, 1.0, 16, 480) == 16  # not measured yet: the smallest
    assert chunk_rays(1e5, 0.02, 256, 4096) == 2000
    assert chunk_rays(1e9, 0.02, 256, 4096) == 4096 and chunk_rays(0.0, 0.02, 256, 4096) == 256


# ----------------------------------------------------------------------------- lock and thread


def test_fair_lock_serves_in_arrival_order() -> None:
    lock, order = FairLock(), []
    lock.acquire()

    def take(name: str) -> None:
        with lock:
            order.append(name)

    threads = []
    for name in "abc":
        t = threading.Thread(target=take, args=(name,))
        t.start()
        threads.append(t)
        while lock.waiting() < len(threads) + 1:  # wait until it queued
            time.sleep(0.001)
    lock.release()
    for t in threads:
        t.join(5)
    assert order == ["a", "b", "c"]


def test_a_looping_holder_cannot_starve_a_waiter() -> None:
    """The Trainer takes the lock again right after releasing it; a render chunk that queued
    during a step gets the lock at the end of that step, before the next step."""
    lock, stop, events = FairLock(), threading.Event(), []

    def trainer() -> None:
        while not stop.is_set():
            with lock:
                time.sleep(0.001)
                events.append(("step", lock.waiting() > 1))  # someone queued behind this step?

    t = threading.Thread(target=trainer)
    t.start()
    try:
        for _ in range(20):
            with lock:
                events.append(("chunk", False))
            time.sleep(0.002)
    finally:
        stop.set()
        t.join(5)
    # a step during which the chunk was queued is followed by the chunk, never by another step
    for (kind, queued), (after, _) in zip(events, events[1:]):
        if kind == "step" and queued:
            assert after == "chunk", events
    assert sum(kind == "chunk" for kind, _ in events) == 20
    assert any(queued for _, queued in events)  # the chunks did queue behind steps


class Probe(Method):
    """A toy field: colour = the ray direction's |components|, opacity 1, depth = near. It
    records each forward call: the batch size, whether the lock was held, the mode."""

    eval_chunk_rays = 64

    def __init__(self, meta: SceneMeta, lock: FairLock | None = None) -> None:
        super().__init__(meta)
        self.w = torch.nn.Parameter(torch.ones(()))
        self.lock, self.calls = lock, []

    def forward(self, rays: Rays) -> RenderOutput:
        held = self.lock is not None and self.lock.waiting() > 0
        self.calls.append((len(rays), held, self.training))
        rgb = rays.directions.abs() * self.w
        return RenderOutput(rgb, rays.near.clone(), torch.ones_like(rays.near))


def _meta() -> SceneMeta:
    return SceneMeta(near=2.0, far=6.0, background=[1.0, 1.0, 1.0], width=8, height=6, focal=7.0)


def _view(height: int = 6, mode: str = "rgb") -> ViewState:
    c2w = orbit_pose(0.3, 0.4, 4.0).numpy()
    return ViewState(c2w=c2w, fov_y=0.8, aspect=4 / 3, height=height, mode=mode)


def test_chunked_render_matches_render_image_and_holds_the_lock_per_chunk() -> None:
    lock = FairLock()
    method = Probe(_meta(), lock)
    view = _view()
    img = render_chunked(method, method.meta, view, 6, lock, chunk=10)
    assert method.training  # the mode is restored
    assert [n for n, _, _ in method.calls] == [10, 10, 10, 10, 8]  # 8 x 6 = 48 rays
    assert all(held and not training for _, held, training in method.calls)
    ref = method.render_image(viewer_cameras(view.c2w, view.fov_y, 8, 6), 0, 2.0, 6.0)
    torch.testing.assert_close(img.rgb, ref.rgb)
    torch.testing.assert_close(img.depth, ref.depth)
    # a cancelled render stops between chunks
    method.calls.clear()
    stop_after_two = lambda: len(method.calls) >= 2  # noqa: E731
    assert render_chunked(method, method.meta, view, 6, lock, 10, stop_after_two) is None
    assert len(method.calls) == 2
    img2 = display_image(img, "opacity", (2.0, 6.0))
    assert img2.shape == (6, 8, 3) and (img2 == 255).all()
    depth = display_image(img, "depth", (2.0, 6.0))  # depth = near: the near end of the map
    assert depth.shape == (6, 8, 3) and len(np.unique(depth.reshape(-1, 3), axis=0)) == 1


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_renders_in_the_viewer_as_render_image_does(name: str) -> None:
    """The viewer's chunked render of a (dynamic: at the time slider's time) view equals the
    method's own `render_image` of the same camera, for every registered method."""
    meta = SceneMeta(near=2.0, far=6.0, background=[1.0, 1.0, 1.0], width=8, height=6, focal=7.0,
                     train_c2w=[orbit_pose(0.2 * k, 0.4, 4.0).tolist() for k in range(3)],
                     train_times=[0.0, 0.5, 1.0])  # fmt: skip
    torch.manual_seed(0)
    method = build_method(TrainConfig(method=name), meta)
    view = replace(_view(), time=0.5)
    img = render_chunked(method, meta, view, 3, FairLock(), chunk=5)  # 4 x 3: chunks 5, 5, 2
    ref = method.render_image(viewer_cameras(view.c2w, view.fov_y, 4, 3), 0, 2.0, 6.0, time=0.5)
    torch.testing.assert_close(img.rgb, ref.rgb, atol=1e-5, rtol=0)
    torch.testing.assert_close(img.acc, ref.acc, atol=1e-5, rtol=0)


def test_view_bounds_follow_the_camera_distance() -> None:
    poses = [orbit_pose(a, 0.3, 4.0).tolist() for a in (0.0, 1.0, 2.0)]
    meta = SceneMeta(near=2.0, far=6.0, background=[1.0] * 3, aabb=[[-1.0] * 3, [1.0] * 3],
                     train_c2w=poses)  # fmt: skip
    # at the training cameras' distance: the scene's bounds, whatever the direction
    assert view_bounds(meta, np.array([0.0, 4.0, 0.0])) == pytest.approx((2.0, 6.0))
    assert view_bounds(meta, np.array([0.0, 0.0, 7.0])) == pytest.approx((5.0, 9.0))
    near, far = view_bounds(meta, np.zeros(3))  # inside the box: near stays positive
    assert 0 < near < 0.01 and far == pytest.approx(2.0)
    ndc = replace(meta, ndc=True, near=0.0, far=1.0)
    assert view_bounds(ndc, np.array([0.0, 0.0, 7.0])) == (0.0, 1.0)


def test_render_loop_moves_at_low_resolution_then_rests_at_full() -> None:
    frames: list[np.ndarray] = []
    method = Probe(_meta())
    loop = RenderLoop(method, method.meta, frames.append, max_height=40, min_height=4,
                      rest_s=0.3, frame_s=0.1)  # fmt: skip
    loop.rays_per_s = 1000.0  # as measured: a moving frame is sqrt(100 / (4/3)) = 8 rows
    loop.start()
    try:
        loop.set_view(_view(height=400))
        assert loop.wait_frames(1, 10)
        assert frames[0].shape[0] < 40  # moving: the adaptive height
        deadline = time.monotonic() + 10
        while not loop.idle() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop.idle(40) and frames[-1].shape == (40, 53, 3)  # at rest: full (capped)
        n = loop.frames
        loop.update_view(mode="opacity")
        assert loop.wait_frames(n + 1, 10) and loop.error is None
        assert loop.rays_per_s > 0
    finally:
        loop.stop()
    assert not loop._thread.is_alive()


def test_training_beside_a_rendering_viewer(tmp_path: Path) -> None:
    """The Trainer and a render loop that renders without pause share the method: training
    finishes (no deadlock), frames keep coming, every render call held the lock. Prints the
    steps/s with and without the loop (a sanity check; benchmarks/viewer_slowdown.py measures)."""
    from nerfkit.data import load_scene
    from nerfkit.methods.grid import GridConfig
    from nerfkit.train import Trainer

    generate_scene(tmp_path / "s", resolution=16, n_train=3, n_val=0, n_test=1, supersample=1)
    scene = load_scene(tmp_path / "s")

    def trainer(name: str, steps: int = 30) -> Trainer:
        cfg = TrainConfig(
            data=tmp_path / "s", output=tmp_path / name, method="grid", max_steps=steps,
            batch_rays=256, val_every=0, ckpt_every=0, progress=False,
            grid=GridConfig(num_voxels_final=16**3, upsample_steps=(), fit_box_step=-1),
        )  # fmt: skip
        return Trainer(cfg, scene)

    trainer("warm-up").fit()  # first steps compile and warm caches
    t0 = time.perf_counter()
    trainer("alone").fit()
    alone = 30 / (time.perf_counter() - t0)

    tr = trainer("viewed")
    frames = []
    loop = RenderLoop(tr.method, scene.meta, frames.append, lock=tr.render_lock, max_height=16,
                      rest_s=0.0, refresh_s=0.0, rest_share=1.0)  # fmt: skip
    forward, train_step = tr.method.forward, tr.train_step
    unlocked = []

    def checked_forward(rays: Rays) -> RenderOutput:
        if threading.current_thread() is loop._thread and tr.render_lock.waiting() == 0:
            unlocked.append(len(rays))
        return forward(rays)

    def step_then_invalidate() -> dict:
        out = train_step()
        loop.invalidate()  # as the Viewer does: the loop re-renders after every step
        return out

    tr.method.forward, tr.train_step = checked_forward, step_then_invalidate
    loop.start()
    loop.set_view(ViewState(np.array(scene.meta.train_c2w[0]), 0.7, 1.0, 16))
    assert loop.wait_frames(1, 20), loop.error
    before = loop.frames
    try:
        t0 = time.perf_counter()
        tr.fit()
        viewed = 30 / (time.perf_counter() - t0)
        rendered = loop.frames - before
    finally:
        loop.stop()
    assert tr.step == 30 and loop.error is None and not unlocked
    assert rendered >= 2  # the viewer kept rendering while training ran
    print(f"steps/s alone {alone:.1f}, beside a rendering viewer {viewed:.1f} ({rendered} frames)")


# ----------------------------------------------------------------------------- camera paths


def test_keyframe_path_is_saved_for_nerfkit_render(tmp_path: Path) -> None:
    from nerfkit.camera_path import load_camera_path

    keys = [
        Keyframe(orbit_pose(a, 0.3, 4.0).numpy(), 40.0, t)
        for a, t in ((0.0, 0.0), (0.8, 0.5), (1.6, 1.0))
    ]
    cp = keyframe_path(keys, width=40, height=30, seconds=2.0, fps=10)
    assert len(cp) == 20 and cp.times is not None
    torch.testing.assert_close(cp.c2w[0].double(), torch.tensor(keys[0].c2w), atol=1e-5, rtol=0)
    torch.testing.assert_close(cp.c2w[-1].double(), torch.tensor(keys[-1].c2w), atol=1e-5, rtol=0)
    assert float(cp.times[0]) == 0.0 and float(cp.times[-1]) == 1.0
    out = save_keyframe_path(tmp_path / "p.json", keys, width=40, height=30, seconds=2.0, fps=10)
    spec = json.loads(out.read_text())
    assert len(spec["camera_path"]) == 20 and len(spec["keyframes"]) == 3
    assert spec["camera_path"][0]["fov"] == pytest.approx(40.0)
    back = load_camera_path(out)
    torch.testing.assert_close(back.c2w.float(), cp.c2w.float(), atol=1e-5, rtol=0)
    assert render_command(Path("runs/my run"), out) == f"nerfkit render 'runs/my run' --path {out}"
    with pytest.raises(NerfkitError, match="two keyframes"):
        keyframe_path(keys[:1], width=40, height=30, seconds=2.0)


# ----------------------------------------------------------------------------- errors


def test_missing_viser_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "viser", None)  # import viser -> ImportError
    from nerfkit.viewer import require_viser

    with pytest.raises(NerfkitError, match=r"pip install 'nerfkit\[viewer\]'") as e:
        require_viser()
    assert "\n" not in str(e.value)
    assert run_cli(["view", tmp_path]) == 2
    with pytest.raises(NerfkitError, match="viser"):
        from nerfkit.train import Trainer

        Trainer(TrainConfig(data=tmp_path / "none", output=tmp_path / "r", viewer=True))


def test_view_of_a_missing_run_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    pytest.importorskip("viser")
    assert run_cli(["view", tmp_path / "nope", "--port", "0"]) == 2
    assert "run folder not found" in capsys.readouterr().err


def test_train_with_viewer_does_not_wait_for_a_browser(tmp_path: Path, capsys) -> None:
    pytest.importorskip("viser")
    generate_scene(tmp_path / "s", resolution=12, n_train=3, n_val=0, n_test=1, supersample=1)
    args = ["train", "--data", tmp_path / "s", "--output", tmp_path / "run", "--max-steps", 3,
            "--batch-rays", 32, "--val-every", 0, "--no-progress", "--method", "nerf",
            "--viewer", "--viewer-port", 0, "--nerf.width", 16, "--nerf.depth", 1,
            "--nerf.n-coarse", 4, "--nerf.n-fine", 0]  # fmt: skip
    assert run_cli(args) == 0
    out = capsys.readouterr().out
    assert "viewer: http://127.0.0.1:" in out and "ssh -L" in out
    assert f"keep looking: nerfkit view {tmp_path / 'run'}" in out
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_an_address_the_viewer_cannot_listen_on_is_a_one_line_error() -> None:
    from nerfkit.viewer.server import check_host

    check_host("127.0.0.1", 7007)  # any free port of this machine will do
    with pytest.raises(NerfkitError, match=r"cannot listen on 192\.0\.2\.1:7007.*--host"):
        check_host("192.0.2.1", 7007)  # TEST-NET-1: never this machine's


def test_viewer_panel_without_a_browser() -> None:
    """The server side of the page for a dynamic run: a time slider, the training status."""
    pytest.importorskip("viser")
    from nerfkit.viewer.server import Viewer

    meta = SceneMeta(near=2.0, far=6.0, background=[1.0] * 3, width=8, height=6, focal=7.0,
                     train_c2w=[orbit_pose(a, 0.3, 4.0).tolist() for a in (0.0, 1.0)],
                     train_times=[0.0, 1.0])  # fmt: skip
    viewer = Viewer(Probe(meta), meta, port=0, thumbnails=[np.zeros((6, 8, 3), np.uint8)] * 2)
    try:
        assert viewer.url == f"http://127.0.0.1:{viewer.port}" and viewer.port > 0
        assert len(viewer.frustums) == 2 and viewer.time_slider.value == 0.0
        viewer.update_progress(5, 10, 23.456, every_s=0.0)
        assert viewer.status.content.startswith("**Training**: step 5 / 10")
        assert "train PSNR 23.46 dB" in viewer.status.content
        assert viewer.save_path() == "" and "at least two keyframes" in viewer.command.content
    finally:
        viewer.close()
