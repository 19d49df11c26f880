"""The evaluation report: files, keys, bootstrap intervals and operating points on synthetic predictions."""

import json
import math
import re

import numpy as np
import pytest

from skinlib.data.classes import CLASSES
from skinlib.evaluation.calibration import apply_temperature
from skinlib.evaluation.classification import (
    balanced_accuracy,
    classification_report_dict,
    expected_calibration_error,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)
from skinlib.evaluation.report import (
    FIGURES,
    RESTRICTED_FIGURES,
    bootstrap_ci,
    macro_roc_auc,
    paired_bootstrap_difference,
    write_report,
)

MEL = CLASSES.index("mel")


def synthetic(n=300, seed=0, absent=None):
    """Labels and informative softmax outputs: the true class gets a logit bonus of ~2."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    if absent is not None:
        labels[labels == absent] = (absent + 1) % len(CLASSES)
    logits = rng.normal(size=(n, len(CLASSES)))
    logits[np.arange(n), labels] += 2.0
    probs = np.exp(logits)
    return labels, probs / probs.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    labels, probs = synthetic()
    out = tmp_path_factory.mktemp("report")
    numbers = write_report(
        labels, probs, out, title="synthetic", bootstrap=200, probs_uncalibrated=apply_temperature(probs, 0.5)
    )
    return labels, probs, out, numbers


def test_all_files_are_written(report):
    _, _, out, numbers = report
    for name in FIGURES:
        for suffix in ("png", "svg"):
            assert (out / f"{name}.{suffix}").stat().st_size > 1000, f"{name}.{suffix}"
    assert set(numbers["figures"]) == set(FIGURES)
    markdown = (out / "report.md").read_text()
    assert "| mel | Melanoma |" in markdown and "balanced accuracy" in markdown and "![roc](roc.png)" in markdown


def test_json_has_the_numbers(report):
    labels, probs, out, numbers = report
    saved = json.loads((out / "report.json").read_text())
    expected = classification_report_dict(labels, probs)
    for key in expected:
        assert key in saved, key
    for key in (
        "confusion_matrix_normalised",
        "melanoma_operating_points",
        "confidence_intervals",
        "bootstrap",
        "figures",
        "expected_calibration_error_uncalibrated",
    ):
        assert key in saved, key
    assert saved["balanced_accuracy"] == pytest.approx(expected["balanced_accuracy"])
    assert set(saved["per_class"]["mel"]) >= {"precision", "recall", "f1", "specificity", "support"}
    assert saved["expected_calibration_error_uncalibrated"] == pytest.approx(
        expected_calibration_error(labels, apply_temperature(probs, 0.5))
    )


def test_intervals_contain_the_estimate(report):
    _, _, _, numbers = report
    for name, interval in numbers["confidence_intervals"].items():
        assert interval["low"] < interval["estimate"] < interval["high"], name
        assert interval["high"] - interval["low"] < 0.2, name
    assert numbers["confidence_intervals"]["macro_roc_auc"]["estimate"] == pytest.approx(numbers["macro_roc_auc"])


def test_operating_points_match_classification_functions(report):
    labels, probs, _, numbers = report
    points = numbers["melanoma_operating_points"]
    positive, scores = labels == MEL, probs[:, MEL]
    for specificity in (0.8, 0.9):
        expected = sensitivity_at_specificity(positive, scores, specificity)
        assert points[f"sensitivity_at_specificity_{specificity:.2f}"] == {
            "value": expected.value,
            "threshold": expected.threshold,
        }
    expected = specificity_at_sensitivity(positive, scores, 0.95)
    assert points["specificity_at_sensitivity_0.95"] == {"value": expected.value, "threshold": expected.threshold}


def test_macro_auc_agrees_with_classification_report():
    labels, probs = synthetic(100, seed=3)
    assert macro_roc_auc(labels, probs) == pytest.approx(classification_report_dict(labels, probs)["macro_roc_auc"])


@pytest.mark.parametrize("seed", range(5))
def test_fast_binary_auc_equals_sklearn_with_ties(seed):
    from sklearn.metrics import roc_auc_score

    from skinlib.evaluation.report import binary_roc_auc

    rng = np.random.default_rng(seed)
    positive = rng.random(300) < 0.2
    scores = np.round(rng.random(300) + 0.3 * positive, 1)  # rounded: many ties
    assert binary_roc_auc(positive, scores) == pytest.approx(roc_auc_score(positive, scores), abs=1e-12)
    assert binary_roc_auc([True, False], [0.5, 0.5]) == 0.5 and binary_roc_auc([False, True], [0.2, 0.9]) == 1.0
    with pytest.raises(ValueError, match="one positive and one negative"):
        binary_roc_auc([True, True], [0.1, 0.2])


def test_bootstrap_ci_is_ordered_and_reproducible():
    labels, probs = synthetic(200, seed=1)
    low, high = bootstrap_ci(balanced_accuracy, labels, probs, n=200, seed=5)
    assert low <= balanced_accuracy(labels, probs) <= high
    assert (low, high) == bootstrap_ci(balanced_accuracy, labels, probs, n=200, seed=5)
    narrow = bootstrap_ci(balanced_accuracy, labels, probs, n=200, seed=5, alpha=0.5)
    assert low <= narrow.low <= narrow.high <= high


def test_paired_difference():
    labels, probs = synthetic(200, seed=2)
    assert tuple(paired_bootstrap_difference(balanced_accuracy, labels, probs, probs, n=100, seed=0)) == (0, 0, 0)
    better = 0.5 * probs + 0.5 * np.eye(len(CLASSES))[labels]  # strictly more informative
    gain = paired_bootstrap_difference(macro_roc_auc, labels, probs, better, n=100, seed=0)
    assert 0 < gain.low <= gain.difference <= gain.high


def test_absent_class_gives_nan_not_a_crash(tmp_path):
    labels, probs = synthetic(150, seed=4, absent=CLASSES.index("df"))
    numbers = write_report(labels, probs, tmp_path, bootstrap=50)
    assert math.isnan(numbers["per_class"]["df"]["recall"]) and math.isnan(numbers["per_class"]["df"]["roc_auc"])
    assert math.isfinite(numbers["balanced_accuracy"])
    saved = json.loads((tmp_path / "report.json").read_text())  # strict JSON: NaN became null
    assert saved["per_class"]["df"]["recall"] is None
    assert "n/a" in (tmp_path / "report.md").read_text()


def test_a_report_of_some_classes_gives_both_readings_and_no_rows_for_absent_ones(tmp_path):
    """ISIC 2017-like labels (bkl, mel, nv): the 7-class answer as is and the one restricted to those classes."""
    labels, probs = synthetic(240, seed=8)
    keep = np.isin(labels, [CLASSES.index(c) for c in ("bkl", "mel", "nv")])
    labels, probs = labels[keep], probs[keep]
    numbers = write_report(
        labels,
        probs,
        tmp_path,
        bootstrap=50,
        probs_uncalibrated=apply_temperature(probs, 0.5),
        referral_threshold=0.3,
        classes_present=["bkl", "mel", "nv"],
    )
    for name in FIGURES + RESTRICTED_FIGURES:
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, name
    assert numbers["classes_absent"] == ["akiec", "bcc", "df", "vasc"]
    assert set(numbers["per_class"]) == {"bkl", "mel", "nv"} and len(numbers["confusion_matrix"]) == 3
    assert len(numbers["confusion_matrix_normalised"][0]) == len(CLASSES)  # rows present, columns all predicted
    assert numbers["balanced_accuracy"] == pytest.approx(balanced_accuracy(labels, probs))  # as is: unchanged
    restricted = numbers["restricted_to_present_classes"]
    assert np.shape(restricted["confusion_matrix_normalised"]) == (3, 3)
    assert restricted["confidence_intervals"]["balanced_accuracy"]["low"] <= restricted["balanced_accuracy"]
    assert restricted["balanced_accuracy"] > numbers["balanced_accuracy"]  # nothing lost to absent classes
    assert numbers["melanoma_referral"]["threshold"] == 0.3  # the flag, as before, on the 7-class P(mel)
    text = (tmp_path / "report.md").read_text()
    assert "## 7-class answer as is (4 of 7 classes absent from the labels: akiec, bcc, df, vasc;" in text
    assert "## Restricted to the classes present (bkl, mel, nv; probabilities renormalised over them)" in text
    assert (
        "\n| df |" not in text
        and "\n| vasc |" not in text
        and "n/a" not in text
        and not re.search(r"\bnan\b", text, re.IGNORECASE)
    )
    assert "Melanoma referral flag" in text and "![roc_restricted](roc_restricted.png)" in text
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["restricted_to_present_classes"]["classes"] == ["bkl", "mel", "nv"]


def test_a_report_of_one_class_says_what_is_not_defined(tmp_path):
    labels, probs = synthetic(60, seed=9)
    labels[:] = CLASSES.index("nv")
    numbers = write_report(labels, probs, tmp_path, bootstrap=20, classes_present=["nv"])
    assert numbers["macro_roc_auc"] is None and numbers["confidence_intervals"]["macro_roc_auc"]["low"] is None
    assert numbers["restricted_to_present_classes"]["accuracy"] == 1.0
    text = (tmp_path / "report.md").read_text()
    assert "| macro ROC AUC | n/a | n/a | n/a |" in text and not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert "every answer restricted to it is right" in text


def test_no_melanoma_gives_nan_operating_points(tmp_path):
    labels, probs = synthetic(120, seed=6, absent=MEL)
    numbers = write_report(labels, probs, tmp_path, bootstrap=20)
    assert all(math.isnan(p["value"]) for p in numbers["melanoma_operating_points"].values())
    assert (tmp_path / "roc.svg").is_file()


def test_paired_gains_report_the_interval_and_standard_error_of_the_same_draws():
    from skinlib.evaluation.report import paired_gains

    labels, probs = synthetic(400, seed=3)
    better = 0.7 * probs + 0.3 * np.eye(len(CLASSES))[labels]
    gains = paired_gains(labels, probs, better, n=400, seed=0)
    for name, metric in (
        ("balanced_accuracy", lambda y, p: balanced_accuracy(y, p.argmax(1))),
        ("macro_roc_auc", macro_roc_auc),
    ):
        expected = paired_bootstrap_difference(metric, labels, probs, better, n=400, seed=0)
        assert gains[name]["difference"] == pytest.approx(expected.difference)
        assert gains[name]["ci95"] == pytest.approx([expected.low, expected.high])
        width = gains[name]["ci95"][1] - gains[name]["ci95"][0]
        assert gains[name]["standard_error"] == pytest.approx(width / 3.92, rel=0.25)  # ~normal draws
    assert paired_gains(labels, probs, probs, n=50)["balanced_accuracy"]["standard_error"] == 0


def test_detectable_gain_and_the_units_it_takes():
    from skinlib.evaluation.report import detectable_gain, units_to_detect

    assert detectable_gain(1.0) == pytest.approx(1.95996 + 0.84162, abs=1e-4)
    assert detectable_gain(0.01, power=0.5) == pytest.approx(0.0196, abs=1e-4)
    se = 0.0125
    assert units_to_detect(detectable_gain(se), se, 1100) == pytest.approx(1100)
    assert units_to_detect(detectable_gain(se) / 2, se, 1100) == pytest.approx(4400)
    assert units_to_detect(0.0, se, 1100) == math.inf and units_to_detect(-0.01, se, 1100) == math.inf


def test_a_gain_of_the_detectable_size_is_found_about_as_often_as_promised():
    """Simulation: b redraws a's right/wrong on 30 % of the images, with accuracy 0.7 + d there (true gain
    0.3 d, changes both ways as TTA's do); at the detectable gain, the interval clears 0 in about `power`
    (80 %) of the repeats (coarse: 40 repeats)."""
    from skinlib.evaluation.report import detectable_gain, paired_gains

    def predictions(seed, d):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 2, 600)
        right_a = rng.random(600) < 0.7
        redrawn = rng.random(600) < 0.3
        right_b = np.where(redrawn, rng.random(600) < 0.7 + d, right_a)
        one_hot = np.eye(2)
        return labels, one_hot[np.where(right_a, labels, 1 - labels)], one_hot[np.where(right_b, labels, 1 - labels)]

    se = np.mean(
        [
            paired_gains(*predictions(seed, 0.1), n=300)["balanced_accuracy"]["standard_error"]
            for seed in (100, 101, 102)
        ]
    )
    d = detectable_gain(se) / 0.3
    found = [
        paired_gains(*predictions(seed, d), n=300, seed=seed)["balanced_accuracy"]["ci95"][0] > 0 for seed in range(40)
    ]
    assert 0.6 <= np.mean(found) <= 0.95


# --------------------------------------------------------------------------- bootstrap over lesions


def triplicated(lesions=150, seed=0):
    """Every lesion photographed three times, the model right or wrong for all three together."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.integers(0, 2, lesions), 3)
    right = np.repeat(rng.random(lesions) < 0.7, 3)
    probs = np.eye(2)[np.where(right, labels, 1 - labels)] * 0.8 + 0.1
    return labels, probs, np.repeat(np.array([f"HAM_{i:04d}" for i in range(lesions)]), 3)


