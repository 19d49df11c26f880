"""Feed TensorFlow: decode once into memory (optionally cached on disk), then augment on the fly.

Decoding thousands of JPEGs every epoch would leave a 2-core CPU busy with I/O instead of training,
so images are decoded and resized once (`load_arrays`), kept as uint8, and `make_dataset` builds a
`tf.data` pipeline over those arrays with seeded, per-epoch-different augmentation and prefetch.
Images leave the pipeline as float32 RGB in [0, 255]; each model rescales inside itself.
"""

from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from keras import ops
from tqdm.auto import tqdm

from .classes import CLASSES
from .images import fit_size, read_image, read_mask

CACHE_ENV = "SKINLIB_CACHE"


def default_cache_dir() -> Path:
    """Where decoded arrays are cached: $SKINLIB_CACHE, else ~/.cache/skinlib."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "skinlib"))


def _cache_key(paths, size, fit, with_masks) -> str:
    digest = hashlib.sha1()
    for path in paths:
        stat = Path(path).stat()
        digest.update(f"{path}|{stat.st_size}|{int(stat.st_mtime)}\n".encode())
    digest.update(f"{tuple(size)}|{fit}|{with_masks}".encode())
    return digest.hexdigest()[:20]


def load_arrays(
    frame,
    size=(150, 200),
    fit: str = "pad",
    with_masks: bool = False,
    progress: bool = True,
    cache: bool | str | Path = False,
    workers: int = 2,
):
    """Decode and resize the images (and masks) of `frame` into uint8 / bool arrays.

    `size` is (height, width). `cache=True` (or a folder) stores the arrays as `.npz` keyed by the files,
    their sizes and modification times, so a second notebook reads them in a second instead of re-decoding.
    Returns `(images, masks)`; `masks` is None unless `with_masks`.
    """
    paths = [str(p) for p in frame["image_path"]]
    mask_paths = [str(p) if p else None for p in frame["mask_path"]] if with_masks else []
    if with_masks and any(p is None for p in mask_paths):
        absent = [i for i, p in zip(frame["image_id"], mask_paths) if p is None]
        raise FileNotFoundError(
            f"{len(absent)} image(s) have no lesion mask, e.g. {absent[:5]}; "
            "masks live in HAM10000_segmentations_lesion_tschandl/"
        )
    cache_file = None
    if cache:
        folder = default_cache_dir() if cache is True else Path(cache)
        cache_file = folder / f"arrays-{_cache_key(paths + [p for p in mask_paths if p], size, fit, with_masks)}.npz"
        if cache_file.is_file():
            stored = np.load(cache_file)
            return stored["images"], (stored["masks"] if with_masks else None)

    def one(index):
        image = fit_size(read_image(paths[index]), size, fit)
        mask = fit_size(read_mask(mask_paths[index]), size, fit) if with_masks else None
        return image, mask

    images = np.zeros((len(paths), size[0], size[1], 3), np.uint8)
    masks = np.zeros((len(paths), size[0], size[1]), bool) if with_masks else None
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(one, range(len(paths)))
        for index, (image, mask) in enumerate(
            tqdm(results, total=len(paths), desc="decoding", unit="img", disable=not progress)
        ):
            images[index] = image
            if with_masks:
                masks[index] = mask
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, **({"masks": masks} if with_masks else {}))
        tmp.replace(cache_file)
    return images, masks


#: The augmentations a recipe can name (`ClassifierConfig.augment`, `UNetConfig.augment`, `--augment`).
AUGMENTATIONS = ("standard", "battery")


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation. Dermoscopy has no "up", so flips and 90° turns are free; the rest is mild.

    On non-square images a 90° turn would change the shape, so the turned image is fitted back into the
    original frame (aspect kept, black bars), exactly as a portrait photo would be at inference.

    The "shift" part (off by default, so the default draws exactly what it always drew) imitates another
    clinic, as `skinlib.evaluation.shifts.SHIFTS` measures it: a colour cast (per-channel log-gains in
    [-cast, cast], centred so their product is 1), an exposure gain (log-uniform in `exposure`), Gaussian blur
    (sigma a share of the short side, uniform in `blur_share`, with probability `blur_probability`), a dark
    dermoscope ring (radius a share of the half-diagonal, uniform in `ring_radius`, with `ring_probability`)
    and JPEG re-encoding (quality uniform in `jpeg_quality`, with `jpeg_probability`). They change the image
    only, never the mask. `matched_to_battery()` spans the battery's settings.
    """

    flips: bool = True
    rot90: bool = True
    max_rotation_deg: float = 20.0
    scale_range: tuple[float, float] = (0.9, 1.15)
    brightness: float = 0.10
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 0.02
    cast: float = 0.0
    exposure: tuple[float, float] = (1.0, 1.0)
    blur_share: tuple[float, float] = (0.0, 0.0)
    blur_probability: float = 0.0
    ring_radius: tuple[float, float] = (1.0, 1.0)
    ring_probability: float = 0.0
    jpeg_quality: tuple[int, int] = (100, 100)
    jpeg_probability: float = 0.0

    def __post_init__(self):
        for name in ("blur_probability", "ring_probability", "jpeg_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        low, high = self.jpeg_quality
        if not 0 <= low <= high <= 100 or (self.jpeg_probability and low == 100):
            raise ValueError(f"jpeg_quality is a range within 0-100 (below 100 to re-encode), got {self.jpeg_quality}")
        if self.exposure[0] <= 0 or self.exposure[0] > self.exposure[1]:
            raise ValueError(f"exposure is a range of positive gains, got {self.exposure}")
        if self.blur_probability and not 0 < self.blur_share[0] <= self.blur_share[1]:
            raise ValueError(f"blur_share is a range of positive sigma shares, got {self.blur_share}")
        if self.cast < 0:
            raise ValueError(f"cast is the largest log-gain per channel, >= 0, got {self.cast}")

    @classmethod
    def matched_to_battery(cls) -> Augmentation:
        """The standard augmentation plus every shift the battery measures, at its mild to strong settings:
        casts up to its strong warm/cool (1.15² / 1 / 1.15⁻²), exposure 0.7-1.3, blur sigma 0.5-2 % of the short
        side, JPEG quality 10-60, a ring of radius 0.6-0.8 of the half-diagonal, zoom 0.75-1.3."""
        return cls(
            scale_range=(0.75, 1.3),
            cast=2 * math.log(1.15),
            exposure=(0.7, 1.3),
            blur_share=(0.005, 0.02),
            blur_probability=0.5,
            ring_radius=(0.6, 0.8),
            ring_probability=0.3,
            jpeg_quality=(10, 60),
            jpeg_probability=0.5,
        )

    @classmethod
    def named(cls, name: str) -> Augmentation:
        """The augmentation a recipe names: "standard" (the default) or "battery" (`matched_to_battery`)."""
        if name not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, not {name!r}")
        return cls() if name == "standard" else cls.matched_to_battery()

    @property
    def shifts(self) -> bool:
        """Whether any part of the battery-matched shifts is on (off: the draws are exactly the old ones)."""
        probabilities = (self.blur_probability, self.ring_probability, self.jpeg_probability)
        return bool(self.cast or self.exposure != (1.0, 1.0) or any(probabilities))

    def __call__(self, image, mask, seed):
        """Augment one float32 image (H, W, 3) in [0, 255] and its mask (H, W, 1) with the same geometry."""
        seeds = tf.random.experimental.stateless_split(seed, num=8)
        height, width = image.shape[0], image.shape[1]
        stacked = tf.concat([image, mask], axis=-1)
        if self.flips:
            stacked = tf.image.stateless_random_flip_left_right(stacked, seeds[0])
            stacked = tf.image.stateless_random_flip_up_down(stacked, seeds[1])
        if self.rot90:
            stacked = _random_rot90(stacked, seeds[2], height, width)
        if self.max_rotation_deg or self.scale_range != (1.0, 1.0):
            stacked = self._random_affine(stacked, seeds[3], height, width)
        image, mask = stacked[..., :3], tf.cast(stacked[..., 3:] > 127.5, tf.float32) * 255.0
        image = self._colour_jitter(image / 255.0, seeds[4:])
        if self.shifts:  # its own seeds, folded off the pair, so the draws above stay what they were
            image = self._shift(image, tf.random.experimental.stateless_split(_fold(seed), num=6), height, width)
        image = image * 255.0
        # the 90° branch hides the static shape from TensorFlow; models need it back
        return tf.ensure_shape(image, (height, width, 3)), tf.ensure_shape(mask, (height, width, 1))

    def _random_affine(self, stacked, seed, height, width):
        values = tf.random.stateless_uniform((2,), seed, dtype=tf.float32)
        angle = (values[0] * 2.0 - 1.0) * self.max_rotation_deg * math.pi / 180.0
        low, high = self.scale_range
        scale = low + values[1] * (high - low)
        cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        transform = tf.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])
        return ops.image.affine_transform(stacked, transform, interpolation="bilinear", fill_mode="reflect")

    def _colour_jitter(self, image, seeds):
        if self.brightness:
            image = tf.image.stateless_random_brightness(image, self.brightness, seeds[0])
        if self.contrast:
            image = tf.image.stateless_random_contrast(image, 1 - self.contrast, 1 + self.contrast, seeds[1])
        if self.saturation:
            image = tf.image.stateless_random_saturation(image, 1 - self.saturation, 1 + self.saturation, seeds[2])
        if self.hue:
            image = tf.image.stateless_random_hue(image, self.hue, seeds[3])
        return tf.clip_by_value(image, 0.0, 1.0)

    def _shift(self, image, seeds, height, width):
        """The battery-matched shifts on an image in [0, 1]: cast, exposure, blur, ring, then JPEG (the order
        of a capture: light, optics, the dermatoscope's frame, the file)."""
        image = tf.ensure_shape(image, (height, width, 3))  # the 90° branch hid the static shape
        if self.cast:
            logs = tf.random.stateless_uniform((3,), seeds[0], -self.cast, self.cast)
            image = image * tf.exp(logs - tf.reduce_mean(logs))
        if self.exposure != (1.0, 1.0):
            low, high = math.log(self.exposure[0]), math.log(self.exposure[1])
            image = image * tf.exp(tf.random.stateless_uniform((), seeds[1], low, high))
        image = tf.clip_by_value(image, 0.0, 1.0)
        draws = tf.random.stateless_uniform((6,), seeds[2])
        if self.blur_probability:
            low, high = (share * min(height, width) for share in self.blur_share)
            sigma = low + draws[0] * (high - low)
            image = tf.cond(draws[1] < self.blur_probability, lambda: _gaussian_blur(image, sigma, high), lambda: image)
        if self.ring_probability:
            low, high = self.ring_radius
            ring = _ring(height, width, low + draws[2] * (high - low))
            image = tf.where(draws[3] < self.ring_probability, image * ring, image)
        if self.jpeg_probability:
            low, high = self.jpeg_quality  # TensorFlow draws from [low, high): include high when it can
            image = tf.cond(
                draws[4] < self.jpeg_probability,
                lambda: tf.image.stateless_random_jpeg_quality(image, low, min(high + 1, 100), seeds[3]),
                lambda: image,
            )
        return tf.ensure_shape(image, (height, width, 3))


