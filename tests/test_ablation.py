"""The ablation study: one change per row, paired differences to the baseline, the committed results."""

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from skinlib.data import CLASSES
from skinlib.runtime import DEFAULT_CLASSIFIER
from skinlib.shipped import SHIFT_BATTERY_RESULTS
from skinlib.training.classifier import PREDICTIONS_FILE
from skinlib.workflows import ablation

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "skinlib" / "shipped" / "ablation.json"


def fake_row(out, name, labels, probs, ids, config=None):
    """A finished row: predictions (val = test here; two images per lesion) and the model's metrics.json."""
    run = ablation.row_dir(out, name) / "run"
    run.mkdir(parents=True, exist_ok=True)
    arrays = {}
    lesions = np.array([f"HAM_{i // 2:07d}" for i in range(len(ids))])
    for split in ("val", "test"):
        arrays.update(
            {
                f"{split}_plain": probs,
                f"{split}_tta": probs,
                f"{split}_labels": labels,
                f"{split}_image_ids": ids,
                f"{split}_lesion_ids": lesions,
            }
        )
    np.savez(run / PREDICTIONS_FILE, **arrays)
    model = ablation.model_dir(out, name)
    model.mkdir(parents=True, exist_ok=True)
    (model / "metrics.json").write_text(
        json.dumps({"command": f"train {name}", "train_seconds": 1.0, "config": config or {}})
    )


def one_hot_probs(predicted, confidence=0.9):
    probs = np.full((len(predicted), len(CLASSES)), (1 - confidence) / (len(CLASSES) - 1))
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs.astype(np.float32)


@pytest.fixture
def labels():
    return np.repeat(np.arange(len(CLASSES)), 10)


def without_folders(argv):
    """The argv's flags without --out/--run-dir and their values (those name the row's own folders)."""
    kept, skip = [], False
    for arg in argv[2:]:
        if skip or arg in ("--out", "--run-dir"):
            skip = not skip
            continue
        kept.append(arg)
    return kept


def test_each_row_changes_exactly_one_thing_against_the_baseline():
    """A training row is the baseline's config with one change; a TTA row adds TTA to the row whose model it
    scores."""
    from dataclasses import asdict

    baseline = asdict(ablation.row_config("baseline"))
    rows = {row.name: row for row in ablation.ROWS}
    for row in ablation.ROWS:
        model_row = rows[row.trains_from] if row.trains_from else row
        assert not (row.trains_from and row.changes), f"{row.name} both reuses a model and changes its training"
        assert not model_row.trains_from and not model_row.tta, f"{row.name} must score a trained, plain row"
        config = asdict(ablation.row_config(model_row.name))
        changed = {key: value for key, value in config.items() if value != baseline[key]}
        assert changed == dict(model_row.changes), row.name
        assert len(model_row.changes) <= 1 or model_row.why_more_changes, f"{row.name} changes more than one thing"


def test_every_row_command_parses_back_to_the_config_it_was_generated_from():
    """The recorded command is generated from the row's config: the command line reads it back exactly."""
    from skinlib.cli import train_classifier_config

    for name in ablation.TRAINING_ROWS:
        argv = ablation.train_command(name, "out", data_dir="/data")
        assert argv[:4] == ["skinlib", "train-classifier", "--data", "/data"]
        assert train_classifier_config(without_folders(argv)) == ablation.row_config(name, "/data"), name


