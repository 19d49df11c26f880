"""No result typed by hand in the course's prose: numbers a pipeline run measures reach sentences through glue.

A notebook glues a value in a code cell (`glue("ch02_val_dice", dice, display=False)`) and its markdown quotes it
with `` {glue:text}`ch02_val_dice:.3f` ``; a number typed into the text instead drifts from the JSON the next run
writes. A page of book/ quotes a committed JSON file with `` {shipped}`FILE:KEY:FORMAT` `` (book/_ext/shipped_numbers.py)
or a run time with `` {chapter-time}`NN_name` `` (book/_ext/course_timings.py). This test reads the PROSE of the
course (markdown cells of notebooks/*.ipynb and every book/*.md page of _toc.yml) and flags numbers that look like
results.

What is not prose typed by hand, and is removed first: code fences and inline code, math (`$...$`, `$$...$$`,
```` ```{math} ````), roles (`` {glue:text}`...` ``, `` {term}`...` ``, `` {doc}`...` ``, `` {ref}`...` ``,
`` {cite}`...` ``, any `{name}`), directive option lines (`:width: 100%`) and path arguments (```` ```{figure} ````),
links' URLs, cross-reference targets (`(label)=`), HTML tags and comments, exercise, chapter, notebook and
section numbers ("Exercise 5.2", "exercises 8.2 (...), 8.4 and 10.3", "chapter 06"), identifiers (doi:10.1038/...,
arXiv:1710.05006, "Python 3.10–3.13", "CC BY-NC-SA 4.0"), and the author's estimates of a READER's time, which no
run measures ("*Difficulty: ★ easy · about 15 min*" of an exercise, "about 20 minutes to read").

The rule: a number is result-like when it has
- a decimal point (0.687, 93.4, 1.3 million),
- a percent sign or "per cent" (12 %, 4.5%),
- a thousands separator (1,506; also a thin or no-break space), or
- four or more digits and is not a year from 1900 to 2099 (10015), or
- a unit of time after it (5 minutes, 42 min, 7 s, 2 h): a run time is measured, so it is quoted from a record.
Other integers below 1000 without any of these ("7 classes", "3 phases", "8 views", "224 pixels", "epoch 12") are
facts of the method, not results: the test does not flag them. (So a measured count below 1000 typed by hand, like
"12 melanomas", is not caught: the chapter reviews catch those.) Digits inside a word (HAM10000, EfficientNet-B0,
x86_64) are names, not numbers.

A fact that is not measured by the pipeline (from the literature, a data set's paper, a formula's arithmetic) is
kept by the commented allow-list `ALLOWED`: per file, an exact phrase of the stripped prose and why. A number is
allowed when it lies inside an occurrence of one of its file's phrases (or of a phrase in `ALLOWED_EVERYWHERE`).

Offenders are reported as `file: cell N: "...context..."` with the number in [brackets] (N counts the notebook's
cells from 0, as nbformat does; in a .md page, `line N`), every one of them, so chapter authors fix them in one pass.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent


def toc_pages(toc: str | None = None) -> tuple[str, ...]:
    """Every markdown page of the book: the book/ entries of _toc.yml (the root too), as file names."""
    toc = (REPO / "_toc.yml").read_text() if toc is None else toc
    return tuple(f"{name}.md" for name in re.findall(r"^\s*(?:root|-\s*file):\s*(book/[\w/-]+)\s*$", toc, re.M))


#: The markdown pages scanned besides the notebooks: all of them.
PAGES = toc_pages()

#: Phrases allowed in every scanned file, with why.
ALLOWED_EVERYWHERE = {
    "95 % interval": "the confidence level of every interval in the course: a convention of the method, not a result",
    "95 % bootstrap": "the same confidence level, written before the word bootstrap",
    "95 % CI": "the same confidence level, in a table header or beside an interval",
    "Human Against Machine with 10000 training images": "the data set's name, spelled out",
}

#: Constants of the method quoted below live in the code: skinlib.segmentation.postprocess (MIN_/MAX_LESION_FRACTION),
#: skinlib.models.novelty (VALIDATION_FLAG_RATE), skinlib.evaluation.segmentation (ISIC_JACCARD_THRESHOLD),
#: skinlib.runtime.views (check_scales), skinlib.data.tfdata (scale_range), skinlib.workflows.ablation
#: (ECE_TARGET), skinlib.course (TARGETS).
#: file -> {exact phrase of the stripped prose (any white space between its words): why it is not a result}
ALLOWED: dict[str, dict[str, str]] = {
    "notebooks/08_evaluation.ipynb": {
        '"0.9" need not mean': "an illustrative probability in the definition of calibration",
    },
    "book/instructor.md": {
        "towards 0.5": "the probability at which a two-way decision flips by default: a property of the method",
        "below 0.5": "the same default, as students compare the fitted threshold with it",
    },
    "book/data.md": {
        "a collection of 10,015 dermoscopic images": "HAM10000's size, from its data descriptor",
        "HAM10000 has 10,015 images but only 7,470 lesions: 2,545 images": "counts of the data's own metadata "
        "table (its lesion_id column), the same in every copy; chapter 01 counts them again",
        "2,149 dermoscopic images": "the size of the ISIC 2017 collection, stated in its README",
        "5, 180161 (2018)": "volume and article number of a citation",
        "26, 1229–1234": "volume and pages of a citation",
    },
    "book/exercises.md": {
        "a random 15 %": "the exercise's own setting (a test share like the shipped split's)",
        "below the 0.65 cut": "ISIC's threshold of the thresholded Jaccard: a definition of the metric",
        "falls below 0.65": "the same threshold, in a worked example",
        "the project's target of 0.80": "a target the project set (skinlib.course.TARGETS), not a result",
        "probability 0.9 for its true class (an easy example). A melanoma is predicted with probability 0.1": "the "
        "inputs of a worked example",
        'with 80 % power? Check the rule "about 2.8 standard errors"': "the conventional power and the rule "
        "derived from it (normal quantiles), which the exercise checks",
        "about (1.96 + 0.84) SE: 1.96 for the 95 % interval, 0.84 for": "the normal quantiles behind that rule",
        "probability 0.999": "the input of a thought experiment",
        "at least 0.95": "the exercise's own target sensitivity",
        "Every value is 0.5": "sigma(0), the attention gates' designed start, derived in the next sentence "
        "(tests/test_exercises.py also looks for this phrase)",
        "melanoma in 2 % of lesions: what is … for an image the model, as trained, gives 0.5": "the inputs of a "
        "worked example (the solution's arithmetic is in math)",
        "less than 1 % or more than 95 % of the image": "stage 1's plausibility limits, constants of the method",
        "flag 1 % of ordinary validation images": "the novelty check's design flag rate",
        "at the 5 % level": "the conventional significance level",
    },
    "book/how_it_works.md": {
        "under 1 % or over 95 % of the image": "stage 1's plausibility limits, constants of the method",
        "86.6 % in Haenssle et al. 2018": "a result from the literature",
        "any scales from 0.5 to 2": "the range TTA scales may take, a constant of the method",
        "zoom 0.9–1.15": "the training augmentation's zoom range, a constant of the recipe",
        "an expected calibration error of at most 0.05": "the calibration bar of the replacement rule",
    },
    "book/glossary.md": {
        "the middle 95 % of the values": "the percentile interval's definition, at the course's confidence level",
        "about 2.8 SE is found with 80 % power": "a rule of statistics (normal quantiles)",
        'calls "mel" with probability 0.8, about 80 % are melanomas': "an illustration in a definition",
        "in 1000 classes": "ImageNet's classes: a fact from the literature",
        "so that 1 % of ordinary validation images": "the novelty check's design flag rate",
        "0.5 is guessing": "the ROC AUC of a random score: part of the definition",
        "below 0.65": "ISIC's threshold of the thresholded Jaccard: a definition of the metric",
    },
}

# ------------------------------------------------------------------------------------------ stripping

#: Directives whose body is code or math (skipped); every other directive's body is prose.
CODE_DIRECTIVES = {"code", "code-block", "code-cell", "sourcecode", "math", "raw", "eval-rst", "mermaid", "graphviz"}
#: Directives whose argument is a path or a key, not a title.
PATH_DIRECTIVES = {"figure", "image", "include", "literalinclude", "bibliography", "glue", "glue:any", "glue:figure"}

FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,}|:{3,})\s*(?:\{(?P<name>[\w:.-]+)\})?\s*(?P<arg>.*)$")
OPTION = re.compile(r"^\s*:[\w-]+:(\s.*)?$")
TARGET = re.compile(r"^\s*\([\w:.-]+\)=\s*$")
LINK_DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$")
INLINE = [
    re.compile(r"<!--.*?-->", re.S),  # HTML comments
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"\{[\w:.+-]+\}(`+).*?\1", re.S),  # roles: {glue:text}`key:.3f`, {term}`...`, {doc}`...`
    re.compile(r"(`+).*?\1", re.S),  # inline code
    re.compile(r"(?<![\\$])\$(?!\s)[^$\n]+?(?<![\s\\])\$"),  # inline math
    re.compile(r"<(?:https?|mailto):[^>]*>"),  # autolinks
    re.compile(r"</?[A-Za-z][^>]*>"),  # HTML tags
    re.compile(r"https?://\S+"),  # bare URLs
]
LINK_URL = re.compile(r"(\]\()([^)]*)(\))")  # [text](url): the text stays
#: "Exercise 5.2", "exercises 8.2 (a melanoma operating point), 8.4 and 10.3", up to the sentence's end.
EXERCISES = re.compile(r"\bexercises?\s+\d.*?(?:(?<!\d)\.(?!\d)|$)", re.I | re.S)
#: Identifiers, not quantities: DOIs, arXiv numbers, software and licence versions.
IDENTIFIERS = re.compile(
    r"\bdoi:\S+|\barXiv:\S+|\b(?:Python|CC(?: BY)?(?:-[A-Z]{2})*)\s+\d+(?:\.\d+)+(?:\s*[-–]\s*\d+(?:\.\d+)+)?", re.I
)
#: The author's estimates of the reader's time: an exercise's difficulty line, a chapter's reading time.
ESTIMATES = re.compile(r"Difficulty:[^\n*]*|\babout \d+ minutes to read\b")
EXERCISE_NUMBER = re.compile(r"(?<![\w.])[1-9]\d?\.\d{1,2}(?![\w.]?\d)")  # 5.2, 10.3; not 0.5 nor 0.812
#: "chapter 06", "notebooks 06, 08 and 10", "section 3.2", "Table 1".
NUMBERED = re.compile(
    r"\b(?:chapters?|notebooks?|sections?|figures?|tables?|task|step|phases?|part)\s+"
    r"\d+(?:\.\d+)*(?:(?:\s*,\s*|\s+and\s+|\s+or\s+|\s*[-–]\s*)\d+(?:\.\d+)*)*",
    re.I,
)


def _blank(match: re.Match) -> str:
    """A removed span: an ellipsis that keeps the span's line breaks, so line numbers stay right."""
    return "…" + "\n" * match.group(0).count("\n")


