"""Losses: hand-computed values for the classification losses, and the segmentation losses on tiny masks."""

import math

import keras
import numpy as np
import pytest

from skinlib.data import class_weights
from skinlib.losses import (
    CategoricalFocalLoss,
    DiceBCELoss,
    DiceLoss,
    WeightedCategoricalCrossentropy,
    focal_alpha_from_class_weights,
)

# Two samples, three classes: true classes 1 and 0.
Y = np.array([[0, 1, 0], [1, 0, 0]], dtype="float32")
P = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]], dtype="float32")


def per_sample(loss, y=Y, p=P):
    """The unreduced loss of each sample, as numpy."""
    loss.reduction = None
    return keras.ops.convert_to_numpy(loss(y, p))


# --------------------------------------------------------------------------- focal loss


def test_focal_matches_hand_computation():
    expected = [-(0.3**2) * math.log(0.7), -(0.5**2) * math.log(0.5)]
    np.testing.assert_allclose(per_sample(CategoricalFocalLoss(gamma=2.0)), expected, rtol=1e-5)


def test_focal_reduces_to_the_batch_mean_by_default():
    expected = np.mean([-(0.3**2) * math.log(0.7), -(0.5**2) * math.log(0.5)])
    assert float(CategoricalFocalLoss()(Y, P)) == pytest.approx(expected, rel=1e-5)


def test_focal_with_gamma_zero_is_cross_entropy():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=5).astype("float32")
    onehot = np.eye(7, dtype="float32")[rng.integers(0, 7, size=5)]
    focal = per_sample(CategoricalFocalLoss(gamma=0.0), onehot, probs)
    ce = keras.ops.convert_to_numpy(keras.losses.categorical_crossentropy(onehot, probs))
    np.testing.assert_allclose(focal, ce, rtol=1e-5)


def test_focal_down_weights_easy_samples():
    easy = per_sample(CategoricalFocalLoss(gamma=2.0), Y[:1], np.array([[0.05, 0.9, 0.05]], "float32"))
    ce = -math.log(0.9)
    assert easy[0] == pytest.approx(0.1**2 * ce, rel=1e-5)  # 100x smaller than cross-entropy


def test_focal_alpha_weights_each_true_class():
    alpha = [2.0, 1.0, 0.5]
    expected = [1.0 * -(0.3**2) * math.log(0.7), 2.0 * -(0.5**2) * math.log(0.5)]
    np.testing.assert_allclose(per_sample(CategoricalFocalLoss(alpha=alpha)), expected, rtol=1e-5)


def test_focal_label_smoothing_matches_keras_cross_entropy():
    ours = per_sample(CategoricalFocalLoss(gamma=0.0, label_smoothing=0.3))
    theirs = keras.losses.CategoricalCrossentropy(label_smoothing=0.3, reduction=None)(Y, P)
    np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(theirs), rtol=1e-5)
    # by hand for the first sample: targets (0.1, 0.8, 0.1)
    first = -(0.1 * math.log(0.2) + 0.8 * math.log(0.7) + 0.1 * math.log(0.1))
    assert ours[0] == pytest.approx(first, rel=1e-5)


def test_focal_is_finite_for_saturated_probabilities():
    y = np.array([[0, 1, 0], [0, 1, 0]], "float32")
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "float32")  # confidently wrong, confidently right
    values = per_sample(CategoricalFocalLoss(gamma=2.0), y, p)
    assert np.all(np.isfinite(values))
    assert values[0] > 10 and values[1] < 1e-6


@pytest.mark.parametrize("kwargs", [{"gamma": -1.0}, {"label_smoothing": 1.0}, {"label_smoothing": -0.1}])
def test_focal_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        CategoricalFocalLoss(**kwargs)


def test_focal_trains_a_tiny_model():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, size=16)]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss=CategoricalFocalLoss(alpha=[1.0, 2.0, 0.5], label_smoothing=0.1))
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


# --------------------------------------------------------------------------- weighted cross-entropy


def test_weighted_cross_entropy_matches_hand_computation():
    expected = [-3.0 * math.log(0.7), -1.0 * math.log(0.5)]
    np.testing.assert_allclose(per_sample(WeightedCategoricalCrossentropy([1.0, 3.0, 0.5])), expected, rtol=1e-5)


def test_weighted_cross_entropy_accepts_a_dict_of_indices():
    loss = WeightedCategoricalCrossentropy({2: 0.5, 0: 1.0, 1: 3.0})
    assert loss.class_weights == [1.0, 3.0, 0.5]


