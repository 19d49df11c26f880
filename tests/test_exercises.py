"""The exercises page: numbered sphinx-exercise blocks labelled ex-<chapter>-<n>, each with a difficulty, a time and
a folded solution; and the copy without solutions (`make book-student`, SKINLIB_STUDENT_BOOK=1) really has none.

The fast tests read book/exercises.md and the extension's pure functions; the slow one builds the book twice (with
and without solutions) and reads the HTML."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "book" / "exercises.md"
sys.path.insert(0, str(REPO / "book" / "_ext"))

import exercise_numbers  # noqa: E402  (book/_ext is on the path only now)

DIFFICULTY = re.compile(r"\*Difficulty: (★ easy|★★ medium|★★★ hard) · about \d+ min[^*]*\*")
# Phrases that occur in a solution and nowhere else on the page (checked below against the source): the copy
# without solutions must not contain them; the normal build must.
SOLUTION_ONLY = ["splits_per_lesion", "Every value is 0.5", "Counter-examples", "A minimum at 0 would say"]


def blocks(text: str) -> list[dict]:
    """The page's exercise and solution blocks in order: kind, argument, options and body, with the chapter
    (the number of the `## C. title` section they sit in)."""
    found, chapter, lines, i = [], None, text.split("\n"), 0
    while i < len(lines):
        heading = re.fullmatch(r"## (\d+)\. .*", lines[i])
        if heading:
            chapter = int(heading[1])
        opening = re.fullmatch(r":::\{(exercise|solution)\}\s*(.*)", lines[i])
        if opening:
            end = lines.index(":::", i + 1)
            inner = lines[i + 1 : end]
            options = dict(re.fullmatch(r":(\w+):\s*(.*)", line).groups() for line in inner if line.startswith(":"))
            body = "\n".join(line for line in inner if not line.startswith(":")).strip()
            found.append({"kind": opening[1], "argument": opening[2], "options": options, "body": body})
            found[-1]["chapter"] = chapter
            i = end
        i += 1
    return found


def exercises_and_solutions() -> list[tuple[dict, dict]]:
    found = blocks(PAGE.read_text())
    assert len(found) % 2 == 0 and found, "exercise and solution blocks should come in pairs"
    return list(zip(found[::2], found[1::2]))


def test_every_exercise_is_a_labelled_block_with_a_folded_solution():
    text = PAGE.read_text()
    assert "### Exercise" not in text and "{admonition} Solution" not in text, "an exercise was left unconverted"
    pairs = exercises_and_solutions()
    seen: dict[int, int] = {}
    for exercise, solution in pairs:
        assert exercise["kind"] == "exercise" and solution["kind"] == "solution", (exercise, solution)
        label = exercise["options"].get("label", "")
        assert exercise_numbers.chapter_number(label) is not None, f"label {label!r} is not ex-<chapter>-<n>"
        chapter, n = exercise_numbers.chapter_number(label)
        assert chapter == exercise["chapter"], f"{label} sits in section {exercise['chapter']}"
        assert n == seen.get(chapter, 0) + 1, f"{label} does not follow exercise {chapter}.{seen.get(chapter, 0)}"
        seen[chapter] = n
        assert exercise["argument"], f"{label} has no title"
        assert "nonumber" not in exercise["options"], f"{label} would lose its number"
        assert DIFFICULTY.match(exercise["body"]), f"{label} does not open with its difficulty and time"
        assert solution["argument"] == label, f"the solution after {label} points at {solution['argument']}"
        assert solution["options"].get("class") == "dropdown", f"the solution of {label} is not folded"
        assert solution["body"], f"the solution of {label} is empty"
    assert sorted(seen) == [*range(1, 11), 12, 13], "chapters 1 to 10, the model card (12) and 13 have exercises"
    assert len(pairs) == 43


def test_solution_only_phrases_occur_only_in_solutions():
    """The slow test's evidence is only as good as these phrases: each must be in a solution and nowhere else."""
    pairs = exercises_and_solutions()
    solutions = "\n".join(solution["body"] for _, solution in pairs)
    rest = PAGE.read_text()
    for _, solution in pairs:
        rest = rest.replace(solution["body"], "")
    for phrase in SOLUTION_ONLY:
        assert phrase in solutions, phrase
        assert phrase not in rest, phrase