def prose(markdown: str) -> str:
    """The text of a markdown cell or page as a reader reads it, minus what is not typed prose (see the module's
    docstring). Line breaks are kept: line N of the result is line N of `markdown`."""
    lines, fences = [], []  # the open fences, innermost last: (fence, is its body code?)
    for line in markdown.split("\n"):
        match = FENCE.match(line)
        closes = (
            match is not None
            and bool(fences)
            and not match["name"]
            and not match["arg"]
            and match["fence"][0] == fences[-1][0][0]
            and len(match["fence"]) >= len(fences[-1][0])
        )
        if closes:
            fences.pop()
            lines.append("")
        elif fences and fences[-1][1]:  # a line of code
            lines.append("")
        elif match and (match["name"] or match["fence"][0] != ":"):  # a directive, or a plain code fence
            name = match["name"]
            is_code = name is None or name in CODE_DIRECTIVES
            fences.append((match["fence"], is_code))
            lines.append(match["arg"] if name and not is_code and name not in PATH_DIRECTIVES else "")
        elif OPTION.match(line) or TARGET.match(line) or LINK_DEFINITION.match(line):
            lines.append("")
        else:
            lines.append(line)
    text = "\n".join(lines)
    for pattern in INLINE:
        text = pattern.sub(_blank, text)
    text = LINK_URL.sub(lambda m: m.group(1) + "…" + m.group(3), text)
    text = IDENTIFIERS.sub(_blank, text)
    text = ESTIMATES.sub(lambda m: re.sub(r"\d", "N", m.group(0)), text)
    text = EXERCISES.sub(lambda m: EXERCISE_NUMBER.sub("N", m.group(0)), text)
    return NUMBERED.sub(lambda m: re.sub(r"\d", "N", m.group(0)), text)


