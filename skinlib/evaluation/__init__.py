"""Evaluation metrics (numpy/scikit-learn only).

Segmentation: overlap scores of binary masks. Classification: balanced accuracy, per-class
report, calibration and melanoma operating points; on a collection of some of the classes, the
7-class answer as is and the answer restricted to the classes present (`subset`).
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
from .subset import collection_report, subset_readings

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
    "collection_report",
    "subset_readings",
]
