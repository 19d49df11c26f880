"""Segmentation metrics on hand-made masks whose answers can be worked out on paper."""

from __future__ import annotations

import numpy as np
import pytest

from skinlib.evaluation import (
    dice,
    dice_batch,
    iou,
    iou_batch,
    segmentation_scores,
    thresholded_jaccard,
    thresholded_jaccard_batch,
)


def square(top: int, left: int, size: int = 4, shape=(10, 10)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top : top + size, left : left + size] = True
    return mask


# Two 4x4 squares shifted by two columns: overlap 4x2 = 8 pixels, areas 16 + 16, union 24.
A = square(2, 2)
B = square(2, 4)


def test_dice_of_half_overlapping_squares():
    assert dice(A, B) == pytest.approx(2 * 8 / 32)  # 0.5


def test_iou_of_half_overlapping_squares():
    assert iou(A, B) == pytest.approx(8 / 24)  # 1/3


def test_identical_and_disjoint_masks():
    assert dice(A, A) == 1.0 and iou(A, A) == 1.0
    far = square(6, 6, size=4)
    assert not (A & far).any()
    assert dice(A, far) == 0.0 and iou(A, far) == 0.0


def test_dice_and_iou_are_related_and_symmetric():
    d, j = dice(A, B), iou(A, B)
    assert d == pytest.approx(2 * j / (1 + j))
    assert dice(B, A) == d and iou(B, A) == j


def test_nested_masks():
    inner = square(3, 3, size=2)  # 4 pixels inside the 16 of A
    assert dice(inner, A) == pytest.approx(2 * 4 / 20)
    assert iou(inner, A) == pytest.approx(4 / 16)


def test_empty_masks():
    empty = np.zeros((10, 10), bool)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert thresholded_jaccard(empty, empty) == 1.0
    assert dice(empty, A) == 0.0 and dice(A, empty) == 0.0
    assert iou(empty, A) == 0.0 and iou(A, empty) == 0.0


def test_non_boolean_inputs_count_nonzero_as_lesion():
    assert dice(A.astype(np.uint8) * 255, B.astype(np.float32)) == pytest.approx(0.5)


def test_thresholded_jaccard_zeroes_scores_below_threshold():
    assert thresholded_jaccard(A, B) == 0.0  # Jaccard 1/3 < 0.65
    assert thresholded_jaccard(A, B, threshold=0.3) == pytest.approx(1 / 3)
    # 4x4 against 4x3 inside it: Jaccard 12/16 = 0.75 >= 0.65 is kept as it is
    smaller = np.zeros((10, 10), bool)
    smaller[2:6, 2:5] = True
    assert thresholded_jaccard(smaller, A) == pytest.approx(0.75)


@pytest.mark.parametrize("metric", [dice, iou, thresholded_jaccard])
def test_shape_mismatch_names_both_shapes(metric):
    with pytest.raises(ValueError, match=r"\(10, 10\).*\(10, 12\)"):
        metric(A, np.zeros((10, 12), bool))


def test_batched_metrics_match_single_ones():
    empty = np.zeros((10, 10), bool)
    preds = np.stack([A, A, empty, empty])
    trues = np.stack([B, A, empty, A])
    np.testing.assert_allclose(dice_batch(preds, trues), [0.5, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(iou_batch(preds, trues), [1 / 3, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(thresholded_jaccard_batch(preds, trues), [0.0, 1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        dice_batch(preds, trues[:2])


def test_segmentation_scores_summarises_mean_median_and_count():
    empty = np.zeros((10, 10), bool)
    # masks of different sizes are fine across pairs
    big_a, big_b = square(0, 0, 4, (20, 30)), square(0, 2, 4, (20, 30))
    scores = segmentation_scores([A, A, big_a], [B, A, big_b])
    assert scores["count"] == 3
    assert scores["dice_mean"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert scores["dice_median"] == pytest.approx(0.5)
    assert scores["iou_mean"] == pytest.approx((1 / 3 + 1 + 1 / 3) / 3)
    assert scores["iou_median"] == pytest.approx(1 / 3)
    assert scores["thresholded_jaccard_mean"] == pytest.approx(1 / 3)
    assert scores["thresholded_jaccard_median"] == 0.0
    assert segmentation_scores([empty], [empty])["dice_mean"] == 1.0


def test_segmentation_scores_errors():
    with pytest.raises(ValueError, match="2 predicted masks but 1 true"):
        segmentation_scores([A, A], [B])
    with pytest.raises(ValueError, match=r"\(10, 10\).*\(5, 5\)"):
        segmentation_scores([A], [np.zeros((5, 5), bool)])
    assert segmentation_scores([], [])["count"] == 0
