"""Meshes and point clouds from a trained run (`nerfkit export mesh|pointcloud RUN`).

Mesh: the density is sampled on a vertex grid over the method's box (for `grid`, by default,
the density grid's own vertices: the grid directly), padded with one layer of empty space so a
surface cut by the box is closed there (on the box's faces), and the level set sigma =
threshold is extracted by marching cubes (PyMCubes), its triangles wound so that their normals
point out of the solid (towards lower density). Each vertex gets the colour the radiance field
emits there towards -n, i.e. as seen by a ray arriving along the outward normal
n = -grad sigma / |grad sigma| (central differences of the density, one voxel apart).

Point cloud: every chosen training view is rendered; the pixels whose opacity exceeds
`min_opacity` give a point at their expected depth, o + depth d, with the rendered colour
(un-composited from the background) and the density-gradient normal turned towards the camera;
then statistical outlier removal drops the points whose mean distance to their k nearest
neighbours exceeds the mean of that over all points plus `std_ratio` standard deviations.

Frames: methods work in the scene frame (loaders may recentre and rescale the dataset's poses,
`SceneMeta.data_transform`: scene = T @ file) and, for forward-facing scenes, in NDC. By default
geometry is written in the dataset's own frame and scale (NDC mapped back to the scene, then
T^-1); `frame="scene"` keeps the frame of the run's cameras (`SceneMeta.train_c2w`). The NDC
box reaches infinite depth, so NDC meshes are cut at 1.1 x the farthest content depth
(`SceneMeta.bounds`).

The field of a method is read through the `Method` interface alone (`point_density`,
`point_radiance`, `field_box`, `density_grid`), which every registered method implements.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from nerfkit.atomic import atomic_path
from nerfkit.cameras import Cameras
from nerfkit.data.scene import SceneMeta
from nerfkit.errors import NerfkitError
from nerfkit.methods.base import Method
from nerfkit.render.ndc import from_ndc

Frame = Literal["dataset", "scene"]
MESH_FORMATS = ("ply", "obj", "glb")
DEFAULT_RESOLUTION = 256
"""Vertices along the longest side of the sampled density volume (methods without a grid)."""
CHUNK = 1 << 16
"""Points per field evaluation (bounded memory)."""


# ----------------------------------------------------------------------------------------------
# the field of a method
# ----------------------------------------------------------------------------------------------


@dataclass
class Field:
    """What export reads of a trained method, in the model's space (NDC for NDC scenes).

    density: points [P, 3] -> sigma [P] per unit length. radiance: points [P, 3], unit viewing
    directions [P, 3] (scene frame) -> colour [P, 3]. lo, hi: [3] the box to mesh. voxel: the
    method's own resolution (length of a voxel edge) where it has one. native: where the
    method is a static voxel grid over [lo, hi], its densities [X, Y, Z] at the grid vertices.
    """

    density: Callable[[Tensor], Tensor]
    radiance: Callable[[Tensor, Tensor], Tensor]
    lo: Tensor
    hi: Tensor
    voxel: float | None = None
    native: Callable[[], Tensor] | None = None


def method_field(method: Method, time: float | None = None) -> Field:
    """The `Field` of a trained method at `time` (dynamic methods; None: static or t = 0),
    read through the `Method` interface (`point_density`, `point_radiance`, `field_box`,
    `density_grid`)."""
    if type(method).point_density is Method.point_density:
        raise NerfkitError(
            f"method {type(method).__name__} has no density to export; implement "
            "Method.point_density and Method.point_radiance (nerfkit/methods/base.py)"
        )
    lo, hi, voxel = method.field_box()
    grid = method.density_grid(time)
    return Field(
        lambda p: method.point_density(p, time),
        lambda p, d: method.point_radiance(p, d, time),
        lo,
        hi,
        voxel=voxel,
        native=None if grid is None else (lambda: grid),
    )


@torch.no_grad()
def evaluate_chunked(fn: Callable[..., Tensor], *args: Tensor, chunk: int = CHUNK) -> Tensor:
    """fn(*args) on `chunk` rows at a time (each arg [P, ...]), concatenated on the CPU."""
    n = args[0].shape[0]
    if n == 0:
        return fn(*args).cpu()
    return torch.cat(
        [fn(*(a[i : i + chunk] for a in args)).float().cpu() for i in range(0, n, chunk)]
    )


# ----------------------------------------------------------------------------------------------
# meshes
# ----------------------------------------------------------------------------------------------


def volume_shape(lo: Tensor, hi: Tensor, resolution: int) -> tuple[int, int, int]:
    """Vertices per axis of a grid over [lo, hi] with `resolution` vertices along the longest
    side and (nearly) cubic cells: round(resolution x extent / longest extent), at least 2."""
    ext = (hi - lo).double().cpu()
    n = [max(2, round(resolution * float(e / ext.max()))) for e in ext]
    return n[0], n[1], n[2]


def grid_points(lo: Tensor, hi: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """The vertices [X * Y * Z, 3] of a grid of `shape` over [lo, hi] (corners included), in
    C order of (i, j, k): vertex (i, j, k) is at lo + (i, j, k) (hi - lo) / (shape - 1)."""
    axes = [
        torch.linspace(float(lo[k]), float(hi[k]), shape[k], device=lo.device) for k in range(3)
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def sample_density(field: Field, shape: tuple[int, int, int]) -> Tensor:
    """Densities [X, Y, Z] (CPU) of `field` at the vertices of a grid of `shape` over its box."""
    return evaluate_chunked(field.density, grid_points(field.lo, field.hi, shape)).reshape(shape)


def auto_threshold(voxel: float) -> float:
    """The default density level of a surface: sigma = ln 2 / voxel.

    Density is per unit length, so a level only means something against a length; the one at
    hand is the resolution the surface is resolved at (the method's voxel, else the sampling
    cell). At this level a slab one voxel thick is half opaque (1 - exp(-sigma voxel) = 1/2):
    the surface is put where a ray crossing one cell would be stopped with probability 1/2.
    A trained opaque surface rises from ~0 to many times this within a voxel or two, so the
    level sits on the surface to a fraction of a voxel; thin or semi-transparent stuff (haze,
    floaters) below half opacity per voxel is left out. For a 3-unit box at 256 vertices this
    is ~60, close to the hand-picked levels used with NeRF's synthetic scenes (~50).
    """
    if voxel <= 0:
        raise ValueError(f"voxel must be > 0, got {voxel}")
    return math.log(2.0) / voxel


def marching_cubes(
    volume: np.ndarray, level: float, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The level set {volume = level} of a density volume [X, Y, Z] sampled at the vertices of
    a grid over the box [lo, hi] (PyMCubes' marching cubes).

    Returns:
        vertices [V, 3] float64 in the box's coordinates; faces [F, 3] int64, wound so their
        normals (right-hand rule) point towards lower values: out of the dense solid.
    """
    import mcubes

    vol = np.asarray(volume, dtype=np.float64)
    verts, faces = mcubes.marching_cubes(vol, float(level))
    if len(faces) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    size = np.array(vol.shape, dtype=np.float64) - 1
    verts = np.asarray(lo, np.float64) + verts / size * (np.asarray(hi) - np.asarray(lo))
    # PyMCubes winds faces outwards from the high side (checked in tests/test_export.py)
    return verts, np.asarray(faces, dtype=np.int64)


