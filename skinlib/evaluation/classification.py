"""Metrics for the 7-class lesion classifier (numpy + scikit-learn, no TensorFlow).

Inputs: `y_true`, integer labels (N,) in CLASSES order, and `probs`, softmax probabilities (N, K).
Conventions, chosen so that nothing undefined is silently reported as a number:

* a ratio whose denominator is zero is NaN (e.g. the recall of a class with no samples, the
  precision of a class never predicted, the ROC AUC of a class with no positives);
* macro means average the classes present in `y_true` and skip NaN, so a class missing from a
  small test split neither counts as 0 nor breaks the mean;
* probabilities must be a valid softmax output (rows in [0, 1] summing to 1): logits or
  unnormalised scores fail loudly instead of giving plausible-looking nonsense.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ..data.classes import CLASSES

#: Tolerance on probability rows summing to 1 (float16 softmax outputs are off by ~1e-3).
SUM_TOLERANCE = 1e-2


# --------------------------------------------------------------------------- input checks


def check_probabilities(probs, num_classes: int | None = None) -> np.ndarray:
    """`probs` as float64 (N, K), or a ValueError saying what is wrong with it."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must have shape (N, num_classes), got shape {probs.shape}")
    if num_classes is not None and probs.shape[1] != num_classes:
        raise ValueError(f"probabilities have {probs.shape[1]} columns, expected {num_classes} classes")
    if not np.all(np.isfinite(probs)) or probs.min(initial=0) < 0 or probs.max(initial=0) > 1:
        raise ValueError("probabilities must be finite and in [0, 1]; are these logits? apply softmax first")
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > SUM_TOLERANCE)
    if bad.size:
        raise ValueError(
            f"probability rows must sum to 1 (softmax output), but {bad.size} do not: "
            f"row {bad[0]} sums to {sums[bad[0]]:.4g}"
        )
    return probs


def check_labels(y_true, num_classes: int, n: int | None = None) -> np.ndarray:
    """`y_true` as int (N,) labels in [0, num_classes), or a ValueError."""
    labels = np.asarray(y_true)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class indices, got shape {labels.shape}")
    if n is not None and labels.size != n:
        raise ValueError(f"got {labels.size} labels for {n} predictions")
    integral = labels.dtype.kind in "iub" or (labels.dtype.kind == "f" and np.all(labels == np.round(labels)))
    if not integral:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(int)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got values {labels.min()}..{labels.max()}")
    return labels


def _predicted_labels(y_pred, num_classes: int) -> np.ndarray:
    """Labels from labels (N,) or from probabilities (N, K) by argmax."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:
        return check_probabilities(y_pred, num_classes).argmax(axis=1)
    return check_labels(y_pred, num_classes)


def _ratio(numerator, denominator) -> np.ndarray:
    """Element-wise numerator / denominator, NaN where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


# --------------------------------------------------------------------------- label metrics


def confusion_matrix(y_true, y_pred, normalise: str | None = None, num_classes: int = len(CLASSES)) -> np.ndarray:
    """K x K confusion matrix, rows = true class, columns = predicted class.

    y_pred: labels (N,) or probabilities (N, K). normalise="true" divides each row by its
    class's count (rows then hold per-class recall); a class with no samples gets a NaN row.
    """
    if normalise not in (None, "true"):
        raise ValueError(f"normalise must be None or 'true', not {normalise!r}")
    if np.ndim(y_pred) == 2:
        num_classes = np.shape(y_pred)[1]
    pred = _predicted_labels(y_pred, num_classes)
    true = check_labels(y_true, num_classes, n=pred.size)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    if normalise == "true":
        return _ratio(matrix, matrix.sum(axis=1, keepdims=True))
    return matrix


def balanced_accuracy(y_true, y_pred, num_classes: int = len(CLASSES)) -> float:
    """Mean per-class recall: the ISIC 2018 Task 3 metric.

    Why not accuracy: predicting "nevus" for everything scores 67% accuracy on HAM10000 but 1/7
    balanced accuracy. Classes absent from `y_true` are left out of the mean (their recall is
    undefined), as in scikit-learn's balanced_accuracy_score. y_pred: labels or probabilities.
    """
    recall = np.diag(confusion_matrix(y_true, y_pred, "true", num_classes))
    return float(np.nanmean(recall)) if np.any(np.isfinite(recall)) else float("nan")


def _per_class_counts(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """TP, FP, FN, TN of each class (one-vs-rest) from a confusion matrix."""
    tp = np.diag(matrix).astype(np.int64)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": matrix.sum() - tp - fp - fn}


# --------------------------------------------------------------------------- score metrics


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, NaN when only one class is present (the curve does not exist)."""
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, scores))


def _binary_ap(positive: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve), NaN without positives."""
    return float(average_precision_score(positive, scores)) if positive.any() else float("nan")


def reliability_bins(y_true, probs, bins: int = 15) -> dict[str, np.ndarray]:
    """Top-label calibration per equal-width confidence bin (lo, hi]: count, mean confidence, accuracy.

    Empty bins have count 0 and NaN confidence/accuracy. This is what a reliability diagram plots.
    """
    if int(bins) < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    probs = check_probabilities(probs)
    labels = check_labels(y_true, probs.shape[1], n=len(probs))
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, int(bins) - 1)
    count = np.bincount(index, minlength=int(bins))
    return {
        "edges": edges,
        "count": count,
        "confidence": _ratio(np.bincount(index, confidence, minlength=int(bins)), count),
        "accuracy": _ratio(np.bincount(index, correct, minlength=int(bins)), count),
    }


