"""Dense voxel grids: trilinear interpolation, ray marching through an occupancy mask, resampling.

Pure functions used by the `grid` method. Each has a pure-PyTorch version (runs on any device)
and, for CPU float32 tensors, a fused C++/OpenMP kernel (sources in render/csrc/, shipped with
the package) built on first use with torch.utils.cpp_extension under a name derived from their
content, from copies of the sources staged in the build folder so every checkout shares one build
(cached under ~/.cache/torch_extensions/<name>/; needs a C++ compiler and ninja). When the kernel
cannot be built, one warning is given and the PyTorch path is used; NERFKIT_NO_KERNEL=1 skips the
build. Tests compare the two paths.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from nerfkit.render.contraction import contract, contracted_speed


def trilinear_reference(grid: Tensor, coords: Tensor) -> Tensor:
    """Trilinear interpolation of a channels-last grid at continuous vertex coordinates.

    Args:
        grid: [X, Y, Z, C] values at integer vertex coordinates (X, Y, Z >= 2).
        coords: [P, 3] continuous coordinates in vertex units (0 .. X-1 etc.), clamped to the grid.
    Returns:
        [P, C]: sum over the 8 surrounding vertices v of prod_k (1 - |coords_k - v_k|) grid[v].
        Differentiable with respect to `grid` (plain tensor ops; runs on any device).
    """
    size = grid.shape[:3]
    c = grid.shape[3]
    hi = torch.tensor([s - 1 for s in size], dtype=coords.dtype, device=coords.device)
    u = coords.clamp(min=0.0).minimum(hi)
    i0 = torch.minimum(u.floor(), hi - 1)
    f = u - i0
    i0 = i0.long()
    strides = (size[1] * size[2], size[2], 1)
    flat = grid.reshape(-1, c)
    base = i0[:, 0] * strides[0] + i0[:, 1] * strides[1] + i0[:, 2] * strides[2]  # [P]
    out = None
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1.0 - f[:, 0]
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1.0 - f[:, 1]
            for dz in (0, 1):
                wz = f[:, 2] if dz else 1.0 - f[:, 2]
                idx = base + (dx * strides[0] + dy * strides[1] + dz * strides[2])
                term = flat.index_select(0, idx) * (wx * wy * wz)[:, None]
                out = term if out is None else out + term
    return out


_CSRC = Path(__file__).with_name("csrc")
"""The C++ sources of the fused kernels (package data): grid_kernels.h declares them."""

_CFLAGS = ("-O3", "-fopenmp", "-march=native", "-ffp-contract=off")
"""No FMA contraction: `march` must round exactly as `march_reference` does."""
_LDFLAGS = ("-fopenmp",)


def kernel_name(sources: dict[str, bytes], flags: tuple[str, ...]) -> str:
    """Name of the kernel build, derived from everything it is built from.

    Args:
        sources: file name -> content, for every file the build reads.
        flags: compiler and linker flags and anything else the binary depends on.
    Returns:
        "nerfkit_grid_" + the first 10 hex digits of a SHA-256 over names, contents and flags, so
        an edited kernel is rebuilt under a new name and an unchanged one reuses its cached build.
    """
    h = hashlib.sha256()
    for name in sorted(sources):
        data = sources[name]
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    for flag in flags:
        h.update(f"{flag}\0".encode())
    return f"nerfkit_grid_{h.hexdigest()[:10]}"


def _kernel_files() -> list[Path]:
    """The files the kernel is built from: sources (.cpp) and headers (.h) in `_CSRC`."""
    return sorted(p for p in _CSRC.glob("*") if p.suffix in (".cpp", ".h"))


def _kernel_build_name(files: list[Path]) -> str:
    """`kernel_name` of `files` with the flags and the torch and Python versions the build
    uses (the binary's ABI depends on both)."""
    sources = {p.name: p.read_bytes() for p in files}
    runtime = (f"torch {torch.__version__}", f"python {sys.version_info[0]}.{sys.version_info[1]}")
    return kernel_name(sources, (*_CFLAGS, *_LDFLAGS, *runtime))


def _extensions_root() -> Path:
    """Where torch builds extensions: $TORCH_EXTENSIONS_DIR, else ~/.cache/torch_extensions."""
    env = os.environ.get("TORCH_EXTENSIONS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "torch_extensions"


def stage_sources(files: list[Path], build_dir: Path) -> list[Path]:
    """Copy `files` into build_dir/src (each written to a temporary file and renamed, skipped
    when already there with the same content) and return the copies' paths.

    The build then names the same source paths from every checkout of the package: torch's
    ninja build records absolute source paths, so building from a second checkout (a clone, a
    worktree, an installed copy) would otherwise recompile the whole kernel, and switching back
    would recompile it again.
    """
    src = build_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    staged = []
    for f in files:
        dst, data = src / f.name, f.read_bytes()
        if not (dst.is_file() and dst.read_bytes() == data):
            tmp = src / f".{f.name}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, dst)
        staged.append(dst)
    return staged


def _build_kernel() -> object:
    """Compile (or load the cached build of) the sources in `_CSRC`; raises if that fails.

    Builds in <extensions root>/<kernel name>/ from copies of the sources staged there
    (`stage_sources`), so all checkouts with the same sources share one build."""
    from torch.utils.cpp_extension import load

    files = _kernel_files()
    if not any(p.suffix == ".cpp" for p in files):
        raise FileNotFoundError(f"no C++ sources in {_CSRC}")
    name = _kernel_build_name(files)
    build_dir = _extensions_root() / name
    staged = stage_sources(files, build_dir)
    return load(
        name=name,
        sources=[str(p) for p in staged if p.suffix == ".cpp"],
        extra_cflags=list(_CFLAGS),
        extra_ldflags=list(_LDFLAGS),
        build_directory=str(build_dir),
        verbose=False,
    )


_kernel_lock = threading.Lock()
_kernel_module: object | None = None
_kernel_failed = False


def load_kernel() -> object | None:
    """The fused CPU kernel module, built on first use (None, with one warning, if it cannot be).

    Set NERFKIT_NO_KERNEL=1 to skip it. The build is cached under ~/.cache/torch_extensions, named
    after the content of the sources (`kernel_name`).
    """
    global _kernel_module, _kernel_failed
    if _kernel_module is not None or _kernel_failed:
        return _kernel_module
    with _kernel_lock:
        if _kernel_module is not None or _kernel_failed:
            return _kernel_module
        if os.environ.get("NERFKIT_NO_KERNEL"):
            _kernel_failed = True
            return None
        try:
            _kernel_module = _build_kernel()
        except Exception as e:  # noqa: BLE001 - any build failure means: use the reference path
            _kernel_failed = True
            warnings.warn(
                f"nerfkit grid: could not build the fused C++ kernel ({type(e).__name__}: "
                f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''}); using the "
                "pure-PyTorch path (slower). Install a C++ compiler and ninja to enable it.",
                RuntimeWarning,
                stacklevel=2,
            )
    return _kernel_module


