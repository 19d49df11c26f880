"""Scores on a collection with some of the seven classes (ISIC 2017: mel, bkl, nv): both readings, checked by hand."""

import json

import numpy as np
import pytest

from skinlib.data.classes import CLASSES
from skinlib.data.errors import DataError
from skinlib.evaluation.classification import classification_report_dict, expected_calibration_error
from skinlib.evaluation.subset import (
    AS_IS,
    RESTRICTED,
    collection_report,
    reading_titles,
    restrict_probabilities,
    subset_readings,
)
from skinlib.scoring import score_labelled_folder


def rows(*entries: dict) -> np.ndarray:
    """Probability rows from {class: probability} dicts (the rest 0)."""
    out = np.zeros((len(entries), len(CLASSES)))
    for i, entry in enumerate(entries):
        for code, p in entry.items():
            out[i, CLASSES.index(code)] = p
    assert np.allclose(out.sum(axis=1), 1)
    return out


#: Six images of mel, nv and bkl. Two are predicted as absent classes (bcc, vasc); renormalised over the three
#: present classes, image 1 becomes a right mel, image 3 a wrong bkl.
LABELS = np.array([CLASSES.index(c) for c in ("mel", "mel", "nv", "nv", "bkl", "bkl")])
PROBS = rows(
    {"mel": 0.6, "nv": 0.2, "bkl": 0.1, "akiec": 0.1},  # mel, right
    {"bcc": 0.5, "mel": 0.3, "nv": 0.1, "bkl": 0.1},  # bcc (absent); restricted: mel 0.6, right
    {"nv": 0.7, "mel": 0.1, "bkl": 0.1, "df": 0.1},  # nv, right
    {"vasc": 0.4, "bkl": 0.35, "nv": 0.25},  # vasc (absent); restricted: bkl 0.583, wrong
    {"bkl": 0.5, "mel": 0.3, "nv": 0.2},  # bkl, right
    {"mel": 0.45, "bkl": 0.35, "akiec": 0.2},  # mel, wrong in both readings
)


def strict(value) -> str:
    """JSON that refuses NaN: what a report must be writable as."""
    return json.dumps(value, allow_nan=False)


