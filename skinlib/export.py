"""Export the shipped models as one `.keras` file that loads anywhere skinlib is installed.

    skinlib export --format keras --out skin.keras                      # both stages as one model (default)
    skinlib export --format keras --stage classifier --out stage2.keras
    skinlib export --format keras --stage unet --out stage1.keras

Loading it (a plain Python session; skinlib is imported only for its registered layers, see
`skinlib.registration`):

    import skinlib, keras
    model = keras.saving.load_model("skin.keras")
    out = model.predict(image[None].astype("float32"))   # image: uint8 RGB (H, W, 3), as read by skinlib
    out["probabilities"]                                  # (1, 7), classes in skinlib.data.CLASSES order

What each stage's model takes and gives (inputs are RGB with values 0..255; a batch holds images of one size):

- `classifier`: a lesion crop (B, H, W, 3) of any size -> calibrated class probabilities (B, 7). The crop is
  fitted to the classifier's input size as `predict` fits it (`fit_size(..., "pad")`: OpenCV's INTER_AREA when
  shrinking, its 8-bit INTER_LINEAR otherwise, black padding, whole 8-bit levels), then every member of the
  model folder runs (an ensemble averages them) and the folder's temperature (model.json "temperature")
  calibrates the result: `StageTwo.probabilities(crops)` without TTA. At the model's own input size the fit is
  the identity and the outputs equal the runtime's to float32 rounding (tests/test_export.py).
- `unet`: an image (B, H, W, 3) -> the lesion probability map at the image's own size (B, H, W, 1), as
  `UNetSegmenter.probabilities` makes it (fit to the U-Net's input, U-Net, padding removed, bilinear resize back).
  At the U-Net's input size both resizes are the identity and the map is the U-Net's own output.
- `dual`: an image (B, H, W, 3) -> {"probabilities" (B, 7), "lesion_found" (B,), "mask" (B, H, W, 1),
  "crop" (B, S, S, 3)}: `DualStage.predict` without TTA, metadata or prior: U-Net map, threshold, largest
  8-connected component, holes filled, the same plausibility checks (mask area, lesion contrast in Lab), the
  square crop with margin and reflected borders (or the full image when the mask is not trusted), fitted to the
  classifier, classified and calibrated. It is written with `keras.ops` (tested on the TensorFlow backend).
  Where it can differ from the runtime's OpenCV and SciPy steps:
    * resizing: INTER_LINEAR follows OpenCV's 8-bit fixed-point arithmetic bit for bit; INTER_AREA uses the same
      overlap weights in float64 where OpenCV sums in float32, so an average within float32 rounding of a half
      level can come out one level apart (a few pixels of a few crops; HAM10000's 4:3 images fit the U-Net
      input exactly).
    * the threshold: the U-Net map at the image's size is a float32 resize on both sides (within ~3e-6 of each
      other); a pixel that close to the threshold can fall on either side, which would change the mask.
    * Lab for the contrast check uses the CIE formulas where OpenCV uses lookup tables (up to 2 levels apart per
      pixel): this matters only for a mask whose contrast is right at MIN_LESION_CONTRAST.
    * components are labelled with float32 numbers, exact up to 2^24 pixels (16.7 megapixels) per image.
  On the first 64 images of HAM10000_images_part_1 (measured when this was written): every mask and every
  lesion_found equal, 3 of the 64 crops with 1 or 2 values one level apart, the top class always the same,
  probabilities at most 6e-5 apart. tests/test_export.py checks a fixed set of real images, a blank image
  (no lesion: the full image is classified) and an image of another aspect ratio.

Not in any exported model: test-time augmentation, metadata fusion, the class-prior correction, the novelty
check and the `uncertain` / referral flags (their thresholds are in the model folder's model.json).
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import ops

from .data.errors import DataError
from .runtime import StageTwo
from .segmentation.postprocess import MAX_LESION_FRACTION, MIN_LESION_CONTRAST, MIN_LESION_FRACTION
from .segmentation.segmenter import UNetSegmenter
from .shipped import CLASSIFIER, UNET

__all__ = [
    "FORMATS",
    "STAGES",
    "FitSize",
    "UnfitSize",
    "LesionMask",
    "LesionCrop",
    "TemperatureScaling",
    "classifier_model",
    "unet_model",
    "dual_model",
    "build_export",
    "export_keras",
]

FORMATS = ("keras",)
STAGES = ("dual", "classifier", "unet")

_LINEAR, _AREA, _AREA_ENLARGING = 0, 1, 2


# --------------------------------------------------------------------------- resampling as matrices
#
# Every resize of the runtime (cv2.resize inside fit_size, unfit_size and after lesion_crop) is separable, so
# it is written as a matrix per axis: out = rows @ image @ cols^T. An axis is described by where the output
# window lies (offset, length inside out_size; fit_size's black padding elsewhere) and which source window it
# reads (start, span; positions outside the image are reflected like cv2.BORDER_REFLECT_101, as lesion_crop
# pads). 8-bit results follow OpenCV exactly where it is cheap to: INTER_AREA's overlap weights, and
# INTER_LINEAR's 11-bit fixed-point coefficients with the rounding of its vectorised 8-bit row pass.


def _reflect101(v, n):
    """cv2.BORDER_REFLECT_101 index of virtual position(s) `v` on an axis of length `n` (float64 tensors)."""
    period = ops.maximum(2.0 * (n - 1.0), 1.0)
    v = v - period * ops.floor(v / period)
    return ops.where(v >= n, period - v, v)


class _Axis:
    """One axis of a resize, per image (B,): output window (offset, length) in out_size positions, source window
    (start, span) on an axis of src_size pixels, and cv2's interpolation `mode`."""

    def __init__(self, out_size, offset, length, start, span, src_size, mode):
        as64 = lambda t: ops.cast(t, "float64")[:, None]  # noqa: E731
        self.offset, self.length, self.start, self.span, self.mode = map(as64, (offset, length, start, span, mode))
        self.src_size = ops.cast(src_size, "float64")
        self.d = ops.cast(ops.arange(out_size), "float64")[None, :] - self.offset  # (B, O): position in the window
        self.valid = ops.cast(ops.logical_and(self.d >= 0, self.d < self.length), "float64")
        self.scale = self.span / self.length

    def _one_hot(self, position):
        """(B, O, src_size): 1 at the source pixel of window position `position` (B, O), reflected."""
        real = _reflect101(self.start + position, self.src_size)
        pixels = ops.cast(ops.arange(ops.cast(self.src_size, "int32")), "float64")
        return ops.cast(ops.equal(real[..., None], pixels[None, None, :]), "float64")

    def taps(self, rows: bool):
        """cv2's two-tap weights as (W0, W1), each (B, O, src_size) with one weight per output, and their
        weights (f0, f1) (B, O) as float32 numbers as OpenCV computes them. Columns: a tap left of the window
        or past its end becomes weight 0 on the edge pixel; rows: the row index is clamped, the weight kept."""
        x = ops.cast((self.d + 0.5) * self.scale - 0.5, "float32")
        x0 = ops.floor(x)
        f = x - x0
        up0 = ops.floor(self.d * self.scale)
        f_up = ops.cast((self.d + 1.0) - (up0 + 1.0) / self.scale, "float32")
        f_up = ops.where(f_up <= 0, 0.0, f_up - ops.floor(f_up))
        enlarging = ops.equal(self.mode, _AREA_ENLARGING)
        x0 = ops.where(enlarging, up0, ops.cast(x0, "float64"))
        f = ops.where(enlarging, f_up, f)
        last = self.span - 1.0
        if rows:
            x1 = ops.clip(x0 + 1.0, 0.0, last)
        else:
            f = ops.where(ops.logical_or(x0 < 0, x0 >= last), 0.0, f)
            x1 = ops.minimum(ops.clip(x0, 0.0, last) + 1.0, last)
        x0 = ops.clip(x0, 0.0, last)
        return (self._one_hot(x0) * self.valid[..., None], self._one_hot(x1) * self.valid[..., None]), (1.0 - f, f)

    def area(self):
        """INTER_AREA's weights (B, O, src_size): each output averages the source it covers, by overlap."""
        low = ops.floor(ops.min(self.start))
        v = ops.cast(
            ops.arange(ops.cast(low, "int32"), ops.cast(ops.ceil(ops.max(self.start + self.span)), "int32")), "float64"
        )
        s = v[None, None, :] - self.start[..., None]  # (B, 1, V): virtual source positions in the window
        d, scale = self.d[..., None], self.scale[..., None]
        overlap = ops.maximum(ops.minimum((d + 1.0) * scale, s + 1.0) - ops.maximum(d * scale, s), 0.0)
        pixels = ops.cast(ops.arange(ops.cast(self.src_size, "int32")), "float64")
        to_real = ops.cast(ops.equal(_reflect101(v, self.src_size)[:, None], pixels[None, :]), "float64")
        return ops.einsum("bov,vs->bos", overlap / scale * self.valid[..., None], to_real)

    def linear(self):
        """Float bilinear weights (B, O, src_size) (cv2.INTER_LINEAR on a float image)."""
        (w0, w1), (f0, f1) = self.taps(rows=False)
        return w0 * ops.cast(f0, "float64")[..., None] + w1 * ops.cast(f1, "float64")[..., None]


