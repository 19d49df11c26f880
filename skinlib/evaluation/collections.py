"""Two collections side by side, and one model's scores on a collection of some of the classes.

A model meets a new collection as pixels: how large the images are, how bright and what colour, how much of the
frame the lesion fills. `image_statistics` measures these per image (the lesion share from the expert masks);
`side_by_side` summarises them per collection, so a reader sees what differs before asking what breaks.
`three_class_scores` gives the headline numbers of a collection with only some of the seven classes (ISIC 2017:
mel, bkl, nv) with bootstrap intervals over lesions where lesions are known and over images where they are not,
so that HAM10000 test and ISIC 2017 can be compared on the same question.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from ..data.classes import CLASSES
from ..data.images import read_image, read_mask
from .report import bootstrap_ci
from .subset import present_indices, restrict_probabilities, subset_readings

#: Luma weights (ITU-R BT.601) for one brightness number per image.
LUMA = np.array([0.299, 0.587, 0.114])

#: The per-image measures of `image_statistics`, with how `side_by_side` names them.
MEASURES = {
    "width": "width (px)",
    "height": "height (px)",
    "aspect": "aspect ratio (width / height)",
    "brightness": "brightness (luma, 0-255)",
    "mean_r": "red mean",
    "mean_g": "green mean",
    "mean_b": "blue mean",
    "std_r": "red std",
    "std_g": "green std",
    "std_b": "blue std",
    "lesion_share": "lesion share of the frame (expert mask)",
}


def one_image_statistics(image: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Size, colour and lesion share of one RGB uint8 image (and its mask, any non-zero pixel is lesion)."""
    pixels = np.asarray(image, np.float64).reshape(-1, 3)
    height, width = image.shape[:2]
    mean, std = pixels.mean(axis=0), pixels.std(axis=0)
    record = {
        "width": int(width),
        "height": int(height),
        "aspect": width / height,
        "brightness": float((pixels @ LUMA).mean()),
        **{f"mean_{c}": float(v) for c, v in zip("rgb", mean)},
        **{f"std_{c}": float(v) for c, v in zip("rgb", std)},
        "lesion_share": float("nan") if mask is None else float(np.mean(np.asarray(mask) > 0)),
    }
    return record


def image_statistics(image_paths: Sequence, mask_paths: Sequence | None = None, image_ids=None) -> pd.DataFrame:
    """One row per image: the measures of `MEASURES` (lesion share NaN without masks)."""
    if mask_paths is not None and len(mask_paths) != len(image_paths):
        raise ValueError(f"{len(image_paths)} images but {len(mask_paths)} masks")
    rows = []
    for i, path in enumerate(image_paths):
        mask = None if mask_paths is None else read_mask(mask_paths[i])
        rows.append(one_image_statistics(read_image(path), mask))
    frame = pd.DataFrame(rows, columns=list(MEASURES))
    if image_ids is not None:
        frame.insert(0, "image_id", list(image_ids))
    return frame


def side_by_side(statistics: dict[str, pd.DataFrame], how: str = "median") -> pd.DataFrame:
    """{collection: `image_statistics` frame} -> one row per measure, one column per collection (`how`: the
    median or the mean over its images), plus each collection's image count."""
    if how not in ("median", "mean"):
        raise ValueError(f"how must be 'median' or 'mean', not {how!r}")
    columns = {}
    for name, frame in statistics.items():
        summary = getattr(frame[list(MEASURES)], how)()
        columns[name] = {"images": float(len(frame)), **{MEASURES[m]: float(summary[m]) for m in MEASURES}}
    return pd.DataFrame(columns)


def class_mix(labels: dict[str, Sequence[str]], classes: Sequence[str] = CLASSES) -> pd.DataFrame:
    """{collection: diagnosis codes} -> the share of each class per collection (0 for a class it lacks)."""
    return pd.DataFrame(
        {
            name: pd.Series(list(codes)).value_counts(normalize=True).reindex(classes, fill_value=0.0)
            for name, codes in labels.items()
        }
    )


def _restricted(present):
    def metric(labels, probs):
        return balanced_accuracy_score(labels, np.asarray(present)[restrict_probabilities(probs, present).argmax(1)])

    return metric


def _as_is(present):
    def metric(labels, probs):  # mean recall over the classes present; an answer naming an absent class is a miss
        predicted = probs.argmax(1)
        return float(np.mean([np.mean(predicted[labels == k] == k) for k in present if np.any(labels == k)]))

    return metric


def three_class_scores(labels, probs, groups=None, n: int = 1000, seed: int = 0) -> dict:
    """Balanced accuracy as is and restricted to the classes present, each with a 95 % bootstrap interval (over
    `groups`, e.g. lesion ids, when given; over images otherwise), the melanoma one-vs-rest AUC, per-class recall
    of both readings and where answers naming an absent class went."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    present = present_indices(labels)
    readings = subset_readings(labels, probs)
    as_is, restricted = readings["as_is"], readings["restricted_to_present_classes"]
    scores = {
        "images": int(len(labels)),
        "bootstrap": {"unit": "lesions" if groups is not None else "images", "samples": n, "seed": seed},
        "classes_present": readings["classes_present"],
        "balanced_accuracy_as_is": _as_is(present)(labels, probs),
        "balanced_accuracy_restricted": float(restricted["balanced_accuracy"]),
        "melanoma_roc_auc": as_is["per_class"].get("mel", {}).get("roc_auc"),
        "recall_as_is": {code: as_is["per_class"][code]["recall"] for code in readings["classes_present"]},
        "recall_restricted": {code: restricted["per_class"][code]["recall"] for code in readings["classes_present"]},
        "predicted_absent": as_is["predicted_absent"],
    }
    for key, metric in (("as_is", _as_is(present)), ("restricted", _restricted(present))):
        low, high = bootstrap_ci(metric, labels, probs, n, seed, groups=groups)
        scores[f"balanced_accuracy_{key}_ci95"] = [float(low), float(high)]
    return scores
