"""`skinlib predict` and `skinlib evaluate --labels` end to end with the shipped models, and bad input."""

import json
import re
import shutil

import cv2
import numpy as np
import pytest

from skinlib.cli import main
from skinlib.data import CLASSES
from skinlib.runtime import DEFAULT_CLASSIFIER, DualStage, Views

pytestmark = pytest.mark.skipif(
    not (DEFAULT_CLASSIFIER / "model.json").is_file(), reason=f"no shipped classifier in {DEFAULT_CLASSIFIER}"
)


@pytest.fixture(scope="module")
def test_sample(split_frame):
    """12 test-split images, two of each of six classes where available, fixed by sorting."""
    part = split_frame[split_frame["split"] == "test"].sort_values("image_id")
    return part.groupby("dx").head(2).iloc[:12]


@pytest.fixture
def labelled_folder(test_sample, tmp_path):
    """The sample's images copied into a folder, and their labels as HAM10000 metadata."""
    images = tmp_path / "images"
    images.mkdir()
    for path in test_sample["image_path"]:
        shutil.copy(path, images)
    labels = tmp_path / "ham.csv"
    test_sample[["lesion_id", "image_id", "dx"]].to_csv(labels, index=False)
    return images, labels


def test_predict_writes_json_and_overlay(test_sample, tmp_path, capsys):
    paths = [str(p) for p in test_sample["image_path"].iloc[:3]]
    assert main(["predict", *paths, "--out", str(tmp_path), "--quiet"]) == 0
    for path in paths:
        stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        record = json.loads((tmp_path / f"{stem}.json").read_text())
        assert set(record["probabilities"]) == set(CLASSES)
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert record["prediction"] in CLASSES and isinstance(record["uncertain"], bool)
        threshold = record["melanoma_referral_threshold"]  # fixed on validation, read from model.json
        assert (
            threshold == json.loads((DEFAULT_CLASSIFIER / "model.json").read_text())["melanoma_referral"]["threshold"]
        )
        assert record["melanoma_referral"] is (record["probabilities"]["mel"] >= threshold)
        assert cv2.imread(str(tmp_path / f"{stem}_overlay.png")).shape == (150, 200, 3)
    assert "wrote 3 prediction(s)" in capsys.readouterr().out