def density_normals(density: Callable[[Tensor], Tensor], points: Tensor, h: float) -> Tensor:
    """Outward unit normals [P, 3] = -grad sigma / |grad sigma| at points [P, 3], by central
    differences `h` apart (any method: no autograd through its field needed); zero where the
    gradient vanishes."""
    offsets = torch.eye(3, device=points.device, dtype=points.dtype) * (0.5 * h)
    grad = torch.stack(
        [
            evaluate_chunked(density, points + offsets[k])
            - evaluate_chunked(density, points - offsets[k])
            for k in range(3)
        ],
        -1,
    )
    norm = grad.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, -grad / norm.clamp(min=1e-30), torch.zeros_like(grad))


@dataclass
class Geometry:
    """Exported geometry: points [V, 3], faces [F, 3] (None: a point cloud), colours [V, 3] in
    [0, 1], normals [V, 3] (unit, outward / towards the cameras), all float64 numpy."""

    points: np.ndarray
    faces: np.ndarray | None
    colours: np.ndarray
    normals: np.ndarray


def extract_mesh(
    field: Field,
    resolution: int | None = None,
    threshold: float | str = "auto",
    to_scene: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Geometry, float]:
    """The mesh of `field` in the model's space, and the density level used.

    Args:
        resolution: vertices along the longest side of the sampled volume; None: the field's
            own grid where it has one (`Field.native`), else DEFAULT_RESOLUTION.
        threshold: the density level, or "auto" (`auto_threshold` of the field's voxel, else
            of the sampling cell).
        to_scene: the map from the model's space to the scene frame where they differ (NDC,
            `output_map(meta, "scene")`): the vertex colours are looked up along the normals
            turned into the scene frame, where viewing directions live.
    """
    if field.native is not None and resolution is None:
        volume = field.native().float().cpu()
    else:
        shape = volume_shape(field.lo, field.hi, resolution or DEFAULT_RESOLUTION)
        volume = sample_density(field, shape)
    lo, hi = field.lo.double().cpu(), field.hi.double().cpu()
    cell = (hi - lo) / (torch.tensor(volume.shape, dtype=torch.float64) - 1)
    cell_size = float(cell.prod() ** (1 / 3))
    level = auto_threshold(field.voxel or cell_size) if threshold == "auto" else float(threshold)
    if not level > 0:
        raise NerfkitError(f"--threshold must be a positive density or auto, got {threshold}")
    vmax = float(volume.max())
    if not vmax > level:
        raise NerfkitError(
            f"no surface: the density never exceeds the level {level:.4g} (largest {vmax:.4g}); "
            "pass a lower --threshold"
        )
    # one layer of empty space around the box closes surfaces cut by its faces; the closing
    # caps, half a cell out, are then moved onto the faces
    padded = torch.nn.functional.pad(volume, (1, 1, 1, 1, 1, 1)).numpy()
    verts, faces = marching_cubes(padded, level, (lo - cell).numpy(), (hi + cell).numpy())
    verts = np.clip(verts, lo.numpy(), hi.numpy())
    dev = field.lo.device
    p = torch.as_tensor(verts, dtype=torch.float32, device=dev)
    normals = density_normals(field.density, p, cell_size).double().numpy()
    geom = Geometry(verts, faces, np.zeros_like(verts), normals)
    view = -torch.as_tensor(map_geometry(geom, to_scene).normals, dtype=torch.float32)
    geom.colours = evaluate_chunked(field.radiance, p, view.to(dev)).double().numpy()
    return geom, level