# --------------------------------------------------------------------------------------------- numbers

NUMBER = re.compile(
    r"(?<![\w.,\u202f\u2009\u00a0])"
    r"(?:\d{1,3}(?:[,\u202f\u2009\u00a0]\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s?(?:%|per ?cent\b))?"
)

#: A unit of time right after a number (a range's end too: "5–10 minutes" flags the 10).
TIME_UNIT = re.compile(r"\s?(?:ms|s|secs?|seconds?|min|mins|minutes?|h|hrs?|hours?|days?)\b")


def result_like(number: str, before_unit: bool = False) -> bool:
    """The rule of the module's docstring: decimals, percentages, thousands separators, 4+ digits (not a year),
    or a run time (`before_unit`: a unit of time follows the number)."""
    if "." in number or "%" in number or "cent" in number or re.search(r"\d[,\u202f\u2009\u00a0]\d", number):
        return True
    return before_unit or (len(number) >= 4 and not 1900 <= int(number) <= 2099)


def _allowed_spans(text: str, phrases) -> list[tuple[int, int]]:
    """Where the phrases occur; a space of a phrase matches any run of white space (the prose wraps lines)."""
    patterns = [r"\s+".join(re.escape(word) for word in phrase.split()) for phrase in phrases]
    return [(m.start(), m.end()) for pattern in patterns for m in re.finditer(pattern, text)]