def test_collect_reports_paired_differences_with_intervals(tmp_path, labels):
    ids = np.array([f"ISIC_{i:07d}" for i in range(len(labels))])
    perfect = one_hot_probs(labels)
    worse = one_hot_probs(np.where(labels == CLASSES.index("mel"), CLASSES.index("nv"), labels))
    fake_row(tmp_path, "baseline", labels, perfect, ids)
    fake_row(tmp_path, "plain_ce", labels, worse, ids)
    results = ablation.collect_ablation(tmp_path, samples=100)
    rows = {row["name"]: row for row in results["rows"]}
    assert set(rows) == {"baseline", "tta", "plain_ce"}  # tta reuses the baseline's predictions
    assert rows["baseline"]["test_minus_baseline"]["balanced_accuracy"] == {
        "difference": 0.0,
        "ci95": [0.0, 0.0],
        "standard_error": 0.0,
        "bootstrap_unit": "lesions",
        "units": 35,
    }
    diff = rows["plain_ce"]["test_minus_baseline"]["balanced_accuracy"]
    assert diff["difference"] == pytest.approx(-1 / len(CLASSES))  # melanoma recall 1 -> 0
    assert diff["ci95"][0] <= diff["difference"] <= diff["ci95"][1] < 0
    assert rows["plain_ce"]["val_minus_baseline"]["balanced_accuracy"]["difference"] == pytest.approx(-1 / len(CLASSES))
    assert rows["plain_ce"]["val_minus_baseline"]["macro_roc_auc"]["difference"] < 0
    assert rows["plain_ce"]["test"]["recall"]["mel"] == 0.0 and rows["plain_ce"]["val"]["melanoma_recall"] == 0.0
    assert shlex.split(rows["plain_ce"]["command"])[:2] == ["skinlib", "ablate"]
    assert "| plain_ce |" in ablation.ablation_markdown(results)


def test_rows_scored_on_other_images_are_refused(tmp_path, labels):
    ids = np.array([f"ISIC_{i:07d}" for i in range(len(labels))])
    fake_row(tmp_path, "baseline", labels, one_hot_probs(labels), ids)
    fake_row(tmp_path, "no_attention", labels, one_hot_probs(labels), ids[::-1])
    with pytest.raises(ValueError, match="other val images than the baseline"):
        ablation.collect_ablation(tmp_path, samples=100)


def test_collect_needs_the_baseline(tmp_path):
    with pytest.raises(FileNotFoundError, match="rows baseline"):
        ablation.collect_ablation(tmp_path)


