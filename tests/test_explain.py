"""Grad-CAM and attention maps: a tiny CNN that must find a bright blob, plus shapes on the real classifier."""

import keras
import numpy as np
import pytest

from skinlib.explain import attention_maps, candidate_layers, gradcam, gradcam_overlay, resize_maps
from skinlib.models.classifier import GRADCAM_LAYER, build_classifier

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SIZE = 32
BLOB_RADIUS = 3


def blob_images(n, rng, with_blob=True):
    """Dark noise; with_blob adds a bright disc at a random position. Returns images and (row, col) centres."""
    images = rng.uniform(0, 60, size=(n, SIZE, SIZE, 3)).astype("float32")
    centres = rng.integers(6, SIZE - 6, size=(n, 2))
    rows, cols = np.mgrid[:SIZE, :SIZE]
    if with_blob:
        for image, (row, col) in zip(images, centres):
            image[(rows - row) ** 2 + (cols - col) ** 2 <= BLOB_RADIUS**2] = 230
    return images, centres


def tiny_cnn():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="first_conv")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="middle_conv")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="blob_cnn")


@pytest.fixture(scope="module")
def blob_model():
    """Class 1 = blob, class 0 = noise only; a couple of seconds of training reach ~100 %."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    positives, _ = blob_images(200, rng)
    negatives, _ = blob_images(200, rng, with_blob=False)
    model = tiny_cnn()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    labels = np.r_[np.ones(200), np.zeros(200)].astype(int)
    model.fit(np.concatenate([positives, negatives]), labels, epochs=8, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def classifier():
    return build_classifier(input_shape=(64, 64, 3), backbone_weights=None)


def test_gradcam_peak_lies_on_the_blob(blob_model):
    images, centres = blob_images(10, np.random.default_rng(1))
    assert np.mean(blob_model.predict(images, verbose=0).argmax(1) == 1) >= 0.9, "the tiny CNN did not learn"
    maps = resize_maps(gradcam(blob_model, images, class_index=1, layer_name="last_conv"), (SIZE, SIZE))
    peaks = np.array([np.unravel_index(m.argmax(), m.shape) for m in maps])
    distances = np.hypot(*(peaks - centres).T)
    assert np.mean(distances <= BLOB_RADIUS + 2) >= 0.8, distances


def test_gradcam_shape_range_and_defaults(blob_model):
    images, _ = blob_images(3, np.random.default_rng(2))
    maps = gradcam(blob_model, images)  # default layer = deepest map, class = prediction
    assert maps.shape == (3, SIZE // 2, SIZE // 2) and maps.dtype == np.float32
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1)
    assert np.allclose(maps, gradcam(blob_model, images, layer_name="last_conv", class_index=[1, 1, 1]))
    assert gradcam(blob_model, images[0]).shape == (1, SIZE // 2, SIZE // 2)  # one image without batch axis


def test_gradcam_custom_layer(blob_model):
    images, _ = blob_images(2, np.random.default_rng(3))
    assert gradcam(blob_model, images, layer_name="first_conv").shape == (2, SIZE, SIZE)
    assert gradcam(blob_model, images, layer_name="middle_conv").shape == (2, SIZE // 2, SIZE // 2)


def test_unknown_or_flat_layer_lists_candidates(blob_model):
    with pytest.raises(ValueError, match=r"no layer 'nope'.*candidates:.*last_conv"):
        gradcam(blob_model, np.zeros((1, SIZE, SIZE, 3)), layer_name="nope")
    with pytest.raises(ValueError, match="4-D feature map.*candidates"):
        gradcam(blob_model, np.zeros((1, SIZE, SIZE, 3)), layer_name="predictions")
    with pytest.raises(ValueError, match="class_index must be in 0..1"):
        gradcam(blob_model, np.zeros((1, SIZE, SIZE, 3)), class_index=2)


def test_zero_gradient_gives_zeros_not_nan():
    model = tiny_cnn()
    head = model.get_layer("predictions")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])  # the score ignores the features
    maps = gradcam(model, blob_images(2, np.random.default_rng(4))[0])
    assert np.all(maps == 0)


def test_overlay_is_an_rgb_image(blob_model):
    images, _ = blob_images(1, np.random.default_rng(5))
    overlay = gradcam_overlay(images[0].astype(np.uint8), gradcam(blob_model, images)[0])
    assert overlay.shape == (SIZE, SIZE, 3) and overlay.dtype == np.uint8


def test_classifier_default_layer_and_attention_maps(classifier):
    images = np.random.default_rng(6).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    maps = gradcam(classifier, images)
    assert maps.shape == (2, 2, 2) and np.all((maps >= 0) & (maps <= 1)) and not np.isnan(maps).any()
    attention = attention_maps(classifier, images)
    assert attention["spatial"].shape == (2, 64, 64) and attention["channel"].shape == (2, 1280)
    assert np.allclose(attention["spatial"], 0.5)  # untrained CBAM starts as a uniform 0.5 gate


def test_classifier_candidate_layers_are_stage_outputs(classifier):
    names = candidate_layers(classifier)
    assert names[0] == "stem_activation" and names[-1] == GRADCAM_LAYER
    assert {"block1a_project_bn", "block2b_add", "block6d_add", "block7a_project_bn"} <= set(names)
    assert len(names) == 9  # stem + 7 stages + top
    assert gradcam(classifier, np.zeros((1, 64, 64, 3)), layer_name="block3b_add").shape == (1, 8, 8)


def test_heat_inside_the_mask_is_compared_with_maps_that_ignore_the_image():
    import numpy as np

    from skinlib.explain import centre_prior, heat_inside_with_baselines, share_inside

    size = 16
    mask = np.zeros((size, size), bool)
    mask[4:12, 4:12] = True  # a centred lesion covering a quarter of the crop
    corner = np.zeros((size, size), bool)
    corner[:4, :4] = True
    on_lesion = mask.astype(float)
    assert share_inside(on_lesion, mask) == 1.0 and np.isnan(share_inside(np.zeros((size, size)), mask))
    shares = heat_inside_with_baselines(np.stack([on_lesion, on_lesion]), np.stack([mask, corner]))
    assert shares["uniform"] == [0.25, 1 / 16]
    assert shares["centre"][0] > 0.4 and shares["centre"][0] > shares["uniform"][0]  # centring alone scores high
    assert shares["gradcam"] == [1.0, 0.0]
    assert shares["other_images"] == [1.0, 0.0]  # the other image's map is the same blob
    peak = centre_prior(size)
    assert peak.argmax() in (
        size // 2 * size + size // 2,
        (size // 2 - 1) * size + size // 2 - 1,
        (size // 2 - 1) * size + size // 2,
        size // 2 * size + size // 2 - 1,
    )
    with pytest.raises(ValueError, match="must both be"):
        heat_inside_with_baselines(np.zeros((1, 4, 4)), np.zeros((1, 5, 5), bool))
