"""`nerfkit export mesh|pointcloud`: exact distances to the procedural scene, marching cubes of
analytic densities, frames, outlier removal, every method's field, and the command end to end
(a `grid` run trained for a few dozen steps, judged against the analytic surfaces)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from helpers import TINY_NERF, run_cli

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta
from nerfkit.data.synthetic import (
    BLUE_SPHERE,
    OBJECTS,
    RED_SPHERE,
    Box,
    Platform,
    Sphere,
    generate_scene,
    surface_distance,
    trace,
)
from nerfkit.errors import NerfkitError
from nerfkit.export import (
    Field,
    Geometry,
    auto_threshold,
    density_normals,
    extract_mesh,
    map_geometry,
    marching_cubes,
    method_field,
    outlier_mask,
    output_map,
)
from nerfkit.render.ndc import from_ndc, ndc_rays

# --- exact distances to the procedural scene ---------------------------------------------------


def test_sphere_distance_is_the_radial_gap():
    s = Sphere(centre=(1.0, -2.0, 0.5), radius=0.7, colour=(1, 0, 0))
    u = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    r = torch.rand(50, dtype=torch.float64) * 2
    p = torch.tensor(s.centre, dtype=torch.float64) + r[:, None] * u
    torch.testing.assert_close(s.distance(p), (r - 0.7).abs())


def test_box_distance_outside_faces_edges_corners_and_inside():
    b = Box(centre=(0.0, 0.0, 0.0), half=(1.0, 2.0, 3.0), yaw=0.0, colour=(0, 1, 0))
    p = torch.tensor(
        [
            [1.5, 0.0, 0.0],  # 0.5 beyond the +x face
            [0.0, 0.0, -3.25],  # 0.25 below the bottom
            [2.0, 3.0, 0.0],  # off the x-y edge: (1, 1)
            [2.0, 4.0, 5.0],  # off a corner: (1, 2, 2)
            [0.5, 0.0, 0.0],  # inside, 0.5 from the +x face
            [0.0, 1.9, 0.0],  # inside, 0.1 from the +y face
        ],
        dtype=torch.float64,
    )
    want = torch.tensor([0.5, 0.25, math.sqrt(2), 3.0, 0.5, 0.1], dtype=torch.float64)
    torch.testing.assert_close(b.distance(p), want)
    # turned about z: the same distances for points turned with it
    turned = Box(centre=(0.3, -0.2, 0.1), half=(1.0, 2.0, 3.0), yaw=0.7, colour=(0, 1, 0))
    c, s = math.cos(0.7), math.sin(0.7)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    q = p @ rot.T + torch.tensor(turned.centre, dtype=torch.float64)
    torch.testing.assert_close(turned.distance(q), want)


def test_platform_distance_top_side_rim_and_inside():
    pl = Platform((0.0, 0.0), 1.0, -0.5, 0.5, (1, 1, 1), (0, 0, 0), 0.1, (0.5, 0.5, 0.5))
    p = torch.tensor(
        [
            [0.3, 0.2, 0.8],  # above the top: 0.3
            [0.0, 1.4, 0.0],  # beside the side: 0.4
            [0.0, 2.0, 1.5],  # off the top rim: (1, 1)
            [0.0, 0.0, 0.0],  # centre: 0.5 to top and bottom
            [0.9, 0.0, 0.1],  # inside near the side: 0.1
        ],
        dtype=torch.float64,
    )
    want = torch.tensor([0.3, 0.4, math.sqrt(2), 0.5, 0.1], dtype=torch.float64)
    torch.testing.assert_close(pl.distance(p), want)


def test_traced_hits_lie_on_the_surface_and_scene_distance_is_the_nearest_object():
    g = torch.Generator().manual_seed(0)
    o = torch.nn.functional.normalize(
        torch.randn(4000, 3, generator=g, dtype=torch.float64), dim=-1
    )
    o = 4.0 * o
    d = torch.nn.functional.normalize(
        torch.rand(4000, 3, generator=g, dtype=torch.float64) - 0.5 - 0.2 * o, dim=-1
    )
    t, _, idx = trace(o, d)
    hit = torch.isfinite(t)
    assert hit.sum() > 500
    p = o[hit] + t[hit, None] * d[hit]
    assert float(surface_distance(p).max()) < 1e-9
    for k, obj in enumerate(OBJECTS):  # each hit is on the object the tracer names
        on = idx[hit] == k
        if on.any():
            assert float(obj.distance(p[on]).max()) < 1e-9
    q = torch.tensor([[-0.35, -0.4, -0.05], [0.1, 0.45, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(
        surface_distance(q),
        torch.tensor([RED_SPHERE.radius, 1.0 - 0.28 - BLUE_SPHERE.radius], dtype=torch.float64),
    )


# --- marching cubes, thresholds, normals, colours ----------------------------------------------


def _sphere_field(centre: torch.Tensor, radius: float, box: float = 1.0, width: float = 0.02):
    """A solid sphere of density 100 falling to 0 across a shell `width` thick at `radius`,
    whose colour is (v + 1) / 2 of the viewing direction v (a colour that shows from where
    it was seen)."""

    def density(p):
        r = (p - centre).norm(dim=-1)
        return 100.0 * torch.sigmoid((radius - r) / width)

    lo, hi = torch.full((3,), -box), torch.full((3,), box)
    return Field(density, lambda p, v: (v + 1) / 2, lo, hi)


def test_marching_cubes_of_a_sphere_density_lies_on_the_sphere_with_outward_normals():
    centre = torch.tensor([0.1, -0.05, 0.2])
    field = _sphere_field(centre, 0.5)
    geom, level = extract_mesh(field, resolution=48, threshold=50.0)  # the shell's middle
    assert level == 50.0
    p = torch.as_tensor(geom.points)
    r = (p - centre.double()).norm(dim=-1)
    assert float((r - 0.5).abs().max()) < 0.01  # a fraction of the 0.043 cell
    mesh = trimesh.Trimesh(geom.points, geom.faces, process=False)
    assert mesh.is_watertight
    # faces wound outwards: positive volume, the ball's to within 2 %
    assert abs(mesh.volume / (4 / 3 * math.pi * 0.125) - 1) < 0.02
    radial = (p - centre.double()) / r[:, None]
    n = torch.as_tensor(geom.normals)
    assert float((n * radial).sum(-1).min()) > 0.99  # density-gradient normals point outwards
    # the colour is the one seen by a ray arriving along the outward normal: v = -n
    np.testing.assert_allclose(geom.colours, (1 - geom.normals) / 2, atol=1e-6)


def test_meshes_of_surfaces_cut_by_the_box_are_closed_and_empty_fields_are_refused():
    field = _sphere_field(torch.zeros(3), 0.8, box=0.5)  # fills the whole box
    geom, _ = extract_mesh(field, resolution=8, threshold=50.0)
    mesh = trimesh.Trimesh(geom.points, geom.faces, process=False)
    assert mesh.is_watertight and abs(mesh.volume - 1.0) < 0.05  # the box, closed
    from nerfkit.errors import NerfkitError

    with pytest.raises(NerfkitError, match="lower --threshold"):
        extract_mesh(field, resolution=8, threshold=1e3)


def test_auto_threshold_makes_a_one_voxel_slab_half_opaque():
    for voxel in (0.01, 0.2, 3.0):
        assert 1 - math.exp(-auto_threshold(voxel) * voxel) == pytest.approx(0.5)


def test_marching_cubes_axes_follow_the_volume_axes():
    """An off-centre box of density in an anisotropic grid: vertices at its faces, in the box's
    coordinates (axis k of the volume is coordinate k)."""
    shape = (21, 31, 41)
    lo, hi = np.array([0.0, -1.0, 2.0]), np.array([2.0, 2.0, 6.0])
    axes = [np.linspace(lo[k], hi[k], shape[k]) for k in range(3)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    inside = (abs(x - 1.0) < 0.55) & (abs(y - 0.5) < 0.35) & (abs(z - 4.0) < 0.45)
    verts, faces = marching_cubes(inside.astype(float), 0.5, lo, hi)
    assert len(faces) > 0
    np.testing.assert_allclose(verts.min(0), [0.45, 0.15, 3.55], atol=0.06)
    np.testing.assert_allclose(verts.max(0), [1.55, 0.85, 4.45], atol=0.06)


def test_density_normals_of_a_plane_ramp():
    n_true = torch.nn.functional.normalize(torch.tensor([1.0, -2.0, 0.5]), dim=0)

    def density(p):
        return 10.0 - 4.0 * (p @ n_true)  # decreasing along n_true: n_true is "out"

    p = torch.rand(20, 3)
    torch.testing.assert_close(
        density_normals(density, p, 0.01), n_true.expand(20, 3), atol=1e-4, rtol=0
    )


# --- point clouds: outliers --------------------------------------------------------------------


def test_statistical_outlier_removal_drops_isolated_points_and_keeps_the_surface():
    g = np.random.default_rng(0)
    u = g.normal(size=(2000, 3))
    surface = u / np.linalg.norm(u, axis=1, keepdims=True)  # unit sphere, dense
    far = g.uniform(-3, 3, size=(20, 3)) * 2  # scattered far away
    far = far[np.linalg.norm(far, axis=1) > 2.0]
    keep = outlier_mask(np.concatenate([surface, far]), k=8, std_ratio=2.0)
    assert keep[: len(surface)].mean() > 0.97
    assert not keep[len(surface) :].any()
    assert outlier_mask(surface[:5], k=8).all()  # too few points to judge: all kept


# --- frames ------------------------------------------------------------------------------------


def test_ndc_points_map_back_onto_their_world_rays():
    f, w, h = 40.0, 64, 48
    g = torch.Generator().manual_seed(1)
    o = torch.randn(30, 3, generator=g, dtype=torch.float64) * 0.2
    d = torch.nn.functional.normalize(
        torch.randn(30, 3, generator=g, dtype=torch.float64) * 0.2 + torch.tensor([0, 0, -1.0]),
        dim=-1,
    )
    o_ndc, d_ndc = ndc_rays(o, d, f, w, h)
    for tp in (0.1, 0.5, 0.9):
        x = from_ndc(o_ndc + tp * d_ndc, f, w, h)
        v = x - o
        off_line = v - (v * d).sum(-1, keepdim=True) * d
        assert float(off_line.norm(dim=-1).max()) < 1e-9
        # depth z' = 1 + 2 / z: the point is at camera depth 2 / (z' - 1)
        torch.testing.assert_close(x[:, 2], 2.0 / (o_ndc[:, 2] + tp * d_ndc[:, 2] - 1.0))


def test_normals_of_a_surface_mapped_out_of_ndc_are_the_mapped_surfaces_normals():
    """A tilted world plane seen in NDC: the normals of its NDC image (from triangles there),
    mapped back with `map_geometry`, are the world plane's normal."""
    f, w, h = 30.0, 40, 30

    def to_ndc(x):  # the paper's map, near plane at depth 1
        z = x[:, 2]
        return torch.stack([-f / (w / 2) * x[:, 0] / z, -f / (h / 2) * x[:, 1] / z, 1 + 2 / z], -1)

    n_world = torch.nn.functional.normalize(
        torch.tensor([0.3, -0.5, 1.0], dtype=torch.float64), dim=0
    )
    g = torch.Generator().manual_seed(2)
    a = torch.randn(20, 3, generator=g, dtype=torch.float64) * 0.3
    a = a - ((a - torch.tensor([0, 0, -3.0], dtype=torch.float64)) @ n_world)[:, None] * n_world
    e1 = torch.nn.functional.normalize(
        torch.cross(n_world, torch.tensor([1.0, 0, 0], dtype=torch.float64), dim=0), dim=0
    )
    e2 = torch.cross(n_world, e1, dim=0)
    q0, q1, q2 = to_ndc(a), to_ndc(a + 1e-4 * e1), to_ndc(a + 1e-4 * e2)
    n_ndc = torch.nn.functional.normalize(torch.cross(q1 - q0, q2 - q0, dim=-1), dim=-1)
    geom = Geometry(q0.numpy(), None, np.zeros((20, 3)), n_ndc.numpy())
    mapped = map_geometry(geom, lambda q: from_ndc(q, f, w, h))
    np.testing.assert_allclose(mapped.points, a.numpy(), atol=1e-9)
    dots = mapped.normals @ n_world.numpy()
    np.testing.assert_allclose(np.abs(dots), 1.0, atol=1e-3)
    assert np.all(np.sign(dots) == np.sign(dots[0]))  # one side of the plane throughout


