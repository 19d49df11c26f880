"""Losses as small Keras classes (segmentation_models style), written with `keras.ops` only."""

from __future__ import annotations

import keras
from keras import ops


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
