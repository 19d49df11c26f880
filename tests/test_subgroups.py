"""Subgroup scores of the model card (skinlib.evaluation.subgroups) on generated data with known answers."""

import numpy as np
import pandas as pd
import pytest

from skinlib.data.classes import CLASS_INDEX, CLASSES
from skinlib.evaluation.classification import balanced_accuracy
from skinlib.evaluation.report import bootstrap_ci
from skinlib.evaluation.subgroups import (
    age_bands,
    all_or_none_interval,
    below_overall,
    melanoma_recall,
    pooled_sites,
    subgroup_columns,
    subgroup_table,
)
from skinlib.plots import subgroup_figure

MEL, NV, BCC = CLASS_INDEX["mel"], CLASS_INDEX["nv"], CLASS_INDEX["bcc"]


def _metadata(n, age=50.0, sex="male", site="back", dx_type="histo"):
    return pd.DataFrame({"age": [age] * n, "sex": [sex] * n, "localization": [site] * n, "dx_type": [dx_type] * n})


def _row(table, attribute, subgroup):
    rows = table[(table["attribute"] == attribute) & (table["subgroup"] == subgroup)]
    assert len(rows) == 1, (attribute, subgroup, table[["attribute", "subgroup"]])
    return rows.iloc[0]


def test_age_bands_edges_and_missing_age():
    bands = age_bands([0, 29, 30, 44, 45, 59, 60, 74, 75, 85, np.nan, None])
    assert bands.tolist() == [
        "<30", "<30", "30-44", "30-44", "45-59", "45-59", "60-74", "60-74", ">=75", ">=75", "unknown", "unknown",
    ]  # fmt: skip
    assert list(bands.cat.categories) == ["<30", "30-44", "45-59", "60-74", ">=75", "unknown"]


def test_rare_sites_are_pooled_as_other_and_missing_stays_unknown():
    sites = ["back"] * 30 + ["ear"] * 29 + ["hand"] * 3 + [np.nan] * 2 + ["unknown"] * 1
    metadata = pd.DataFrame({"age": 40, "sex": [None] * len(sites), "localization": sites, "dx_type": "histo"})
    assert pooled_sites(sites, min_images=30) == ["ear", "hand"]
    columns = subgroup_columns(metadata, min_site_images=30)
    assert columns["site"].value_counts().to_dict() == {"back": 30, "other": 32, "unknown": 3}
    assert set(columns["sex"]) == {"unknown"}
    # a lower threshold keeps the ear on its own
    assert subgroup_columns(metadata, min_site_images=10)["site"].value_counts()["ear"] == 29


def test_known_answers_per_subgroup():
    # young: 10 nevi (8 right) and 10 melanomas (5 found); old: 10 bcc (all right), 10 melanomas (9 found)
    labels = np.array([NV] * 10 + [MEL] * 10 + [BCC] * 10 + [MEL] * 10)
    predicted = np.array([NV] * 8 + [MEL] * 2 + [MEL] * 5 + [NV] * 5 + [BCC] * 10 + [MEL] * 9 + [BCC])
    metadata = pd.concat([_metadata(20, age=25), _metadata(20, age=80)], ignore_index=True)
    lesions = np.arange(40).astype(str)
    table = subgroup_table(labels, predicted, metadata, lesions, n_bootstrap=200, min_lesions=5)
    young, old, everyone = _row(table, "age band", "<30"), _row(table, "age band", ">=75"), _row(table, "all", "all")
    assert young["balanced_accuracy"] == pytest.approx((0.8 + 0.5) / 2)
    assert young["melanoma_recall"] == pytest.approx(0.5) and young["melanomas"] == 10
    assert young["classes"] == "mel nv"  # balanced accuracy over the classes present only
    assert old["balanced_accuracy"] == pytest.approx((1.0 + 0.9) / 2) and old["classes"] == "bcc mel"
    assert everyone["melanoma_recall"] == pytest.approx(14 / 20)
    assert everyone["balanced_accuracy"] == pytest.approx((1.0 + 0.7 + 0.8) / 3)
    assert (young["images"], young["lesions"]) == (20, 20)
    assert young["ba_low"] <= young["balanced_accuracy"] <= young["ba_high"]
    assert young["mel_low"] < 0.5 < young["mel_high"]
    # probabilities are scored by their argmax, giving the same table
    probs = np.eye(len(CLASSES))[predicted] * 0.9 + 0.1 / len(CLASSES)
    same = subgroup_table(labels, probs, metadata, lesions, n_bootstrap=200, min_lesions=5)
    pd.testing.assert_frame_equal(table, same)
    # the age bands keep their order, empty ones are left out
    assert table.loc[table["attribute"] == "age band", "subgroup"].tolist() == ["<30", ">=75"]


