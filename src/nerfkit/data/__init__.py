"""Dataset loaders: every on-disk format becomes one `Scene`."""

from nerfkit.data.loaders import load_scene
from nerfkit.data.scene import Scene, SceneMeta, Split

__all__ = ["Scene", "SceneMeta", "Split", "load_scene"]
