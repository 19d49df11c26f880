"""The Jupyter Book builds offline, with warnings treated as errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path):
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    if not jupyter_book.exists():
        jupyter_book = shutil.which("jupyter-book")
    assert jupyter_book, "jupyter-book is not installed: pip install -e '.[course]'"
    result = subprocess.run(
        [str(jupyter_book), "build", str(REPO), "--path-output", str(tmp_path), "--warningiserror", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = tmp_path / "_build" / "html"
    assert (html / "book" / "intro.html").is_file()
    assert "HAM10000" in (html / "book" / "data.html").read_text()
    _check_generated_pages(html)


def _check_generated_pages(html: Path) -> None:
    """The directives of book/_ext ran: a section per sub-command, and the commands the shipped JSONs record."""
    import argparse
    import html as html_module
    import json
    import re

    from skinlib.cli import build_parser
    from skinlib.shipped import UNET

    reference = (html / "book" / "reference_cli.html").read_text()
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [name for name in subparsers.choices if f'id="cli-{name}"' not in reference]
    assert not missing, f"reference_cli.html has no section for {missing}"
    reproduce = html_module.unescape(re.sub(r"<[^>]+>", "", (html / "book" / "reproduce.html").read_text()))
    unet_command = json.loads((UNET / "metrics.json").read_text())["command"]
    assert unet_command in reproduce and "skinlib/shipped/unet/metrics.json" in reproduce
