"""Shared fixtures. Tests that need HAM10000 read it from $SKINLIB_DATA (default ../shared/data/ham10000); the
ISIC 2017 collection (an external test set of three classes) from $SKINLIB_ISIC2017 (default
../shared/data/isic2017).

In CI (CI=true) a missing data folder fails those tests loudly; elsewhere they skip and say why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ham10000"
DEFAULT_ISIC2017 = REPO.parent / "shared" / "data" / "isic2017"


def _data_folder() -> Path:
    return Path(os.environ.get("SKINLIB_DATA") or DEFAULT_DATA)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    folder = _data_folder()
    if not (folder / "HAM10000_metadata.csv").is_file():
        message = f"HAM10000 not found at {folder}: set SKINLIB_DATA to the data folder (see README, 'The data')."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def isic2017_dir() -> Path:
    """The ISIC 2017 folder (images/, ISIC2017_labels.csv): mel, bkl and nv only, never used for training."""
    folder = Path(os.environ.get("SKINLIB_ISIC2017") or DEFAULT_ISIC2017)
    if not (folder / "ISIC2017_labels.csv").is_file():
        message = f"ISIC 2017 not found at {folder}: set SKINLIB_ISIC2017 to the folder with ISIC2017_labels.csv."
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


@pytest.fixture(scope="session")
def quick_course(tmp_path_factory, data_dir):
    """The whole course in quick mode, run once per test session: (out_dir, run_pipeline's result).

    Shared by the notebook, book and browser tests so the notebooks execute once. A failing notebook makes
    every test that needs the run error with `NotebookFailed`, which names the notebook and the cell.
    """
    import time

    from skinlib.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("course")
    started = time.perf_counter()
    result = run_pipeline("quick", out_dir=out, data_dir=data_dir, progress=False)
    print(f"quick pipeline, all notebooks: {time.perf_counter() - started:.1f} s")
    return out, result


@pytest.fixture(scope="session")
def course_book(quick_course):
    """(out_dir, html_dir) of the book built from the quick course run (offline, warnings are errors)."""
    from skinlib.pipeline import build_book

    out, _ = quick_course
    return out, build_book(out)


@pytest.fixture
def quick_fit(data_dir, tmp_path, capsys):
    """Run `skinlib fit-* --limit N` on a copy of the shipped classifier and check it wrote nothing.

    Returns run(command, *flags) -> what the command printed.
    """
    import shutil

    from skinlib.cli import main
    from skinlib.runtime import DEFAULT_CLASSIFIER

    def run(command: str, *flags: str, limit: int = 40) -> str:
        folder = tmp_path / "classifier"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(DEFAULT_CLASSIFIER, folder)
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert (
            main([command, "--data", str(data_dir), "--model", str(folder), "--limit", str(limit), "--quiet", *flags])
            == 0
        )
        assert before == {p.name: p.read_bytes() for p in folder.iterdir()}, f"{command} --limit wrote files"
        out = capsys.readouterr().out
        assert "is unchanged" in out
        return out

    return run
