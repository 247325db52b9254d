"""A picture of an exported mesh (PLY/OBJ/GLB with vertex colours), for the README and the docs:
matplotlib's 3-D polygons, each face in its vertices' mean colour, shaded by a head light.

    nerfkit export mesh RUN --output /tmp/mesh.ply
    python benchmarks/mesh_figure.py /tmp/mesh.ply docs/img/export_mesh.png [--views 3] [--up z]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import trimesh  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # noqa: E402

Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""The rotation (x, y, z) -> (x, -z, y): nerfkit's y-up frame to matplotlib's z-up one."""


def face_colours(mesh: trimesh.Trimesh, normals: np.ndarray, light: np.ndarray) -> np.ndarray:
    """[F, 4] RGBA of each face: its vertices' mean colour times (0.35 + 0.65 max(0, n . l))."""
    rgb = mesh.visual.vertex_colors[:, :3].astype(np.float64) / 255.0
    lam = np.clip(normals @ light, 0.0, 1.0)[:, None]
    out = np.ones((len(mesh.faces), 4))
    out[:, :3] = np.clip(rgb[mesh.faces].mean(1) * (0.35 + 0.65 * lam), 0.0, 1.0)
    return out


def draw(mesh: trimesh.Trimesh, out: Path, views: int, title: str, up: str = "z") -> None:
    """Write `views` views around the mesh (azimuths evenly spaced, 25 degrees above) as one PNG;
    `up`: the mesh's up axis (z: Blender/NeRF-synthetic datasets' frame; y: nerfkit's scene
    frame, OpenGL)."""
    rot = Y_UP_TO_Z_UP if up == "y" else np.eye(3)
    verts = mesh.vertices @ rot.T
    normals = mesh.face_normals @ rot.T
    tris = verts[mesh.faces]
    lo, hi = verts.min(0), verts.max(0)
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2
    fig = plt.figure(figsize=(4 * views, 4.2))
    for k in range(views):
        ax = fig.add_subplot(1, views, k + 1, projection="3d")
        azim, elev = -60 + 360 * k / views, 25
        a, e = np.radians(azim), np.radians(elev)
        light = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])  # the eye
        ax.add_collection3d(
            Poly3DCollection(tris, facecolors=face_colours(mesh, normals, light), linewidths=0)
        )
        for set_lim, ck in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
            set_lim(ck - half, ck + half)
        ax.view_init(elev=elev, azim=azim)
        ax.set_box_aspect((1, 1, 1))
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mesh", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--views", type=int, default=3)
    p.add_argument("--title", default=None)
    p.add_argument("--up", choices=["z", "y"], default="z", help="the mesh's up axis")
    args = p.parse_args()
    mesh = trimesh.load(args.mesh, force="mesh")
    title = args.title or f"{args.mesh.name}: {len(mesh.vertices):,} vertices"
    draw(mesh, args.output, args.views, title, args.up)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