def accuracy_of(labels, probs):
    return float(np.mean(np.asarray(probs).argmax(axis=1) == labels))


def test_a_lesion_draw_takes_every_image_of_each_lesion_drawn():
    from skinlib.evaluation.report import _resamples

    groups = np.array(["a", "b", "b", "c", "c", "c", "d"])
    for draw in _resamples(len(groups), 50, seed=3, groups=groups):
        drawn = groups[draw]
        for lesion, size in (("a", 1), ("b", 2), ("c", 3), ("d", 1)):
            assert np.count_nonzero(drawn == lesion) % size == 0  # whole lesions only
        assert len(np.unique(draw[drawn == "c"])) in (0, 3)
    sizes = {len(draw) for draw in _resamples(len(groups), 200, seed=3, groups=groups)}
    assert len(sizes) > 1  # a draw's image count varies with the lesions drawn


def test_without_lesion_ids_the_image_bootstrap_is_unchanged():
    """Image-level intervals keep their old draws: the same seed gives the numbers reports had before."""
    from skinlib.evaluation.report import _resamples

    rng = np.random.default_rng(11)
    expected = [rng.integers(0, 40, 40) for _ in range(5)]
    for got, want in zip(_resamples(40, 5, seed=11), expected):
        assert np.array_equal(got, want)


