"""The one Scene type every loader produces."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from nerfkit.cameras import Cameras


@dataclass
class Split:
    """One split (train / val / test) of a scene.

    images: [N, H, W, 3] float32 RGB in [0, 1], already composited onto the scene background.
    cameras: N cameras of size W x H. names: N frame stems (used for output file names).
    depths: optional [N, H, W] ground-truth distance along the ray (0 / inf where nothing is hit).
    times: optional [N] time stamps in [0, 1] (dynamic scenes).
    rig_cameras: optional [N] int64 id of the rig camera that took each image (the Nerfies
        layout's `camera_id`: 0 left, 1 right of a validation rig); None: not given.
    """

    images: Tensor
    cameras: Cameras
    names: list[str]
    depths: Tensor | None = None
    times: Tensor | None = None
    rig_cameras: Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def view_args(self, k: int) -> dict[str, float | int | None]:
        """What `Method.render_image` needs to know of image k besides its camera: its time
        and its rig camera (None where the split has none)."""
        return {
            "time": None if self.times is None else float(self.times[k]),
            "rig_camera": None if self.rig_cameras is None else int(self.rig_cameras[k]),
        }


@dataclass
class SceneMeta:
    """What a trained model needs to know about its scene, saved in every run folder.

    Lets `eval`, `render` and export work from a run folder alone.
    kind: "object" (cameras around an object: orbit paths) or "forward" (forward-facing: spiral).
    aabb: [[xmin, ymin, zmin], [xmax, ymax, zmax]] a box holding the scene (in NDC for ndc scenes).
    unbounded: the content does not end at the box (a real capture with no alpha: background
    out to infinity); methods that can model all of space (grid's contraction) do.
    """

    near: float
    far: float
    background: list[float]
    ndc: bool = False
    unbounded: bool = False
    kind: str = "object"
    aabb: list[list[float]] = field(default_factory=lambda: [[-1.5] * 3, [1.5] * 3])
    width: int = 0
    height: int = 0
    focal: float = 0.0
    train_c2w: list[list[list[float]]] = field(default_factory=list)
    data_path: str = ""
    format: str = ""
    # scene-space [near, far] depths of the content; for NDC scenes (LLFF) the rescaled bounds
    # of poses_bounds.npy, used for spiral render paths. Empty if the format gives none.
    bounds: list[float] = field(default_factory=list)
    # 4x4 similarity the loader applied to the file's poses (scene = T @ file, scale folded in);
    # empty if the poses were used as stored.
    data_transform: list[list[float]] = field(default_factory=list)
    # time stamps in [0, 1] of the training images, in split order (dynamic scenes; empty for
    # static ones): per-frame latent codes are indexed by them
    train_times: list[float] = field(default_factory=list)
    # rig camera ids of the training images, in split order (empty: the format gives none):
    # per-camera codes (Nerfies' camera code) are indexed by them
    train_rig_cameras: list[int] = field(default_factory=list)

    @property
    def dynamic(self) -> bool:
        """The scene changes over time (its training images carry time stamps)."""
        return len(self.train_times) > 0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def background_tensor(self) -> Tensor:
        return torch.tensor(self.background, dtype=torch.float32)


@dataclass
class Scene:
    """A dataset in memory: splits plus the scene-wide facts in `meta`.

    points: optional [P, 3] points of the static background in the scene frame (the Nerfies
    layout's points.npy), for methods with a background loss (`Method.use_points`).
    """

    splits: dict[str, Split]
    meta: SceneMeta
    points: Tensor | None = None

    @classmethod
    def from_splits(cls, splits: dict[str, Split], **meta: object) -> Scene:
        """A Scene whose meta takes its image size, focal and training poses from the train
        split; `meta` gives the remaining SceneMeta fields (near, far, background, ...)."""
        cams = splits["train"].cameras
        times = splits["train"].times
        meta.setdefault("train_times", [] if times is None else times.tolist())
        rigs = splits["train"].rig_cameras
        meta.setdefault("train_rig_cameras", [] if rigs is None else rigs.tolist())
        return cls(
            splits,
            SceneMeta(
                width=cams.width,
                height=cams.height,
                focal=float(cams.fx[0]),
                train_c2w=cams.c2w.tolist(),
                **meta,  # type: ignore[arg-type]
            ),
        )

    def split(self, name: str) -> Split:
        from nerfkit.errors import DataError

        if name not in self.splits:
            have = ", ".join(sorted(self.splits)) or "none"
            raise DataError(
                f"{self.meta.data_path}: no '{name}' split (have: {have}); choose one of those"
            )
        return self.splits[name]
