"""The ablation's external column: each row scored on a collection from elsewhere, read after the choice."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from skinlib.data import CLASSES
from skinlib.data.errors import DataError
from skinlib.training.classifier import PREDICTIONS_FILE
from skinlib.workflows import ablation, external

MEL, BKL, NV = (CLASSES.index(c) for c in ("mel", "bkl", "nv"))


def fake_predictions(out, name, temperature=None):
    run = ablation.row_dir(out, name) / "run"
    run.mkdir(parents=True, exist_ok=True)
    arrays = {"val_plain": np.ones((1, 7)) / 7}
    if temperature is not None:
        arrays["temperature_plain"] = np.float64(temperature)
    np.savez(run / PREDICTIONS_FILE, **arrays)


def fake_external(out, name, labels, probs, collection="isic2017"):
    path = external.external_file(out, name, collection)
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = np.array([f"ISIC_{i:07d}" for i in range(len(labels))])
    np.savez(path, raw=probs.astype(np.float32), labels=labels, image_ids=ids)


def three_class_probs(labels, right, seed=0):
    """Probabilities over 7 classes that name the true class for the first `right` share of each class; the rest
    go to another present class, with a little mass on the absent classes."""
    rng = np.random.default_rng(seed)
    probs = np.full((len(labels), len(CLASSES)), 0.01)
    for i, label in enumerate(labels):
        others = [k for k in (MEL, BKL, NV) if k != label]
        probs[i, label if rng.random() < right else others[i % 2]] = 0.9
    return probs / probs.sum(axis=1, keepdims=True)


@pytest.fixture
def labels():
    return np.repeat([MEL, BKL, NV], 40)


def test_external_scores_read_both_ways_with_intervals_over_images(labels):
    perfect = three_class_probs(labels, 1.0)
    scores = external.external_scores(labels, perfect, samples=200)
    assert scores["classes_present"] == ["bkl", "mel", "nv"]
    assert scores["balanced_accuracy_restricted"] == pytest.approx(1.0)
    assert scores["balanced_accuracy_as_is"] == pytest.approx(1.0)
    assert scores["bootstrap"]["unit"] == "images"
    # a model that answers an absent class for every melanoma loses them as is, not when restricted
    absent = perfect.copy()
    absent[labels == MEL, CLASSES.index("bcc")] = 5.0
    absent /= absent.sum(axis=1, keepdims=True)
    scores = external.external_scores(labels, absent, samples=200)
    assert scores["balanced_accuracy_as_is"] == pytest.approx(2 / 3)
    assert scores["balanced_accuracy_restricted"] == pytest.approx(1.0)
    assert scores["predicted_absent_share"] == pytest.approx(1 / 3)
    low, high = scores["balanced_accuracy_as_is_ci95"]
    assert low <= 2 / 3 <= high


def test_a_row_worse_than_the_baseline_elsewhere_shows_a_negative_paired_difference(labels):
    scores = external.external_scores(
        labels, three_class_probs(labels, 0.5), three_class_probs(labels, 1.0), samples=200
    )
    gain = scores["restricted_change"]
    assert gain["against"] == "baseline"
    assert gain["difference"] < 0 and gain["ci95"][1] < 0


def test_columns_join_the_results_and_never_change_the_replacement_verdict(tmp_path, labels):
    out = tmp_path / "runs"
    for name, right in (("baseline", 0.8), ("weighted_ce", 0.4)):
        fake_predictions(out, name, temperature=1.0)
        fake_external(out, name, labels, three_class_probs(labels, right))
    fake_predictions(out, "metadata", temperature=1.0)
    gain = {"difference": 0.05, "ci95": [0.01, 0.09], "bootstrap_unit": "lesions"}
    results = {
        "rows": [
            {"name": n, "tta": False, "val": {"expected_calibration_error": 0.03}, "val_minus_baseline": {}}
            for n in ("baseline", "weighted_ce", "metadata")
        ]
    }
    for row in results["rows"]:
        row["val_minus_baseline"]["balanced_accuracy"] = dict(
            gain, difference=0.0 if row["name"] == "baseline" else 0.05
        )
    before = ablation.replacement_verdict(json.loads(json.dumps(results)))
    joined = external.with_external_columns(results, out, samples=100)
    assert joined["external"]["collections"] == ["isic2017"]
    rows = {row["name"]: row for row in joined["rows"]}
    assert rows["weighted_ce"]["external"]["isic2017"]["restricted_change"]["difference"] < 0
    assert "not_applicable" in rows["metadata"]["external"]["isic2017"]
    assert ablation.replacement_verdict(joined) == before  # validation chooses; the collection never does
    assert ablation.external_cell(rows["weighted_ce"], "isic2017").startswith("0.")
    assert ablation.external_cell(rows["metadata"], "isic2017") == "n/a"
    assert ablation.external_cell({"name": "x"}, "isic2017") == "–"


def test_the_row_temperature_is_the_one_fitted_on_ham_validation(tmp_path, labels):
    out = tmp_path / "runs"
    fake_predictions(out, "baseline", temperature=2.0)
    assert external.row_temperature("baseline", out) == 2.0
    fake_predictions(out, "tta_scales")  # written before temperatures were recorded, views with no model temperature
    with pytest.raises(DataError, match="rerun the row"):
        external.row_temperature("tta_scales", out)


def test_a_missing_folder_or_a_partly_missing_collection_is_named(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        external.ExternalCollection.of(tmp_path / "nowhere", tmp_path / "labels.csv")
    images = tmp_path / "isic" / "images"
    images.mkdir(parents=True)
    labels = tmp_path / "isic" / "labels.csv"
    pd.DataFrame({"image_id": ["ISIC_0000001"], "dx": ["mel"]}).to_csv(labels, index=False)
    collection = external.ExternalCollection.of(images, labels)
    assert collection.name == "isic"
    with pytest.raises(DataError, match="ISIC_0000001"):
        external.PreparedInputs(collection, segmenter=object())


def test_a_collection_is_named_after_the_folder_that_holds_its_images_by_every_command(tmp_path, capsys):
    from skinlib.cli import _external_masks
    from skinlib.data.layout import collection_name

    (tmp_path / "clinic_b" / "images").mkdir(parents=True)
    (tmp_path / "clinic_b" / "masks").mkdir()
    (tmp_path / "loose_photos").mkdir()
    assert collection_name(tmp_path / "clinic_b" / "images") == "clinic_b"
    assert collection_name(tmp_path / "loose_photos") == "loose_photos"
    folders = [tmp_path / "clinic_b" / "images", tmp_path / "clinic_b" / "masks"]
    assert _external_masks(folders, {"candidate": "runs/unet"})[0] == "clinic_b"  # skinlib shifts --external
    labels = tmp_path / "labels.csv"
    labels.write_text("image_id,dx\n")
    assert external.ExternalCollection.of(folders[0], labels).name == "clinic_b"  # skinlib ablate --external


@pytest.mark.data
@pytest.mark.slow
def test_a_row_is_scored_on_real_external_images(tmp_path, isic2017_dir):
    """Six ISIC 2017 images through the shipped U-Net and classifier as the baseline row (single view)."""
    from skinlib.shipped import CLASSIFIER

    frame = pd.read_csv(isic2017_dir / "ISIC2017_labels.csv").groupby("dx").head(2)
    images = tmp_path / "isic2017" / "images"
    images.mkdir(parents=True)
    for image_id in frame["image_id"]:
        shutil.copy(isic2017_dir / "images" / f"{image_id}.jpg", images)
    frame[["image_id", "dx"]].to_csv(tmp_path / "isic2017" / "labels.csv", index=False)
    out = tmp_path / "runs"
    shutil.copytree(CLASSIFIER, ablation.model_dir(out, "baseline"))
    fake_predictions(out, "baseline")  # no recorded temperature: the model's own for single views
    prepared = external.PreparedInputs(
        external.ExternalCollection.of(images, tmp_path / "isic2017" / "labels.csv"), progress=False
    )
    path = external.score_row_externally("baseline", out, prepared)
    with np.load(path) as saved:
        assert saved["raw"].shape == (6, len(CLASSES)) and np.allclose(saved["raw"].sum(axis=1), 1, atol=1e-4)
        assert sorted(saved["image_ids"]) == sorted(frame["image_id"])
    scores = external.collect_external(out, ["baseline"], "isic2017", samples=50)["baseline"]
    assert scores["images"] == 6 and 0 <= scores["balanced_accuracy_restricted"] <= 1


def test_the_colour_cast_column_compares_each_cast_with_no_cast_on_the_collection(labels):
    """A classifier that reads the red channel: a warm cast changes its answers on the collection, no cast not."""
    from types import SimpleNamespace

    from skinlib.evaluation.robustness import COLOUR_CASTS

    inputs = np.zeros((len(labels), 4, 4, 3), np.uint8)
    inputs[..., 0] = np.where(labels == MEL, 120, 80)[:, None, None]  # red tells melanoma apart

    class RedReader:
        def probabilities(self, images):
            red = images[..., 0].mean(axis=(1, 2))
            probs = np.full((len(images), len(CLASSES)), 0.01)
            probs[red > 100, MEL] = 0.9  # a warm cast pushes the other classes' red over the line
            probs[red <= 100, NV] = 0.9
            return probs / probs.sum(axis=1, keepdims=True)

    prepared = SimpleNamespace(
        collection=SimpleNamespace(name="isic2017"), labels=labels, inputs_for=lambda classifier: inputs
    )
    casts = {name: COLOUR_CASTS[name] for name in ("none", "strong warm")}
    column = external.external_cast_scores(RedReader(), prepared, casts, samples=100)
    assert column["collection"] == "isic2017" and "restricted_change" not in column["casts"]["none"]
    change = column["casts"]["strong warm"]["restricted_change"]
    assert change["against"] == "'none' cast" and change["difference"] < 0


def test_a_tta_row_keeps_its_own_external_file_apart_from_the_model_it_reuses(tmp_path):
    """The plain TTA row shares its HAM10000 predictions with the baseline's run, but not its external scores."""
    assert ablation.row_dir(tmp_path, "tta") == ablation.row_dir(tmp_path, "baseline")
    assert external.external_file(tmp_path, "tta", "isic2017") != external.external_file(
        tmp_path, "baseline", "isic2017"
    )