def _fold(seed):
    """A second seed pair from `seed`, independent of `stateless_split(seed, ...)`."""
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 1)


def _gaussian_blur(image, sigma, max_sigma: float):
    """Separable Gaussian blur with a drawn `sigma` (pixels), kernel sized for `max_sigma`, reflected border
    (OpenCV's default, as `shifts.blur` uses)."""
    radius = max(1, math.ceil(3 * max_sigma))
    radius = min(radius, image.shape[0] - 1, image.shape[1] - 1)
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    weights = tf.exp(-0.5 * tf.square(offsets / tf.maximum(sigma, 1e-3)))
    weights = weights / tf.reduce_sum(weights)
    padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    rows = tf.tile(tf.reshape(weights, (-1, 1, 1, 1)), (1, 1, 3, 1))
    columns = tf.tile(tf.reshape(weights, (1, -1, 1, 1)), (1, 1, 3, 1))
    blurred = tf.nn.depthwise_conv2d(padded, rows, (1, 1, 1, 1), "VALID")
    return tf.nn.depthwise_conv2d(blurred, columns, (1, 1, 1, 1), "VALID")[0]


def _ring(height: int, width: int, radius_share):
    """1 inside a centred circle of `radius_share` x the half-diagonal, 0 outside, a soft edge between: the
    light a contact dermatoscope lets through (as `shifts.dermoscope_ring`)."""
    y, x = np.mgrid[:height, :width].astype(np.float32)
    r = np.hypot(y - (height - 1) / 2, x - (width - 1) / 2) / np.hypot(height / 2, width / 2)
    return tf.clip_by_value((radius_share - tf.constant(r, tf.float32)) / 0.05, 0.0, 1.0)[..., None]


