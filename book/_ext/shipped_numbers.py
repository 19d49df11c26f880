"""Sphinx directive `shipped-numbers`: which file holds each shipped number, the command that made it, and
how long that took, read from the JSON files at build time.

Nothing on the reproduce page is retyped: the commands are the `command` fields the runs recorded, the times
their `*_seconds` fields, the numbers the values themselves. The pure functions (`model_entries`,
`ablation_markdown`, ...) need no Sphinx and are tested on their own (tests/test_docs_pages.py).

Sphinx role `shipped`: one value of a committed JSON file, inline in a sentence of any page, so no page types a
measured number (tests/test_typed_numbers.py scans them). `` {shipped}`FILE:KEY[:FORMAT]` ``, e.g.
`` {shipped}`ablation.json:rows.baseline.val.balanced_accuracy:.3f` `` or
`` {shipped}`classifier/metrics.json:train_seconds:duration` ``. FILE is relative to `skinlib/shipped/`, or starts
with `benchmarks/results/` or `skinlib/` (e.g. `skinlib/resources/ham10000_split.json`); KEY is dotted, a step into
a list being an index or the `name` of one of its items; FORMAT is a Python format spec (`.3f`; one ending in `%`
prints "85 %", the book's style), `duration` (`format_duration`), or nothing (`format_number`). A missing file or
key is a build error, never a guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from skinlib.evaluation.report import signed, signed_interval

#: The headline numbers shown per source: (label, key path inside the JSON). Missing keys are left out.
UNET_NUMBERS = [
    ("validation Dice (mean)", "val.dice_mean"),
    ("test Dice (mean)", "test.dice_mean"),
    ("test thresholded Jaccard (mean)", "test.thresholded_jaccard_mean"),
    ("classical masks, test Dice (mean)", "classical_test.dice_mean"),
]
CLASSIFIER_NUMBERS = [
    ("validation balanced accuracy", "val.plain.balanced_accuracy"),
    ("test balanced accuracy", "test.plain.balanced_accuracy"),
    ("test macro ROC AUC", "test.plain.macro_roc_auc"),
    ("test expected calibration error", "test.plain.expected_calibration_error"),
    ("temperature (fitted on validation)", "temperature"),
    ("test balanced accuracy with 8-view TTA", "test.tta.balanced_accuracy"),
]
#: The post-hoc fits recorded in the classifier's metrics.json: (section key, title, numbers inside it).
CLASSIFIER_FITS = [
    (
        "melanoma_referral",
        "Melanoma referral flag",
        [
            ("threshold on P(mel), fitted on validation", "plain.threshold"),
            ("validation sensitivity", "plain.val.sensitivity"),
            ("test sensitivity", "plain.test.sensitivity"),
            ("test specificity", "plain.test.specificity"),
            ("test referral rate", "plain.test.referral_rate"),
        ],
    ),
    (
        "metadata_fusion",
        "Patient metadata fusion",
        [
            ("fusion weight, fitted on validation", "plain.weight"),
            ("test balanced accuracy, image alone", "plain.test.image_only.balanced_accuracy"),
            ("test balanced accuracy, image and metadata", "plain.test.fused.balanced_accuracy"),
        ],
    ),
    (
        "tta_augmented",
        "Augmented test-time augmentation",
        [
            ("temperature, fitted on validation", "temperature"),
            ("test balanced accuracy, one view", "test.plain.balanced_accuracy"),
            ("test balanced accuracy, augmented views", "test.tta_augmented.balanced_accuracy"),
        ],
    ),
    (
        "class_prior",
        "Class prior correction",
        [
            ("test class-wise calibration error, as trained", "test.as_trained.classwise_calibration_error"),
            ("test class-wise calibration error, training prior", "test.training_prior.classwise_calibration_error"),
            ("test balanced accuracy, training prior", "test.training_prior.balanced_accuracy"),
        ],
    ),
    (
        "novelty",
        "Novelty check",
        [
            ("threshold", "threshold"),
            ("validation flag rate", "val_flag_rate"),
            ("test flag rate", "test_flag_rate"),
            ("share of non-dermoscopy pictures flagged", "unusual_flag_rate"),
        ],
    ),
]


@dataclass
class Entry:
    """One source of numbers: what it is, where it is kept, the command that wrote it, and its cost."""

    title: str
    file: str
    key: str  # the section of the file, "" for the whole file
    command: str | None
    seconds: float | None
    seconds_field: str  # the JSON field the time was read from
    numbers: list[tuple[str, str, object]] = field(default_factory=list)  # (label, key path, value)


# ------------------------------------------------------------------------------------------- reading


def dig(data, path: str):
    """The value at a dotted key path, or None when any step is missing."""
    for step in path.split("."):
        if not isinstance(data, dict) or step not in data:
            return None
        data = data[step]
    return data


def key_path(*steps: str) -> str:
    """Steps joined with dots; a step with a space is written as `["strong cool"]`."""
    text = ""
    for step in steps:
        text += f'["{step}"]' if " " in step else (f".{step}" if text else step)
    return text


def read_numbers(data: dict, spec: list[tuple[str, str]], prefix: str = "") -> list[tuple[str, str, object]]:
    """(label, full key path, value) for each spec entry the data holds."""
    found = []
    for label, path in spec:
        value = dig(data, path)
        if value is not None:
            found.append((label, f"{prefix}{path}", value))
    return found


def display_path(path: Path) -> str:
    """A shipped file as the repository names it, wherever the package is installed."""
    from skinlib.shipped import SHIPPED

    return f"skinlib/shipped/{Path(path).resolve().relative_to(SHIPPED).as_posix()}"


def model_entries(unet: dict, classifier: dict, unet_file: str, classifier_file: str) -> list[Entry]:
    """The two shipped models, then every post-hoc fit recorded beside the classifier's scores."""
    entries = [
        Entry(
            "U-Net segmentation (stage 1)",
            unet_file,
            "",
            unet.get("command"),
            unet.get("train_seconds"),
            "train_seconds",
            read_numbers(unet, UNET_NUMBERS),
        ),
        Entry(
            "Classifier (stage 2)",
            classifier_file,
            "",
            classifier.get("command"),
            classifier.get("train_seconds"),
            "train_seconds",
            read_numbers(classifier, CLASSIFIER_NUMBERS),
        ),
    ]
    for key, title, spec in CLASSIFIER_FITS:
        section = classifier.get(key)
        if isinstance(section, dict):
            entries.append(
                Entry(
                    title,
                    classifier_file,
                    key,
                    section.get("command"),
                    section.get("seconds"),
                    "seconds",
                    read_numbers(section, spec, prefix=f"{key}."),
                )
            )
    return entries


