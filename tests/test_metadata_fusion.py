"""Image + metadata fusion: the naive-Bayes prior by hand, missing and unknown values, the weight fit,
the shipped prior reproduced from the training split, and `predict` / `evaluate` with metadata."""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from skinlib.cli import main
from skinlib.data import CLASSES
from skinlib.models.metadata_prior import MetadataPrior, fit_weight, fuse, metadata_values
from skinlib.runtime import DEFAULT_CLASSIFIER, StageTwo

shipped = pytest.mark.skipif(
    not (DEFAULT_CLASSIFIER / "metadata_prior.json").is_file(),
    reason=f"no metadata prior shipped in {DEFAULT_CLASSIFIER} (run skinlib fit-metadata)",
)


def _frame(rows):
    return pd.DataFrame(rows, columns=["lesion_id", "label", "age", "sex", "localization"])


def test_prior_is_the_smoothed_count_ratio_by_hand():
    # class 0: two lesions on the back, one on the face (lesion L1 photographed twice); class 1: one on the face
    frame = _frame(
        [
            ("L1", 0, 40, "male", "back"),
            ("L1", 0, 40, "male", "back"),
            ("L2", 0, 45, "male", "back"),
            ("L3", 0, 70, "female", "face"),
            ("L4", 1, 72, "female", "face"),
        ]
    )
    prior = MetadataPrior.fit(frame, classes=("a", "b"))
    assert prior.counts["site"] == {"back": [2, 0], "face": [1, 1]}  # L1 counted once
    # Laplace +1: p(back|a) = 3/5, p(back|b) = 1/3; p(back) = their mean
    p_back = (3 / 5 + 1 / 3) / 2
    assert prior.tables["site"]["back"] == pytest.approx([math.log(0.6 / p_back), math.log((1 / 3) / p_back)])
    assert set(prior.tables["age"]) == {"40s", "70s"}


def test_values_read_ham_and_isic_columns_and_treat_unknown_as_missing():
    ham = pd.DataFrame(
        {
            "age": [47, np.nan, 95, -3],
            "sex": ["male", "unknown", "FEMALE ", None],
            "localization": ["back", "unknown", "Lower Extremity", ""],
        }
    )
    values = metadata_values(ham)
    assert values.to_dict("list") == {
        "age": ["40s", None, "80s", None],
        "sex": ["male", None, "female", None],
        "site": ["back", None, "lower extremity", None],
    }
    isic = pd.DataFrame({"age_approx": [55], "sex": ["female"], "anatom_site_general": ["posterior torso"]})
    assert metadata_values(isic).iloc[0].tolist() == ["50s", "female", "posterior torso"]
    assert metadata_values(pd.DataFrame({"other": [1]})).iloc[0].tolist() == [None, None, None]


def test_missing_and_unseen_values_add_nothing_and_are_reported():
    frame = _frame([("L1", 0, 40, "male", "back"), ("L2", 1, 70, "female", "face")])
    prior = MetadataPrior.fit(frame, classes=("a", "b"))
    values = metadata_values(pd.DataFrame({"sex": ["male", None], "localization": ["back", "posterior torso"]}))
    ratios, usage = prior.log_ratios(values)
    assert ratios[0] == pytest.approx(np.add(prior.tables["sex"]["male"], prior.tables["site"]["back"]))
    assert ratios[1] == pytest.approx([0.0, 0.0])
    assert usage["site"] == {"used": 1, "ignored_values": ["posterior torso"]}
    assert prior.used_fields(values) == [{"sex": "male", "site": "back"}, None]


def test_fuse_with_weight_zero_is_the_image_alone_and_one_is_bayes():
    probs = np.array([[0.5, 0.5], [0.9, 0.1]])
    ratios = np.log([[2.0, 0.5], [1.0, 1.0]])
    assert fuse(probs, ratios, 0.0) == pytest.approx(probs)
    assert fuse(probs, ratios, 1.0)[0] == pytest.approx([0.8, 0.2])  # 0.5*2 : 0.5*0.5