def offenders(markdown: str, allowed=()) -> list[tuple[int, str, str]]:
    """(line, number, context) for each result-like number of `markdown`'s prose not inside an allowed phrase."""
    text = prose(markdown)
    spans = _allowed_spans(text, [*ALLOWED_EVERYWHERE, *allowed])
    found = []
    for match in NUMBER.finditer(text):
        if not result_like(match.group(0), bool(TIME_UNIT.match(text, match.end()))):
            continue
        if any(start <= match.start() and match.end() <= end for start, end in spans):
            continue
        before, after = text[max(0, match.start() - 50) : match.start()], text[match.end() : match.end() + 50]
        context = " ".join(f"{before}[{match.group(0)}]{after}".split())  # the number in brackets
        found.append((text.count("\n", 0, match.start()) + 1, match.group(0), context))
    return found


def scan_file(path: Path, name: str | None = None) -> list[str]:
    """Every offender of a notebook's markdown cells or a markdown page, as `file: cell N: "...context..."`."""
    name = name or path.relative_to(REPO).as_posix()
    allowed = ALLOWED.get(name, {})
    if path.suffix == ".ipynb":
        cells = [
            (i, c.source) for i, c in enumerate(nbformat.read(path, as_version=4).cells) if c.cell_type == "markdown"
        ]
        return [
            f'{name}: cell {i}: "...{context}..."'
            for i, source in cells
            for _, _, context in offenders(source, allowed)
        ]
    return [f'{name}: line {line}: "...{context}..."' for line, _, context in offenders(path.read_text(), allowed)]


