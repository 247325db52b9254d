"""Camera paths: nerfstudio camera-path JSON read/write, world frames, fisheye and
equirectangular rays, the interpolated path through training views and `nerfkit render --path
FILE.json / --save-path`.

Most tests render with the in-memory `FakeDynamic` run of test_render_dynamic (it records the
rays of every frame: one batch per frame); the CLI tests use a run folder holding an untrained
tiny NeRF (deterministic, nothing to train).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_NERF, run_cli
from test_render_dynamic import batch_times, fake_run, make_meta, read_frames

from nerfkit.camera_path import (
    CameraPath,
    equirect_directions,
    fisheye_directions,
    focal_from_fov,
    load_camera_path,
    path_cameras,
    save_camera_path,
    transform_poses,
)
from nerfkit.data.colmap import qvec_to_rotmat
from nerfkit.errors import DataError, NerfkitError
from nerfkit.paths import (
    catmull_rom,
    interp_path,
    interpolate_poses,
    orbit_path,
    rotmat_to_quat,
    select_views,
    slerp,
)
from nerfkit.video import render_path

# ----------------------------------------------------------------------------- helpers


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    return qvec_to_rotmat(q / np.linalg.norm(q))


def similarity(rng: np.random.Generator, scale: float) -> np.ndarray:
    """A random similarity [4, 4]: scale * rotation, then a translation."""
    t = np.eye(4)
    t[:3, :3] = scale * random_rotation(rng)
    t[:3, 3] = rng.normal(size=3)
    return t


def path_file(tmp: Path, c2w: np.ndarray, name: str = "p.json", **top: object) -> Path:
    """A hand-made camera path: frames c2w [F, 4, 4] (fov 50 unless top gives `fovs`)."""
    fovs = top.pop("fovs", [50.0] * len(c2w))
    times = top.pop("times", None)
    frames = []
    for i, m in enumerate(c2w):
        fr = {"camera_to_world": np.asarray(m).reshape(16).tolist(), "fov": fovs[i], "aspect": 1}
        if times is not None:
            fr["render_time"] = times[i]
        frames.append(fr)
    spec = {"render_width": 8, "render_height": 8, "fps": 10, "camera_path": frames, **top}
    p = tmp / name
    p.write_text(json.dumps(spec))
    return p


def seen_rays(run) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Origins and directions [F, R, 3] of the frames the fake run rendered."""
    return (
        torch.stack([r.origins for r in run.method.seen]),
        torch.stack([r.directions for r in run.method.seen]),
    )


def scene_poses(run, n: int = 3) -> np.ndarray:  # noqa: ANN001
    return orbit_path(torch.tensor(run.meta.train_c2w, dtype=torch.float32), n).double().numpy()


# ----------------------------------------------------------------------------- pose maths


def test_slerp_and_quaternions_match_scipy() -> None:
    from scipy.spatial.transform import Rotation, Slerp

    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 1.0, 7)
    for _ in range(20):
        r0, r1 = random_rotation(rng), random_rotation(rng)
        q0, q1 = rotmat_to_quat(r0), rotmat_to_quat(r1)
        for r, q in ((r0, q0), (r1, q1)):  # w >= 0, the inverse of qvec_to_rotmat, scipy's
            assert q[0] >= 0
            np.testing.assert_allclose(qvec_to_rotmat(q), r, atol=1e-12)
            sq = Rotation.from_matrix(r).as_quat()  # (x, y, z, w)
            np.testing.assert_allclose(q, np.sign(sq[3] or 1) * sq[[3, 0, 1, 2]], atol=1e-12)
        ours = np.stack([qvec_to_rotmat(q) for q in slerp(q0, q1, t)])
        ref = Slerp([0.0, 1.0], Rotation.from_matrix([r0, r1]))(t).as_matrix()
        np.testing.assert_allclose(ours, ref, atol=1e-10)
    # the same rotation, and q vs -q (the same rotation): no turn at all
    q = rotmat_to_quat(random_rotation(rng))
    np.testing.assert_allclose(np.abs(slerp(q, -q, t) @ q), 1.0, atol=1e-12)


