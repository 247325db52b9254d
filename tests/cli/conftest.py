"""Fixtures for end-to-end command tests: a tiny procedural scene."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerfkit.data.synthetic import generate_scene


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene") / "tiny"
    generate_scene(root, resolution=24, n_train=12, n_val=2, n_test=3, seed=0, supersample=1)
    return root