def test_labels_map_to_chapter_numbers():
    assert exercise_numbers.chapter_number("ex-5-2") == (5, 2)
    assert exercise_numbers.chapter_number("ex-10-4") == (10, 4)
    assert exercise_numbers.chapter_number("ex-5") is None
    assert exercise_numbers.chapter_number("index-exercise-3") is None
    assert exercise_numbers.chapter_number("ex-5-2b") is None


def test_student_switch():
    assert exercise_numbers.student_build({"SKINLIB_STUDENT_BOOK": "1"})
    assert exercise_numbers.student_build({"SKINLIB_STUDENT_BOOK": " True "})
    assert not exercise_numbers.student_build({"SKINLIB_STUDENT_BOOK": "0"})
    assert not exercise_numbers.student_build({})


def test_make_book_student_uses_the_switch():
    """The slow test builds the student copy the way `make book-student` does; keep the two in step."""
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^book-student:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "Makefile has no book-student target"
    assert "SKINLIB_STUDENT_BOOK=1" in recipe[1] and "jupyter-book build" in recipe[1]
    assert "_build/student" in recipe[1]


def build(out: Path, student: bool) -> Path:
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    if not jupyter_book.exists():
        jupyter_book = shutil.which("jupyter-book")
    assert jupyter_book, "jupyter-book is not installed: pip install -e '.[course]'"
    env = {key: value for key, value in os.environ.items() if key != "SKINLIB_STUDENT_BOOK"}
    if student:
        env["SKINLIB_STUDENT_BOOK"] = "1"
    result = subprocess.run(
        [str(jupyter_book), "build", str(REPO), "--path-output", str(out), "--warningiserror", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "_build" / "html"


def all_text(html: Path) -> str:
    """Every text file of a built book (pages, search index, copied sources), as one string."""
    return "\n".join(
        path.read_text(errors="replace")
        for path in html.rglob("*")
        if path.is_file() and path.suffix in {".html", ".js", ".md", ".txt", ".ipynb", ".json"}
    )


@pytest.mark.slow
def test_student_build_has_the_exercises_and_no_solutions(tmp_path):
    labels = [exercise["options"]["label"] for exercise, _ in exercises_and_solutions()]
    normal = build(tmp_path / "normal", student=False)
    student = build(tmp_path / "student", student=True)
    for html, with_solutions in ((normal, True), (student, False)):
        page = (html / "book" / "exercises.html").read_text()
        anchors = set(re.findall(r'id="(ex-\d+-\d+)"', page))
        assert anchors == set(labels), f"anchors missing: {sorted(set(labels) - anchors)}"
        for label in labels:
            chapter, n = exercise_numbers.chapter_number(label)
            assert f"Exercise {chapter}.{n} " in page, f"{label} is not titled Exercise {chapter}.{n}"
        assert page.count("Difficulty:") == len(labels)
        # {ref}`ex-2-2` on the page itself resolves to a link reading "Exercise 2.2"
        assert re.search(r'href="#ex-2-2"><span class="std std-numref">Exercise 2\.2</span>', page)
        text = all_text(html)
        for phrase in SOLUTION_ONLY:
            assert (phrase in text) == with_solutions, f"{phrase!r} {'missing from' if with_solutions else 'in'} {html}"
        assert (page.count('class="solution dropdown') == len(labels)) == with_solutions
        if not with_solutions:
            assert 'class="solution' not in page and "Solution to<a" not in page
            assert not (html / "_sources" / "book" / "exercises.md").exists(), "the page's source holds the solutions"
            assert "_sources/" not in page, "a download button points at sources the student copy does not have"