def course_files() -> list[Path]:
    return sorted((REPO / "notebooks").glob("*.ipynb")) + [REPO / page for page in PAGES]


# ----------------------------------------------------------------------------------------------- tests


def test_no_result_is_typed_into_the_course_prose():
    found = [line for path in course_files() for line in scan_file(path)]
    assert not found, (
        f"{len(found)} result-like numbers typed into the prose (glue them and quote them with {{glue:text}}, "
        "or, for a fact that no run measures, add an exact phrase with a comment to ALLOWED in "
        "tests/test_typed_numbers.py):\n" + "\n".join(found)
    )


def test_every_allowed_phrase_still_occurs_in_its_file():
    """An allow-list entry whose phrase left its file would keep allowing a number nobody checks any more."""
    texts = {}
    for path in course_files():
        name = path.relative_to(REPO).as_posix()
        if path.suffix == ".ipynb":
            cells = nbformat.read(path, as_version=4).cells
            texts[name] = "\n".join(prose(c.source) for c in cells if c.cell_type == "markdown")
        else:
            texts[name] = prose(path.read_text())
    stale = [
        f"{name}: {phrase!r}"
        for name, phrases in ALLOWED.items()
        for phrase in phrases
        if not _allowed_spans(texts.get(name, ""), [phrase])
    ]
    assert not stale, "allow-list phrases found nowhere in their file's prose:\n" + "\n".join(stale)


@pytest.mark.parametrize(
    "sentence",
    [
        "The validation Dice is {glue:text}`ch02_val_dice:.3f`.",
        "The validation Dice is {glue:}`ch02_val_dice_0.812`.",
        "Run `skinlib evaluate --prior mel=0.812` to see it.",
        "The score is $0.812$, or $$\\frac{0.812}{1}$$ in display.",
        "See [the paper](https://example.org/v0.812/paper.pdf).",
        "Exercise 5.2 asks for it; exercises 8.2 (an operating point), 8.4 and 10.3 extend it.",
        "Chapters 06, 08 and 09 share a sampler; section 3.2 of notebook 11 reads it.",
        "It has 7 classes, 3 phases, 8 views and 224 pixels; HAM10000 came out in 2018.",
        "```python\nthreshold = 0.812\n```",
        "```{figure} ../figures/0.812.png\n:width: 100%\n\nThe caption.\n```",
        "(ch02-0.812)=\n# A heading",
        "<!-- typed 0.812 -->",
        "We glue a 95 % interval for it.",
        "We glue a 95 %\ninterval for it, across a line break.",
        "Quick mode took {shipped}`benchmarks/results/course_timings.json:total_seconds:duration`.",
        "Running it takes {chapter-time}`02_classical_masks`; about 20 minutes to read.",
        "*Difficulty: ★★★ hard · about 45 min, 12 of them training*",
        "Cite doi:10.1038/sdata.2018.161 and arXiv:1710.05006.",
        "It needs Python 3.10–3.13; the data is CC BY-NC-SA 4.0.",
        "It has 7 classes and 8 views, takes 3 phases and 224 pixels, and reads 2 masks.",
    ],
)
def test_what_is_not_typed_prose_is_not_flagged(sentence):
    assert offenders(sentence) == []


