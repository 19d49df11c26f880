"""CBAM attention layers: shapes, ranges, a numpy reference, and maps retrievable from a model."""

import keras
import numpy as np
import pytest

from skinlib.models.attention import (
    ChannelAttention,
    SpatialAttention,
    attention_layer_names,
    attention_model,
    cbam_block,
)

# Keras' TF backend calls np.array(variable) when saving weights, which numpy>=2 flags; not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

RNG = np.random.default_rng(0)
FEATURES = RNG.uniform(0, 6, size=(2, 5, 6, 16)).astype("float32")  # ReLU6-like feature maps


def numpy_(x):
    return keras.ops.convert_to_numpy(x)


def tiny_model(name="cbam"):
    inputs = keras.Input((5, 6, 16), name="features")
    x = cbam_block(inputs, reduction=4, kernel_size=3, name=name)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


# --------------------------------------------------------------------------- channel attention


def randomise(layer, scale=0.3, seed=1):
    """Give a built layer random weights (they start at a neutral 0.5 gate)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=scale, size=w.shape).astype("float32") for w in layer.get_weights()])


def test_channel_attention_shape_and_range():
    layer = ChannelAttention(reduction=4)
    layer(FEATURES)
    assert [tuple(w.shape) for w in layer.weights] == [(16, 4), (4,), (4, 16), (16,)]
    randomise(layer)
    weights = numpy_(layer(FEATURES))
    assert weights.shape == (2, 16)
    assert np.all((weights >= 0) & (weights <= 1)) and weights.std() > 0.01


def test_channel_attention_matches_numpy_reference():
    layer = ChannelAttention(reduction=4)
    layer(FEATURES)
    randomise(layer)
    got = numpy_(layer(FEATURES))
    w1, b1, w2, b2 = (numpy_(w) for w in layer.weights)

    def mlp(v):
        return np.maximum(v @ w1 + b1, 0) @ w2 + b2

    logits = mlp(FEATURES.mean(axis=(1, 2))) + mlp(FEATURES.max(axis=(1, 2)))
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)


def test_channel_attention_keeps_at_least_one_hidden_unit():
    layer = ChannelAttention(reduction=64)
    layer(FEATURES)
    assert tuple(layer.weights[0].shape) == (16, 1)


# --------------------------------------------------------------------------- spatial attention


def test_spatial_attention_shape_and_range():
    layer = SpatialAttention(kernel_size=3)
    layer(FEATURES)
    randomise(layer, scale=0.1)
    weights = numpy_(layer(FEATURES))
    assert weights.shape == (2, 5, 6, 1)
    assert np.all((weights >= 0) & (weights <= 1)) and weights.std() > 0.01


def test_spatial_attention_follows_the_active_region():
    x = np.zeros((1, 8, 8, 4), "float32")
    x[0, 1:3, 5:7, :] = 10.0  # one strongly active 2x2 region, top right
    layer = SpatialAttention(kernel_size=3)
    layer.build(x.shape)
    layer.set_weights([np.full((3, 3, 2, 1), 0.1, "float32"), np.array([-1.0], "float32")])
    spatial = numpy_(layer(x))[0, :, :, 0]
    inside, far = spatial[1:3, 5:7], spatial[5:, :3]
    assert inside.min() > 0.99 and far.max() < 0.5
    assert np.unravel_index(spatial.argmax(), spatial.shape) in {(1, 5), (1, 6), (2, 5), (2, 6)}


def test_both_gates_start_neutral():
    np.testing.assert_allclose(numpy_(ChannelAttention(reduction=4)(FEATURES)), 0.5)
    np.testing.assert_allclose(numpy_(SpatialAttention(kernel_size=3)(FEATURES)), 0.5)


def test_gates_get_gradients_at_initialisation():
    import tensorflow as tf

    keras.utils.set_random_seed(0)  # fixed weights: with unseeded ones a draw whose ReLU units are all off fails
    model = tiny_model()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(FEATURES) * np.eye(3, dtype="float32")[[0, 2]])
    grads = tape.gradient(loss, [model.get_layer("cbam_channel").output_kernel, model.get_layer("cbam_spatial").kernel])
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


@pytest.mark.parametrize("make", [lambda: ChannelAttention(reduction=0), lambda: SpatialAttention(kernel_size=0)])
def test_bad_arguments_are_refused(make):
    with pytest.raises(ValueError):
        make()


# --------------------------------------------------------------------------- block and maps


def test_cbam_block_applies_both_maps():
    model = tiny_model()
    randomise(model.get_layer("cbam_channel"))
    randomise(model.get_layer("cbam_spatial"), scale=0.1)
    maps = attention_model(model)(FEATURES)
    assert set(maps) == {"channel", "spatial"}
    channel, spatial = numpy_(maps["channel"]), numpy_(maps["spatial"])
    assert channel.shape == (2, 16) and spatial.shape == (2, 5, 6, 1)
    assert np.all((channel >= 0) & (channel <= 1)) and np.all((spatial >= 0) & (spatial <= 1))
    attended = keras.Model(model.input, model.get_layer("cbam_spatial_apply").output)(FEATURES)
    np.testing.assert_allclose(numpy_(attended), FEATURES * channel[:, None, None, :] * spatial, rtol=1e-5)


def test_maps_of_a_named_block():
    model = tiny_model(name="att")
    assert attention_layer_names("att") == {"channel": "att_channel", "spatial": "att_spatial"}
    assert set(attention_model(model, name="att")(FEATURES)) == {"channel", "spatial"}
    with pytest.raises(ValueError, match="no CBAM block 'cbam'"):
        attention_model(model)


def test_attention_model_shares_the_classifier_weights():
    model = tiny_model()
    maps = attention_model(model)
    layer = model.get_layer("cbam_spatial")
    randomise(layer, scale=0.1)
    expected = numpy_(layer(numpy_(keras.Model(model.input, model.get_layer("cbam_channel_apply").output)(FEATURES))))
    np.testing.assert_allclose(numpy_(maps(FEATURES)["spatial"]), expected, rtol=1e-6)


def test_model_with_cbam_saves_and_loads(tmp_path):
    model = tiny_model()
    randomise(model.get_layer("cbam_channel"))
    randomise(model.get_layer("cbam_spatial"), scale=0.1)
    path = tmp_path / "cbam.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(numpy_(restored(FEATURES)), numpy_(model(FEATURES)), rtol=1e-6)
    np.testing.assert_allclose(
        numpy_(attention_model(restored)(FEATURES)["spatial"]),
        numpy_(attention_model(model)(FEATURES)["spatial"]),
        rtol=1e-6,
    )