def test_weight_fit_recovers_the_bayes_weight_on_data_drawn_from_the_model():
    """Labels drawn from uninformative image probabilities times a known metadata likelihood: w = 1 is right."""
    rng = np.random.default_rng(0)
    ratios = rng.normal(0, 1.0, size=(4000, 3))
    probs = np.full((4000, 3), 1 / 3)
    truth = fuse(probs, ratios, 1.0)
    labels = np.array([rng.choice(3, p=p) for p in truth])
    assert fit_weight(labels, probs, ratios) == pytest.approx(1.0, abs=0.15)
    assert fit_weight(labels, probs, rng.normal(0, 1.0, size=(4000, 3))) <= 0.15  # noise: (almost) no weight


def test_prior_round_trips_and_refuses_a_wrong_file(tmp_path):
    prior = MetadataPrior.fit(
        _frame([("L1", 0, 40, "male", "back"), ("L2", 1, 70, "female", "face")]), classes=("a", "b")
    )
    loaded = MetadataPrior.from_json(prior.to_json(tmp_path / "prior.json"))
    assert loaded.tables == prior.tables and loaded.classes == ("a", "b")
    (tmp_path / "bad.json").write_text(json.dumps({"kind": "classifier"}))
    with pytest.raises(ValueError, match="not a metadata prior"):
        MetadataPrior.from_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="no metadata columns"):
        MetadataPrior.fit(pd.DataFrame({"label": [0], "lesion_id": ["L1"]}))


@shipped
def test_shipped_prior_is_counted_from_the_training_split(data_dir):
    from skinlib.training.classifier import config_from_metrics
    from skinlib.workflows.metadata_fusion import training_frame

    config = config_from_metrics(DEFAULT_CLASSIFIER / "metrics.json", data_dir=str(data_dir))
    recounted = MetadataPrior.fit(training_frame(config))
    assert recounted.counts == StageTwo.load().metadata_prior.counts
    spec = json.loads((DEFAULT_CLASSIFIER / "model.json").read_text())["metadata_fusion"]
    recorded = json.loads((DEFAULT_CLASSIFIER / "metrics.json").read_text())["metadata_fusion"]
    assert spec["weight"] == recorded["plain"]["weight"] and 0 <= spec["weight"] <= 2
    assert recorded["command"].startswith("skinlib fit-metadata")


@shipped
def test_shipped_prior_says_what_dermatology_says():
    """Basal cell carcinoma and actinic keratosis are diseases of older, sun-exposed skin (the face); nevi belong
    to the young; dermatofibromas sit on the legs."""
    prior = StageTwo.load().metadata_prior

    def ratios(**fields):
        return dict(
            zip(CLASSES, prior.log_ratios(metadata_values(pd.DataFrame({k: [v] for k, v in fields.items()})))[0][0])
        )

    old, young = ratios(age=75), ratios(age=25)
    face, leg = ratios(localization="face"), ratios(localization="lower extremity")
    assert old["bcc"] > 0 > young["bcc"] and young["nv"] > 0 > old["nv"]
    assert face["akiec"] > 0 > leg["akiec"] and leg["df"] > 0 > face["df"]


@pytest.fixture(scope="module")
def sample(split_frame):
    part = split_frame[split_frame["split"] == "test"].sort_values("image_id")
    return part.groupby("dx").head(2).iloc[:12]


