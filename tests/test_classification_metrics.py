"""Classification metrics: a hand-worked 3-class example, agreement with scikit-learn, and edge cases."""

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from skinlib.data import CLASSES
from skinlib.evaluation import (
    OperatingPoint,
    balanced_accuracy,
    classification_report_dict,
    confusion_matrix,
    expected_calibration_error,
    reliability_bins,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)

# Hand example, classes a, b, c. Predicted (argmax): 0 0 1 1 2 2.
ABC = ("a", "b", "c")
Y = np.array([0, 0, 0, 1, 1, 2])
P = np.array(
    [
        [0.8, 0.1, 0.1],
        [0.6, 0.3, 0.1],
        [0.3, 0.6, 0.1],
        [0.2, 0.7, 0.1],
        [0.1, 0.3, 0.6],
        [0.1, 0.2, 0.7],
    ]
)
CM = [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def random_case(n=200, k=7, seed=0, missing=()):
    rng = np.random.default_rng(seed)
    labels = rng.choice([c for c in range(k) if c not in missing], size=n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[labels] * rng.uniform(0, 1, size=(n, 1))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs


# --------------------------------------------------------------------------- hand-computed


def test_confusion_matrix_by_hand():
    np.testing.assert_array_equal(confusion_matrix(Y, P.argmax(1), num_classes=3), CM)
    np.testing.assert_array_equal(confusion_matrix(Y, P), CM)  # probabilities work too


def test_normalised_confusion_matrix_rows_are_recalls():
    expected = [[2 / 3, 1 / 3, 0], [0, 1 / 2, 1 / 2], [0, 0, 1]]
    np.testing.assert_allclose(confusion_matrix(Y, P, normalise="true"), expected)


def test_balanced_accuracy_by_hand():
    assert balanced_accuracy(Y, P) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert balanced_accuracy(Y, P.argmax(1), num_classes=3) == pytest.approx(13 / 18)


def test_report_by_hand():
    report = classification_report_dict(Y, P, classes=ABC)
    assert report["n_samples"] == 6 and report["classes"] == list(ABC)
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["balanced_accuracy"] == pytest.approx(13 / 18)
    assert report["confusion_matrix"] == CM
    per = report["per_class"]
    expected = {  # precision, recall, f1, specificity, support
        "a": (2 / 2, 2 / 3, 4 / 5, 3 / 3, 3),
        "b": (1 / 2, 1 / 2, 2 / 4, 3 / 4, 2),
        "c": (1 / 2, 1 / 1, 2 / 3, 4 / 5, 1),
    }
    for name, (precision, recall, f1, specificity, support) in expected.items():
        assert per[name]["precision"] == pytest.approx(precision)
        assert per[name]["recall"] == pytest.approx(recall)
        assert per[name]["f1"] == pytest.approx(f1)
        assert per[name]["specificity"] == pytest.approx(specificity)
        assert per[name]["support"] == support
    assert report["macro_f1"] == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)
    # class c: its one positive (0.7) outranks every negative (at most 0.6): AUC 1
    assert per["c"]["roc_auc"] == pytest.approx(1.0)
    # class a: positives 0.8, 0.6, 0.3 vs negatives 0.2, 0.1, 0.1 -> all 9 pairs ordered
    assert per["a"]["roc_auc"] == pytest.approx(1.0)
    # class b: positives 0.7, 0.3 vs negatives 0.1, 0.3, 0.6, 0.2 -> 4 + (2 + 0.5 tie) = 6.5 of 8 pairs
    assert per["b"]["roc_auc"] == pytest.approx(6.5 / 8)
    json.dumps(report)  # plain Python types


def test_expected_calibration_error_by_hand():
    y = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.7, 0.3]])
    # bin (0.8, 1]: confidence 0.9, accuracy 1/2; bin (0.6, 0.8]: confidence 0.7, accuracy 1
    assert expected_calibration_error(y, probs, bins=5) == pytest.approx(0.5 * 0.4 + 0.5 * 0.3)
    table = reliability_bins(y, probs, bins=5)
    np.testing.assert_array_equal(table["count"], [0, 0, 0, 2, 2])
    np.testing.assert_allclose(table["accuracy"][3:], [1.0, 0.5])
    assert np.isnan(table["confidence"][0])


