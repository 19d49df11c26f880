"""CBAM attention (Woo et al., 2018) for the stage-2 classifier, with maps that can be plotted.

Design: `ChannelAttention` and `SpatialAttention` return the *attention maps*, not the attended
features; `cbam_block` multiplies them in with ordinary `Multiply` layers. Each map is therefore
the output of one named layer (`{name}_channel`, `{name}_spatial`) in the classifier's graph, and
`attention_model` only re-wires the trained classifier to those outputs. Why: the trained model
keeps a single output (so `fit`, `evaluate` and saving stay plain), there is no second forward
implementation to drift apart, and the maps you plot are exactly the ones used for the prediction.

Both layers start as a uniform 0.5 gate (their last weights are zero-initialised). Why: random
weights on 1280 ReLU6 channels give logits of several units, so the sigmoids start saturated,
switching pretrained channels and regions off at random with almost no gradient to undo it. From
0.5 the features pass through unchanged up to a constant and the gates learn where to deviate.

Both layers hold their own weights (no sub-layers), so variable paths are stable
(`cbam_channel/hidden_kernel`...), which `skinlib.models.storage` relies on.
"""

from __future__ import annotations

import keras
from keras import layers, ops

__all__ = ["ChannelAttention", "SpatialAttention", "cbam_block", "attention_model", "attention_layer_names"]


@keras.saving.register_keras_serializable(package="skinlib")
class ChannelAttention(keras.layers.Layer):
    """Which channels matter: (B, H, W, C) features -> (B, C) weights in (0, 1).

    A shared two-layer MLP (C -> C/reduction -> C) scores the average- and the max-pooled
    descriptor of each channel; the sum goes through a sigmoid. Why both poolings: the average
    says how much of the image shows a pattern, the max how strongly it shows anywhere.
    """

    def __init__(self, reduction: int = 8, **kwargs):
        super().__init__(**kwargs)
        if int(reduction) < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        self.reduction = int(reduction)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("ChannelAttention needs a known number of channels")
        hidden = max(channels // self.reduction, 1)
        self.hidden_kernel = self.add_weight(name="hidden_kernel", shape=(channels, hidden), initializer="he_normal")
        self.hidden_bias = self.add_weight(name="hidden_bias", shape=(hidden,), initializer="zeros")
        self.output_kernel = self.add_weight(name="output_kernel", shape=(hidden, channels), initializer="zeros")
        self.output_bias = self.add_weight(name="output_bias", shape=(channels,), initializer="zeros")

    def _mlp(self, descriptor):
        hidden = ops.relu(ops.matmul(descriptor, self.hidden_kernel) + self.hidden_bias)
        return ops.matmul(hidden, self.output_kernel) + self.output_bias

    def call(self, inputs):
        average = ops.mean(inputs, axis=(1, 2))
        maximum = ops.max(inputs, axis=(1, 2))
        return ops.sigmoid(self._mlp(average) + self._mlp(maximum))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}


@keras.saving.register_keras_serializable(package="skinlib")
class SpatialAttention(keras.layers.Layer):
    """Where to look: (B, H, W, C) features -> (B, H, W, 1) weights in (0, 1).

    The channel-wise mean and max (2 maps) go through one k x k convolution and a sigmoid.
    Why a large kernel (7): at stride 32 each position already sees much of the lesion, and the
    map should follow lesion-sized regions, not single cells.
    """

    def __init__(self, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        if int(kernel_size) < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        self.kernel_size = int(kernel_size)

    def build(self, input_shape):
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(k, k, 2, 1), initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(1,), initializer="zeros")

    def call(self, inputs):
        pooled = ops.concatenate(
            [ops.mean(inputs, axis=-1, keepdims=True), ops.max(inputs, axis=-1, keepdims=True)], axis=-1
        )
        return ops.sigmoid(ops.conv(pooled, self.kernel, strides=1, padding="same") + self.bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}


def attention_layer_names(name: str = "cbam") -> dict[str, str]:
    """Names of the two map layers of the CBAM block called `name`."""
    return {"channel": f"{name}_channel", "spatial": f"{name}_spatial"}


def cbam_block(x, reduction: int = 8, kernel_size: int = 7, name: str = "cbam"):
    """Channel attention, then spatial attention (the CBAM order), applied to feature map `x`.

    Returns the attended feature map, same shape as `x`. The maps are the outputs of the layers
    named by `attention_layer_names(name)`.
    """
    names = attention_layer_names(name)
    channels = x.shape[-1]
    channel_map = ChannelAttention(reduction, name=names["channel"])(x)
    channel_map = layers.Reshape((1, 1, channels), name=f"{name}_channel_reshape")(channel_map)
    x = layers.Multiply(name=f"{name}_channel_apply")([x, channel_map])
    spatial_map = SpatialAttention(kernel_size, name=names["spatial"])(x)
    return layers.Multiply(name=f"{name}_spatial_apply")([x, spatial_map])


def attention_model(classifier: keras.Model, name: str = "cbam") -> keras.Model:
    """A model sharing `classifier`'s weights: image -> {"channel": (B, C), "spatial": (B, h, w, 1)}.

    The spatial map is at the feature-map resolution (stride 32 for the classifier); upsample it to
    the image size to overlay it.
    """
    names = attention_layer_names(name)
    present = {layer.name for layer in classifier.layers}
    missing = [n for n in names.values() if n not in present]
    if missing:
        raise ValueError(
            f"model {classifier.name!r} has no CBAM block {name!r} (layers {missing} not found); "
            "was it built with attention=False?"
        )
    outputs = {key: classifier.get_layer(layer).output for key, layer in names.items()}
    inputs = classifier.inputs[0] if len(classifier.inputs) == 1 else classifier.inputs
    return keras.Model(inputs, outputs, name=f"{classifier.name}_attention")