def test_catmull_rom_closed_forms() -> None:
    # collinear, equally spaced: the segment is the straight line between p1 and p2 (any alpha)
    line = np.array([[0.0, 0, 0], [1, 2, 0], [2, 4, 0], [3, 6, 0]])
    u = np.linspace(0.0, 1.0, 5)
    for alpha in (0.0, 0.5):
        np.testing.assert_allclose(catmull_rom(line, u, alpha), line[1] + u[:, None] * [1, 2, 0])
    # uniform Catmull-Rom: the standard cubic 0.5 (2 p1 + (p2 - p0) u + ...) at u = 1/2
    p = np.array([[0.0, 0, 0], [1, 1, 0], [3, 1, 0], [4, 0, 0]])
    mid = 0.5 * (2 * p[1] + 0.5 * (p[2] - p[0]) + 0.25 * (2 * p[0] - 5 * p[1] + 4 * p[2] - p[3]))
    mid += 0.5 * 0.125 * (-p[0] + 3 * p[1] - 3 * p[2] + p[3])
    np.testing.assert_allclose(catmull_rom(p, 0.5, alpha=0.0)[0], mid, atol=1e-12)


def ring(n: int, radius: float = 4.0) -> torch.Tensor:
    """n cameras on a circle in the z = 1 plane, looking at the origin, in a shuffled order."""
    from nerfkit.poses import look_at

    order = np.random.default_rng(1).permutation(n)
    eyes = [
        torch.tensor([radius * math.cos(a), radius * math.sin(a), 1.0], dtype=torch.float64)
        for a in 2 * math.pi * order / n
    ]
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    return torch.stack([look_at(e, torch.zeros(3, dtype=torch.float64), up) for e in eyes])


def test_interp_path_through_training_views() -> None:
    c2w = ring(24)
    keys = select_views(c2w, 8)
    assert len(keys) == 8 and keys[0] == 0 and len(set(keys)) == 8
    ang = np.array([math.atan2(float(c2w[k, 1, 3]), float(c2w[k, 0, 3])) for k in keys])
    steps = np.remainder(np.diff(np.append(ang, ang[0])), 2 * math.pi)
    # nearest-neighbour order goes round the circle one way, ~45 degrees per key
    assert np.all(np.abs(steps - steps[0]) < 0.3) and abs(steps.sum() - 2 * math.pi) < 1e-6
    poses, idx = interp_path(c2w, 64, n_keys=8)
    assert idx == keys and poses.shape == (64, 4, 4)
    torch.testing.assert_close(poses[0].double(), c2w[0], atol=1e-6, rtol=0)
    pos = poses[:, :3, 3].double()
    r = pos[:, :2].norm(dim=-1)
    assert float((r - 4.0).abs().max()) < 0.1 and float((pos[:, 2] - 1.0).abs().max()) < 1e-5
    rot = poses[:, :3, :3].double()
    eye = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, eye, atol=1e-5, rtol=0)
    gaze = -rot[:, :, 2]  # still looking (about) at the origin
    cos = (gaze * -pos).sum(-1) / pos.norm(dim=-1)
    assert float(cos.min()) > 0.99
    step = (pos.roll(-1, 0) - pos).norm(dim=-1)  # closed: even steps, the last back to the first
    assert float(step.max()) < 1.3 * float(step.min())
    # open path: ends at the last key
    open_ = interpolate_poses(c2w[keys].numpy(), 10, closed=False)
    torch.testing.assert_close(open_[-1].double(), c2w[keys[-1]], atol=1e-6, rtol=0)
    with pytest.raises(NerfkitError, match="at least 2 training views"):
        interp_path(c2w[:1], 10)


# ----------------------------------------------------------------------------- the file