def test_perfectly_confident_and_right_has_zero_ece():
    probs = np.eye(3)[[0, 1, 2, 1]]
    assert expected_calibration_error([0, 1, 2, 1], probs) == pytest.approx(0.0)


def test_ece_matches_a_direct_loop():
    labels, probs = random_case(seed=3)
    conf, pred = probs.max(1), probs.argmax(1)
    ece = 0.0
    for lo, hi in zip(np.linspace(0, 1, 16)[:-1], np.linspace(0, 1, 16)[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs((pred[inside] == labels[inside]).mean() - conf[inside].mean())
    assert expected_calibration_error(labels, probs, bins=15) == pytest.approx(ece)


# --------------------------------------------------------------------------- against scikit-learn


def test_seven_classes_agree_with_sklearn():
    labels, probs = random_case()
    pred = probs.argmax(1)
    report = classification_report_dict(labels, probs)
    assert report["classes"] == list(CLASSES)
    np.testing.assert_array_equal(report["confusion_matrix"], skm.confusion_matrix(labels, pred, labels=range(7)))
    assert report["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, pred))
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred))
    assert report["macro_roc_auc"] == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr"))
    precision, recall, f1, support = skm.precision_recall_fscore_support(labels, pred, labels=range(7))
    assert report["macro_f1"] == pytest.approx(f1.mean())
    for k, name in enumerate(CLASSES):
        row = report["per_class"][name]
        assert row["precision"] == pytest.approx(precision[k])
        assert row["recall"] == pytest.approx(recall[k])
        assert row["f1"] == pytest.approx(f1[k])
        assert row["support"] == support[k]
        assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(labels == k, probs[:, k]))
        assert row["average_precision"] == pytest.approx(skm.average_precision_score(labels == k, probs[:, k]))


# --------------------------------------------------------------------------- edge cases


def test_class_absent_from_the_labels():
    vasc = CLASSES.index("vasc")
    labels, probs = random_case(missing=(vasc,), seed=1)
    report = classification_report_dict(labels, probs)
    row = report["per_class"]["vasc"]
    assert row["support"] == 0
    assert math.isnan(row["recall"]) and math.isnan(row["roc_auc"]) and math.isnan(row["average_precision"])
    assert row["specificity"] <= 1.0  # still defined: every sample is a negative
    present = [k for k in range(7) if k != vasc]
    pred = probs.argmax(1)
    recalls = [np.mean(pred[labels == k] == k) for k in present]
    assert report["balanced_accuracy"] == pytest.approx(np.mean(recalls))
    aucs = [skm.roc_auc_score(labels == k, probs[:, k]) for k in present]
    assert report["macro_roc_auc"] == pytest.approx(np.mean(aucs))
    assert report["macro_f1"] == pytest.approx(np.mean([report["per_class"][CLASSES[k]]["f1"] for k in present]))
    assert np.all(np.isnan(confusion_matrix(labels, probs, normalise="true")[vasc]))


def test_class_never_predicted_has_undefined_precision_and_zero_f1():
    y = np.array([0, 1, 2])
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])  # class 2 never predicted
    row = classification_report_dict(y, probs, classes=ABC)["per_class"]["c"]
    assert math.isnan(row["precision"]) and row["recall"] == 0.0 and row["f1"] == 0.0


def test_all_samples_of_one_class():
    report = classification_report_dict([1, 1], [[0.2, 0.8, 0.0], [0.6, 0.4, 0.0]], classes=ABC)
    assert report["balanced_accuracy"] == pytest.approx(0.5)
    assert math.isnan(report["macro_roc_auc"])  # no class has both positives and negatives
    assert math.isnan(report["per_class"]["b"]["specificity"])


def test_rows_that_do_not_sum_to_one_are_refused():
    bad = P.copy()
    bad[2] = [0.3, 0.3, 0.1]
    with pytest.raises(ValueError, match="sum to 1.*row 2 sums to 0.7"):
        classification_report_dict(Y, bad, classes=ABC)
    with pytest.raises(ValueError, match="logits"):
        expected_calibration_error(Y, np.log(P))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: classification_report_dict(Y, P), "3 columns, expected 7"),
        (lambda: classification_report_dict(Y[:-1], P, classes=ABC), "5 labels for 6"),
        (lambda: classification_report_dict(Y, P[0], classes=ABC), "shape"),
        (lambda: classification_report_dict(Y[:, None], P, classes=ABC), "1-D"),
        (lambda: classification_report_dict(Y + 1, P, classes=ABC), r"0\.\.2"),
        (lambda: balanced_accuracy([0.5, 1.0], [0, 1]), "integer"),
        (lambda: confusion_matrix(Y, P, normalise="all"), "normalise"),
        (lambda: expected_calibration_error(Y, P, bins=0), "bins"),
    ],
)
def test_bad_inputs_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- operating points

