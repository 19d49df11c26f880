"""Classical segmentation: beats the centre-disc baseline on real images, and survives odd inputs."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from skinlib.data import read_image, read_mask
from skinlib.evaluation import dice
from skinlib.segmentation import (
    CHANNELS,
    STEP_NAMES,
    ClassicalParams,
    centre_disc_baseline,
    classical_steps,
    remove_hair,
    segment_classical,
)

SAMPLE_SIZE = 50
SAMPLE_SEED = 2018
#: Mean Dice of the defaults on this sample was 0.831 (centre disc: 0.632); the floor leaves 0.05 of margin.
CLASSICAL_FLOOR = 0.78

SKIN = (225, 180, 160)
LESION = (90, 55, 40)


@pytest.fixture(scope="module")
def test_sample(split_frame):
    """A fixed, seeded sample of TEST-split images with their expert masks."""
    test = split_frame[split_frame["split"] == "test"].sort_values("image_id")
    rows = test.sample(n=SAMPLE_SIZE, random_state=SAMPLE_SEED)
    return [(read_image(row.image_path), read_mask(row.mask_path)) for row in rows.itertuples()]


def synthetic_lesion(height: int, width: int, seed: int = 0, vignette: bool = False):
    """A dark elliptical blob, off-centre, on noisy skin colour; optionally with black dermoscope corners."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:height, :width]
    blob = ((rows - 0.45 * height) / (0.22 * height)) ** 2 + ((cols - 0.55 * width) / (0.2 * width)) ** 2 <= 1
    image = np.empty((height, width, 3), np.float32)
    image[:] = SKIN
    image[blob] = LESION
    image += rng.normal(0, 6, image.shape)
    if vignette:
        outside = ((rows - height / 2) / (0.62 * height)) ** 2 + ((cols - width / 2) / (0.62 * width)) ** 2 > 1
        image[outside] = rng.uniform(0, 12, (int(outside.sum()), 3))
        return np.clip(image, 0, 255).astype(np.uint8), blob, outside
    return np.clip(image, 0, 255).astype(np.uint8), blob


@pytest.mark.data
def test_classical_beats_centre_disc_on_test_sample(test_sample):
    classical = np.mean([dice(segment_classical(image), mask) for image, mask in test_sample])
    baseline = np.mean([dice(centre_disc_baseline(mask.shape), mask) for _, mask in test_sample])
    assert classical > baseline + 0.1, f"classical {classical:.3f} vs centre disc {baseline:.3f}"
    assert classical >= CLASSICAL_FLOOR, f"classical mean Dice {classical:.3f} fell below {CLASSICAL_FLOOR}"


@pytest.mark.data
def test_steps_on_a_real_image(test_sample):
    image, mask = test_sample[0]
    steps = classical_steps(image)
    assert tuple(steps) == STEP_NAMES
    height, width = image.shape[:2]
    for name in ("image", "hair_removed"):
        assert steps[name].shape == (height, width, 3) and steps[name].dtype == np.uint8, name
    for name in ("channel", "smoothed"):
        assert steps[name].shape == (height, width) and steps[name].dtype == np.uint8, name
    for name in ("hair", "field_of_view", "threshold", "cleaned", "lesion_component", "filled", "mask"):
        assert steps[name].shape == (height, width) and steps[name].dtype == bool, name
    np.testing.assert_array_equal(steps["mask"], segment_classical(image))


def test_steps_of_a_large_image_are_at_working_size():
    image, _ = synthetic_lesion(1500, 2000)
    steps = classical_steps(image, ClassicalParams(work_side=450))
    assert steps["channel"].shape == (450, 600)
    assert steps["mask"].shape == (1500, 2000)


def test_all_black_image_gives_empty_mask():
    mask = segment_classical(np.zeros((150, 200, 3), np.uint8))
    assert mask.shape == (150, 200) and mask.dtype == bool and not mask.any()


@pytest.mark.parametrize("value", [0, 128, 255])
def test_constant_image_gives_empty_mask(value):
    assert not segment_classical(np.full((150, 200, 3), value, np.uint8)).any()


def test_tiny_image():
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    assert segment_classical(noise).shape == (8, 8)
    image, _ = synthetic_lesion(8, 8)
    mask = segment_classical(image)
    assert mask.shape == (8, 8) and mask.dtype == bool


@pytest.mark.parametrize("shape", [(150, 200), (450, 600), (1500, 2000), (200, 150)])
def test_synthetic_blob_is_found_at_any_size(shape):
    image, blob = synthetic_lesion(*shape)
    assert dice(segment_classical(image), blob) > 0.8


def test_vignette_corners_are_not_lesion():
    image, blob, corners = synthetic_lesion(150, 200, vignette=True)
    mask = segment_classical(image)
    assert dice(mask, blob) > 0.8
    assert not (mask & corners).any()


def test_hair_across_the_lesion_is_removed():
    image, blob = synthetic_lesion(150, 200)
    for offset in (-60, 0, 60):  # three 1-px dark hairs crossing skin and lesion
        cv2.line(image, (0, 75 + offset // 2), (199, 20 + offset), (30, 20, 15), 1)
    cleaned = remove_hair(image)
    skin = ~cv2.dilate(blob.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert cleaned[skin].mean() > image[skin].mean()  # dark hair pixels on the skin are gone
    assert dice(segment_classical(image), blob) > 0.8


def test_rgba_and_grayscale_files_through_read_image(tmp_path):
    image, blob = synthetic_lesion(150, 200)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    rgba_path, gray_path = tmp_path / "lesion_rgba.png", tmp_path / "lesion_gray.png"
    cv2.imwrite(str(rgba_path), np.dstack([bgr, np.full(blob.shape, 255, np.uint8)]))
    cv2.imwrite(str(gray_path), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    for path in (rgba_path, gray_path):
        loaded = read_image(path)
        assert loaded.shape == (150, 200, 3)
        assert dice(segment_classical(loaded), blob) > 0.8, path.name


def test_rgba_and_grayscale_arrays():
    image, blob = synthetic_lesion(150, 200)
    rgba = np.dstack([image, np.full(blob.shape, 255, np.uint8)])
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    for variant in (rgba, gray, gray[:, :, None], image.astype(np.float32) / 255.0):
        assert dice(segment_classical(variant), blob) > 0.8


def test_otsu_method_and_every_channel_run():
    image, blob = synthetic_lesion(150, 200)
    assert dice(segment_classical(image, ClassicalParams(method="otsu")), blob) > 0.8
    for channel in CHANNELS:
        assert segment_classical(image, ClassicalParams(channel=channel)).shape == (150, 200)


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError, match="channel"):
        ClassicalParams(channel="ultraviolet")
    with pytest.raises(ValueError, match="method"):
        ClassicalParams(method="watershed")
    with pytest.raises(ValueError, match="RGB"):
        segment_classical(np.zeros((4, 4, 2), np.uint8))


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClassicalParams().channel = "gray"


def test_centre_disc_baseline():
    disc = centre_disc_baseline((150, 200), radius_fraction=0.3)
    assert disc.shape == (150, 200) and disc.dtype == bool
    assert disc[75, 100] and not disc[0, 0]
    # an ellipse with semi-axes 45 and 60 px covers pi * 45 * 60 pixels
    assert disc.sum() == pytest.approx(np.pi * 45 * 60, rel=0.02)
    np.testing.assert_array_equal(disc, disc[::-1, ::-1])  # centred
