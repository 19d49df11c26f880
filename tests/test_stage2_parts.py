"""Stage-2 building blocks: labels of any format, temperature scaling, dihedral views, feature batches."""

import json

import numpy as np
import pytest

from skinlib.data import DataError
from skinlib.data.labels import read_labels
from skinlib.evaluation.calibration import apply_temperature, fit_temperature, negative_log_likelihood
from skinlib.runtime.views import DIHEDRAL, dihedral
from skinlib.training.features import FeatureSequence


def test_ham_and_isic_label_files(tmp_path):
    ham = tmp_path / "ham.csv"
    ham.write_text("lesion_id,image_id,dx\nL1,ISIC_1,mel\nL2,ISIC_2,nv\n")
    isic = tmp_path / "isic.csv"
    isic.write_text(
        "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,1.0,0.0,0.0,0.0,0.0,0.0,0.0\nISIC_2,0.0,0.0,0.0,0.0,0.0,0.0,1.0\n"
    )
    assert read_labels(ham)[["image_id", "dx"]].values.tolist() == [["ISIC_1", "mel"], ["ISIC_2", "nv"]]
    frame = read_labels(isic)
    assert frame["dx"].tolist() == ["mel", "vasc"] and frame["label"].tolist() == [4, 6]
    assert read_labels(ham)["lesion_id"].tolist() == ["L1", "L2"]
    no_lesions = tmp_path / "isic2017.csv"  # image_id and dx only, like ISIC 2017: no lesion ids made up
    no_lesions.write_text("image_id,dx,isic2017_part\nISIC_1,mel,train\nISIC_2,bkl,validation\n")
    with pytest.warns(UserWarning, match="no lesion_id column"):
        frame = read_labels(no_lesions)
    assert "lesion_id" not in frame and frame["dx"].tolist() == ["mel", "bkl"]


def test_bad_label_files(tmp_path):
    weird = tmp_path / "weird.csv"
    weird.write_text("file,class\na,b\n")
    with pytest.raises(DataError, match="unknown label format"):
        read_labels(weird)
    not_onehot = tmp_path / "two.csv"
    not_onehot.write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,1,1,0,0,0,0,0\n")
    with pytest.raises(DataError, match=r"row 2 \(ISIC_1\)"):
        read_labels(not_onehot)
    with pytest.raises(DataError, match="not found"):
        read_labels(tmp_path / "absent.csv")


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 7))
    true_probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(7, p=p) for p in true_probs])
    overconfident = apply_temperature(true_probs, 0.5)  # sharpened: log p / 0.5
    fitted = fit_temperature(labels, overconfident)
    assert fitted == pytest.approx(2.0, rel=0.1)
    assert negative_log_likelihood(labels, apply_temperature(overconfident, fitted)) < negative_log_likelihood(
        labels, overconfident
    )
    assert np.array_equal(apply_temperature(overconfident, 3.0).argmax(1), overconfident.argmax(1))


def test_dihedral_views_are_the_eight_symmetries():
    image = np.arange(9, dtype=np.uint8).reshape(1, 3, 3, 1)
    views = {dihedral(image, k).tobytes() for k in range(8)}
    assert len(DIHEDRAL) == 8 and len(views) == 8
    assert np.array_equal(dihedral(image, 0), image)


def test_feature_sequence_uses_each_image_once_per_epoch():
    features = np.stack([np.full((5, 2, 2, 1), v, np.float16) for v in range(3)])  # 3 views, 5 images
    features += np.arange(5, dtype=np.float16).reshape(1, 5, 1, 1, 1) * 10
    labels = np.array([0, 1, 2, 3, 4])
    sequence = FeatureSequence(features, labels, num_classes=7, batch_size=2, seed=1)
    seen = []
    for i in range(len(sequence)):
        x, y = sequence[i]
        assert x.dtype == np.float32 and y.shape == (len(x), 7)
        image_index = (x[:, 0, 0, 0] // 10).astype(int)
        assert np.array_equal(image_index, y.argmax(1)), "features stay paired with their labels"
        seen += image_index.tolist()
    assert sorted(seen) == [0, 1, 2, 3, 4]


def test_shipped_recipes_are_read_back_exactly_from_their_metrics():
    """Full mode retrains both models from their metrics.json: the configs must round-trip unchanged."""
    from dataclasses import asdict
    from pathlib import Path

    from skinlib.training.classifier import config_from_metrics
    from skinlib.training.unet import unet_config_from_metrics

    models = Path(__file__).resolve().parent.parent / "skinlib" / "shipped"
    for path, read in (
        (models / "classifier" / "metrics.json", config_from_metrics),
        (models / "unet" / "metrics.json", unet_config_from_metrics),
    ):
        recorded = json.loads(path.read_text())["config"]
        config = json.loads(json.dumps(asdict(read(path))))
        assert {key: config[key] for key in recorded} == recorded, path
        defaults = json.loads(json.dumps(asdict(type(read(path))())))
        newer = {key: config[key] for key in config if key not in recorded}  # fields added after that training
        assert newer == {key: defaults[key] for key in newer}, path
        assert read(path, data_dir="elsewhere").data_dir == "elsewhere"


def test_phases_are_parsed_once_for_the_cli_and_the_notebooks(capsys):
    from skinlib.cli import main
    from skinlib.training.recipe import parse_phases

    assert parse_phases("0:2:1e-3,2:2:5e-4") == ((0, 2, 0.001), (2, 2, 0.0005))
    with pytest.raises(ValueError, match="expected STAGES:EPOCHS:RATE"):
        parse_phases("1:x")
    with pytest.raises(SystemExit) as usage:  # a usage error: argparse prints it with the usage line
        main(["train-classifier", "--phases", "1:x"])
    assert usage.value.code == 2
    assert "argument --phases: phases '1:x': expected STAGES:EPOCHS:RATE" in capsys.readouterr().err
