"""The stage-2 classifier: outputs, attention maps, Grad-CAM access, staged unfreezing, weight fallbacks.

Small random-weight models at 64x64 only: building one takes about a second on a CPU.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from skinlib.models import classifier as clf
from skinlib.models.attention import attention_model

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

IMAGES = np.random.default_rng(0).uniform(0, 255, size=(2, 64, 64, 3)).astype("float32")


def numpy_(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def model():
    return clf.build_classifier(backbone_weights=None)  # default input (None, None, 3)


@pytest.fixture
def fresh_lite0():
    """A model whose trainable flags the test may change."""
    return clf.build_classifier((64, 64, 3), backbone_weights=None, dropout=0.0)


def head_layers(model):
    backbone = set(clf.backbone_layer_names(model))
    return [layer.name for layer in model.layers if layer.name not in backbone and layer.name != "image"]


# --------------------------------------------------------------------------- outputs


def test_outputs_are_seven_probabilities(model):
    probs = numpy_(model(IMAGES, training=False))
    assert probs.shape == (2, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_any_input_size_works(model):
    assert numpy_(model(IMAGES[:, :, :32], training=False)).shape == (2, 7)


def test_layout_of_the_head(model):
    assert head_layers(model) == [
        "cbam_channel",
        "cbam_channel_reshape",
        "cbam_channel_apply",
        "cbam_spatial",
        "cbam_spatial_apply",
        "head_pool",
        "head_dropout",
        "predictions",
    ]
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    assert model.get_layer(clf.GRADCAM_LAYER).output.shape[-1] == 1280


def test_without_attention_or_dropout():
    plain = clf.build_classifier((64, 64, 3), backbone_weights=None, attention=False, dropout=0.0, num_classes=3)
    assert head_layers(plain) == ["head_pool", "predictions"]
    assert numpy_(plain(IMAGES)).shape == (2, 3)
    with pytest.raises(ValueError, match="attention=False"):
        attention_model(plain)


@pytest.mark.parametrize("kwargs", [{"backbone": "resnet50"}, {"dropout": 1.0}, {"num_classes": 1}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        clf.build_classifier((64, 64, 3), backbone_weights=None, **kwargs)


# --------------------------------------------------------------------------- attention maps and Grad-CAM


def test_attention_maps_are_retrievable(model):
    maps = attention_model(model)(IMAGES)
    assert tuple(maps["channel"].shape) == (2, 1280)
    assert tuple(maps["spatial"].shape) == (2, 2, 2, 1)  # stride 32
    for value in maps.values():
        value = numpy_(value)
        assert np.all((value >= 0) & (value <= 1))


def test_gradcam_gradients_reach_the_last_feature_map(model):
    name = clf.gradcam_layer_name(model)
    assert name == clf.GRADCAM_LAYER == "top_activation"
    grad_model = keras.Model(model.input, [model.get_layer(name).output, model.output])
    with tf.GradientTape() as tape:
        features, probs = grad_model(IMAGES, training=False)
        score = probs[:, 4]  # melanoma
    grads = tape.gradient(score, features)
    assert grads.shape == features.shape == (2, 2, 2, 1280)
    assert float(tf.reduce_max(tf.abs(grads))) > 0


def test_gradcam_layer_of_a_foreign_model_is_an_error():
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="top_activation"):
        clf.gradcam_layer_name(other)


# --------------------------------------------------------------------------- backbone access and unfreezing


def test_backbone_layer_names(model):
    names = clf.backbone_layer_names(model)
    assert names[0] == "rescaling" and names[-1] == "top_activation"
    assert "stem_conv" in names and "block4c_project_bn" in names and "stage5_out" in names
    assert not any(n.startswith(("cbam", "head", "predictions")) for n in names)
    assert len(names) + len(head_layers(model)) + 1 == len(model.layers)


def test_frozen_backbone_leaves_only_the_head_trainable(fresh_lite0):
    assert clf.set_trainable_blocks(fresh_lite0, 0) == []
    trainable = {v.path.split("/")[0] for v in fresh_lite0.trainable_weights}
    assert trainable == {"cbam_channel", "cbam_spatial", "predictions"}


def test_last_two_stages_are_unfrozen(fresh_lite0):
    unfrozen = clf.set_trainable_blocks(fresh_lite0, 2)
    assert "block6a_expand_conv" in unfrozen and "block7a_project_conv" in unfrozen and "top_conv" in unfrozen
    assert all(n.startswith(("block6", "block7", "top_")) for n in unfrozen)
    assert not fresh_lite0.get_layer("block5c_project_conv").trainable
    assert not fresh_lite0.get_layer("block6a_bn").trainable  # BatchNorm stays frozen
    trainable = {v.path.split("/")[0] for v in fresh_lite0.trainable_weights}
    assert trainable == set(unfrozen) | {"cbam_channel", "cbam_spatial", "predictions"}


def test_all_stages_unfrozen_except_batchnorm(fresh_lite0):
    unfrozen = clf.set_trainable_blocks(fresh_lite0, 7)
    assert "stem_conv" in unfrozen
    batchnorms = [layer for layer in fresh_lite0.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batchnorms and not any(layer.trainable for layer in batchnorms)
    # ... and the head is trainable again even if the whole model had been frozen
    fresh_lite0.trainable = False
    clf.set_trainable_blocks(fresh_lite0, 7)
    assert fresh_lite0.get_layer("predictions").trainable and fresh_lite0.get_layer("stem_conv").trainable


def test_frozen_batchnorm_keeps_its_statistics_in_training(fresh_lite0):
    bn = fresh_lite0.get_layer("stem_bn")
    before = numpy_(bn.moving_mean).copy()
    clf.set_trainable_blocks(fresh_lite0, 7)
    fresh_lite0(IMAGES, training=True)
    np.testing.assert_array_equal(numpy_(bn.moving_mean), before)
    bn.trainable = True  # the contrast: a trainable BatchNorm updates them
    fresh_lite0(IMAGES, training=True)
    assert np.abs(numpy_(bn.moving_mean) - before).max() > 1e-4


@pytest.mark.parametrize("n", [-1, 8])
def test_stage_count_is_checked(fresh_lite0, n):
    with pytest.raises(ValueError, match="0..7"):
        clf.set_trainable_blocks(fresh_lite0, n)


# --------------------------------------------------------------------------- EfficientNetB0 weights


def failing_download(*args, **kwargs):
    raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- no network")


def test_efficientnetb0_falls_back_to_random_weights_with_a_warning(monkeypatch):
    monkeypatch.setattr(keras.utils, "get_file", failing_download)
    with pytest.warns(RuntimeWarning, match="RANDOMLY INITIALISED") as record:
        model = clf.build_classifier((64, 64, 3), backbone="efficientnetb0", backbone_weights="imagenet")
    assert "no network" in str(record[0].message)
    assert record[0].filename == __file__  # points at the caller, not at skinlib
    probs = numpy_(model(IMAGES, training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert clf.backbone_layer_names(model)[-1] == "top_activation"
    assert "block7a_se_reduce" in clf.set_trainable_blocks(model, 1)
    assert tuple(attention_model(model)(IMAGES)["spatial"].shape) == (2, 2, 2, 1)


@pytest.fixture(scope="module")
def b0_weights_file(tmp_path_factory):
    """Stand-in for efficientnetb0_notop.h5: a random EfficientNetB0's weights, and that backbone."""
    reference = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(64, 64, 3))
    norm = next(layer for layer in reference.layers if isinstance(layer, keras.layers.Normalization))
    norm.adapt_mean.assign([0.485, 0.456, 0.406])  # what the ImageNet file holds
    norm.adapt_variance.assign([0.229, 0.224, 0.225])
    path = tmp_path_factory.mktemp("b0") / "efficientnetb0_notop.weights.h5"
    reference.save_weights(path)
    return path, reference


