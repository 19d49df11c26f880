"""The ablation study: one change per row, paired differences to the baseline, the committed results."""

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from skinlib.data import CLASSES
from skinlib.predict import DEFAULT_CLASSIFIER
from skinlib.training import ablation
from skinlib.training.classifier import PREDICTIONS_FILE

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "models" / "ablation.json"


def fake_row(out, name, labels, probs, ids, config=None):
    """A finished row: predictions (val = test here) and the model's metrics.json."""
    run = ablation.row_dir(out, name) / "run"
    run.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split in ("val", "test"):
        arrays.update({f"{split}_plain": probs, f"{split}_tta": probs, f"{split}_labels": labels,
                       f"{split}_image_ids": ids})
    np.savez(run / PREDICTIONS_FILE, **arrays)
    model = ablation.model_dir(out, name)
    model.mkdir(parents=True, exist_ok=True)
    (model / "metrics.json").write_text(json.dumps({"command": f"train {name}", "train_seconds": 1.0,
                                                    "config": config or {}}))


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
    base_flags = without_folders(ablation.train_command("baseline", "out"))
    for row in ablation.ROWS:
        flags = without_folders(ablation.train_command(row.trains_from or row.name, "out"))
        added = flags[len(base_flags):]
        assert flags[: len(base_flags)] == base_flags, row.name
        assert added == list(row.flags), row.name
        assert len([a for a in row.flags if a.startswith("--")]) <= 1, f"{row.name} changes more than one thing"


def test_collect_reports_paired_differences_with_intervals(tmp_path, labels):
    ids = np.array([f"ISIC_{i:07d}" for i in range(len(labels))])
    perfect = one_hot_probs(labels)
    worse = one_hot_probs(np.where(labels == CLASSES.index("mel"), CLASSES.index("nv"), labels))
    fake_row(tmp_path, "baseline", labels, perfect, ids)
    fake_row(tmp_path, "plain_ce", labels, worse, ids)
    results = ablation.collect_ablation(tmp_path, samples=100)
    rows = {row["name"]: row for row in results["rows"]}
    assert set(rows) == {"baseline", "tta", "plain_ce"}  # tta reuses the baseline's predictions
    assert rows["baseline"]["test_minus_baseline"]["balanced_accuracy"] == {"difference": 0.0, "ci95": [0.0, 0.0]}
    diff = rows["plain_ce"]["test_minus_baseline"]["balanced_accuracy"]
    assert diff["difference"] == pytest.approx(-1 / len(CLASSES))  # melanoma recall 1 -> 0
    assert diff["ci95"][0] <= diff["difference"] <= diff["ci95"][1] < 0
    assert rows["plain_ce"]["val_minus_baseline"]["balanced_accuracy"]["difference"] == pytest.approx(-1 / len(CLASSES))
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
    with pytest.raises(ValueError, match="not trained with the baseline recipe.*loss"):
        ablation.baseline_from_model(model, tmp_path / "out")


def test_baseline_recipe_comes_from_the_baseline_flags():
    config = ablation.baseline_config()
    assert (config["image_size"], config["cache_at"]) == (128, "stage3_out")
    assert config["phases"] == [[0, 3, 1e-3], [2, 4, 5e-4], [4, 8, 2e-4]]
    assert "data_dir" not in config


def test_the_shipped_classifier_was_trained_with_the_baseline_recipe():
    """The study reuses models/classifier as its baseline row; that is only fair if the recipes agree."""
    recorded = json.loads((DEFAULT_CLASSIFIER / "metrics.json").read_text())["config"]
    assert ablation.recipe_differences(recorded) == {}
    assert ablation.recipe_differences({**recorded, "dropout": 0.5}) == {"dropout": 0.5}


def test_cli_refuses_unknown_rows(capsys):
    from skinlib.cli import main

    assert main(["ablate", "--rows", "no_such_row"]) == 2
    assert "choose from baseline" in capsys.readouterr().err


@pytest.mark.skipif(not RESULTS.is_file(), reason="models/ablation.json not written yet (skinlib ablate)")
def test_committed_results_are_complete_and_agree_with_the_shipped_model():
    """The book reads this JSON: every row present, each with one command, its baseline = the shipped model."""
    results = json.loads(RESULTS.read_text())
    rows = {row["name"]: row for row in results["rows"]}
    assert set(rows) == set(ablation.ROW_NAMES)
    shipped = json.loads((REPO / "models" / "classifier" / "metrics.json").read_text())
    for key in ("balanced_accuracy", "macro_roc_auc", "accuracy"):
        assert rows["baseline"]["test"][key] == pytest.approx(shipped["test"]["plain"][key], abs=1e-6), key
        assert rows["tta"]["test"][key] == pytest.approx(shipped["test"]["tta"][key], abs=1e-6), key
        assert rows["baseline"]["val"][key] == pytest.approx(shipped["val"]["plain"][key], abs=1e-6), key
    for row in rows.values():
        assert shlex.split(row["command"])[:2] == ["skinlib", "ablate"] and row["name"] in row["command"]
        for split in ("val", "test"):
            low, high = row[f"{split}_minus_baseline"]["balanced_accuracy"]["ci95"]
            assert low <= row[f"{split}_minus_baseline"]["balanced_accuracy"]["difference"] <= high
        assert row["test"]["balanced_accuracy"] == pytest.approx(
            rows["baseline"]["test"]["balanced_accuracy"] + row["test_minus_baseline"]["balanced_accuracy"]["difference"])


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

    assert main(["ablate", "--out", str(tmp_path / "rerun"), "--collect-only", "--update",
                 "--results", str(results)]) == 0
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

    assert main(["ablate", "--out", str(tmp_path / "rerun"), "--collect-only", "--update",
                 "--results", str(results)]) == 2
    assert "baseline's val scores" in capsys.readouterr().err
    assert main(["ablate", "--out", str(tmp_path / "rerun"), "--collect-only", "--update",
                 "--results", str(tmp_path / "missing.json")]) == 2
