"""The wheel carries the shipped models: build it, install it into a new virtual environment and run
`skinlib predict` on a HAM10000 image from a folder outside the checkout.

What is installed, and what is shared: the new environment gets the wheel itself (`pip install --no-deps`), and
sees the heavy dependencies (TensorFlow, Keras, OpenCV, scikit-learn, ...) of the environment running the tests
through one `.pth` line naming that environment's site-packages. Installing them from the package registry
would take minutes and the network on every run, and what this test is about is what the *wheel* carries. A path
added by a `.pth` line does not get its own `.pth` files processed, so the editable install of skinlib in the
test environment (an `__editable__...pth` finder) stays off there: the test asserts that the new environment
imports skinlib, and reads the shipped models, from its own site-packages.

A true fresh install, dependencies and all, is:

    pip wheel . -w dist && python -m venv env && env/bin/pip install dist/skinlib-*.whl
    cd /tmp && /path/to/env/bin/skinlib predict IMAGE.jpg --out predictions
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel (and, below, a virtual environment)

REPO = Path(__file__).resolve().parent.parent
#: The shipped models must stay small enough to travel in git and in the wheel.
MAX_WHEEL_MB = 30


def _setuptools_can_build() -> bool:
    """Whether this environment's setuptools can build skinlib without build isolation (the PEP 639
    `license = "MIT"` of pyproject.toml needs setuptools 77)."""
    try:
        return int(metadata.version("setuptools").split(".")[0]) >= 77 and bool(metadata.version("wheel"))
    except metadata.PackageNotFoundError:
        return False


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of the checkout (pyproject.toml, README.md, skinlib/), so the build's build/ and
    *.egg-info folders never land in the checkout."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "skinlib", source / "skinlib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    # Without build isolation when this environment's setuptools can build skinlib (no registry needed); else
    # pip builds in an isolated environment with setuptools from the configured index, as `pip wheel .` does.
    isolation = ["--no-build-isolation"] if _setuptools_can_build() else []
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", *isolation, "-w", str(dist), "--quiet"])
    (built,) = dist.glob("skinlib-*.whl")
    return built


def test_wheel_carries_the_shipped_models(wheel):
    from skinlib.shipped import SHIPPED

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        f"skinlib/{p.relative_to(SHIPPED.parent).as_posix()}"
        for p in SHIPPED.rglob("*")
        if p.is_file() and p.suffix in (".json", ".npz")
    }
    assert {
        "skinlib/shipped/classifier/weights.npz",
        "skinlib/shipped/unet/weights.npz",
        "skinlib/shipped/classifier/model.json",
        "skinlib/resources/ham10000_split.csv",
    } <= names
    assert shipped <= names, f"shipped files missing from the wheel: {sorted(shipped - names)}"
    assert wheel.stat().st_size < MAX_WHEEL_MB * 1e6, f"{wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB"


@pytest.mark.data
def test_installed_wheel_predicts_from_any_folder(wheel, data_dir, tmp_path):
    from skinlib.data import CLASSES, load_metadata
    from skinlib.data.images import read_image
    from skinlib.runtime import DualStage

    env_dir = tmp_path / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    python = env_dir / "bin" / "python"
    # this environment's pip installs into the new one: no ensurepip, no registry (--no-index, --no-deps)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ]
    )
    own_site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    shared = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (own_site / "_shared_dependencies.pth").write_text("".join(f"{path}\n" for path in shared))

    folder = tmp_path / "elsewhere"  # not the checkout, nothing of skinlib in it
    folder.mkdir()
    source = Path(load_metadata(data_dir)["image_path"].sort_values().iloc[0])
    image = folder / source.name
    shutil.copy(source, image)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"

    where = _run(
        [
            str(python),
            "-c",
            "import skinlib, skinlib.shipped; print(skinlib.__file__); print(skinlib.shipped.CLASSIFIER)",
        ],
        cwd=folder,
        env=env,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(own_site), f"the new environment imported skinlib from {where[0]}"
    assert Path(where[1]).is_relative_to(own_site), f"its shipped classifier is {where[1]}"

    done = _run(
        [str(env_dir / "bin" / "skinlib"), "predict", image.name, "--out", "predictions", "--quiet"],
        cwd=folder,
        env=env,
    )
    assert "wrote 1 prediction(s)" in done.stdout
    record = json.loads((folder / "predictions" / f"{image.stem}.json").read_text())
    assert (folder / "predictions" / f"{image.stem}_overlay.png").is_file()
    assert record["prediction"] in CLASSES
    assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    # the same models as the checkout's: the same answer
    expected = DualStage.load().predict([read_image(source)])[0]
    assert record["prediction"] == expected["prediction"]
    for name in CLASSES:
        assert record["probabilities"][name] == pytest.approx(expected["probabilities"][name], abs=1e-5)
