"""Where did the classifier look? Grad-CAM heat maps and the CBAM attention maps.

Grad-CAM (Selvaraju et al., 2017): weight each channel of a convolutional feature map by the mean
gradient of the class score over that map, sum, keep the positive part. The score is the class
*logit* when the model ends in a softmax Dense layer (as `build_classifier` does), as in the paper.
Why not the probability: a confident softmax saturates, its gradient underflows to exactly zero
and the map goes blank on precisely the images the model is surest about.

All functions take float RGB batches in [0, 255] (what the classifier takes) and work on any Keras 3
functional model whose inner layers are connected to its input (the classifier is flat for that reason),
or on a list of such models (an ensemble), whose maps are averaged.
"""

from __future__ import annotations

import re

import cv2
import keras
import numpy as np
import tensorflow as tf

from .data.images import fit_size
from .models.attention import attention_model
from .models.classifier import GRADCAM_LAYER
from .models.inference import predict_in_batches
from .visualize import overlay_heatmap

__all__ = ["gradcam", "gradcam_overlay", "attention_maps", "candidate_layers", "resize_maps"]

# The last map of a backbone stage of EfficientNet / Lite0: `block{stage}{letter}_...`.
_STAGE_LAYER = re.compile(r"block(\d+)[a-z]+_")


# --------------------------------------------------------------------------- layers


def _is_feature_map(layer) -> bool:
    """A layer whose output is a (B, H, W, C) map with spatial extent: something Grad-CAM can weight."""
    if isinstance(layer, keras.layers.InputLayer):
        return False
    try:
        shape = tuple(layer.output.shape)
    except (AttributeError, ValueError):  # a layer called more than once, or never
        return False
    return len(shape) == 4 and shape[1:3] != (1, 1)


def candidate_layers(model: keras.Model) -> list[str]:
    """Layer names worth offering in a layer picker, shallow to deep.

    For an EfficientNet-style classifier: the stem, the output of each backbone stage and
    `top_activation` (the default). Why not every layer: a stage has ~15 feature maps (BN, activation,
    depthwise, SE...) that show nearly the same thing; a student compares resolutions, not BN layers.
    Any other model: every layer with a 4-D spatial output.
    """
    maps = [layer.name for layer in model.layers if _is_feature_map(layer)]
    last_of_stage = {}
    for name in maps:  # model.layers is in graph order, so the last one seen is the stage output
        match = _STAGE_LAYER.match(name)
        if match:
            last_of_stage[match.group(1)] = name
    if not last_of_stage:
        return maps
    keep = set(last_of_stage.values()) | {"stem_activation", GRADCAM_LAYER}
    return [name for name in maps if name in keep]


def _default_layer(model: keras.Model) -> str:
    """`top_activation` for the classifier; otherwise the deepest feature map."""
    names = [layer.name for layer in model.layers]
    if GRADCAM_LAYER in names:
        return GRADCAM_LAYER
    maps = [layer.name for layer in model.layers if _is_feature_map(layer)]
    if not maps:
        raise ValueError(f"model {model.name!r} has no convolutional feature map to explain")
    return maps[-1]


def _feature_layer(model: keras.Model, layer_name: str):
    """The named layer, or a ValueError that lists the layers one could pick instead."""
    layer = next((layer for layer in model.layers if layer.name == layer_name), None)
    if layer is None or not _is_feature_map(layer):
        problem = "has no layer" if layer is None else "has no 4-D feature map at layer"
        raise ValueError(
            f"model {model.name!r} {problem} {layer_name!r}; candidates: {', '.join(candidate_layers(model))}"
        )
    return layer


# --------------------------------------------------------------------------- Grad-CAM


def _score_model(model: keras.Model, layer) -> tuple[keras.Model, object]:
    """image -> (feature map, head input) plus a function head input -> class scores (logits if possible).

    When the last layer is a softmax Dense, the logits are recomputed from its input and weights;
    otherwise the model's output itself is the score.
    """
    head = model.layers[-1]
    softmax_dense = isinstance(head, keras.layers.Dense) and getattr(head.activation, "__name__", "") == "softmax"
    if softmax_dense:

        def scores(x):
            x = tf.cast(x, head.kernel.dtype)
            return tf.matmul(x, head.kernel) + (head.bias if head.use_bias else 0.0)

        head_input = head.input
    else:

        def scores(x):
            return x

        head_input = model.outputs[0]
    return keras.Model(model.inputs[0], [layer.output, head_input]), scores


