"""Losses as small Keras classes (segmentation_models style), written with `keras.ops` only.

Segmentation (stage 1): DiceLoss, DiceBCELoss. Classification (stage 2): CategoricalFocalLoss,
WeightedCategoricalCrossentropy.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .data.classes import class_index


def soft_dice(y_true, y_pred, smooth: float = 1.0):
    """Per-image soft Dice of probability maps (batch, H, W, 1): differentiable, so it can be a loss."""
    axes = (1, 2, 3)
    y_true = ops.cast(y_true, y_pred.dtype)
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return (2.0 * intersection + smooth) / (total + smooth)


@keras.saving.register_keras_serializable(package="skinlib")
class DiceLoss(keras.losses.Loss):
    """1 - soft Dice per image. Why: it scores overlap directly and ignores how much skin surrounds the lesion."""

    def __init__(self, smooth: float = 1.0, name: str = "dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = smooth

    def call(self, y_true, y_pred):
        return 1.0 - soft_dice(y_true, y_pred, self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="skinlib")
class DiceBCELoss(keras.losses.Loss):
    """Dice loss + weighted binary cross-entropy, per image.

    Why both: Dice optimises the overlap metric but gives noisy gradients early on; pixel-wise
    cross-entropy gives smooth gradients everywhere and sharpens the boundary.
    """

    def __init__(self, bce_weight: float = 1.0, smooth: float = 1.0, name: str = "dice_bce_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.bce_weight = bce_weight
        self.smooth = smooth

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))
        return 1.0 - soft_dice(y_true, y_pred, self.smooth) + self.bce_weight * bce

    def get_config(self):
        return {**super().get_config(), "bce_weight": self.bce_weight, "smooth": self.smooth}


# --------------------------------------------------------------------------- classification (stage 2)
#
# Both losses take one-hot `y_true` (batch, K) and softmax probabilities `y_pred` (batch, K), and
# return one loss per sample. Probabilities are clipped to [eps, 1 - eps] so log(0) never happens,
# even for a saturated float16 softmax.


def _class_vector(weights, num_classes: int) -> np.ndarray:
    """Per-class weights as a float64 vector of length `num_classes`, from a dict or an array.

    Dict keys may be label indices (as `skinlib.data.class_weights` and Keras' `class_weight` use)
    or class codes ("mel"). Every class must be given: a silently missing class would get no loss.
    """
    if isinstance(weights, dict):
        by_index = {(class_index(k) if isinstance(k, str) else int(k)): float(v) for k, v in weights.items()}
        missing = [c for c in range(num_classes) if c not in by_index]
        extra = sorted(set(by_index) - set(range(num_classes)))
        if missing or extra:
            raise ValueError(
                f"class weights must cover classes 0..{num_classes - 1} exactly; missing {missing}, unexpected {extra}"
            )
        vector = np.array([by_index[c] for c in range(num_classes)], dtype=np.float64)
    else:
        vector = np.asarray(weights, dtype=np.float64).reshape(-1)
        if vector.size != num_classes:
            raise ValueError(f"expected {num_classes} class weights, got {vector.size}")
    if not np.all(np.isfinite(vector)) or np.any(vector < 0) or not np.any(vector > 0):
        raise ValueError(f"class weights must be finite, >= 0 and not all zero, got {vector.tolist()}")
    return vector


def focal_alpha_from_class_weights(weights, num_classes: int) -> np.ndarray:
    """Focal-loss `alpha` from class weights (dict or array), rescaled so that their mean over classes is 1.

    Only the ratios between classes rebalance the loss; the rescaling fixes their overall size. It does not
    keep the loss on the unweighted scale: balanced weights from `skinlib.data.class_weights`
    (n / (k * count)) already average 1 per training *image*, and dividing them by their mean over *classes*
    (4.68 on the shipped HAM10000 split) makes the average alpha per training image about 0.21, so the
    weighted loss is about a fifth of the unweighted one. With Adam that constant factor barely matters: its
    steps divide the gradient by its own running scale, so a loss scaled by a constant takes almost the
    same steps (only its epsilon sees the scale).
    """
    vector = _class_vector(weights, num_classes)
    return (vector * num_classes / vector.sum()).astype(np.float32)


def _clipped(y_true, y_pred):
    """y_true cast to y_pred's dtype, and y_pred clipped away from 0 and 1 (finite logs)."""
    eps = keras.config.epsilon()
    return ops.cast(y_true, y_pred.dtype), ops.clip(y_pred, eps, 1.0 - eps)


@keras.saving.register_keras_serializable(package="skinlib")
class CategoricalFocalLoss(keras.losses.Loss):
    """Multi-class focal loss: -sum_k alpha_k y_k (1 - p_k)^gamma log p_k, per sample.

    Why: HAM10000 is two-thirds naevi. The (1 - p)^gamma factor shrinks the loss of samples the
    model already gets right (mostly easy naevi), so the gradient goes to the hard, rare lesions.
    gamma=0 with no alpha is plain categorical cross-entropy.

    alpha: None (all classes 1) or one weight per class, applied exactly as given (no
    normalisation here); `focal_alpha_from_class_weights` turns class weights into an alpha
    with mean 1. label_smoothing: y_true becomes y (1 - s) + s / K before the loss.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha=None,
        label_smoothing: float = 0.0,
        name: str = "categorical_focal_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        self.alpha = None if alpha is None else [float(a) for a in np.asarray(alpha, dtype=np.float64).reshape(-1)]

    def call(self, y_true, y_pred):
        y_true, y_pred = _clipped(y_true, y_pred)
        if self.label_smoothing:
            num_classes = ops.cast(ops.shape(y_true)[-1], y_pred.dtype)
            y_true = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / num_classes
        per_class = -y_true * ops.power(1.0 - y_pred, self.gamma) * ops.log(y_pred)
        if self.alpha is not None:
            per_class = per_class * ops.convert_to_tensor(self.alpha, dtype=y_pred.dtype)
        return ops.sum(per_class, axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "alpha": self.alpha,
            "label_smoothing": self.label_smoothing,
        }


@keras.saving.register_keras_serializable(package="skinlib")
class WeightedCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy with one weight per true class: -sum_k w_k y_k log p_k, per sample.

    Why a loss and not `fit(class_weight=...)`: the weights then travel with the compiled model and
    also apply in `evaluate`, so the validation loss is the quantity being minimised. Weights
    (dict or array, see `focal_alpha_from_class_weights` for the accepted forms) are used as given.
    """

    def __init__(self, class_weights, name: str = "weighted_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        num_classes = len(class_weights) if isinstance(class_weights, dict) else np.size(class_weights)
        self.class_weights = [float(w) for w in _class_vector(class_weights, num_classes)]

    def call(self, y_true, y_pred):
        y_true, y_pred = _clipped(y_true, y_pred)
        weights = ops.convert_to_tensor(self.class_weights, dtype=y_pred.dtype)
        return -ops.sum(weights * y_true * ops.log(y_pred), axis=-1)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}
