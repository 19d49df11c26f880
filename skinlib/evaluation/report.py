"""The full evaluation report of the classifier: figures, tables and confidence intervals.

Why intervals: a test split of HAM10000 has a few dozen dermatofibromas and vascular lesions, so a
balanced accuracy of 0.80 can easily be 0.75 or 0.85 on another draw; a difference between two models
means little until its interval excludes 0. Intervals are percentile bootstraps with a fixed seed, so a
report is reproducible to the last digit.

Why lesions: HAM10000 photographs many lesions several times, and images of one lesion are not
independent draws; a bootstrap that resamples images treats them as if they were and gives intervals
that are too narrow. Given `groups` (the lesion id of every image), every interval and standard error
here resamples *lesions*, each drawn lesion bringing all its images; without them (a folder with no
lesion ids) it resamples images. Every result says which (`bootstrap_unit`).

Undefined numbers (the recall of a class with no samples, an AUC without positives...) are NaN in the
returned dict, as in `classification_report_dict`; `report.json` is strict JSON and writes NaN (and
the +inf threshold, "call nothing positive") as null; `report.md` shows "n/a" and "inf".

Figures are drawn on `matplotlib.figure.Figure` objects, which always render with the non-interactive
Agg backend and are never registered with pyplot. Why not pyplot: `matplotlib.use("Agg")` would
change the backend of the notebook that called us, and pyplot keeps figures alive until closed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from scipy.stats import norm, rankdata
from sklearn.metrics import precision_recall_curve, roc_curve

from ..data.classes import CLASSES, DISPLAY_NAMES
from .calibration import classwise_calibration_error
from .classification import (
    balanced_accuracy,
    check_labels,
    check_probabilities,
    classification_report_dict,
    confusion_matrix,
    expected_calibration_error,
    reliability_bins,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)
from .referral import referral_scores
from .subset import AS_IS, nan_to_none, present_indices, reading_titles, restrict_probabilities, subset_readings

__all__ = [
    "FIGURES",
    "RESTRICTED_FIGURES",
    "Interval",
    "PairedDifference",
    "bootstrap_ci",
    "macro_roc_auc",
    "melanoma_operating_points",
    "paired_bootstrap_difference",
    "headline_scores",
    "paired_gains",
    "write_report",
    "bootstrap_unit",
    "count_units",
    "detectable_gain",
    "units_to_detect",
]

#: Figure files written by `write_report`, each as .png and .svg.
FIGURES = ("roc", "precision_recall", "confusion_matrix", "confusion_matrix_normalised", "reliability")
#: The same figures of the reading restricted to the classes present, written when the labels lack some classes.
RESTRICTED_FIGURES = tuple(f"{name}_restricted" for name in FIGURES)
#: (kind, target) of the melanoma operating points: what a triage setting would fix in advance.
OPERATING_POINTS = (
    ("sensitivity_at_specificity", 0.80),
    ("sensitivity_at_specificity", 0.90),
    ("specificity_at_sensitivity", 0.95),
)
MELANOMA = "mel"


# --------------------------------------------------------------------------- bootstrap


class Interval(NamedTuple):
    low: float
    high: float


class PairedDifference(NamedTuple):
    """metric(b) - metric(a) on the full data, and its bootstrap interval."""

    difference: float
    low: float
    high: float


def signed(value: float, digits: int = 3) -> str:
    """A difference with its sign, "+0.012" or "-0.034"; one that rounds to zero reads "±0.000" rather than a
    "-0.000" that looks like a loss."""
    text = f"{value:+.{digits}f}"
    return "±" + text[1:] if float(text) == 0 else text


def signed_interval(difference: float, low: float, high: float, digits: int = 3) -> str:
    """A paired difference with its 95 % interval, as every table of the course prints it: "+0.012 [-0.004, +0.030]"."""
    return f"{signed(difference, digits)} [{signed(low, digits)}, {signed(high, digits)}]"


def binary_roc_auc(positive, scores) -> float:
    """ROC AUC as the Mann-Whitney statistic: the chance that a random positive outscores a random negative,
    ties counting half. Equal to sklearn's `roc_auc_score`, without its input checks: a bootstrap calls it
    tens of thousands of times, where those checks cost a hundred times the arithmetic."""
    positive = np.asarray(positive, bool)
    n_positive = int(np.count_nonzero(positive))
    n_negative = len(positive) - n_positive
    if n_positive == 0 or n_negative == 0:
        raise ValueError("ROC AUC needs at least one positive and one negative sample")
    ranks = rankdata(np.asarray(scores, np.float64))
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def macro_roc_auc(y_true, probs) -> float:
    """One-vs-rest ROC AUC averaged over classes with positives and negatives (NaN if none)."""
    labels = np.asarray(y_true)
    probs = np.asarray(probs)
    aucs = [
        binary_roc_auc(labels == k, probs[:, k])
        for k in range(probs.shape[1])
        if 0 < np.count_nonzero(labels == k) < len(labels)
    ]
    return float(np.mean(aucs)) if aucs else float("nan")


def bootstrap_unit(groups) -> str:
    """ "lesions" when the images' lesion ids are given (what is resampled), else "images"."""
    return "images" if groups is None else "lesions"


