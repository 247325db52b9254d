"""`nerfkit inspect --deformation`: the panels of the displacement and ambient figure."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import matplotlib
import pytest
import torch
from helpers import run_cli
from test_render_dynamic import (
    D_CONST,
    D_MOVE,
    dynamic_run,  # noqa: F401 - the module-scoped run folder fixture
    fake_fields,
    fake_run,
    read_frames,
    static_copy,
)

from nerfkit.errors import NerfkitError
from nerfkit.inspect_dynamic import (
    deformation_panels,
    given_hit,
    inspect_deformation,
    panel_frames,
    render_times,
)
from nerfkit.paths import frame_times
from nerfkit.video import pinhole_cameras


def test_given_hit() -> None:
    x = torch.tensor([[0.5, -0.25], [0.1, 0.1], [0.0, 0.0]])
    acc = torch.tensor([0.5, 0.4, 1.0])
    v, hit = given_hit(x, acc)
    torch.testing.assert_close(v, torch.tensor([[1.0, -0.5], [0.0, 0.0], [0.0, 0.0]]))
    assert hit.tolist() == [True, False, True]


def test_panels_of_a_known_deformation(tmp_path: Path) -> None:
    """Render the fake method at 3 times and check every panel against `fake_fields`."""
    run = fake_run(tmp_path)
    c2w = torch.tensor(run.meta.train_c2w[0])[None]
    cams = pinhole_cameras(c2w, 8, 8, 8.0)
    ts = frame_times(3)
    r = render_times(run, cams, ts)
    assert r["displacement"].shape == (3, 8, 8, 3) and r["ambient"].shape == (3, 8, 8, 1)
    panels = deformation_panels(r["rgb"], r["acc"], r["displacement"], r["ambient"])
    assert [p.label for p in panels] == [
        "rendered RGB", "displacement\nxyz → RGB", "|displacement|", "ambient w1",
    ]  # fmt: skip
    f = fake_fields(cams.image_rays(0, 2.0, 6.0, time=0.0))
    hit = (f["acc"] == 1).reshape(8, 8)
    right = (f["displacement"][:, 0] > 0).reshape(8, 8)  # where the offset is D_CONST
    assert hit.any() and (~hit).any() and (hit & right).any() and (hit & ~right).any()
    # one symmetric scale over all frames: the largest |component| is D_MOVE's 0.4 at t = 1
    s = 0.4
    assert panels[1].scale == "grey = 0, full = ±0.4"
    const = 0.5 + 0.5 * torch.tensor(D_CONST) / s
    for k, t in enumerate(ts.tolist()):
        disp = panels[1].images[k]
        torch.testing.assert_close(disp[hit & right], const.expand(int((hit & right).sum()), 3))
        moving = 0.5 + 0.5 * t * torch.tensor(D_MOVE) / s
        torch.testing.assert_close(disp[hit & ~right], moving.expand(int((hit & ~right).sum()), 3))
        assert (disp[~hit] == 1).all() and (panels[2].images[k][~hit] == 1).all()  # white
        # |d| with magma over [0, 0.4]; ambient w = 2t - 1 with viridis over [-1, 1]
        mag = float(torch.tensor(D_CONST).norm()) / s
        want = torch.tensor(matplotlib.colormaps["magma"](mag)[:3]).float()
        torch.testing.assert_close(panels[2].images[k][hit & right][0], want)
        want = torch.tensor(matplotlib.colormaps["viridis"](t)[:3]).float()
        torch.testing.assert_close(panels[3].images[k][hit][0], want)
    assert (panels[3].lo, panels[3].hi) == pytest.approx((-1.0, 1.0))
    # the rendered RGB row is the method's colour: red = time
    torch.testing.assert_close(panels[0].images[:, :, :, 0].amax((1, 2)), ts)
    # video frames: the panels side by side with 2-pixel white gaps
    frames = panel_frames(panels)
    assert len(frames) == 3 and frames[0].shape == (8, 4 * 8 + 3 * 2, 3)
    assert (frames[1][:, 8:10] == 255).all()


def test_rows_a_method_does_not_report_are_left_out() -> None:
    rgb, acc = torch.rand(2, 4, 4, 3), torch.ones(2, 4, 4)
    assert [p.label for p in deformation_panels(rgb, acc, None, None)] == ["rendered RGB"]
    amb = torch.zeros(2, 4, 4, 2)
    labels = [p.label for p in deformation_panels(rgb, acc, None, amb)]
    assert labels == ["rendered RGB", "ambient w1", "ambient w2"]


def test_inspect_deformation_files(dynamic_run: Path, tmp_path: Path) -> None:  # noqa: F811
    """The fake method seen through the test camera of a real run's dataset."""
    from nerfkit.run import read_run_config

    cfg, _ = read_run_config(dynamic_run)
    run = fake_run(tmp_path, data=cfg.data)
    res = inspect_deformation(run, view=1, times=4, video_frames=3, progress=False)
    assert res["png"] == tmp_path / "inspect" / "deformation_test_1.png"
    assert res["missing"] == [] and len(res["rows"]) == 4
    assert iio.imread(res["png"]).shape[1] > 4 * 100  # four columns
    frames = read_frames(res["mp4"])
    assert len(frames) == 3 and frames[0].shape[:2] == (16, 4 * 16 + 3 * 2)
    assert len(run.method.seen) == 4 + 3
    with pytest.raises(NerfkitError, match="static run has no time"):
        inspect_deformation(fake_run(tmp_path, dynamic=False), progress=False)


def test_cli_inspect_deformation(dynamic_run: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    png = tmp_path / "d.png"
    args = ["inspect", dynamic_run, "--deformation", "--times", 2, "--video-frames", 2]
    assert run_cli([*args, "--output", png]) == 0
    out = capsys.readouterr().out
    assert png.is_file() and (tmp_path / "d.mp4").is_file()
    # dnerf reports the displacement, not ambient coordinates
    assert "rows: rendered RGB, displacement xyz → RGB, |displacement|\n" in out
    assert "not reported by this method (rows left out): ambient\n" in out
    assert (
        run_cli(["inspect", dynamic_run, "--deformation", "--video-frames", 0, "--times", 1]) == 0
    )
    assert (dynamic_run / "inspect" / "deformation_test_0.png").is_file()
    capsys.readouterr()
    static = static_copy(dynamic_run, tmp_path / "static")
    for bad, needle in (
        ([static, "--deformation"], "static run has no time"),
        ([dynamic_run, "--deformation", "--view", 5], "--view 5 out of range"),
        ([dynamic_run, "--deformation", "--pixel", 1, 1], "drop one"),
        ([dynamic_run, "--view", 0], "inspect needs --view V --pixel X Y"),
    ):
        assert run_cli(["inspect", *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
