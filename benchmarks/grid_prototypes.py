"""Field-evaluation throughput of the candidate representations for the CPU default method.

Forward + backward of one field query (density + appearance features) at P random points,
alternating the variants round by round (A B C A B C ...) and reporting the median and spread:
  dense-fused : dense vertex grids (1 + 12 channels, 160^3) via nerfkit's fused C++ kernel
  dense-torch : the same grids via the pure-PyTorch reference path
  vm-16/48    : TensoRF vector-matrix factorisation (3 planes + 3 lines, 300^2 / 300) with
                16 density + 48 appearance components via F.grid_sample (TensoRF's code path)
Run: python benchmarks/grid_prototypes.py [--points 262144] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from nerfkit.render.grid import load_kernel, trilinear


def dense_setup(res: int, channels: int) -> dict:
    return {
        "density": torch.zeros(res, res, res, 1, requires_grad=True),
        "features": torch.zeros(res, res, res, channels, requires_grad=True),
    }


def dense_query(p: dict, pts: torch.Tensor, kernel: str, res: int) -> torch.Tensor:
    coords = (pts + 1) * 0.5 * (res - 1)
    d = trilinear(p["density"], coords, kernel)
    f = trilinear(p["features"], coords, kernel)
    return d.sum() + f.sum()


def vm_setup(res: int, comps_density: int, comps_app: int) -> dict:
    def planes(c: int) -> list[torch.Tensor]:
        return [(0.1 * torch.randn(1, c, res, res)).requires_grad_(True) for _ in range(3)]

    def lines(c: int) -> list[torch.Tensor]:
        return [(0.1 * torch.randn(1, c, res, 1)).requires_grad_(True) for _ in range(3)]

    return {
        "dp": planes(comps_density),
        "dl": lines(comps_density),
        "ap": planes(comps_app),
        "al": lines(comps_app),
        "basis": torch.randn(3 * comps_app, 27, requires_grad=True),
    }


def vm_query(p: dict, pts: torch.Tensor) -> torch.Tensor:
    mats = ((0, 1), (0, 2), (1, 2))
    vecs = (2, 1, 0)
    n = pts.shape[0]
    coord_plane = torch.stack([pts[:, list(m)] for m in mats]).view(3, -1, 1, 2)
    coord_line = torch.stack([pts[:, v] for v in vecs])
    coord_line = torch.stack([torch.zeros_like(coord_line), coord_line], -1).view(3, -1, 1, 2)
    sigma = pts.new_zeros(n)
    for i in range(3):
        pl = F.grid_sample(p["dp"][i], coord_plane[[i]], align_corners=True).view(-1, n)
        li = F.grid_sample(p["dl"][i], coord_line[[i]], align_corners=True).view(-1, n)
        sigma = sigma + (pl * li).sum(0)
    app = []
    for i in range(3):
        pl = F.grid_sample(p["ap"][i], coord_plane[[i]], align_corners=True).view(-1, n)
        li = F.grid_sample(p["al"][i], coord_line[[i]], align_corners=True).view(-1, n)
        app.append(pl * li)
    feat = torch.cat(app).T @ p["basis"]
    return sigma.sum() + feat.sum()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=262144)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    load_kernel()
    torch.manual_seed(0)
    pts = torch.rand(args.points, 3) * 2 - 1
    dense = dense_setup(160, 12)
    vm16 = vm_setup(300, 16, 48)
    vm8 = vm_setup(300, 8, 16)
    variants = {
        "dense-fused (1+12 ch, 160^3)": lambda: dense_query(dense, pts, "auto", 160),
        "dense-torch (1+12 ch, 160^3)": lambda: dense_query(dense, pts, "torch", 160),
        "vm 16+48 comps (300^2)": lambda: vm_query(vm16, pts),
        "vm 8+16 comps (300^2)": lambda: vm_query(vm8, pts),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up
        fn().backward()
    for _ in range(args.rounds):
        for k, fn in variants.items():
            t0 = time.perf_counter()
            fn().backward()
            times[k].append(time.perf_counter() - t0)
    print(f"{args.points} points, forward + backward, {torch.get_num_threads()} threads")
    for k, ts in times.items():
        med = statistics.median(ts)
        print(
            f"{k:32s} median {med * 1000:8.1f} ms  ({min(ts) * 1000:.0f}-{max(ts) * 1000:.0f})  "
            f"{args.points / med / 1e6:6.2f} M samples/s"
        )


if __name__ == "__main__":
    main()
