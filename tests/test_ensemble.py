"""Ensembles of classifiers: averaged probabilities and maps, one folder with a weights file per member."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from skinlib.explain import attention_maps, gradcam
from skinlib.models.classifier import build_classifier
from skinlib.models.folder import ClassifierSpec
from skinlib.runtime import StageTwo
from skinlib.training.classifier import ClassifierConfig, export_classifier, member_run_dir

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SIZE = 64
SPEC = ClassifierSpec(backbone="lite0", attention=True, image_size=SIZE)


def small_classifier(seed):
    keras.utils.set_random_seed(seed)
    model = build_classifier(input_shape=(SIZE, SIZE, 3), backbone_weights=None)
    head = model.layers[-1]  # an untrained head gives near-uniform outputs; make the members clearly disagree
    rng = np.random.default_rng(seed)
    head.kernel.assign(rng.normal(0, 30.0, head.kernel.shape).astype("float32"))
    head.bias.assign(rng.normal(0, 1.0, head.bias.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def members():
    return [small_classifier(0), small_classifier(1)]


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3)).astype(np.uint8)


def test_ensemble_probabilities_are_the_members_mean(members, images):
    ensemble = StageTwo(model=members[0], spec=SPEC, members=members)
    each = [ensemble.member_probabilities(i, images) for i in range(2)]
    assert not np.allclose(each[0], each[1], atol=1e-3), "the two members should disagree"
    np.testing.assert_allclose(ensemble.raw_probabilities(images), np.mean(each, axis=0), rtol=1e-5, atol=1e-6)
    tta = ensemble.raw_probabilities(images, tta=True)
    np.testing.assert_allclose(
        tta,
        np.mean([ensemble.member_probabilities(i, images, tta=True) for i in range(2)], axis=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_single_model_is_an_ensemble_of_one(members, images):
    single = StageTwo(model=members[0], spec=SPEC)
    assert single.members == [members[0]]
    with pytest.raises(ValueError, match="first of `members`"):
        StageTwo(model=members[1], spec=SPEC, members=members)


def test_export_and_load_round_trip_every_member(members, images, tmp_path):
    config = ClassifierConfig(image_size=SIZE, seed=3, members=2)
    export_classifier(members, config, tmp_path, temperature=0.9)
    spec = json.loads((tmp_path / "model.json").read_text())
    assert spec["members"] == ["weights.npz", "weights_member1.npz"] and spec["member_seeds"] == [3, 4]
    loaded = StageTwo.load(tmp_path)
    assert len(loaded.members) == 2 and loaded.temperature == 0.9
    expected = np.mean([m.predict(images.astype(np.float32), verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(loaded.raw_probabilities(images), expected, atol=2e-2)  # float16 weights
    export_classifier(members[0], ClassifierConfig(image_size=SIZE), tmp_path / "single")
    assert "members" not in json.loads((tmp_path / "single" / "model.json").read_text())
    assert len(StageTwo.load(tmp_path / "single").members) == 1


def test_member_run_dirs():
    assert member_run_dir("runs/x", ClassifierConfig(), 0).as_posix() == "runs/x"
    assert member_run_dir("runs/x", ClassifierConfig(members=3), 2).as_posix() == "runs/x/member2"


def test_ensemble_gradcam_is_the_renormalised_mean_for_the_ensemble_class(members, images):
    x = images.astype(np.float32)
    each = [gradcam(m, x, class_index=0) for m in members]
    assert all(m.max() > 0 for m in each) and not np.allclose(each[0], each[1], atol=1e-3)
    mean = np.mean(each, axis=0)
    np.testing.assert_allclose(
        gradcam(members, x, class_index=0), mean / mean.max(axis=(1, 2), keepdims=True), atol=1e-5
    )
    predicted = np.mean([m.predict(x, verbose=0) for m in members], axis=0).argmax(1)
    np.testing.assert_allclose(gradcam(members, x), gradcam(members, x, class_index=predicted), atol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        gradcam([], x)


def test_ensemble_attention_is_the_members_mean(members, images):
    x = images.astype(np.float32)
    each = [attention_maps(m, x) for m in members]
    maps = attention_maps(members, x)
    np.testing.assert_allclose(maps["spatial"], (each[0]["spatial"] + each[1]["spatial"]) / 2, atol=1e-6)
    np.testing.assert_allclose(maps["channel"], (each[0]["channel"] + each[1]["channel"]) / 2, atol=1e-6)


@pytest.mark.slow
def test_train_classifier_members_ships_an_ensemble(data_dir, tmp_path):
    """`skinlib train-classifier --members 2` at toy scale: two seeds, one folder, the members' own scores."""
    out, run = tmp_path / "model", tmp_path / "run"
    env = {**os.environ, "SKINLIB_CACHE": str(tmp_path / "cache")}
    argv = [
        sys.executable,
        "-m",
        "skinlib.cli",
        "train-classifier",
        "--data",
        str(data_dir),
        "--size",
        "32",
        "--source",
        "full",
        "--train-limit",
        "28",
        "--val-limit",
        "14",
        "--views",
        "1",
        "--phases",
        "0:1:1e-3",
        "--members",
        "2",
        "--seed",
        "5",
        "--out",
        str(out),
        "--run-dir",
        str(run),
        "--quiet",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    spec = json.loads((out / "model.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert spec["members"] == ["weights.npz", "weights_member1.npz"] and spec["member_seeds"] == [5, 6]
    assert metrics["config"]["members"] == 2 and [m["seed"] for m in metrics["members"]] == [5, 6]
    assert all(0 <= m["val_balanced_accuracy"] <= 1 for m in metrics["members"])
    assert (spec["temperature"], spec["temperature_tta"]) == (metrics["temperature"], metrics["temperature_tta"])
    referral = metrics["melanoma_referral"]["plain"]  # training fits the referral flag on val, scores test once
    assert spec["melanoma_referral"]["threshold"] == referral["threshold"]
    assert referral["val"]["sensitivity"] >= 0.85 and referral["test"]["melanomas"] > 0
    assert sum(spec["class_prior"]["training"]) == pytest.approx(1) and len(spec["class_prior"]["model"]) == 7
    assert (run / "member0" / "best.weights.h5").is_file() and (run / "member1" / "best.weights.h5").is_file()
    with np.load(out / "weights.npz") as first, np.load(out / "weights_member1.npz") as second:
        head = [name for name in first.files if "predictions" in name and "kernel" in name][0]
        assert not np.array_equal(first[head], second[head]), "the two seeds trained the same model"