def test_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    sfd = torch.from_numpy(similarity(rng, 0.3))
    c2w = torch.tensor(np.stack([np.eye(4)] * 5))
    for m in c2w:
        m[:3, :3] = torch.from_numpy(random_rotation(rng))
        m[:3, 3] = torch.from_numpy(rng.normal(size=3))
    cp = CameraPath(
        c2w=c2w,
        fov=torch.tensor([30.0, 40.5, 50.25, 60.0, 70.125], dtype=torch.float64),
        aspect=torch.tensor([1.5, 1.5, 1.25, 1.5, 2.0], dtype=torch.float64),
        width=12,
        height=8,
        fps=24.0,
        seconds=5 / 24,
        times=torch.tensor([0.0, 0.1, 0.7, 0.3, 1.0], dtype=torch.float64),
        camera_type="fisheye",
        keyframes=c2w[[0, 2, 4]].clone(),
        keyframe_fov=torch.tensor([30.0, 50.25, 70.125], dtype=torch.float64),
        smoothness=0.25,
        is_cycle=True,
        scene_from_dataset=sfd,
    )
    f = save_camera_path(tmp_path / "p.json", cp)
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]  # written atomically
    spec = json.loads(f.read_text())
    assert spec["world_frame"] == "scene" and len(spec["camera_path"][0]["camera_to_world"]) == 16
    assert spec["camera_path"][1]["camera_to_world"][3] == float(c2w[1, 0, 3])  # row-major
    back = load_camera_path(f, scene_from_dataset=sfd.numpy())
    for name in (
        "c2w",
        "fov",
        "aspect",
        "times",
        "keyframes",
        "keyframe_fov",
        "scene_from_dataset",
    ):
        assert torch.equal(getattr(back, name), getattr(cp, name)), name
    for name in ("width", "height", "fps", "seconds", "camera_type", "smoothness", "is_cycle"):
        assert getattr(back, name) == getattr(cp, name), name


def test_keyframes_only_and_nerfstudio_fps(tmp_path: Path) -> None:
    """A file with keyframes and no camera_path is rendered along the spline through them,
    fps * seconds frames; with camera_path, F frames play in `seconds` (nerfstudio's rule)."""
    keys = ring(4).numpy()
    spec = {
        "render_width": 8, "render_height": 6, "fps": 5, "seconds": 2, "is_cycle": True,
        "keyframes": [{"matrix": m.reshape(16).tolist(), "fov": 40, "aspect": 1} for m in keys],
    }  # fmt: skip
    (tmp_path / "k.json").write_text(json.dumps(spec))
    cp = load_camera_path(tmp_path / "k.json")
    assert len(cp) == 10 and cp.fps == 5 and float(cp.fov[3]) == 40.0
    torch.testing.assert_close(cp.c2w[0], torch.from_numpy(keys[0]), atol=1e-6, rtol=0)
    p = path_file(tmp_path, keys, seconds=2.0)
    assert load_camera_path(p).fps == 2.0  # 4 frames in 2 s
    # the former three.js viewer's keyframes (string matrices) are not read; its frames are
    legacy = [{"matrix": "[1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1]", "fov": 50, "aspect": 1}]
    cp = load_camera_path(path_file(tmp_path, keys, "l.json", keyframes=legacy))
    assert cp.keyframes is None and len(cp) == 4


def test_per_frame_fov_sets_the_focal(tmp_path: Path) -> None:
    run = fake_run(tmp_path, dynamic=False)
    fovs = [30.0, 60.0, 90.0]
    p = path_file(tmp_path, scene_poses(run), fovs=fovs, world_frame="scene")
    cams = path_cameras(load_camera_path(p))
    want = torch.tensor([4.0 / math.tan(math.radians(f) / 2) for f in fovs])
    torch.testing.assert_close(cams.fx, want)
    torch.testing.assert_close(focal_from_fov(torch.tensor(fovs), 8).float(), want)
    render_path(run, str(p), progress=False)
    _, d = seen_rays(run)
    # the ray through the centre of the top-left pixel: tan(angle off the axis) = 3.5 sqrt(2) / f
    local = torch.einsum("fji,fj->fi", cams.c2w[:, :3, :3], d[:, 0])  # into the camera frame
    tan = local[:, :2].norm(dim=-1) / -local[:, 2]
    torch.testing.assert_close(tan, 3.5 * math.sqrt(2) / want, atol=1e-5, rtol=0)


