"""Overlap metrics for binary lesion masks (numpy only, so they run anywhere, without TensorFlow).

Conventions, chosen so that averages over a data set behave:

* two empty masks agree perfectly (score 1.0): "no lesion" predicted for "no lesion" is right;
* exactly one empty mask scores 0.0 (nothing overlaps);
* shapes must match exactly; resizing silently would hide a bug in the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

#: ISIC 2018 Task 1 threshold: a per-image Jaccard below it counts as a failed segmentation (score 0).
ISIC_JACCARD_THRESHOLD = 0.65


def _as_masks(pred, true) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as booleans of one shape (non-zero = lesion); a clear error otherwise."""
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"mask shapes differ: pred has shape {pred.shape}, true has shape {true.shape}")
    return pred.astype(bool), true.astype(bool)


def _overlaps(pred: np.ndarray, true: np.ndarray, axes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection and the two areas, summed over `axes` (all axes for one mask, the last two for a batch)."""
    intersection = np.logical_and(pred, true).sum(axis=axes)
    return intersection, pred.sum(axis=axes), true.sum(axis=axes)


def _ratio(numerator, denominator) -> np.ndarray:
    """numerator / denominator, with 0/0 = 1.0 (both masks empty)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 1.0)


def dice(pred, true) -> float:
    """Dice coefficient 2|P∩T| / (|P|+|T|) of two binary masks of the same shape."""
    inter, p, t = _overlaps(*_as_masks(pred, true), axes=None)
    return float(_ratio(2 * inter, p + t))


def iou(pred, true) -> float:
    """Jaccard index (intersection over union) |P∩T| / |P∪T| of two binary masks of the same shape."""
    inter, p, t = _overlaps(*_as_masks(pred, true), axes=None)
    return float(_ratio(inter, p + t - inter))


def thresholded_jaccard(pred, true, threshold: float = ISIC_JACCARD_THRESHOLD) -> float:
    """ISIC 2018 Task 1 score of one image: its Jaccard, or 0 when below `threshold`.

    Why: a mask that is "half right" is useless to a clinician, so the challenge gives it no credit.
    """
    score = iou(pred, true)
    return score if score >= threshold else 0.0


def _as_batch(preds, trues) -> tuple[np.ndarray, np.ndarray]:
    """Stack two batches (N, H, W) of masks; shapes must agree."""
    preds, trues = np.asarray(preds), np.asarray(trues)
    if preds.shape != trues.shape:
        raise ValueError(f"mask shapes differ: preds have shape {preds.shape}, trues have shape {trues.shape}")
    if preds.ndim < 3:
        raise ValueError(f"a batch of masks must have shape (N, H, W), got {preds.shape}")
    return preds.astype(bool), trues.astype(bool)


def dice_batch(preds, trues) -> np.ndarray:
    """Per-image Dice of a batch (N, H, W) of same-size masks, as an array of N floats."""
    inter, p, t = _overlaps(*_as_batch(preds, trues), axes=(-2, -1))
    return _ratio(2 * inter, p + t)


def iou_batch(preds, trues) -> np.ndarray:
    """Per-image Jaccard of a batch (N, H, W) of same-size masks, as an array of N floats."""
    inter, p, t = _overlaps(*_as_batch(preds, trues), axes=(-2, -1))
    return _ratio(inter, p + t - inter)


def thresholded_jaccard_batch(preds, trues, threshold: float = ISIC_JACCARD_THRESHOLD) -> np.ndarray:
    """Per-image ISIC 2018 thresholded Jaccard of a batch (N, H, W)."""
    scores = iou_batch(preds, trues)
    return np.where(scores >= threshold, scores, 0.0)


def segmentation_scores(preds: Iterable, trues: Iterable, threshold: float = ISIC_JACCARD_THRESHOLD) -> dict:
    """Mean and median Dice, IoU and thresholded Jaccard over paired lists of masks, plus `count`.

    Masks may differ in size from pair to pair (any image size works); within a pair they must match.
    The mean of the thresholded Jaccard is the ISIC 2018 Task 1 leaderboard score.
    """
    preds, trues = list(preds), list(trues)
    if len(preds) != len(trues):
        raise ValueError(f"got {len(preds)} predicted masks but {len(trues)} true masks")
    per_image = {
        "dice": [dice(p, t) for p, t in zip(preds, trues)],
        "iou": [iou(p, t) for p, t in zip(preds, trues)],
        "thresholded_jaccard": [thresholded_jaccard(p, t, threshold) for p, t in zip(preds, trues)],
    }
    return summarise_scores(per_image)


def summarise_scores(per_image: dict[str, Sequence[float]]) -> dict:
    """`{name}_mean`, `{name}_median` for each list of per-image scores, and `count` (NaN when empty)."""
    out: dict = {}
    count = 0
    for name, values in per_image.items():
        values = np.asarray(values, dtype=np.float64)
        count = len(values)
        out[f"{name}_mean"] = float(values.mean()) if count else float("nan")
        out[f"{name}_median"] = float(np.median(values)) if count else float("nan")
    out["count"] = count
    return out
