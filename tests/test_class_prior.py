"""The class prior a model learnt under, and answers for another population: Bayes' rule, checked by hand."""

import numpy as np
import pytest

from skinlib.data import CLASSES
from skinlib.evaluation.calibration import (
    classwise_calibration_error,
    loss_prior,
    prior_from_shares,
    shift_prior,
)


def test_shifting_to_the_same_prior_changes_nothing_and_bayes_rule_holds_by_hand():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    assert np.allclose(shift_prior(probs, [1, 1, 1], [2, 2, 2]), probs)  # priors are normalised
    shifted = shift_prior(probs, [1 / 3, 1 / 3, 1 / 3], [0.8, 0.1, 0.1])
    unnormalised = np.array([0.5 * 0.8, 0.3 * 0.1, 0.2 * 0.1]) * 3
    assert np.allclose(shifted[0], unnormalised / unnormalised.sum())
    assert np.allclose(shifted.sum(axis=1), 1)
    back = shift_prior(shifted, [0.8, 0.1, 0.1], [1, 1, 1])
    assert np.allclose(back, probs)  # the shift is undone by the opposite shift


@pytest.mark.parametrize("bad", [[1, 1], [1, 0, 1], [1, -1, 1], [1, np.nan, 1]])
def test_a_prior_must_be_one_positive_number_per_class(bad):
    with pytest.raises(ValueError, match="positive numbers"):
        shift_prior(np.full((2, 3), 1 / 3), [1, 1, 1], bad)


def test_balanced_class_weights_imply_a_uniform_prior_and_none_the_training_mix():
    counts = np.array([10.0, 30.0, 60.0])
    balanced = counts.sum() / (len(counts) * counts)
    assert np.allclose(loss_prior(counts, balanced), 1 / 3)
    assert np.allclose(loss_prior(counts, balanced * 0.2), 1 / 3)  # only the ratios matter
    assert np.allclose(loss_prior(counts), counts / counts.sum())
    with pytest.raises(ValueError):
        loss_prior(counts, [1.0, 1.0])


def test_classwise_calibration_error_by_hand():
    labels = np.array([0, 0, 1, 1])
    exact = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert classwise_calibration_error(labels, exact)["mean"] == 0.0
    halves = np.full((4, 2), 0.5)  # P(c) = 0.5 and c is the truth half the time: calibrated, class-wise
    assert classwise_calibration_error(labels, halves)["mean"] == pytest.approx(0.0)
    skewed = np.tile([0.8, 0.2], (4, 1))  # says 0.8 for class 0, which is the truth half the time
    result = classwise_calibration_error(labels, skewed)
    assert result["per_class"] == pytest.approx([0.3, 0.3]) and result["mean"] == pytest.approx(0.3)


def test_a_model_can_look_calibrated_top_label_and_not_class_wise():
    """Top-label ECE reads only each image's largest probability: misplaced mass on the other classes hides there."""
    from skinlib.evaluation.classification import expected_calibration_error

    labels = np.array([0] * 900 + [1] * 100)
    probs = np.tile([0.9, 0.0, 0.1], (1000, 1))  # "90 % class 0", right 90 % of the time; P(1) 0 for a 10 % class
    assert expected_calibration_error(labels, probs) == pytest.approx(0.0)
    result = classwise_calibration_error(labels, probs)
    assert result["per_class"] == pytest.approx([0.0, 0.1, 0.1]) and result["mean"] == pytest.approx(0.2 / 3)


def test_prior_from_shares_fills_the_unnamed_classes_in_the_reference_proportions():
    reference = np.array([0.1, 0.2, 0.7])
    prior = prior_from_shares({"b": 0.5}, reference, ["a", "b", "c"])
    assert prior == pytest.approx([0.5 * 0.125, 0.5, 0.5 * 0.875]) and prior.sum() == pytest.approx(1)
    assert prior_from_shares({"a": 0.2, "b": 0.3, "c": 0.5}, reference, "abc") == pytest.approx([0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="unknown class"):
        prior_from_shares({"melanoma": 0.1}, reference, "abc")
    with pytest.raises(ValueError, match="sum to 1"):
        prior_from_shares({"a": 0.2, "b": 0.3, "c": 0.6}, reference, "abc")
    with pytest.raises(ValueError, match="leaving nothing"):
        prior_from_shares({"a": 0.6, "b": 0.4}, reference, "abc")
    with pytest.raises(ValueError, match="strictly between"):
        prior_from_shares({"a": 0.0}, reference, "abc")


@pytest.mark.data
def test_the_shipped_recipe_implies_a_uniform_prior_and_alpha_averages_a_fifth_per_image(data_dir):
    """The focal-alpha rescaling in numbers (the docstring of focal_alpha_from_class_weights, exercise 5.2)."""
    from skinlib.data import class_weights, load_split_frame
    from skinlib.losses import focal_alpha_from_class_weights
    from skinlib.training.classifier import ClassifierConfig, class_prior_spec

    train = load_split_frame(data_dir)
    train = train[train["split"] == "train"]
    counts = np.bincount(train["label"], minlength=len(CLASSES))
    weights, _ = class_weights(train["label"])
    vector = np.array([weights[k] for k in range(len(CLASSES))])
    assert (counts * vector).sum() / counts.sum() == pytest.approx(1.0)  # balanced weights: 1 per image
    assert vector.mean() == pytest.approx(4.68, abs=0.01)
    alpha = focal_alpha_from_class_weights(weights, len(CLASSES))
    assert (counts * alpha).sum() / counts.sum() == pytest.approx(0.21, abs=0.01)
    spec = class_prior_spec(ClassifierConfig(data_dir=str(data_dir)))
    assert np.allclose(spec["model"], 1 / len(CLASSES))
    assert np.allclose(spec["training"], counts / counts.sum())
    assert np.allclose(class_prior_spec(ClassifierConfig(data_dir=str(data_dir), loss="ce"))["model"], spec["training"])


def test_prior_scores_compare_the_two_sets_of_probabilities_on_the_same_labels():
    from skinlib.evaluation.calibration import prior_scores

    labels = np.repeat(np.arange(len(CLASSES)), [30, 2, 2, 2, 2, 20, 2])  # an uneven mix, as in HAM10000
    as_trained = np.full((len(labels), len(CLASSES)), 1 / len(CLASSES))  # says "all alike" for every image
    rate = np.bincount(labels) / len(labels)
    shifted = shift_prior(as_trained, np.full(len(CLASSES), 1 / len(CLASSES)), rate)
    scores = prior_scores(labels, as_trained, shifted, shifted_name="with_prior")
    assert set(scores) == {"as_trained", "with_prior", "class_rate"}
    assert list(scores["class_rate"].values()) == pytest.approx(rate)
    assert list(scores["with_prior"]["mean_probability"].values()) == pytest.approx(rate)  # the prior matches
    assert scores["with_prior"]["classwise_calibration_error"] == pytest.approx(0.0, abs=1e-12)
    assert scores["as_trained"]["classwise_calibration_error"] > 0.1
