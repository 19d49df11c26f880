"""Sphinx directive `course-timings`: how long each course notebook takes, read at build time from the committed
record `benchmarks/results/course_timings.json` (written by `benchmarks/course_timings.py` from `skinlib pipeline`
runs). The instructor guide shows it; no time on that page is typed by hand.

Sphinx role `chapter-time`: one chapter's run time in every mode, for the chapter's own overview, e.g.
`` {chapter-time}`02_classical_masks` `` -> "7 s in quick mode; full mode not recorded". Each mode has its own
record (`course_timings.json` for quick, `course_timings_full.json` for full: `benchmarks/course_timings.py
--mode full` writes it). A mode with no record, or a record without the chapter, says "not recorded".

`timings_markdown` and `chapter_time_text` are pure functions of the records, tested without Sphinx
(tests/test_docs_pages.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from shipped_numbers import format_duration

RECORD = "course_timings.json"

#: The pipeline's modes, in the order `chapter-time` names them (skinlib.pipeline.MODES).
MODES = ("quick", "full")


def record_name(mode: str) -> str:
    """The record of one mode in benchmarks/results: quick keeps the original name, others get a suffix."""
    return RECORD if mode == "quick" else f"course_timings_{mode}.json"


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
    """The quick-mode table for the book in `srcdir` (then one per other mode that has a record, or a sentence
    saying it has none) and the files it read."""
    from skinlib.pipeline import toc_notebooks

    toc = Path(srcdir) / "_toc.yml"
    record, path = load_record(srcdir)
    notebooks = list(toc_notebooks(toc))
    text = timings_markdown(record, notebooks, f"benchmarks/results/{RECORD}")
    records, files = load_records(srcdir)
    for mode in MODES[1:]:
        file = f"benchmarks/results/{record_name(mode)}"
        if records[mode]:
            text += "\n" + timings_markdown(records[mode], notebooks, file)
        else:
            text += f"\nNo {mode}-mode timings are recorded yet (`{file}`, written by"
            text += f" `python benchmarks/course_timings.py outputs/{mode} --mode {mode}`).\n"
    return text, sorted({p for p in (path, toc, *files) if p is not None and p.is_file()})


# ---------------------------------------------------------------------------------------------- Sphinx


def notebook_file(name: str) -> str:
    """`02_classical_masks`, `02_classical_masks.ipynb` or `notebooks/02_classical_masks` -> the file name."""
    stem = Path(name.strip()).name
    return stem if stem.endswith(".ipynb") else f"{stem}.ipynb"


def chapter_time_text(records: dict[str, dict | None], notebook: str) -> str:
    """One chapter's recorded run time per mode ("7 s in quick mode; full mode not recorded"), or "not recorded"
    when no mode holds it. `records`: mode -> its record (None when that mode has none). Nothing is estimated."""
    parts, found = [], False
    for mode in MODES:
        entries = {entry["notebook"]: entry for entry in (records.get(mode) or {}).get("notebooks", [])}
        entry = entries.get(notebook_file(notebook))
        if entry is None:
            parts.append(f"{mode} mode not recorded")
        else:
            found = True
            parts.append(f"{format_duration(entry['seconds'])} in {mode} mode")
    return "; ".join(parts) if found else "not recorded"


def load_records(srcdir) -> tuple[dict[str, dict | None], list[Path]]:
    """mode -> its committed record (None if missing), and the files read."""
    from book_sources import benchmark_results

    folder = benchmark_results(srcdir)
    records, files = {}, []
    for mode in MODES:
        path = folder / record_name(mode) if folder is not None else None
        records[mode] = json.loads(path.read_text()) if path is not None and path.is_file() else None
        if records[mode] is not None:
            files.append(path)
            if records[mode].get("mode", mode) != mode:
                raise ValueError(f"{path} records {records[mode]['mode']!r} mode, not {mode!r}")
    return records, files


def chapter_time_role():
    """The `chapter-time` role class: the chapter's run times as text; an unknown chapter is a build error."""
    from docutils import nodes
    from sphinx.util.docutils import SphinxRole

    from skinlib.pipeline import toc_notebooks

    class ChapterTimeRole(SphinxRole):
        def run(self):
            toc = Path(self.env.srcdir) / "_toc.yml"
            name = notebook_file(self.text)
            if name not in toc_notebooks(toc):
                message = self.inliner.reporter.error(
                    f"chapter-time: {self.text!r} is not a chapter of {toc.name}", line=self.lineno
                )
                return [self.inliner.problematic(self.rawtext, self.rawtext, message)], [message]
            records, files = load_records(self.env.srcdir)
            for path in [*files, toc, Path(__file__)]:
                self.env.note_dependency(str(path))
            return [nodes.inline(self.rawtext, chapter_time_text(records, name), classes=["chapter-time"])], []

    return ChapterTimeRole()


def setup(app):
    """Register `{course-timings}` and `{chapter-time}`; a page using one is reread when a file it read changes."""
    from book_sources import register_markdown_directive

    metadata = register_markdown_directive(app, "course-timings", section_markdown, __file__)  # checkout first
    app.add_role("chapter-time", chapter_time_role())
    return metadata
