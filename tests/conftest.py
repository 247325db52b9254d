"""Shared test helpers.

`shared_data`: the developers' benchmark data in ../shared/data next to the repository (see its
README.md). A user's clone has none, so tests that need it skip with a clear reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT / ".." / "shared" / "data"
NO_SHARED_DATA = "../shared/data not present (a user's clone has none)"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(NO_SHARED_DATA)
    return SHARED_DATA.resolve()