def colour_cast_entry(casts: dict, file: str) -> Entry:
    """The colour-cast study: per model, test balanced accuracy without a cast and under the worst one."""
    numbers = []
    for name, model in (casts.get("models") or {}).items():
        scores = {cast: result.get("balanced_accuracy") for cast, result in (model.get("test") or {}).items()}
        scores = {cast: value for cast, value in scores.items() if value is not None}
        if "none" in scores:
            numbers.append(
                (
                    f"{name}: test balanced accuracy, no cast",
                    key_path("models", name, "test", "none", "balanced_accuracy"),
                    scores["none"],
                )
            )
        worst = min((cast for cast in scores if cast != "none"), key=scores.get, default=None)
        if worst is not None:
            numbers.append(
                (
                    f"{name}: test balanced accuracy, worst cast ({worst})",
                    key_path("models", name, "test", worst, "balanced_accuracy"),
                    scores[worst],
                )
            )
    return Entry("Colour casts", file, "", casts.get("command"), casts.get("seconds"), "seconds", numbers)


def _recorded_seconds(result: dict) -> tuple[float | None, str]:
    """A benchmark's own time: a top-level seconds field, else the sum of its epochs' `train_seconds`."""
    for name in ("total_seconds", "seconds", "train_seconds"):
        if isinstance(result.get(name), (int, float)):
            return float(result[name]), name
    epochs = [step["train_seconds"] for step in result.get("history") or [] if "train_seconds" in step]
    if epochs:
        return float(sum(epochs)), "history[].train_seconds, summed"
    return None, ""


