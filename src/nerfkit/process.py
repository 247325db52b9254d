"""`nerfkit process PHOTOS_DIR|VIDEO --output DIR`: camera poses from photos, by COLMAP.

Structure-from-motion with pycolmap (imported lazily: the rest of nerfkit works without it):

1. Inputs. A folder: its image files (top level, sorted by name), EXIF orientation applied.
   A video: `num_frames` frames, the sharpest (variance of the Laplacian) of each of
   `num_frames` evenly spaced windows of the video (`sample_video_frames`).
2. SIFT features on the CPU, one camera shared by all images (CameraMode.SINGLE: photos from
   one device), `pycolmap.extract_features`; images of several sizes get a camera each
   (CameraMode.AUTO), with a note.
3. Matching: `pycolmap.match_exhaustive` for photo sets under 100 images, else
   `pycolmap.match_sequential` (neighbours in name order, as video frames and most phone captures
   are); video frames always sequential. `matching=` overrides.
4. `pycolmap.incremental_mapping`; the reconstruction with the most registered images wins.
5. Output (built in a temporary folder beside OUTPUT and renamed into place at the end, so a
   failure leaves nothing behind):
   - `transforms.json` (nerfstudio): camera-to-world in the OpenGL frame (COLMAP's
     world-to-camera OpenCV poses inverted, camera y and z flipped), the world frame is
     COLMAP's (`applied_transform` is the identity); intrinsics `fl_x, fl_y, cx, cy, w, h`,
     `camera_model` PINHOLE (SIMPLE_PINHOLE, PINHOLE), OPENCV (SIMPLE_RADIAL, RADIAL, OPENCV:
     `k1, k2, p1, p2`) or OPENCV_FISHEYE (`k1..k4`); `ply_file_path` names the sparse points.
   - `images/`: the registered images (divided in size by `downscale`, intrinsics scaled).
   - `colmap/sparse/0/`: the sparse model (COLMAP binary) at the SfM resolution.
   - `sparse_pc.ply`: the sparse points (world frame = the poses' frame).

Fewer than 3 registered images, or fewer than `min_registered` of the inputs, is a
NerfkitError with advice instead of a dataset.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nerfkit.atomic import install_folder, staging_folder
from nerfkit.data.core import IMAGE_EXTS as DATASET_IMAGE_EXTS
from nerfkit.errors import NerfkitError
from nerfkit.poses import opencv_w2c_to_c2w

# photos SIFT can read: the loaders' one list less HDR .exr
IMAGE_EXTS = tuple(e for e in DATASET_IMAGE_EXTS if e != ".exr")
VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE")
MATCHING = ("auto", "exhaustive", "sequential")
EXHAUSTIVE_MAX = 100  # photo sets below this size are matched exhaustively by "auto"

ADVICE = (
    "take photos with more overlap (each part of the scene seen from 3+ views, neighbours "
    "~70% alike, move around the object rather than turning on the spot), of textured "
    "surfaces (plain walls, glass and mirrors give no features), and fewer blurry frames "
    "(steady camera, good light)"
)


@dataclass
class ProcessResult:
    """What `process` produced."""

    output: Path
    num_inputs: int
    num_registered: int
    unregistered: list[str] = field(default_factory=list)
    mean_reprojection_error: float = float("nan")
    num_points: int = 0
    camera_model: str = ""
    matching: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


def _import_pycolmap():  # noqa: ANN202 (the module)
    try:
        import pycolmap
    except ImportError as e:
        raise NerfkitError(
            f"nerfkit process needs pycolmap ({e}); install it with `pip install pycolmap`"
        ) from None
    return pycolmap


def intrinsics_json(model: str, params: np.ndarray, width: int, height: int) -> dict:
    """A COLMAP camera as nerfstudio transforms.json intrinsics keys.

    Raises:
        NerfkitError: for a COLMAP model nerfstudio's format does not describe.
    """
    p = [float(x) for x in params]
    if model == "SIMPLE_PINHOLE":
        d = {"fl_x": p[0], "fl_y": p[0], "cx": p[1], "cy": p[2], "camera_model": "PINHOLE"}
    elif model == "PINHOLE":
        d = {"fl_x": p[0], "fl_y": p[1], "cx": p[2], "cy": p[3], "camera_model": "PINHOLE"}
    elif model in ("SIMPLE_RADIAL", "RADIAL"):
        k2 = p[4] if model == "RADIAL" else 0.0
        d = {"fl_x": p[0], "fl_y": p[0], "cx": p[1], "cy": p[2], "camera_model": "OPENCV"}
        d.update(k1=p[3], k2=k2, p1=0.0, p2=0.0)
    elif model == "OPENCV":
        d = {"fl_x": p[0], "fl_y": p[1], "cx": p[2], "cy": p[3], "camera_model": "OPENCV"}
        d.update(k1=p[4], k2=p[5], p1=p[6], p2=p[7])
    elif model == "OPENCV_FISHEYE":
        d = {"fl_x": p[0], "fl_y": p[1], "cx": p[2], "cy": p[3], "camera_model": "OPENCV_FISHEYE"}
        d.update(k1=p[4], k2=p[5], k3=p[6], k4=p[7])
    else:
        raise NerfkitError(f"COLMAP camera model {model} cannot be written to transforms.json")
    d.update(w=int(width), h=int(height))
    return d


def _scale_intrinsics(d: dict, factor: int) -> dict:
    """Intrinsics of the image cropped to a multiple of `factor` and shrunk by it."""
    out = dict(d)
    for k in ("fl_x", "fl_y", "cx", "cy"):
        out[k] = d[k] / factor
    out["w"], out["h"] = d["w"] // factor, d["h"] // factor
    return out


# ----------------------------------------------------------------------------- inputs


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image [H, W, 3] uint8 (higher: sharper).

    Large frames are subsampled to about 1000 pixels across first (the ranking is what counts).
    """
    step = max(1, max(rgb.shape[:2]) // 1000)
    g = rgb[::step, ::step].astype(np.float32).mean(-1)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(lap.var())


def sample_video_frames(
    video: Path,
    out_dir: Path,
    num_frames: int,
    progress: bool = True,
) -> list[str]:
    """Write the sharpest frame of each of `num_frames` evenly spaced windows of a video.

    All frames are kept when the video has no more than `num_frames`. Frames are written as
    `frame_00001.png`, ... in time order.

    Returns:
        the written file names.
    Raises:
        NerfkitError: the video cannot be decoded or has no frames.
    """
    import imageio_ffmpeg
    from PIL import Image

    if num_frames < 1:
        raise NerfkitError(f"--num-frames must be >= 1, got {num_frames}")
    try:
        total, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
        reader = imageio_ffmpeg.read_frames(str(video))
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as e:
        raise NerfkitError(f"{video}: cannot read the video ({e}); re-export it as MP4") from None
    if total < 1:
        raise NerfkitError(f"{video}: the video has no frames")
    w, h = meta["size"]
    n = min(num_frames, total)
    # window k holds frames [edges[k], edges[k + 1])
    edges = [round(k * total / n) for k in range(n + 1)]
    out_dir.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    best: tuple[float, np.ndarray] | None = None
    window = 0
    bar = _bar(total, "sampling video frames", progress)
    try:
        for i, raw in enumerate(reader):
            if i >= total:
                break
            frame = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
            score = sharpness(frame)
            if best is None or score > best[0]:
                best = (score, frame.copy())
            bar.update(1)
            if i + 1 == edges[window + 1]:
                name = f"frame_{window + 1:05d}.png"
                Image.fromarray(best[1]).save(out_dir / name, compress_level=1)
                names.append(name)
                best, window = None, window + 1
                if window == n:
                    break
    finally:
        bar.close()
        reader.close()
    if best is not None:  # the decoder gave fewer frames than counted: keep the last window
        name = f"frame_{window + 1:05d}.png"
        Image.fromarray(best[1]).save(out_dir / name, compress_level=1)
        names.append(name)
    if not names:
        raise NerfkitError(f"{video}: no frame could be decoded; re-export the video as MP4")
    return names


def _prepare_photos(photos: Path, out_dir: Path, progress: bool) -> list[str]:
    """Copy the folder's images into out_dir, re-encoding as PNG those COLMAP would misread.

    JPEG and PNG files without an EXIF rotation are copied as they are; other formats, images
    with an EXIF rotation (applied here, as nerfkit's loaders do) and unusual modes (16-bit,
    palette, CMYK...) become 8-bit RGB PNGs.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    files = sorted(p for p in photos.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise NerfkitError(
            f"{photos}: no images found (looked for {', '.join(IMAGE_EXTS)}); "
            "pass a folder of photos or a video file"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    taken = {f.name for f in files}  # re-encoded copies must not take an input's name

    def png_name(f: Path) -> str:
        for cand in (f.stem + ".png", f.name + ".png"):
            if cand == f.name or cand not in taken:
                return cand
        k = 1
        while f"{f.stem}_{k}.png" in taken:
            k += 1
        return f"{f.stem}_{k}.png"

    bar = _bar(len(files), "reading photos", progress)
    try:
        for f in files:
            try:
                with Image.open(f) as im:
                    fmt, mode = im.format, im.mode
                    orient = im.getexif().get(0x0112, 1)
                    if fmt in ("JPEG", "PNG") and mode in ("RGB", "L") and orient == 1:
                        name = f.name
                        shutil.copyfile(f, out_dir / name)
                    else:
                        im.load()
                        im = ImageOps.exif_transpose(im)
                        if mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                            bg = Image.new("RGB", im.size, (255, 255, 255))
                            bg.paste(im.convert("RGBA"), mask=im.convert("RGBA").split()[3])
                            im = bg
                        elif mode.startswith("I") or mode == "F":  # 16-bit, 32-bit, float
                            arr = np.asarray(im, dtype=np.float32)
                            scale = 1.0 if mode == "F" else 65535.0 if arr.max() > 255 else 255.0
                            arr = np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
                            im = Image.fromarray(arr)
                        name = png_name(f)
                        im.convert("RGB").save(out_dir / name, compress_level=1)
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
                raise NerfkitError(f"{f}: unreadable image ({e}); re-export or remove it") from None
            taken.add(name)
            names.append(name)
            bar.update(1)
    finally:
        bar.close()
    return names


# ----------------------------------------------------------------------------- output folder


def _check_output(output: Path, inputs: Path, overwrite: bool) -> None:
    if output.exists():
        if not output.is_dir():
            raise NerfkitError(f"{output}: exists and is not a folder; choose another --output")
        if any(output.iterdir()) and not overwrite:
            raise NerfkitError(
                f"{output}: folder is not empty; pass --overwrite to replace it or choose "
                "another --output"
            )
    out, inp = output.resolve(), inputs.resolve()
    if out == inp or out in inp.parents:
        raise NerfkitError(f"{output}: --output must not be the input or a folder holding it")


# ----------------------------------------------------------------------------- progress


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, desc: str, show: bool):  # noqa: ANN202 (a tqdm bar or a stand-in)
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img" if "video" not in desc else "frame")


# ----------------------------------------------------------------------------- the pipeline


def process(
    inputs: Path,
    output: Path,
    *,
    downscale: int = 1,
    num_frames: int = 100,
    matching: str = "auto",
    camera_model: str = "SIMPLE_RADIAL",
    min_registered: float = 0.5,
    overwrite: bool = False,
    num_threads: int = -1,
    seed: int = 0,
    verbose: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> ProcessResult:
    """Estimate camera poses for a folder of photos or a video and write a nerfstudio dataset.

    Args:
        inputs: folder of photos, or a video file.
        output: dataset folder to create (transforms.json, images/, colmap/sparse/0/).
        downscale: divide the written images' size (and the intrinsics) by this; SfM runs at
            full resolution.
        num_frames: frames sampled from a video (the sharpest of each of this many windows).
        matching: auto, exhaustive or sequential (see the module docstring).
        camera_model: COLMAP model shared by all images (SIMPLE_RADIAL: focal + one radial
            distortion term, COLMAP's default; PINHOLE for undistorted images; OPENCV for
            wide-angle lenses).
        min_registered: fail unless at least this fraction of the inputs (and 3) register.
        overwrite: replace a non-empty output folder.
        num_threads: CPU threads for pycolmap (-1: all).
        seed: pycolmap's random seed (repeatable reconstructions).
        verbose: show pycolmap's own log.
        progress: show progress bars (stage lines go to `log` regardless).
        log: where stage lines go (default: print to stderr).
    Returns:
        a ProcessResult.
    Raises:
        NerfkitError: bad input, missing pycolmap, or too few images registered.
    """
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    inputs, output = Path(inputs), Path(output)
    cm = _check_arguments(
        inputs, output, downscale, matching, camera_model, min_registered, overwrite
    )
    _import_pycolmap()
    is_video = inputs.is_file()
    seconds: dict[str, float] = {}
    with _colmap_session(inputs, verbose), staging_folder(output) as tmp:
        work = tmp / "_work"  # database, raw models (and full-size images): deleted at the end
        sfm_images = tmp / "images" if downscale == 1 else work / "images"
        with _timed(seconds, "inputs"):
            names = _gather_images(inputs, sfm_images, num_frames, progress, say)
        work.mkdir(parents=True, exist_ok=True)
        database = work / "database.db"
        with _timed(seconds, "features"):
            _extract_features(database, sfm_images, names, cm, num_threads, say)
        with _timed(seconds, "matching"):
            how = _match_features(database, len(names), matching, is_video, num_threads, say)
        with _timed(seconds, "mapping"):
            rec = _map(
                database, sfm_images, work / "sparse", len(names), num_threads, seed, progress, say
            )
        n_reg = _check_registered(rec, names, inputs, min_registered, is_video)
        with _timed(seconds, "writing"):
            say(f"[5/5] writing the dataset ({n_reg} of {len(names)} images registered)")
            result = _write_dataset(rec, tmp, sfm_images, names, downscale)
            result.num_inputs, result.matching, result.camera_model = len(names), how, cm
            shutil.rmtree(work)
        result.seconds = seconds
        install_folder(tmp, output)
    result.output = output
    return result


@contextmanager
def _colmap_session(inputs: Path, verbose: bool) -> Iterator[None]:
    """pycolmap's log silenced unless `verbose` (restored on exit), and COLMAP's own failures
    (RuntimeError, e.g. an image it cannot read) turned into a one-line NerfkitError."""
    import pycolmap

    old_level = pycolmap.logging.minloglevel
    if not verbose:
        pycolmap.logging.minloglevel = 3  # fatal only: failures come back as our errors
    try:
        yield
    except RuntimeError as e:
        why = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        raise NerfkitError(
            f"{inputs}: COLMAP failed ({why}); rerun with --verbose to see its log"
        ) from None
    finally:
        pycolmap.logging.minloglevel = old_level


def _check_arguments(
    inputs: Path,
    output: Path,
    downscale: int,
    matching: str,
    camera_model: str,
    min_registered: float,
    overwrite: bool,
) -> str:
    """Step 0: check the inputs, the options and the output folder before any work.

    Returns:
        the COLMAP camera model, upper case.
    Raises:
        NerfkitError: one line naming the bad input or option and what to do.
    """
    if not inputs.exists():
        raise NerfkitError(f"{inputs}: not found; pass a folder of photos or a video file")
    if inputs.is_file() and inputs.suffix.lower() not in VIDEO_EXTS:
        raise NerfkitError(
            f"{inputs}: not a video ({', '.join(VIDEO_EXTS)}) nor a folder of photos"
        )
    if downscale < 1:
        raise NerfkitError(f"--downscale must be >= 1, got {downscale}")
    if matching not in MATCHING:
        raise NerfkitError(f"--matching must be one of {', '.join(MATCHING)}, got '{matching}'")
    cm = camera_model.upper()
    if cm not in CAMERA_MODELS:
        raise NerfkitError(
            f"--camera-model must be one of {', '.join(CAMERA_MODELS)}, got '{camera_model}'"
        )
    if not 0.0 <= min_registered <= 1.0:
        raise NerfkitError(f"--min-registered must be in [0, 1], got {min_registered}")
    _check_output(output, inputs, overwrite)
    return cm


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall-clock seconds the body takes to `seconds[stage]` (when it succeeds)."""
    t0 = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - t0


def _gather_images(
    inputs: Path, sfm_images: Path, num_frames: int, progress: bool, say: Callable[[str], None]
) -> list[str]:
    """Step 1: the SfM input images in `sfm_images`: the photos of a folder, or sharp frames
    of a video. Returns their file names.

    Raises:
        NerfkitError: unreadable inputs, or fewer than 3 images.
    """
    if inputs.is_file():
        say(f"[1/5] sampling {num_frames} sharp frames from {inputs.name}")
        names = sample_video_frames(inputs, sfm_images, num_frames, progress)
    else:
        say(f"[1/5] reading the photos in {inputs}")
        names = _prepare_photos(inputs, sfm_images, progress)
    if len(names) < 3:
        raise NerfkitError(
            f"{inputs}: {len(names)} image(s); structure-from-motion needs at least 3 "
            "overlapping views (20+ recommended)"
        )
    return names


def _extract_features(
    database: Path,
    sfm_images: Path,
    names: list[str],
    camera_model: str,
    num_threads: int,
    say: Callable[[str], None],
) -> None:
    """Step 2: SIFT features of every image into the COLMAP database (CPU).

    One camera is shared by all images (photos from one device) unless their sizes differ;
    then each image gets its own, with a note.
    """
    import pycolmap
    from PIL import Image

    say(f"[2/5] extracting SIFT features from {len(names)} images (CPU)")
    sizes = set()
    for n in names:
        with Image.open(sfm_images / n) as im:
            sizes.add(im.size)
    mode = pycolmap.CameraMode.SINGLE
    if len(sizes) > 1:  # e.g. portrait and landscape photos: COLMAP cannot share one
        mode = pycolmap.CameraMode.AUTO  # a camera per image
        say(
            f"note: the images have {len(sizes)} different sizes, so each gets its own "
            "camera (less accurate); nerfkit trains on one image size per split, so "
            "process photos of one size and orientation for nerfkit"
        )
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = num_threads
    pycolmap.extract_features(
        database,
        sfm_images,
        image_names=names,
        camera_mode=mode,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )


def _match_features(
    database: Path,
    n_images: int,
    matching: str,
    is_video: bool,
    num_threads: int,
    say: Callable[[str], None],
) -> str:
    """Step 3: match features between image pairs, exhaustively or sequentially (by name).

    Returns:
        the matching used ("exhaustive" or "sequential"; "auto" resolved as in the module
        docstring).
    """
    import pycolmap

    how = matching
    if how == "auto":
        how = "sequential" if is_video or n_images >= EXHAUSTIVE_MAX else "exhaustive"
    matcher = pycolmap.FeatureMatchingOptions()
    matcher.num_threads = num_threads
    if how == "exhaustive":
        pairs = n_images * (n_images - 1) // 2
        say(f"[3/5] matching features: exhaustive, {pairs} image pairs")
        pycolmap.match_exhaustive(database, matching_options=matcher, device=pycolmap.Device.cpu)
    else:
        say("[3/5] matching features: sequential (each image with its neighbours by name)")
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = 10 if is_video else 20
        pairing.quadratic_overlap = True
        pycolmap.match_sequential(
            database,
            matching_options=matcher,
            pairing_options=pairing,
            device=pycolmap.Device.cpu,
        )
    return how


def _map(
    database: Path,
    sfm_images: Path,
    sparse: Path,
    n_images: int,
    num_threads: int,
    seed: int,
    progress: bool,
    say: Callable[[str], None],
) -> object | None:
    """Step 4: incremental mapping into `sparse`; the reconstruction with the most registered
    images (None when none was made)."""
    import pycolmap

    say("[4/5] incremental mapping")
    options = pycolmap.IncrementalPipelineOptions()
    options.min_model_size = 3
    options.num_threads = num_threads
    options.random_seed = seed
    sparse.mkdir(parents=True)
    bar = _bar(n_images, "registering images", progress)
    try:
        recs = pycolmap.incremental_mapping(
            database,
            sfm_images,
            sparse,
            options=options,
            initial_image_pair_callback=lambda: bar.update(2),
            next_image_callback=bar.update,  # once per image registered after the pair
        )
    finally:
        bar.close()
    return max(recs.values(), key=lambda r: r.num_reg_images(), default=None)


def _check_registered(
    rec: object | None, names: list[str], inputs: Path, min_registered: float, is_video: bool
) -> int:
    """The number of images the reconstruction `rec` placed, if enough of `names` registered.

    Raises:
        NerfkitError: fewer than max(3, min_registered * len(names)), with advice.
    """
    n_reg = rec.num_reg_images() if rec is not None else 0
    need = max(3, math.ceil(min_registered * len(names)))
    if n_reg < need:
        what = "video frames" if is_video else "photos"
        extra = "; try more --num-frames or a slower camera move" if is_video else ""
        raise NerfkitError(
            f"{inputs}: only {n_reg} of {len(names)} {what} could be placed by "
            f"structure-from-motion (need {need}); {ADVICE}{extra}"
        )
    return n_reg


def _write_dataset(
    rec: object,
    root: Path,
    sfm_images: Path,
    names: list[str],
    downscale: int,
) -> ProcessResult:
    """Write transforms.json, images/, colmap/sparse/0 and sparse_pc.ply into root."""
    from PIL import Image

    model_dir = root / "colmap" / "sparse" / "0"
    model_dir.mkdir(parents=True)
    rec.write(model_dir)
    rec.export_PLY(root / "sparse_pc.ply")
    images_dir = root / "images"
    images_dir.mkdir(exist_ok=True)

    cams = {}
    for cid, cam in rec.cameras.items():
        model = cam.model.name if hasattr(cam.model, "name") else str(cam.model)
        k = intrinsics_json(model, np.asarray(cam.params), cam.width, cam.height)
        cams[cid] = _scale_intrinsics(k, downscale) if downscale > 1 else k
    frames = []
    registered = set()
    for iid in rec.reg_image_ids():
        img = rec.images[iid]
        pose = img.cam_from_world
        pose = pose() if callable(pose) else pose  # a method in pycolmap 4, a property before
        w2c = np.asarray(pose.matrix())
        c2w = opencv_w2c_to_c2w(w2c[None, :3, :3], w2c[None, :3, 3])[0]
        fr = {"file_path": f"images/{img.name}", "transform_matrix": c2w.tolist()}
        if len(cams) > 1:
            fr.update(cams[img.camera_id])
        fr["colmap_im_id"] = int(iid)
        frames.append(fr)
        registered.add(img.name)
        if downscale > 1:
            with Image.open(sfm_images / img.name) as im:
                w, h = im.size[0] // downscale, im.size[1] // downscale
                small = im.convert("RGB").crop((0, 0, w * downscale, h * downscale))
                small = small.reduce(downscale)
            # same name and format (JPEG at quality 95, PNG lossless)
            small.save(images_dir / img.name, quality=95, compress_level=1)
    if downscale == 1:  # images/ is the SfM input: drop what did not register
        for n in names:
            if n not in registered:
                (images_dir / n).unlink(missing_ok=True)
    frames.sort(key=lambda f: f["file_path"])
    meta: dict = {}
    if len(cams) == 1:
        meta.update(next(iter(cams.values())))
    meta["frames"] = frames
    meta["applied_transform"] = np.eye(4)[:3].tolist()
    meta["ply_file_path"] = "sparse_pc.ply"
    with open(root / "transforms.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    return ProcessResult(
        output=root,
        num_inputs=len(names),
        num_registered=len(frames),
        unregistered=[n for n in names if n not in registered],
        mean_reprojection_error=float(rec.compute_mean_reprojection_error()),
        num_points=int(rec.num_points3D()),
    )