# ----------------------------------------------------------------------------------------------
# point clouds
# ----------------------------------------------------------------------------------------------


def view_points(
    method: Method,
    field: Field,
    cameras: Cameras,
    k: int,
    time: float | None = None,
    min_opacity: float = 0.9,
) -> Geometry:
    """Surface points of training view k: the expected-depth points of its pixels whose
    opacity exceeds `min_opacity`, in the model's space, with the rendered colour
    (un-composited from the background) and density-gradient normals turned to the camera."""
    meta = method.meta
    img = method.render_image(cameras, k, meta.near, meta.far, ndc=meta.ndc, time=time)
    rays = cameras.image_rays(k, meta.near, meta.far, ndc=meta.ndc)
    acc = img.acc.reshape(-1)
    keep = acc > min_opacity
    o, d = rays.origins[keep], rays.directions[keep]
    pts = o + img.depth.reshape(-1)[keep, None] * d
    a = acc[keep, None]
    bg = method.background.float().cpu()
    rgb = ((img.rgb.reshape(-1, 3)[keep] - (1 - a) * bg) / a.clamp(min=1e-6)).clamp(0, 1)
    dev = method.background.device
    n = density_normals(field.density, pts.to(dev), _cell(field))
    towards = (n * d).sum(-1, keepdim=True) > 0  # facing away from this camera: flip
    n = torch.where(towards, -n, n)
    return Geometry(pts.double().numpy(), None, rgb.double().numpy(), n.double().numpy())


def _cell(field: Field) -> float:
    """Finite-difference step for point-cloud normals: the method's voxel, else 1/256 of the
    box's longest side."""
    if field.voxel:
        return field.voxel
    return float((field.hi - field.lo).max()) / DEFAULT_RESOLUTION


