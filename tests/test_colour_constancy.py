"""Shades-of-Gray colour constancy: the layer's arithmetic, its invariance, and its place in the classifier."""

import json

import keras
import numpy as np
import pytest

from skinlib.cli import build_parser, classifier_config_from_args
from skinlib.models.classifier import build_classifier
from skinlib.models.colour_constancy import ShadesOfGray
from skinlib.runtime import StageTwo
from skinlib.training.classifier import ClassifierConfig, export_classifier, feature_cache_key

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

RNG = np.random.default_rng(0)
SKIN = RNG.uniform(40, 180, size=(3, 32, 32, 3)).astype("float32")


def corrected(images, power=6.0):
    return keras.ops.convert_to_numpy(ShadesOfGray(power)(images))


def test_gray_world_by_hand():
    # Two pixels, p = 1 (Gray World): channel means e = (0.5, 0.25, 0.125) of 255; their geometric mean is 0.25,
    # so the gains are 0.5, 1 and 2 and every channel's mean becomes 0.25 * 255.
    image = np.array([[[[255.0, 127.5, 63.75], [0.0, 0.0, 0.0]]]], "float32")
    out = corrected(image, power=1.0)
    np.testing.assert_allclose(out[0, 0, 0], [127.5, 127.5, 127.5], rtol=1e-4)
    np.testing.assert_allclose(out[0, 0, 1], [0.0, 0.0, 0.0], atol=1e-4)


def test_a_colour_cast_is_removed():
    warm = np.array([1.25, 1.0, 0.8], "float32")  # product 1: colour changes, brightness does not
    np.testing.assert_allclose(corrected(SKIN * warm), corrected(SKIN), atol=1e-2)
    brighter = corrected(SKIN * warm * 1.1)  # any other cast: removed up to one brightness factor
    np.testing.assert_allclose(brighter, corrected(SKIN) * 1.1, rtol=1e-3, atol=1e-2)


def test_a_neutral_image_is_left_alone_and_each_image_is_corrected_on_its_own():
    gray = np.repeat(SKIN[..., :1], 3, axis=-1)
    np.testing.assert_allclose(corrected(gray), gray, rtol=1e-4)
    together = corrected(np.concatenate([gray, SKIN * np.array([1.3, 1.0, 0.7], "float32")]))
    np.testing.assert_allclose(together[:3], gray, rtol=1e-4)  # the second batch item does not leak into the first


def test_black_and_clipped_images_stay_in_range():
    black = np.zeros((1, 8, 8, 3), "float32")
    np.testing.assert_array_equal(corrected(black), black)
    cast = np.clip(SKIN * np.array([3.0, 1.0, 1 / 3], "float32"), 0, 255)
    out = corrected(cast)
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 255.0


def test_power_below_one_is_refused_and_the_layer_serialises():
    with pytest.raises(ValueError, match="power must be >= 1"):
        ShadesOfGray(0.5)
    clone = ShadesOfGray.from_config(ShadesOfGray(4.0, name="cc").get_config())
    assert clone.power == 4.0 and clone.name == "cc"


def test_the_classifier_sees_corrected_pixels():
    model = build_classifier((32, 32, 3), backbone_weights=None, colour_constancy=True, dropout=0.0)
    assert model.layers[1].name == "colour_constancy" and not model.layers[1].weights
    warm = np.array([1.25, 1.0, 0.8], "float32")
    np.testing.assert_allclose(model.predict(SKIN * warm, verbose=0), model.predict(SKIN, verbose=0), atol=1e-4)
    plain = build_classifier((32, 32, 3), backbone_weights=None, dropout=0.0)
    assert "colour_constancy" not in [layer.name for layer in plain.layers]
    with pytest.raises(ValueError, match="Lite backbones only"):
        build_classifier((32, 32, 3), backbone="efficientnetb0", backbone_weights=None, colour_constancy=True)


def test_a_saved_model_reloads_with_its_colour_constancy(tmp_path):
    config = ClassifierConfig(image_size=32, colour_constancy=True)
    model = build_classifier((32, 32, 3), backbone_weights=None, colour_constancy=True)
    export_classifier(model, config, tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["colour_constancy"] is True
    loaded = StageTwo.load(tmp_path)
    assert "colour_constancy" in [layer.name for layer in loaded.model.layers]
    inputs = SKIN.astype(np.uint8)
    np.testing.assert_allclose(
        loaded.raw_probabilities(inputs), model.predict(inputs.astype("float32"), verbose=0), atol=2e-2
    )  # float16 weights


def test_the_flag_reaches_the_config_and_the_feature_cache_key():
    args = build_parser().parse_args(["train-classifier", "--colour-constancy"])
    assert classifier_config_from_args(args).colour_constancy is True
    assert classifier_config_from_args(build_parser().parse_args(["train-classifier"])).colour_constancy is False
    plain, corrected_key = (
        feature_cache_key(ClassifierConfig()),
        feature_cache_key(ClassifierConfig(colour_constancy=True)),
    )
    assert plain != corrected_key  # features of corrected images are never read from the plain cache
    assert plain == ("lite0", "imagenet", "stage5_out", 224)  # caches made before the option still match
