"""Test-time augmentation views: the 8 dihedral views of a square crop, optionally at several zooms, or
views drawn from the training augmentation; `Views` is a choice of them as one value.

Dermoscopy has no up, down, left or right, so the 8 symmetries of the square (`dihedral`) are views of
the same lesion. A zoom (`zoom`) is a milder assumption: the lesion crop already has a margin around the
lesion, and zooming in by 10-25 % mostly trims that margin. *Augmented* views (`augmented_views`) go
further: 16 fixed draws of the augmentation the classifier was trained with (turn, flip, small rotation,
zoom, colour jitter), i.e. views of the kind the model learned to treat as the same lesion.
`Views` is what a prediction is asked to average: the single input (`Views.single()`), the dihedral views at
one or more scales (`Views.dihedral(scales)`) or augmented draws (`Views.augmented(count, seed)`). It expands
a batch into every view (views-major, so a model sees them in one call), folds the predictions back, names the
calibration fitted for it and says what a result records about it. A combination that makes no sense (scales
without TTA, scales with augmented draws) cannot be built.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

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


def average_views(probs: np.ndarray, n_images: int) -> np.ndarray:
    """Mean over views of predictions made on `Views.expand` output (views-major order)."""
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


def augmented_views(
    inputs: np.ndarray, count: int = AUGMENTED_VIEW_COUNT, seed: int = AUGMENTED_VIEW_SEED
) -> np.ndarray:
    """`count` training-style views of a batch, stacked views-major like `Views.expand`: (count * N, S, S, C)."""
    if count < 1:
        raise ValueError(f"augmented TTA needs at least 1 view, got {count}")
    return np.concatenate([augmented_view(inputs, index, seed) for index in range(count)])


#: What `Views.kind` can be.
VIEW_KINDS = ("single", "dihedral", "augmented")


@dataclass(frozen=True)
class Views:
    """The views a prediction averages, as one value: build it with `single()`, `dihedral(scales)` or
    `augmented(count, seed)`; a combination that makes no sense is refused when built.

    `scales` belong to dihedral views only (1 = the crop as it is), `draws` and `seed` to augmented ones.
    """

    kind: str = "single"
    scales: tuple[float, ...] = ()
    draws: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.kind not in VIEW_KINDS:
            raise ValueError(f"views must be one of {VIEW_KINDS}, not {self.kind!r}")
        if self.kind == "dihedral":
            object.__setattr__(self, "scales", check_scales(self.scales))
        elif self.scales:
            raise ValueError(
                "augmented TTA views draw their own turns and zooms: leave the scales out"
                if self.kind == "augmented"
                else "scales are views of test-time augmentation: use Views.dihedral(scales)"
            )
        if self.kind == "augmented":
            if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 1:
                raise ValueError(f"augmented TTA needs at least 1 view, got {self.draws!r}")
        elif self.draws or self.seed:
            raise ValueError("a count of draws and a seed belong to augmented views: use Views.augmented(count, seed)")

    @classmethod
    def single(cls) -> Views:
        """No TTA: the input as it is."""
        return cls("single")

    @classmethod
    def dihedral(cls, scales=DEFAULT_SCALES) -> Views:
        """The 8 dihedral views of the crop at each scale (`zoom`; 1 = as it is), e.g. (1.0, 1.2)."""
        return cls("dihedral", scales=tuple(scales))

    @classmethod
    def augmented(cls, count: int = AUGMENTED_VIEW_COUNT, seed: int = AUGMENTED_VIEW_SEED) -> Views:
        """`count` fixed draws of the training augmentation (`augmented_view`), seeded; they take no scales."""
        return cls("augmented", draws=count, seed=seed)

    @property
    def is_tta(self) -> bool:
        """Whether these are test-time augmentation views (anything but the single input)."""
        return self.kind != "single"

    @property
    def count(self) -> int:
        """Views per image."""
        return {"single": 1, "dihedral": len(self.scales) * len(DIHEDRAL), "augmented": self.draws}[self.kind]

    @property
    def calibration_key(self) -> str:
        """Which calibration of the classifier's model.json applies (`skinlib.models.folder.CALIBRATION_KEYS`):
        "plain", "tta" (dihedral views at any scales reuse the temperature fitted on the 8 at scale 1) or
        "tta_augmented" (their own, from `skinlib fit-tta`)."""
        return {"single": "plain", "dihedral": "tta", "augmented": "tta_augmented"}[self.kind]

    def expand(self, batch: np.ndarray) -> np.ndarray:
        """Every view of a batch (N, S, S, C), stacked views-major: (count * N, S, S, C). Dihedral views run
        over (scale, symmetry) pairs, scale-major; the single view is the batch itself."""
        if self.kind == "single":
            return batch
        if self.kind == "augmented":
            return augmented_views(batch, self.draws, self.seed)
        return np.concatenate(
            [dihedral(zoom(batch, scale), view) for scale in self.scales for view in range(len(DIHEDRAL))]
        )

    def fold(self, probs: np.ndarray, n_images: int) -> np.ndarray:
        """Predictions on `expand` output back to one row per image: the mean over views."""
        return probs if self.kind == "single" else average_views(probs, n_images)

    def identity_start(self, n_images: int) -> int | None:
        """Row of `expand` output where the un-augmented batch starts (dihedral view 0 at scale 1); None where
        no view is the input as it is (no scale 1, or augmented draws)."""
        if self.kind == "single":
            return 0
        if self.kind == "augmented" or 1.0 not in self.scales:
            return None
        return self.scales.index(1.0) * len(DIHEDRAL) * n_images

    def describe(self) -> str:
        """The views in words: "single view", "8 dihedral", "16 dihedral at scales 1, 1.2", "16 augmented"."""
        if self.kind == "single":
            return "single view"
        if self.kind == "augmented":
            return f"{self.draws} augmented"
        at = "" if self.scales == DEFAULT_SCALES else f" at scales {', '.join(f'{s:g}' for s in self.scales)}"
        return f"{self.count} dihedral{at}"

    def record(self) -> dict:
        """What a result records about its views: "tta", and for views other than the plain 8 dihedral ones
        "tta_views" (in words) and, for dihedral views, "tta_scales"."""
        out = {"tta": self.is_tta}
        if self.is_tta and self != Views.dihedral():
            out["tta_views"] = self.describe()
            if self.kind == "dihedral":
                out["tta_scales"] = list(self.scales)
        return out

    def title(self) -> str:
        """How a report title names the views ("" without TTA)."""
        return f" (TTA, {self.describe()} views)" if self.is_tta else ""


#: The default of every prediction: the input as it is.
SINGLE = Views.single()
