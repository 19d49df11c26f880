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


def _glued_notebook(key: str, value: str | None, quoted: str):
    """A notebook whose markdown quotes `{glue:text}` `quoted`; `value` glues `key` as an output (as myst_nb's
    `glue(key, value, display=False)` records it), None leaves the code cell without outputs (as committed)."""
    import nbformat

    code = nbformat.v4.new_code_cell(f'glue("{key}", {value}, display=False)')
    if value is not None:
        code.outputs = [
            nbformat.v4.new_output(
                "display_data",
                data={"application/papermill.record/text/plain": value},
                metadata={"scrapbook": {"name": key, "mime_prefix": "application/papermill.record/"}},
            )
        ]
    text = nbformat.v4.new_markdown_cell(f"# Glue\n\nThe score is {{glue:text}}`{quoted}:.2f`.")
    notebook = nbformat.v4.new_notebook(cells=[code, text])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def _build_tiny_book(
    folder: Path, suppress_warnings: list[str], notebook, chapter: str = "chapter", sphinx: dict | None = None
) -> subprocess.CompletedProcess:
    """A one-chapter Jupyter Book (the notebook at `chapter`.ipynb) with the given `suppress_warnings` and other
    `sphinx` settings, built like `make book`."""
    import json

    import nbformat

    (folder / chapter).parent.mkdir(parents=True)
    nbformat.write(notebook, folder / f"{chapter}.ipynb")
    (folder / "index.md").write_text("# Tiny\n")
    (folder / "_toc.yml").write_text(f"format: jb-book\nroot: index\nchapters:\n  - file: {chapter}\n")
    config = {"title": "tiny", "execute": {"execute_notebooks": "off"}}
    config["sphinx"] = {**(sphinx or {}), "config": {"suppress_warnings": suppress_warnings}}
    (folder / "_config.yml").write_text(json.dumps(config))  # JSON is YAML
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [str(jupyter_book if jupyter_book.exists() else shutil.which("jupyter-book"))]
    command += ["build", str(folder), "--warningiserror", "--keep-going"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_source_build_tolerates_missing_glue_keys_and_the_staged_book_does_not(tmp_path):
    """`make book` renders notebooks without outputs, so `_config.yml` suppresses `mystnb.glue`; the book of
    executed notebooks (`skinlib pipeline --book`) uses `strict_glue_config`, where a missing key is an error
    and a glued one renders."""
    yaml = pytest.importorskip("yaml")
    if not Path(sys.executable).with_name("jupyter-book").exists() and not shutil.which("jupyter-book"):
        pytest.skip("jupyter-book is not installed")
    from skinlib.pipeline import strict_glue_config

    source = (REPO / "_config.yml").read_text()
    tolerant = yaml.safe_load(source)["sphinx"]["config"]["suppress_warnings"]
    strict = yaml.safe_load(strict_glue_config(source))["sphinx"]["config"]["suppress_warnings"]

    missing = _glued_notebook("ch00_score", None, "ch00_score")
    result = _build_tiny_book(tmp_path / "source", tolerant, missing)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    result = _build_tiny_book(tmp_path / "executed_missing", strict, missing)
    assert result.returncode != 0 and "[mystnb.glue]" in result.stdout + result.stderr, result.stderr[-2000:]

    glued = _glued_notebook("ch00_score", "0.8123", "ch00_score")
    result = _build_tiny_book(tmp_path / "executed", strict, glued)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    import re

    page = re.sub(r"<[^>]+>", "", (tmp_path / "executed" / "_build" / "html" / "chapter.html").read_text())
    assert "The score is 0.81." in page


@pytest.mark.slow
def test_chapter_time_role_renders_inside_a_notebook_markdown_cell(tmp_path):
    """`{chapter-time}` (book/_ext/course_timings.py) in a notebook's markdown, as the chapter overviews use it:
    the text comes from the committed records; a name that is no chapter fails the build."""
    import re

    import nbformat

    if not Path(sys.executable).with_name("jupyter-book").exists() and not shutil.which("jupyter-book"):
        pytest.skip("jupyter-book is not installed")
    sys.path.insert(0, str(REPO / "book" / "_ext"))
    import course_timings

    records, _ = course_timings.load_records(REPO)
    expected = course_timings.chapter_time_text(records, "02_classical_masks")
    sphinx = {"local_extensions": {"course_timings": str(REPO / "book" / "_ext")}}

    def notebook(name):
        text = f"# Masks\n\n**Time:** running it takes {{chapter-time}}`{name}`."
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])

    result = _build_tiny_book(
        tmp_path / "ok", [], notebook("02_classical_masks"), "notebooks/02_classical_masks", sphinx
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    page = (tmp_path / "ok" / "_build" / "html" / "notebooks" / "02_classical_masks.html").read_text()
    assert f"running it takes {expected}." in re.sub(r"<[^>]+>", "", page)
    assert "in quick mode" in expected

    result = _build_tiny_book(tmp_path / "typo", [], notebook("02_classic"), "notebooks/02_classical_masks", sphinx)
    assert result.returncode != 0 and "'02_classic' is not a chapter" in result.stdout + result.stderr
