"""Time the three paths of the `grid` method's trilinear lookup, forward + backward.

    reference    : `trilinear_reference` (8 gathers of plain tensor ops; `--grid.kernel torch`)
    grid_sample  : `trilinear_grid_sample` (PyTorch's fused grid_sample; `auto` on CUDA)
    cpp          : the C++/OpenMP kernel (`auto` on the CPU; CPU float32 only)

at the sizes of a lego run after growth (a 160^3 grid of 12 feature channels, 300k samples),
on the device given (default: CUDA when present). Each path runs `--repeat` times after one
warm-up, interleaved (A B C A B C ...) so that drift in the machine's speed hits all of them;
the median is printed. `benchmarks/gpu_check.sh` runs it on a lent GPU: it decides whether
`grid_sample` is the right `auto` path on CUDA. Not a test: nothing here is a pass/fail time.

    python benchmarks/grid_lookup_paths.py [--device cpu|cuda] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nerfkit.render.grid import load_kernel, trilinear, trilinear_grid_sample, trilinear_reference


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--size", type=int, default=160, help="grid vertices per side")
    p.add_argument("--channels", type=int, default=12)
    p.add_argument("--points", type=int, default=300_000)
    a = p.parse_args()
    dev = torch.device(a.device)
    g = torch.Generator(device=dev).manual_seed(0)
    s = a.size
    grid = torch.randn(s, s, s, a.channels, device=dev, generator=g).requires_grad_(True)
    coords = torch.rand(a.points, 3, device=dev, generator=g) * (s - 1)
    paths = {"reference": trilinear_reference, "grid_sample": trilinear_grid_sample}
    if dev.type == "cpu" and load_kernel() is not None:
        paths["cpp"] = trilinear
    times: dict[str, list[float]] = {k: [] for k in paths}
    for rep in range(a.repeat + 1):
        for name, fn in paths.items():
            _sync(dev)
            t0 = time.perf_counter()
            out = fn(grid, coords)
            out.sum().backward()
            _sync(dev)
            if rep:  # the first round warms up (allocator, kernel build, CUDA context)
                times[name].append(time.perf_counter() - t0)
            grid.grad = None
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(
        f"device {name}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
        f"{s}^3 x {a.channels} grid, {a.points} points, forward + backward"
    )
    for k, v in times.items():
        print(f"{k:12s} median {1e3 * statistics.median(v):8.2f} ms  (n={len(v)})")


if __name__ == "__main__":
    main()