def test_predict_tta_gives_probabilities_too(test_sample, tmp_path):
    path = str(test_sample["image_path"].iloc[0])
    assert main(["predict", path, "--tta", "--out", str(tmp_path), "--quiet"]) == 0
    record = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert record["tta"] is True and sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_predict_bad_inputs_never_crash_the_batch(test_sample, tmp_path, capsys):
    good = test_sample["image_path"].iloc[0]
    rgb = cv2.imread(str(good))
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "unreadable.jpg").write_bytes(b"\xff\xd8\xff junk")
    (cases / "notes.txt.png").write_text("not an image")
    cv2.imwrite(str(cases / "tiny.png"), cv2.resize(rgb, (8, 8)))
    cv2.imwrite(str(cases / "huge.jpg"), cv2.resize(rgb, (8000, 6000)))
    cv2.imwrite(str(cases / "gray.png"), cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(cases / "rgba.png"), cv2.cvtColor(rgb, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(cases / "blank.png"), np.full((150, 200, 3), 200, np.uint8))
    cv2.imwrite(str(cases / "skin.png"), np.full((300, 400, 3), (150, 170, 215), np.uint8))  # plain skin, BGR
    paths = sorted(str(p) for p in cases.iterdir())
    out = tmp_path / "out"
    assert main(["predict", *paths, "--out", str(out), "--quiet"]) == 1  # two files failed
    captured = capsys.readouterr()
    assert "unreadable.jpg" in captured.err and "notes.txt.png" in captured.err
    for name in ("tiny", "huge", "gray", "rgba", "blank"):
        record = json.loads((out / f"{name}.json").read_text())
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    for name in ("blank", "skin"):  # no lesion to see: flagged, whatever the U-Net drew
        record = json.loads((out / f"{name}.json").read_text())
        assert record["lesion_found"] is False and record["uncertain"] is True and record["crop_note"], name


def test_evaluate_labels_in_both_formats(test_sample, labelled_folder, tmp_path, capsys):
    images, ham = labelled_folder
    isic = tmp_path / "isic.csv"
    onehot = {c.upper(): (test_sample["dx"] == c).astype(float).to_numpy() for c in CLASSES}
    import pandas as pd

    pd.DataFrame({"image": test_sample["image_id"].to_numpy(), **onehot}).to_csv(isic, index=False)
    reports = []
    for labels in (ham, isic):
        out = tmp_path / f"{labels.stem}.json"
        assert main(["evaluate", "--images", str(images), "--labels", str(labels), "--out", str(out), "--quiet"]) == 0
        reports.append(json.loads(out.read_text()))
    assert reports[0]["n_samples"] == reports[1]["n_samples"] == len(test_sample)
    assert reports[0]["balanced_accuracy"] == pytest.approx(reports[1]["balanced_accuracy"])
    referral = reports[0]["melanoma_referral"]  # the model's own threshold, not one fitted to this folder
    assert referral["threshold"] == DualStage.load().classifier.referral_threshold(Views.single())
    assert referral["melanomas"] == int((test_sample["dx"] == "mel").sum())
    assert referral == reports[1]["melanoma_referral"]
    printed = capsys.readouterr().out
    assert "balanced_accuracy" in printed and "melanoma referral (P(mel) >=" in printed


def test_evaluate_labels_counts_missing_images(test_sample, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for path in test_sample["image_path"].iloc[:4]:
        shutil.copy(path, images)
    labels = tmp_path / "labels.csv"
    test_sample[["lesion_id", "image_id", "dx"]].to_csv(labels, index=False)
    assert main(["evaluate", "--images", str(images), "--labels", str(labels), "--quiet"]) == 0
    assert f"{len(test_sample) - 4} labelled image(s) are not in" in capsys.readouterr().out


def test_shipped_classifier_reproduces_its_test_metrics(data_dir):
    """Score the shipped pipeline end to end on the whole test split; it must match the committed metrics."""
    from skinlib.evaluation.calibration import apply_temperature
    from skinlib.evaluation.classification import classification_report_dict
    from skinlib.runtime import DualStage
    from skinlib.training.classifier import ClassifierConfig, stage2_inputs

    recorded = json.loads((DEFAULT_CLASSIFIER / "metrics.json").read_text())
    config = ClassifierConfig(
        **{k: v for k, v in recorded["config"].items() if k in ("image_size", "source", "margin")},
        data_dir=str(data_dir),
        cache=False,
    )
    images, labels, _ = stage2_inputs(config, splits=("test",), progress=False)["test"]
    stage_two = DualStage.load().classifier
    report = classification_report_dict(
        labels, apply_temperature(stage_two.raw_probabilities(images), stage_two.temperature)
    )
    expected = recorded["test"]["plain"]
    assert report["n_samples"] == expected["n_samples"] == 1506
    assert report["balanced_accuracy"] == pytest.approx(expected["balanced_accuracy"], abs=0.01)
    assert report["macro_roc_auc"] == pytest.approx(expected["macro_roc_auc"], abs=0.005)


def test_predict_explain_writes_gradcam_and_attention(test_sample, tmp_path):
    path = str(test_sample["image_path"].iloc[0])
    assert main(["predict", path, "--explain", "--out", str(tmp_path), "--quiet"]) == 0
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    for kind in ("gradcam", "attention"):
        picture = cv2.imread(str(tmp_path / f"{stem}_{kind}.png"))
        assert picture is not None and picture.shape[0] == picture.shape[1]  # drawn on the square crop


def test_evaluate_report_writes_figures_and_tables(labelled_folder, tmp_path):
    images, labels = labelled_folder
    report = tmp_path / "report"
    assert main(["evaluate", "--images", str(images), "--labels", str(labels), "--report", str(report), "--quiet"]) == 0
    for name in ("roc", "precision_recall", "confusion_matrix", "confusion_matrix_normalised", "reliability"):
        assert (report / f"{name}.png").is_file() and (report / f"{name}.svg").is_file()
    numbers = json.loads((report / "report.json").read_text())
    assert "confidence_intervals" in numbers and (report / "report.md").is_file()
    assert numbers["melanoma_referral"]["threshold"] == DualStage.load().classifier.referral_threshold(Views.single())
    assert "Melanoma referral flag" in (report / "report.md").read_text()


def test_report_needs_labels(tmp_path, capsys):
    assert main(["evaluate", "--images", str(tmp_path), "--masks", str(tmp_path), "--report", str(tmp_path)]) == 2
    assert "--labels" in capsys.readouterr().err


def test_predict_tta_with_scales(test_sample, tmp_path):
    """Zoomed TTA views: 16 views per image, recorded in the JSON, still a probability vector."""
    path = str(test_sample["image_path"].iloc[0])
    assert main(["predict", path, "--tta", "--tta-scales", "1.0", "1.2", "--out", str(tmp_path), "--quiet"]) == 0
    record = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert record["tta"] is True and record["tta_scales"] == [1.0, 1.2]
    assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def _without_augmented_tta(folder):
    spec = json.loads((folder / "model.json").read_text())
    spec.pop("tta_augmented", None)
    (folder / "model.json").write_text(json.dumps(spec))


def test_predict_augmented_tta_needs_its_fitted_temperature(test_sample, tmp_path, capsys):
    """Augmented views have their own temperature: a folder without one is refused with the fix; with one,
    predict averages the 16 views and records which views it used."""
    from skinlib.workflows.posthoc import record_fit

    folder = tmp_path / "classifier"
    shutil.copytree(DEFAULT_CLASSIFIER, folder)
    _without_augmented_tta(folder)
    path = str(test_sample["image_path"].iloc[0])
    out = tmp_path / "out"
    argv = ["predict", path, "--tta", "--tta-augmented", "--model", str(folder), "--out", str(out), "--quiet"]
    assert main(argv) == 2
    assert "skinlib fit-tta" in capsys.readouterr().err
    record_fit(
        folder,
        "tta_augmented",
        {"views": 16, "seed": 0, "temperature": 1.0, "recommended": True},
        {"command": "by hand"},
    )
    assert main(argv) == 0
    record = json.loads(next(out.glob("*.json")).read_text())
    assert record["tta"] is True and record["tta_views"] == "16 augmented" and "tta_scales" not in record
    assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    from skinlib.data.images import read_image

    pipeline = DualStage.load(classifier_dir=folder)
    stage = pipeline.classifier
    inputs = pipeline.prepare([read_image(path)])[2]
    by_hand = stage.raw_probabilities(inputs, Views.augmented())
    assert not np.allclose(by_hand, stage.raw_probabilities(inputs, Views.dihedral()), atol=1e-4)
    assert record["probabilities"]["nv"] == pytest.approx(float(by_hand[0, CLASSES.index("nv")]), abs=1e-4)


def test_evaluate_report_resamples_lesions_when_the_labels_name_them(test_sample, labelled_folder, tmp_path, capsys):
    """HAM10000 labels carry lesion ids: the intervals resample lesions, the image-level ones printed beside them."""
    images, ham = labelled_folder
    assert (
        main(["evaluate", "--images", str(images), "--labels", str(ham), "--report", str(tmp_path / "ham"), "--quiet"])
        == 0
    )
    printed = capsys.readouterr().out
    lesions = test_sample["lesion_id"].nunique()
    assert f"bootstrap over lesions ({lesions} lesions)" in printed and "images: [" in printed
    numbers = json.loads((tmp_path / "ham" / "report.json").read_text())
    assert numbers["bootstrap"]["unit"] == "lesions" and numbers["bootstrap"]["units"] == lesions
    assert "confidence_intervals_image_level" in numbers
    isic = tmp_path / "isic.csv"  # ISIC ground truth has no lesion ids: images are resampled, and it says so
    import pandas as pd

    pd.DataFrame(
        {
            "image": test_sample["image_id"].to_numpy(),
            **{c.upper(): (test_sample["dx"] == c).astype(float).to_numpy() for c in CLASSES},
        }
    ).to_csv(isic, index=False)
    assert (
        main(
            ["evaluate", "--images", str(images), "--labels", str(isic), "--report", str(tmp_path / "isic"), "--quiet"]
        )
        == 0
    )
    assert "bootstrap over images (no lesion ids in the labels)" in capsys.readouterr().out


def test_predict_with_a_prior_answers_for_that_population_and_keeps_the_flag(test_sample, tmp_path):
    paths = [str(p) for p in test_sample["image_path"].iloc[:4]]
    assert main(["predict", *paths, "--out", str(tmp_path / "plain"), "--quiet"]) == 0
    assert main(["predict", *paths, "--out", str(tmp_path / "prior"), "--prior", "training", "--quiet"]) == 0
    assert main(["predict", *paths, "--out", str(tmp_path / "rare"), "--prior", "mel=0.01", "--quiet"]) == 0
    spec = json.loads((DEFAULT_CLASSIFIER / "model.json").read_text())["class_prior"]
    for path in paths:
        name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".json"
        plain, prior, rare = (
            json.loads((tmp_path / folder / name).read_text()) for folder in ("plain", "prior", "rare")
        )
        p = np.array([plain["probabilities"][c] for c in CLASSES])
        expected = p * np.array(spec["training"]) / np.array(spec["model"])
        assert [prior["probabilities"][c] for c in CLASSES] == pytest.approx(expected / expected.sum(), abs=1e-5)
        assert prior["class_prior"] == "training" and "as trained" in plain["class_prior"]
        assert rare["probabilities"]["mel"] < prior["probabilities"]["mel"]  # 1 % melanoma vs 11 % in training
        assert prior["melanoma_referral"] == plain["melanoma_referral"] == rare["melanoma_referral"]


@pytest.mark.parametrize(
    "value, message",
    [
        ("mel=abc", "expected 'training' or CLASS=SHARE"),
        ("melanoma=0.1", "unknown class"),
        ("mel=0.6,nv=0.5", "leaving nothing"),
    ],
)
def test_a_bad_prior_is_a_usage_error_that_names_the_option(test_sample, tmp_path, capsys, value, message):
    path = str(test_sample["image_path"].iloc[0])
    assert main(["predict", path, "--out", str(tmp_path), "--prior", value, "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "--prior" in error and message in error


def test_a_classifier_without_a_recorded_prior_says_how_to_fit_one(test_sample, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(DEFAULT_CLASSIFIER, folder)
    spec = json.loads((folder / "model.json").read_text())
    spec.pop("class_prior", None)
    (folder / "model.json").write_text(json.dumps(spec))
    path = str(test_sample["image_path"].iloc[0])
    assert (
        main(
            ["predict", path, "--out", str(tmp_path / "out"), "--model", str(folder), "--prior", "training", "--quiet"]
        )
        == 2
    )
    assert "skinlib fit-prior" in capsys.readouterr().err


@pytest.mark.data
def test_evaluate_on_a_collection_of_three_classes_gives_both_readings(isic2017_dir, tmp_path, capsys):
    """30 ISIC 2017 images (10 each of mel, bkl, nv): the absent classes named, the 7-class answer as is and the
    one restricted to the classes present, each headed; no NaN printed or written; the referral flag as before."""
    import pandas as pd

    labels = pd.read_csv(isic2017_dir / "ISIC2017_labels.csv").sort_values("image_id").groupby("dx").head(10)
    images = tmp_path / "images"
    images.mkdir()
    for image_id in labels["image_id"]:
        shutil.copy(isic2017_dir / "images" / f"{image_id}.jpg", images)
    csv, out, report = tmp_path / "labels.csv", tmp_path / "scores.json", tmp_path / "report"
    labels.to_csv(csv, index=False)
    argv = ["evaluate", "--images", str(images), "--labels", str(csv), "--report", str(report), "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    printed = capsys.readouterr().out
    scores = json.loads(out.read_text())
    went = scores["predictions_to_absent_classes"]["count"]
    assert "dual-stage pipeline on 30 image(s):" in printed
    assert (
        f"7-class answer as is (4 of 7 classes absent from the labels: akiec, bcc, df, vasc; {went} prediction(s)"
        in printed
    )
    assert "restricted to the classes present (bkl, mel, nv; probabilities renormalised over them):" in printed
    assert not re.search(r"\bnan\b", printed, re.IGNORECASE), printed
    assert not re.search(r"^\s+(akiec|bcc|df|vasc)\s", printed, re.MULTILINE), "a row for an absent class"
    assert "melanoma referral (P(mel) >=" in printed and "unlike the training images" in printed
    assert "bootstrap over images (no lesion ids in the labels)" in printed
    assert scores["classes_absent"] == ["akiec", "bcc", "df", "vasc"] and set(scores["per_class"]) == {
        "bkl",
        "mel",
        "nv",
    }
    restricted = scores["restricted_to_present_classes"]
    assert restricted["n_samples"] == 30 and set(restricted["per_class"]) == {"bkl", "mel", "nv"}
    assert sum(map(sum, restricted["confusion_matrix"])) == 30 and "confidence_intervals" in restricted
    assert scores["melanoma_referral"]["melanomas"] == 10
    json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in {out}"))
    json.loads((report / "report.json").read_text(), parse_constant=lambda name: pytest.fail(f"{name} in report.json"))
    for name in ("confusion_matrix", "confusion_matrix_restricted", "roc_restricted", "reliability_restricted"):
        assert (report / f"{name}.png").is_file() and (report / f"{name}.svg").is_file()
    text = (report / "report.md").read_text()
    assert "absent: akiec, bcc, df, vasc" in text and "## Restricted to the classes present (bkl, mel, nv;" in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