def _normalise(cams: np.ndarray) -> np.ndarray:
    """Scale each map to [0, 1] by its maximum; a map with no positive evidence stays all zeros."""
    peak = cams.max(axis=(1, 2), keepdims=True)
    out = np.zeros_like(cams)
    np.divide(cams, peak, out=out, where=peak > 1e-12)
    return out


def gradcam(model, images, class_index=None, layer_name: str | None = None, batch_size: int = 16) -> np.ndarray:
    """Grad-CAM maps (N, h, w) in [0, 1] at the resolution of layer `layer_name`.

    model: a Keras model, or a list of same-architecture models (an ensemble, `StageTwo.members`): then
    each member's normalised map for the *ensemble's* class is averaged, and renormalised.
    images: float RGB (N, H, W, 3) in [0, 255], or one (H, W, 3) image. class_index: None (each
    image's predicted class), one int for all images, or one int per image. layer_name: any layer
    with a 4-D output (see `candidate_layers`); default `top_activation`, else the deepest map.
    Upsample with `resize_maps` (or let `gradcam_overlay` do it) to lay a map over its image.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C) or (H, W, C), got shape {images.shape}")
    if isinstance(model, (list, tuple)):
        return _ensemble_gradcam(list(model), images, class_index, layer_name, batch_size)
    layer = _feature_layer(model, layer_name or _default_layer(model))
    submodel, scores = _score_model(model, layer)
    targets = None if class_index is None else np.broadcast_to(np.asarray(class_index, int), (len(images),))
    num_classes = model.outputs[0].shape[-1]
    if targets is not None and targets.size and not 0 <= targets.min() <= targets.max() < num_classes:
        raise ValueError(f"class_index must be in 0..{num_classes - 1}, got {class_index}")
    maps = [
        _gradcam_batch(
            submodel, scores, images[i : i + batch_size], None if targets is None else targets[i : i + batch_size]
        )
        for i in range(0, len(images), batch_size)
    ]
    return _normalise(np.concatenate(maps)) if maps else np.zeros((0, 0, 0), np.float32)


def _ensemble_gradcam(models: list, images: np.ndarray, class_index, layer_name, batch_size) -> np.ndarray:
    """The mean of the members' maps for one class per image: the ensemble's prediction unless given."""
    if not models:
        raise ValueError("an ensemble needs at least one model")
    if len(models) == 1:
        return gradcam(models[0], images, class_index, layer_name, batch_size)
    if class_index is None:
        class_index = np.mean([predict_in_batches(m, images, batch_size) for m in models], axis=0).argmax(-1)
    maps = [gradcam(m, images, class_index, layer_name, batch_size) for m in models]
    return _normalise(np.mean(maps, axis=0))


def _gradcam_batch(submodel, scores, images, targets) -> np.ndarray:
    """Unnormalised ReLU(sum_k alpha_k A_k) for one batch."""
    with tf.GradientTape() as tape:
        features, head_input = submodel(tf.constant(images), training=False)
        logits = scores(head_input)
        if targets is None:
            targets = tf.argmax(logits, axis=-1)
        score = tf.gather(logits, tf.cast(targets, tf.int32), axis=1, batch_dims=1)
    grads = tf.cast(tape.gradient(score, features), tf.float32)
    alphas = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # one weight per channel and image
    cams = tf.nn.relu(tf.reduce_sum(alphas * tf.cast(features, tf.float32), axis=-1))
    return np.nan_to_num(cams.numpy())


# --------------------------------------------------------------------------- maps for display


def resize_maps(maps, size: tuple[int, int]) -> np.ndarray:
    """Bilinear-resize (N, h, w) maps to size = (H, W), e.g. the image size."""
    height, width = size
    return (
        np.stack([cv2.resize(np.asarray(m, np.float32), (width, height), interpolation=cv2.INTER_LINEAR) for m in maps])
        if len(maps)
        else np.zeros((0, height, width), np.float32)
    )


def gradcam_overlay(image_uint8, heatmap, alpha: float = 0.45) -> np.ndarray:
    """One image (H, W, 3) uint8 with its [0, 1] heat map (any size) blended on top in JET colours."""
    return overlay_heatmap(image_uint8, heatmap, alpha=alpha)


def attention_maps(model, images, name: str = "cbam") -> dict[str, np.ndarray]:
    """CBAM maps of a classifier built with attention: {"spatial": (N, H, W), "channel": (N, C)}.

    The spatial gate is resized to the image size but *not* rescaled: its sigmoid values are
    meaningful as they are (0.5 everywhere is the untrained "no preference" gate), unlike a
    Grad-CAM map, which only says where the evidence is relative to its own peak. For an ensemble
    (a list of models) both maps are the members' mean.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[None]
    if isinstance(model, (list, tuple)):
        each = [attention_maps(m, images, name) for m in model]
        return {key: np.mean([maps[key] for maps in each], axis=0) for key in ("spatial", "channel")}
    maps = attention_model(model, name=name).predict(images, verbose=0)
    spatial = np.asarray(maps["spatial"])[..., 0]
    return {"spatial": resize_maps(spatial, images.shape[1:3]), "channel": np.asarray(maps["channel"])}


