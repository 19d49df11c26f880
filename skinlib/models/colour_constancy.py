"""Shades-of-Gray colour constancy as a Keras layer: every image is seen as if under a neutral light.

Dermoscopes differ in their light and camera, so the same lesion can look warmer on one device than on
another. Shades of Gray (Finlayson and Trezzi 2004) estimates the illuminant of each image as the per-channel
Minkowski p-norm mean of its pixels and divides out its colour, keeping its brightness. Inside the model the
correction travels with the weights: `predict`, `evaluate`, TTA and Grad-CAM all see corrected pixels, and
training learns on them. p = 1 is the Gray World assumption, p -> infinity is White Patch (max-RGB); p = 6
is the value Barata et al. (2015) found to work for dermoscopy and top ISIC challenge entries used.

A global colour cast (channel c multiplied by k_c) is removed exactly, up to clipping at 255, when it leaves the
brightness alone (k_r k_g k_b = 1); any other cast is removed up to an overall brightness factor (k_r k_g k_b)^(1/3).
"""

from __future__ import annotations

import keras
from keras import layers, ops

DEFAULT_POWER = 6.0
_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="skinlib")
class ShadesOfGray(layers.Layer):
    """Divide each image (B, H, W, 3; RGB in [0, 255]) by its Shades-of-Gray illuminant estimate.

    Per image and channel c: e_c = (mean over pixels of (I_c / 255)^p)^(1/p); the output is I_c * g / e_c with g
    the geometric mean of e_r, e_g, e_b (the light's brightness), clipped to [0, 255]. A black image passes
    through unchanged. No weights; computed in float32.
    """

    def __init__(self, power: float = DEFAULT_POWER, **kwargs):
        super().__init__(**kwargs)
        if not power >= 1.0:
            raise ValueError(f"ShadesOfGray: power must be >= 1 (1 = Gray World), got {power}")
        self.power = float(power)

    def illuminant(self, images):
        """The per-image, per-channel illuminant estimate e (B, 1, 1, 3), in [0, 1]."""
        scaled = ops.clip(ops.cast(images, "float32") / 255.0, 0.0, 1.0)
        return ops.power(ops.mean(ops.power(scaled, self.power), axis=(1, 2), keepdims=True), 1.0 / self.power)

    def call(self, images):
        estimate = self.illuminant(images) + _EPSILON
        brightness = ops.exp(ops.mean(ops.log(estimate), axis=-1, keepdims=True))
        gain = brightness / estimate
        corrected = ops.clip(ops.cast(images, "float32") * gain, 0.0, 255.0)
        return ops.cast(corrected, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "power": self.power}