def outlier_mask(points: np.ndarray, k: int = 16, std_ratio: float = 2.0) -> np.ndarray:
    """Statistical outlier removal: True [N] for the points whose mean distance to their k
    nearest neighbours is at most the mean of that over all points plus `std_ratio` standard
    deviations (all True when there are k points or fewer)."""
    from scipy.spatial import cKDTree

    n = len(points)
    if n <= k:
        return np.ones(n, dtype=bool)
    dist, _ = cKDTree(points).query(points, k=k + 1)  # the first neighbour is the point itself
    mean_d = dist[:, 1:].mean(1)
    return mean_d <= mean_d.mean() + std_ratio * mean_d.std()


def concat(parts: list[Geometry]) -> Geometry:
    """Point clouds joined into one."""
    return Geometry(
        np.concatenate([g.points for g in parts]) if parts else np.zeros((0, 3)),
        None,
        np.concatenate([g.colours for g in parts]) if parts else np.zeros((0, 3)),
        np.concatenate([g.normals for g in parts]) if parts else np.zeros((0, 3)),
    )


def select(g: Geometry, mask: np.ndarray) -> Geometry:
    """The points of a point cloud where mask [N] is True."""
    return Geometry(g.points[mask], None, g.colours[mask], g.normals[mask])


# ----------------------------------------------------------------------------------------------
# frames
# ----------------------------------------------------------------------------------------------


def map_geometry(g: Geometry, fn: Callable[[Tensor], Tensor] | None) -> Geometry:
    """g under a smooth map fn ([N, 3] -> [N, 3], row-wise; None: the identity): points
    mapped, normals by the inverse transpose of the map's Jacobian (renormalised; zero normals
    stay zero)."""
    if fn is None:
        return g
    p = torch.as_tensor(g.points, dtype=torch.float64)
    n = torch.as_tensor(g.normals, dtype=torch.float64)
    jac = torch.func.vmap(torch.func.jacrev(lambda x: fn(x[None])[0]))(p)  # [N, 3, 3]
    n2 = torch.linalg.solve(jac.transpose(1, 2), n[..., None])[..., 0]
    norm = n2.norm(dim=-1, keepdim=True)
    n2 = torch.where(norm > 0, n2 / norm.clamp(min=1e-300), n2)
    return Geometry(fn(p).numpy(), g.faces, g.colours, n2.numpy())


def output_map(meta: SceneMeta, frame: Frame) -> Callable[[Tensor], Tensor] | None:
    """The map [N, 3] -> [N, 3] (float64) from the model's space to the output frame: NDC ->
    scene for NDC scenes, then, for frame "dataset", scene -> dataset (the inverse of
    `SceneMeta.data_transform`, scene = T @ file); None where that is the identity."""
    if frame not in ("dataset", "scene"):
        raise NerfkitError(f"unknown --frame '{frame}'; use dataset or scene")
    maps: list[Callable[[Tensor], Tensor]] = []
    if meta.ndc:
        maps.append(lambda q: from_ndc(q, meta.focal, meta.width, meta.height))
    if frame == "dataset" and meta.data_transform:
        inv = torch.linalg.inv(torch.tensor(meta.data_transform, dtype=torch.float64))
        maps.append(lambda x: x @ inv[:3, :3].T.to(x) + inv[:3, 3].to(x))

    def fn(x: Tensor) -> Tensor:
        for f in maps:
            x = f(x)
        return x

    return fn if maps else None


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------


def to_trimesh(g: Geometry) -> object:
    """A trimesh.Trimesh of the geometry (no faces for a point cloud), with vertex colours
    (8-bit) and normals, vertices as given (no merging)."""
    import trimesh

    rgba = np.concatenate([g.colours, np.ones((len(g.colours), 1))], -1)
    return trimesh.Trimesh(
        vertices=g.points,
        faces=np.zeros((0, 3), dtype=np.int64) if g.faces is None else g.faces,
        vertex_normals=g.normals,
        vertex_colors=np.round(rgba * 255).clip(0, 255).astype(np.uint8),
        process=False,
    )