def _check_groups(groups, n_samples: int):
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.shape != (n_samples,):
        raise ValueError(
            f"groups must give one lesion id per image: {groups.shape[0] if groups.ndim else 0} ids "
            f"for {n_samples} images"
        )
    if _missing_ids(groups).any():
        raise ValueError(
            "groups holds missing lesion ids; give every image its lesion id, or none (images are then resampled)"
        )
    return groups


def _missing_ids(values) -> np.ndarray:
    """Missing entries of an id array (None or NaN), whatever its dtype."""
    return np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values.tolist()], bool)


def _resamples(n_samples: int, n: int, seed: int, groups=None):
    """n index arrays drawn with replacement; the same seed gives the same draws for every metric.

    Without `groups`, images are drawn. With them, as many lesions as there are are drawn with replacement,
    and each draw holds all the images of the lesions drawn (a lesion drawn twice, twice), so a draw's size
    varies around `n_samples` as the number of images per lesion does.
    """
    rng = np.random.default_rng(seed)
    groups = _check_groups(groups, n_samples)
    if groups is None:
        for _ in range(int(n)):
            yield rng.integers(0, n_samples, n_samples)
        return
    _, codes = np.unique(groups, return_inverse=True)
    order = np.argsort(codes, kind="stable")  # the images of lesion k: order[starts[k] : starts[k] + counts[k]]
    counts = np.bincount(codes)
    starts = np.cumsum(counts) - counts
    for _ in range(int(n)):
        drawn = rng.integers(0, len(counts), len(counts))
        lengths = counts[drawn]
        ends = np.cumsum(lengths)
        positions = np.arange(ends[-1]) - np.repeat(ends - lengths, lengths) + np.repeat(starts[drawn], lengths)
        yield order[positions]


def count_units(groups, n_samples: int) -> int:
    """How many independent units a bootstrap resamples: lesions if known, else images."""
    return n_samples if groups is None else int(len(np.unique(np.asarray(groups))))


def _percentiles(values, alpha: float) -> tuple[float, float]:
    """(alpha/2, 1 - alpha/2) percentiles ignoring NaN draws (e.g. a resample without a class)."""
    values = np.asarray(values, np.float64)
    if not np.any(np.isfinite(values)):
        return float("nan"), float("nan")
    low, high = np.nanpercentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def bootstrap_ci(
    metric_fn: Callable, y_true, probs, n: int = 1000, seed: int = 0, alpha: float = 0.05, groups=None
) -> Interval:
    """Percentile bootstrap (1 - alpha) interval of metric_fn(y_true, probs), resampling lesions when
    `groups` gives each image's lesion id, images otherwise.

    Draws where the metric is undefined (NaN) are left out; all NaN gives (NaN, NaN).
    """
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    values = [metric_fn(y_true[i], probs[i]) for i in _resamples(len(y_true), n, seed, groups)]
    return Interval(*_percentiles(values, alpha))


def paired_bootstrap_difference(
    metric_fn: Callable, y_true, probs_a, probs_b, n: int = 1000, seed: int = 0, alpha: float = 0.05, groups=None
) -> PairedDifference:
    """metric(probs_b) - metric(probs_a), e.g. the gain of TTA (b) over single crops (a), with its interval.

    Paired: both predictions are scored on the *same* resampled lesions (`groups`) or images, so the
    variation common to both cancels and the interval is far narrower than comparing two separate
    intervals. The first value is the difference on the full data (the point estimate, not the
    bootstrap mean); identical inputs give exactly (0, 0, 0).
    """
    differences = _paired_draws(metric_fn, y_true, probs_a, probs_b, n, seed, groups)
    point = float(metric_fn(y_true, probs_b) - metric_fn(y_true, probs_a))
    return PairedDifference(point, *_percentiles(differences, alpha))


