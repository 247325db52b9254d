"""`nerfkit render` on dynamic runs: the time of every frame, frozen time, the fixed camera.

Unit tests use an in-memory run (`FakeDynamic`: colour from the ray's time and direction, a
known displacement and ambient coordinate) and record the rays it is asked to render; the CLI
tests use a real run folder trained for a few steps on a tiny D-NeRF-layout scene.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import imageio.v2 as iio2
import numpy as np
import pytest
import torch
from helpers import run_cli

from nerfkit.cameras import Rays
from nerfkit.config import TrainConfig
from nerfkit.data.scene import SceneMeta
from nerfkit.errors import NerfkitError
from nerfkit.methods import Method, RenderOutput
from nerfkit.paths import check_time, frame_times
from nerfkit.run import LoadedRun
from nerfkit.video import render_path

D_CONST = (0.2, -0.1, 0.05)  # displacement where the ray goes right (d_x >= 0)
D_MOVE = (0.0, 0.4, 0.0)  # displacement t * D_MOVE where it goes left


def fake_fields(rays: Rays) -> dict[str, torch.Tensor]:
    """What `FakeDynamic` renders for `rays` [R] (t = 0 where the rays have no time).

    rgb [R, 3] = (t, 0.5 + 0.5 d_x, 0.5 + 0.5 d_z); acc [R] = 1 where d_z >= 0 (looking up:
    the upper half of a view of `make_meta`), else 0.2;
    displacement [R, 3] = acc * (D_CONST where d_x >= 0, else t * D_MOVE); ambient [R, 1] =
    acc * (2 t - 1); depth [R] = 4.
    """
    d = rays.directions
    t = torch.zeros(len(rays)) if rays.time is None else rays.time
    acc = torch.where(d[:, 2] >= 0, 1.0, 0.2)
    disp = torch.where(d[:, :1] >= 0, torch.tensor(D_CONST), t[:, None] * torch.tensor(D_MOVE))
    return {
        "rgb": torch.stack([t, 0.5 + 0.5 * d[:, 0], 0.5 + 0.5 * d[:, 2]], -1),
        "acc": acc,
        "depth": torch.full_like(t, 4.0),
        "displacement": acc[:, None] * disp,
        "ambient": acc[:, None] * (2 * t[:, None] - 1),
    }


class FakeDynamic(Method):
    """A dynamic method with closed-form output (`fake_fields`) that records every ray batch."""

    def __init__(self, meta: SceneMeta) -> None:
        super().__init__(meta)
        self.seen: list[Rays] = []

    def forward(self, rays: Rays) -> RenderOutput:
        self.seen.append(rays)
        return RenderOutput(**fake_fields(rays))


def make_meta(dynamic: bool = True, size: int = 8) -> SceneMeta:
    """An object scene seen by 4 cameras on a circle of radius 4 around the origin."""
    c2w = []
    for k in range(4):
        a = 2 * math.pi * k / 4
        # camera at (4 sin a, -4 cos a, 0.5) looking at the origin: -z towards it, +y up (z)
        back = np.array([math.sin(a), -math.cos(a), 0.0])
        right = np.cross([0.0, 0.0, 1.0], back)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, [0, 0, 1], back, 4 * back + [0, 0, 0.5]
        c2w.append(m.tolist())
    return SceneMeta(
        near=2.0, far=6.0, background=[1.0, 1.0, 1.0], width=size, height=size, focal=size,
        train_c2w=c2w, train_times=[0.0, 0.3, 0.6, 1.0] if dynamic else [],
    )  # fmt: skip


def fake_run(tmp_path: Path, dynamic: bool = True, data: Path | None = None) -> LoadedRun:
    """An in-memory run of `FakeDynamic` (no checkpoint) whose folder is `tmp_path`."""
    meta = make_meta(dynamic)
    cfg = TrainConfig(data=data, output=tmp_path, progress=False)
    return LoadedRun(cfg, meta, FakeDynamic(meta), 0, tmp_path)


def batch_times(run: LoadedRun) -> list[float]:
    """The one time of each recorded ray batch (one batch per frame here)."""
    out = []
    for r in run.method.seen:
        assert r.time is not None and bool((r.time == r.time[0]).all())
        out.append(float(r.time[0]))
    return out


def read_frames(path: Path) -> list[np.ndarray]:
    reader = iio2.get_reader(path, format="FFMPEG")
    try:
        return [np.asarray(f) for f in reader]
    finally:
        reader.close()


def test_frame_times() -> None:
    torch.testing.assert_close(frame_times(5), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    torch.testing.assert_close(frame_times(1), torch.tensor([0.0]))
    torch.testing.assert_close(frame_times(3, "frozen", 0.3), torch.full((3,), 0.3))
    assert check_time(0.0) == 0.0 and check_time(1) == 1.0
    for bad in (-0.01, 1.5, float("nan")):
        with pytest.raises(NerfkitError, match=r"outside \[0, 1\]"):
            frame_times(4, "frozen", bad)
    with pytest.raises(NerfkitError, match="needs a --time"):
        frame_times(4, "frozen")
    with pytest.raises(NerfkitError, match="at least one frame"):
        frame_times(0)


def test_moving_camera_sweeps_time(tmp_path: Path) -> None:
    run = fake_run(tmp_path)
    rgb, depth = render_path(run, "orbit", frames=5, progress=False)
    assert rgb == tmp_path / "render" / "orbit.mp4" and depth.name == "orbit_depth.mp4"
    np.testing.assert_allclose(batch_times(run), [0.0, 0.25, 0.5, 0.75, 1.0], atol=1e-7)
    origins = torch.stack([r.origins[0] for r in run.method.seen])
    assert (origins[1:] - origins[:-1]).norm(dim=-1).min() > 0.5  # the camera moves
    # red = time: the video's red channel rises from 0 to 255 over the frames
    red = [float(f[..., 0].mean()) for f in read_frames(rgb)]
    assert len(red) == 5 and red[0] < 20 and red[-1] > 235 and np.all(np.diff(red) > 30), red


def test_frozen_time(tmp_path: Path) -> None:
    run = fake_run(tmp_path)
    rgb, _ = render_path(run, "orbit", frames=4, time=0.3, progress=False)
    assert rgb.name == "orbit_t0.3.mp4"
    np.testing.assert_allclose(batch_times(run), [0.3] * 4, atol=1e-7)
    for bad in (-0.5, 1.01):
        with pytest.raises(NerfkitError, match=r"outside \[0, 1\]"):
            render_path(run, "orbit", frames=2, time=bad, progress=False)


def test_fixed_camera_changes_only_with_time(tmp_path: Path) -> None:
    """The run's data folder is gone: the fixed camera is the stored training pose `view`."""
    run = fake_run(tmp_path, data=tmp_path / "no_such_data")
    rgb, _ = render_path(run, "fixed", frames=4, view=2, progress=False)
    assert rgb.name == "fixed_train2.mp4"
    np.testing.assert_allclose(batch_times(run), [0, 1 / 3, 2 / 3, 1], atol=1e-6)
    first = run.method.seen[0]
    torch.testing.assert_close(first.origins[0], torch.tensor(run.meta.train_c2w[2])[:3, 3])
    for r in run.method.seen[1:]:  # the same rays every frame, only the time differs
        torch.testing.assert_close(r.origins, first.origins)
        torch.testing.assert_close(r.directions, first.directions)
    frames = read_frames(rgb)
    # green/blue (the direction) stay, red (the time) rises
    for f in frames[1:]:
        assert np.abs(f[..., 1:].astype(int) - frames[0][..., 1:]).mean() < 3
    assert [round(f[..., 0].mean() / 85) for f in frames] == [0, 1, 2, 3]