def test_render_time_drives_dynamic_runs(tmp_path: Path) -> None:
    run = fake_run(tmp_path)
    times = [0.2, 0.9, 0.5]
    p = path_file(tmp_path, scene_poses(run), times=times)
    render_path(run, str(p), progress=False)
    np.testing.assert_allclose(batch_times(run), times, atol=1e-7)
    run.method.seen.clear()  # --time wins over render_time
    render_path(run, str(p), time=0.4, progress=False)
    np.testing.assert_allclose(batch_times(run), [0.4] * 3, atol=1e-7)
    static = fake_run(tmp_path, dynamic=False)  # a static run renders without time
    render_path(static, str(p), progress=False)
    assert [r.time for r in static.method.seen] == [None] * 3
    with pytest.raises(DataError, match=r"render_time 1.5 is outside \[0, 1\]"):
        load_camera_path(path_file(tmp_path, scene_poses(run), times=[0, 1.5, 1]))


def test_saved_path_renders_like_the_path_itself(tmp_path: Path) -> None:
    """orbit (and interp) -> --save-path JSON -> render that file: the same rays, times, frames
    and frame rate as rendering the path directly."""
    for path in ("orbit", "interp"):
        run = fake_run(tmp_path / path)
        saved = tmp_path / f"{path}.json"
        direct = render_path(run, path, frames=4, fps=12, save_path=saved, progress=False)
        o1, d1 = seen_rays(run)
        run.method.seen.clear()
        again = render_path(run, str(saved), output=tmp_path / f"{path}2.mp4", progress=False)
        o2, d2 = seen_rays(run)
        torch.testing.assert_close(o2, o1, atol=1e-6, rtol=0)
        torch.testing.assert_close(d2, d1, atol=1e-6, rtol=0)
        np.testing.assert_allclose(batch_times(run), [0, 1 / 3, 2 / 3, 1], atol=1e-7)
        for a, b in zip(read_frames(direct[0]), read_frames(again[0]), strict=True):
            assert np.abs(a.astype(int) - b).max() <= 1
        spec = json.loads(saved.read_text())
        assert spec["fps"] == 12 and len(spec["camera_path"]) == 4 and spec["keyframes"]
    # --no-render: only the file
    run = fake_run(tmp_path / "only")
    assert render_path(run, "orbit", frames=3, save_path=tmp_path / "o.json", render=False) is None
    assert run.method.seen == [] and not (tmp_path / "only" / "render").exists()
    with pytest.raises(NerfkitError, match="--save-path is for moving paths"):
        render_path(run, "fixed", frames=2, save_path=tmp_path / "f.json", progress=False)


# ----------------------------------------------------------------------------- world frames


def test_frames_dataset_nerfstudio_and_scene(tmp_path: Path) -> None:
    """The same cameras given in the scene frame, the dataset frame, a nerfstudio run's frame
    and the scene frame of another normalisation render the same rays."""
    rng = np.random.default_rng(3)
    d = similarity(rng, 0.25)  # the run's scene_from_dataset
    run = fake_run(tmp_path / "run")
    run.meta.data_transform = d.tolist()
    scene = scene_poses(run)
    ds = transform_poses(scene, np.linalg.inv(d)).numpy()
    render_path(run, str(path_file(tmp_path, scene, "s.json", world_frame="scene")), progress=False)
    want = seen_rays(run)

    def same_rays(p: Path, frame: str | None = None) -> None:
        run.method.seen.clear()
        render_path(run, str(p), path_frame=frame, progress=False)
        for got, ref in zip(seen_rays(run), want, strict=True):
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)

    same_rays(path_file(tmp_path, ds, "d.json"))  # no world_frame: the dataset's
    same_rays(path_file(tmp_path, ds, "d.json", world_frame="scene"), "dataset")  # flag wins
    # nerfstudio: ns = scale * transform @ original, and this dataset's transforms.json frame is
    # applied_transform @ original
    n = similarity(rng, 1.0)[:3]
    a = np.eye(4)[[0, 2, 1, 3]] * [[1], [1], [-1], [1]]  # ns-process-data's axis change
    (tmp_path / "data").mkdir()
    applied = {"applied_transform": a[:3].tolist(), "frames": []}
    (tmp_path / "data" / "transforms.json").write_text(json.dumps(applied))
    run.config.data, run.meta.format = tmp_path / "data", "transforms_json"
    ns_dp = tmp_path / "dataparser_transforms.json"
    ns_dp.write_text(json.dumps({"transform": n.tolist(), "scale": 0.5}))
    ns_from_ds = np.diag([0.5, 0.5, 0.5, 1]) @ np.vstack([n, [0, 0, 0, 1]]) @ np.linalg.inv(a)
    ns = transform_poses(ds, ns_from_ds).numpy()
    same_rays(path_file(tmp_path, ns, "n.json"), f"nerfstudio:{ns_dp}")
    # a scene-frame file written by a run with another scene_from_dataset
    other = similarity(rng, 2.0)
    moved = transform_poses(ds, other).numpy()
    same_rays(
        path_file(tmp_path, moved, "o.json", world_frame="scene", scene_from_dataset=other.tolist())
    )


