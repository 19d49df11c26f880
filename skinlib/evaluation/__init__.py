"""Evaluation metrics (numpy/scikit-learn only).

Segmentation: overlap scores of binary masks. Classification: balanced accuracy, per-class
report, calibration and melanoma operating points.
"""

from .classification import (
    OperatingPoint,
    balanced_accuracy,
    classification_report_dict,
    confusion_matrix,
    expected_calibration_error,
    reliability_bins,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)
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
    "ISIC_JACCARD_THRESHOLD",
    "dice",
    "dice_batch",
    "iou",
    "iou_batch",
    "segmentation_scores",
    "summarise_scores",
    "thresholded_jaccard",
    "thresholded_jaccard_batch",
    "OperatingPoint",
    "balanced_accuracy",
    "classification_report_dict",
    "confusion_matrix",
    "expected_calibration_error",
    "reliability_bins",
    "sensitivity_at_specificity",
    "specificity_at_sensitivity",
]
