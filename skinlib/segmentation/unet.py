"""Stage 1 model: a U-Net in Keras 3, with a plain or an ImageNet EfficientNet-Lite0 encoder.

The encoder/decoder split follows segmentation_models: an encoder gives feature maps at strides
2, 4, 8, 16 (skips) and 32 (bottom); the decoder upsamples and fuses them. Inputs are float RGB in
[0, 255] of any size divisible by 32; the output is a lesion probability map (H, W, 1).
"""

from __future__ import annotations

import keras
from keras import layers, ops

DECODER_STRIDES = (16, 8, 4, 2, 1)
ENCODERS = ("lite0", "plain")


def conv_bn_relu(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def plain_encoder(inputs, base_filters: int = 16):
    """A classic U-Net encoder: two 3x3 conv blocks per level, max-pooling between levels."""
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    features = {}
    for level, stride in enumerate((1, 2, 4, 8, 16)):
        if stride > 1:
            x = layers.MaxPooling2D(name=f"enc{level}_pool")(x)
        filters = base_filters * 2**level
        x = conv_bn_relu(x, filters, f"enc{level}_a")
        x = conv_bn_relu(x, filters, f"enc{level}_b")
        features[stride] = x
    bottom = layers.MaxPooling2D(name="enc5_pool")(x)
    features[32] = conv_bn_relu(bottom, base_filters * 32, "enc5_a")
    return features


def lite0_encoder(inputs, weights="imagenet"):
    """EfficientNet-Lite0 feature maps at strides 2..32 (ImageNet weights make the U-Net learn faster)."""
    # deferred: loads Keras
    from ..models.efficientnet_lite import FEATURE_LAYERS, STAGE_OUTPUTS, EfficientNetLite0

    backbone = EfficientNetLite0(
        input_shape=tuple(inputs.shape[1:]), include_top=False, weights=weights, name="encoder"
    )
    names = {**FEATURE_LAYERS, 32: STAGE_OUTPUTS[7]}  # 320 channels at stride 32, not the 1280 head
    # A list, not a dict keyed by stride: a .keras file stores dict keys as text and flattens them sorted ("16" <
    # "2"), so a reloaded U-Net (skinlib export) would wire the wrong skip into each decoder level.
    strides = sorted(names)
    extractor = keras.Model(backbone.input, [backbone.get_layer(names[s]).output for s in strides], name="encoder")
    return dict(zip(strides, extractor(inputs)))


def build_unet(
    input_shape=(96, 128, 3),
    encoder: str = "lite0",
    encoder_weights="imagenet",
    decoder_filters=(128, 64, 32, 24, 16),
    base_filters: int = 16,
    name: str = "unet",
) -> keras.Model:
    """Build the U-Net. `decoder_filters` are the widths at strides 16, 8, 4, 2 and 1."""
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS}, not {encoder!r}")
    height, width = input_shape[:2]
    if height % 32 or width % 32:
        raise ValueError(f"input height and width must be multiples of 32, got {height}x{width}")
    inputs = keras.Input(input_shape, name="image")
    features = lite0_encoder(inputs, encoder_weights) if encoder == "lite0" else plain_encoder(inputs, base_filters)
    x = features[32]
    for stride, filters in zip(DECODER_STRIDES, decoder_filters):
        x = layers.UpSampling2D(interpolation="bilinear", name=f"dec{stride}_up")(x)
        if stride in features:  # the Lite0 encoder has no stride-1 features: upsample only
            x = layers.Concatenate(name=f"dec{stride}_concat")([x, features[stride]])
        x = conv_bn_relu(x, filters, f"dec{stride}_a")
        x = conv_bn_relu(x, filters, f"dec{stride}_b")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="mask")(x)
    model = keras.Model(inputs, outputs, name=name)
    model.encoder_name = encoder
    return model


@keras.saving.register_keras_serializable(package="skinlib")
class DiceScore(keras.metrics.Mean):
    """Mean per-image Dice of the thresholded prediction (1 when both masks are empty)."""

    def __init__(self, threshold: float = 0.5, name: str = "dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None):
        scores = _overlap_scores(y_true, y_pred, self.threshold)[0]
        return super().update_state(scores, sample_weight)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="skinlib")
class IoUScore(DiceScore):
    """Mean per-image Jaccard index (intersection over union) of the thresholded prediction."""

    def __init__(self, threshold: float = 0.5, name: str = "iou", **kwargs):
        super().__init__(threshold=threshold, name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return keras.metrics.Mean.update_state(self, _overlap_scores(y_true, y_pred, self.threshold)[1], sample_weight)


@keras.saving.register_keras_serializable(package="skinlib")
class ThresholdedJaccard(DiceScore):
    """ISIC 2018 Task 1 score: per-image Jaccard, counted as 0 below 0.65, averaged."""

    def __init__(self, threshold: float = 0.5, name: str = "thresholded_jaccard", **kwargs):
        super().__init__(threshold=threshold, name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        jaccard = _overlap_scores(y_true, y_pred, self.threshold)[1]
        return keras.metrics.Mean.update_state(self, ops.where(jaccard >= 0.65, jaccard, 0.0), sample_weight)


def _overlap_scores(y_true, y_pred, threshold):
    """Per-image (Dice, Jaccard) of binary masks, with 0/0 = 1."""
    pred = ops.cast(y_pred > threshold, "float32")
    true = ops.cast(y_true > 0.5, "float32")
    intersection = ops.sum(pred * true, axis=(1, 2, 3))
    total = ops.sum(pred, axis=(1, 2, 3)) + ops.sum(true, axis=(1, 2, 3))
    union = total - intersection
    empty = ops.cast(total == 0, "float32")
    dice = (2 * intersection + empty) / (total + empty)
    jaccard = (intersection + empty) / (union + empty)
    return dice, jaccard