def benchmark_entry(name: str, result: dict) -> Entry:
    """One benchmark result: every top-level number it recorded (they are what it measures)."""
    numbers = [
        (key, key, value)
        for key, value in result.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    seconds, seconds_field = _recorded_seconds(result)
    return Entry(
        name.replace("_", " ").capitalize(),
        f"benchmarks/results/{name}.json",
        "",
        result.get("command"),
        seconds,
        seconds_field,
        numbers,
    )


# ------------------------------------------------------------------------------------------ Markdown


def format_number(value) -> str:
    """Numbers as the book shows them: counts whole, scores (below 1) to three decimals, the rest to one."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def format_duration(seconds: float | None) -> str:
    """Seconds, minutes or hours, whichever reads best; 'not recorded' when the run kept no time."""
    if seconds is None:
        return "not recorded"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def entry_markdown(entry: Entry) -> str:
    """A bold title with the file (and section), the command as a block, the time, then the numbers."""
    where = f"`{entry.file}`" + (f", section `{entry.key}`" if entry.key else "")
    parts = [f"**{entry.title}**: {where}."]
    if entry.command:
        parts.append(f"```bash\n{entry.command}\n```")
    else:
        parts.append("No command recorded in the file.")
    time = format_duration(entry.seconds)
    parts.append(f"Time: {time}" + (f" (`{entry.seconds_field}`)." if entry.seconds is not None else "."))
    if entry.numbers:
        parts.append("\n".join(f"- {label}: {format_number(value)} (`{path}`)" for label, path, value in entry.numbers))
    return "\n\n".join(parts) + "\n"


def entries_markdown(entries: list[Entry]) -> str:
    return "\n".join(entry_markdown(entry) for entry in entries)


def common_row_command(rows: list[dict]) -> str | None:
    """The one command all ablation rows share with their name swapped for ROW, or None if they differ."""
    templates = {row.get("command", "").replace(row["name"], "ROW") for row in rows}
    return templates.pop() if len(templates) == 1 and rows and "ROW" in next(iter(templates)) else None


def _difference(row: dict, baseline: str | None) -> str:
    if row["name"] == baseline:
        return "(the baseline)"
    change = dig(row, "test_minus_baseline.balanced_accuracy")
    if not isinstance(change, dict) or change.get("difference") is None:
        return "–"
    low, high = change.get("ci95") or (None, None)
    text = signed(change["difference"])
    if low is not None and high is not None:
        text = signed_interval(change["difference"], low, high)
    return text + (" (images)" if change.get("bootstrap_unit") == "images" else "")


def _score(row: dict, split: str) -> str:
    value = dig(row, f"{split}.balanced_accuracy")
    return format_number(value) if value is not None else "–"


def _external(row: dict, collection: str) -> str:
    scores = (row.get("external") or {}).get(collection)
    if scores is None:
        return "–"
    if "not_applicable" in scores:
        return "n/a"
    return format_number(scores["balanced_accuracy_restricted"])


def ablation_markdown(ablation: dict, file: str) -> str:
    """The study's rows as one table: scores, the test change against the baseline, the command and the time."""
    rows = ablation.get("rows") or []
    template = common_row_command(rows)
    lines = []
    if template:
        intro = (
            f"Every row is reproduced by the command the file records for it, `{template}` with the row's "
            f"name for ROW; its `train_command` field holds the `skinlib train-classifier` command behind it. "
            f"The numbers are in `{file}`, section `rows`."
        )
        lines += [intro, ""]
    collections = (ablation.get("external") or {}).get("collections", [])
    header = "| row | val balanced accuracy | test balanced accuracy | test − baseline [95 % CI] |"
    header += "".join(f" {name} (classes present) |" for name in collections) + " training | total |"
    lines += [header, "|---|---|---|---|" + "---|" * len(collections) + "---|---|"]
    baseline = ablation.get("baseline")
    for row in rows:
        name = f"`{row['name']}`" if template else f"`{row['name']}`: `{row.get('command', '')}`"
        lines.append(
            f"| {name} | {_score(row, 'val')} | {_score(row, 'test')} | {_difference(row, baseline)} | "
            + "".join(f"{_external(row, collection)} | " for collection in collections)
            + f"{format_duration(row.get('train_seconds'))} | {format_duration(row.get('total_seconds'))} |"
        )
    if collections:
        lines += [
            "",
            f"*{', '.join(collections)}*: balanced accuracy on that external collection, restricted to the classes it "
            "holds (`rows[].external`), scored after every choice and never read by the replacement rule; n/a: the "
            "row needs metadata the collection lacks; –: not scored.",
        ]
    legend = (
        "*training*: the row's `train_seconds` (of the model it trains or reuses); *total*: its "
        "`total_seconds` (training and scoring), not recorded for rows that reuse an existing model. "
        "*(images)*: an interval that still resamples images, not lesions."
    )
    lines += ["", legend]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- sources


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def section_markdown(section: str, srcdir) -> tuple[str, list[Path]]:
    """The Markdown for one part of the page and the files it read (the page depends on them)."""
    from book_sources import benchmark_results

    from skinlib.shipped import ABLATION_RESULTS, CLASSIFIER, COLOUR_CAST_RESULTS, UNET

    if section == "models":
        files = [UNET / "metrics.json", CLASSIFIER / "metrics.json"]
        unet, classifier = (load_json(path) for path in files)
        return entries_markdown(model_entries(unet, classifier, *(display_path(path) for path in files))), files
    if section == "ablation":
        return ablation_markdown(load_json(ABLATION_RESULTS), display_path(ABLATION_RESULTS)), [ABLATION_RESULTS]
    if section == "colour-casts":
        casts = load_json(COLOUR_CAST_RESULTS)
        return entry_markdown(colour_cast_entry(casts, display_path(COLOUR_CAST_RESULTS))), [COLOUR_CAST_RESULTS]
    if section == "benchmarks":
        folder = benchmark_results(srcdir)
        if folder is None:
            return "No `benchmarks/results` folder beside this book: the benchmarks live in the repository.\n", []
        files = sorted(folder.glob("*.json"))
        return entries_markdown([benchmark_entry(path.stem, load_json(path)) for path in files]), files
    raise ValueError(f"unknown section {section!r}: models, ablation, colour-casts or benchmarks")


SECTIONS = ("models", "ablation", "colour-casts", "benchmarks")


# ------------------------------------------------------------------------------------------ the role


def dig_value(data, path: str):
    """The value at a dotted key path; a step into a list is an index or an item's `name`. KeyError says where
    the path stops."""
    for step in path.split("."):
        if isinstance(data, dict) and step in data:
            data = data[step]
        elif isinstance(data, list) and step.lstrip("-").isdigit() and -len(data) <= int(step) < len(data):
            data = data[int(step)]
        elif isinstance(data, list) and any(isinstance(item, dict) and item.get("name") == step for item in data):
            data = next(item for item in data if isinstance(item, dict) and item.get("name") == step)
        else:
            raise KeyError(f"no {step!r} in {path!r}")
    return data


def format_value(value, spec: str = "") -> str:
    """A value as the book shows it: `spec` a format spec ("85 %" for one ending in %), "duration", or ""."""
    if not spec:
        return format_number(value)
    if spec == "duration":
        return format_duration(value)
    if spec.endswith("%"):
        return f"{100 * value:{spec[:-1] or '.0'}f} %"
    signed_digits = re.fullmatch(r"\+\.(\d)f", spec)
    if signed_digits:  # a difference: one that rounds to zero reads "±0.000", not "-0.000"
        return signed(value, int(signed_digits.group(1)))
    return f"{value:{spec}}"


def shipped_file(name: str, srcdir) -> Path:
    """The JSON file a role names: under skinlib/shipped, benchmarks/results or the skinlib package."""
    from book_sources import benchmark_results

    from skinlib.shipped import SHIPPED

    if name.startswith("benchmarks/results/"):
        folder = benchmark_results(srcdir)
        if folder is None:
            raise FileNotFoundError(f"{name}: no benchmarks/results folder beside this book")
        return folder / name.removeprefix("benchmarks/results/")
    if name.startswith("skinlib/"):
        return SHIPPED.parent / name.removeprefix("skinlib/")
    return SHIPPED / name


def shipped_text(spec: str, srcdir) -> tuple[str, Path]:
    """`FILE:KEY[:FORMAT]` -> the formatted value and the file read (see the module's docstring)."""
    parts = spec.strip().split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"{spec!r}: write FILE:KEY or FILE:KEY:FORMAT")
    path = shipped_file(parts[0], srcdir)
    if not path.is_file():
        raise FileNotFoundError(f"{spec!r}: {path} does not exist")
    return format_value(dig_value(load_json(path), parts[1]), parts[2] if len(parts) == 3 else ""), path


# ---------------------------------------------------------------------------------------------- Sphinx


def shipped_role():
    """The `shipped` role class: the value as text; a bad file, key or format is a build error on that line."""
    from docutils import nodes
    from sphinx.util.docutils import SphinxRole

    class ShippedRole(SphinxRole):
        def run(self):
            try:
                text, path = shipped_text(self.text, self.env.srcdir)
            except (OSError, KeyError, ValueError, TypeError) as error:
                message = self.inliner.reporter.error(f"shipped: {error}", line=self.lineno)
                return [self.inliner.problematic(self.rawtext, self.rawtext, message)], [message]
            for dependency in (path, Path(__file__)):
                self.env.note_dependency(str(dependency))
            return [nodes.inline(self.rawtext, text, classes=["shipped-number"])], []

    return ShippedRole()


def setup(app):
    """Register `{shipped-numbers}` and `{shipped}`; a page using one is reread when a file it read changes."""
    from book_sources import register_markdown_directive

    metadata = register_markdown_directive(  # puts the book's checkout first on the path
        app, "shipped-numbers", lambda srcdir, section: section_markdown(section, srcdir), __file__, arguments=SECTIONS
    )
    app.add_role("shipped", shipped_role())
    return metadata