def test_dataset_frame_undoes_the_loaders_similarity_and_turns_normals_with_it(tmp_path):
    """A transforms.json capture the loader recentres and rescales: the scene-frame camera
    centres, mapped to the dataset frame, are the file's own; normals rotate, unscaled."""
    from nerfkit.data import load_scene
    from nerfkit.data.synthetic_360 import generate_unbounded_scene

    root = generate_unbounded_scene(tmp_path / "s", size=(8, 6), n_views=6, supersample=1)
    meta = load_scene(root).meta
    assert meta.data_transform, "the loader records its similarity"
    t = np.array(meta.data_transform)
    assert abs(np.linalg.det(t[:3, :3]) - 1) > 1e-3  # a real rescale, not a no-op
    frames = json.loads((root / "transforms.json").read_text())["frames"]
    file_centres = {
        Path(fr["file_path"]).stem: np.array(fr["transform_matrix"])[:3, 3] for fr in frames
    }
    scene = load_scene(root)
    sp = scene.split("train")
    centres = sp.cameras.c2w[:, :3, 3].double().numpy()
    n = np.tile([[0.0, 0.0, 2.0]], (len(centres), 1))
    g = map_geometry(Geometry(centres, None, n, n), output_map(meta, "dataset"))
    want = np.stack([file_centres[name] for name in sp.names])
    np.testing.assert_allclose(g.points, want, atol=1e-5)
    rot = t[:3, :3] / np.cbrt(np.linalg.det(t[:3, :3]))
    np.testing.assert_allclose(
        g.normals, (rot.T @ np.array([0.0, 0.0, 1.0]))[None].repeat(len(n), 0), atol=1e-9
    )
    assert output_map(meta, "scene") is None  # the frame of the run's cameras