def test_the_two_readings_by_hand():
    readings = subset_readings(LABELS, PROBS)
    assert readings["classes_present"] == ["bkl", "mel", "nv"]
    assert readings["classes_absent"] == ["akiec", "bcc", "df", "vasc"]

    as_is = readings["as_is"]
    assert as_is["reading"] == AS_IS
    assert as_is["accuracy"] == pytest.approx(3 / 6)
    assert as_is["balanced_accuracy"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 2) / 3)  # an absent class is a miss
    assert as_is["predicted_absent"] == {"count": 2, "share": pytest.approx(2 / 6), "by_class": {
        "akiec": 0, "bcc": 1, "df": 0, "vasc": 1}}  # fmt: skip
    # one vs rest on the 7-class probabilities, ties counting half: mel (4 + 2.5) / 8, nv 8 / 8, bkl (4 + 3.5) / 8
    aucs = {"mel": 6.5 / 8, "nv": 1.0, "bkl": 7.5 / 8}
    assert {code: as_is["per_class"][code]["roc_auc"] for code in aucs} == pytest.approx(aucs)
    assert as_is["macro_roc_auc"] == pytest.approx(np.mean(list(aucs.values())))
    assert set(as_is["per_class"]) == {"bkl", "mel", "nv"}  # no rows for absent classes
    assert as_is["per_class"]["mel"]["precision"] == pytest.approx(1 / 2)  # images 0 (mel) and 5 (bkl)
    assert as_is["confusion_matrix_rows"] == ["bkl", "mel", "nv"]
    assert as_is["confusion_matrix"] == [  # rows: true bkl, mel, nv; columns: all seven predicted classes
        [0, 0, 1, 0, 1, 0, 0],
        [0, 1, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 1],
    ]

    restricted = readings["restricted_to_present_classes"]
    assert restricted["reading"] == RESTRICTED and "renormalised" in restricted["probabilities"]
    assert restricted["classes"] == ["bkl", "mel", "nv"]
    assert restricted["accuracy"] == pytest.approx(4 / 6)
    assert restricted["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 2 + 1 / 2) / 3)
    assert restricted["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # renormalised: bkl positives 0.5, 0.4375 against 0.111, 0.2, 0.111, 0.583: 6 of 8 pairs
    aucs = {"mel": 1.0, "nv": 1.0, "bkl": 6 / 8}
    assert {code: restricted["per_class"][code]["roc_auc"] for code in aucs} == pytest.approx(aucs)
    assert restricted["macro_roc_auc"] == pytest.approx(np.mean(list(aucs.values())))
    strict(readings)


def test_calibration_of_each_reading_by_hand():
    """One bin: ECE = |accuracy - mean top probability|, of the 7-class and of the renormalised probabilities."""
    readings = subset_readings(LABELS, PROBS, bins=1)
    assert readings["as_is"]["expected_calibration_error"] == pytest.approx(abs(3 / 6 - 3.15 / 6))
    top = [0.6 / 0.9, 0.3 / 0.5, 0.7 / 0.9, 0.35 / 0.6, 0.5, 0.45 / 0.8]
    assert readings["restricted_to_present_classes"]["expected_calibration_error"] == pytest.approx(
        abs(4 / 6 - np.mean(top))
    )
    default = subset_readings(LABELS, PROBS)  # 15 bins, as everywhere else
    present = [CLASSES.index(c) for c in ("bkl", "mel", "nv")]
    index = np.full(len(CLASSES), -1)
    index[present] = np.arange(3)
    assert default["restricted_to_present_classes"]["expected_calibration_error"] == pytest.approx(
        expected_calibration_error(index[LABELS], restrict_probabilities(PROBS, present))
    )


def test_the_headings_name_the_absent_classes_and_say_what_was_renormalised():
    as_is, restricted = reading_titles(collection_report(LABELS, PROBS))
    assert as_is == (
        "7-class answer as is (4 of 7 classes absent from the labels: akiec, bcc, df, vasc; "
        "2 prediction(s) (33.3%) went to them)"
    )
    assert restricted == "restricted to the classes present (bkl, mel, nv; probabilities renormalised over them)"


def test_a_full_collection_gets_todays_report_unchanged():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(CLASSES), 300)
    logits = rng.normal(size=(300, len(CLASSES)))
    logits[np.arange(300), labels] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert collection_report(labels, probs) == classification_report_dict(labels, probs)


def test_collection_report_keeps_todays_keys_for_the_reading_as_is():
    report = collection_report(LABELS, PROBS)
    assert set(classification_report_dict(LABELS, PROBS)) <= set(report)
    assert report["reading"] == AS_IS and report["classes"] == list(CLASSES)
    assert report["balanced_accuracy"] == pytest.approx(0.5) and set(report["per_class"]) == {"bkl", "mel", "nv"}
    assert report["predictions_to_absent_classes"]["count"] == 2
    assert report["restricted_to_present_classes"]["accuracy"] == pytest.approx(4 / 6)
    strict(report)


def test_one_class_present_gives_no_auc_and_says_the_restriction_is_trivial():
    labels = np.full(4, CLASSES.index("nv"))
    probs = rows({"nv": 0.8, "mel": 0.2}, {"mel": 0.7, "nv": 0.3}, {"nv": 0.6, "bcc": 0.4}, {"df": 0.9, "nv": 0.1})
    report = collection_report(labels, probs)
    assert report["classes_present"] == ["nv"] and len(report["classes_absent"]) == 6
    assert report["macro_roc_auc"] is None and report["per_class"]["nv"]["roc_auc"] is None  # not NaN
    assert report["accuracy"] == pytest.approx(2 / 4) and report["balanced_accuracy"] == pytest.approx(2 / 4)
    assert report["predictions_to_absent_classes"] == {
        "count": 2, "share": pytest.approx(0.5), "by_class": {"akiec": 0, "bcc": 0, "bkl": 0, "df": 1, "mel": 1, "vasc": 0}
    }  # fmt: skip
    restricted = report["restricted_to_present_classes"]
    assert restricted["accuracy"] == 1.0 and restricted["macro_roc_auc"] is None
    assert "every answer restricted to it is right" in restricted["note"]
    strict(report)


def test_named_classes_present_may_include_one_the_sample_lacks_but_not_omit_a_labelled_one():
    readings = subset_readings(LABELS[:4], PROBS[:4], classes_present=["mel", "nv", "bkl"])  # no bkl image
    assert readings["classes_present"] == ["bkl", "mel", "nv"]
    assert readings["as_is"]["per_class"]["bkl"]["support"] == 0
    assert readings["as_is"]["per_class"]["bkl"]["recall"] is None
    assert readings["restricted_to_present_classes"]["balanced_accuracy"] == pytest.approx((2 / 2 + 1 / 2) / 2)
    with pytest.raises(ValueError, match=r"labels hold class\(es\) \['bkl'\]"):
        subset_readings(LABELS, PROBS, classes_present=["mel", "nv"])
    with pytest.raises(ValueError, match="unknown class"):
        subset_readings(LABELS, PROBS, classes_present=["mel", "nv", "bkl", "sk"])


def test_renormalising_rows_that_underflowed_to_zero_gives_a_uniform_answer():
    probs = rows({"bcc": 1.0}, {"mel": 0.25, "nv": 0.25, "bcc": 0.5})
    present = [CLASSES.index(c) for c in ("mel", "nv")]
    assert restrict_probabilities(probs, present).tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_bad_inputs_still_fail_as_before(tmp_path):
    with pytest.raises(ValueError, match="labels must be in 0..6"):
        subset_readings(np.array([0, 7]), PROBS[:2])
    with pytest.raises(ValueError, match="sum to 1"):
        collection_report(LABELS, PROBS * 0.5)
    (tmp_path / "images").mkdir()
    labels = tmp_path / "labels.csv"
    labels.write_text("image_id,dx\nISIC_0000000,nv\nISIC_0000001,sk\n")  # a class the model does not know
    with pytest.raises(DataError, match=r"unknown dx label.*ISIC_0000001: 'sk'"):
        score_labelled_folder(tmp_path / "images", labels, pipeline=None)
