"""Evaluate a trained run on a split of its dataset: rendered views, depth maps, metrics.json."""

from __future__ import annotations

from pathlib import Path

from nerfkit.metrics import image_metrics, summarize


def evaluate_run(
    run_dir: Path,
    split: str = "test",
    data: Path | None = None,
    output: Path | None = None,
    downscale: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Render every view of a split at the dataset's full resolution divided by `downscale`.

    `downscale` None: the run's training `--downscale` (from its config.json), so a run is
    evaluated at the resolution it was trained at unless asked otherwise.
    Writes `<frame stem>.png`, `<frame stem>_depth.png` and `metrics.json` (PSNR and SSIM per view
    and their means, on 8-bit images; the resolution and downscale used) into `output` (default:
    RUN/eval_<split>). `data` evaluates another folder's split, in the same scene frame, instead
    of the run's data.
    """
    from nerfkit.atomic import save_json_atomic
    from nerfkit.data import load_scene
    from nerfkit.media import colorize_depth, write_png
    from nerfkit.run import load_run

    run = load_run(run_dir, device)
    cfg, meta = run.config, run.meta
    if downscale is None:
        downscale = cfg.downscale
    # rays as the run was trained: with NDC exactly when it was
    scene = load_scene(
        data or cfg.data,
        format=None if data else cfg.format,
        downscale=downscale,
        ndc=meta.ndc,
    )
    sp = scene.split(split)
    out_dir = Path(output) if output else Path(run_dir) / f"eval_{split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    near, far = meta.near, meta.far
    drange = (0.0, 1.0) if meta.ndc else (near, far)
    views = []
    it = range(len(sp))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"eval {split}", unit="view")
    for k in it:
        r = run.method.render_image(sp.cameras, k, near, far, ndc=meta.ndc, **sp.view_args(k))
        views.append({"name": sp.names[k], **image_metrics(r.rgb, sp.images[k])})
        write_png(out_dir / f"{sp.names[k]}.png", r.rgb)
        write_png(out_dir / f"{sp.names[k]}_depth.png", colorize_depth(r.depth, *drange, acc=r.acc))
    result = {
        "run": str(run_dir),
        "step": run.step,
        "split": split,
        "data": str(data or cfg.data),
        "resolution": [sp.cameras.width, sp.cameras.height],
        "downscale": downscale,
        "num_views": len(views),
        "mean": summarize([{k: v[k] for k in ("psnr", "ssim")} for v in views]),
        "views": views,
    }
    save_json_atomic(out_dir / "metrics.json", result)
    result["output"] = str(out_dir)
    return result
