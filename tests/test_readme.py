"""The README stays a two-minute read and cannot drift from the shipped results or the command line.

A README cannot compute its numbers, so these tests do the checking instead: every number in its results table
must equal, rounded as shown, the value at the key the table names in the shipped JSON file it names.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from skinlib.cli import build_parser
from skinlib.shipped import SHIPPED

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "book" / "_ext"))

from shipped_numbers import dig  # noqa: E402  (the reproduce page reads the JSONs the same way)

README = REPO / "README.md"
MAX_CHARS = 8000
MISSING = {"–", "-", ""}


def readme() -> str:
    return README.read_text(encoding="utf-8")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def results_table(text: str) -> list[dict[str, str]]:
    """The rows of the first table under `## Results`, each a dict keyed by the header."""
    section = text.split("\n## Results", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = _cells(lines[0])
    return [dict(zip(header, _cells(line))) for line in lines[2:]]


def subcommands(parser) -> set[str]:
    """Every sub-command name (and alias) the parser accepts."""
    import argparse

    names = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            names.update(action.choices)
    return names


def mentioned_subcommands(text: str) -> set[str]:
    """`skinlib NAME` inside code (fenced blocks and inline spans): what a reader would type."""
    fences = re.findall(r"```.*?```", text, flags=re.DOTALL)
    spans = re.findall(r"`[^`\n]+`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    names = set()
    for code in fences + spans:
        names.update(re.findall(r"(?<![\w./-])skinlib[ \t]+([a-z][a-z0-9-]*)", code))
    return names


def test_readme_is_a_two_minute_read():
    assert len(readme()) <= MAX_CHARS, f"README.md has {len(readme())} characters, at most {MAX_CHARS}"


def test_readme_states_the_two_commands():
    text = readme()
    assert "make test" in text, ".ci/run calls `make test`: the README must say so"
    assert "make course" in text


def test_results_table_matches_the_shipped_json():
    rows = results_table(readme())
    assert rows, "README.md has no results table under '## Results'"
    checked = 0
    for row in rows:
        assert not re.search(r"\d", row["what"]), f"a number outside the checked columns: {row['what']!r}"
        path = SHIPPED / row["file"].strip("`")
        assert path.is_file(), f"{row['what']}: {path} does not exist"
        data = json.loads(path.read_text())
        key = row["key"].strip("`")
        for split in ("val", "test"):
            shown = row[split]
            if shown in MISSING:
                continue
            assert re.fullmatch(r"-?\d+(\.\d+)?", shown), f"{row['what']} ({split}): {shown!r} is not a number"
            value = dig(data, key.format(split=split))
            assert isinstance(value, (int, float)), f"{row['what']}: no number at {key.format(split=split)} in {path}"
            decimals = len(shown.split(".")[1]) if "." in shown else 0
            assert f"{value:.{decimals}f}" == shown, (
                f"{row['what']} ({split}): README shows {shown}, {path.name} holds {value:.{decimals}f}"
            )
            checked += 1
    assert checked >= len(rows)


def test_every_skinlib_command_in_the_readme_exists():
    mentioned = mentioned_subcommands(readme())
    assert mentioned, "the README should show at least one `skinlib` command"
    unknown = mentioned - subcommands(build_parser())
    assert not unknown, f"README.md mentions commands skinlib does not have: {sorted(unknown)}"


def test_readme_links_resolve():
    targets = re.findall(r"\]\(([^)\s#]+)", readme())
    local = [target for target in targets if not re.match(r"[a-z]+:", target)]
    assert any(target.startswith("book/") for target in local), "the README should point into the book"
    missing = [target for target in local if not (REPO / target).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_mentioned_subcommands_reads_code_only():
    text = (
        "skinlib is a package.\n```bash\nskinlib predict x --out y\nconda activate skinlib\nmake test\n```\n"
        "Run `skinlib split --verify`; see skinlib/shipped and `python -m skinlib --help`."
    )
    assert mentioned_subcommands(text) == {"predict", "split"}