def write_geometry(path: Path, g: Geometry, file_type: str) -> Path:
    """Write a mesh (ply, obj, glb) or point cloud (ply) atomically, with vertex colours and
    normals (glb: colours as COLOR_0, normals as NORMAL)."""
    if file_type not in MESH_FORMATS or (g.faces is None and file_type != "ply"):
        allowed = "ply" if g.faces is None else ", ".join(MESH_FORMATS)
        raise NerfkitError(f"unknown --format '{file_type}' for this export; use {allowed}")
    mesh = to_trimesh(g)
    kwargs = {"vertex_normal": True} if file_type == "ply" else {}
    if file_type == "obj":
        kwargs = {"include_normals": True, "include_color": True}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        mesh.export(str(tmp), file_type=file_type, **kwargs)
    return path


# ----------------------------------------------------------------------------------------------
# the commands
# ----------------------------------------------------------------------------------------------


def _check_time(meta: SceneMeta, time: float | None, run_dir: Path) -> float | None:
    from nerfkit.paths import check_time

    if time is None:
        return 0.0 if meta.dynamic else None
    if not meta.dynamic:
        raise NerfkitError(
            f"{run_dir}: a static run (its training images have no time stamps); --time is for "
            "dynamic runs"
        )
    return check_time(time)


def _output(run_dir: Path, output: Path | None, name: str, file_type: str) -> tuple[Path, str]:
    """The output file and its format: `output`'s suffix decides where it has one of the
    formats (a folder or no suffix: RUN/export/<name>.<format>)."""
    if output is None:
        return Path(run_dir) / "export" / f"{name}.{file_type}", file_type
    out = Path(output)
    suffix = out.suffix.lower().lstrip(".")
    if suffix in MESH_FORMATS:
        return out, suffix
    if out.is_dir() or not suffix:
        return out / f"{name}.{file_type}", file_type
    raise NerfkitError(f"{out}: unknown file type '.{suffix}'; use .ply, .obj or .glb")


def export_mesh(
    run_dir: Path,
    output: Path | None = None,
    resolution: int | None = None,
    threshold: float | str = "auto",
    file_type: str = "ply",
    frame: Frame = "dataset",
    time: float | None = None,
    device: str = "auto",
) -> dict:
    """Extract the mesh of a trained run (`extract_mesh`) and write it in `frame`.

    Args:
        output: the file (its suffix .ply / .obj / .glb sets the format) or a folder; default
            RUN/export/mesh.<format>.
        resolution, threshold: as `extract_mesh`. time: dynamic runs, in [0, 1] (default 0).
    Returns:
        {"path", "vertices", "faces", "threshold", "time", "frame", "summary"}.
    """
    from nerfkit.run import load_run

    if file_type not in MESH_FORMATS:
        raise NerfkitError(f"unknown --format '{file_type}'; use {', '.join(MESH_FORMATS)}")
    if resolution is not None and resolution < 2:
        raise NerfkitError(f"--resolution must be >= 2, got {resolution}")
    run = load_run(run_dir, device)
    t = _check_time(run.meta, time, run.run_dir)
    path, file_type = _output(run.run_dir, output, "mesh", file_type)
    field = method_field(run.method, t)
    if run.meta.ndc and run.meta.bounds:
        field = crop_ndc_depth(field, 1.1 * max(run.meta.bounds))
    geom, level = extract_mesh(field, resolution, threshold, output_map(run.meta, "scene"))
    geom = map_geometry(geom, output_map(run.meta, frame))
    write_geometry(path, geom, file_type)
    summary = f"{len(geom.points)} vertices, {len(geom.faces)} faces at density {level:.4g}"
    return {
        "path": str(path),
        "vertices": len(geom.points),
        "faces": len(geom.faces),
        "threshold": level,
        "time": t,
        "frame": frame,
        "summary": f"{summary}, {frame} frame",
    }


def crop_ndc_depth(field: Field, far: float) -> Field:
    """An NDC field's box cut at the NDC depth of scene depth `far` (z' = 1 - 2 / far, near
    plane at depth 1): the NDC box runs to infinite depth, where a backdrop's mesh would land
    at infinity. The grid's own vertices no longer cover the box: it is sampled instead."""
    hi = field.hi.clone()
    hi[2] = min(float(hi[2]), 1.0 - 2.0 / far)
    return dataclasses.replace(field, hi=hi, native=None)


