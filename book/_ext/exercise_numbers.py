"""Sphinx extension for the exercises page (book/exercises.md), on top of sphinx-exercise.

Numbers. sphinx-exercise counts exercises through the book (1, 2, ... 36); the course names them after their
chapter ("Exercise 5.2") and the chapters link to them with {ref}`ex-5-2`. After Sphinx has assigned the figure
numbers, `renumber` replaces the counted number of every exercise labelled `ex-<chapter>-<n>` by (chapter, n), so
the box title, the "Solution to" heading and every link read "Exercise 5.2". Other labels keep the counted number.

Student copy. With the environment variable SKINLIB_STUDENT_BOOK set to 1 (or true, yes), sphinx-exercise's
`hide_solutions` is switched on: every solution directive is dropped unparsed, so no solution text reaches the
HTML; nor are the Markdown sources copied beside it (and the theme's links to them go). `make book-student` sets
it; so can `SKINLIB_STUDENT_BOOK=1 skinlib pipeline --book` for the executed book.
"""

from __future__ import annotations

import os
import re

LABEL = re.compile(r"ex-(\d+)-(\d+)")
STUDENT_SWITCH = "SKINLIB_STUDENT_BOOK"


def chapter_number(label: str) -> tuple[int, int] | None:
    """(chapter, n) for a label `ex-<chapter>-<n>`; None for any other label."""
    match = LABEL.fullmatch(label)
    return (int(match[1]), int(match[2])) if match else None


def student_build(environ=os.environ) -> bool:
    """Whether this build is the copy without solutions (SKINLIB_STUDENT_BOOK=1/true/yes)."""
    return environ.get(STUDENT_SWITCH, "").strip().lower() in {"1", "true", "yes"}


def hide_solutions_when_asked(app, config) -> None:
    """On `config-inited`: the switch overrides the config, so the committed _config.yml serves both builds.

    The page sources are not copied either: Sphinx puts each page's Markdown into `_sources/` (the theme's
    download button links to it), and book/exercises.md holds every solution.
    """
    if student_build():
        config.hide_solutions = True
        config.html_copy_source = False


def drop_source_downloads(app, pagename, templatename, context, doctree) -> None:
    """On `html-page-context`, after the theme's buttons (priority 501): without copied sources the theme's
    ".md"/".ipynb" download links would point at nothing, so the student copy keeps only "print to PDF"."""
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"] = [
                button
                for button in group["buttons"]
                if button.get("label") not in {"download-source-button", "download-notebook-button"}
            ]


def renumber(app, env) -> list[str]:
    """On `env-get-updated`, after the toctree collector: rewrite the exercise numbers it assigned."""
    changed = []
    for docname, numbers in env.toc_fignumbers.items():
        exercises = numbers.get("exercise", {})
        for label in exercises:
            number = chapter_number(label)
            if number is not None and exercises[label] != number:
                exercises[label] = number
                changed.append(docname)
    return sorted(set(changed))


def setup(app):
    app.setup_extension("sphinx_exercise")
    app.connect("config-inited", hide_solutions_when_asked)
    if student_build():
        app.connect("html-page-context", drop_source_downloads, priority=900)
    app.connect("env-get-updated", renumber, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
