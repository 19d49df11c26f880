"""The data layer on the real HAM10000 folder: counts, the shipped split, check-data."""

import json

import numpy as np
import pytest

from skinlib.cli import main
from skinlib.data import (
    CLASSES,
    DEFAULT_SPLIT_PATH,
    SPLITS,
    check,
    class_weights,
    make_split,
    read_split,
    split_summary,
)

README_COUNTS = {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142, "df": 115}


def test_metadata_counts(metadata):
    assert len(metadata) == 10015
    assert metadata["lesion_id"].nunique() == 7470
    assert metadata["mask_path"].notna().sum() == 10015
    assert metadata["dx"].value_counts().to_dict() == README_COUNTS


def test_shipped_split_is_reproducible(metadata):
    recorded = json.loads(DEFAULT_SPLIT_PATH.with_suffix(".json").read_text())
    fresh = make_split(metadata, fractions=recorded["fractions"], seed=recorded["seed"])
    shipped = read_split()
    assert shipped["split"].tolist() == fresh["split"].tolist()
    assert shipped["image_id"].tolist() == fresh["image_id"].tolist()


def test_no_lesion_crosses_splits():
    shipped = read_split()
    assert shipped.groupby("lesion_id")["split"].nunique().max() == 1
    assert set(shipped["split"]) == set(SPLITS)


def test_class_proportions_hold_within_two_points():
    table = split_summary(read_split()).drop("total")
    overall = table.sum(axis=1) / table.values.sum()
    for name in SPLITS:
        share = table[name] / table[name].sum()
        assert np.all(np.abs(share - overall) < 0.02), f"{name}: {share.round(3).to_dict()}"


def test_split_fractions_close_to_requested():
    shipped = read_split()
    shares = shipped["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.70, abs=0.01)
    assert shares["val"] == pytest.approx(0.15, abs=0.01)
    assert shares["test"] == pytest.approx(0.15, abs=0.01)


def test_another_seed_gives_another_split(metadata):
    assert not make_split(metadata, seed=1)["split"].equals(make_split(metadata, seed=2)["split"])


def test_class_weights_on_real_counts(metadata):
    weights, counts = class_weights(metadata["label"])
    assert counts.tolist() == [README_COUNTS[c] for c in CLASSES]
    assert weights[CLASSES.index("nv")] < 1 < weights[CLASSES.index("df")]
    assert sum(weights[c] * counts[c] for c in range(len(CLASSES))) == pytest.approx(len(metadata))


def test_check_data_on_real_folder(data_dir):
    report = check.check_data(data_dir, progress=False)
    assert report.ok, report.problems
    assert (report.rows, report.lesions, report.masks_found) == (10015, 7470, 10015)
    assert report.class_counts == README_COUNTS


def test_cli_check_data_prints_summary(data_dir, capsys):
    assert main(["check-data", "--data", str(data_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    for text in ("10,015 found", "7,470", "Melanoma", "OK:"):
        assert text in out


def test_cli_split_verify(data_dir, capsys):
    assert main(["split", "--data", str(data_dir), "--verify"]) == 0
    assert "OK" in capsys.readouterr().out
