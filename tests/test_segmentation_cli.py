"""`skinlib segment` and `skinlib evaluate` end to end, and the shipped U-Net against its recorded scores."""

import json
import shutil

import cv2
import numpy as np
import pytest

from skinlib.cli import main
from skinlib.segmentation.segmenter import DEFAULT_UNET

SHIPPED = (DEFAULT_UNET / "model.json").is_file()
needs_model = pytest.mark.skipif(not SHIPPED, reason=f"no shipped U-Net in {DEFAULT_UNET}")


@pytest.fixture(scope="module")
def test_images(split_frame):
    """A fixed set of 12 test-split images (sorted by id) with their expert masks."""
    part = split_frame[split_frame["split"] == "test"].sort_values("image_id").iloc[:12]
    return list(part["image_path"]), list(part["mask_path"])


@pytest.fixture
def labelled_folder(tmp_path, test_images):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for image, mask in zip(*test_images):
        shutil.copy(image, images)
        shutil.copy(mask, masks)
    return images, masks


@pytest.mark.parametrize("method", [pytest.param("unet", marks=needs_model), "classical"])
def test_segment_writes_mask_and_overlay(method, test_images, tmp_path, capsys):
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), np.zeros((150, 200, 3), np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    paths = [str(p) for p in test_images[0][:3]] + [str(black), str(broken)]
    code = main(["segment", *paths, "--out", str(tmp_path / "out"), "--method", method, "--quiet"])
    captured = capsys.readouterr()
    assert code == 1, "one unreadable file makes the exit code non-zero"
    assert "broken.jpg" in captured.err and "segmented 4 image(s)" in captured.out
    assert "black.png" in captured.out  # "no lesion found" is reported, not hidden
    for path in paths[:4]:
        stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        mask = cv2.imread(str(tmp_path / "out" / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(tmp_path / "out" / f"{stem}_overlay.png"))
        assert mask.shape == (150, 200) and set(np.unique(mask)) <= {0, 255}
        assert overlay.shape == (150, 200, 3)


@pytest.mark.parametrize("method", [pytest.param("unet", marks=needs_model), "classical"])
def test_evaluate_scores_a_folder(method, labelled_folder, tmp_path, capsys):
    images, masks = labelled_folder
    out = tmp_path / "metrics.json"
    assert (
        main(
            [
                "evaluate",
                "--images",
                str(images),
                "--masks",
                str(masks),
                "--method",
                method,
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    metrics = json.loads(out.read_text())
    assert metrics["count"] == 12 and metrics["method"] == method and len(metrics["per_image"]) == 12
    assert 0.5 < metrics["dice_mean"] <= 1
    assert "thresholded_jaccard" in capsys.readouterr().out


@needs_model
def test_evaluate_resizes_any_image_size(labelled_folder, tmp_path):
    """Images and masks at 3x the size (a full-size official download) are scored at their own size."""
    images, masks = labelled_folder
    for path in list(images.iterdir()) + list(masks.iterdir()):
        array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        interpolation = cv2.INTER_NEAREST if "segmentation" in path.name else cv2.INTER_LINEAR
        cv2.imwrite(str(path), cv2.resize(array, (600, 450), interpolation=interpolation))
    out = tmp_path / "big.json"
    assert main(["evaluate", "--images", str(images), "--masks", str(masks), "--out", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["dice_mean"] > 0.8


def test_evaluate_rejects_grey_mask_values(labelled_folder, capsys):
    images, masks = labelled_folder
    victim = sorted(masks.iterdir())[0]
    mask = cv2.imread(str(victim), cv2.IMREAD_UNCHANGED)
    mask[0, 0] = 77
    cv2.imwrite(str(victim), mask)
    assert main(["evaluate", "--images", str(images), "--masks", str(masks), "--method", "classical", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert victim.name in err and "only 0 and 255" in err


def test_evaluate_rejects_mask_of_another_size(labelled_folder, capsys):
    images, masks = labelled_folder
    victim = sorted(masks.iterdir())[0]
    cv2.imwrite(str(victim), np.zeros((10, 10), np.uint8))
    assert main(["evaluate", "--images", str(images), "--masks", str(masks), "--method", "classical", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert victim.name in err and "must match" in err


def test_evaluate_reports_unreadable_image_and_missing_pairs(labelled_folder, tmp_path, capsys):
    images, masks = labelled_folder
    victim = sorted(images.iterdir())[0]
    victim.write_bytes(b"garbage")
    assert main(["evaluate", "--images", str(images), "--masks", str(masks), "--method", "classical", "--quiet"]) == 2
    assert victim.name in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", "--images", str(empty), "--masks", str(masks), "--method", "classical"]) == 2
    assert "no image" in capsys.readouterr().err


def test_missing_model_folder_is_explained(tmp_path, capsys):
    assert main(["segment", "x.jpg", "--out", str(tmp_path), "--model", str(tmp_path / "nomodel")]) == 2
    assert "train-unet" in capsys.readouterr().err


@needs_model
def test_shipped_unet_reaches_its_recorded_test_dice(split_frame):
    """Re-score the shipped weights on the whole test split: the committed metrics must be what they give."""
    from skinlib.segmentation.segmenter import UNetSegmenter
    from skinlib.training.ship_unet import split_scores

    recorded = json.loads((DEFAULT_UNET / "metrics.json").read_text())["test"]
    measured = split_scores(UNetSegmenter.load(), split_frame, "test", progress=False)
    assert measured["count"] == recorded["count"] == 1506
    assert measured["dice_mean"] == pytest.approx(recorded["dice_mean"], abs=0.003)
    assert measured["thresholded_jaccard_mean"] == pytest.approx(recorded["thresholded_jaccard_mean"], abs=0.005)
