"""Is this a dermoscopy image like the training ones? A novelty score on the classifier's own features.

A softmax has no "none of these" answer: a photo of a cat still gets seven probabilities that sum to 1, often
a confident one. What does differ is the feature vector the head sees (the pooled attention output): crops
like the training ones land near the cloud of their class, other pictures away from all of them. The score
is class-conditional (Lee et al. 2018, with probabilistic PCA in place of a full covariance): the spread of
training features around their class means is modelled once, shared by all classes, as

    d(v) = sum_k (u_k . v)^2 / lambda_k  +  |v off the top K components|^2 / sigma^2

(the Mahalanobis distance inside the top principal components plus the distance off them, scaled by the
average variance left there), and an input's score is its distance to the nearest class mean, divided by that
class's median training distance:

    score(x) = min_c d(x - mean_c) / median_c

so about 1 means "as typical as an ordinary training lesion of its nearest class". Dividing by each class's
own median keeps rare, varied classes (vascular lesions) from being flagged just for being rare. The
threshold is a high percentile of the *validation* scores, so about that share of ordinary images is flagged
by chance, and it is fixed before any odd image is seen.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

#: Principal components of the within-class spread kept; the rest of the feature dimensions share one variance.
COMPONENTS = 64
#: Share of in-distribution validation images allowed above the threshold (the false-alarm rate it targets).
VALIDATION_FLAG_RATE = 0.01
FEATURE_LAYER = "head_pool"
#: A class with fewer training images than this takes the median distance of all classes as its scale.
MIN_CLASS_IMAGES = 10


@dataclass
class NoveltyModel:
    """Class means, a probabilistic PCA of the within-class spread, per-class scales and the threshold."""

    class_means: np.ndarray  # (C, D)
    components: np.ndarray  # (K, D), orthonormal rows
    variances: np.ndarray  # (K,)
    residual_variance: float
    class_scales: np.ndarray  # (C,): median training distance of each class to its own mean
    threshold: float = float("inf")

    @classmethod
    def fit(cls, features, labels, components: int = COMPONENTS) -> NoveltyModel:
        """Fit on training features (N, D) and their class labels (N,); N must exceed `components`."""
        features = np.asarray(features, np.float64)
        labels = np.asarray(labels)
        if features.ndim != 2 or len(features) <= components or len(labels) != len(features):
            raise ValueError(
                f"need features of shape (N, D) with N > {components} and one label per row, "
                f"got {features.shape} and {labels.shape}"
            )
        classes = np.unique(labels)
        if not np.array_equal(classes, np.arange(len(classes))):
            raise ValueError(f"labels must be 0..C-1 with every class present, got {classes.tolist()}")
        class_means = np.stack([features[labels == c].mean(axis=0) for c in classes])
        spread = features - class_means[labels]
        _, singular, vt = np.linalg.svd(spread, full_matrices=False)
        eigen = singular**2 / (len(features) - len(classes))
        k = min(components, len(eigen) - 1)
        residual = max(float(eigen[k:].sum() / max(features.shape[1] - k, 1)), 1e-12)
        model = cls(class_means, vt[:k], eigen[:k], residual, np.ones(len(classes)))
        own = model.distances(features)[np.arange(len(features)), labels]
        pooled = float(np.median(own))
        scales = [
            float(np.median(own[labels == c])) if np.sum(labels == c) >= MIN_CLASS_IMAGES else pooled for c in classes
        ]
        return replace(model, class_scales=np.array(scales))

    def distances(self, features) -> np.ndarray:
        """d(x - mean_c) for every row and class: (N, C), unscaled."""
        features = np.asarray(features, np.float64)
        out = np.empty((len(features), len(self.class_means)))
        for c, mean in enumerate(self.class_means):
            centred = features - mean
            projected = centred @ self.components.T
            residual = np.maximum(np.sum(centred**2, axis=1) - np.sum(projected**2, axis=1), 0.0)
            out[:, c] = np.sum(projected**2 / self.variances, axis=1) + residual / self.residual_variance
        return out

    def score(self, features) -> np.ndarray:
        """Novelty score per row: distance to the nearest class in units of that class's typical distance
        (about 1 for an ordinary training image; larger = less like any training class)."""
        return np.min(self.distances(features) / self.class_scales, axis=1)

    def with_threshold(self, validation_features, flag_rate: float = VALIDATION_FLAG_RATE) -> NoveltyModel:
        """This model with its threshold at the (1 - flag_rate) quantile of the validation scores."""
        if not 0.0 < flag_rate < 1.0:
            raise ValueError(f"flag_rate must be in (0, 1), got {flag_rate}")
        return replace(self, threshold=float(np.quantile(self.score(validation_features), 1.0 - flag_rate)))

    def is_novel(self, features) -> np.ndarray:
        return self.score(features) > self.threshold

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        np.savez_compressed(
            path,
            class_means=self.class_means.astype(np.float32),
            components=self.components.astype(np.float32),
            variances=self.variances,
            residual_variance=self.residual_variance,
            class_scales=self.class_scales,
            threshold=self.threshold,
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> NoveltyModel:
        if not Path(path).is_file():
            raise FileNotFoundError(f"novelty model {path} not found: make it with `skinlib fit-novelty`")
        with np.load(path) as stored:
            missing = {
                "class_means",
                "components",
                "variances",
                "residual_variance",
                "class_scales",
                "threshold",
            } - set(stored.files)
            if missing:
                raise ValueError(
                    f"{path} lacks {sorted(missing)} (an older or foreign file): refit it with `skinlib fit-novelty`"
                )
            return cls(
                class_means=stored["class_means"].astype(np.float64),
                components=stored["components"].astype(np.float64),
                variances=stored["variances"],
                residual_variance=float(stored["residual_variance"]),
                class_scales=stored["class_scales"],
                threshold=float(stored["threshold"]),
            )


def feature_model(model):
    """The classifier with a second output, the pooled features its head reads (`FEATURE_LAYER`): one pass
    gives both the probabilities and what the novelty score is computed on."""
    import keras

    return keras.Model(
        model.inputs[0], [model.outputs[0], model.get_layer(FEATURE_LAYER).output], name=f"{model.name}_with_features"
    )