def test_static_runs_and_bad_combinations(tmp_path: Path) -> None:
    static = fake_run(tmp_path, dynamic=False)
    for kw, needle in (({"time": 0.5}, "--time"), ({"path": "fixed"}, "--path fixed")):
        with pytest.raises(NerfkitError, match=f"static run.*{needle}"):
            render_path(static, **{"path": "orbit", **kw}, frames=2, progress=False)
    render_path(static, "orbit", frames=2, progress=False)  # static: rendered without time
    assert [r.time for r in static.method.seen] == [None, None]
    run = fake_run(tmp_path)
    with pytest.raises(NerfkitError, match="nothing would move"):
        render_path(run, "fixed", frames=2, time=0.5, progress=False)
    with pytest.raises(NerfkitError, match="--view chooses the camera of --path fixed"):
        render_path(run, "orbit", frames=2, view=1, progress=False)
    with pytest.raises(NerfkitError, match="--view 9 out of range"):
        render_path(run, "fixed", frames=2, view=9, progress=False)
    assert run.method.seen == []


# --- end to end: a run folder trained on a tiny D-NeRF-layout scene ---------------------------


def make_dynamic_scene(root: Path) -> Path:
    """The tiny procedural scene (Blender layout) with a D-NeRF 'time' on every frame."""
    from nerfkit.data.synthetic import MARKER, generate_scene

    generate_scene(root, resolution=16, n_train=4, n_val=0, n_test=2, supersample=1)
    (root / MARKER).unlink()
    for tf in root.glob("transforms_*.json"):
        spec = json.loads(tf.read_text())
        n = len(spec["frames"])
        for i, fr in enumerate(spec["frames"]):
            fr["time"] = i / max(n - 1, 1)
        tf.write_text(json.dumps(spec))
    return root


