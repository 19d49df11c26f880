"""Test-time augmentation views: the 8 dihedral views of a square crop, optionally at several zooms.

Dermoscopy has no up, down, left or right, so the 8 symmetries of the square (`dihedral`) are views of
the same lesion. A zoom (`zoom`) is a milder assumption: the lesion crop already has a margin around the
lesion, and zooming in by 10-25 % mostly trims that margin. `tta_views` stacks every (scale, view) pair
of a batch so a model sees them in one call; `average_views` folds the predictions back.
"""

from __future__ import annotations

import cv2
import numpy as np

from .training.features import DIHEDRAL, dihedral

#: Plain TTA: the 8 dihedral views at the crop's own scale.
DEFAULT_SCALES = (1.0,)


def check_scales(scales) -> tuple[float, ...]:
    """Scales as a tuple of floats in [0.5, 2]; an empty or out-of-range list is an error that says so."""
    values = tuple(float(s) for s in scales)
    if not values or any(not (0.5 <= s <= 2.0) for s in values):
        raise ValueError(f"TTA scales must be 1 or more numbers between 0.5 and 2 (1 = the crop as it is), "
                         f"got {list(scales)}")
    return values


def zoom(images: np.ndarray, scale: float) -> np.ndarray:
    """Zoom a batch (N, S, S, C) of square images about the centre, keeping the size.

    scale > 1 zooms in (the centre S/scale square, resized to S); scale < 1 zooms out (the image shrunk
    to S*scale and padded by reflection, as the crops themselves are); scale 1 returns the input.
    """
    if scale == 1.0:
        return images
    size = images.shape[1]
    if scale > 1.0:
        side = max(1, int(round(size / scale)))
        start = (size - side) // 2
        window = images[:, start : start + side, start : start + side]
        return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR) for image in window])
    side = max(1, int(round(size * scale)))
    before = (size - side) // 2
    after = size - side - before
    shrunk = [cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA) for image in images]
    return np.stack([cv2.copyMakeBorder(image, before, after, before, after, cv2.BORDER_REFLECT_101)
                     for image in shrunk])


def tta_views(inputs: np.ndarray, scales=DEFAULT_SCALES) -> np.ndarray:
    """All (scale, dihedral view) versions of a batch, stacked: shape (len(scales) * 8 * N, S, S, C)."""
    return np.concatenate([dihedral(zoom(inputs, scale), view)
                           for scale in check_scales(scales) for view in range(len(DIHEDRAL))])


def view_count(scales=DEFAULT_SCALES) -> int:
    return len(check_scales(scales)) * len(DIHEDRAL)


def identity_view_start(n_images: int, scales=DEFAULT_SCALES) -> int | None:
    """Row of `tta_views` output where the un-augmented batch starts (view 0 at scale 1); None without scale 1."""
    scales = check_scales(scales or DEFAULT_SCALES)
    return scales.index(1.0) * len(DIHEDRAL) * n_images if 1.0 in scales else None


def average_views(probs: np.ndarray, n_images: int) -> np.ndarray:
    """Mean over views of predictions made on `tta_views` output (views-major order)."""
    return probs.reshape(-1, n_images, probs.shape[-1]).mean(axis=0)