def _paired_draws(metric_fn: Callable, y_true, probs_a, probs_b, n: int, seed: int, groups=None) -> np.ndarray:
    """metric(b) - metric(a) on each of n paired resamples of the lesions (`groups`) or images."""
    y_true, probs_a, probs_b = np.asarray(y_true), np.asarray(probs_a), np.asarray(probs_b)
    if probs_a.shape != probs_b.shape:
        raise ValueError(f"probs_a and probs_b differ in shape: {probs_a.shape} vs {probs_b.shape}")
    return np.array(
        [
            metric_fn(y_true[i], probs_b[i]) - metric_fn(y_true[i], probs_a[i])
            for i in _resamples(len(y_true), n, seed, groups)
        ],
        np.float64,
    )


def paired_gains(y_true, reference, probs, n: int = 1000, seed: int = 0, groups=None) -> dict:
    """Balanced accuracy and macro AUC of `probs` minus `reference` on the same images, each with its paired
    bootstrap 95 % interval and standard error: how a comparison (an ablation row, metadata fusion) reports a
    change. The standard error says how large a change this sample could detect (`detectable_gain`); each
    entry names what was resampled (`bootstrap_unit`, lesions when `groups` gives them) and how many."""
    units = {"bootstrap_unit": bootstrap_unit(groups), "units": count_units(groups, len(np.asarray(y_true)))}
    gains = {}
    for name, metric in (("balanced_accuracy", balanced_accuracy), ("macro_roc_auc", macro_roc_auc)):
        draws = _paired_draws(metric, y_true, reference, probs, n, seed, groups)
        point = float(metric(y_true, probs) - metric(y_true, reference))
        gains[name] = {
            "difference": point,
            "ci95": list(_percentiles(draws, 0.05)),
            "standard_error": float(np.nanstd(draws, ddof=1)),
            **units,
        }
    return gains


def _z_sum(alpha: float, power: float) -> float:
    return float(norm.ppf(1 - alpha / 2) + norm.ppf(power))


