"""Dataclass configs. The CLI is generated from them (tyro); a run saves its resolved config."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from nerfkit.errors import NerfkitError
from nerfkit.methods import METHODS, MethodSpec

# Training values used when neither the user nor the method (its `Method.train_defaults`)
# gives one; see TrainOptions.resolve_defaults.
TRAIN_DEFAULTS: dict[str, float | int] = {"lr": 5e-4, "lr_final": 5e-5, "batch_rays": 1024}
DEFAULT_METHOD = "grid"
DYNAMIC_METHOD = "dgrid"
AUTO_METHOD = "auto"


@dataclass
class TrainOptions:
    """Train a radiance field on a dataset folder."""

    data: Path | None = None
    """Dataset folder (Blender transforms_*.json, ...). Not needed with --resume."""
    output: Path = Path("runs/latest")
    """Run folder: config, checkpoints, logs, validation renders."""
    resume: Path | None = None
    """Continue the run in this folder with its saved config (other flags are ignored)."""
    method: str = AUTO_METHOD
    """Method name (see `nerfkit methods`); auto: `dgrid` for dynamic scenes (images with time
    stamps), else `grid`."""
    format: str | None = None
    """Force a dataset format instead of detecting it."""
    ndc: Literal["auto", "on", "off"] = "auto"
    """NDC rays for forward-facing scenes: auto = LLFF always, COLMAP / transforms.json when the
    cameras all face one way with a small baseline; on / off forces it (forward-facing formats
    only)."""
    downscale: int = 1
    """Divide image size and focal length by this factor."""
    max_steps: int | None = None
    """Stop after this many steps (default 200000 when --max-minutes is not given either)."""
    max_minutes: float | None = None
    """Stop after this much training time (loading and validation excluded)."""
    batch_rays: int | None = None
    """Rays per step, drawn at random across all training images (default: the method's)."""
    lr: float | None = None
    """Learning rate at the start (default: the method's)."""
    lr_final: float | None = None
    """Learning rate at the end of the schedule (exponential decay from --lr; default: the
    method's)."""
    precrop_steps: int = 0
    """For this many first steps, draw rays only from the centre of the images."""
    precrop_frac: float = 0.5
    """Fraction of width/height kept by the centre crop."""
    seed: int = 0
    log_every: int = 25
    val_every: int = 1000
    """Render a validation image (PNG) every N steps (0 = never)."""
    ckpt_every: int = 1000
    """Write a checkpoint every N steps (and always at the end)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None
    """CPU threads for torch (default: torch's choice, all cores)."""
    progress: bool = True
    """Show a progress bar."""
    viewer: bool = False
    """Serve the live viewer (a web page) while training; training never waits for a browser.
    Needs `pip install 'nerfkit[viewer]'`."""
    viewer_host: str = "127.0.0.1"
    """--viewer: address to listen on (0.0.0.0: all interfaces; or SSH port forwarding)."""
    viewer_port: int = 7007
    """--viewer: port to listen on (the next free one if taken; the printed URL says)."""
    dist_timeout: float = 300.0
    """Under torchrun: seconds a rank waits for the others (at start, at each step's gradient
    exchange, while rank 0 validates or checkpoints) before the job fails with an error."""

    def ndc_choice(self) -> bool | None:
        """`--ndc` as `load_scene` takes it: None (the format decides), True or False."""
        return {"auto": None, "on": True, "off": False}[self.ndc]

    def resolve_method(self, dynamic: bool) -> TrainOptions:
        """Replace --method auto by the default for the scene (dynamic: `dgrid`, else `grid`).
        Returns self."""
        if self.method == AUTO_METHOD:
            self.method = DYNAMIC_METHOD if dynamic else DEFAULT_METHOD
        return self

    def method_spec(self) -> MethodSpec:
        """The registry entry of `method` (NerfkitError naming the known ones if none)."""
        spec = METHODS.get(self.method)
        if spec is None or not hasattr(self, self.method):
            raise NerfkitError(
                f"unknown --method '{self.method}'; known: {', '.join(sorted(METHODS))}"
            )
        return spec

    def method_config(self) -> object:
        """The options of `method` (the field of that name, e.g. `self.grid`)."""
        self.method_spec()
        return getattr(self, self.method)

    def resolve_defaults(self) -> TrainOptions:
        """Fill lr, lr_final and batch_rays left unset (None) from the method's
        `train_defaults`, else from TRAIN_DEFAULTS. Returns self."""
        per_method = self.method_spec().method_cls.train_defaults
        for key, value in TRAIN_DEFAULTS.items():
            if getattr(self, key) is None:
                setattr(self, key, per_method.get(key, value))
        return self


def train_config_class(methods: Mapping[str, MethodSpec]) -> type[TrainOptions]:
    """`TrainOptions` plus one field per method: NAME holds a `methods[NAME].config_cls` (its
    defaults unless given), which is the `--NAME.*` option group of `nerfkit train` and the
    NAME section of a run's config.json."""
    clash = set(methods) & {f.name for f in dataclasses.fields(TrainOptions)}
    if clash:
        raise ValueError(f"method names {sorted(clash)} clash with options of TrainOptions")
    fields = [
        (name, _option_group(name, spec.config_cls), field(default_factory=spec.config_cls))
        for name, spec in methods.items()
    ]
    namespace = {"__module__": __name__, "__doc__": TrainOptions.__doc__}
    return dataclasses.make_dataclass(
        "TrainConfig", fields, bases=(TrainOptions,), namespace=namespace
    )


def _option_group(name: str, config_cls: type) -> object:
    """The type of method `name`'s field: its config class, with the option group's help."""
    default = " (the default)" if name == DEFAULT_METHOD else ""
    return Annotated[config_cls, tyro.conf.arg(help=f"Options of the `{name}` method{default}.")]


TrainConfig = train_config_class(METHODS)
"""The options of `nerfkit train`: TrainOptions plus the option group of each registered method."""


def to_dict(cfg: object) -> dict:
    """Dataclass -> JSON-friendly dict (Paths become strings)."""

    def conv(v: object) -> object:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        return v

    return conv(dataclasses.asdict(cfg))  # type: ignore[arg-type]


def from_dict(cls: type, d: dict) -> object:
    """Inverse of `to_dict` for (nested) dataclasses; unknown keys are ignored."""
    hints = typing.get_type_hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        v, t = d[f.name], hints[f.name]
        if dataclasses.is_dataclass(t) and isinstance(v, dict):
            v = from_dict(t, v)
        elif v is not None and (t is Path or (Path in typing.get_args(t))):
            v = Path(v)
        kw[f.name] = v
    return cls(**kw)
