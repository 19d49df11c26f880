"""The U-Net, its Keras metrics, compact weight files, post-processing and lesion crops."""

import logging

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from skinlib.data import fit_size, unfit_size  # noqa: E402
from skinlib.losses import DiceBCELoss  # noqa: E402
from skinlib.models.storage import load_compact_weights, save_compact_weights  # noqa: E402
from skinlib.segmentation.postprocess import largest_component, lesion_contrast, lesion_crop, postprocess_mask  # noqa: E402
from skinlib.segmentation.unet import DiceScore, IoUScore, ThresholdedJaccard, build_unet  # noqa: E402


@pytest.mark.parametrize("encoder", ["lite0", "plain"])
def test_unet_output_matches_input_size(encoder):
    model = build_unet(
        (64, 96, 3), encoder=encoder, encoder_weights=None, decoder_filters=(16, 8, 8, 8, 8), base_filters=4
    )
    out = model.predict(np.zeros((2, 64, 96, 3), np.float32), verbose=0)
    assert out.shape == (2, 64, 96, 1) and np.all((out >= 0) & (out <= 1))


def test_unet_rejects_sizes_not_divisible_by_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        build_unet((150, 200, 3), encoder="plain")
    with pytest.raises(ValueError, match="encoder must be"):
        build_unet((64, 64, 3), encoder="resnet")


def masks_pair():
    """Two 1x4x4x1 masks: a 2x4 band and a 2x2 square overlapping it on 2 pixels."""
    true = np.zeros((1, 4, 4, 1), np.float32)
    true[0, :2, :, 0] = 1  # 8 pixels
    pred = np.zeros((1, 4, 4, 1), np.float32)
    pred[0, 1:3, :2, 0] = 0.9  # 4 pixels, 2 of them inside the band
    return true, pred


def test_keras_metrics_on_known_masks():
    true, pred = masks_pair()
    dice, iou, tj = DiceScore(), IoUScore(), ThresholdedJaccard()
    for metric in (dice, iou, tj):
        metric.update_state(true, pred)
    assert float(dice.result()) == pytest.approx(2 * 2 / 12)
    assert float(iou.result()) == pytest.approx(2 / 10)
    assert float(tj.result()) == 0.0  # Jaccard 0.2 < 0.65 scores nothing
    empty = DiceScore()
    empty.update_state(np.zeros_like(true), np.zeros_like(pred))
    assert float(empty.result()) == 1.0


def test_dice_bce_loss_prefers_the_right_mask():
    true, _ = masks_pair()
    loss = DiceBCELoss()
    good = float(loss(true, np.clip(true, 0.02, 0.98)))
    bad = float(loss(true, np.clip(1 - true, 0.02, 0.98)))
    assert good < 0.15 < 1.5 < bad


def test_compact_weights_round_trip(tmp_path):
    model = build_unet((32, 32, 3), encoder="plain", decoder_filters=(8, 8, 8, 8, 8), base_filters=4)
    path = save_compact_weights(model, tmp_path / "w.npz")
    twin = build_unet((32, 32, 3), encoder="plain", decoder_filters=(8, 8, 8, 8, 8), base_filters=4)
    load_compact_weights(twin, path)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    assert np.allclose(model.predict(x, verbose=0), twin.predict(x, verbose=0), atol=2e-3)
    other = build_unet((32, 32, 3), encoder="plain", decoder_filters=(4, 4, 4, 4, 4), base_filters=4)
    with pytest.raises(ValueError, match="does not fit"):
        load_compact_weights(other, path)


@pytest.mark.parametrize("shape", [(150, 200), (450, 600), (300, 300), (600, 450)])
def test_unfit_size_inverts_fit_size(shape):
    mask = np.zeros(shape, bool)
    h, w = shape
    mask[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = True
    back = unfit_size(fit_size(mask, (96, 128)).astype(np.float32), shape) > 0.5
    assert back.shape == shape
    assert (back & mask).sum() / (back | mask).sum() > 0.9


def test_postprocess_keeps_largest_component_and_fills_holes():
    probs = np.zeros((40, 40))
    probs[5:30, 5:30] = 0.9
    probs[12:18, 12:18] = 0.1  # a hole
    probs[35:38, 35:38] = 0.9  # a speck
    mask = postprocess_mask(probs)
    assert mask[15, 15] and not mask[36, 36] and mask.sum() == 25 * 25
    assert not postprocess_mask(np.zeros((5, 5))).any()
    assert largest_component(np.zeros((3, 3), bool)).sum() == 0


def test_lesion_crop_is_square_around_the_lesion():
    image = np.full((150, 200, 3), 200, np.uint8)
    mask = np.zeros((150, 200), bool)
    mask[60:90, 100:140] = True
    image[mask] = 90  # a visible, darker lesion
    crop = lesion_crop(image, mask, margin=0.25)
    assert crop.used_mask and crop.reason == ""
    assert crop.image.shape == (60, 60, 3)  # 40 px side * 1.5
    top, left, bottom, right = crop.box
    assert top <= 60 and bottom >= 90 and left <= 100 and right >= 140


def test_lesion_crop_at_the_border_stays_square():
    image = np.arange(150 * 200 * 3, dtype=np.uint32).reshape(150, 200, 3).astype(np.uint8)
    mask = np.zeros((150, 200), bool)
    mask[:40, :50] = True
    image[mask] = 0
    crop = lesion_crop(image, mask)
    assert crop.used_mask and crop.image.shape == (75, 75, 3)


@pytest.mark.parametrize("fraction, reason", [(0.0, "empty mask"), (0.005, "only"), (0.97, "covers 97")])
def test_lesion_crop_falls_back_to_the_full_image(fraction, reason, caplog):
    image = np.zeros((100, 100, 3), np.uint8)
    mask = np.zeros((100, 100), bool)
    mask.flat[: int(fraction * mask.size)] = True
    with caplog.at_level(logging.INFO, logger="skinlib.segmentation.postprocess"):
        crop = lesion_crop(image, mask)
    assert not crop.used_mask and crop.image.shape == image.shape and reason in crop.reason
    assert reason in caplog.text


@pytest.mark.parametrize("colour", [(0, 0, 0), (215, 170, 150), (128, 128, 128)])
def test_a_mask_on_a_uniform_image_is_no_visible_lesion(colour):
    """A segmentation network draws *something* on a blank picture; the crop must not trust it."""
    image = np.zeros((150, 200, 3), np.uint8) + np.array(colour, np.uint8)
    mask = np.zeros((150, 200), bool)
    mask[50:100, 70:130] = True
    crop = lesion_crop(image, mask)
    assert not crop.used_mask and "no visible lesion" in crop.reason
    assert np.isnan(lesion_contrast(image, np.zeros((150, 200), bool)))
    image[mask] = 0 if colour != (0, 0, 0) else 120
    assert lesion_crop(image, mask).used_mask and lesion_contrast(image, mask) > 20


def test_lesion_crop_rejects_mismatched_mask():
    with pytest.raises(ValueError, match="does not match"):
        lesion_crop(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 5), bool))
