"""Melanoma referral: a "refer this lesion" flag whose threshold is fixed on validation, in advance.

The 7-class answer (the arg-max) trades melanoma recall against six other recalls; a triage setting asks a
narrower question, "could this be a melanoma?", and wants few melanomas missed. The flag is raised when the
calibrated P(mel) reaches a threshold chosen on the validation split for a target sensitivity
(`REFERRAL_SENSITIVITY`), saved with the model and never refitted on the data it is scored on: on any other
labelled set (`skinlib evaluate`) the flag's sensitivity and specificity are what a user of the shipped model
would get, not what the best threshold for that set would give.
"""

from __future__ import annotations

import numpy as np

from ..data.classes import CLASSES
from .classification import check_binary_scores, check_probabilities, specificity_at_sensitivity

#: Target melanoma sensitivity on validation. Near the mean sensitivity of dermatologists reading dermoscopic
#: images in reader studies (86.6 % in Haenssle et al., Ann Oncol 2018), and above the 7-class recall.
REFERRAL_SENSITIVITY = 0.85
REFERRAL_CLASS = "mel"


def _melanoma(labels, probs, classes) -> tuple[np.ndarray, np.ndarray]:
    classes = list(classes)
    if REFERRAL_CLASS not in classes:
        raise ValueError(f"a melanoma referral needs a {REFERRAL_CLASS!r} class; classes are {classes}")
    probs = check_probabilities(probs, len(classes))
    column = classes.index(REFERRAL_CLASS)
    return check_binary_scores(np.asarray(labels) == column, probs[:, column])


def fit_referral_threshold(labels, probs, sensitivity: float = REFERRAL_SENSITIVITY, classes=CLASSES) -> float:
    """The highest P(mel) threshold that still flags at least `sensitivity` of the melanomas in (labels, probs).

    Call it on validation predictions only; the threshold is then a property of the model.
    """
    positive, scores = _melanoma(labels, probs, classes)
    return specificity_at_sensitivity(positive, scores, sensitivity).threshold


def referral_scores(labels, probs, threshold: float, classes=CLASSES) -> dict:
    """What the flag "P(mel) >= threshold" does on (labels, probs): sensitivity, specificity, referral rate.

    Sensitivity is None when the set holds no melanoma, specificity None when it holds nothing else.
    """
    positive, scores = _melanoma(labels, probs, classes)
    referred = scores >= float(threshold)
    melanomas, others = int(positive.sum()), int((~positive).sum())
    return {
        "threshold": float(threshold),
        "images": int(len(scores)),
        "melanomas": melanomas,
        "referred": int(referred.sum()),
        "referral_rate": float(referred.mean()) if len(scores) else None,
        "melanomas_missed": int((positive & ~referred).sum()),
        "sensitivity": float((positive & referred).sum() / melanomas) if melanomas else None,
        "specificity": float((~positive & ~referred).sum() / others) if others else None,
    }


def referral_record(
    val_labels, val_probs, sensitivity: float = REFERRAL_SENSITIVITY, classes=CLASSES, test_labels=None, test_probs=None
) -> dict:
    """Fit the threshold on validation; return it with its validation scores (and test scores, if given)."""
    threshold = fit_referral_threshold(val_labels, val_probs, sensitivity, classes)
    record = {
        "class": REFERRAL_CLASS,
        "target_sensitivity_on_val": float(sensitivity),
        "threshold": threshold,
        "val": referral_scores(val_labels, val_probs, threshold, classes),
    }
    if test_labels is not None:
        record["test"] = referral_scores(test_labels, test_probs, threshold, classes)
    return record
