from __future__ import annotations

from pathlib import Path

import pytest

from tests.reid.synthetic import write_set


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory) -> tuple[Path, Path]:
    """(images folder, identities.csv): ana x3, bo x3, cy x2, solo x1."""
    folder = tmp_path_factory.mktemp("reid-set")
    return folder, write_set(folder)
