"""The novelty check: probabilistic PCA scores on generated data, the validation threshold, save/load, and the
shipped check on real test images and on pictures that are not dermoscopy."""

import json

import cv2
import numpy as np
import pytest

from skinlib.cli import main
from skinlib.models.novelty import NoveltyModel
from skinlib.runtime import DEFAULT_CLASSIFIER, StageTwo

shipped = pytest.mark.skipif(
    not (DEFAULT_CLASSIFIER / "novelty.npz").is_file(),
    reason=f"no novelty check shipped in {DEFAULT_CLASSIFIER} (run skinlib fit-novelty)",
)


@pytest.fixture(scope="module")
def cloud():
    """Training-like features in 20 dimensions: class 0 common and tight, class 1 rare and three times as spread,
    both with 4 directions of large variance and 16 small ones. Returns draw(n, class) -> (features, labels)."""
    rng = np.random.default_rng(0)
    scale = np.array([10.0, 8.0, 6.0, 4.0] + [0.5] * 16)
    means = np.zeros((2, 20))
    means[1, :4] = 200.0

    def draw(n, label=0):
        spread = 3.0 if label == 1 else 1.0
        return means[label] + rng.normal(size=(n, 20)) * scale * spread, np.full(n, label)

    return draw


def training(draw, n_common=4000, n_rare=300):
    (x0, y0), (x1, y1) = draw(n_common, 0), draw(n_rare, 1)
    return np.concatenate([x0, x1]), np.concatenate([y0, y1])


def test_scores_are_about_one_for_ordinary_images_of_every_class_and_large_off_the_cloud(cloud):
    model = NoveltyModel.fit(*training(cloud), components=4)
    common, rare = model.score(cloud(2000, 0)[0]), model.score(cloud(500, 1)[0])
    assert np.median(common) == pytest.approx(1.0, abs=0.1)
    assert np.median(rare) == pytest.approx(1.0, abs=0.25)  # the rare, spread class is not novel for being rare
    off_plane = np.zeros((1, 20))
    off_plane[0, 10] = 10.0  # along a direction where training varies by about 0.5: 20 sigma
    along = np.zeros((1, 20))
    along[0, 0] = 10.0  # the same step along the widest direction: one sigma
    assert model.score(off_plane)[0] > 5 > model.score(along)[0]


def test_threshold_flags_the_chosen_share_of_validation(cloud):
    model = NoveltyModel.fit(*training(cloud), components=4)
    model = model.with_threshold(cloud(4000, 0)[0], flag_rate=0.05)
    assert model.is_novel(cloud(4000, 0)[0]).mean() == pytest.approx(0.05, abs=0.015)
    assert model.is_novel(cloud(10, 0)[0] * 8 + 500).all()
    with pytest.raises(ValueError, match="flag_rate"):
        model.with_threshold(cloud(10)[0], flag_rate=1.5)
    with pytest.raises(ValueError, match="N > 4"):
        NoveltyModel.fit(*cloud(3), components=4)
    with pytest.raises(ValueError, match="every class present"):
        NoveltyModel.fit(cloud(50, 0)[0], np.full(50, 1), components=4)


def test_save_and_load_round_trip(cloud, tmp_path):
    model = NoveltyModel.fit(*training(cloud, 500, 100), components=4).with_threshold(cloud(500)[0])
    loaded = NoveltyModel.load(model.save(tmp_path / "novelty.npz"))
    x = cloud(50)[0]
    assert loaded.threshold == model.threshold
    assert loaded.score(x) == pytest.approx(model.score(x), rel=1e-4)
    with pytest.raises(FileNotFoundError, match="fit-novelty"):
        NoveltyModel.load(tmp_path / "missing.npz")


@shipped
def test_shipped_check_records_its_rates_and_flags_pictures_that_are_not_dermoscopy():
    recorded = json.loads((DEFAULT_CLASSIFIER / "metrics.json").read_text())["novelty"]
    spec = json.loads((DEFAULT_CLASSIFIER / "model.json").read_text())["novelty"]
    assert spec["threshold"] == pytest.approx(recorded["threshold"])
    assert recorded["val_flag_rate"] == pytest.approx(recorded["target_validation_flag_rate"], abs=0.005)
    assert recorded["test_flag_rate"] < 0.05  # ordinary HAM10000 test images are rarely flagged
    assert max(recorded["val_flag_rate_by_class"].values()) < 0.15  # and no class is flagged wholesale
    assert recorded["command"].startswith("skinlib fit-novelty")


@shipped
def test_shipped_check_on_real_test_images_and_a_cat(split_frame):
    import skimage.data

    from skinlib.data.images import read_image
    from skinlib.runtime import DualStage

    pipeline = DualStage.load()
    sample = split_frame[split_frame["split"] == "test"].sort_values("image_id").groupby("dx").head(3)
    images = [read_image(p) for p in sample["image_path"]]
    results = pipeline.predict(images + [skimage.data.chelsea()])
    ordinary = [r["unlike_training_images"] for r in results[:-1]]
    assert sum(ordinary) <= 2  # of 21 test images
    cat = results[-1]
    assert cat["unlike_training_images"] is True and cat["uncertain"] is True
    assert cat["novelty_score"] > StageTwo.load().novelty.threshold


@shipped
@pytest.mark.parametrize("tta, scales", [(False, None), (True, None), (True, (1.2, 1.0)), (True, (1.2,))])
def test_one_pass_gives_the_same_probabilities_and_scores_as_two(split_frame, tta, scales):
    """predict reads the novelty features from the pass that makes the probabilities (no second backbone
    pass); the answer must be what the two separate passes give, TTA and zoom views included."""
    from skinlib.data.images import read_image
    from skinlib.runtime import DualStage

    pipeline = DualStage.load()
    sample = split_frame[split_frame["split"] == "val"].sort_values("image_id").head(5)
    inputs = pipeline.prepare([read_image(p) for p in sample["image_path"]])[2]
    raw, novelty = pipeline.classifier.raw_probabilities_and_novelty(inputs, tta=tta, scales=scales)
    np.testing.assert_allclose(raw, pipeline.classifier.raw_probabilities(inputs, tta=tta, scales=scales), atol=1e-5)
    np.testing.assert_allclose(novelty, pipeline.classifier.novelty_scores(inputs), rtol=1e-4)


@shipped
def test_predict_cli_reports_the_flag(tmp_path, capsys):
    import skimage.data

    path = tmp_path / "cat.png"
    cv2.imwrite(str(path), cv2.cvtColor(skimage.data.chelsea(), cv2.COLOR_RGB2BGR))
    assert main(["predict", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    record = json.loads((tmp_path / "out" / "cat.json").read_text())
    assert record["unlike_training_images"] is True
    assert "UNLIKE-TRAINING-IMAGES" in capsys.readouterr().out


def test_fit_novelty_cli_refuses_a_folder_without_metrics(tmp_path, capsys):
    assert main(["fit-novelty", "--model", str(tmp_path)]) == 2
    assert "metrics.json is missing" in capsys.readouterr().err


@shipped
def test_fit_novelty_cli_quick_check_writes_nothing(quick_fit):
    out = quick_fit("fit-novelty")
    assert "novelty threshold" in out and "cat (photo)" in out