@shipped
def test_predict_with_metadata_shifts_probabilities_and_says_so(sample, tmp_path):
    path = str(sample["image_path"].iloc[0])
    assert main(["predict", path, "--out", str(tmp_path / "plain"), "--quiet"]) == 0
    assert (
        main(
            [
                "predict",
                path,
                "--out",
                str(tmp_path / "meta"),
                "--quiet",
                "--age",
                "75",
                "--sex",
                "male",
                "--site",
                "face",
            ]
        )
        == 0
    )
    stem = sample["image_id"].iloc[0]
    plain = json.loads((tmp_path / "plain" / f"{stem}.json").read_text())
    fused = json.loads((tmp_path / "meta" / f"{stem}.json").read_text())
    assert plain["metadata_used"] is None
    assert fused["metadata_used"] == {"age": "70s", "sex": "male", "site": "face"}
    assert fused["probabilities"]["bcc"] > plain["probabilities"]["bcc"]
    spec = json.loads((DEFAULT_CLASSIFIER / "model.json").read_text())["metadata_fusion"]
    assert fused["melanoma_referral_threshold"] == spec["melanoma_referral"]["threshold"]
    table = tmp_path / "other.csv"  # metadata for another image only: this one is classified on its own
    table.write_text("image_id,age,sex,localization\nISIC_0000000,75,male,face\n")
    assert main(["predict", path, "--out", str(tmp_path / "other"), "--quiet", "--metadata", str(table)]) == 0
    alone = json.loads((tmp_path / "other" / f"{stem}.json").read_text())
    assert alone["metadata_used"] is None and alone["probabilities"] == plain["probabilities"]
    assert alone["melanoma_referral_threshold"] == plain["melanoma_referral_threshold"]


@shipped
def test_evaluate_with_metadata_reads_the_labels_csv(sample, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for path in sample["image_path"]:
        shutil.copy(path, images)
    labels = tmp_path / "ham.csv"
    sample[["lesion_id", "image_id", "dx", "age", "sex", "localization"]].to_csv(labels, index=False)
    out = tmp_path / "m.json"
    assert (
        main(["evaluate", "--images", str(images), "--labels", str(labels), "--metadata", "--out", str(out), "--quiet"])
        == 0
    )
    report = json.loads(out.read_text())
    assert report["metadata_fusion"]["images_with_metadata"] == len(sample)
    assert "+ metadata" in capsys.readouterr().out


def test_metadata_is_refused_clearly(sample, tmp_path, capsys):
    path = str(sample["image_path"].iloc[0])
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,colour\nx,red\n")
    assert main(["predict", path, "--out", str(tmp_path), "--metadata", str(bad)]) == 2
    assert "no metadata columns" in capsys.readouterr().err
    assert main(["predict", path, "--out", str(tmp_path), "--metadata", str(bad), "--age", "40"]) == 2
    assert "not both" in capsys.readouterr().err
    folder = tmp_path / "classifier"  # a model folder without a fitted prior
    shutil.copytree(DEFAULT_CLASSIFIER, folder)
    spec = json.loads((folder / "model.json").read_text())
    spec.pop("metadata_fusion", None)
    (folder / "model.json").write_text(json.dumps(spec))
    assert main(["predict", path, "--out", str(tmp_path), "--model", str(folder), "--age", "40"]) == 2
    assert "skinlib fit-metadata" in capsys.readouterr().err


def test_prior_figure_draws_the_fields_and_hides_rare_sites():
    from skinlib.plots import metadata_prior_figure

    rows = [(f"L{i}", i % 2, 30 + 40 * (i % 2), "male", "back") for i in range(30)] + [("R", 1, 70, "male", "ear")]
    prior = MetadataPrior.fit(_frame(rows), classes=("a", "b"))
    figure = metadata_prior_figure(prior, min_lesions=20)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["age", "site", "sex"]
    site_axis = figure.axes[1]
    assert [t.get_text() for t in site_axis.get_yticklabels()] == ["back"]  # "ear" has 1 lesion
    assert "1 site(s)" in figure._suptitle.get_text()


@shipped
def test_fit_metadata_cli_quick_check_writes_nothing(quick_fit, tmp_path, capsys):
    out = quick_fit("fit-metadata")
    assert "plain: weight" in out and "test balanced accuracy" in out
    assert main(["fit-metadata", "--model", str(tmp_path / "empty")]) == 2
    assert "metrics.json is missing" in capsys.readouterr().err