def test_ndc_scenes_map_back_to_the_llff_files_frame(tmp_path):
    """An LLFF capture (NDC rays, poses recentred and rescaled by the loader): the exact surface
    points of a view, carried into the model's NDC space as the loaded rays see them, come back
    to the world of poses_bounds.npy (where the tracer put the objects) through `output_map`."""
    from nerfkit.data import load_scene
    from nerfkit.data.synthetic_llff import FORWARD_OBJECTS, generate_forward_scene

    root = generate_forward_scene(tmp_path / "f", size=(16, 12), n_views=5, supersample=1)
    scene = load_scene(root)
    meta, sp = scene.meta, scene.split("train")
    assert meta.ndc and meta.data_transform
    k = 0
    rays = sp.cameras.image_rays(k, meta.near, meta.far, ndc=True)
    # where each NDC ray meets the surface: its exact file-frame depth, scaled into the scene
    # frame, is a scene-frame point; the NDC ray passes through that point's NDC image
    scale = np.cbrt(np.linalg.det(np.array(meta.data_transform)[:3, :3]))
    names = sorted(p.stem for p in (root / "images").iterdir())
    depth = torch.as_tensor(np.load(root / "depths.npy")[names.index(sp.names[k])]).reshape(-1)
    c2w = sp.cameras.c2w[k].double()
    d_cam = sp.cameras.camera_directions(
        torch.zeros(len(depth), dtype=torch.long), *_pixel_centres(16, 12)
    )
    d_world = torch.nn.functional.normalize(d_cam.double() @ c2w[:3, :3].T, dim=-1)
    x_scene = c2w[:3, 3] + (scale * depth.double())[:, None] * d_world
    z = x_scene[:, 2]
    f, w, h = meta.focal, meta.width, meta.height
    q = torch.stack(
        [-f / (w / 2) * x_scene[:, 0] / z, -f / (h / 2) * x_scene[:, 1] / z, 1 + 2 / z], -1
    )
    # q lies on the loaded NDC rays (the model's space)
    o, dn = rays.origins.double(), rays.directions.double()
    tq = (q[:, 2] - o[:, 2]) / dn[:, 2]
    torch.testing.assert_close(o + tq[:, None] * dn, q, atol=1e-4, rtol=0)
    x_file = output_map(meta, "dataset")(q)
    assert float(surface_distance(x_file, FORWARD_OBJECTS).max()) < 1e-3


