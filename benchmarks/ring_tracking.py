"""How well a trained `dgrid` run's deformation follows the ball of a ring scene.

For each run folder (trained on a procedural `ring` or `wide_ring` scene, whose events.json
names the scene), points on the ball at its true position at time t are deformed into the
canonical space; with a deformation that follows the ball, their canonical positions minus
their offsets on the ball are one point (the canonical ball's centre) at every t. Reported per
run: that centre's x at several times, its drift (the largest distance between the centres
over t in [0.1, 1]: how far the deformation falls behind the motion, so that the canonical grid
must hold the ball at several places), and the non-rigid spread (mean distance of the points
from their centre: 0 for a rigid deformation of the ball), the registration error (the RMS
over the ball's points and over t in [0.1, 1] of a point's canonical position minus its mean
over t: 0 when every point of the ball lands on one canonical point at every time, whatever
the canonical ball's shape; the scenes' chequer texture repeats every 2 pi / 12 = 0.52 units,
so an error of a tenth of that already blurs it) and, with ambient dimensions, how far
the ball's mean ambient coordinates w move over time (the largest distance between them over
t in [0.1, 1]; w lies in [-1, 1]^m): near 0, the ambient residual is the same at every time (a
static correction of the canonical model), not a slice that follows the motion.

    python benchmarks/ring_tracking.py /work/bench/wide/dyn_wide_ring_dgrid_s0 ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from nerfkit.data.synthetic_dynamic import RINGS, ball_centre
from nerfkit.run import load_run

TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)
DENSE_TIMES = [0.1 + 0.9 * k / 18 for k in range(19)]  # drift etc. over t in [0.1, 1]


def ball_tracking(method: object, scene: str, times: list[float], n: int = 2000) -> list[tuple]:
    """(t, canonical centre [3], non-rigid spread, mean w [m] or None, canonical points
    [n, 3]) of `scene`'s ball under `method.deform`, from n points at 0.9 of the ball's radius
    (the same points of the ball at every t)."""
    g = torch.Generator().manual_seed(0)
    v = torch.randn(n, 3, generator=g)
    v = 0.9 * RINGS[scene].ball_radius * v / v.norm(dim=-1, keepdim=True)
    out = []
    with torch.no_grad():
        for t in times:
            pts = torch.tensor(ball_centre(t)) + v
            dx, w = method.deform(pts, torch.full((n,), t))  # type: ignore[attr-defined]
            body = pts + dx - v
            centre = body.mean(0)
            spread = float((body - centre).norm(dim=-1).mean())
            out.append((t, centre, spread, None if w is None else w.mean(0), pts + dx))
    return out


def tracking_summary(track: list[tuple]) -> dict[str, float | None]:
    """drift (largest distance between the canonical centres), spread (mean non-rigid spread),
    registration (RMS over points and times of a point's canonical position minus its mean over
    the times) and w_moves (largest distance between the mean ambient coordinates; None without
    them) of a `ball_tracking` result."""
    centres = torch.stack([c for _, c, _, _, _ in track])
    canon = torch.stack([p for *_, p in track])  # [T, n, 3]: each ball point over time
    w_moves = None
    if track[0][3] is not None:
        ws = torch.stack([w for _, _, _, w, _ in track])
        w_moves = float(torch.cdist(ws, ws).max())
    return {
        "drift": float(torch.cdist(centres, centres).max()),
        "spread": sum(s for _, _, s, _, _ in track) / len(track),
        "registration": float((canon - canon.mean(0)).square().sum(-1).mean().sqrt()),
        "w_moves": w_moves,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| run | canonical x at t = " + " / ".join(f"{t:g}" for t in TIMES)
          + " | drift (t ≥ 0.1) | non-rigid spread (mean) | registration error (RMS)"
          " | w moves (t ≥ 0.1) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for run_dir in args.runs:
        run = load_run(run_dir, "cpu")
        scene = json.loads((Path(run.meta.data_path) / "events.json").read_text())["scene"]
        if scene not in RINGS:
            raise SystemExit(f"{run_dir}: trained on {scene!r}, not a ring scene")
        s = tracking_summary(ball_tracking(run.method, scene, DENSE_TIMES))
        moves = "-" if s["w_moves"] is None else f"{s['w_moves']:.2f}"
        xs = [float(c[0]) for _, c, *_ in ball_tracking(run.method, scene, list(TIMES))]
        cols = [f"{s['drift']:.2f}", f"{s['spread']:.3f}", f"{s['registration']:.3f}", moves]
        print(
            f"| {run_dir.name} | "
            + " / ".join(f"{x:+.2f}" for x in xs)
            + " | "
            + " | ".join(cols)
            + " |"
        )


if __name__ == "__main__":
    main()