@pytest.fixture(scope="module")
def dynamic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of `dnerf` at a tiny config trained for 4 steps on the tiny dynamic scene."""
    from nerfkit.methods.dnerf import DNeRFConfig
    from nerfkit.train import train

    root = tmp_path_factory.mktemp("dyn")
    data = make_dynamic_scene(root / "data")
    tiny = DNeRFConfig(width=16, depth=2, skip=0, n_coarse=8, n_fine=0, pos_freqs=4,
                       time_freqs=2, deform_width=16, deform_depth=2, deform_skip=0)  # fmt: skip
    cfg = TrainConfig(data=data, output=root / "run", method="dnerf", max_steps=4,
                      batch_rays=64, val_every=0, progress=False, dnerf=tiny)  # fmt: skip
    train(cfg)
    return root / "run"


def static_copy(run: Path, dest: Path) -> Path:
    """A copy of a run folder whose scene.json has no training times (a static run)."""
    shutil.copytree(run, dest)
    meta = json.loads((dest / "scene.json").read_text())
    meta["train_times"] = []
    (dest / "scene.json").write_text(json.dumps(meta))
    return dest


def test_cli_render_dynamic(dynamic_run: Path, tmp_path: Path, capsys) -> None:
    times = json.loads((dynamic_run / "scene.json").read_text())["train_times"]
    np.testing.assert_allclose(times, [0, 1 / 3, 2 / 3, 1], atol=1e-7)
    out = tmp_path / "sweep.mp4"
    assert run_cli(["render", dynamic_run, "--frames", 3, "--output", out]) == 0
    assert len(read_frames(out)) == 3 and (tmp_path / "sweep_depth.mp4").is_file()
    assert run_cli(["render", dynamic_run, "--path", "fixed", "--view", 1, "--frames", 2,
                    "--output", tmp_path]) == 0  # fmt: skip
    frames = read_frames(tmp_path / "fixed_test1.mp4")
    assert len(frames) == 2 and frames[0].shape == (16, 16, 3)
    assert run_cli(["render", dynamic_run, "--time", 0.5, "--frames", 2, "--output", tmp_path]) == 0
    assert (tmp_path / "orbit_t0.5.mp4").is_file()
    capsys.readouterr()

    def fails(args: list, needle: str) -> None:
        assert run_cli(["render", *args, "--frames", 2, "--output", tmp_path / "x.mp4"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err

    fails([dynamic_run, "--time", 1.5], "--time 1.5 is outside [0, 1]")
    fails([dynamic_run, "--path", "fixed", "--view", 2], "--view 2 out of range: the test split")
    static = static_copy(dynamic_run, tmp_path / "static")
    fails([static, "--path", "fixed"], "static run")
    fails([static, "--time", 0.2], "static run")
    assert not (tmp_path / "x.mp4").exists()


def test_demo_dynamic(tmp_path: Path) -> None:
    """`nerfkit demo --dynamic` at a toy size: the split scene, `dgrid` training, eval, both
    videos."""
    from nerfkit.demo import run_demo

    res = run_demo(tmp_path / "demo", minutes=0.02, resolution=16, frames=3, dynamic=True)
    run = tmp_path / "demo" / "run"
    assert res["run"] == str(run) and res["steps"] >= 1
    assert json.loads((run / "config.json").read_text())["method"] == "dgrid"
    assert len(json.loads((run / "scene.json").read_text())["train_times"]) > 1
    assert json.loads((run / "eval_test" / "metrics.json").read_text())["num_views"] == 10
    assert res["video"] == str(run / "render" / "orbit.mp4")
    assert res["fixed_video"] == str(run / "render" / "fixed_test0.mp4")
    assert [len(read_frames(Path(res[k]))) for k in ("video", "fixed_video")] == [3, 3]