def _cpu_kernel(*tensors: Tensor) -> object | None:
    """The fused kernel module when every tensor given is a CPU float32 tensor and it builds."""
    if all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors):
        return load_kernel()
    return None


class _TrilinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grid: Tensor, coords: Tensor) -> Tensor:  # noqa: ANN001
        kern = load_kernel()
        ctx.save_for_backward(grid, coords)
        return kern.trilinear_forward(grid, coords)  # type: ignore[union-attr]

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None]:  # noqa: ANN001
        grid, coords = ctx.saved_tensors
        kern = load_kernel()
        grad_out = grad_out.contiguous()
        g_grid = g_coords = None
        if ctx.needs_input_grad[0]:
            g_grid = kern.trilinear_backward(grad_out, coords, list(grid.shape))  # type: ignore
        if ctx.needs_input_grad[1]:  # deformed samples (dgrid): the gradient moves the points
            g_coords = kern.trilinear_backward_coords(grad_out, grid, coords)  # type: ignore
        return g_grid, g_coords


def trilinear_grid_sample(grid: Tensor, coords: Tensor) -> Tensor:
    """`trilinear_reference` through `torch.nn.functional.grid_sample` (one fused native
    kernel, forward and backward, on every device; the channels-last grid is read through a
    permuted view, not copied).

    Args / Returns: as `trilinear_reference`.
    """
    size = grid.shape[:3]
    # grid_sample's (x, y, z) index (W, H, D) = our (Z, Y, X); align_corners: -1 and 1 are the
    # first and last vertices; border padding clamps like the reference (gradient 0 outside)
    scale = torch.tensor([s - 1 for s in size], dtype=coords.dtype, device=coords.device)
    g = (coords / scale * 2 - 1).flip(-1)
    out = torch.nn.functional.grid_sample(
        grid.permute(3, 0, 1, 2)[None],  # [1, C, X, Y, Z]
        g[None, :, None, None, :],  # [1, P, 1, 1, 3]
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )  # [1, C, P, 1, 1]
    return out[0, :, :, 0, 0].t()


