"""Clean a predicted mask and cut the lesion out for stage 2."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from .classical import fill_holes

log = logging.getLogger(__name__)

#: A mask covering less than this fraction of the image is treated as "no lesion found".
MIN_LESION_FRACTION = 0.01
#: A mask covering more than this fraction is implausible (the whole photo, or a failed threshold).
MAX_LESION_FRACTION = 0.95
#: Below this colour difference between the mask and the rest of the image (Euclidean distance of the
#: mean colours in OpenCV's 8-bit Lab) the "lesion" is indistinguishable from its surroundings: a blank or
#: uniform image. On the HAM10000 test split the smallest difference of a real lesion is about 4.
MIN_LESION_CONTRAST = 2.0


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest connected region: a dermoscopy photo is centred on one lesion."""
    mask = np.asarray(mask, bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest


def postprocess_mask(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Threshold a probability map, keep the largest component and fill its holes."""
    mask = np.asarray(probabilities) > threshold
    if not mask.any():
        return mask
    return fill_holes(largest_component(mask))


@dataclass(frozen=True)
class Crop:
    """A square lesion crop and how it was made (`reason` is empty when the mask was used)."""

    image: np.ndarray
    box: tuple[int, int, int, int]  # top, left, bottom, right in the original image (may extend past it)
    used_mask: bool
    reason: str = ""


def lesion_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """Distance between the mean Lab colours inside and outside the mask (nan if either side is empty)."""
    mask = np.asarray(mask, bool)
    if not mask.any() or mask.all():
        return float("nan")
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    lab = cv2.cvtColor(np.ascontiguousarray(image[..., :3], dtype=np.uint8), cv2.COLOR_RGB2LAB).astype(np.float64)
    return float(np.linalg.norm(lab[mask].mean(axis=0) - lab[~mask].mean(axis=0)))


def mask_problem(
    mask: np.ndarray,
    min_fraction: float = MIN_LESION_FRACTION,
    max_fraction: float = MAX_LESION_FRACTION,
    image: np.ndarray | None = None,
    min_contrast: float = MIN_LESION_CONTRAST,
) -> str:
    """Why a mask should not be trusted for cropping, or "" when it is plausible.

    With the `image`, a mask whose region has the colour of its surroundings is refused too: a
    segmentation network asked about a blank or uniform image still draws *something*.
    """
    fraction = float(np.asarray(mask, bool).mean()) if np.size(mask) else 0.0
    if fraction == 0:
        return "empty mask: no lesion found"
    if fraction < min_fraction:
        return f"mask covers only {100 * fraction:.2f} % of the image (< {100 * min_fraction:g} %)"
    if fraction > max_fraction:
        return f"mask covers {100 * fraction:.1f} % of the image (> {100 * max_fraction:g} %)"
    if image is not None:
        contrast = lesion_contrast(image, mask)
        if contrast < min_contrast:
            return (
                f"no visible lesion: the masked region has the colour of its surroundings "
                f"(contrast {contrast:.1f} < {min_contrast:g})"
            )
    return ""


def lesion_crop(
    image: np.ndarray,
    mask: np.ndarray,
    margin: float = 0.25,
    min_fraction: float = MIN_LESION_FRACTION,
    max_fraction: float = MAX_LESION_FRACTION,
) -> Crop:
    """A square crop around the lesion's bounding box, widened by `margin` (a fraction of its side).

    Regions outside the photo are filled by edge reflection, so the crop keeps its square shape.
    When the mask is empty or implausible the full image is returned instead and the reason is logged.
    """
    image = np.asarray(image)
    mask = np.asarray(mask, bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
    problem = mask_problem(mask, min_fraction, max_fraction, image=image)
    if problem:
        log.info("lesion_crop: using the full image (%s)", problem)
        return Crop(image=image, box=(0, 0, image.shape[0], image.shape[1]), used_mask=False, reason=problem)
    rows, cols = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    side = int(round(max(bottom - top, right - left) * (1 + 2 * margin)))
    centre_r, centre_c = (top + bottom) / 2, (left + right) / 2
    top, left = int(round(centre_r - side / 2)), int(round(centre_c - side / 2))
    box = (top, left, top + side, left + side)
    pad = max(0, -top, -left, box[2] - image.shape[0], box[3] - image.shape[1])
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101) if pad else image
    crop = padded[top + pad : top + pad + side, left + pad : left + pad + side]
    return Crop(image=crop, box=box, used_mask=True)
