"""COLMAP sparse models: `sparse/0/` (or `sparse/`) with cameras, images, points3D (.bin or .txt)
next to an `images/` folder.

The three files are parsed here (both the text and the binary format, COLMAP's documented
layouts; models written by COLMAP >= 3.12 / pycolmap 4 also carry rigs and frames files, which
are not needed: images.* still holds every registered image with its pose). Reading needs no
pycolmap; the tests check this parser against pycolmap when it is installed.

- Poses: COLMAP stores world-to-camera (quaternion qw, qx, qy, qz and translation) in the OpenCV
  camera frame (x right, y down, z forward); they become camera-to-world in the OpenGL frame.
- Intrinsics: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV, FULL_OPENCV (with
  k4 = k5 = k6 = 0), OPENCV_FISHEYE, SIMPLE_RADIAL_FISHEYE, RADIAL_FISHEYE. COLMAP puts pixel
  centres at +0.5 like nerfkit, so cx, cy are used as they are.
- Normalisation (default on): as for transforms.json (nerfkit.poses.normalize_poses): centred
  on the cameras, mean camera up -> +z, camera positions scaled into [-1, 1]^3.
- near/far: from the depths of the sparse points each image observes: 0.8 x the smallest
  per-image 1st percentile and 1.2 x the largest per-image 99th percentile.
- Forward-facing captures (`nerfkit.poses.is_forward_facing` on the poses and those per-image
  depths; `ndc=True`/`False` forces it) load as LLFF scenes do instead: NDC rays (near 0, far
  1, kind "forward"), poses scaled so the nearest content is at depth 1 / 0.75 and recentred on
  their average pose (`nerfkit.data.core.ndc_frames`), the scaled depths in SceneMeta.bounds
  for spiral paths and the similarity in SceneMeta.data_transform.
- aabb: the box of the 1st..99th percentile of the points per axis and the cameras, 10% larger.
- Splits: images sorted by name, every 8th (0, 8, ...) held out for test (and val).
- `--downscale K` reads `images_K/<name>` when all exist (intrinsics scaled by the size ratio),
  else downscales `images/` in memory (nerfkit.data.core).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfkit.data.core import (
    HOLD,
    Frame,
    content_bounds,
    ndc_frames,
    normalize_frames,
    scene_from_frames,
    use_ndc,
)
from nerfkit.data.scene import Scene
from nerfkit.errors import DataError
from nerfkit.poses import opencv_w2c_to_c2w, scene_kind, similarity_scale

# COLMAP camera models: id -> (name, number of parameters)
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
MODEL_IDS = {name: (i, n) for i, (name, n) in CAMERA_MODELS.items()}


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # [P]


@dataclass
class ColmapImage:
    """A registered image: world-to-camera pose (OpenCV frame) and its observed 3D point ids."""

    id: int
    qvec: np.ndarray  # [4] (qw, qx, qy, qz)
    tvec: np.ndarray  # [3]
    camera_id: int
    name: str
    point3d_ids: np.ndarray  # [K] int64, -1 where a keypoint has no 3D point


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    point_ids: np.ndarray  # [P] int64
    points: np.ndarray  # [P, 3]
    path: Path


# ----------------------------------------------------------------------------- finding a model

MODEL_DIRS = ("sparse/0", "sparse", "colmap/sparse/0")


def find_model_dir(root: Path) -> Path | None:
    """The first of sparse/0, sparse, colmap/sparse/0 holding cameras.bin or cameras.txt."""
    for d in MODEL_DIRS:
        p = root / d
        if (p / "cameras.bin").is_file() or (p / "cameras.txt").is_file():
            return p
    return None


def is_colmap(root: Path) -> bool:
    return find_model_dir(root) is not None


# ----------------------------------------------------------------------------- parsing


class _Reader:
    """Sequential little-endian reader over a binary file, with errors naming it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.buf = path.read_bytes()
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise DataError(f"{self.path}: truncated at byte {self.pos}; re-export the model")
        out = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return out

    def array(self, dtype: np.dtype, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = dtype.itemsize * count
        if self.pos + size > len(self.buf):
            raise DataError(f"{self.path}: truncated at byte {self.pos}; re-export the model")
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += size
        return out

    def cstring(self) -> str:
        end = self.buf.find(b"\x00", self.pos)
        if end < 0:
            raise DataError(f"{self.path}: truncated at byte {self.pos}; re-export the model")
        s = self.buf[self.pos : end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return s


def _cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    r = _Reader(path)
    (n,) = r.take("Q")
    out = {}
    for _ in range(n):
        cid, mid, w, h = r.take("iiQQ")
        if mid not in CAMERA_MODELS:
            raise DataError(f"{path}: camera {cid} has unknown model id {mid}")
        name, npar = CAMERA_MODELS[mid]
        out[cid] = ColmapCamera(cid, name, int(w), int(h), np.array(r.take(f"{npar}d")))
    return out


def _images_bin(path: Path) -> dict[int, ColmapImage]:
    r = _Reader(path)
    (n,) = r.take("Q")
    pt = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
    out = {}
    for _ in range(n):
        iid, qw, qx, qy, qz, tx, ty, tz, cid = r.take("i7di")
        name = r.cstring()
        (npts,) = r.take("Q")
        pts = r.array(pt, npts)
        out[iid] = ColmapImage(
            iid,
            np.array([qw, qx, qy, qz]),
            np.array([tx, ty, tz]),
            cid,
            name,
            pts["id"].astype(np.int64),
        )
    return out


def _points_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    r = _Reader(path)
    (n,) = r.take("Q")
    ids = np.empty(n, dtype=np.int64)
    xyz = np.empty((n, 3))
    for i in range(n):
        pid, x, y, z, _, _, _, _, tlen = r.take("Q3d3BdQ")
        r.array(np.dtype("<i4"), 2 * tlen)  # track (image id, point2D index) pairs: unused
        ids[i] = pid
        xyz[i] = (x, y, z)
    return ids, xyz


def _text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def _bad_line(path: Path, lineno: int, what: str) -> DataError:
    return DataError(f"{path}: line {lineno}: {what}; re-export the model")


def _cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    out = {}
    for ln, line in enumerate(_text_lines(path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        e = line.split()
        try:
            cid, model, w, h = int(e[0]), e[1], int(e[2]), int(e[3])
            params = np.array([float(x) for x in e[4:]])
        except (IndexError, ValueError):
            raise _bad_line(path, ln, "expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS...") from None
        if model not in MODEL_IDS:
            raise _bad_line(path, ln, f"unknown camera model '{model}'")
        if len(params) != MODEL_IDS[model][1]:
            raise _bad_line(path, ln, f"{model} takes {MODEL_IDS[model][1]} parameters")
        out[cid] = ColmapCamera(cid, model, w, h, params)
    return out


def _images_txt(path: Path) -> dict[int, ColmapImage]:
    lines = _text_lines(path)
    out = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        e = line.split(maxsplit=9)
        try:
            iid = int(e[0])
            q = np.array([float(x) for x in e[1:5]])
            t = np.array([float(x) for x in e[5:8]])
            cid = int(e[8])
            name = e[9].strip()
        except (IndexError, ValueError):
            raise _bad_line(
                path, i, "expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"
            ) from None
        pts_line = lines[i] if i < len(lines) else ""
        i += 1  # the second line of each image: POINTS2D[] as (X, Y, POINT3D_ID)
        p = pts_line.split()
        try:
            ids = np.array([int(float(x)) for x in p[2::3]], dtype=np.int64)
        except ValueError:
            raise _bad_line(path, i, "expected POINTS2D[] as (X, Y, POINT3D_ID)") from None
        out[iid] = ColmapImage(iid, q, t, cid, name, ids)
    return out


def _points_txt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    ids, xyz = [], []
    for ln, line in enumerate(_text_lines(path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        e = line.split()
        try:
            ids.append(int(e[0]))
            xyz.append([float(e[1]), float(e[2]), float(e[3])])
        except (IndexError, ValueError):
            raise _bad_line(path, ln, "expected POINT3D_ID X Y Z R G B ERROR TRACK[]") from None
    return np.array(ids, dtype=np.int64), np.array(xyz, dtype=np.float64).reshape(-1, 3)


def read_model(path: Path) -> ColmapModel:
    """Read a COLMAP sparse model folder (.bin preferred over .txt when both exist)."""
    path = Path(path)
    parts = {}
    for stem in ("cameras", "images", "points3D"):
        if (path / f"{stem}.bin").is_file():
            parts[stem] = path / f"{stem}.bin"
        elif (path / f"{stem}.txt").is_file():
            parts[stem] = path / f"{stem}.txt"
        else:
            raise DataError(
                f"{path}: {stem}.bin or {stem}.txt missing; a COLMAP model needs cameras, "
                "images and points3D"
            )
    binary = {k: v.suffix == ".bin" for k, v in parts.items()}
    cams = (_cameras_bin if binary["cameras"] else _cameras_txt)(parts["cameras"])
    imgs = (_images_bin if binary["images"] else _images_txt)(parts["images"])
    ids, xyz = (_points_bin if binary["points3D"] else _points_txt)(parts["points3D"])
    return ColmapModel(cams, imgs, ids, xyz, path)


# ----------------------------------------------------------------------------- conversion


def qvec_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) [4] -> rotation matrix [3, 3]."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def camera_intrinsics(cam: ColmapCamera, where: str) -> tuple[str, list[float], list[float]]:
    """COLMAP camera -> (nerfkit model, [fx, fy, cx, cy], [k1, k2, k3, k4, p1, p2])."""
    p = [float(x) for x in cam.params]
    m = cam.model
    z = 0.0
    if m == "SIMPLE_PINHOLE":
        return "pinhole", [p[0], p[0], p[1], p[2]], [z] * 6
    if m == "PINHOLE":
        return "pinhole", p[:4], [z] * 6
    if m == "SIMPLE_RADIAL":
        return "opencv", [p[0], p[0], p[1], p[2]], [p[3], z, z, z, z, z]
    if m == "RADIAL":
        return "opencv", [p[0], p[0], p[1], p[2]], [p[3], p[4], z, z, z, z]
    if m == "OPENCV":
        return "opencv", p[:4], [p[4], p[5], z, z, p[6], p[7]]
    if m == "FULL_OPENCV" and not any(p[9:12]):
        return "opencv", p[:4], [p[4], p[5], p[8], z, p[6], p[7]]
    if m == "OPENCV_FISHEYE":
        return "opencv_fisheye", p[:4], [p[4], p[5], p[6], p[7], z, z]
    if m == "SIMPLE_RADIAL_FISHEYE":
        return "opencv_fisheye", [p[0], p[0], p[1], p[2]], [p[3], z, z, z, z, z]
    if m == "RADIAL_FISHEYE":
        return "opencv_fisheye", [p[0], p[0], p[1], p[2]], [p[3], p[4], z, z, z, z]
    raise DataError(
        f"{where}: camera {cam.id} uses the {m} model, which nerfkit cannot model; "
        "undistort the images first (colmap image_undistorter) and load the result"
    )


def load_colmap(
    root: Path,
    downscale: int = 1,
    normalize: bool = True,
    hold: int = HOLD,
    images_dir: str = "images",
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ndc: bool | None = None,
) -> Scene:
    """Load a COLMAP reconstruction (see the module docstring for the conventions).

    Args:
        root: folder holding sparse/0 (or sparse/) and images/.
        downscale: integer image size divisor.
        normalize: centre, orient (mean up -> +z) and scale the poses into [-1, 1]^3.
        hold: every `hold`-th image (sorted by name) is held out for test/val.
        images_dir: the image folder, relative to root.
        background: colour RGBA images are composited onto.
        ndc: load as a forward-facing scene with NDC rays (True), as is (False), or when the
            cameras are forward-facing (None; only with `normalize`). True re-frames the poses
            whatever `normalize` says.
    """
    root = Path(root)
    mdir = find_model_dir(root)
    if mdir is None:
        raise DataError(
            f"{root}: no COLMAP model (looked for cameras.bin/.txt in {', '.join(MODEL_DIRS)})"
        )
    model = read_model(mdir)
    if not model.images:
        raise DataError(
            f"{mdir}: the COLMAP model has no registered images; the reconstruction failed "
            "(take more overlapping photos or re-run mapping)"
        )
    imgs_meta = sorted(model.images.values(), key=lambda im: im.name)
    img_root = root / images_dir
    if not img_root.is_dir():
        raise DataError(f"{img_root}: image folder not found next to the COLMAP model")
    w2c_r = np.stack([qvec_to_rotmat(im.qvec) for im in imgs_meta])
    w2c_t = np.stack([im.tvec for im in imgs_meta])
    frames = [
        _frame(model, im, m, img_root, mdir)
        for im, m in zip(imgs_meta, opencv_w2c_to_c2w(w2c_r, w2c_t))
    ]
    bounds = _image_bounds(model, imgs_meta, w2c_r, w2c_t)
    if use_ndc(frames, bounds, False if ndc is None and not normalize else ndc, mdir):
        frames, facts = ndc_frames(frames, bounds)
    else:
        frames, facts = _normalized(frames, model.points, bounds, normalize)
    facts["format"] = "colmap"
    return scene_from_frames(
        frames, hold, root=root, source=mdir, downscale=downscale, background=background, **facts
    )


def _normalized(
    frames: list[Frame], points: np.ndarray, bounds: np.ndarray, normalize: bool
) -> tuple[list[Frame], dict]:
    """Frames normalised (`normalize_frames`) and their SceneMeta facts (the module docstring).

    Args:
        points: [P, 3] the sparse points; bounds: [N, 2] per-image content depths.
    """
    near, far = 0.8 * float(bounds[:, 0].min()), 1.2 * float(bounds[:, 1].max())
    if near >= far:
        far = near * 10.0
    frames, t = normalize_frames(frames, normalize)
    c2w = np.stack([f.c2w for f in frames])
    s = similarity_scale(t)
    near, far = near * s, far * s
    pts = points @ t[:3, :3].T + t[:3, 3]
    box = np.stack([np.percentile(pts, 1, 0), np.percentile(pts, 99, 0)])
    box = np.stack(
        [np.minimum(box[0], c2w[:, :3, 3].min(0)), np.maximum(box[1], c2w[:, :3, 3].max(0))]
    )
    pad = 0.05 * (box[1] - box[0]).max()
    box = box + np.array([[-pad], [pad]])
    return frames, dict(
        near=near,
        far=far,
        kind=scene_kind(c2w),
        unbounded=True,
        aabb=box.tolist(),
        bounds=[near, far],
        data_transform=t.tolist() if normalize else [],
    )


def _frame(
    model: ColmapModel, im: ColmapImage, c2w: np.ndarray, img_root: Path, mdir: Path
) -> Frame:
    """One registered image as a Frame (camera-to-world c2w [4, 4], OpenGL frame)."""
    if im.camera_id not in model.cameras:
        raise DataError(f"{mdir}: image {im.name} refers to missing camera {im.camera_id}")
    cam = model.cameras[im.camera_id]
    cam_model, (fx, fy, cx, cy), dist = camera_intrinsics(cam, str(mdir))
    path = img_root / im.name
    if not path.is_file():
        raise DataError(f"{path}: image registered in the COLMAP model not found; restore it")
    return Frame(
        image=path,
        c2w=c2w,
        name=Path(im.name).stem,
        where=f"{mdir} image {im.name}",
        w=cam.width,
        h=cam.height,
        fx=fx,
        fy=fy,
        cx=cx,
        cy=cy,
        model=cam_model,
        distortion=dist,
        camera=f"camera {cam.id}",
    )


def _image_bounds(
    model: ColmapModel, imgs: list[ColmapImage], w2c_r: np.ndarray, w2c_t: np.ndarray
) -> np.ndarray:
    """Per-image content depths [N, 2] from the points each image observes (all points for an
    image that observes none), by `content_bounds`.

    Args:
        imgs: N images; w2c_r: [N, 3, 3], w2c_t: [N, 3] their world-to-camera poses.
    """
    if len(model.points) == 0:
        raise DataError(f"{model.path}: the model has no 3D points; cannot choose near/far")
    index = {int(pid): k for k, pid in enumerate(model.point_ids)}
    depths = []
    for k, im in enumerate(imgs):
        seen = [index[int(i)] for i in im.point3d_ids if i >= 0 and int(i) in index]
        pts = model.points[seen] if seen else model.points
        depths.append((pts @ w2c_r[k].T + w2c_t[k])[:, 2])
    bounds = content_bounds(depths)
    if bounds is None:
        raise DataError(f"{model.path}: no 3D point lies in front of any camera; re-run mapping")
    return bounds