def check_loaded(model, reference):
    np.testing.assert_array_equal(
        numpy_(model.get_layer("block3a_dwconv").weights[0]), numpy_(reference.get_layer("block3a_dwconv").weights[0])
    )
    norm = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    # keras.applications' extra 1/sqrt(std) after the Normalization, folded into its variance
    np.testing.assert_allclose(numpy_(norm.adapt_variance), np.array([0.229, 0.224, 0.225]) ** 2, rtol=1e-6)
    pixel = np.full((1, 64, 64, 3), 128.0, "float32")
    expected = (128 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    normalised = keras.Model(model.input, norm.output)(pixel)
    np.testing.assert_allclose(numpy_(normalised)[0, 0, 0], expected, rtol=1e-5)


def test_efficientnetb0_loads_a_local_weights_file(b0_weights_file):
    path, reference = b0_weights_file
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback warning
        model = clf.build_classifier((64, 64, 3), backbone="efficientnetb0", backbone_weights=str(path))
    check_loaded(model, reference)


def test_efficientnetb0_imagenet_uses_the_downloaded_file(monkeypatch, b0_weights_file):
    path, reference = b0_weights_file
    calls = []
    monkeypatch.setattr(keras.utils, "get_file", lambda *args, **kwargs: calls.append((args, kwargs)) or str(path))
    model = clf.build_classifier((64, 64, 3), backbone="efficientnetb0", backbone_weights="imagenet")
    assert calls[0][0][0] == "efficientnetb0_notop.h5" and calls[0][1]["file_hash"] == clf.B0_WEIGHTS_HASH
    check_loaded(model, reference)


def test_a_saved_efficientnetb0_classifier_reloads_whatever_was_built_before(tmp_path):
    """keras.applications' B0 has an auto-named Normalization layer whose path counts the ones built before
    (normalization_1, normalization_2, ...): a saved classifier must still load into a later build."""
    from skinlib.models.storage import load_compact_weights, save_compact_weights

    saved = clf.build_classifier((64, 64, 3), backbone="efficientnetb0", backbone_weights=None)
    norm = next(layer for layer in saved.layers if isinstance(layer, keras.layers.Normalization))
    norm.adapt_mean.assign([0.1, 0.2, 0.3])
    path = save_compact_weights(saved, tmp_path / "weights.npz")
    clf.build_classifier((64, 64, 3), backbone="efficientnetb0", backbone_weights=None)  # moves the counter on
    later = clf.build_classifier((64, 64, 3), backbone="efficientnetb0", backbone_weights=None)
    assert {v.path for v in later.weights} != {v.path for v in saved.weights}
    load_compact_weights(later, path)
    probs = numpy_(later(IMAGES, training=False))
    assert probs.shape == (len(IMAGES), 7)
    np.testing.assert_allclose(probs, numpy_(saved(IMAGES, training=False)), atol=2e-2)  # float16 round trip
    lite0 = clf.build_classifier((64, 64, 3), backbone="lite0", backbone_weights=None)
    with pytest.raises(ValueError, match="does not fit"):  # a different architecture is still refused
        load_compact_weights(lite0, path)


def test_missing_weights_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        clf.build_classifier((64, 64, 3), backbone="efficientnetb0", backbone_weights=str(tmp_path / "nope.h5"))


def test_a_random_backbone_trains_the_batchnorm_of_its_unfrozen_stages(fresh_lite0):
    """Random BatchNorm statistics mean nothing: with train_batchnorm, the unfrozen stages' BN layers learn."""
    clf.set_trainable_blocks(fresh_lite0, 2, train_batchnorm=True)
    trainable_bn = {
        layer.name
        for layer in fresh_lite0.layers
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    }
    assert trainable_bn and all(name.startswith(("block6", "block7", "top_")) for name in trainable_bn)
    assert not fresh_lite0.get_layer("stem_bn").trainable