def test_lesion_intervals_are_wider_when_images_of_a_lesion_agree():
    labels, probs, lesions = triplicated()
    images = bootstrap_ci(accuracy_of, labels, probs, n=500, seed=0)
    by_lesion = bootstrap_ci(accuracy_of, labels, probs, n=500, seed=0, groups=lesions)
    ratio = (by_lesion.high - by_lesion.low) / (images.high - images.low)
    assert 1.4 < ratio < 2.1  # three identical copies hold one image's evidence: about sqrt(3) wider
    one_each = bootstrap_ci(accuracy_of, labels, probs, n=500, seed=0, groups=np.arange(len(labels)))
    assert one_each.high - one_each.low == pytest.approx(images.high - images.low, rel=0.2)


def test_paired_differences_resample_the_same_lesions_for_both_models():
    from skinlib.evaluation.report import paired_gains

    labels, probs, lesions = triplicated()
    assert tuple(paired_bootstrap_difference(accuracy_of, labels, probs, probs, n=50, groups=lesions)) == (0, 0, 0)
    flipped = probs.copy()
    flipped[:60] = flipped[:60, ::-1]  # the second model differs on the first 20 lesions
    by_image = paired_gains(labels, probs, flipped, n=300)["balanced_accuracy"]
    by_lesion = paired_gains(labels, probs, flipped, n=300, groups=lesions)["balanced_accuracy"]
    assert by_image["bootstrap_unit"] == "images" and by_image["units"] == len(labels)
    assert by_lesion["bootstrap_unit"] == "lesions" and by_lesion["units"] == len(labels) // 3
    assert by_lesion["standard_error"] > 1.3 * by_image["standard_error"]
    assert by_lesion["difference"] == by_image["difference"]