def _resize_float(images, rows: _Axis, cols: _Axis):
    """cv2.INTER_LINEAR of a float image (B, H, W, C) -> (B, O, P, C), float32."""
    x = ops.einsum("boh,bhwc->bowc", rows.linear(), ops.cast(images, "float64"))
    return ops.cast(ops.einsum("bpw,bowc->bopc", cols.linear(), x), "float32")


def _resize_8bit(images, rows: _Axis, cols: _Axis):
    """cv2.resize of an 8-bit image (B, H, W, C) -> (B, O, P, C) whole levels (float32), per image INTER_AREA or
    INTER_LINEAR (the `mode` of the axes; both axes have one mode)."""
    images = ops.cast(images, "float64")
    area = ops.einsum("boh,bhwc->bowc", rows.area(), images)
    area = ops.einsum("bpw,bowc->bopc", cols.area(), area)
    halving = ops.logical_and(ops.equal(rows.scale, 2.0), ops.equal(cols.scale, 2.0))[:, :, None, None]
    area = ops.where(halving, ops.floor(area + 0.5), ops.round(area))  # cv2's 2x2 fast path rounds half up
    # INTER_LINEAR, 8-bit: coefficients rounded to 1/2048; each output row from two horizontally resized rows,
    # as cv2's vectorised VResizeLinear does: ((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2.
    (c0, c1), (g0, g1) = cols.taps(rows=False)
    quantized = lambda f: ops.cast(ops.round(f * 2048.0), "float64")[..., None]  # noqa: E731
    horizontal = ops.einsum("bpw,bhwc->bhpc", c0 * quantized(g0) + c1 * quantized(g1), images)
    horizontal = ops.floor(horizontal / 16.0)
    (r0, r1), (b0, b1) = rows.taps(rows=True)
    top = ops.floor(ops.einsum("boh,bhpc->bopc", r0 * quantized(b0), horizontal) / 65536.0)
    bottom = ops.floor(ops.einsum("boh,bhpc->bopc", r1 * quantized(b1), horizontal) / 65536.0)
    linear = ops.floor((top + bottom + 2.0) / 4.0)
    is_area = ops.equal(rows.mode, _AREA)[:, :, None, None]
    return ops.cast(ops.clip(ops.where(is_area, area, linear), 0.0, 255.0), "float32")