# ----------------------------------------------------------------------------- panoramas


def test_equirectangular_and_fisheye_rays(tmp_path: Path) -> None:
    w, h = 16, 8
    # column centre 12.5 of 16: longitude 2 pi (12.5 / 16 - 1/2) = 0.5625 pi; row 1.5 of 8:
    # latitude pi (1/2 - 1.5 / 8) = 0.3125 pi
    d = equirect_directions(torch.tensor([8.0, 12.5, 0.0]), torch.tensor([4.0, 1.5, 4.0]), w, h)
    lon, lat = 0.5625 * math.pi, 0.3125 * math.pi
    want = torch.tensor(
        [
            [0.0, 0.0, -1.0],  # the centre: straight ahead
            [math.sin(lon) * math.cos(lat), math.sin(lat), -math.cos(lon) * math.cos(lat)],
            [0.0, 0.0, 1.0],  # the left edge: straight behind
        ]
    )
    torch.testing.assert_close(d, want, atol=1e-6, rtol=0)
    # fisheye: angle off the axis = radius / focal, up to pi; the direction keeps its azimuth
    x, y = torch.tensor([0.0, 0.6, 0.0, 3.0]), torch.tensor([0.0, 0.8, -2.0, 0.0])
    f = fisheye_directions(x, y)
    torch.testing.assert_close(f.norm(dim=-1), torch.ones(4))
    angle = torch.acos(-f[:, 2])
    torch.testing.assert_close(angle, torch.tensor([0.0, 1.0, 2.0, 3.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(f[1, :2] / f[1, :2].norm(), torch.tensor([0.6, 0.8]))
    # rendered through a run: a 360-degree panorama's rays, in the path's camera frame
    run = fake_run(tmp_path, dynamic=False)
    poses = scene_poses(run, 1)
    p = path_file(tmp_path, poses, camera_type="equirectangular", world_frame="scene")
    render_path(run, str(p), progress=False)
    _, dirs = seen_rays(run)
    local = dirs[0] @ torch.tensor(poses[0, :3, :3], dtype=torch.float32)  # R^T d
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    ref = equirect_directions(xs.reshape(-1) + 0.5, ys.reshape(-1) + 0.5, 8, 8)
    torch.testing.assert_close(local, ref, atol=1e-5, rtol=0)
    ndc = fake_run(tmp_path, dynamic=False)
    ndc.meta.ndc = True
    with pytest.raises(NerfkitError, match="renders only perspective cameras"):
        render_path(ndc, str(p), progress=False)
    with pytest.raises(NerfkitError, match="trained field of view"):
        render_path(ndc, str(path_file(tmp_path, poses, "n.json", fovs=[20.0])), progress=False)


# ----------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with an untrained tiny NeRF on `make_meta`'s 8 x 8 static scene."""
    import tyro

    from nerfkit.config import TrainConfig
    from nerfkit.run import build_method, save_checkpoint, save_run_files

    run = tmp_path_factory.mktemp("cp") / "run"
    cfg = tyro.cli(TrainConfig, args=["--method", "nerf", *TINY_NERF, "--output", str(run)])
    meta = make_meta(dynamic=False)
    torch.manual_seed(0)
    save_run_files(run, cfg, meta)
    save_checkpoint(run, {"model": build_method(cfg, meta).state_dict(), "step": 0})
    return run


def test_cli_save_path_then_render_it(run_dir: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    saved = tmp_path / "orbit.json"
    args = ["render", run_dir, "--frames", 3, "--save-path", saved]
    assert run_cli([*args, "--no-render"]) == 0
    assert saved.is_file() and not (run_dir / "render").exists()
    assert run_cli([*args, "--output", tmp_path / "a.mp4"]) == 0
    assert run_cli(["render", run_dir, "--path", saved, "--output", tmp_path / "b.mp4"]) == 0
    a, b = read_frames(tmp_path / "a.mp4"), read_frames(tmp_path / "b.mp4")
    assert len(a) == len(b) == 3
    for x, y in zip(a, b, strict=True):
        assert np.abs(x.astype(int) - y).max() <= 1
    assert run_cli(["render", run_dir, "--path", "interp", "--frames", 2,
                    "--output", tmp_path / "i.mp4"]) == 0  # fmt: skip
    assert len(read_frames(tmp_path / "i.mp4")) == 2


def test_cli_malformed_paths_exit_2_in_one_line(run_dir: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    good = {
        "render_width": 8, "render_height": 8,
        "camera_path": [{"camera_to_world": np.eye(4).reshape(16).tolist(), "fov": 50}],
    }  # fmt: skip
    cases = [
        ("{not json", "invalid JSON"),
        ([], "expected a JSON object"),
        ({**good, "camera_path": []}, "camera_path must be a non-empty list"),
        ({**good, "camera_path": [{"fov": 50}]}, "camera_path[0] must be an object with"),
        ({**good, "camera_path": [{"camera_to_world": [1] * 15, "fov": 50}]}, "16 numbers"),
        (
            {
                **good,
                "camera_path": [
                    {"camera_to_world": [2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "fov": 50}
                ],
            },
            "not a rigid",
        ),  # fmt: skip
        (
            {
                **good,
                "camera_path": [
                    {"camera_to_world": good["camera_path"][0]["camera_to_world"], "fov": 0}
                ],
            },
            "camera_path[0].fov must be a vertical",
        ),  # fmt: skip
        ({**good, "camera_type": "vr180"}, "camera_type 'vr180' is not rendered"),
        ({**good, "render_width": -8}, "render_width must be a positive whole number"),
        ({**good, "fps": "fast"}, "fps must be a finite number"),
        ({**good, "world_frame": "mars"}, "world_frame must be 'scene' or 'dataset'"),
    ]
    for i, (spec, needle) in enumerate(cases):
        p = tmp_path / f"bad{i}.json"
        p.write_text(spec if isinstance(spec, str) else json.dumps(spec))
        assert run_cli(["render", run_dir, "--path", p, "--output", tmp_path / "x.mp4"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(p) in err[0] and needle in err[0], (needle, err)
    p = tmp_path / "ok.json"
    p.write_text(json.dumps(good))
    for flags, needle in (
        (["--path", tmp_path / "none.json"], "none.json: camera path file not found"),
        (["--path", p, "--path-frame", "mars"], "unknown path frame 'mars'"),
        (["--path", p, "--path-frame", f"nerfstudio:{tmp_path}/dp.json"], "dp.json: file not"),
        (["--path", "orbit", "--path-frame", "scene"], "--path-frame says which frame"),
        (["--no-render"], "--no-render writes nothing without --save-path"),
        (["--fps", 0], "--fps must be positive"),
    ):
        assert run_cli(["render", run_dir, *flags, "--output", tmp_path / "x.mp4"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], (needle, err)
    assert not (tmp_path / "x.mp4").exists()