def test_intervals_resample_lesions():
    # 8 lesions with 6 images each: the model is right or wrong for a whole lesion at once
    rng = np.random.default_rng(0)
    lesions = np.repeat(np.arange(8), 6).astype(str)
    labels = np.repeat(rng.choice([MEL, NV], 8), 6)
    labels[:6], labels[6:12] = MEL, NV
    right = np.repeat(rng.random(8) < 0.6, 6)
    predicted = np.where(right, labels, np.where(labels == MEL, NV, MEL))
    table = subgroup_table(labels, predicted, _metadata(48), lesions, n_bootstrap=300, seed=3, min_lesions=5)
    everyone = _row(table, "all", "all")
    assert everyone["lesions"] == 8 and everyone["images"] == 48
    expected = bootstrap_ci(balanced_accuracy, labels, predicted, n=300, seed=3, groups=lesions)
    assert (everyone["ba_low"], everyone["ba_high"]) == pytest.approx(tuple(expected))
    images = bootstrap_ci(balanced_accuracy, labels, predicted, n=300, seed=3)
    assert everyone["ba_high"] - everyone["ba_low"] > 1.5 * (images.high - images.low)


def test_too_few_gives_counts_without_interval():
    labels = np.array([MEL] * 3 + [NV] * 30)
    predicted = np.array([MEL, MEL, NV] + [NV] * 30)
    lesions = np.array(["m1", "m1", "m2"] + [f"n{i}" for i in range(30)])
    table = subgroup_table(labels, predicted, _metadata(33), lesions, n_bootstrap=50, min_lesions=40)
    row = _row(table, "sex", "male")
    assert row["melanomas"] == 3 and row["melanoma_lesions"] == 2
    assert row["melanoma_recall"] == pytest.approx(2 / 3)
    assert np.isnan(row["mel_low"]) and np.isnan(row["mel_high"])
    assert np.isnan(row["ba_low"]) and not np.isnan(row["balanced_accuracy"])
    assert "too few melanoma lesions" in row["note"] and "too few lesions" in row["note"]


def test_all_melanomas_found_gets_an_exact_interval_not_a_point():
    labels = np.array([MEL] * 6 + [NV] * 20)
    lesions = np.array([f"m{i}" for i in range(6)] + [f"n{i}" for i in range(20)])
    table = subgroup_table(labels, labels.copy(), _metadata(26), lesions, n_bootstrap=50, min_lesions=5)
    row = _row(table, "all", "all")
    assert row["melanoma_recall"] == 1.0
    assert row["mel_low"] == pytest.approx(0.025 ** (1 / 6)) and row["mel_high"] == 1.0
    assert "all melanomas found" in row["note"]
    assert all_or_none_interval(False, 6) == pytest.approx((0.0, 1 - 0.025 ** (1 / 6)))


def test_melanoma_recall_and_below_overall():
    assert np.isnan(melanoma_recall([NV, NV], [NV, MEL]))
    assert melanoma_recall([MEL, MEL, NV], [MEL, NV, NV]) == 0.5
    table = pd.DataFrame(
        {
            "attribute": ["all", "sex", "sex"],
            "subgroup": ["all", "male", "female"],
            "balanced_accuracy": [0.7, 0.5, 0.65],
            "ba_low": [0.65, 0.4, 0.5],
            "ba_high": [0.75, 0.6, 0.8],
        }
    )
    assert below_overall(table)["subgroup"].tolist() == ["male"]


def test_mismatched_lengths_and_missing_columns_raise():
    with pytest.raises(ValueError, match="one entry per image"):
        subgroup_table([MEL, NV], [MEL], _metadata(2), ["a", "b"])
    with pytest.raises(ValueError, match="dx_type"):
        subgroup_columns(_metadata(2).drop(columns="dx_type"))


def test_subgroup_figure_draws_every_subgroup():
    labels = np.array([MEL] * 10 + [NV] * 30)
    predicted = np.array([MEL] * 7 + [NV] * 3 + [NV] * 28 + [MEL] * 2)
    metadata = pd.concat([_metadata(20, age=np.nan), _metadata(20, age=60, sex="female")], ignore_index=True)
    table = subgroup_table(labels, predicted, metadata, np.arange(40).astype(str), n_bootstrap=50, min_lesions=5)
    figure = subgroup_figure(table)
    axes = figure.get_axes()
    assert len(axes) == 2
    assert len(axes[0].get_yticks()) == len(table) - 1  # every subgroup but "all"
    assert any("unknown" in tick.get_text() for tick in axes[0].get_yticklabels())