def test_weighted_cross_entropy_accepts_class_codes():
    weights = {"akiec": 1, "bcc": 2, "bkl": 3, "df": 4, "mel": 5, "nv": 6, "vasc": 7}
    assert WeightedCategoricalCrossentropy(weights).class_weights == [1, 2, 3, 4, 5, 6, 7]


def test_unit_weights_give_plain_cross_entropy():
    ce = keras.ops.convert_to_numpy(keras.losses.categorical_crossentropy(Y, P))
    np.testing.assert_allclose(per_sample(WeightedCategoricalCrossentropy([1, 1, 1])), ce, rtol=1e-5)


@pytest.mark.parametrize("weights", [{0: 1.0, 2: 1.0}, [1.0, -1.0, 1.0], [0, 0, 0], [1.0, np.nan, 1.0]])
def test_bad_class_weights_are_refused(weights):
    with pytest.raises(ValueError):
        WeightedCategoricalCrossentropy(weights)


# --------------------------------------------------------------------------- alpha from class weights


def test_alpha_from_class_weights_has_mean_one_and_keeps_ratios():
    alpha = focal_alpha_from_class_weights({0: 1.0, 1: 3.0, 2: 2.0}, 3)
    np.testing.assert_allclose(alpha, [0.5, 1.5, 1.0])
    assert alpha.dtype == np.float32


def test_alpha_from_skinlib_class_weights():
    weights, _ = class_weights([0, 0, 0, 1, 2, 2], num_classes=3)  # counts 3, 1, 2
    np.testing.assert_allclose(focal_alpha_from_class_weights(weights, 3), np.array([2, 6, 3]) * 3 / 11, rtol=1e-6)


def test_alpha_from_class_weights_checks_the_class_count():
    with pytest.raises(ValueError, match="missing"):
        focal_alpha_from_class_weights({0: 1.0, 1: 1.0}, 3)
    with pytest.raises(ValueError, match="expected 7"):
        focal_alpha_from_class_weights([1.0, 1.0], 7)


# --------------------------------------------------------------------------- serialisation


@pytest.mark.parametrize(
    "loss",
    [
        CategoricalFocalLoss(gamma=1.5, alpha=[0.5, 2.0, 1.0], label_smoothing=0.1),
        CategoricalFocalLoss(),
        WeightedCategoricalCrossentropy([1.0, 3.0, 0.5]),
    ],
)
def test_round_trip_through_config(loss):
    clone = type(loss).from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(Y, P)), keras.ops.convert_to_numpy(loss(Y, P)))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()


# --------------------------------------------------------------------------- segmentation losses


def masks(*boxes, size=4):
    """A (1, size, size, 1) float mask with ones in each (row slice, col slice) box."""
    out = np.zeros((1, size, size, 1), "float32")
    for rows, cols in boxes:
        out[0, rows, cols, 0] = 1.0
    return out


LESION = masks((slice(0, 2), slice(0, 2)))  # 4 pixels top-left
ELSEWHERE = masks((slice(2, 4), slice(2, 4)))  # 4 pixels bottom-right


def test_dice_loss_is_zero_for_a_perfect_prediction():
    assert float(DiceLoss()(LESION, LESION)) == pytest.approx(0.0, abs=1e-6)


def test_dice_loss_for_disjoint_masks():
    # intersection 0, areas 4 + 4, smooth 1: dice = 1 / 9
    assert float(DiceLoss()(LESION, ELSEWHERE)) == pytest.approx(8 / 9, rel=1e-6)


def test_dice_loss_two_empty_masks_agree():
    empty = np.zeros_like(LESION)
    assert float(DiceLoss()(empty, empty)) == pytest.approx(0.0, abs=1e-6)


def test_dice_loss_is_per_image():
    y = np.concatenate([LESION, LESION])
    p = np.concatenate([LESION, ELSEWHERE])
    np.testing.assert_allclose(per_sample(DiceLoss(), y, p), [0.0, 8 / 9], atol=1e-6)


def test_dice_bce_is_near_zero_for_a_perfect_prediction():
    assert float(DiceBCELoss()(LESION, LESION)) == pytest.approx(0.0, abs=1e-5)


def test_dice_bce_for_an_undecided_prediction():
    half = np.full_like(LESION, 0.5)
    # dice: intersection 2, areas 4 + 8 -> (4 + 1) / (12 + 1); bce: -log(0.5) at every pixel
    expected = 1 - 5 / 13 + math.log(2)
    assert float(DiceBCELoss()(LESION, half)) == pytest.approx(expected, rel=1e-5)
    assert float(DiceBCELoss(bce_weight=0.0)(LESION, half)) == pytest.approx(1 - 5 / 13, rel=1e-5)