def trilinear(grid: Tensor, coords: Tensor, kernel: str = "auto") -> Tensor:
    """Trilinear interpolation (see `trilinear_reference`), fused.

    Args:
        grid: [X, Y, Z, C] contiguous; coords: [P, 3] in vertex units.
        kernel: "auto": the C++ kernel for CPU float32 when it builds, else (CUDA, other
            dtypes) `trilinear_grid_sample`; "grid_sample": always that; "torch": the
            reference (8 gathers of plain tensor ops).
    Returns:
        [P, C], differentiable with respect to `grid` and `coords` (0 along an axis where a
        coordinate lies outside the grid and is clamped).
    """
    if kernel == "auto" and _cpu_kernel(grid, coords) is not None:
        return _TrilinearFn.apply(grid.contiguous(), coords.contiguous())
    if kernel in ("auto", "grid_sample"):
        return trilinear_grid_sample(grid, coords)
    return trilinear_reference(grid, coords)


# ----------------------------------------------------------------------------------------------
# geometry helpers
# ----------------------------------------------------------------------------------------------


def ray_aabb(origins: Tensor, directions: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Entry and exit distances of rays through an axis-aligned box (slab test).

    Args:
        origins, directions: [R, 3]; lo, hi: [3] box corners.
    Returns:
        t_min, t_max: [R]; the ray misses the box where t_max <= t_min.
    """
    d = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    inv = 1.0 / d
    t0 = (lo - origins) * inv
    t1 = (hi - origins) * inv
    t_min = torch.minimum(t0, t1).amax(dim=-1)
    t_max = torch.maximum(t0, t1).amin(dim=-1)
    return t_min, t_max


@dataclass(frozen=True)
class MarchParams:
    """What `march`, `march_reference` and `march_composite` march: rays, the interval and step of
    their samples, and the occupancy mask of a vertex grid over the box [lo, hi].

    Ray r gets t = t_min + (k + jitter) * step for k = 0, 1, ... while t < t_max (at most
    `max_samples`); with `use_mask`, a sample is kept only where the grid vertex nearest to it is
    set in `occupancy`. The C++ kernels read these fields by name (csrc/bindings.cpp, into
    `MarchInputs` of csrc/grid_kernels.h).
    """

    origins: Tensor
    """[R, 3] ray origins."""
    directions: Tensor
    """[R, 3] ray directions (t is measured in their length)."""
    t_min: Tensor
    """[R] start of each ray's interval."""
    t_max: Tensor
    """[R] end of each ray's interval (samples have t < t_max)."""
    step: Tensor
    """[R] distance between samples, in units of t."""
    jitter: Tensor
    """[R] offset of the first sample, in steps (0.5: centred; uniform in [0, 1): stratified)."""
    occupancy: Tensor
    """[X, Y, Z] bool vertex mask over the box [lo, hi]; its shape is the grid's."""
    use_mask: bool
    """False: every sample in the interval is kept (the mask is not read)."""
    lo: Tensor
    """[3] low corner of the grid box."""
    hi: Tensor
    """[3] high corner of the grid box."""
    max_samples: int
    """Cap on samples per ray."""
    contract: bool = False
    """Unbounded scenes: the grid covers contracted space (`nerfkit.render.contraction`, inner
    cube `center` +- `radius`, shell `bg_len`; [lo, hi] is then the cube of all of space,
    center +- (1 + bg_len) radius). Samples are then spaced `step` apart in contracted length,
    not in t: sample k + 1 is at t_k + step / contracted_speed(t_k), the first at
    t_min + jitter step / contracted_speed(t_min)."""
    center: Tensor | None = None
    """[3] centre of the inner cube (with `contract`)."""
    radius: float = 1.0
    """Half-width of the inner cube (with `contract`)."""
    bg_len: float = 0.0
    """Thickness of the contracted shell in units of `radius` (with `contract`)."""


@dataclass(frozen=True)
class CompositeParams:
    """How `march_composite` turns the density grid into compositing weights along the rays.

    At each sample sigma = softplus(trilinear(density) + shift) * sigma_scale,
    alpha = 1 - exp(-sigma delta), w = T alpha with T the transmittance before the sample. The
    C++ kernel reads these fields by name (csrc/bindings.cpp, into `CompositeInputs`).
    """

    density: Tensor
    """[X, Y, Z, 1] raw density at the vertices of the grid of `MarchParams.occupancy`."""
    shift: float
    """Added to the raw density before the softplus."""
    sigma_scale: float
    """Multiplies the softplus (density in world units)."""
    delta: float
    """Length of every sample in world units."""
    weight_threshold: float
    """The samples with a weight above this are returned."""
    stop_transmittance: float
    """A ray stops once its transmittance is below this (early termination)."""


def march_reference(params: MarchParams) -> tuple[Tensor, Tensor, Tensor]:
    """Packed samples along rays through a box, skipping unoccupied space (see `MarchParams`).

    Args:
        params: origins, directions [R, 3]; t_min, t_max, step, jitter [R]; occupancy
            [X, Y, Z] (read when use_mask); lo, hi [3]; max_samples.
    Returns:
        ray_indices [P] int64 non-decreasing, t [P], coords [P, 3] in vertex units.
    """
    p = params
    if p.contract:
        return _march_contracted_reference(p)
    dev, dt = p.origins.device, p.origins.dtype
    r = p.origins.shape[0]
    n = torch.ceil((p.t_max - p.t_min) / p.step).clamp(min=0, max=p.max_samples).long()
    total = int(n.sum())
    ray_idx = torch.repeat_interleave(torch.arange(r, device=dev), n, output_size=total)
    offsets = torch.cumsum(n, 0) - n
    k = torch.arange(total, device=dev) - offsets[ray_idx]
    t = p.t_min[ray_idx] + (k.to(dt) + p.jitter[ray_idx]) * p.step[ray_idx]
    keep = t < p.t_max[ray_idx]
    pts = p.origins[ray_idx] + t[:, None] * p.directions[ray_idx]
    return _keep_occupied(p, ray_idx, t, pts, keep)


def nearest_vertex(coords: Tensor, shape: Sequence[int]) -> Tensor:
    """Flat index [P] (x-major) of the vertex nearest to each of the continuous vertex
    coordinates coords [P, 3] in a vertex grid of `shape` (X, Y, Z), clamped to the grid."""
    v = coords.round().long()
    for a in range(3):
        v[:, a].clamp_(0, shape[a] - 1)
    return (v[:, 0] * shape[1] + v[:, 1]) * shape[2] + v[:, 2]


def _keep_occupied(
    p: MarchParams, ray_idx: Tensor, t: Tensor, pts: Tensor, keep: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The candidate samples (ray_idx [P], t [P], world points pts [P, 3]) that `keep` [P] and,
    with the mask, the occupancy keep, with their vertex coordinates [P, 3] (of the contracted
    points with `contract`)."""
    shape = p.occupancy.shape
    size = torch.tensor([s - 1 for s in shape], dtype=pts.dtype, device=pts.device)
    if p.contract:
        pts = contract(pts, p.center, p.radius, p.bg_len)
    coords = (pts - p.lo) / (p.hi - p.lo) * size
    if p.use_mask:
        keep = keep & p.occupancy.reshape(-1)[nearest_vertex(coords, shape)]
    sel = keep.nonzero().squeeze(-1)
    return ray_idx[sel], t[sel], coords[sel]


def _march_contracted_reference(p: MarchParams) -> tuple[Tensor, Tensor, Tensor]:
    """`march_reference` with `contract`: steps of `step` in contracted length (one step of all
    live rays per iteration)."""
    o, d = p.origins, p.directions
    r = o.shape[0]

    def step_t(idx: Tensor, t: Tensor, frac: Tensor) -> Tensor:
        x = o[idx] + t[:, None] * d[idx]
        speed = contracted_speed(x, d[idx], p.center, p.radius, p.bg_len)
        return frac * p.step[idx] / speed.clamp(min=1e-12)

    all_idx = torch.arange(r, device=o.device)
    t = p.t_min + step_t(all_idx, p.t_min, p.jitter)
    idx = all_idx[t < p.t_max]
    out_idx, out_t = [], []
    for _ in range(p.max_samples):
        if idx.numel() == 0:
            break
        ti = t[idx]
        out_idx.append(idx)
        out_t.append(ti)
        t_next = ti + step_t(idx, ti, torch.ones_like(ti))
        t[idx] = t_next
        idx = idx[t_next < p.t_max[idx]]
    if not out_idx:
        empty = o.new_zeros(0)
        return all_idx[:0], empty, o.new_zeros(0, 3)
    ray_idx, ts = torch.cat(out_idx), torch.cat(out_t)
    order = torch.sort(ray_idx, stable=True).indices  # by ray, then by step
    ray_idx, ts = ray_idx[order], ts[order]
    pts = o[ray_idx] + ts[:, None] * d[ray_idx]
    return _keep_occupied(p, ray_idx, ts, pts, torch.ones_like(ts, dtype=torch.bool))


def march(params: MarchParams, kernel: str = "auto") -> tuple[Tensor, Tensor, Tensor]:
    """`march_reference`, fused for CPU float32 tensors.

    Args:
        params: the rays and grid to march (`MarchParams`).
        kernel: "auto" or "grid_sample": the C++ kernel for CPU float32 when available;
            "torch": never.
    Returns:
        ray_indices [P] int64 non-decreasing, t [P], coords [P, 3] in vertex units.
    """
    kern = _cpu_kernel(params.origins) if kernel in ("auto", "grid_sample") else None
    if kern is not None:
        ri, t, c = kern.march(params)  # type: ignore[attr-defined]
        return ri, t, c
    return march_reference(params)


def march_composite(
    params: MarchParams, composite: CompositeParams
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor] | None:
    """Inference: `march`, the density lookup and compositing fused per ray (C++ kernel only).

    Samples as `march` gives them; weights as `composite` says (`render_weights_packed`). A ray
    stops once T < `composite.stop_transmittance` (early termination: the samples skipped carry
    less than that weight in total).

    Args:
        params: the rays and grid to march; composite: the density grid [X, Y, Z, 1] (same grid
            as params.occupancy) and how to turn it into weights.
    Returns:
        (acc [R] = sum w, wt [R] = sum w t, ray_indices [S], coords [S, 3], weights [S] for the
        samples with w > weight_threshold, number of density evaluations (int64 scalar),
        t_end [R] the t of the sample at which each ray stopped (its t_max where it did not));
        None where the kernel is unavailable (not CPU float32, or not built): use the unfused
        path.
    """
    kern = _cpu_kernel(params.origins, composite.density)
    if kern is None:
        return None
    return tuple(kern.march_composite(params, composite))  # type: ignore[attr-defined]


def grid_shape_for(extent: Tensor, num_voxels: int) -> tuple[int, int, int]:
    """Vertices per axis so that the box `extent` [3] holds about `num_voxels` cubic voxels."""
    voxel = (float(extent.prod()) / num_voxels) ** (1.0 / 3.0)
    return tuple(max(2, int(round(float(e) / voxel)) + 1) for e in extent)  # type: ignore


def resample_grid(
    grid: Tensor,
    old_lo: Tensor,
    old_hi: Tensor,
    new_lo: Tensor,
    new_hi: Tensor,
    shape: tuple[int, int, int],
) -> Tensor:
    """Values of a channels-last vertex grid over [old_lo, old_hi] at the vertices of a new grid.

    Args:
        grid: [X, Y, Z, C]; old_lo, old_hi, new_lo, new_hi: [3]; shape: new (X', Y', Z').
    Returns:
        [X', Y', Z', C] trilinear samples (border values outside the old box).
    """
    axes = [torch.linspace(float(new_lo[k]), float(new_hi[k]), shape[k]) for k in range(3)]
    pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).to(grid)  # [X', Y', Z', 3]
    size = torch.tensor(grid.shape[:3], dtype=grid.dtype, device=grid.device) - 1
    coords = (pts - old_lo.to(grid)) / (old_hi - old_lo).to(grid) * size
    out = trilinear_reference(grid, coords.reshape(-1, 3))
    return out.reshape(*shape, grid.shape[3]).contiguous()
