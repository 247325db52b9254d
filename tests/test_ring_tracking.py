"""benchmarks/ring_tracking.py: its tracking numbers on deformations with known answers."""

from __future__ import annotations

import importlib.util
import math
import statistics
from pathlib import Path

import pytest
import torch

from nerfkit.data.synthetic_dynamic import ball_centre

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "ring_tracking.py"


def _load():
    spec = importlib.util.spec_from_file_location("ring_tracking", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Fake:
    """A deformation with a known answer: `follow` moves the ball back to the origin at every
    time (perfect tracking); otherwise points stay where they are (no tracking)."""

    def __init__(self, follow: bool, ambient: bool = False) -> None:
        self.follow, self.ambient = follow, ambient

    def deform(self, pts: torch.Tensor, t: torch.Tensor):
        centre = torch.stack([2 * t - 1, torch.zeros_like(t), torch.zeros_like(t)], -1)
        dx = -centre if self.follow else torch.zeros_like(pts)
        w = torch.stack([t, t], -1) if self.ambient else None
        return dx, w


def test_perfect_tracking_has_no_drift_spread_or_registration_error() -> None:
    rt = _load()
    s = rt.tracking_summary(rt.ball_tracking(_Fake(follow=True), "ring", rt.DENSE_TIMES, n=200))
    assert s["drift"] == pytest.approx(0, abs=1e-6)
    assert s["spread"] == pytest.approx(0, abs=1e-6)
    assert s["registration"] == pytest.approx(0, abs=1e-6)
    assert s["w_moves"] is None


def test_no_tracking_registration_error_is_the_motion_spread() -> None:
    """Without a deformation each point's canonical position moves with the ball: its RMS about
    the mean over time is the population standard deviation of the centre's x, the drift the
    distance the centre travels, and the ball stays rigid."""
    rt = _load()
    track = rt.ball_tracking(_Fake(follow=False, ambient=True), "wide_ring", rt.DENSE_TIMES, n=200)
    s = rt.tracking_summary(track)
    xs = [ball_centre(t)[0] for t in rt.DENSE_TIMES]
    assert s["registration"] == pytest.approx(statistics.pstdev(xs), rel=1e-5)
    assert s["drift"] == pytest.approx(max(xs) - min(xs), rel=1e-5)
    assert s["spread"] == pytest.approx(0, abs=1e-6)
    span = max(rt.DENSE_TIMES) - min(rt.DENSE_TIMES)
    assert s["w_moves"] == pytest.approx(math.sqrt(2) * span, rel=1e-5)
