"""Test-time augmentation views: the 8 dihedral views of a square crop, optionally at several zooms, or
views drawn from the training augmentation.

Dermoscopy has no up, down, left or right, so the 8 symmetries of the square (`dihedral`) are views of
the same lesion. A zoom (`zoom`) is a milder assumption: the lesion crop already has a margin around the
lesion, and zooming in by 10-25 % mostly trims that margin. *Augmented* views (`augmented_views`) go
further: 16 fixed draws of the augmentation the classifier was trained with (turn, flip, small rotation,
zoom, colour jitter), i.e. views of the kind the model learned to treat as the same lesion.
`tta_views` stacks every view of a batch so a model sees them in one call; `average_views` folds the
predictions back.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

#: The 8 symmetries of the square (4 turns x optional flip): dermoscopy has no up, down, left or right.
DIHEDRAL = tuple((turns, flip) for flip in (False, True) for turns in range(4))


def dihedral(images: np.ndarray, index: int) -> np.ndarray:
    """View `index` (0..7) of a batch (N, H, W, C) of square images; view 0 is the identity."""
    turns, flip = DIHEDRAL[index]
    out = np.rot90(images, k=turns, axes=(1, 2))
    return np.ascontiguousarray(out[:, :, ::-1] if flip else out)


#: Plain TTA: the 8 dihedral views at the crop's own scale.
DEFAULT_SCALES = (1.0,)

#: Training-style TTA: this many views drawn from the training augmentation (`augmented_view`), seeded.
AUGMENTED_VIEW_COUNT = 16
AUGMENTED_VIEW_SEED = 0


def check_scales(scales) -> tuple[float, ...]:
    """Scales as a tuple of floats in [0.5, 2]; an empty or out-of-range list is an error that says so."""
    values = tuple(float(s) for s in scales)
    if not values or any(not (0.5 <= s <= 2.0) for s in values):
        raise ValueError(
            f"TTA scales must be 1 or more numbers between 0.5 and 2 (1 = the crop as it is), got {list(scales)}"
        )
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
    return np.stack(
        [cv2.copyMakeBorder(image, before, after, before, after, cv2.BORDER_REFLECT_101) for image in shrunk]
    )


def tta_views(inputs: np.ndarray, scales=DEFAULT_SCALES, augmented: bool = False) -> np.ndarray:
    """All TTA views of a batch, stacked views-major: every (scale, dihedral view) pair, shape
    (len(scales) * 8 * N, S, S, C); or with `augmented` the `AUGMENTED_VIEW_COUNT` training-style views
    (`augmented_views`), which draw their own turns and zooms, so they take no scales."""
    if augmented:
        if check_scales(scales or DEFAULT_SCALES) != DEFAULT_SCALES:
            raise ValueError("augmented TTA views draw their own turns and zooms: leave the scales out")
        return augmented_views(inputs)
    return np.concatenate(
        [dihedral(zoom(inputs, scale), view) for scale in check_scales(scales) for view in range(len(DIHEDRAL))]
    )


def view_count(scales=DEFAULT_SCALES, augmented: bool = False) -> int:
    return AUGMENTED_VIEW_COUNT if augmented else len(check_scales(scales)) * len(DIHEDRAL)


def identity_view_start(n_images: int, scales=DEFAULT_SCALES, augmented: bool = False) -> int | None:
    """Row of `tta_views` output where the un-augmented batch starts (view 0 at scale 1); None where no view
    is the input as it is (no scale 1, or augmented views)."""
    if augmented:
        return None
    scales = check_scales(scales or DEFAULT_SCALES)
    return scales.index(1.0) * len(DIHEDRAL) * n_images if 1.0 in scales else None


def describe_views(scales=None, augmented: bool = False) -> str:
    """The TTA views in words, for records and titles: "8 dihedral", "16 dihedral at scales 1, 1.2", ..."""
    if augmented:
        return f"{AUGMENTED_VIEW_COUNT} augmented"
    scales = check_scales(scales or DEFAULT_SCALES)
    at = "" if scales == DEFAULT_SCALES else f" at scales {', '.join(f'{s:g}' for s in scales)}"
    return f"{view_count(scales)} dihedral{at}"


def average_views(probs: np.ndarray, n_images: int) -> np.ndarray:
    """Mean over views of predictions made on `tta_views` output (views-major order)."""
    return probs.reshape(-1, n_images, probs.shape[-1]).mean(axis=0)


@functools.cache
def _augment_batch(height: int, width: int):
    """The training augmentation over a batch of any length with one seed pair, as a graph traced once per
    image size (the augmentation needs static sizes): built eagerly per call, it would cost a trace
    (~0.3 s) every time `predict` is asked for one image."""
    import tensorflow as tf

    # deferred: loads TensorFlow
    from ..data.tfdata import Augmentation

    augmentation = Augmentation()

    @tf.function(input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32), tf.TensorSpec((2,), tf.int64)])
    def augment(images, seed_pair):
        blank = tf.zeros_like(images[0, ..., :1])
        return tf.map_fn(lambda image: augmentation(image, blank, seed_pair)[0], images, fn_output_signature=tf.float32)

    return augment


def augmented_view(images: np.ndarray, index: int, seed: int = AUGMENTED_VIEW_SEED) -> np.ndarray:
    """View `index` of a batch (N, S, S, C) drawn from the training augmentation
    (`skinlib.data.tfdata.Augmentation`): one turn/flip, a small rotation, zoom and colour jitter, drawn once
    from the seed pair (seed, index) and applied alike to every image. An image's view therefore never
    depends on the batch it came in: `predict` on one image sees what `evaluate` on a whole split sees."""
    import tensorflow as tf

    images = np.asarray(images, np.float32)
    if not len(images):
        return images
    augment = _augment_batch(images.shape[1], images.shape[2])
    return augment(tf.constant(images), tf.constant([seed, index], tf.int64)).numpy()


def augmented_views(inputs: np.ndarray, count: int = AUGMENTED_VIEW_COUNT) -> np.ndarray:
    """`count` training-style views of a batch, stacked views-major like `tta_views`: (count * N, S, S, C)."""
    if count < 1:
        raise ValueError(f"augmented TTA needs at least 1 view, got {count}")
    return np.concatenate([augmented_view(inputs, index) for index in range(count)])


def tta_record(tta: bool, scales, augmented: bool) -> dict:
    """What a result records about its TTA views beyond `tta` itself (nothing for the plain 8 views)."""
    if not tta or (scales is None and not augmented):
        return {}
    return {"tta_views": describe_views(scales, augmented), **({"tta_scales": list(scales)} if scales else {})}


def tta_title(tta: bool, scales, augmented: bool) -> str:
    """How a report title names the views."""
    return f" (TTA, {describe_views(scales, augmented)} views)" if tta else ""