@pytest.mark.parametrize(
    ("sentence", "number"),
    [
        ("The validation Dice is 0.812.", "0.812"),
        ("Balanced accuracy rose by 4.5% with TTA.", "4.5%"),
        ("It finds 12 % of melanomas.", "12 %"),
        ("The test split holds 1,506 images.", "1,506"),
        ("The test split holds 1506 images.", "1506"),
        ("A drop of -0.03 in ECE.", "0.03"),
        ("```{figure} ../figures/x.png\n:width: 100%\n\nDice 0.812 on validation.\n```", "0.812"),
        (":::{admonition} Dice 0.812\nThe mean is 93.4 here.\n:::", "0.812"),
        ("The score is {glue:text}`ch02_val_dice:.3f` (0.812 on the last run).", "0.812"),
        ("Exercise 5.2 asks why the Dice is 0.812.", "0.812"),
        ("Exercise 5.2 asks why the threshold is 0.5.", "0.5"),
        ("Quick mode takes about 5 minutes.", "5"),
        ("Full mode took about 42\nminutes including the book.", "42"),
        ("Training took 12 min on two cores.", "12"),
        ("One image takes 7 s, a batch 2 h.", "7"),
        ("A batch takes 5–10 seconds.", "10"),
        ("It takes about 20 minutes to run.", "20"),
        ("Difficulty is low, but training takes 15 min.", "15"),
    ],
)
def test_a_typed_result_is_flagged(sentence, number):
    assert number in [found for _, found, _ in offenders(sentence)]


def test_offenders_are_reported_by_file_and_cell_with_context(tmp_path):
    """A generated notebook: the typed 0.812 is reported with its cell; the glued, coded and math copies are not."""
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Masks\n\nThe Dice is {glue:text}`ch02_dice:.3f`, not `0.812`."),
            nbformat.v4.new_code_cell('glue("ch02_dice", 0.812, display=False)'),
            nbformat.v4.new_markdown_cell("Dice, $0.812$, typed:\nthe validation Dice is 0.812."),
        ]
    )
    path = tmp_path / "02_masks.ipynb"
    nbformat.write(notebook, path)
    assert scan_file(path, "notebooks/02_masks.ipynb") == [
        'notebooks/02_masks.ipynb: cell 2: "...Dice, …, typed: the validation Dice is [0.812]...."'
    ]
    page = tmp_path / "page.md"
    page.write_text("# Guide\n\nIt takes 12.5 minutes.\n")
    assert scan_file(page, "book/page.md") == ['book/page.md: line 3: "...# Guide It takes [12.5] minutes...."']


def test_every_book_page_of_the_toc_is_scanned():
    toy = "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/data\n  - file: notebooks/01_x\n  - file: book/faq\n"
    assert toc_pages(toy) == ("book/intro.md", "book/data.md", "book/faq.md")  # notebooks are scanned as notebooks
    assert {"book/intro.md", "book/exercises.md", "book/glossary.md", "book/reproduce.md"} <= set(PAGES)
    for page in PAGES:
        assert (REPO / page).is_file(), page
    assert {p.relative_to(REPO).as_posix() for p in (REPO / "book").glob("*.md")} == set(PAGES)


def test_a_page_is_scanned_with_its_own_allow_list(tmp_path, monkeypatch):
    """A .md page: its file's phrases (any white space between their words) allow, another file's do not."""
    page = tmp_path / "page.md"
    page.write_text("# Data\n\nHAM10000 has 10,015\nimages; quick mode takes about 5 minutes.\n")
    monkeypatch.setitem(ALLOWED, "book/page.md", {"HAM10000 has 10,015 images": "the data's documentation"})
    assert scan_file(page, "book/page.md") == [
        'book/page.md: line 4: "...AM10000 has 10,015 images; quick mode takes about [5] minutes...."'
    ]
    assert len(scan_file(page, "book/other.md")) == 2


def test_the_allow_list_keeps_only_its_phrase():
    text = "ImageNet has 1.3 million images; our model scored 0.812."
    assert [n for _, n, _ in offenders(text, {"1.3 million": "ImageNet"})] == ["0.812"]
    assert [n for _, n, _ in offenders(text)] == ["1.3", "0.812"]