def _fit_geometry(h, w, height, width, fit):
    """`fit_size`'s placement of an (h, w) image in (height, width): top, left, new_h, new_w (float64 scalars)."""
    h, w = ops.cast(h, "float64"), ops.cast(w, "float64")
    if fit == "stretch":
        zero = ops.zeros((), "float64")
        return zero, zero, zero + height, zero + width
    same = ops.equal(h * width, w * height)
    scale = ops.minimum(height / h, width / w)
    new_h = ops.where(same, float(height), ops.maximum(1.0, ops.round(h * scale)))
    new_w = ops.where(same, float(width), ops.maximum(1.0, ops.round(w * scale)))
    return ops.floor((height - new_h) / 2), ops.floor((width - new_w) / 2), new_h, new_w


def _cv2_mode(shrinking, src_h, src_w, out_h, out_w):
    """Which weights cv2.resize uses: INTER_AREA when `fit_size` shrinks (its own two-tap weights when an axis
    enlarges), INTER_LINEAR otherwise."""
    both_shrink = ops.logical_and(src_h >= out_h, src_w >= out_w)
    return ops.where(shrinking, ops.where(both_shrink, float(_AREA), float(_AREA_ENLARGING)), float(_LINEAR))


def _batch_of(value, batch):
    return ops.ones((batch,), "float64") * ops.cast(value, "float64")


