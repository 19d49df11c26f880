"""Every chapter of the course meets the reader the same way: what it teaches first, what it concluded last."""

from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ENDING = ("## Summary", "## Check your understanding", "## Exercises", "## What's next")


def markdown_cells(path):
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_a_chapter_opens_with_objectives_prerequisites_and_time_before_any_code(path):
    cells = nbformat.read(path, as_version=4).cells
    first_code = next(i for i, cell in enumerate(cells) if cell.cell_type == "code")
    opening = "\n".join(cell.source for cell in cells[:first_code] if cell.cell_type == "markdown")
    assert opening.startswith("# "), f"{path.name} does not open with its title"
    for part in ("In this chapter", "**You will learn to**", "**Before you start**", "| Concept | Importance |"):
        assert part in opening, f"{path.name}: '{part}' is missing before the first code cell"
    assert f"{{chapter-time}}`{path.stem}`" in opening, f"{path.name} does not give its measured run time"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_a_chapter_ends_with_summary_questions_exercises_and_what_next(path):
    text = "\n".join(markdown_cells(path))
    positions = [text.find(heading) for heading in ENDING]
    assert all(p >= 0 for p in positions), f"{path.name} lacks {[h for h, p in zip(ENDING, positions) if p < 0]}"
    assert positions == sorted(positions), f"{path.name}: the ending's sections are out of order"
    exercises = text[positions[2] : positions[3]]
    assert "{ref}`ex-" in exercises, f"{path.name}: its Exercises section links no exercise"
    questions = text[positions[1] : positions[2]]
    assert 4 <= questions.count("{dropdown}") <= 6, f"{path.name}: 4-6 questions, each with a folded answer"
