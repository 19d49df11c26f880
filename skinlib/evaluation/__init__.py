"""Evaluation metrics. Segmentation: overlap scores of binary masks (numpy only)."""

from .segmentation import (
    ISIC_JACCARD_THRESHOLD,
    dice,
    dice_batch,
    iou,
    iou_batch,
    segmentation_scores,
    summarise_scores,
    thresholded_jaccard,
    thresholded_jaccard_batch,
)

__all__ = [
    "ISIC_JACCARD_THRESHOLD", "dice", "dice_batch", "iou", "iou_batch", "segmentation_scores",
    "summarise_scores", "thresholded_jaccard", "thresholded_jaccard_batch",
]
