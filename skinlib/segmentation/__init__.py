"""Stage 1: lesion segmentation. `classical` is the no-learning pipeline the course starts with."""

from .classical import (
    CHANNELS,
    STEP_NAMES,
    ClassicalParams,
    as_rgb,
    centre_disc_baseline,
    classical_steps,
    clean_mask,
    component_scores,
    extract_channel,
    field_of_view,
    fill_holes,
    hair_mask,
    has_contrast,
    remove_hair,
    resize_mask,
    segment_classical,
    select_lesion,
    smooth,
    threshold_dark,
)

__all__ = [
    "CHANNELS", "STEP_NAMES", "ClassicalParams", "as_rgb", "centre_disc_baseline", "classical_steps",
    "clean_mask", "component_scores", "extract_channel", "field_of_view", "fill_holes", "hair_mask",
    "has_contrast", "remove_hair", "resize_mask", "segment_classical", "select_lesion", "smooth",
    "threshold_dark",
]