def _pixel_centres(w: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return xs.reshape(-1).float() + 0.5, ys.reshape(-1).float() + 0.5


# --- every method's field ----------------------------------------------------------------------


def _meta(**kw) -> SceneMeta:
    return SceneMeta(near=2.0, far=6.0, background=[1.0, 1.0, 1.0], **kw)


def _rays(n: int, time: float | None = None) -> Rays:
    g = torch.Generator().manual_seed(3)
    o = torch.tensor([0.0, 0.0, 4.0]).expand(n, 3) + 0.1 * torch.randn(n, 3, generator=g)
    d = torch.nn.functional.normalize(
        torch.tensor([0.0, 0.0, -1.0]) + 0.1 * torch.randn(n, 3, generator=g), dim=-1
    )
    t = None if time is None else torch.full((n,), time)
    return Rays(o, d, torch.full((n,), 2.0), torch.full((n,), 6.0), time=t)


@pytest.mark.parametrize("name", ["nerf", "dnerf", "nerfies", "hypernerf"])
def test_nerf_family_fields_are_the_densities_rendering_sees(name):
    """The field export reads at a point is the density the method's own rendering composites
    at that point (fine network, deformation / warp / ambient codes at the ray's time)."""
    from nerfkit.methods import METHODS

    spec = METHODS[name]
    cfg = spec.config_cls(width=32, depth=2, skip=0, n_coarse=8, n_fine=8, pos_freqs=4)
    dynamic = name != "nerf"
    meta = _meta(train_times=[0.0, 0.5, 1.0] if dynamic else [])
    torch.manual_seed(0)
    m = spec.method_cls(cfg, meta).eval()
    for p in m.parameters():  # an untrained net's densities are mostly zero: make them vary
        p.data.normal_(0, 0.3)
    time = 0.5 if dynamic else None
    rays = _rays(16, time)
    with torch.no_grad():
        out = m(rays)
        pts = rays.origins[:, None] + out.samples.t[..., None] * rays.directions[:, None]
        sigma = method_field(m, time).density(pts.reshape(-1, 3))
    assert float(out.samples.sigma.max()) > 0
    torch.testing.assert_close(sigma, out.samples.sigma.reshape(-1), rtol=1e-4, atol=1e-4)


def test_grid_field_is_the_grid_at_its_vertices_and_dgrid_deforms_at_the_time():
    from nerfkit.export import grid_points
    from nerfkit.methods.dgrid import DGridConfig, DynamicGridMethod
    from nerfkit.methods.grid import GridConfig, GridMethod

    torch.manual_seed(0)
    m = GridMethod(GridConfig(num_voxels_final=16**3, upsample_steps=()), _meta()).eval()
    m.density.data.normal_(0, 3)
    f = method_field(m)
    native = f.native()
    got = f.density(grid_points(f.lo, f.hi, native.shape)).reshape(native.shape)
    torch.testing.assert_close(got, native, rtol=1e-4, atol=1e-4)
    assert f.voxel == pytest.approx(m.step_unit)

    cfg = DGridConfig(num_voxels_final=16**3, upsample_steps=(), deform_start=0, ambient_dims=1)
    dm = DynamicGridMethod(cfg, _meta(train_times=[0.0, 1.0])).eval()
    for p in dm.parameters():
        p.data.normal_(0, 0.5)
    pts = torch.rand(100, 3) * 2 - 1
    with torch.no_grad():
        for t in (0.0, 0.7):
            want = dm.field_density(pts, torch.full((100,), t))
            torch.testing.assert_close(method_field(dm, t).density(pts), want)
    assert method_field(dm, 0.7).native is None  # a dynamic grid is meshed by sampling


def test_a_method_with_the_hooks_is_exported_through_them():
    from nerfkit.methods.base import Method

    class Ball(Method):
        def point_density(self, points, time=None):
            return 100.0 * (points.norm(dim=-1) < 0.5).float()

        def point_radiance(self, points, viewdirs, time=None):
            return torch.full_like(points, 0.25)

    f = method_field(Ball(_meta(aabb=[[-1, -1, -1], [1, 1, 1]])))
    geom, _ = extract_mesh(f, resolution=20, threshold=50.0)
    r = np.linalg.norm(geom.points, axis=1)
    assert abs(r.mean() - 0.5) < 0.06 and np.allclose(geom.colours, 0.25)


def test_a_method_without_the_field_interface_is_refused_by_name():
    from nerfkit.methods.base import Method

    class Opaque(Method):
        pass

    with pytest.raises(NerfkitError, match="Opaque has no density to export"):
        method_field(Opaque(_meta()))


def test_every_registered_method_implements_the_field_interface():
    """Export reads every method through `Method` alone: no registered method falls back."""
    from nerfkit.methods import METHODS
    from nerfkit.methods.base import Method

    for name, spec in METHODS.items():
        for hook in ("point_density", "point_radiance"):
            assert getattr(spec.method_cls, hook) is not getattr(Method, hook), (name, hook)


# --- the command, on a briefly trained grid ----------------------------------------------------


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    data = generate_scene(
        root / "scene", resolution=24, n_train=16, n_val=0, n_test=1, supersample=1
    )
    run = root / "run"
    args = [
        "train", "--data", data, "--method", "grid", "--output", run, "--max-steps", "80",
        "--batch-rays", "512", "--val-every", "0", "--ckpt-every", "0", "--no-progress",
        "--grid.num-voxels-final", str(32**3), "--grid.upsample-steps", "20", "40",
        "--grid.fit-box-step", "20", "--grid.mlp-start", "20", "--grid.occ-start", "10",
        "--grid.occ-every", "10",
    ]  # fmt: skip
    assert run_cli(args) == 0
    return run


def _true_surface_points(scene: Path) -> np.ndarray:
    """[N, 3] the surface points of the scene's test views: their exact depth maps."""
    from nerfkit.data import load_scene

    sp = load_scene(scene).split("test")
    pts = []
    for k in range(len(sp)):
        rays = sp.cameras.image_rays(k, 2.0, 6.0)
        depth = sp.depths[k].reshape(-1)
        hit = torch.isfinite(depth)
        pts.append(rays.origins[hit] + depth[hit, None] * rays.directions[hit])
    return torch.cat(pts).double().numpy()


def _distances(path: Path) -> tuple[np.ndarray, object]:
    geom = trimesh.load(path)
    return surface_distance(
        torch.as_tensor(np.asarray(geom.vertices), dtype=torch.float64)
    ).numpy(), geom


@pytest.mark.slow
def test_exported_mesh_lies_on_the_analytic_surfaces(grid_run: Path, tmp_path: Path):
    out = tmp_path / "mesh.ply"
    assert run_cli(["export", "mesh", grid_run, "--output", out]) == 0
    d, mesh = _distances(out)
    voxel = 3.0 / 32  # before the box fit; the fitted grid's voxels are finer
    assert len(mesh.faces) > 1000
    assert np.median(d) < 0.6 * voxel and (d < 2 * voxel).mean() > 0.9, (
        np.median(d),
        (d < 2 * voxel).mean(),
    )
    # the vertex colours: the red sphere's vertices are red
    v = torch.as_tensor(np.asarray(mesh.vertices))
    on_red = (RED_SPHERE.distance(v) < 0.03) & (v[:, 2] > -0.3)
    red = np.asarray(mesh.visual.vertex_colors)[on_red.numpy(), :3].astype(float).mean(0)
    assert red[0] > 1.5 * red[1] and red[0] > 1.5 * red[2], red
    # OBJ and GLB reload as the same mesh (GLB keeps the colours)
    for fmt in ("obj", "glb"):
        f = tmp_path / f"mesh.{fmt}"
        assert run_cli(["export", "mesh", grid_run, "--output", f]) == 0
        m2 = trimesh.load(f, force="mesh")
        assert len(m2.faces) == len(mesh.faces)
        assert abs(m2.area - mesh.area) < 1e-3 * mesh.area
        if fmt == "glb":
            assert m2.visual.kind == "vertex"


@pytest.mark.slow
def test_exported_point_cloud_lies_on_the_surfaces_and_covers_them(grid_run: Path, tmp_path: Path):
    out = tmp_path / "points.ply"
    assert run_cli(["export", "pointcloud", grid_run, "--output", out, "--views", "0"]) == 0
    d, pc = _distances(out)
    voxel = 3.0 / 32
    assert len(d) > 1000
    assert np.median(d) < 0.75 * voxel and (d < 2 * voxel).mean() > 0.9, (
        np.median(d),
        (d < 2 * voxel).mean(),
    )
    # completeness: the surface points the held-out view sees (its exact depth map) are near
    truth = _true_surface_points(grid_run.parent / "scene")
    from scipy.spatial import cKDTree

    gap = cKDTree(np.asarray(pc.vertices)).query(truth)[0]
    assert np.median(gap) < voxel and (gap < 2 * voxel).mean() > 0.8, (
        np.median(gap),
        (gap < 2 * voxel).mean(),
    )
    # normals: on the big red sphere (the best resolved object after so few steps) they point
    # out of it, towards the cameras
    v = np.asarray(pc.vertices)
    n = np.stack([pc.metadata["_ply_raw"]["vertex"]["data"][k] for k in ("nx", "ny", "nz")], -1)
    on_red = RED_SPHERE.distance(torch.as_tensor(v)).numpy() < 0.5 * voxel
    radial = v[on_red] - np.array(RED_SPHERE.centre)
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    assert on_red.sum() > 100 and np.median((n[on_red] * radial).sum(1)) > 0.9


def test_bad_run_format_and_time_give_one_line_errors(grid_run: Path, tmp_path: Path, capsys):
    def one_line(args):
        assert run_cli(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        return err[0]

    assert "run folder not found" in one_line(["export", "mesh", tmp_path / "nope"])
    assert "--format" in one_line(["export", "mesh", grid_run, "--format", "stl"])
    assert "static run" in one_line(["export", "mesh", grid_run, "--time", "0.5"])
    assert "--threshold" in one_line(["export", "mesh", grid_run, "--threshold", "x"])
    assert "--frame" in one_line(["export", "mesh", grid_run, "--frame", "world"])
    assert "ply" in one_line(["export", "pointcloud", grid_run, "--format", "obj"])
    assert not list(tmp_path.iterdir())  # nothing written


def test_nerf_runs_export_too(tmp_path: Path):
    """The paper's model through the command (a few steps: the mesh is not judged, only made)."""
    data = generate_scene(
        tmp_path / "scene", resolution=12, n_train=4, n_val=0, n_test=1, supersample=1
    )
    run = tmp_path / "run"
    args = [
        "train", "--data", data, "--method", "nerf", "--output", run, "--max-steps", "5",
        "--batch-rays", "64", "--val-every", "0", "--no-progress", *TINY_NERF,
    ]  # fmt: skip
    assert run_cli(args) == 0
    out = tmp_path / "m.glb"
    code = run_cli(
        ["export", "mesh", run, "--output", out, "--resolution", "24", "--threshold", "1e-3"]
    )
    assert code == 0 and len(trimesh.load(out, force="mesh").faces) > 0
    pc = tmp_path / "p.ply"
    code = run_cli(
        ["export", "pointcloud", run, "--output", pc, "--views", "1", "--min-opacity", "0"]
    )
    assert code == 0 and len(trimesh.load(pc).vertices) > 0


def test_dynamic_runs_export_the_chosen_instant(tmp_path: Path):
    """A dgrid run folder (random, untrained fields; no dataset folder left): `--time T` meshes
    the density at T, whose level set moves with T, and the point cloud comes from the cameras
    stored in the run folder."""
    from nerfkit.config import TrainConfig
    from nerfkit.methods.dgrid import DGridConfig
    from nerfkit.poses import orbit_pose
    from nerfkit.run import build_method, save_checkpoint, save_run_files

    c2w = torch.stack([orbit_pose(a, 0.5, 4.0) for a in (0.0, 2.0, 4.0)]).float()
    meta = _meta(train_times=[0.0, 0.5, 1.0], train_c2w=c2w.tolist(), width=8, height=8, focal=10.0)
    dg = DGridConfig(
        num_voxels_final=12**3, upsample_steps=(), deform_start=0, ambient_dims=0, deform_res=4
    )
    cfg = TrainConfig(method="dgrid", output=tmp_path / "run", dgrid=dg)
    torch.manual_seed(0)
    m = build_method(cfg, meta)
    for p in m.parameters():  # a random deformation (offsets ~0.1) ...
        p.data.normal_(0, 0.5)
    m.deform_head[-1].weight.data *= 0.2
    m.deform_head[-1].bias.data.zero_()
    # ... of a smooth canonical ball of radius 0.8
    from nerfkit.export import grid_points

    r = grid_points(m.lo, m.hi, m.grid_shape).norm(dim=-1).reshape(m.grid_shape)
    m.density.data[..., 0] = m.raw_from_sigma(20 * torch.sigmoid((0.8 - r) / 0.2))
    save_run_files(cfg.output, cfg, meta)
    save_checkpoint(cfg.output, {"model": m.state_dict(), "step": 0})
    m.eval()
    level = 10.0
    for t in (0.2, 0.9):
        out = tmp_path / f"t{t}.ply"
        args = ["export", "mesh", cfg.output, "--time", t, "--threshold", level, "--output", out]
        assert run_cli(args + ["--resolution", "24"]) == 0
        v = torch.as_tensor(np.asarray(trimesh.load(out).vertices), dtype=torch.float32)
        with torch.no_grad():
            here = m.field_density(v, torch.full((len(v),), t))
            other = m.field_density(v, torch.full((len(v),), 1.1 - t))
        # on the level set at T (to the sampling's interpolation), not at the other time
        err_here = (here / level - 1).abs().median()
        assert err_here < 0.05 and err_here < 0.3 * (other / level - 1).abs().median()
    pc = tmp_path / "p.ply"
    args = ["export", "pointcloud", cfg.output, "--time", 0.5, "--min-opacity", 0, "--output", pc]
    assert run_cli(args + ["--neighbours", 0]) == 0
    assert len(trimesh.load(pc).vertices) > 0.9 * 3 * 8 * 8  # the pixels of the 3 cameras
