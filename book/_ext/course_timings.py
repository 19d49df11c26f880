"""Sphinx directive `course-timings`: how long each course notebook takes, read at build time from the committed
record `benchmarks/results/course_timings.json` (written by `benchmarks/course_timings.py` from `skinlib pipeline`
runs). The instructor guide shows it; no time on that page is typed by hand.

`timings_markdown` is a pure function of the record and the notebook list, tested without Sphinx
(tests/test_docs_pages.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from shipped_numbers import format_duration

RECORD = "course_timings.json"


def chapter(notebook: str) -> str:
    """A link to the chapter of `01_data_exploration.ipynb`, seen from a page in book/ (its title is the text)."""
    return f"{{doc}}`../notebooks/{Path(notebook).stem}`"


def timings_markdown(record: dict | None, notebooks: list[str], file: str) -> str:
    """A table, one row per course notebook in course order: its recorded time, or "not recorded"; then a total
    over the recorded ones and a sentence saying where the numbers come from."""
    if not record:
        return f"No timings are recorded yet (`{file}` is missing): run `python benchmarks/course_timings.py`.\n"
    by_name = {entry["notebook"]: entry for entry in record.get("notebooks", [])}
    mode = record.get("mode", "quick")
    lines = [f"| chapter | {mode} mode | recorded by |", "|---|---|---|"]
    for name in notebooks:
        entry = by_name.get(name)
        if entry is None:
            lines.append(f"| {chapter(name)} | not recorded | – |")
        else:
            lines.append(
                f"| {chapter(name)} | {format_duration(entry['seconds'])} | `{entry['source']}` of `{entry['run']}` |"
            )
    recorded = [name for name in notebooks if name in by_name]
    total = sum(by_name[name]["seconds"] for name in recorded)
    label = "all chapters" if len(recorded) == len(notebooks) else f"the {len(recorded)} recorded chapters"
    lines.append(f"| **{label}** | **{format_duration(total)}** | |")
    machine = ", ".join(
        part
        for part in (
            f"{record['cpu_count']} CPU cores" if record.get("cpu_count") else "",
            record.get("machine") or "",
        )
        if part
    )
    source = (
        f"Recorded in {mode} mode"
        + (f" on a machine with {machine}" if machine else "")
        + ", from the run folders "
        + ", ".join(f"`{run}`" for run in record.get("runs", []))
        + f" (`{file}`, written by `benchmarks/course_timings.py`). `timings.json` is the"
        " time `skinlib pipeline` measured for the notebook, kernel start included; `papermill duration` the time"
        " papermill recorded in the executed notebook."
    )
    if record.get("note"):
        source += f" {record['note']}"
    return "\n".join(lines) + "\n\n" + source + "\n"


def load_record(srcdir) -> tuple[dict | None, Path | None]:
    """The committed record beside the book (or in the checkout skinlib came from), and its path."""
    from book_sources import benchmark_results

    folder = benchmark_results(srcdir)
    path = folder / RECORD if folder is not None else None
    if path is None or not path.is_file():
        return None, path
    return json.loads(path.read_text()), path


def section_markdown(srcdir) -> tuple[str, list[Path]]:
    """The table for the book in `srcdir` and the files it read."""
    from skinlib.pipeline import toc_notebooks

    toc = Path(srcdir) / "_toc.yml"
    record, path = load_record(srcdir)
    text = timings_markdown(record, list(toc_notebooks(toc)), f"benchmarks/results/{RECORD}")
    return text, [p for p in (path, toc) if p is not None and p.is_file()]


# ---------------------------------------------------------------------------------------------- Sphinx


def setup(app):
    """Register `{course-timings}`; a page using it is reread when a file it read changes."""
    from book_sources import register_markdown_directive

    return register_markdown_directive(app, "course-timings", section_markdown, __file__)
