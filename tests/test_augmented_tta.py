"""`skinlib fit-tta`: the augmented-TTA temperature and scores, and `temperature_for` reading them."""

import json
import shutil

import numpy as np
import pytest

from skinlib.data import CLASSES
from skinlib.data.errors import DataError
from skinlib.evaluation.classification import balanced_accuracy
from skinlib.runtime import DEFAULT_CLASSIFIER, StageTwo
from skinlib.workflows.augmented_tta import KEY, augmented_tta_scores

shipped = pytest.mark.skipif(
    not (DEFAULT_CLASSIFIER / "model.json").is_file(), reason=f"no shipped classifier in {DEFAULT_CLASSIFIER}"
)


def test_scores_report_both_predictions_and_their_paired_gain():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(CLASSES)), 20)
    noisy = rng.dirichlet(np.ones(len(CLASSES)), len(labels))
    better = 0.6 * noisy + 0.4 * np.eye(len(CLASSES))[labels]
    scores = augmented_tta_scores(labels, noisy, better, samples=200)
    gain = scores["tta_augmented_minus_plain"]["balanced_accuracy"]
    expected = balanced_accuracy(labels, better.argmax(1)) - balanced_accuracy(labels, noisy.argmax(1))
    assert gain["difference"] == pytest.approx(expected) and gain["ci95"][0] > 0
    assert scores["images"] == len(labels) and scores["tta_augmented"]["balanced_accuracy"] > 0.9


@shipped
def test_temperature_for_reads_the_fit_and_refuses_without_it(tmp_path):
    folder = tmp_path / "classifier"
    shutil.copytree(DEFAULT_CLASSIFIER, folder)
    spec = json.loads((folder / "model.json").read_text())
    spec[KEY] = {"views": 16, "seed": 0, "temperature": 0.7, "recommended": True}
    (folder / "model.json").write_text(json.dumps(spec))
    stage = StageTwo.load(folder)
    assert stage.temperature_for(True, augmented=True) == 0.7
    assert (
        stage.temperature_for(True) == spec["temperature_tta"] and stage.temperature_for(False) == spec["temperature"]
    )
    del spec[KEY]
    (folder / "model.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match="skinlib fit-tta"):
        StageTwo.load(folder).temperature_for(True, augmented=True)


@shipped
def test_fit_tta_cli_quick_check_writes_nothing(quick_fit):
    out = quick_fit("fit-tta", limit=30)
    assert "16 augmented views: temperature" in out
    assert "val  balanced accuracy" in out and "test balanced accuracy" in out