def test_a_model_of_another_recipe_is_not_accepted_as_baseline(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    config = {**ablation.baseline_config(), "loss": "ce"}
    (model / "metrics.json").write_text(json.dumps({"config": config}))
    with pytest.raises(ValueError, match="not trained with the baseline row.s recipe.*loss"):
        ablation.baseline_from_model(model, tmp_path / "out")


def test_baseline_recipe_comes_from_the_baseline_flags():
    config = ablation.baseline_config()
    assert (config["image_size"], config["cache_at"]) == (128, "stage3_out")
    assert config["phases"] == [[0, 3, 1e-3], [2, 4, 5e-4], [4, 8, 2e-4]]
    assert "data_dir" not in config


def shipped_row() -> str | None:
    """The row of the study whose recipe the shipped classifier was trained with."""
    return ablation.row_of_recipe(json.loads((DEFAULT_CLASSIFIER / "metrics.json").read_text())["config"])


def test_the_shipped_classifier_is_the_recipe_of_a_row_of_the_study():
    """The study scores skinlib/shipped/classifier as one of its rows (`--reuse ROW=skinlib/shipped/classifier`); that is only
    fair if the recipes agree, and every other row is then one change away from a recipe the study holds."""
    assert shipped_row() is not None
    recorded = json.loads((DEFAULT_CLASSIFIER / "metrics.json").read_text())["config"]
    assert ablation.recipe_differences({**recorded, "dropout": 0.5}) == {
        **ablation.row_recipe_differences(shipped_row()),
        "dropout": 0.5,
    }


def test_row_recipes_differ_from_the_baseline_in_their_flags_only():
    assert ablation.row_recipe_differences("baseline") == {}
    assert ablation.row_of_recipe({**ablation.baseline_config(), "loss": "ce"}) == "plain_ce"
    assert ablation.row_of_recipe({**ablation.baseline_config(), "loss": "ce", "members": 3}) is None
    assert ablation.row_recipe_differences("plain_ce") == {"loss": "ce"}
    assert ablation.row_recipe_differences("full_image") == {"source": "full"}
    assert ablation.row_recipe_differences("lite2_backbone") == {"backbone": "lite2"}
    with pytest.raises(ValueError, match="trains nothing"):
        ablation.row_recipe_differences("tta")


def test_a_model_is_reused_only_as_the_row_whose_recipe_it_has(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "metrics.json").write_text(json.dumps({"config": {**ablation.baseline_config(), "members": 3}}))
    with pytest.raises(ValueError, match="not trained with the baseline row's recipe.*members"):
        ablation.row_from_model("baseline", model, tmp_path / "out")
    with pytest.raises(ValueError, match="not trained with the no_attention row's recipe"):
        ablation.row_from_model("no_attention", model, tmp_path / "out")


def test_cli_reuse_names_a_training_row_and_a_folder(capsys):
    from skinlib.cli import main

    assert main(["ablate", "--reuse", "tta=skinlib/shipped/classifier"]) == 2
    assert "not a row that trains a model" in capsys.readouterr().err
    assert main(["ablate", "--reuse", "ensemble"]) == 2
    assert "expected ROW=DIR" in capsys.readouterr().err


def test_cli_refuses_unknown_rows(capsys):
    from skinlib.cli import main

    assert main(["ablate", "--rows", "no_such_row"]) == 2
    assert "choose from baseline" in capsys.readouterr().err


@pytest.mark.skipif(not RESULTS.is_file(), reason="skinlib/shipped/ablation.json not written yet (skinlib ablate)")
def test_committed_results_are_complete_and_agree_with_the_shipped_model():
    """The book reads this JSON: every row present, each with one command, the shipped model one of its rows."""
    results = json.loads(RESULTS.read_text())
    rows = {row["name"]: row for row in results["rows"]}
    assert set(ablation.AWAITING_RESULTS) <= set(ablation.ROW_NAMES)
    assert set(rows) == set(ablation.ROW_NAMES) - set(ablation.AWAITING_RESULTS)
    shipped = json.loads((REPO / "skinlib" / "shipped" / "classifier" / "metrics.json").read_text())
    row = rows[shipped_row()]  # see test_the_shipped_classifier_is_the_recipe_of_a_row_of_the_study
    for key in ("balanced_accuracy", "macro_roc_auc", "accuracy"):
        assert row["test"][key] == pytest.approx(shipped["test"]["plain"][key], abs=1e-6), key
        assert row["val"][key] == pytest.approx(shipped["val"]["plain"][key], abs=1e-6), key
    assert row["model_command"] == shipped["command"]
    for row in rows.values():
        assert shlex.split(row["command"])[:2] == ["skinlib", "ablate"] and row["name"] in row["command"]
        for split in ("val", "test"):
            low, high = row[f"{split}_minus_baseline"]["balanced_accuracy"]["ci95"]
            assert low <= row[f"{split}_minus_baseline"]["balanced_accuracy"]["difference"] <= high
        assert row["test"]["balanced_accuracy"] == pytest.approx(
            rows["baseline"]["test"]["balanced_accuracy"]
            + row["test_minus_baseline"]["balanced_accuracy"]["difference"]
        )


def test_update_replaces_one_row_and_keeps_the_others(tmp_path, labels, monkeypatch):
    monkeypatch.setattr(ablation, "BOOTSTRAP_SAMPLES", 50)  # the CLI's collect uses the default; keep it fast
    ids = np.array([f"ISIC_{i:07d}" for i in range(len(labels))])
    worse = one_hot_probs(np.where(labels == CLASSES.index("mel"), CLASSES.index("nv"), labels))
    fake_row(tmp_path / "all", "baseline", labels, one_hot_probs(labels), ids)
    fake_row(tmp_path / "all", "plain_ce", labels, worse, ids)
    fake_row(tmp_path / "all", "no_attention", labels, worse, ids)
    fake_row(tmp_path / "rerun", "baseline", labels, one_hot_probs(labels), ids)
    fake_row(tmp_path / "rerun", "no_attention", labels, one_hot_probs(labels), ids)  # the rerun fixed it
    results = tmp_path / "ablation.json"
    results.write_text(json.dumps(ablation.collect_ablation(tmp_path / "all", samples=50)))
    from skinlib.cli import main

    assert (
        main(["ablate", "--out", str(tmp_path / "rerun"), "--collect-only", "--update", "--results", str(results)]) == 0
    )
    rows = {row["name"]: row for row in json.loads(results.read_text())["rows"]}
    assert list(rows) == ["baseline", "plain_ce", "no_attention", "tta"]  # the study's order, plain_ce kept
    assert rows["plain_ce"]["test"]["recall"]["mel"] == 0.0
    assert rows["no_attention"]["test"]["recall"]["mel"] == 1.0


def test_update_refuses_a_different_baseline(tmp_path, labels, capsys, monkeypatch):
    monkeypatch.setattr(ablation, "BOOTSTRAP_SAMPLES", 50)
    ids = np.array([f"ISIC_{i:07d}" for i in range(len(labels))])
    worse = one_hot_probs(np.where(labels == CLASSES.index("mel"), CLASSES.index("nv"), labels))
    fake_row(tmp_path / "all", "baseline", labels, one_hot_probs(labels), ids)
    fake_row(tmp_path / "rerun", "baseline", labels, worse, ids)
    results = tmp_path / "ablation.json"
    results.write_text(json.dumps(ablation.collect_ablation(tmp_path / "all", samples=50)))
    from skinlib.cli import main

    assert (
        main(["ablate", "--out", str(tmp_path / "rerun"), "--collect-only", "--update", "--results", str(results)]) == 2
    )
    assert "baseline's val scores" in capsys.readouterr().err
    assert (
        main(
            [
                "ablate",
                "--out",
                str(tmp_path / "rerun"),
                "--collect-only",
                "--update",
                "--results",
                str(tmp_path / "missing.json"),
            ]
        )
        == 2
    )


def curve_results(points):
    """Results holding only what `learning_curve` reads: name, train_images, val and test balanced accuracy."""
    return {
        "rows": [
            {
                "name": name,
                "train_images": images,
                "val": {"balanced_accuracy": val},
                "test": {"balanced_accuracy": val - 0.01},
            }
            for name, images, val in points
        ]
    }


def test_learning_curve_gain_per_doubling_and_what_the_target_would_need():
    results = curve_results([("baseline", 8000, 0.68), ("quarter_data", 2000, 0.60), ("half_data", 4000, 0.64)])
    curve = ablation.learning_curve(results, target=0.80)
    assert curve["rows"] == ["quarter_data", "half_data", "baseline"]  # ordered by data, whatever the JSON order
    assert curve["val_gain_per_doubling"] == pytest.approx(0.04)
    assert curve["doublings_to_target"] == pytest.approx(3.0)  # (0.80 - 0.68) / 0.04
    assert curve["images_for_target"] == pytest.approx(8000 * 8)
    assert curve["val_gain_last_doubling"] == pytest.approx(0.04)
    flattening = ablation.learning_curve(
        curve_results([("quarter_data", 2000, 0.60), ("half_data", 4000, 0.66), ("baseline", 8000, 0.68)])
    )
    assert flattening["val_gain_last_doubling"] == pytest.approx(0.02)
    assert flattening["val_gain_last_doubling"] < flattening["val_gain_per_doubling"]


def test_learning_curve_that_does_not_rise_never_reaches_the_target():
    results = curve_results([("quarter_data", 2000, 0.66), ("baseline", 8000, 0.66)])
    assert ablation.learning_curve(results, target=0.80)["doublings_to_target"] == float("inf")


def test_learning_curve_needs_two_data_rows():
    with pytest.raises(ValueError, match="quarter_data half_data"):
        ablation.learning_curve(curve_results([("baseline", 8000, 0.68)]))


def test_learning_curve_figure_draws_both_splits_the_fit_and_the_target():
    from skinlib.plots import learning_curve_figure

    results = curve_results([("baseline", 8000, 0.68), ("quarter_data", 2000, 0.60), ("half_data", 4000, 0.64)])
    figure = learning_curve_figure(ablation.learning_curve(results, target=0.80))
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels[:2] == ["validation", "test"] and any("per doubling" in label for label in labels)
    assert "target 0.8" in labels


def test_training_images_follow_the_recorded_train_limit():
    assert ablation.training_images({}) == 7005  # the whole train split of the shipped split file
    assert ablation.training_images({"train_limit": 1751, "seed": 0}) == 1751
    data_rows = {row.name: row for row in ablation.ROWS if row.name in ablation.LEARNING_CURVE_ROWS}
    for name, row in data_rows.items():
        if name != "baseline":
            limit = row.changes["train_limit"]
            assert f"{ablation.training_images({'train_limit': limit})} of the 7005" in row.scale_note


def test_metadata_row_fuses_the_baseline_predictions_with_the_training_prior(
    tmp_path, data_dir, split_frame, monkeypatch
):
    """The metadata row trains nothing: the baseline's saved probabilities, fused with each image's age, sex and
    site by a prior counted on the training split, its weight fitted on the row's validation predictions."""
    from skinlib.models.metadata_prior import MetadataPrior, fit_weight, fuse, metadata_values
    from skinlib.training.classifier import ClassifierConfig
    from skinlib.workflows.metadata_fusion import training_frame

    monkeypatch.setattr(ablation, "BOOTSTRAP_SAMPLES", 50)
    sample = split_frame[split_frame["split"] == "val"].sort_values("image_id").groupby("dx").head(10)
    labels = sample["label"].to_numpy()
    noise = np.random.default_rng(0).normal(0, 1e-3, (len(labels), len(CLASSES)))  # argmax by chance, not one class
    flat = (1 / len(CLASSES) + noise).astype(np.float32)  # the image says (next to) nothing
    flat /= flat.sum(axis=1, keepdims=True)
    fake_row(tmp_path, "baseline", labels, flat, sample["image_id"].to_numpy().astype(str))
    ablation.run_row("metadata", tmp_path, str(data_dir))
    with np.load(ablation.row_dir(tmp_path, "metadata") / "run" / PREDICTIONS_FILE) as saved:
        fused = saved["val_plain"]
    prior = MetadataPrior.fit(training_frame(ClassifierConfig(data_dir=str(data_dir))))
    ratios, _ = prior.log_ratios(metadata_values(sample.reset_index(drop=True)))
    expected = fuse(flat, ratios, fit_weight(labels, flat, ratios))
    assert fused == pytest.approx(expected, abs=1e-5)
    assert not np.allclose(fused, flat)
    rows = {row["name"]: row for row in ablation.collect_ablation(tmp_path, str(data_dir), samples=50)["rows"]}
    assert rows["metadata"]["val"]["balanced_accuracy"] > rows["baseline"]["val"]["balanced_accuracy"]


def verdict_row(name, low, ece, tta=False):
    return {
        "name": name,
        "tta": tta,
        "val": {"expected_calibration_error": ece},
        "val_minus_baseline": {"balanced_accuracy": {"difference": low + 0.01, "ci95": [low, low + 0.02]}},
    }


def test_a_row_replaces_the_baseline_only_when_better_on_validation_and_still_calibrated():
    results = {
        "rows": [
            verdict_row("baseline", 0.0, 0.04),
            verdict_row("noise", -0.01, 0.03),
            verdict_row("better", 0.002, 0.049),
            verdict_row("overconfident", 0.01, 0.068),
            verdict_row("tta", 0.05, 0.02, tta=True),
        ]
    }
    verdict = ablation.replacement_verdict(results)
    assert verdict["beat_on_val"] == ["better", "overconfident"]  # the baseline, noise and TTA rows never
    assert verdict["qualify"] == ["better"]
    assert verdict["held_back"] == {"overconfident": "validation ECE 0.068 > 0.05"}
    assert ablation.replacement_verdict(results, ece_target=0.1)["qualify"] == ["better", "overconfident"]


def battery_of(**intervals):
    """A shift-battery study comparing each named row with the baseline: name=(low, high)."""
    return {
        "models": {
            name: {"battery_minus_reference": {"reference": "baseline", "balanced_accuracy": {"ci95": list(ci)}}}
            for name, ci in intervals.items()
        }
    }


def test_the_battery_can_hold_a_row_back_or_let_a_robust_one_in():
    results = {
        "rows": [
            verdict_row("baseline", 0.0, 0.04),
            verdict_row("better_but_fragile", 0.01, 0.04),
            verdict_row("better_unscored", 0.01, 0.04),
            verdict_row("tie_but_robust", -0.01, 0.04),  # clean difference 0.0: loses nothing
            verdict_row("worse_but_robust", -0.03, 0.04),  # clean difference -0.02
            verdict_row("better_and_robust", 0.01, 0.04),
        ]
    }
    battery = battery_of(
        better_but_fragile=(-0.05, -0.01),
        tie_but_robust=(0.01, 0.04),
        worse_but_robust=(0.02, 0.05),
        better_and_robust=(-0.01, 0.03),
    )
    verdict = ablation.replacement_verdict(results, battery=battery)
    assert verdict["robustness_weighed"] and verdict["beat_under_battery"] == ["tie_but_robust"]
    assert verdict["qualify"] == ["tie_but_robust", "better_and_robust"]
    assert verdict["held_back"]["better_but_fragile"].startswith("less robust under the shift battery")
    assert verdict["held_back"]["better_unscored"].startswith("not scored under the shift battery")
    assert ablation.chosen_row(results, verdict) == "better_and_robust"  # differences 0.0 and 0.02: the larger wins
    assert ablation.chosen_row(results, {"qualify": []}) == "baseline"
    without = ablation.replacement_verdict(results)
    assert not without["robustness_weighed"] and without["qualify"] == [
        "better_but_fragile",
        "better_unscored",
        "better_and_robust",
    ]


@pytest.mark.skipif(not RESULTS.is_file(), reason="skinlib/shipped/ablation.json not written yet (skinlib ablate)")
def test_the_shipped_recipe_follows_the_replacement_rule():
    """The repository keeps its own rule: the shipped recipe is the baseline unless a row qualifies, then that row.
    The rule weighs the committed shift battery (robustness on validation)."""
    verdict = ablation.replacement_verdict(
        json.loads(RESULTS.read_text()), battery=json.loads(SHIFT_BATTERY_RESULTS.read_text())
    )
    assert verdict["robustness_weighed"]
    assert shipped_row() == ablation.chosen_row(json.loads(RESULTS.read_text()), verdict)
    assert shipped_row() in (verdict["qualify"] or ["baseline"])


def test_a_copied_model_keeps_every_file_its_spec_names():
    """A reused model's copy must load (`StageTwo.load`): weights, metadata prior and novelty model included."""
    from skinlib.models.folder import ClassifierSpec, MetadataFusionSpec, ModelFolder, NoveltySpec

    spec = ClassifierSpec(
        backbone="lite0",
        attention=True,
        image_size=64,
        weights="weights.npz",
        metadata_fusion=MetadataFusionSpec(prior="prior.json", weight=1.0, weight_tta=1.0),
        novelty=NoveltySpec(file="n.npz", threshold=1.0, components=2),
    )
    assert ablation.model_files(spec) == ["metrics.json", "model.json", "weights.npz", "prior.json", "n.npz"]
    ensemble = ClassifierSpec(backbone="lite0", attention=True, image_size=64, members=("a.npz", "b.npz"))
    assert ablation.model_files(ensemble) == ["metrics.json", "model.json", "a.npz", "b.npz"]
    shipped = ModelFolder(DEFAULT_CLASSIFIER).read_spec()
    assert all((DEFAULT_CLASSIFIER / name).is_file() for name in ablation.model_files(shipped))


def test_a_model_reused_from_its_own_row_folder_is_left_in_place(tmp_path):
    from skinlib.models.folder import ClassifierSpec

    spec = ClassifierSpec(backbone="lite0", attention=True, image_size=64, weights="weights.npz")
    source = tmp_path / "elsewhere"
    source.mkdir()
    for name in ablation.model_files(spec):
        (source / name).write_text(name)
    target = ablation.copy_model(spec, source, tmp_path / "out" / "baseline" / "model")
    assert sorted(p.name for p in target.iterdir()) == sorted(ablation.model_files(spec))
    again = ablation.copy_model(spec, target, tmp_path / "out" / "baseline" / "model")  # the same folder: no error
    assert again == target and (target / "weights.npz").read_text() == "weights.npz"


def test_the_augmented_tta_row_scores_the_baseline_model_with_its_own_views():
    row = ablation._row("tta_augmented")
    assert row.tta and row.views.kind == "augmented" and row.trains_from == "baseline" and row.own_tta_views
    assert row.has_own_predictions and not ablation._row("tta").own_tta_views


def test_the_tta_views_are_chosen_on_validation_only():
    """The row with the best validation gain wins, whatever test says; rows on other models do not compete."""

    def scored(name, val_gain, test_gain):
        gain = {
            split: {"balanced_accuracy": {"difference": value, "ci95": [value - 0.02, value + 0.02]}}
            for split, value in (("val_minus_baseline", val_gain), ("test_minus_baseline", test_gain))
        }
        return {"name": name, "tta": name != "baseline", **gain}

    results = {
        "rows": [
            scored("baseline", 0, 0),
            scored("tta", 0.01, 0.05),
            scored("tta_scales", 0.02, -0.01),
            scored("tta_augmented", 0.015, 0.03),
            scored("ensemble_tta", 0.04, 0.04),
        ]
    }
    assert [r["name"] for r in ablation.tta_rows(results)] == ["tta", "tta_scales", "tta_augmented"]
    assert ablation.chosen_tta_row(results)["name"] == "tta_scales"
    with pytest.raises(ValueError, match="no TTA row"):
        ablation.chosen_tta_row({"rows": [scored("baseline", 0, 0)]})


def test_gain_power_says_what_the_split_can_detect():
    gain = {
        "difference": 0.007,
        "ci95": [-0.018, 0.032],
        "standard_error": 0.0125,
        "bootstrap_unit": "lesions",
        "units": 1100,
    }
    results = {
        "test_images": 1500,
        "rows": [{"name": "tta_augmented", "test_minus_baseline": {"balanced_accuracy": gain}}],
    }
    power = ablation.gain_power(results, "tta_augmented")
    assert power["detectable"] == pytest.approx(2.8016 * 0.0125, abs=1e-4) and power["images"] == 1500
    assert power["unit"] == "lesions" and power["units"] == 1100  # the power analysis counts lesions
    assert power["units_to_detect_observed"] == pytest.approx(1100 * (power["detectable"] / 0.007) ** 2)
    del gain["bootstrap_unit"], gain["units"]  # a row collected before lesions were resampled: images
    assert ablation.gain_power(results, "tta_augmented")["unit"] == "images"
    assert ablation.gain_power(results, "tta_augmented")["units"] == 1500
    del gain["standard_error"]
    with pytest.raises(ValueError, match="collect-only"):
        ablation.gain_power(results, "tta_augmented")
    with pytest.raises(ValueError, match="no row"):
        ablation.gain_power(results, "nothing")


def test_collect_resamples_lesions_and_says_so(tmp_path, labels):
    ids = np.array([f"ISIC_{i:07d}" for i in range(len(labels))])
    fake_row(tmp_path, "baseline", labels, one_hot_probs(labels), ids)
    worse = one_hot_probs(np.where(labels == CLASSES.index("mel"), CLASSES.index("nv"), labels))
    fake_row(tmp_path, "plain_ce", labels, worse, ids)
    results = ablation.collect_ablation(tmp_path, samples=100)
    assert results["bootstrap"]["unit"] == "lesions" and results["test_lesions"] == len(labels) // 2
    gain = next(r for r in results["rows"] if r["name"] == "plain_ce")["test_minus_baseline"]["balanced_accuracy"]
    assert gain["bootstrap_unit"] == "lesions" and gain["units"] == len(labels) // 2
    assert ablation.image_level_rows(results) == []
    assert "paired bootstrap over lesions" in ablation.ablation_markdown(results)


def test_a_row_whose_predictions_collapse_to_one_class_fails_loudly(tmp_path, labels):
    ids = np.array([f"ISIC_{i:07d}" for i in range(len(labels))])
    fake_row(tmp_path, "baseline", labels, one_hot_probs(labels), ids)
    fake_row(tmp_path, "random_init", labels, one_hot_probs(np.full_like(labels, CLASSES.index("nv"))), ids)
    with pytest.raises(ValueError, match="random_init.*'nv' for every validation image"):
        ablation.collect_ablation(tmp_path, samples=20)


def test_rows_kept_from_image_level_results_are_marked_until_rerun(tmp_path, labels):
    ids = np.array([f"ISIC_{i:07d}" for i in range(len(labels))])
    worse = one_hot_probs(np.where(labels == CLASSES.index("mel"), CLASSES.index("nv"), labels))
    fake_row(tmp_path / "old", "baseline", labels, one_hot_probs(labels), ids)
    fake_row(tmp_path / "old", "plain_ce", labels, worse, ids)
    old = ablation.collect_ablation(tmp_path / "old", samples=50)
    for row in old["rows"]:  # as results collected over images looked: no unit anywhere
        for split in ("val", "test"):
            for gain in row[f"{split}_minus_baseline"].values():
                del gain["bootstrap_unit"], gain["units"]
    del old["bootstrap"]["unit"]
    fake_row(tmp_path / "new", "baseline", labels, one_hot_probs(labels), ids)
    merged = ablation.merge_results(old, ablation.collect_ablation(tmp_path / "new", samples=50))
    assert merged["bootstrap"]["unit"] == "lesions"
    assert ablation.image_level_rows(merged) == ["plain_ce"]
    kept = next(r for r in merged["rows"] if r["name"] == "plain_ce")
    assert kept["test_minus_baseline"]["balanced_accuracy"]["bootstrap_unit"] == "images"
    assert "plain_ce" in ablation.replacement_verdict(merged)["image_level"]
    assert "] *" in ablation.ablation_markdown(merged)


def test_the_random_init_row_trains_every_stage_end_to_end():
    """The fair ImageNet comparison: random weights with nothing frozen or cached (BatchNorm learning)."""
    config = ablation.row_config("random_init")
    assert config.backbone_weights is None and config.cache_at == "none"
    assert config.phases[0][0] == 7 and sum(epochs for _, epochs, _ in config.phases) >= 15


def test_the_ablation_figure_marks_rows_whose_intervals_resample_images():
    from skinlib.plots import ablation_figure

    def row(name, unit=None):
        gain = {"difference": 0.01, "ci95": [-0.01, 0.03], **({"bootstrap_unit": unit} if unit else {})}
        return {
            "name": name,
            "val_minus_baseline": {"balanced_accuracy": gain},
            "test_minus_baseline": {"balanced_accuracy": gain},
        }

    figure = ablation_figure(
        {"baseline": "baseline", "rows": [row("baseline", "lesions"), row("tta", "lesions"), row("plain_ce")]}
    )
    labels = [tick.get_text() for tick in figure.axes[0].get_yticklabels()]
    assert labels == ["tta", "plain_ce *"] and "too narrow" in figure.axes[0].get_xlabel()


@pytest.mark.skipif(not RESULTS.is_file(), reason="skinlib/shipped/ablation.json not written yet (skinlib ablate)")
def test_what_exercise_4_7_and_how_it_works_say_of_the_combination_row_holds():
    """The prose (book/exercises.md ex-4-7, book/how_it_works.md) describes the lite2_tight_crop row in words; if a
    rerun changes the numbers, this fails and the words must be rewritten."""
    rows = {row["name"]: row for row in json.loads(RESULTS.read_text())["rows"]}
    val = {name: rows[name]["val_minus_baseline"]["balanced_accuracy"] for name in rows}
    both = val["lite2_tight_crop"]
    assert both["difference"] < min(val["lite2_backbone"]["difference"], val["tight_crop"]["difference"])
    assert both["ci95"][0] < 0  # not beyond noise
    assert rows["lite2_tight_crop"]["val"]["expected_calibration_error"] > ablation.ECE_TARGET
    three = ("lite2_backbone", "tight_crop", "lite2_tight_crop")
    for name in three:
        assert rows[name]["test_minus_baseline"]["balanced_accuracy"]["ci95"][0] < 0, name  # no test gain beyond noise
    isic = {name: rows[name]["external"]["isic2017"]["restricted_change"] for name in three}
    assert isic["lite2_backbone"]["ci95"][1] < 0  # Lite2 loses beyond noise
    assert isic["lite2_tight_crop"]["difference"] < 0 < isic["lite2_tight_crop"]["ci95"][1]
    assert isic["tight_crop"]["ci95"][0] < 0 < isic["tight_crop"]["difference"]
