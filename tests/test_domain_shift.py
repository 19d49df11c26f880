"""Chapter 13's pieces: two collections side by side, scores of a three-class collection, the lever table and the
sentence that says whether validation predicted transfer, and the ISIC 2017 folder and sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinlib import course
from skinlib.data import CLASSES
from skinlib.evaluation.collections import (
    MEASURES,
    class_mix,
    image_statistics,
    one_image_statistics,
    side_by_side,
    three_class_scores,
)
from skinlib.plots import collections_figure, failure_figure, lever_transfer_figure

MEL, BKL, NV, BCC = (CLASSES.index(code) for code in ("mel", "bkl", "nv", "bcc"))


# ------------------------------------------------------------------------------------ side by side


def test_one_image_statistics_measures_size_colour_and_lesion_share():
    image = np.zeros((10, 20, 3), np.uint8)
    image[..., 0] = 200
    image[:, :10, 2] = 100  # blue 100 on the left half, 0 on the right: mean 50, std 50
    mask = np.zeros((10, 20), np.uint8)
    mask[:5, :4] = 255  # 20 of 200 pixels
    stats = one_image_statistics(image, mask)
    assert (stats["width"], stats["height"]) == (20, 10) and stats["aspect"] == 2.0
    assert stats["mean_r"] == 200 and stats["std_r"] == 0 and stats["mean_g"] == 0
    assert stats["mean_b"] == pytest.approx(50) and stats["std_b"] == pytest.approx(50)
    assert stats["brightness"] == pytest.approx(0.299 * 200 + 0.114 * 50)
    assert stats["lesion_share"] == pytest.approx(0.1)
    assert np.isnan(one_image_statistics(image)["lesion_share"])


def test_image_statistics_reads_files_and_side_by_side_summarises(tmp_path):
    paths, masks = [], []
    for i, value in enumerate((50, 100, 250)):
        Image.fromarray(np.full((6, 8, 3), value, np.uint8)).save(tmp_path / f"im{i}.png")
        mask = np.zeros((6, 8), np.uint8)
        mask[: i + 1] = 255
        Image.fromarray(mask).save(tmp_path / f"im{i}_segmentation.png")
        paths.append(tmp_path / f"im{i}.png")
        masks.append(tmp_path / f"im{i}_segmentation.png")
    frame = image_statistics(paths, masks, image_ids=["a", "b", "c"])
    assert list(frame["image_id"]) == ["a", "b", "c"]
    assert frame["brightness"].tolist() == pytest.approx([50, 100, 250])
    assert frame["lesion_share"].tolist() == pytest.approx([1 / 6, 2 / 6, 3 / 6])
    table = side_by_side({"one": frame, "two": frame.iloc[:2]})
    assert table.loc[MEASURES["brightness"], "one"] == pytest.approx(100)  # the median
    assert table.loc[MEASURES["brightness"], "two"] == pytest.approx(75)
    assert side_by_side({"one": frame}, how="mean").loc[MEASURES["brightness"], "one"] == pytest.approx(400 / 3)
    assert table.loc["images"].tolist() == [3, 2]
    with pytest.raises(ValueError, match="3 images but 2 masks"):
        image_statistics(paths, masks[:2])
    with pytest.raises(ValueError, match="median"):
        side_by_side({"one": frame}, how="max")


def test_class_mix_gives_shares_and_zeros_for_absent_classes():
    mix = class_mix({"a": ["mel", "nv", "nv", "nv"], "b": ["bcc"]})
    assert list(mix.index) == list(CLASSES)
    assert mix["a"]["nv"] == 0.75 and mix["a"]["mel"] == 0.25 and mix["a"]["bcc"] == 0
    assert mix.sum().tolist() == pytest.approx([1, 1])


# ------------------------------------------------------------------------------ three-class scores


def _probs(answers, strength=0.9):
    probs = np.full((len(answers), len(CLASSES)), (1 - strength) / (len(CLASSES) - 1))
    probs[np.arange(len(answers)), answers] = strength
    return probs


def test_three_class_scores_read_both_ways():
    labels = np.array([MEL] * 4 + [BKL] * 4 + [NV] * 4)
    answers = labels.copy()
    answers[0] = BCC  # a melanoma called bcc: a miss as is; restricted, its mel/bkl/nv tie goes to bkl (first)
    probs = _probs(answers)
    probs[0, MEL] += 0.001  # ... unless P(mel) leads among the three: then the restricted answer is right
    scores = three_class_scores(labels, probs, n=50)
    assert scores["classes_present"] == ["bkl", "mel", "nv"]
    assert scores["balanced_accuracy_as_is"] == pytest.approx((3 / 4 + 1 + 1) / 3)
    assert scores["balanced_accuracy_restricted"] == pytest.approx(1.0)
    assert scores["recall_as_is"]["mel"] == 0.75 and scores["recall_restricted"]["mel"] == 1.0
    assert scores["predicted_absent"]["by_class"]["bcc"] == 1
    assert scores["predicted_absent"]["share"] == pytest.approx(1 / 12)
    assert scores["bootstrap"]["unit"] == "images"
    low, high = scores["balanced_accuracy_as_is_ci95"]
    assert low <= scores["balanced_accuracy_as_is"] <= high
    assert scores["balanced_accuracy_restricted_ci95"] == [1.0, 1.0]


def test_three_class_scores_resample_lesions_when_given():
    rng = np.random.default_rng(0)
    labels = np.repeat([MEL, BKL, NV], 20)
    probs = rng.dirichlet(np.ones(len(CLASSES)), len(labels))
    lesions = np.arange(len(labels)) // 4  # four images per lesion
    by_lesion = three_class_scores(labels, probs, groups=lesions, n=200)
    by_image = three_class_scores(labels, probs, n=200)
    assert by_lesion["bootstrap"]["unit"] == "lesions"
    assert by_lesion["balanced_accuracy_restricted"] == by_image["balanced_accuracy_restricted"]
    assert by_lesion["balanced_accuracy_restricted_ci95"] != by_image["balanced_accuracy_restricted_ci95"]


# ---------------------------------------------------------------------------------- the lever table


def _ablation(external: dict) -> dict:
    rows = [{"name": "baseline", "val_minus_baseline": None}]
    gains = {"a": 0.05, "b": 0.03, "c": -0.02, "d": 0.01, "meta": 0.02}
    for name, gain in gains.items():
        rows.append(
            {
                "name": name,
                "val_minus_baseline": {
                    "balanced_accuracy": {
                        "difference": gain,
                        "ci95": [gain - 0.02, gain + 0.02],
                        "bootstrap_unit": "lesions",
                    }
                },
            }
        )
    for row in rows:
        if row["name"] in external:
            row["external"] = {"isic2017": external[row["name"]]}
    return {"baseline": "baseline", "rows": rows}


def _external(gain):
    return {
        "balanced_accuracy_restricted": 0.6 + gain,
        "balanced_accuracy_restricted_ci95": [0.55 + gain, 0.65 + gain],
        "melanoma_roc_auc": 0.8,
        "restricted_change": {"against": "baseline", "difference": gain, "ci95": [gain - 0.01, gain + 0.01]},
    }


def test_lever_table_joins_validation_battery_and_external_numbers():
    external = {name: _external(gain) for name, gain in {"baseline": 0.0, "a": 0.04, "b": -0.03}.items()}
    external["meta"] = {"not_applicable": "needs age, sex and site"}
    battery = {
        "models": {
            "a": {
                "robustness": {
                    "mean_balanced_accuracy_change": -0.01,
                    "worst_balanced_accuracy_change": -0.05,
                    "worst_shift": "blur",
                }
            }
        }
    }
    table = course.lever_table(_ablation(external), battery).set_index("row")
    assert list(table.index) == ["baseline", "a", "b", "c", "d", "meta"]
    assert table.loc["baseline", "val_gain"] == 0 and table.loc["a", "val_gain"] == 0.05
    assert table.loc["a", "val_low"] == pytest.approx(0.03) and table.loc["a", "val_unit"] == "lesions"
    assert table.loc["a", "battery_worst"] == -0.05 and table.loc["a", "worst_shift"] == "blur"
    assert np.isnan(table.loc["b", "battery_mean"])
    assert table.loc["b", "external_gain"] == -0.03 and table.loc["b", "external_high"] == pytest.approx(-0.02)
    assert table.loc["c", "note"] == "not scored on isic2017 yet" and np.isnan(table.loc["c", "external_ba"])
    assert table.loc["meta", "note"] == "needs age, sex and site"
    assert course.lever_table(None, None).empty


def test_transfer_reading_counts_what_the_numbers_say():
    gains = {"baseline": 0.0, "a": 0.04, "b": -0.03, "c": -0.02, "d": 0.02}
    reading = course.transfer_reading(course.lever_table(_ablation({n: _external(g) for n, g in gains.items()}), None))
    # validation: a (0.03..0.07), b (0.01..0.05) and d? (-0.01..0.03: no) helped; externally a gained, b lost
    assert reading["rows"] == 4 and reading["val_helped"] == 2 and reading["also_external"] == 1
    assert reading["external_hurt"] == 2  # b and c have intervals below 0
    expected = pd.Series([0.05, 0.03, -0.02, 0.01]).rank().corr(pd.Series([0.04, -0.03, -0.02, 0.02]).rank())
    assert reading["rank_correlation"] == pytest.approx(expected)
    assert "validation said 2 helped" in reading["sentence"] and "1 of those also gained" in reading["sentence"]
    assert "too few to say whether robustness" in reading["sentence"]  # no battery
    few = course.transfer_reading(course.lever_table(_ablation({"a": _external(0.01)}), None))
    assert few["rows"] == 1 and few["sentence"].startswith("Only 1 lever(s) have both") and "too few" in few["sentence"]
    none = course.transfer_reading(course.lever_table(_ablation({}), None), collection="X")
    assert none["rows"] == 0 and none["sentence"].startswith("No lever has both a validation gain and a X gain")


def _unet_entry(clean, battery, external=None):
    entry = {
        "clean_minus_reference": {"difference": clean[0], "ci95": list(clean[1:])},
        "battery_minus_reference": {"difference": battery[0], "ci95": list(battery[1:])},
    }
    if external is not None:
        entry["held_out"] = {
            "ham10000_test": {"minus_reference": {"difference": 0.001, "ci95": [-0.002, 0.004]}},
            "isic2017": {
                "dice_mean": 0.88,
                "reference_dice_mean": 0.868,
                "minus_reference": {"difference": external[0], "ci95": list(external[1:])},
            },
        }
    return entry


def test_unet_lever_table_reads_the_verdict_and_what_was_read_afterwards():
    battery = {
        "unets": {
            "robust": _unet_entry((0.0, -0.003, 0.004), (0.012, 0.006, 0.019), (0.012, 0.008, 0.016)),
            "fragile": _unet_entry((0.002, -0.001, 0.005), (-0.02, -0.03, -0.01)),
        }
    }
    table = course.unet_lever_table(battery).set_index("unet")
    assert table.loc["robust", "verdict"] == "replace" and table.loc["fragile", "verdict"] == "less robust"
    assert table.loc["robust", "external"] == pytest.approx(0.012) and np.isnan(table.loc["fragile", "external"])
    robust = course.unet_lever_sentence(table.reset_index().iloc[0])
    assert "would replace it" in robust and "gains beyond noise" in robust and "0.880 against 0.868" in robust
    fragile = course.unet_lever_sentence(table.reset_index().iloc[1])
    assert "less robust" in fragile and "Read afterwards" not in fragile
    assert course.unet_lever_table(None).empty and course.unet_lever_table({"models": {}}).empty
    shown = course.unet_lever_display(table.reset_index())
    assert shown.loc["robust", "under the battery"] == "+0.012 [+0.006, +0.019]"
    assert shown.loc["fragile", "ISIC 2017 (afterwards)"] == "not scored" and shown.loc["fragile", "verdict"] == (
        "less robust"
    )


def test_a_unet_robust_under_the_battery_but_lower_on_clean_images_is_said_so():
    battery = {"unets": {"steady": _unet_entry((-0.002, -0.008, 0.004), (0.003, 0.0004, 0.005))}}
    row = course.unet_lever_table(battery).iloc[0]
    assert row["verdict"] == "no gain"
    assert "better under the battery beyond noise but scores lower on the clean images" in (
        course.unet_lever_sentence(row)
    )


def test_lever_transfer_figure_leaves_out_the_baseline_and_rows_without_both_numbers():
    gains = {"baseline": 0.0, "a": 0.04, "b": -0.03}
    table = course.lever_table(_ablation({n: _external(g) for n, g in gains.items()}), None)
    figure = lever_transfer_figure(table)
    val_ax = figure.axes[0]
    assert sorted(text.get_text() for text in val_ax.texts) == ["a", "b"]
    assert any("no lever has both" in text.get_text() for text in figure.axes[1].texts)


def test_collection_and_failure_figures_draw_each_collection():
    frame = pd.DataFrame([one_image_statistics(np.full((4, 4, 3), v, np.uint8), np.eye(4)) for v in (10, 200)])
    figure = collections_figure({"x": frame, "y": frame}, class_mix({"x": ["nv"], "y": ["mel"]}))
    assert len(figure.axes) == 4 and len(figure.axes[3].patches) == 2 * len(CLASSES)
    image = np.zeros((4, 4, 3), np.uint8)
    assert len(failure_figure([image, image], [image, image], ["a", "b"]).axes) == 4
    assert failure_figure([], [], []).texts


def test_optional_result_names_the_command_when_missing(tmp_path, capsys):
    assert course.optional_result(tmp_path / "gone.json", "skinlib shifts") is None
    assert "`skinlib shifts` writes it" in capsys.readouterr().out
    (tmp_path / "here.json").write_text(json.dumps({"a": 1}))
    assert course.optional_result(tmp_path / "here.json", "x") == {"a": 1}


# ------------------------------------------------------------------------------------------ ISIC 2017


def test_isic2017_folder_is_resolved_like_the_test_fixture(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINLIB_ISIC2017", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ISIC2017_labels.csv"):
        course.isic2017_folder()
    (tmp_path / "ISIC2017_labels.csv").write_text("image_id,dx\n")
    assert course.isic2017_folder() == tmp_path
    monkeypatch.setenv("SKINLIB_ISIC2017", str(tmp_path / "not there"))
    assert course.isic2017_folder(tmp_path) == tmp_path  # the argument wins over the environment


@pytest.mark.data
def test_isic2017_sample_is_stratified_and_points_at_images_and_masks(isic2017_dir):
    whole = course.isic2017_sample(isic2017_dir, None)
    sample = course.isic2017_sample(isic2017_dir, 100, seed=1)
    assert set(whole["dx"]) == {"mel", "bkl", "nv"} and "lesion_id" not in whole
    assert abs(len(sample) - 100) <= 3 and list(sample["image_id"]) == sorted(sample["image_id"])
    shares = sample["dx"].value_counts(normalize=True)
    assert (shares - whole["dx"].value_counts(normalize=True)).abs().max() < 0.03
    assert all(path.is_file() for path in sample["image_path"]) and all(path.is_file() for path in sample["mask_path"])
    assert (sample["label"] == sample["dx"].map(CLASSES.index)).all()


@pytest.mark.data
@pytest.mark.slow
def test_run_dual_stage_scores_isic_images_and_their_masks(isic2017_dir):
    """Both shipped stages on a few ISIC 2017 images: calibrated probabilities, and a Dice per image against the
    expert mask that matches the U-Net's own mask scored directly."""
    from skinlib.data import read_image, read_mask
    from skinlib.evaluation.segmentation import dice
    from skinlib.runtime import DualStage

    sample = course.isic2017_sample(isic2017_dir, None).iloc[:5]
    pipeline = DualStage.load()
    run = course.run_dual_stage(pipeline, sample["image_path"].tolist(), sample["mask_path"].tolist(), batch_size=2)
    assert run["probs"].shape == (5, len(CLASSES)) and np.allclose(run["probs"].sum(axis=1), 1, atol=1e-5)
    assert run["lesion_found"].dtype == bool and len(run["lesion_found"]) == 5
    image, truth = read_image(sample["image_path"].iloc[3]), read_mask(sample["mask_path"].iloc[3])
    assert run["dice"][3] == pytest.approx(dice(pipeline.segmenter.segment([image])[0], truth))
    assert ((run["dice"] >= 0) & (run["dice"] <= 1)).all()
    assert course.run_dual_stage(pipeline, sample["image_path"].tolist()[:1])["dice"] is None
