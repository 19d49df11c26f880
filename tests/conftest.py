"""Shared fixtures. Tests that need HAM10000 read it from $SKINLIB_DATA (default ../shared/data/ham10000).

In CI (CI=true) a missing data folder fails those tests loudly; elsewhere they skip and say why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ham10000"


def _data_folder() -> Path:
    return Path(os.environ.get("SKINLIB_DATA") or DEFAULT_DATA)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    folder = _data_folder()
    if not (folder / "HAM10000_metadata.csv").is_file():
        message = (f"HAM10000 not found at {folder}: set SKINLIB_DATA to the data folder "
                   "(see README, 'Data').")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def metadata(data_dir):
    from skinlib.data import load_metadata

    return load_metadata(data_dir)


@pytest.fixture(scope="session")
def split_frame(metadata):
    from skinlib.data import attach_split, read_split

    return attach_split(metadata, read_split())