def test_lesion_ids_must_match_the_images():
    labels, probs, lesions = triplicated(10)
    with pytest.raises(ValueError, match="one lesion id per image"):
        bootstrap_ci(accuracy_of, labels, probs, n=5, groups=lesions[:-1])
    holes = lesions.astype(object)
    holes[4] = None
    with pytest.raises(ValueError, match="missing lesion ids"):
        bootstrap_ci(accuracy_of, labels, probs, n=5, groups=holes)


def test_a_report_with_lesion_ids_resamples_lesions_and_shows_the_image_level_interval(tmp_path):
    labels, probs = synthetic(n=210)
    lesions = np.repeat(np.arange(70), 3)
    numbers = write_report(labels, probs, tmp_path, bootstrap=100, groups=lesions)
    assert numbers["bootstrap"]["unit"] == "lesions" and numbers["bootstrap"]["units"] == 70
    image_level = numbers["confidence_intervals_image_level"]["balanced_accuracy"]
    lesion_level = numbers["confidence_intervals"]["balanced_accuracy"]
    assert lesion_level["estimate"] == image_level["estimate"]
    markdown = (tmp_path / "report.md").read_text()
    assert "210 images of 70 lesions" in markdown and "bootstrap over lesions" in markdown
    assert "Bootstrap over lesions vs over images" in markdown
    plain = write_report(labels, probs, tmp_path / "plain", bootstrap=100)
    assert plain["bootstrap"]["unit"] == "images" and "confidence_intervals_image_level" not in plain
    assert json.loads((tmp_path / "report.json").read_text())["bootstrap"]["unit"] == "lesions"