# Scores of 10 lesions, melanoma = 1. Negatives: 0.1 0.2 0.3 0.5 0.6 0.9; positives: 0.4 0.7 0.8 0.95.
SCORES = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
MEL = np.array([0, 0, 0, 1, 0, 0, 1, 1, 0, 1])


def test_sensitivity_at_specificity_by_hand():
    # threshold 0.7 leaves 5 of 6 negatives below (spec 0.83 >= 0.8) and catches 3 of 4 melanomas
    assert sensitivity_at_specificity(MEL, SCORES, 0.8) == OperatingPoint(0.75, 0.7)
    assert sensitivity_at_specificity(MEL, SCORES, 1.0) == OperatingPoint(0.25, 0.95)
    # no constraint: full sensitivity, at the highest threshold that gives it
    assert sensitivity_at_specificity(MEL, SCORES, 0.0) == OperatingPoint(1.0, 0.4)


def test_specificity_at_sensitivity_by_hand():
    value, threshold = specificity_at_sensitivity(MEL, SCORES, 1.0)
    assert (value, threshold) == (0.5, 0.4)
    assert specificity_at_sensitivity(MEL, SCORES, 0.75) == pytest.approx((5 / 6, 0.7))
    # no constraint: full specificity, at the lowest threshold that keeps it (0.95, not +inf)
    assert specificity_at_sensitivity(MEL, SCORES, 0.0) == OperatingPoint(1.0, 0.95)


def test_exact_ratios_meet_their_target():
    y = np.array([0] * 10 + [1] * 2)
    scores = np.r_[np.arange(10) / 10, 0.65, 0.95]
    # threshold 0.65 leaves 7 of 10 negatives (0.0 ... 0.6) below: exactly the 0.7 asked for
    assert sensitivity_at_specificity(y, scores, 0.7) == OperatingPoint(1.0, 0.65)
    assert sensitivity_at_specificity(y, scores, 0.71) == OperatingPoint(0.5, 0.95)


def brute_force(y, scores, target, maximise):
    """Best (value, threshold) over every candidate threshold, by enumeration."""
    best = None
    for t in np.r_[np.inf, np.unique(scores)[::-1]]:
        sens = np.mean(scores[y == 1] >= t)
        spec = np.mean(scores[y == 0] < t)
        value, constraint, other = (sens, spec, spec) if maximise == "sensitivity" else (spec, sens, sens)
        if constraint >= target - 1e-12 and (best is None or (value, other) > best[:2]):
            best = (value, other, t)
    return best[0], best[2]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("target", [0.5, 0.85, 0.95])
def test_operating_points_match_brute_force(seed, target):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=60)
    scores = np.round(rng.uniform(size=60) + 0.3 * y, 1)  # rounding makes ties
    assert tuple(sensitivity_at_specificity(y, scores, target)) == pytest.approx(
        brute_force(y, scores, target, "sensitivity")
    )
    assert tuple(specificity_at_sensitivity(y, scores, target)) == pytest.approx(
        brute_force(y, scores, target, "specificity")
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sensitivity_at_specificity(np.zeros(5), np.arange(5.0), 0.9), "both positive and negative"),
        (lambda: sensitivity_at_specificity(MEL, SCORES[:-1], 0.9), "one length"),
        (lambda: sensitivity_at_specificity(MEL * 2, SCORES, 0.9), "0/1"),
        (lambda: specificity_at_sensitivity(MEL, SCORES, 1.5), r"\[0, 1\]"),
        (lambda: specificity_at_sensitivity(MEL, np.r_[SCORES[:-1], np.nan], 0.5), "finite"),
    ],
)
def test_operating_point_inputs_are_checked(call, message):
    with pytest.raises(ValueError, match=message):
        call()