def _random_rot90(stacked, seed, height, width):
    k = tf.random.stateless_uniform((), seed, minval=0, maxval=4, dtype=tf.int32)
    if height == width:
        return tf.image.rot90(stacked, k)
    half_turn = tf.image.rot90(stacked, 2)
    quarter_turn = tf.image.resize_with_pad(tf.image.rot90(stacked, 1), height, width)
    turned = tf.where(k % 2 == 0, tf.where(k == 0, stacked, half_turn), quarter_turn)
    return tf.cond(k == 3, lambda: tf.image.rot90(turned, 2), lambda: turned)


def make_dataset(
    images,
    labels=None,
    masks=None,
    *,
    training: bool,
    batch_size: int = 32,
    seed: int = 0,
    augmentation: Augmentation | None = None,
    num_classes: int = len(CLASSES),
    shuffle: bool | None = None,
) -> tf.data.Dataset:
    """A batched `tf.data.Dataset` over in-memory arrays.

    Yields `(image, target)` where `image` is float32 [0, 255] and `target` is the one-hot label, the mask
    (float32 {0, 1}, shape H×W×1), or `{"label": ..., "mask": ...}` when both are given. Training shuffles and
    augments (image and mask share the same geometry), with a different but seeded draw every epoch;
    validation and test data pass through untouched, in order. `shuffle=False` augments training data
    but keeps its order (to cache features of augmented views aligned with their labels).
    """
    if labels is None and masks is None:
        raise ValueError("make_dataset needs labels, masks or both as targets")
    images = np.asarray(images)
    count = len(images)
    mask_array = (
        (np.asarray(masks, dtype=np.uint8) * 255)[..., None]
        if masks is not None
        else np.zeros((count, 1, 1, 1), np.uint8)
    )
    has_masks = masks is not None
    label_array = np.asarray(labels, dtype=np.int64) if labels is not None else np.zeros(count, np.int64)
    data = tf.data.Dataset.from_tensor_slices((images, mask_array, label_array))
    augmentation = augmentation if augmentation is not None else Augmentation()
    if training:
        if shuffle is None or shuffle:
            data = data.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        data = tf.data.Dataset.zip((data, seeds))

    def prepare(element, seed_pair=None):
        image, mask, label = element
        image = tf.cast(image, tf.float32)
        mask = tf.cast(mask, tf.float32)
        if training:
            if has_masks:
                image, mask = augmentation(image, mask, seed_pair)
            else:
                image, _ = augmentation(image, tf.zeros_like(image[..., :1]), seed_pair)
        targets = {}
        if labels is not None:
            targets["label"] = tf.one_hot(label, num_classes)
        if has_masks:
            targets["mask"] = mask / 255.0
        if len(targets) == 1:
            return image, next(iter(targets.values()))
        return image, targets

    if training:
        data = data.map(
            lambda element, seed_pair: prepare(element, seed_pair),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    else:
        data = data.map(lambda *element: prepare(element), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
