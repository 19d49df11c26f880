"""House style: ruff's lint rules and its formatter (configured in pyproject.toml) hold for the package, the
tests and the benchmarks."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name("ruff")
pytestmark = pytest.mark.skipif(not RUFF.is_file(), reason="ruff is not installed (pip install -e .[test])")


def test_ruff_lint_is_clean():
    result = subprocess.run(
        [str(RUFF), "check", "skinlib", "tests", "benchmarks"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_every_file_as_it_is():
    result = subprocess.run(
        [str(RUFF), "format", "--check", "skinlib", "tests", "benchmarks"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
