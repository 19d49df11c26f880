"""The melanoma referral flag: threshold fitted on validation, scored with it fixed, shipped in model.json."""

import json
import shutil

import numpy as np
import pytest

from skinlib.cli import main
from skinlib.data import CLASSES
from skinlib.evaluation.referral import fit_referral_threshold, referral_record, referral_scores
from skinlib.runtime import DEFAULT_CLASSIFIER, StageTwo

MEL, NV = CLASSES.index("mel"), CLASSES.index("nv")


def _probs(mel_scores):
    """Probability rows whose melanoma column is `mel_scores` (the rest on nevus)."""
    probs = np.zeros((len(mel_scores), len(CLASSES)))
    probs[:, MEL] = mel_scores
    probs[:, NV] = 1 - np.asarray(mel_scores)
    return probs


# 4 melanomas scored 0.9, 0.8, 0.3, 0.1 and 4 others scored 0.7, 0.2, 0.05, 0.01.
LABELS = np.array([MEL] * 4 + [NV] * 4)
PROBS = _probs([0.9, 0.8, 0.3, 0.1, 0.7, 0.2, 0.05, 0.01])


def test_threshold_is_the_highest_that_reaches_the_target_sensitivity():
    assert fit_referral_threshold(LABELS, PROBS, 0.75) == pytest.approx(0.3)  # flags 0.9, 0.8, 0.3: 3 of 4
    assert fit_referral_threshold(LABELS, PROBS, 0.5) == pytest.approx(0.8)
    assert fit_referral_threshold(LABELS, PROBS, 1.0) == pytest.approx(0.1)


def test_scores_count_what_a_fixed_threshold_does_by_hand():
    scores = referral_scores(LABELS, PROBS, 0.3)
    assert scores["sensitivity"] == pytest.approx(3 / 4)
    assert scores["specificity"] == pytest.approx(3 / 4)  # only the 0.7 non-melanoma is referred
    assert (scores["referred"], scores["images"], scores["melanomas_missed"]) == (4, 8, 1)
    assert scores["referral_rate"] == pytest.approx(0.5)


def test_a_set_without_melanoma_has_no_sensitivity_but_a_specificity():
    scores = referral_scores(LABELS[4:], PROBS[4:], 0.3)
    assert scores["sensitivity"] is None and scores["specificity"] == pytest.approx(3 / 4)


def test_record_fits_on_validation_and_scores_test_with_that_threshold():
    test_labels, test_probs = LABELS, _probs([0.95, 0.25, 0.2, 0.6, 0.5, 0.1, 0.1, 0.1])
    record = referral_record(LABELS, PROBS, 0.75, test_labels=test_labels, test_probs=test_probs)
    assert record["threshold"] == pytest.approx(0.3) and record["val"]["sensitivity"] == pytest.approx(0.75)
    assert record["test"]["threshold"] == record["threshold"]
    assert record["test"]["sensitivity"] == pytest.approx(2 / 4)  # not refitted: 0.25 and 0.2 are missed


@pytest.mark.parametrize(
    "labels, probs, message",
    [
        (LABELS, PROBS[:, :5], "5 columns, expected 7"),
        (LABELS[:3], PROBS, "one length"),
        (np.full(8, NV), PROBS, "both positive and negative"),
    ],
)
def test_bad_input_is_refused_with_a_reason(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        fit_referral_threshold(labels, probs, 0.8)


shipped = pytest.mark.skipif(
    not (DEFAULT_CLASSIFIER / "model.json").is_file(), reason=f"no shipped classifier in {DEFAULT_CLASSIFIER}"
)


@shipped
def test_shipped_model_carries_thresholds_and_their_recorded_scores():
    spec = json.loads((DEFAULT_CLASSIFIER / "model.json").read_text())
    recorded = json.loads((DEFAULT_CLASSIFIER / "metrics.json").read_text())["melanoma_referral"]
    classifier = StageTwo.load()
    assert classifier.referral_threshold(False) == spec["melanoma_referral"]["threshold"]
    assert classifier.referral_threshold(True) == spec["melanoma_referral"]["threshold_tta"]
    for kind, tta in (("plain", False), ("tta", True)):
        assert recorded[kind]["threshold"] == classifier.referral_threshold(tta)
        assert recorded[kind]["val"]["sensitivity"] >= recorded[kind]["target_sensitivity_on_val"]
    assert recorded["command"].startswith("skinlib fit-referral")


@shipped
def test_shipped_thresholds_reproduce_from_validation(data_dir):
    """Refit on the whole validation split with the recorded recipe: the same plain threshold comes back."""
    from skinlib.training.classifier import config_from_metrics, referral_thresholds, stage2_inputs

    config = config_from_metrics(DEFAULT_CLASSIFIER / "metrics.json", data_dir=str(data_dir), cache=False)
    images, labels, _ = stage2_inputs(config, splits=("val",), progress=False)["val"]
    classifier = StageTwo.load()
    probs = classifier.probabilities(images)
    record = referral_thresholds(
        {("val", False): (labels, probs), ("val", True): (labels, probs)},
        classifier.spec.melanoma_referral.target_sensitivity_on_val,
    )
    assert record["plain"]["threshold"] == pytest.approx(classifier.referral_threshold(False), abs=0.01)


@shipped
def test_save_and_load_round_trip(tmp_path):
    from skinlib.training.classifier import referral_spec
    from skinlib.workflows.posthoc import record_fit

    folder = tmp_path / "classifier"
    shutil.copytree(DEFAULT_CLASSIFIER, folder)
    record = {"plain": referral_record(LABELS, PROBS, 0.75), "tta": referral_record(LABELS, PROBS, 0.5)}
    record_fit(folder, "melanoma_referral", referral_spec(record), {"command": "by hand", **record})
    loaded = StageTwo.load(folder)
    assert loaded.referral_threshold(False) == pytest.approx(0.3)
    assert loaded.referral_threshold(True) == pytest.approx(0.8)
    spec = json.loads((folder / "model.json").read_text())
    del spec["melanoma_referral"]
    (folder / "model.json").write_text(json.dumps(spec))
    assert StageTwo.load(folder).referral_threshold(False) is None  # an older folder: no flag, not a guess


@shipped
def test_fit_referral_cli_quick_check_writes_nothing(quick_fit):
    out = quick_fit("fit-referral", limit=60)
    assert "plain: refer when P(mel) >=" in out and "tta  : refer when" in out


def test_fit_referral_cli_refuses_a_folder_without_metrics_and_a_bad_target(tmp_path, capsys):
    assert main(["fit-referral", "--model", str(tmp_path)]) == 2
    assert "metrics.json is missing" in capsys.readouterr().err
    assert main(["fit-referral", "--model", str(tmp_path), "--sensitivity", "85"]) == 2
    assert "--sensitivity 85" in capsys.readouterr().err


def test_no_threshold_is_fitted_on_a_validation_split_without_melanoma():
    """The error train-classifier catches: it then ships no flag and records this reason in metrics.json."""
    from skinlib.training.classifier import referral_thresholds

    no_melanoma = {("val", tta): (LABELS[4:], PROBS[4:]) for tta in (False, True)}
    with pytest.raises(ValueError, match="both positive and negative"):
        referral_thresholds(no_melanoma)
