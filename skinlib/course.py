"""What the course notebooks share, so that each page shows the code that teaches and not the plumbing:
samples of a split, the shipped results and benchmarks, the project's targets and headline scores.

The notebooks live in a checkout (`notebooks/`, listed in `_toc.yml`); this module reads the shipped JSON
from the installed package and the benchmarks from the checkout.
"""

from __future__ import annotations

import json
import operator
from pathlib import Path

import pandas as pd

from .shipped import ABLATION_RESULTS, CLASSIFIER, COLOUR_CAST_RESULTS, UNET
from .workflows.ablation import ECE_TARGET, chosen_tta_row

#: The repository root (benchmarks/ and notebooks/ exist only in a checkout).
REPO = Path(__file__).resolve().parent.parent
BENCHMARK_RESULTS = REPO / "benchmarks" / "results"

#: The shipped result files a chapter reads, and the command that writes each.
SHIPPED_RESULTS = {
    "unet_metrics": (UNET / "metrics.json", "skinlib train-unet"),
    "classifier_metrics": (CLASSIFIER / "metrics.json", "skinlib train-classifier"),
    "ablation": (ABLATION_RESULTS, "skinlib ablate"),
    "colour_casts": (COLOUR_CAST_RESULTS, "skinlib colour-casts"),
}


def shipped_result(name: str) -> dict:
    """One shipped result file (a key of `SHIPPED_RESULTS`), read; a missing file names its command."""
    if name not in SHIPPED_RESULTS:
        raise KeyError(f"unknown shipped result {name!r}; choose from {', '.join(SHIPPED_RESULTS)}")
    path, command = SHIPPED_RESULTS[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: `{command}` writes it (see the reproduce page of the book)")
    return json.loads(path.read_text())


def benchmark_results() -> dict[str, dict]:
    """Every benchmark's recorded result ({name: JSON}), from `benchmarks/results/` of the checkout."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(BENCHMARK_RESULTS.glob("*.json"))}


def split_sample(frame: pd.DataFrame, split: str, n: int | None, seed: int = 0) -> pd.DataFrame:
    """The images of one split, or (quick mode) a stratified sample of about `n` of them in which every class
    keeps its share of the split; sorted by image id, so a rerun draws the same images."""
    part = frame[frame["split"] == split]
    if n is not None and n < len(part):
        part = part.groupby("dx").sample(frac=n / len(part), random_state=seed)
    return part.sort_values("image_id").reset_index(drop=True)


def headline(scores: dict) -> dict:
    """The five numbers a results table shows for one split's classification report."""
    return {
        "balanced accuracy": scores["balanced_accuracy"],
        "accuracy": scores["accuracy"],
        "macro ROC AUC": scores["macro_roc_auc"],
        "melanoma recall": scores["per_class"]["mel"]["recall"],
        "ECE (calibrated)": scores["expected_calibration_error"],
    }


#: The project's targets for the test split: (area, measure, comparison, target).
TARGETS = (
    ("stage 2", "balanced accuracy", ">=", 0.80),
    ("stage 2", "macro ROC AUC", ">=", 0.95),
    ("stage 2", "melanoma recall", ">=", 0.75),
    ("calibration", "ECE after temperature scaling", "<=", ECE_TARGET),
    ("speed", "predict, ms per image", "<", 100),
    ("speed", "predict with TTA, ms per image", "<", 400),
    ("speed", "predict with augmented TTA (16 views), ms per image", "<", 400),
    ("TTA", "balanced accuracy gain of the TTA chosen on validation, lower end of the 95 % CI", ">", 0.0),
)
_COMPARE = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}


def measured_for_targets(classifier_metrics: dict, benchmarks: dict, ablation: dict | None) -> dict:
    """The measured value of each target's measure (None where its file is missing)."""
    test = classifier_metrics["test"]["plain"]
    latency = benchmarks.get("predict_latency", {})
    tta_row = chosen_tta_row(ablation) if ablation is not None else None
    return {
        "balanced accuracy": test["balanced_accuracy"],
        "macro ROC AUC": test["macro_roc_auc"],
        "melanoma recall": test["per_class"]["mel"]["recall"],
        "ECE after temperature scaling": test["expected_calibration_error"],
        "predict, ms per image": latency.get("predict_ms"),
        "predict with TTA, ms per image": latency.get("predict_tta_ms"),
        "predict with augmented TTA (16 views), ms per image": latency.get("predict_tta_augmented_ms"),
        "balanced accuracy gain of the TTA chosen on validation, lower end of the 95 % CI": None
        if tta_row is None
        else tta_row["test_minus_baseline"]["balanced_accuracy"]["ci95"][0],
    }


def targets_table(classifier_metrics: dict, benchmarks: dict, ablation: dict | None) -> pd.DataFrame:
    """The targets beside what was measured, and whether each is met (a measure with no result is left out)."""
    measured = measured_for_targets(classifier_metrics, benchmarks, ablation)
    rows = [
        {
            "area": area,
            "measure": measure,
            "measured": round(float(measured[measure]), 3),
            "target": f"{op} {target:g}",
            "met": bool(_COMPARE[op](measured[measure], target)),
        }
        for area, measure, op, target in TARGETS
        if measured[measure] is not None
    ]
    return pd.DataFrame(rows)


def interval_verdict(
    ci95, up: str = "helped", down: str = "hurt", neither: str = "no difference the split can resolve"
):
    """The word a sentence needs for a difference with a 95 % interval, so that prose follows the numbers:
    `up` when the whole interval lies above 0, `down` when below, `neither` when it contains 0."""
    low, high = ci95
    if low > high:
        raise ValueError(f"an interval runs from low to high, not {low} to {high}")
    return up if low > 0 else down if high < 0 else neither


def round_robin_sample(part: pd.DataFrame, n: int, by: str = "dx") -> pd.DataFrame:
    """`n` rows taken one per group in turn (first row of each group by image id, then the second, ...), so a
    handful of images shows every class before any class twice."""
    ordered = part.sort_values("image_id")
    turn = ordered.groupby(by).cumcount()
    picked = turn.sort_values(kind="stable").index[:n]
    return ordered.loc[picked].reset_index(drop=True)


def write_chapter_json(path, result: dict) -> Path:
    """A chapter's numbers as indented JSON (numpy scalars as floats), for the pipeline and the results page."""
    path = Path(path)
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    return path