# --------------------------------------------------------------------------- layers


class _NoWeights(keras.layers.Layer):
    """A layer without weights: built as soon as it exists."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True


@keras.saving.register_keras_serializable(package="skinlib")
class FitSize(_NoWeights):
    """`skinlib.data.images.fit_size` as a layer: (B, H, W, C) RGB 0..255 -> (B, height, width, C).

    "pad" keeps the aspect ratio and pads with black, "stretch" ignores it; OpenCV's INTER_AREA when shrinking,
    its 8-bit INTER_LINEAR otherwise, so the result is in whole levels as `fit_size`'s uint8 output is.
    """

    def __init__(self, height: int, width: int, fit: str = "pad", **kwargs):
        super().__init__(**kwargs)
        if fit not in ("pad", "stretch"):
            raise ValueError(f"FitSize: fit must be 'pad' or 'stretch', not {fit!r}")
        self.height, self.width, self.fit = int(height), int(width), fit

    def call(self, images):
        batch, h, w = ops.shape(images)[0], ops.shape(images)[1], ops.shape(images)[2]
        top, left, new_h, new_w = _fit_geometry(h, w, self.height, self.width, self.fit)
        h64, w64 = ops.cast(h, "float64"), ops.cast(w, "float64")
        shrinking = ops.logical_or(h64 > self.height, w64 > self.width)
        mode = _batch_of(_cv2_mode(shrinking, h64, w64, new_h, new_w), batch)
        zero = _batch_of(0.0, batch)
        rows = _Axis(self.height, _batch_of(top, batch), _batch_of(new_h, batch), zero, _batch_of(h64, batch), h, mode)
        cols = _Axis(self.width, _batch_of(left, batch), _batch_of(new_w, batch), zero, _batch_of(w64, batch), w, mode)
        return _resize_8bit(images, rows, cols)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "fit": self.fit}


@keras.saving.register_keras_serializable(package="skinlib")
class UnfitSize(_NoWeights):
    """`skinlib.data.images.unfit_size` as a layer: [maps (B, h, w, C) at a model's size, images (B, H, W, ...)]
    -> maps at the images' size (B, H, W, C): the padding `fit_size` added is cut off, then a bilinear resize
    (float, not rounded)."""

    def __init__(self, fit: str = "pad", **kwargs):
        super().__init__(**kwargs)
        if fit not in ("pad", "stretch"):
            raise ValueError(f"UnfitSize: fit must be 'pad' or 'stretch', not {fit!r}")
        self.fit = fit

    def call(self, inputs):
        maps, like = inputs
        batch = ops.shape(maps)[0]
        height, width = maps.shape[1], maps.shape[2]
        h, w = ops.shape(like)[1], ops.shape(like)[2]
        top, left, new_h, new_w = _fit_geometry(h, w, height, width, self.fit)
        linear = _batch_of(float(_LINEAR), batch)
        zero = _batch_of(0.0, batch)
        rows = _Axis(h, zero, _batch_of(h, batch), _batch_of(top, batch), _batch_of(new_h, batch), height, linear)
        cols = _Axis(w, zero, _batch_of(w, batch), _batch_of(left, batch), _batch_of(new_w, batch), width, linear)
        return _resize_float(maps, rows, cols)

    def compute_output_shape(self, input_shapes):
        maps, like = input_shapes
        return (maps[0], like[1], like[2], maps[-1])

    def get_config(self):
        return {**super().get_config(), "fit": self.fit}


def _flood(seed, allowed, cross: bool):
    """Grow `seed` (B, H, W, 1; float) through `allowed` pixels until it stops: 8-connected max (3x3) or
    4-connected (cross). With seed values other than 1, every pixel ends with the largest value that reaches it."""

    def grow(x):
        if cross:
            return ops.maximum(ops.max_pool(x, (3, 1), 1, "same"), ops.max_pool(x, (1, 3), 1, "same"))
        return ops.max_pool(x, 3, 1, "same")

    def body(x, changed):
        new = grow(x) * allowed
        return new, ops.any(ops.not_equal(new, x))

    result, _ = ops.while_loop(lambda x, changed: changed, body, (seed * allowed, ops.convert_to_tensor(True)))
    return result


@keras.saving.register_keras_serializable(package="skinlib")
class LesionMask(_NoWeights):
    """`skinlib.segmentation.postprocess.postprocess_mask` as a layer: a probability map (B, H, W, 1) -> mask
    (B, H, W, 1) of 0/1: above `threshold`, the largest 8-connected component (ties: the one met first in raster
    order, as OpenCV numbers them), enclosed holes filled (4-connected background, as scipy's binary_fill_holes)."""

    def __init__(self, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)

    def call(self, probabilities):
        shape = ops.shape(probabilities)
        batch, h, w = shape[0], shape[1], shape[2]
        mask = ops.cast(probabilities > self.threshold, "float32")
        pixels = h * w
        order = ops.reshape(ops.cast(pixels - ops.arange(pixels), "float32"), (1, h, w, 1))  # first pixel: largest
        labels = _flood(mask * order, mask, cross=False)  # each component: the order value of its first pixel
        ids = ops.reshape(ops.cast(pixels, "float32") - labels, (batch, -1))  # its flat index (background: pixels)
        ids = ops.cast(ids, "int32") + ops.arange(batch)[:, None] * (pixels + 1)
        areas = ops.segment_sum(ops.reshape(mask, (-1,)), ops.reshape(ids, (-1,)), num_segments=batch * (pixels + 1))
        area = ops.reshape(ops.take(areas, ops.reshape(ids, (-1,))), (batch, h, w, 1)) * mask
        largest = ops.max(area, axis=(1, 2, 3), keepdims=True)
        first = ops.max(
            ops.where(ops.logical_and(area == largest, mask > 0), labels, 0.0), axis=(1, 2, 3), keepdims=True
        )
        component = ops.cast(ops.logical_and(labels == first, mask > 0), "float32")
        outside = _flood(_border(batch, h, w), 1.0 - component, cross=True)  # background reached from the edge
        return 1.0 - outside

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


def _border(batch, h, w):
    """(B, H, W, 1) ones on the image's edge pixels, zeros inside."""
    rows = ops.arange(h)
    cols = ops.arange(w)
    edge_r = ops.logical_or(rows == 0, rows == h - 1)[:, None]
    edge_c = ops.logical_or(cols == 0, cols == w - 1)[None, :]
    edge = ops.cast(ops.logical_or(edge_r, edge_c), "float32")
    return ops.broadcast_to(edge[None, :, :, None], (batch, h, w, 1))


def _lab(images):
    """RGB 0..255 -> OpenCV's 8-bit Lab (L scaled to 0..255, a and b offset by 128), CIE formulas, rounded."""
    x = ops.cast(images, "float32") / 255.0
    linear = ops.where(x <= 0.04045, x / 12.92, ops.power((x + 0.055) / 1.055, 2.4))
    r, g, b = linear[..., 0], linear[..., 1], linear[..., 2]
    fx = (0.412453 * r + 0.357580 * g + 0.180423 * b) / 0.950456
    fy = 0.212671 * r + 0.715160 * g + 0.072169 * b
    fz = (0.019334 * r + 0.119193 * g + 0.950227 * b) / 1.088754

    def f(t):
        return ops.where(t > 0.008856, ops.power(ops.maximum(t, 1e-12), 1.0 / 3.0), 7.787 * t + 16.0 / 116.0)

    lightness = ops.where(fy > 0.008856, 116.0 * f(fy) - 16.0, 903.3 * fy) * 255.0 / 100.0
    a = 500.0 * (f(fx) - f(fy)) + 128.0
    b_ = 200.0 * (f(fy) - f(fz)) + 128.0
    return ops.clip(ops.round(ops.stack([lightness, a, b_], axis=-1)), 0.0, 255.0)


@keras.saving.register_keras_serializable(package="skinlib")
class LesionCrop(_NoWeights):
    """`skinlib.segmentation.postprocess.lesion_crop`, then `fit_size(..., "pad")` to the classifier's input:
    [images (B, H, W, 3), masks (B, H, W, 1)] -> [crops (B, size, size, 3), lesion_found (B,)].

    A mask that is empty, covers less than `min_fraction` or more than `max_fraction` of the image, or whose
    region has about the colour of the rest (Lab contrast below `min_contrast`) is not trusted: that image's
    full picture is fitted instead and lesion_found is 0. Otherwise the square around the mask's bounding box,
    widened by `margin` on each side, with borders reflected where it passes the photo's edge. With
    `source="full"` (a classifier trained on full images) the full picture is always used.
    """

    def __init__(
        self,
        size: int,
        margin: float = 0.25,
        min_fraction: float = 0.01,
        max_fraction: float = 0.95,
        min_contrast: float = 2.0,
        source: str = "crop",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if source not in ("crop", "full"):
            raise ValueError(f"LesionCrop: source must be 'crop' or 'full', not {source!r}")
        self.size, self.margin, self.source = int(size), float(margin), source
        self.min_fraction, self.max_fraction, self.min_contrast = (
            float(min_fraction),
            float(max_fraction),
            float(min_contrast),
        )

    def call(self, inputs):
        images, masks = inputs
        images = ops.cast(images, "float32")
        shape = ops.shape(images)
        batch, h, w = shape[0], shape[1], shape[2]
        h64, w64 = ops.cast(h, "float64"), ops.cast(w, "float64")
        inside = ops.cast(masks > 0.5, "float32")
        fraction = ops.mean(inside, axis=(1, 2, 3))
        lab = _lab(images)
        n_in = ops.sum(inside, axis=(1, 2, 3))
        n_out = ops.cast(h * w, "float32") - n_in
        sum_in = ops.sum(lab * inside, axis=(1, 2))
        sum_all = ops.sum(lab, axis=(1, 2))
        mean_in = sum_in / ops.maximum(n_in, 1.0)[:, None]
        mean_out = (sum_all - sum_in) / ops.maximum(n_out, 1.0)[:, None]
        contrast = ops.sqrt(ops.sum(ops.square(mean_in - mean_out), axis=-1))
        contrast = ops.where(ops.logical_or(n_in == 0, n_out == 0), float("inf"), contrast)  # nan: never refused
        trusted = ops.logical_and(
            ops.logical_and(fraction > 0, fraction >= self.min_fraction),
            ops.logical_and(fraction <= self.max_fraction, contrast >= self.min_contrast),
        )
        # the mask's bounding box and lesion_crop's square around it (float64, Python's round: half to even)
        any_row = ops.max(inside, axis=(2, 3))
        any_col = ops.max(inside, axis=(1, 3))
        top = ops.cast(ops.argmax(any_row, axis=1), "float64")
        bottom = h64 - ops.cast(ops.argmax(ops.flip(any_row, axis=1), axis=1), "float64")
        left = ops.cast(ops.argmax(any_col, axis=1), "float64")
        right = w64 - ops.cast(ops.argmax(ops.flip(any_col, axis=1), axis=1), "float64")
        side = ops.maximum(ops.round(ops.maximum(bottom - top, right - left) * (1 + 2 * self.margin)), 1.0)
        crop_top = ops.round((top + bottom) / 2 - side / 2)
        crop_left = ops.round((left + right) / 2 - side / 2)
        # the full picture, fitted with fit_size's padding
        f_top, f_left, f_h, f_w = _fit_geometry(h, w, self.size, self.size, "pad")
        full_mode = _cv2_mode(ops.logical_or(h64 > self.size, w64 > self.size), h64, w64, f_h, f_w)
        use_crop = trusted if self.source == "crop" else ops.zeros_like(trusted)
        crop_mode = ops.where(side > self.size, float(_AREA), float(_LINEAR))  # square -> square: one scale

        def pick(crop_value, full_value):
            return ops.where(use_crop, ops.cast(crop_value, "float64"), _batch_of(full_value, batch))

        zero = ops.zeros_like(side)
        mode = pick(crop_mode, full_mode)
        rows = _Axis(
            self.size, pick(zero, f_top), pick(zero + self.size, f_h), pick(crop_top, 0.0), pick(side, h64), h, mode
        )
        cols = _Axis(
            self.size, pick(zero, f_left), pick(zero + self.size, f_w), pick(crop_left, 0.0), pick(side, w64), w, mode
        )
        crops = _resize_8bit(images, rows, cols)
        return crops, ops.cast(trusted, "float32")

    def compute_output_shape(self, input_shapes):
        images, _ = input_shapes
        return (images[0], self.size, self.size, images[-1]), (images[0],)

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "margin": self.margin,
            "min_fraction": self.min_fraction,
            "max_fraction": self.max_fraction,
            "min_contrast": self.min_contrast,
            "source": self.source,
        }


@keras.saving.register_keras_serializable(package="skinlib")
class TemperatureScaling(_NoWeights):
    """`skinlib.evaluation.calibration.apply_temperature` as a layer: softmax(log(p) / T) of probabilities (B, K)."""

    def __init__(self, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not float(temperature) > 0:
            raise ValueError(f"TemperatureScaling: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def call(self, probabilities):
        logits = ops.log(ops.clip(ops.cast(probabilities, "float32"), 1e-12, 1.0)) / self.temperature
        return ops.softmax(logits, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


# --------------------------------------------------------------------------- the exported models


def _model_folder(folder, default: Path, kind: str, flag: str, how_to_make: str) -> Path:
    """A model folder (or the shipped one), refused with a message naming it when it holds no model.json."""

    folder = Path(default if folder is None else folder)
    if not (folder / "model.json").is_file():
        what = "does not exist" if not folder.exists() else "has no model.json"
        raise DataError(
            f"{folder} is not a {kind} model folder ({what}): pass {flag} a folder written by "
            f"`{how_to_make}`, or leave {flag} out to export the shipped {kind}"
        )
    return folder


def _load_classifier(model_dir):

    return StageTwo.load(
        _model_folder(model_dir, CLASSIFIER, "classifier", "--model", "skinlib train-classifier --out DIR")
    )


def _load_unet(unet_dir):

    folder = _model_folder(unet_dir, UNET, "unet", "--unet", "skinlib train-unet --out DIR")
    segmenter = UNetSegmenter.load(folder)
    if segmenter.fit not in ("pad", "stretch"):
        raise DataError(f"{folder}/model.json: fit {segmenter.fit!r} cannot be exported (only 'pad' and 'stretch')")
    return segmenter


def _calibrated(stage_two, x):
    """Every member of the classifier on `x` (an ensemble's probabilities averaged), then its temperature."""
    members = stage_two.members
    if len(members) == 1:
        probabilities = members[0](x)
    else:
        for index, member in enumerate(members):  # one name each in the exported graph
            member.name = f"{member.name}_member{index}"
        probabilities = keras.layers.Average(name="members_mean")([member(x) for member in members])
    return TemperatureScaling(stage_two.temperature, name="calibrated")(probabilities)


def classifier_model(model_dir=None) -> keras.Model:
    """Stage 2 alone: lesion crop (B, H, W, 3) of any size -> calibrated probabilities (B, 7)."""
    stage_two = _load_classifier(model_dir)
    size = stage_two.image_size
    inputs = keras.Input((None, None, 3), name="crop")
    x = FitSize(size, size, "pad", name="fit_to_classifier")(inputs)
    return keras.Model(inputs, _calibrated(stage_two, x), name="skinlib_classifier")


def _unet_map(segmenter, inputs):
    x = FitSize(*segmenter.image_size, segmenter.fit, name="fit_to_unet")(inputs)
    return UnfitSize(segmenter.fit, name="map_at_image_size")([segmenter.model(x), inputs])


def unet_model(unet_dir=None) -> keras.Model:
    """Stage 1 alone: image (B, H, W, 3) -> lesion probability map at the image's size (B, H, W, 1)."""
    segmenter = _load_unet(unet_dir)
    inputs = keras.Input((None, None, 3), name="image")
    return keras.Model(inputs, _unet_map(segmenter, inputs), name="skinlib_unet")


def dual_model(unet_dir=None, model_dir=None) -> keras.Model:
    """Both stages: image (B, H, W, 3) -> {probabilities, lesion_found, mask, crop} (see the module docstring)."""

    _model_folder(model_dir, CLASSIFIER, "classifier", "--model", "skinlib train-classifier --out DIR")  # fail early
    segmenter, stage_two = _load_unet(unet_dir), _load_classifier(model_dir)
    inputs = keras.Input((None, None, 3), name="image")
    mask = LesionMask(segmenter.threshold, name="lesion_mask")(_unet_map(segmenter, inputs))
    crop, found = LesionCrop(
        stage_two.image_size,
        stage_two.margin,
        MIN_LESION_FRACTION,
        MAX_LESION_FRACTION,
        MIN_LESION_CONTRAST,
        stage_two.source,
        name="lesion_crop",
    )([inputs, mask])
    outputs = {"probabilities": _calibrated(stage_two, crop), "lesion_found": found, "mask": mask, "crop": crop}
    return keras.Model(inputs, outputs, name="skinlib_dual_stage")


def build_export(stage: str = "dual", model_dir=None, unet_dir=None) -> keras.Model:
    """The Keras model `skinlib export --stage STAGE` writes, with the folders' weights loaded."""

    if stage == "dual":
        return dual_model(unet_dir, model_dir)
    if stage == "classifier":
        if unet_dir is not None:
            raise DataError("--unet is for --stage dual or unet; the classifier stage has no U-Net")
        return classifier_model(model_dir)
    if stage == "unet":
        if model_dir is not None:
            raise DataError(
                "--model (a classifier folder) is for --stage dual or classifier; use --unet DIR for the U-Net stage"
            )
        return unet_model(unet_dir)
    raise DataError(f"unknown stage {stage!r}: choose one of {', '.join(STAGES)}")


def export_keras(
    out, stage: str = "dual", model_dir=None, unet_dir=None, force: bool = False, format: str = "keras"
) -> Path:
    """Write the stage's model to `out` (a `.keras` file) and return its path.

    An existing `out` is refused unless `force`; the file is written beside it first and moved in place, so a
    failed export never leaves half a file.
    """

    if format not in FORMATS:
        raise DataError(f"unknown export format {format!r}: the formats are {', '.join(FORMATS)}")
    out = Path(out)
    if out.suffix != ".keras":
        raise DataError(
            f"{out}: a Keras model file must end in .keras (Keras refuses other names); "
            f"try --out {out.with_suffix('.keras')}"
        )
    if out.is_dir():
        raise DataError(f"{out} is a folder: give --out a file name ending in .keras")
    if out.exists() and not force:
        raise DataError(f"{out} already exists: pass --force to overwrite it, or choose another --out")
    model = build_export(stage, model_dir, unet_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.partial.keras")
    try:
        model.save(partial)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return out