def training_cameras(run: object, downscale: int | None = None) -> Cameras:
    """The run's training cameras: the dataset's train split (its own intrinsics) at the
    training --downscale (or `downscale`), or, when the dataset folder is gone, pinhole cameras
    at the poses stored in the run folder (`SceneMeta.train_c2w`)."""
    from nerfkit.video import frame_size, pinhole_cameras

    cfg, meta = run.config, run.meta  # type: ignore[attr-defined]
    if cfg.data is None or not Path(cfg.data).is_dir():
        w, h, f = frame_size(meta.width, meta.height, meta.focal, cfg.downscale, downscale)
        return pinhole_cameras(torch.tensor(meta.train_c2w, dtype=torch.float32), w, h, f)
    from nerfkit.data import load_scene

    ds = cfg.downscale if downscale is None else downscale
    scene = load_scene(cfg.data, format=cfg.format, downscale=ds, ndc=meta.ndc)
    return scene.split("train").cameras


def export_pointcloud(
    run_dir: Path,
    output: Path | None = None,
    views: int = 20,
    downscale: int | None = None,
    min_opacity: float = 0.9,
    neighbours: int = 16,
    std_ratio: float = 2.0,
    frame: Frame = "dataset",
    time: float | None = None,
    device: str = "auto",
) -> dict:
    """A point cloud of a trained run from `views` training views (evenly chosen; 0: all),
    rendered at the training resolution (or `downscale`): `view_points` of each, then
    `outlier_mask` (neighbours 0: no outlier removal); written as PLY in `frame`.

    Returns:
        {"path", "points", "removed", "views", "time", "frame", "summary"}.
    """
    from nerfkit.run import load_run

    if not 0.0 <= min_opacity < 1.0:
        raise NerfkitError(f"--min-opacity must be in [0, 1), got {min_opacity}")
    run = load_run(run_dir, device)
    t = _check_time(run.meta, time, run.run_dir)
    path, file_type = _output(run.run_dir, output, "pointcloud", "ply")
    if file_type != "ply":
        raise NerfkitError(f"{path}: point clouds are written as .ply")
    cams = training_cameras(run, downscale)
    n = cams.c2w.shape[0]
    chosen = range(n) if views <= 0 or views >= n else np.linspace(0, n - 1, views).round()
    field = method_field(run.method, t)
    parts = [view_points(run.method, field, cams, int(k), t, min_opacity) for k in chosen]
    geom = concat(parts)
    if len(geom.points) == 0:
        raise NerfkitError(
            f"no pixel of the chosen views is more opaque than --min-opacity {min_opacity}; "
            "lower it (or train longer)"
        )
    before = len(geom.points)
    if neighbours > 0:
        geom = select(geom, outlier_mask(geom.points, neighbours, std_ratio))
    geom = map_geometry(geom, output_map(run.meta, frame))
    write_geometry(path, geom, "ply")
    removed = before - len(geom.points)
    return {
        "path": str(path),
        "points": len(geom.points),
        "removed": removed,
        "views": len(chosen),
        "time": t,
        "frame": frame,
        "summary": f"{len(geom.points)} points from {len(chosen)} views, {removed} outliers "
        f"removed, {frame} frame",
    }


def parse_threshold(value: str | float) -> float | str:
    """--threshold: "auto" or a positive density (NerfkitError otherwise)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        level = float(value)
    except ValueError:
        raise NerfkitError(f"--threshold must be auto or a density, got '{value}'") from None
    if not level > 0 or math.isinf(level):
        raise NerfkitError(f"--threshold must be a positive finite density, got {value}")
    return level


def run_export(args: object) -> dict:
    """`nerfkit export mesh|pointcloud` (cli.ExportArgs): the export's result dict."""
    a = args
    if a.kind == "mesh":  # type: ignore[attr-defined]
        threshold = parse_threshold(a.threshold)
        return export_mesh(
            a.run, a.output, a.resolution, threshold, a.format.lower(), a.frame, a.time, a.device
        )
    if a.format.lower() != "ply":
        raise NerfkitError(f"point clouds are written as ply, not '{a.format}'")
    return export_pointcloud(
        a.run, a.output, a.views, a.downscale, a.min_opacity, a.neighbours, a.std_ratio,
        a.frame, a.time, a.device,
    )  # fmt: skip