def expected_calibration_error(y_true, probs, bins: int = 15) -> float:
    """Top-label ECE: sum over bins of (bin size / N) * |accuracy - mean confidence|.

    Why: a triage tool thresholds probabilities, so "80% sure" should be right about 80% of the time.
    """
    table = reliability_bins(y_true, probs, bins)
    if table["count"].sum() == 0:
        return float("nan")
    filled = table["count"] > 0
    gaps = np.abs(table["accuracy"][filled] - table["confidence"][filled])
    return float(np.sum(table["count"][filled] * gaps) / table["count"].sum())


# --------------------------------------------------------------------------- the report


def classification_report_dict(y_true, probs, classes: Sequence[str] = CLASSES, bins: int = 15) -> dict:
    """Everything about a set of predictions, as plain Python types (JSON-ready; NaN = undefined).

    Keys: n_samples, classes, accuracy, balanced_accuracy, macro_f1, macro_roc_auc (one-vs-rest,
    over classes with both positives and negatives), expected_calibration_error, confusion_matrix
    (list of lists, rows = true), and per_class[code] with precision, recall (sensitivity),
    f1, specificity, support, roc_auc, average_precision.
    """
    classes = list(classes)
    probs = check_probabilities(probs, len(classes))
    labels = check_labels(y_true, len(classes), n=len(probs))
    matrix = confusion_matrix(labels, probs.argmax(axis=1), num_classes=len(classes))
    c = _per_class_counts(matrix)
    present = c["tp"] + c["fn"] > 0
    f1 = _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])
    per_class = {
        name: {
            "precision": float(_ratio(c["tp"][k], c["tp"][k] + c["fp"][k])),
            "recall": float(_ratio(c["tp"][k], c["tp"][k] + c["fn"][k])),
            "f1": float(f1[k]),
            "specificity": float(_ratio(c["tn"][k], c["tn"][k] + c["fp"][k])),
            "support": int(c["tp"][k] + c["fn"][k]),
            "roc_auc": _binary_auc(labels == k, probs[:, k]),
            "average_precision": _binary_ap(labels == k, probs[:, k]),
        }
        for k, name in enumerate(classes)
    }
    aucs = np.array([per_class[name]["roc_auc"] for name in classes])
    return {
        "n_samples": int(len(labels)),
        "classes": classes,
        "accuracy": float(np.mean(probs.argmax(axis=1) == labels)) if len(labels) else float("nan"),
        "balanced_accuracy": balanced_accuracy(labels, probs),
        "macro_f1": _nanmean(f1[present]),
        "macro_roc_auc": _nanmean(aucs),
        "expected_calibration_error": expected_calibration_error(labels, probs, bins),
        "confusion_matrix": matrix.tolist(),
        "per_class": per_class,
    }


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.any(np.isfinite(values)) else float("nan")


# --------------------------------------------------------------------------- operating points


class OperatingPoint(NamedTuple):
    """A metric achieved at a decision threshold: predict positive when score >= threshold."""

    value: float
    threshold: float


def check_binary_scores(y_true_binary, scores) -> tuple[np.ndarray, np.ndarray]:
    """Validated (boolean labels, float scores) of a one-class decision, e.g. melanoma vs the rest."""
    positive = np.asarray(y_true_binary)
    scores = np.asarray(scores, dtype=np.float64)
    if positive.ndim != 1 or scores.shape != positive.shape:
        raise ValueError(f"labels and scores must be 1-D of one length, got {positive.shape} and {scores.shape}")
    if not np.isin(positive, (0, 1)).all():
        raise ValueError(
            "binary labels must be 0/1 or boolean (1 = the class of interest, e.g. labels == CLASS_INDEX['mel'])"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    return positive.astype(bool), scores


def _binary_roc(y_true_binary, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensitivity, specificity and threshold at every distinct score (plus +inf: nothing positive)."""
    positive, scores = check_binary_scores(y_true_binary, scores)
    if positive.all() or not positive.any():
        raise ValueError("need both positive and negative samples to trade sensitivity for specificity")
    fpr, tpr, thresholds = roc_curve(positive, scores, drop_intermediate=False)
    thresholds[0] = np.inf  # sklearn < 1.3 used max + 1 for the "nothing positive" point
    return tpr, 1.0 - fpr, thresholds


def _check_target(target: float, what: str) -> float:
    if not 0.0 <= float(target) <= 1.0:
        raise ValueError(f"{what} must be in [0, 1], got {target}")
    return float(target) - 1e-12  # counts ratios such as 7/10 as meeting 0.7


def sensitivity_at_specificity(y_true_binary, scores, specificity: float) -> OperatingPoint:
    """Highest sensitivity whose threshold keeps specificity >= `specificity`, and that threshold.

    E.g. melanoma vs rest with scores = probs[:, mel]. Among thresholds with the same sensitivity
    the highest (most specific) one is returned. Threshold +inf means "call nothing positive".
    No interpolation: the point is one a real threshold achieves.
    """
    target = _check_target(specificity, "specificity")
    sens, spec, thresholds = _binary_roc(y_true_binary, scores)
    feasible = np.flatnonzero(spec >= target)
    best = feasible[np.argmax(sens[feasible])]  # first maximum = highest threshold
    return OperatingPoint(float(sens[best]), float(thresholds[best]))


def specificity_at_sensitivity(y_true_binary, scores, sensitivity: float) -> OperatingPoint:
    """Highest specificity whose threshold keeps sensitivity >= `sensitivity`, and that threshold.

    Among thresholds with the same specificity the lowest (most sensitive) one is returned.
    """
    target = _check_target(sensitivity, "sensitivity")
    sens, spec, thresholds = _binary_roc(y_true_binary, scores)
    feasible = np.flatnonzero(sens >= target)
    best = feasible[len(feasible) - 1 - np.argmax(spec[feasible][::-1])]  # last maximum = lowest threshold
    return OperatingPoint(float(spec[best]), float(thresholds[best]))