# --------------------------------------------------------------------------- is the heat on the lesion?


def mask_in_crop(mask, box, size: int) -> np.ndarray:
    """Stage 1's mask (H, W) cut to a crop's box (top, left, bottom, right; it may reach past the photo) and
    resized as the crop was: a (size, size) bool mask aligned with the classifier's input."""

    top, left, bottom, right = box
    mask = np.asarray(mask, np.uint8) * 255
    pad = max(0, -top, -left, bottom - mask.shape[0], right - mask.shape[1])
    cut = np.pad(mask, pad)[top + pad : bottom + pad, left + pad : right + pad]
    return fit_size(np.dstack([cut] * 3), (size, size), "pad")[..., 0] > 127


def share_inside(heat, mask) -> float:
    """The fraction of a map's total heat that falls inside a mask of the same size (NaN: no heat or no mask)."""
    heat = np.asarray(heat, np.float64)
    mask = np.asarray(mask, bool)
    total = heat.sum()
    return float(heat[mask].sum() / total) if total > 0 and mask.any() else float("nan")


def centre_prior(size: int, sigma: float = 0.25) -> np.ndarray:
    """A map that ignores the image: a Gaussian at the centre of the crop (sigma as a fraction of its side)."""
    grid = (np.arange(size) + 0.5) / size - 0.5
    return np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2 * sigma**2))


def heat_inside_with_baselines(heat_maps, masks) -> dict:
    """Per image, the share of heat inside the lesion mask for the model's map and for maps that ignore the
    image: "uniform" (the mask's share of the crop), "centre" (`centre_prior`) and "other_images" (the mean
    share of the *other* images' maps on this mask).

    Why: the crop centres the lesion and a final-layer map is a handful of cells, so a map that knows nothing
    about the lesion already scores high. The model's map says something about *this* lesion only where it
    beats those baselines. `heat_maps` and `masks`: (N, S, S) on the crop's grid.
    """
    heat_maps = np.asarray(heat_maps, np.float64)
    masks = np.asarray(masks, bool)
    if heat_maps.shape != masks.shape or heat_maps.ndim != 3:
        raise ValueError(f"heat maps {heat_maps.shape} and masks {masks.shape} must both be (N, S, S)")
    centre = centre_prior(heat_maps.shape[1])
    rows = []
    for i, mask in enumerate(masks):
        others = [share_inside(heat_maps[j], mask) for j in range(len(masks)) if j != i]
        rows.append(
            {
                "gradcam": share_inside(heat_maps[i], mask),
                "uniform": share_inside(np.ones_like(centre), mask),
                "centre": share_inside(centre, mask),
                "other_images": float(np.nanmean(others)) if others and np.isfinite(others).any() else float("nan"),
            }
        )
    return {name: [row[name] for row in rows] for name in ("gradcam", "uniform", "centre", "other_images")}
