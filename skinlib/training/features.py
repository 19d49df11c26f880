"""Frozen-backbone feature caching: the trick that makes stage-2 training fit a 2-core CPU.

The classifier is split at a backbone layer (default `stage5_out`, stride 16). Everything below it
stays frozen, so its output for a given input never changes: compute it once per augmented view,
keep it (float16) in memory and on disk, and train only the part above it (the last backbone stages,
attention and head) on those features, epoch after epoch, many times faster than end to end.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from ..runtime.views import dihedral


def split_model(model: keras.Model, layer_name: str) -> tuple[keras.Model, keras.Model]:
    """(lower, upper) sharing weights with `model`: image -> features -> probabilities."""
    features = model.get_layer(layer_name).output
    return keras.Model(model.input, features, name="lower"), keras.Model(features, model.output, name="upper")


def _augmented_batches(images: np.ndarray, seed: int, batch_size: int, augmentation=None):
    """Yield augmented float32 batches (flips, turns, affine, colour; `augmentation`, default the standard
    `skinlib.data.tfdata.Augmentation`) of `images`, seeded."""
    # deferred: loads TensorFlow
    from ..data.tfdata import make_dataset

    data = make_dataset(
        images,
        labels=np.zeros(len(images), np.int64),
        training=True,
        batch_size=batch_size,
        seed=seed,
        shuffle=False,
        augmentation=augmentation,
    )
    for x, _ in data:
        yield x.numpy()


def extract(
    lower: keras.Model,
    images: np.ndarray,
    views: int,
    mode: str,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
    augmentation=None,
) -> np.ndarray:
    """Features of `views` views of every image, shape (views, N, h, w, c), float16.

    `mode="augment"`: random training augmentations (view v uses seed `seed + v`) drawn from `augmentation`
    (None: the standard one).
    `mode="dihedral"`: the fixed 8 flips/turns, for validation, test and test-time augmentation.
    """
    if mode not in ("augment", "dihedral"):
        raise ValueError("mode must be 'augment' or 'dihedral'")
    shape = tuple(int(d) for d in lower.output.shape[1:])
    out = np.zeros((views, len(images)) + shape, np.float16)
    bar = tqdm(total=views * len(images), desc=f"features ({mode})", unit="view", disable=not progress)
    for view in range(views):
        if mode == "augment":
            batches = _augmented_batches(images, seed + view, batch_size, augmentation)
        else:
            batches = (
                dihedral(images[i : i + batch_size], view).astype(np.float32) for i in range(0, len(images), batch_size)
            )
        start = 0
        for batch in batches:
            out[view, start : start + len(batch)] = lower(batch, training=False).numpy().astype(np.float16)
            start += len(batch)
            bar.update(len(batch))
    bar.close()
    return out


def cached_extract(cache_dir: Path | None, key_parts, *args, **kwargs) -> np.ndarray:
    """`extract`, memoised on disk as `.npy` under `cache_dir` (None: no cache)."""
    if cache_dir is None:
        return extract(*args, **kwargs)
    digest = hashlib.sha1(repr(key_parts).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"features-{digest}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    features = extract(*args, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, features)
    tmp.replace(path)
    return features


def image_digest(images: np.ndarray) -> str:
    """A short fingerprint of an image array, so cached features follow their inputs."""
    return hashlib.sha1(np.ascontiguousarray(images[:, ::7, ::7]).tobytes()).hexdigest()[:16] + f"-{images.shape}"


class FeatureSequence(keras.utils.PyDataset):
    """Batches of cached features: each epoch every image appears once, through a random one of its views."""

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        num_classes: int,
        batch_size: int = 64,
        seed: int = 0,
        shuffle: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.features, self.labels = features, np.asarray(labels)
        self.num_classes, self.batch_size, self.shuffle = num_classes, batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return int(np.ceil(len(self.labels) / self.batch_size))

    def on_epoch_end(self) -> None:
        count = len(self.labels)
        self.order = self.rng.permutation(count) if self.shuffle else np.arange(count)
        self.views = self.rng.integers(0, self.features.shape[0], count) if self.shuffle else np.zeros(count, int)

    def __getitem__(self, index: int):
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        x = np.stack([self.features[self.views[r], r] for r in rows]).astype(np.float32)
        y = np.eye(self.num_classes, dtype=np.float32)[self.labels[rows]]
        return x, y
