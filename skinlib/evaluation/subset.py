"""Scores on a collection that holds only some of the seven classes, e.g. ISIC 2017 (mel, bkl and nv only).

The model answers with all seven classes; the labels name only some. Two readings answer two questions, and
both are reported, each saying which it is:

* **the 7-class answer as is**: the model used as shipped. A prediction of a class the collection lacks is a
  miss (it is counted, and its share reported); balanced accuracy is the mean recall over the classes
  present; macro ROC AUC averages the one-vs-rest AUC of the classes present, each on its own probability;
  the top-label calibration error is that of the 7-class probabilities; per-class rows are those of the
  classes present.
* **restricted to the classes present**: the question such a collection asks ("melanoma, seborrheic keratosis
  or nevus?"). Each image's probabilities of the classes present are renormalised to sum to 1, i.e. the
  model's probabilities given that the answer is one of them (Bayes' rule with a prior of 0 on the absent
  classes), and the answer is the arg-max among them. Every number is computed again on those probabilities.

Undefined numbers are None here, never NaN: a class never predicted has no precision, and an ROC AUC needs
positives and negatives (one class present: no AUC). Absent classes appear by name, never as rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..data.classes import CLASSES
from .classification import check_labels, check_probabilities, classification_report_dict

AS_IS = "7-class answer as is"
RESTRICTED = "restricted to the classes present"
RENORMALISED = "renormalised over the classes present: each image's probabilities of those classes divided by their sum"

#: The keys of `classification_report_dict` that a reading carries.
_READING_KEYS = (
    "n_samples",
    "classes",
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "macro_roc_auc",
    "expected_calibration_error",
)


def nan_to_none(value):
    """`value` with every NaN float (in dicts, lists and tuples, at any depth) replaced by None; inf is kept."""
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return None
    return value


def present_indices(y_true, classes_present: Sequence[str] | None = None, classes: Sequence[str] = CLASSES) -> list:
    """Indices (in `classes` order) of the classes present: those named, or else those in the labels.

    Naming them is for a collection known to hold more classes than a sample of it shows; every labelled
    class must be among them.
    """
    classes = list(classes)
    labels = check_labels(y_true, len(classes))
    in_labels = sorted({int(k) for k in np.unique(labels)})
    if classes_present is None:
        return in_labels
    unknown = sorted(set(classes_present) - set(classes))
    if unknown:
        raise ValueError(f"unknown class(es) {unknown} among the classes present; classes are {', '.join(classes)}")
    named = sorted(classes.index(code) for code in set(classes_present))
    unnamed = [classes[k] for k in in_labels if k not in named]
    if unnamed:
        raise ValueError(
            f"the labels hold class(es) {unnamed} that are not among the classes present {classes_present}"
        )
    return named


def restrict_probabilities(probs, present: Sequence[int]) -> np.ndarray:
    """The columns `present` of (N, K) probabilities, each row renormalised to sum to 1 (uniform where they are
    all 0, which float32 softmax underflow can give)."""
    part = np.asarray(probs, np.float64)[:, list(present)]
    total = part.sum(axis=1, keepdims=True)
    return np.where(total > 0, part / np.where(total > 0, total, 1.0), 1.0 / part.shape[1])


def subset_readings(
    y_true, probs, classes_present: Sequence[str] | None = None, classes: Sequence[str] = CLASSES, bins: int = 15
) -> dict:
    """Both readings of (labels, 7-class probabilities) on a collection of some of the classes.

    `classes_present`: default, the classes in `y_true`. Returns `classes_present` and `classes_absent` (codes
    in `classes` order) and two readings, each with the keys of `classification_report_dict` (accuracy,
    balanced_accuracy, macro_f1, macro_roc_auc, expected_calibration_error, per_class, confusion_matrix) and a
    `reading` label:

    * `as_is`: on the 7-class probabilities; per_class of the classes present only; confusion_matrix rows =
      true classes present (`confusion_matrix_rows`), columns = all classes; `predicted_absent`: count, share
      and per absent class of the predictions that went to absent classes.
    * `restricted_to_present_classes`: on the probabilities renormalised over the classes present
      (`probabilities` says so); `classes` = the classes present, confusion_matrix present x present.

    Undefined values are None (see the module docstring).
    """
    classes = list(classes)
    probs = check_probabilities(probs, len(classes))
    labels = check_labels(y_true, len(classes), n=len(probs))
    present = present_indices(labels, classes_present, classes)
    absent = [k for k in range(len(classes)) if k not in present]
    present_codes = [classes[k] for k in present]

    full = classification_report_dict(labels, probs, classes, bins)
    matrix = np.asarray(full["confusion_matrix"])
    predicted = probs.argmax(axis=1)
    to_absent = np.isin(predicted, absent)
    aucs = [full["per_class"][code]["roc_auc"] for code in present_codes]
    as_is = {
        "reading": AS_IS,
        **{key: full[key] for key in _READING_KEYS},
        "macro_roc_auc": _mean_defined(aucs),
        "per_class": {code: full["per_class"][code] for code in present_codes},
        "confusion_matrix": matrix[present].tolist(),
        "confusion_matrix_rows": present_codes,
        "predicted_absent": {
            "count": int(to_absent.sum()),
            "share": float(to_absent.mean()) if len(labels) else None,
            "by_class": {classes[k]: int(np.count_nonzero(predicted == k)) for k in absent},
        },
    }

    index = np.full(len(classes), -1)
    index[present] = np.arange(len(present))
    restricted_report = classification_report_dict(
        index[labels], restrict_probabilities(probs, present), present_codes, bins
    )
    restricted = {
        "reading": RESTRICTED,
        "probabilities": RENORMALISED,
        **{key: restricted_report[key] for key in _READING_KEYS},
        "per_class": restricted_report["per_class"],
        "confusion_matrix": restricted_report["confusion_matrix"],
    }
    if len(present) == 1:
        restricted["note"] = f"one class present ({present_codes[0]}): every answer restricted to it is right"
    return nan_to_none(
        {
            "classes_present": present_codes,
            "classes_absent": [classes[k] for k in absent],
            "as_is": as_is,
            "restricted_to_present_classes": restricted,
        }
    )


def collection_report(y_true, probs, classes: Sequence[str] = CLASSES, bins: int = 15) -> dict:
    """The classification report of a labelled collection: `classification_report_dict` as it is when the labels
    hold every class; otherwise the 7-class answer as is under the same keys (per_class and confusion-matrix
    rows of the classes present only, `confusion_matrix_rows` naming them; `reading` says which reading), with
    `classes_present`, `classes_absent`, `predictions_to_absent_classes` and `restricted_to_present_classes`
    (`subset_readings`). Undefined values are then None, not NaN.
    """
    classes = list(classes)
    labels = check_labels(y_true, len(classes))
    if len(np.unique(labels)) == len(classes):
        return classification_report_dict(labels, probs, classes, bins)
    readings = subset_readings(labels, probs, None, classes, bins)
    as_is = dict(readings["as_is"])
    predicted_absent = as_is.pop("predicted_absent")
    return {
        **as_is,
        "classes_present": readings["classes_present"],
        "classes_absent": readings["classes_absent"],
        "predictions_to_absent_classes": predicted_absent,
        "restricted_to_present_classes": readings["restricted_to_present_classes"],
    }


def _mean_defined(values) -> float:
    values = np.array([np.nan if v is None else v for v in values], np.float64)
    return float(np.nanmean(values)) if np.any(np.isfinite(values)) else float("nan")


def reading_titles(report: dict) -> tuple[str, str]:
    """The headings of the two readings of a `collection_report` (or a report.json) of a subset of the classes,
    e.g. "7-class answer as is (4 of 7 classes absent from the labels: akiec, bcc, df, vasc; 37 predictions
    (1.7 %) went to them)" and "restricted to the classes present (bkl, mel, nv; probabilities renormalised over
    them)"."""
    absent, present = report["classes_absent"], report["classes_present"]
    went = report["predictions_to_absent_classes"]
    share = f" ({went['share']:.1%})" if went["share"] is not None else ""
    return (
        f"{AS_IS} ({len(absent)} of {len(absent) + len(present)} classes absent from the labels: "
        f"{', '.join(absent)}; {went['count']} prediction(s){share} went to them)",
        f"{RESTRICTED} ({', '.join(present)}; probabilities renormalised over them)",
    )
