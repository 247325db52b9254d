"""Geometric accuracy and completeness of `nerfkit export` meshes and point clouds.

Not a timing benchmark. For a trained run (or one this script trains) it exports the mesh and
the point cloud exactly as `nerfkit export` does (dataset frame) and measures, in scene units:
  accuracy     : distance from the export to the true surface: for the mesh, of 200k points
                 drawn uniformly over its area (every part of the surface counts by its area,
                 not by how finely marching cubes cut it); for the point cloud, of its points;
  completeness : distance from the true surface to the export: of the surface points seen by
                 the test views (pixel-centre rays to their depth), to the nearest of 1M points
                 drawn over the mesh's area (spacing ~1e-3 units here) or the nearest exported
                 point;
each as mean, median and the fraction within each tau; Chamfer = (mean accuracy + mean
completeness) / 2.

The truth:
  procedural : the built-in scene (`nerfkit.data.synthetic`): accuracy is the exact distance to
               the analytic shapes (`surface_distance`), completeness uses the exact depth maps of
               the test views.
  lego (any dataset without exact depths): the NeRF-synthetic depth PNGs are 8-bit with an
               undocumented mapping, so there is no exact truth here. With `--reference RUN` (a
               long run of the same scene) the truth is that run's expected-depth points of the
               test views (opacity > 0.99), both ways, so the numbers measure agreement with a
               well-trained model. Without it they are measured against the exported run's own
               test-view depths: how faithfully the export reproduces what the run renders
               (export fidelity), not geometric accuracy. The JSON says which.

Run (procedural: generates the scene, trains `grid` for --steps, a few minutes on 2 cores):
    python benchmarks/export_accuracy.py --steps 300
    python benchmarks/export_accuracy.py --data ../shared/data/nerf_synthetic/lego --run RUN \
        [--reference LONG_RUN]
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree
from train_speed import git_commit  # benchmarks/ is on sys.path when a script here runs

from nerfkit.config import TrainConfig
from nerfkit.data import load_scene
from nerfkit.data.synthetic import generate_scene, surface_distance
from nerfkit.export import export_mesh, export_pointcloud, parse_threshold
from nerfkit.perf import configure_allocator
from nerfkit.run import load_run
from nerfkit.train import train

ROOT = Path(__file__).resolve().parents[1]


def stats(d: np.ndarray, taus: list[float]) -> dict:
    """Mean, median and fraction within each tau of distances d [N]."""
    out = {"mean": float(d.mean()), "median": float(np.median(d)), "n": int(len(d))}
    out |= {f"within_{t:g}": float((d <= t).mean()) for t in taus}
    return out


def exact_surface_points(data: Path, split: str = "test") -> np.ndarray | None:
    """[N, 3] points where the split's pixel-centre rays meet the surface (exact depth maps),
    or None when the dataset has none."""
    sp = load_scene(data).split(split)
    if sp.depths is None:
        return None
    pts = []
    for k in range(len(sp)):
        rays = sp.cameras.image_rays(k, 0.0, 1.0)
        depth = sp.depths[k].reshape(-1)
        hit = torch.isfinite(depth) & (depth > 0)
        pts.append(rays.origins[hit] + depth[hit, None] * rays.directions[hit])
    return torch.cat(pts).double().numpy()


def rendered_surface_points(
    run_dir: Path, split: str = "test", min_acc: float = 0.99
) -> np.ndarray:
    """[N, 3] expected-depth points of a run's renders of the split's views (opacity > min_acc),
    in the scene frame (= the dataset frame for Blender scenes)."""
    run = load_run(run_dir)
    meta = run.meta
    sp = load_scene(
        run.config.data, format=run.config.format, downscale=run.config.downscale
    ).split(split)
    pts = []
    for k in range(len(sp)):
        img = run.method.render_image(sp.cameras, k, meta.near, meta.far)
        rays = sp.cameras.image_rays(k, meta.near, meta.far)
        keep = img.acc.reshape(-1) > min_acc
        pts.append(rays.origins[keep] + img.depth.reshape(-1)[keep, None] * rays.directions[keep])
    return torch.cat(pts).double().numpy()


def to_truth(points: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
    """Distance [N] of points to the truth: the analytic scene (truth None) or a point set."""
    if truth is None:
        return surface_distance(torch.as_tensor(points, dtype=torch.float64)).numpy()
    return cKDTree(truth).query(points)[0]


def measure(
    run: Path,
    data: Path,
    reference: Path | None,
    taus: list[float],
    out_dir: Path,
    threshold: float | str = "auto",
    pc_views: int = 0,
) -> dict:
    exact = exact_surface_points(data)
    procedural = exact is not None and (data / "nerfkit_scene.json").is_file()
    if procedural:
        truth_pts, analytic, truth = exact, None, "procedural: analytic shapes + exact depth maps"
    elif reference is not None:
        truth_pts = rendered_surface_points(reference)
        analytic, truth = truth_pts, f"reference run {reference}: its test-view depth points"
    else:
        truth_pts = rendered_surface_points(run)
        analytic = truth_pts
        truth = "the run's own test-view depth points (export fidelity, not accuracy)"
    if len(truth_pts) == 0:
        raise SystemExit(f"no truth points ({truth}): no test-view pixel is opaque; train longer")
    res: dict = {"truth": truth}
    t0 = time.perf_counter()
    mesh_info = export_mesh(run, out_dir / "mesh.ply", threshold=threshold)
    res["mesh_seconds"] = time.perf_counter() - t0
    mesh = trimesh.load(out_dir / "mesh.ply", force="mesh")
    acc_pts = trimesh.sample.sample_surface(mesh, 200_000, seed=0)[0]
    dense = trimesh.sample.sample_surface(mesh, 1_000_000, seed=1)[0]
    comp = cKDTree(np.concatenate([dense, mesh.vertices])).query(truth_pts)[0]
    acc = to_truth(acc_pts, analytic)
    res["mesh"] = {
        "vertices": mesh_info["vertices"],
        "faces": mesh_info["faces"],
        "threshold": mesh_info["threshold"],
        "accuracy": stats(acc, taus),
        "completeness": stats(comp, taus),
        "chamfer": float((acc.mean() + comp.mean()) / 2),
    }
    t0 = time.perf_counter()
    pc_info = export_pointcloud(run, out_dir / "pointcloud.ply", views=pc_views)
    res["pointcloud_seconds"] = time.perf_counter() - t0
    pc = np.asarray(trimesh.load(out_dir / "pointcloud.ply").vertices)
    acc = to_truth(pc, analytic)
    comp = cKDTree(pc).query(truth_pts)[0]
    res["pointcloud"] = {
        "points": pc_info["points"],
        "views": pc_info["views"],
        "removed": pc_info["removed"],
        "accuracy": stats(acc, taus),
        "completeness": stats(comp, taus),
        "chamfer": float((acc.mean() + comp.mean()) / 2),
    }
    return res


def table(res: dict, taus: list[float]) -> str:
    cols = ["mean", "median", *[f"within_{t:g}" for t in taus]]
    lines = [
        "| export | measure | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for kind in ("mesh", "pointcloud"):
        for what in ("accuracy", "completeness"):
            s = res[kind][what]
            vals = [f"{s[c]:.4f}" if not c.startswith("within") else f"{s[c]:.3f}" for c in cols]
            lines.append(f"| {kind} | {what} | " + " | ".join(vals) + " |")
        lines.append(f"| {kind} | Chamfer | {res[kind]['chamfer']:.4f} |" + " |" * (len(cols) - 1))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--data", type=Path, default=None, help="dataset (default: the procedural scene)"
    )
    p.add_argument("--run", type=Path, default=None, help="a trained run (default: train one)")
    p.add_argument("--reference", type=Path, default=None, help="a long run: the truth (lego)")
    p.add_argument("--steps", type=int, default=300, help="steps when training here")
    p.add_argument("--downscale", type=int, default=1, help="image downscale when training here")
    p.add_argument("--resolution", type=int, default=64, help="procedural scene image size")
    p.add_argument("--threshold", default="auto", help="mesh density level (auto: ln 2 / voxel)")
    p.add_argument("--taus", type=float, nargs="+", default=[0.01, 0.02, 0.05])
    p.add_argument(
        "--pc-views", type=int, default=0, help="training views of the point cloud (0: all)"
    )
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "export_accuracy")
    args = p.parse_args()
    configure_allocator()
    torch.manual_seed(0)
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        data = generate_scene(
            args.work / f"scene_{args.resolution}", resolution=args.resolution, n_train=100,
            n_val=0, n_test=8,
        )  # fmt: skip
    run = args.run
    train_s = None
    if run is None:
        run = args.work / f"grid_{data.name}_{args.steps}_x{args.downscale}"
        if not (run / "checkpoint.pt").is_file():
            t0 = time.perf_counter()
            cfg = TrainConfig(
                data=data, output=run, method="grid", max_steps=args.steps, val_every=0,
                ckpt_every=0, progress=False, downscale=args.downscale,
            )  # fmt: skip
            train(cfg)
            train_s = time.perf_counter() - t0
    thr = parse_threshold(args.threshold)
    res = measure(run, Path(data), args.reference, args.taus, args.work, thr, args.pc_views)
    res |= {
        "data": str(data),
        "run": str(run),
        "step": load_run(run).step,
        "train_seconds": train_s,
        "commit": git_commit(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    out = ROOT / "benchmarks" / "results" / f"export_accuracy_{stamp}.json"
    out.write_text(json.dumps(res, indent=2))
    print(f"truth: {res['truth']}; run {run} at step {res['step']}")
    print(table(res, args.taus))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