# --------------------------------------------------------------------------- calibration claims


def test_a_temperature_keeps_each_top_class_but_can_reorder_one_class_across_images():
    """Why chapter 08 does not say temperature scaling leaves every ROC curve unchanged."""
    probs = np.exp([[3.0, 0.0, 0.0], [1.0, -1.0, -10.0]])
    probs /= probs.sum(axis=1, keepdims=True)
    assert probs[0, 0] > probs[1, 0]  # 0.909 > 0.881
    hot = apply_temperature(probs, 100.0)
    assert hot[0, 0] < hot[1, 0]  # 0.340 < 0.348: P(class 0) now ranks the two images the other way
    assert (hot.argmax(axis=1) == probs.argmax(axis=1)).all()  # each image's top class is kept
    from skinlib.evaluation.report import binary_roc_auc

    first_is_class_0 = np.array([True, False])  # one-vs-rest AUC of class 0 flips from 1 to 0
    assert binary_roc_auc(first_is_class_0, probs[:, 0]) == 1.0 and binary_roc_auc(first_is_class_0, hot[:, 0]) == 0.0


def test_a_difference_that_rounds_to_zero_does_not_read_as_a_loss():
    from skinlib.evaluation.report import signed, signed_interval

    assert signed(-0.0004) == "±0.000" and signed(0.0004) == "±0.000"
    assert signed(-0.0006) == "-0.001" and signed(0.0123) == "+0.012"
    assert signed(-0.012, digits=2) == "-0.01"
    assert signed_interval(-0.0002, -0.034, 0.016) == "±0.000 [-0.034, +0.016]"