def detectable_gain(standard_error: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true change that a paired comparison with this bootstrap standard error finds (its 95 %
    interval clear of 0) with probability `power`: (z_{1-alpha/2} + z_power) x SE, about 2.8 SE."""
    return _z_sum(alpha, power) * standard_error


def units_to_detect(gain: float, standard_error: float, n_units: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """About how many independent units (lesions, or images where lesions are unknown; of the same mix) a
    comparison needs to detect a true change of `gain` with probability `power`, given its standard error on
    `n_units` of them: the error shrinks as 1/sqrt(units). Infinite for a gain of 0 or below (nothing to
    detect)."""
    if gain <= 0:
        return float("inf")
    return n_units * (detectable_gain(standard_error, alpha, power) / gain) ** 2


# --------------------------------------------------------------------------- numbers


def headline_scores(y_true, probs, classes: Sequence[str] = CLASSES) -> dict:
    """The numbers a comparison table shows: balanced and plain accuracy, macro AUC, melanoma recall,
    ECE and the recall of every class."""

    report = classification_report_dict(y_true, probs, classes)
    return {
        "balanced_accuracy": report["balanced_accuracy"],
        "accuracy": report["accuracy"],
        "macro_roc_auc": report["macro_roc_auc"],
        "melanoma_recall": report["per_class"][MELANOMA]["recall"],
        "expected_calibration_error": report["expected_calibration_error"],
        "recall": {code: report["per_class"][code]["recall"] for code in classes},
    }


def melanoma_operating_points(y_true, probs, classes: Sequence[str] = CLASSES) -> dict:
    """Melanoma-vs-rest sensitivity at 80/90 % specificity and specificity at 95 % sensitivity.

    Keys like "sensitivity_at_specificity_0.80" -> {"value", "threshold"} on probs[:, mel].
    NaN values when melanoma is absent or is every sample (no trade-off exists); {} without a
    "mel" class.
    """
    classes = list(classes)
    if MELANOMA not in classes:
        return {}
    positive = np.asarray(y_true) == classes.index(MELANOMA)
    scores = np.asarray(probs)[:, classes.index(MELANOMA)]
    functions = {
        "sensitivity_at_specificity": sensitivity_at_specificity,
        "specificity_at_sensitivity": specificity_at_sensitivity,
    }
    points = {}
    for kind, target in OPERATING_POINTS:
        defined = positive.any() and not positive.all()
        value, threshold = functions[kind](positive, scores, target) if defined else (math.nan, math.nan)
        points[f"{kind}_{target:.2f}"] = {"value": float(value), "threshold": float(threshold)}
    return points


def _intervals(labels, probs, numbers, bootstrap, seed, groups) -> dict:
    return {
        name: {"estimate": numbers[name], **bootstrap_ci(fn, labels, probs, bootstrap, seed, groups=groups)._asdict()}
        for name, fn in (("balanced_accuracy", balanced_accuracy), ("macro_roc_auc", macro_roc_auc))
    }


def _report_numbers(labels, probs, classes, probs_uncalibrated, bootstrap, seed, groups=None) -> dict:
    numbers = classification_report_dict(labels, probs, classes)
    numbers["confusion_matrix_normalised"] = confusion_matrix(
        labels, probs.argmax(axis=1), "true", len(classes)
    ).tolist()
    numbers["melanoma_operating_points"] = melanoma_operating_points(labels, probs, classes)
    numbers["confidence_intervals"] = _intervals(labels, probs, numbers, bootstrap, seed, groups)
    unit = bootstrap_unit(groups)
    numbers["bootstrap"] = {
        "resamples": int(bootstrap),
        "seed": int(seed),
        "level": 0.95,
        "unit": unit,
        "units": count_units(groups, len(labels)),
        "method": f"percentile, resampling {unit}"
        + (" (all images of a drawn lesion together)" if groups is not None else ""),
    }
    if groups is not None:  # what an image-level bootstrap would claim, for comparison: too narrow
        numbers["confidence_intervals_image_level"] = _intervals(labels, probs, numbers, bootstrap, seed, None)
    numbers["classwise_calibration_error"] = classwise_calibration_error(labels, probs)["mean"]
    if probs_uncalibrated is not None:
        numbers["expected_calibration_error_uncalibrated"] = expected_calibration_error(labels, probs_uncalibrated)
        numbers["classwise_calibration_error_uncalibrated"] = classwise_calibration_error(labels, probs_uncalibrated)[
            "mean"
        ]
    return numbers


def _subset_numbers(numbers, labels, probs, classes, present, probs_uncalibrated, bootstrap, seed, groups) -> dict:
    """`_report_numbers` of a collection lacking some classes: the 7-class answer as is under the same keys (rows
    of the classes present only; class-wise calibration over them), and `restricted_to_present_classes` with its
    own intervals and calibration (`skinlib.evaluation.subset`). NaN becomes None."""
    codes = [classes[k] for k in present]
    readings = subset_readings(labels, probs, codes, classes)
    as_is = readings["as_is"]
    numbers.update({key: value for key, value in as_is.items() if key != "predicted_absent"})
    numbers["confusion_matrix_normalised"] = [numbers["confusion_matrix_normalised"][k] for k in present]
    numbers["classwise_calibration_error"] = _classwise_mean(labels, probs, present)
    if probs_uncalibrated is not None:
        numbers["classwise_calibration_error_uncalibrated"] = _classwise_mean(labels, probs_uncalibrated, present)
    numbers["classes_present"], numbers["classes_absent"] = readings["classes_present"], readings["classes_absent"]
    numbers["predictions_to_absent_classes"] = as_is["predicted_absent"]

    restricted = readings["restricted_to_present_classes"]
    index = np.full(len(classes), -1)
    index[present] = np.arange(len(present))
    sub_labels, sub_probs = index[labels], restrict_probabilities(probs, present)
    restricted["confusion_matrix_normalised"] = confusion_matrix(
        sub_labels, sub_probs.argmax(axis=1), "true", len(present)
    ).tolist()
    restricted["confidence_intervals"] = _intervals(
        sub_labels, sub_probs, nan_to_none(restricted), bootstrap, seed, groups
    )
    restricted["classwise_calibration_error"] = classwise_calibration_error(sub_labels, sub_probs)["mean"]
    if probs_uncalibrated is not None:
        sub_uncalibrated = restrict_probabilities(probs_uncalibrated, present)
        restricted["expected_calibration_error_uncalibrated"] = expected_calibration_error(sub_labels, sub_uncalibrated)
        restricted["classwise_calibration_error_uncalibrated"] = classwise_calibration_error(
            sub_labels, sub_uncalibrated
        )["mean"]
    numbers["restricted_to_present_classes"] = restricted
    return nan_to_none(numbers)


def _classwise_mean(labels, probs, present) -> float:
    """Class-wise calibration error averaged over the classes `present`."""
    return float(np.mean([classwise_calibration_error(labels, probs)["per_class"][k] for k in present]))


# --------------------------------------------------------------------------- figures


def _save(figure: Figure, out_dir: Path, name: str) -> list[str]:
    files = []
    for suffix in ("png", "svg"):
        figure.savefig(out_dir / f"{name}.{suffix}", dpi=150, bbox_inches="tight")
        files.append(f"{name}.{suffix}")
    return files


def _one_vs_rest_figure(labels, probs, classes, per_class, curve: str, title: str, shown=None) -> Figure:
    """Per-class ROC (curve="roc") or precision-recall ("pr") curves, the reported area in the legend; `shown`:
    the classes drawn (default all)."""
    figure = Figure(figsize=(6, 5.5))
    ax = figure.subplots()
    for code in classes if shown is None else shown:
        k = classes.index(code)
        positive = labels == k
        area = per_class[code]["roc_auc" if curve == "roc" else "average_precision"]
        if area is None or math.isnan(area):
            ax.plot([], [], label=f"{code} (undefined: no positives or no negatives)")
        elif curve == "roc":
            fpr, tpr, _ = roc_curve(positive, probs[:, k])
            ax.plot(fpr, tpr, label=f"{code} (AUC {area:.3f})")
        else:
            precision, recall, _ = precision_recall_curve(positive, probs[:, k])
            ax.plot(recall, precision, drawstyle="steps-post", label=f"{code} (AP {area:.3f})")
    if curve == "roc":
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
        ax.set(xlabel="1 - specificity (false positive rate)", ylabel="sensitivity (true positive rate)")
    else:
        ax.set(xlabel="recall (sensitivity)", ylabel="precision")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(loc="lower right" if curve == "roc" else "lower left", fontsize=8)
    return figure


def _confusion_figure(matrix, classes, normalised: bool, title: str, rows=None) -> Figure:
    """Rows = true classes (`rows`, default all `classes`), columns = predicted `classes`."""
    rows = classes if rows is None else rows
    square = len(rows) == len(classes)
    figure = Figure(figsize=(6, 5) if square else (1.5 + 0.85 * len(classes), 2.0 + 0.6 * len(rows)))
    ax = figure.subplots()
    sns.heatmap(
        np.asarray(matrix, np.float64),
        annot=True,
        fmt=".2f" if normalised else ".0f",
        cmap="Blues",
        vmin=0,
        vmax=1 if normalised else None,
        square=square,
        ax=ax,
        xticklabels=classes,
        yticklabels=rows,
        cbar_kws={"shrink": 0.8},
    )
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return figure


def _reliability_figure(labels, probs, probs_uncalibrated, title: str) -> Figure:
    """Accuracy vs confidence per bin; the diagonal is perfect calibration."""
    figure = Figure(figsize=(5.5, 5.5))
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    series = (
        [("uncalibrated", probs_uncalibrated), ("calibrated", probs)]
        if probs_uncalibrated is not None
        else [("model", probs)]
    )
    eces = []
    for name, p in series:
        table = reliability_bins(labels, p)
        ece = expected_calibration_error(labels, p)
        eces.append(f"{name} {ece:.3f}")
        ax.plot(table["confidence"], table["accuracy"], "o-", label=f"{name} (ECE {ece:.3f})")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence (top-class probability)",
        ylabel="accuracy",
        title=f"{title}\nECE: {', '.join(eces)}",
    )
    ax.legend(loc="upper left", fontsize=8)
    return figure


def _write_figures(labels, probs, classes, probs_uncalibrated, numbers, out_dir, title, rows=None, suffix="") -> dict:
    """The FIGURES (names + `suffix`); `rows`: the true classes shown (curves, confusion rows), default all."""
    figures = {
        "roc": _one_vs_rest_figure(
            labels, probs, classes, numbers["per_class"], "roc", f"{title}: ROC, one vs rest", rows
        ),
        "precision_recall": _one_vs_rest_figure(
            labels, probs, classes, numbers["per_class"], "pr", f"{title}: precision-recall", rows
        ),
        "confusion_matrix": _confusion_figure(
            numbers["confusion_matrix"], classes, False, f"{title}: confusion matrix (counts)", rows
        ),
        "confusion_matrix_normalised": _confusion_figure(
            numbers["confusion_matrix_normalised"], classes, True, f"{title}: confusion matrix (rows = recall)", rows
        ),
        "reliability": _reliability_figure(labels, probs, probs_uncalibrated, f"{title}: reliability"),
    }
    return {name + suffix: _save(figure, out_dir, name + suffix) for name, figure in figures.items()}


def _subset_figures(labels, probs, classes, present, probs_uncalibrated, numbers, out_dir, title) -> dict:
    """FIGURES of the 7-class answer as is (curves and confusion rows of the classes present only), and
    RESTRICTED_FIGURES of the answer restricted to them."""
    codes = [classes[k] for k in present]
    index = np.full(len(classes), -1)
    index[present] = np.arange(len(present))
    figures = _write_figures(labels, probs, classes, probs_uncalibrated, numbers, out_dir, f"{title}, as is", codes)
    restricted_title = f"{title}, restricted to {', '.join(codes)}"
    uncalibrated = None if probs_uncalibrated is None else restrict_probabilities(probs_uncalibrated, present)
    restricted = numbers["restricted_to_present_classes"]
    sub_probs = restrict_probabilities(probs, present)
    figures.update(
        _write_figures(
            index[labels], sub_probs, codes, uncalibrated, restricted, out_dir, restricted_title, suffix="_restricted"
        )
    )
    return figures


# --------------------------------------------------------------------------- files


def _strict_json(value):
    """NaN and +-inf -> None, numpy scalars -> Python: what strict JSON can hold."""
    if isinstance(value, dict):
        return {str(k): _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(header: Sequence[str], rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]


def _summary_lines(numbers: dict) -> list[str]:
    """The summary table of one reading: accuracy, balanced accuracy and macro AUC (with intervals), F1, ECE."""
    ci = numbers["confidence_intervals"]
    summary = [
        ("accuracy", numbers["accuracy"], "", ""),
        (
            "balanced accuracy",
            numbers["balanced_accuracy"],
            ci["balanced_accuracy"]["low"],
            ci["balanced_accuracy"]["high"],
        ),
        ("macro F1", numbers["macro_f1"], "", ""),
        ("macro ROC AUC", numbers["macro_roc_auc"], ci["macro_roc_auc"]["low"], ci["macro_roc_auc"]["high"]),
        ("expected calibration error", numbers["expected_calibration_error"], "", ""),
    ]
    if "expected_calibration_error_uncalibrated" in numbers:
        summary.append(("ECE before calibration", numbers["expected_calibration_error_uncalibrated"], "", ""))
    summary.append(("class-wise calibration error", numbers["classwise_calibration_error"], "", ""))
    if "classwise_calibration_error_uncalibrated" in numbers:
        summary.append(
            (
                "class-wise calibration error before calibration",
                numbers["classwise_calibration_error_uncalibrated"],
                "",
                "",
            )
        )
    return _table(("metric", "value", "95 % CI low", "95 % CI high"), summary)


def _width(interval: dict):
    low, high = interval["low"], interval["high"]
    return None if low is None or high is None else high - low


def _image_level_lines(numbers: dict, of: str = "") -> list[str]:
    ci, image_level = numbers["confidence_intervals"], numbers.get("confidence_intervals_image_level")
    if not image_level:
        return []
    lines = [
        "",
        f"## Bootstrap over lesions vs over images{of}",
        "",
        "Images of one lesion are not independent: resampling images treats them as if they were, and "
        "its intervals are too narrow. The intervals above resample lesions; beside them, what an "
        "image-level bootstrap would claim.",
        "",
    ]
    return lines + _table(
        ("metric", "value", "lesions: 95 % CI", "width", "images: 95 % CI", "width"),
        [
            (
                name.replace("_", " "),
                ci[name]["estimate"],
                f"{_fmt(ci[name]['low'])} to {_fmt(ci[name]['high'])}",
                _width(ci[name]),
                f"{_fmt(image_level[name]['low'])} to {_fmt(image_level[name]['high'])}",
                _width(image_level[name]),
            )
            for name in ci
        ],
    )


def _melanoma_lines(numbers: dict) -> list[str]:
    """The melanoma operating points and the referral flag, both on the 7-class P(mel)."""
    lines = []
    if numbers["melanoma_operating_points"]:
        lines += ["", "## Melanoma operating points (melanoma vs rest)", ""]
        rows = [
            (name.replace("_", " "), point["value"], point["threshold"])
            for name, point in numbers["melanoma_operating_points"].items()
        ]
        lines += _table(("operating point", "achieved", "threshold on P(mel)"), rows)
    referral = numbers.get("melanoma_referral")
    if referral:
        lines += ["", "## Melanoma referral flag (threshold fixed in advance, on validation)", ""]
        lines += _table(
            ("threshold on P(mel)", "sensitivity", "specificity", "referred", "melanomas missed"),
            [
                (
                    referral["threshold"],
                    referral["sensitivity"],
                    referral["specificity"],
                    f"{referral['referred']} of {referral['images']}",
                    f"{referral['melanomas_missed']} of {referral['melanomas']}",
                )
            ],
        )
    return lines


def _per_class_lines(numbers: dict, heading: str, rows: Sequence[str]) -> list[str]:
    lines = ["", heading, ""]
    table = [
        (
            code,
            DISPLAY_NAMES.get(code, code),
            *(
                numbers["per_class"][code][key]
                for key in ("support", "precision", "recall", "f1", "specificity", "roc_auc", "average_precision")
            ),
        )
        for code in rows
    ]
    return lines + _table(
        ("class", "name", "support", "precision", "recall", "F1", "specificity", "ROC AUC", "AP"), table
    )


def _confusion_lines(numbers: dict, heading: str, rows: Sequence[str]) -> list[str]:
    return ["", heading, ""] + _table(
        ("true \\ predicted", *numbers["classes"]),
        [(code, *row) for code, row in zip(rows, numbers["confusion_matrix"])],
    )


def _subset_lines(numbers: dict) -> list[str]:
    """Both readings of a collection that lacks some classes, each under its own heading."""
    as_is_title, restricted_title = reading_titles(numbers)
    present, absent = numbers["classes_present"], numbers["classes_absent"]
    went = numbers["predictions_to_absent_classes"]
    restricted = numbers["restricted_to_present_classes"]
    lines = [
        "",
        f"The labels hold {len(present)} of the {len(present) + len(absent)} classes ({', '.join(present)}); "
        f"absent: {', '.join(absent)}. Two readings follow. The **7-class answer as is**: the model's answer "
        "among all its classes, where a prediction of an absent class counts as a miss; balanced accuracy, "
        "macro ROC AUC and class-wise calibration are over the classes present. The answer **restricted to "
        "the classes present**: each image's probabilities of those classes renormalised to sum to 1, the "
        "answer the arg-max among them: the question a collection of only these classes asks.",
        "",
        f"## {as_is_title[0].upper()}{as_is_title[1:]}",
        "",
        "Predictions of absent classes: "
        + ", ".join(f"{code} {count}" for code, count in went["by_class"].items())
        + f" ({went['count']} of {numbers['n_samples']}).",
        "",
    ]
    lines += _summary_lines(numbers)
    lines += _per_class_lines(numbers, "### Per class (classes present)", present)
    lines += _confusion_lines(
        numbers, "### Confusion matrix (rows = true classes present, columns = every predicted class)", present
    )
    lines += ["", f"## {restricted_title[0].upper()}{restricted_title[1:]}", ""]
    if "note" in restricted:
        lines += [f"Note: {restricted['note']}.", ""]
    lines += _summary_lines(restricted)
    lines += _per_class_lines(restricted, "### Per class", present)
    lines += _confusion_lines(restricted, "### Confusion matrix (rows = true, columns = predicted)", present)
    return lines


def _markdown(numbers: dict, title: str) -> str:
    classes, boot = numbers["classes"], numbers["bootstrap"]
    of_lesions = f" of {boot['units']} lesions" if boot["unit"] == "lesions" else ""
    lines = [
        f"# {title}",
        "",
        f"{numbers['n_samples']} images{of_lesions}. 95 % intervals: percentile bootstrap over "
        f"{boot['unit']}, {boot['resamples']} resamples, seed {boot['seed']}.",
    ]
    if "restricted_to_present_classes" in numbers:
        lines += _subset_lines(numbers) + _image_level_lines(numbers, f" ({AS_IS})") + _melanoma_lines(numbers)
    else:
        lines += ["", "## Summary", ""] + _summary_lines(numbers) + _image_level_lines(numbers)
        lines += _melanoma_lines(numbers) + _per_class_lines(numbers, "## Per class", classes)
        lines += _confusion_lines(numbers, "## Confusion matrix (rows = true, columns = predicted)", classes)
    lines += ["", "## Figures", ""] + [f"![{name}]({files[0]})" for name, files in numbers["figures"].items()]
    return "\n".join(lines) + "\n"


def write_report(
    y_true,
    probs,
    out_dir,
    classes: Sequence[str] = CLASSES,
    title: str = "Stage 2 classifier",
    probs_uncalibrated=None,
    bootstrap: int = 1000,
    seed: int = 0,
    referral_threshold: float | None = None,
    groups=None,
    classes_present: Sequence[str] | None = None,
) -> dict:
    """Write figures (PNG + SVG), report.json and report.md to out_dir; return the numbers.

    probs: the probabilities to evaluate (after temperature scaling, if any); probs_uncalibrated:
    the same predictions before it, shown beside them in the reliability diagram and the ECE table.
    The dict holds `classification_report_dict`'s keys plus confusion_matrix_normalised,
    melanoma_operating_points, confidence_intervals, bootstrap, figures (and
    expected_calibration_error_uncalibrated); NaN marks undefined values (null in report.json).
    `referral_threshold`: a model's melanoma referral threshold (fixed on validation, see
    `skinlib.evaluation.referral`); the report then scores that flag as `melanoma_referral`.
    `groups`: each image's lesion id, when known; the intervals then resample lesions, and the image-level
    intervals are reported beside them (`confidence_intervals_image_level`).
    `classes_present`: the classes the labels hold (`skinlib.evaluation.subset.collection_report`), when
    fewer than `classes` (a collection such as ISIC 2017's mel, bkl and nv): the report then gives the 7-class
    answer as is, rows of the classes present only, and the answer restricted to them
    (`restricted_to_present_classes`, its figures named RESTRICTED_FIGURES), names the absent classes, and
    undefined values are None, not NaN.
    """
    classes = list(classes)
    probs = check_probabilities(probs, len(classes))
    labels = check_labels(y_true, len(classes), n=len(probs))
    if probs_uncalibrated is not None:
        probs_uncalibrated = check_probabilities(probs_uncalibrated, len(classes))
        if probs_uncalibrated.shape != probs.shape:
            raise ValueError(f"probs_uncalibrated has shape {probs_uncalibrated.shape}, probs {probs.shape}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = {"title": title, **_report_numbers(labels, probs, classes, probs_uncalibrated, bootstrap, seed, groups)}
    present = None if classes_present is None else present_indices(labels, classes_present, classes)
    if present is not None and len(present) < len(classes):
        numbers = _subset_numbers(numbers, labels, probs, classes, present, probs_uncalibrated, bootstrap, seed, groups)
        numbers["reading"] = AS_IS
    if referral_threshold is not None:
        numbers["melanoma_referral"] = referral_scores(labels, probs, referral_threshold, classes)
    if "restricted_to_present_classes" in numbers:
        numbers["figures"] = _subset_figures(
            labels, probs, classes, present, probs_uncalibrated, numbers, out_dir, title
        )
    else:
        numbers["figures"] = _write_figures(labels, probs, classes, probs_uncalibrated, numbers, out_dir, title)
    (out_dir / "report.json").write_text(json.dumps(_strict_json(numbers), indent=2, allow_nan=False) + "\n")
    (out_dir / "report.md").write_text(_markdown(numbers, title))
    return numbers
