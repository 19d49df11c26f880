"""The tf.data pipeline: shapes, untouched evaluation data, seeded augmentation, image/mask alignment."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from skinlib.data.tfdata import AUGMENTATIONS, Augmentation, load_arrays, make_dataset  # noqa: E402


def blobs(count=8, size=(48, 64), seed=0):
    """Skin-grey images with one bright off-centre rectangle each; the mask marks the rectangle."""
    rng = np.random.default_rng(seed)
    images = np.full((count,) + size + (3,), 90, np.uint8)
    masks = np.zeros((count,) + size, bool)
    for i in range(count):
        top, left = rng.integers(2, size[0] // 2), rng.integers(2, size[1] // 3)
        masks[i, top : top + 14, left : left + 20] = True
    images[masks] = 230
    return images, masks


def test_evaluation_data_is_untouched_and_in_order():
    images, masks = blobs()
    labels = np.arange(8) % 7
    batches = list(make_dataset(images, labels, training=False, batch_size=3))
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    assert x.dtype == np.float32 and x.shape == (8, 48, 64, 3)
    assert np.array_equal(x, images.astype(np.float32))
    assert np.array_equal(y.argmax(1), labels) and y.shape == (8, 7)


def test_both_targets_as_dict():
    images, masks = blobs(4)
    x, y = next(iter(make_dataset(images, np.zeros(4), masks, training=False, batch_size=4)))
    assert set(y) == {"label", "mask"} and y["mask"].shape == (4, 48, 64, 1)
    assert np.array_equal(y["mask"].numpy()[..., 0].astype(bool), masks)


@pytest.mark.parametrize("size", [(48, 64), (56, 56)])
def test_augmentation_keeps_mask_on_the_blob(size):
    images, masks = blobs(16, size=size)
    data = make_dataset(images, masks=masks, training=True, batch_size=16, seed=3)
    x, y = next(iter(data))
    x, y = x.numpy(), y.numpy()[..., 0]
    assert x.shape == (16,) + size + (3,) and y.shape == (16,) + size
    assert set(np.unique(y)) <= {0.0, 1.0}
    assert not np.array_equal(x, images.astype(np.float32)), "training data should be augmented"
    for image, mask in zip(x, y.astype(bool)):
        brightness = image.mean(-1)
        assert mask.any()
        # the mask must still sit on the bright blob after flips, turns, affine and colour jitter
        assert brightness[mask].mean() > brightness[~mask].mean() + 60


def test_augmentation_is_seeded_and_changes_every_epoch():
    images, masks = blobs(6)

    def first_batch(data):
        return next(iter(data))[0].numpy()

    a = make_dataset(images, masks=masks, training=True, batch_size=6, seed=11)
    b = make_dataset(images, masks=masks, training=True, batch_size=6, seed=11)
    assert np.array_equal(first_batch(a), first_batch(b))
    assert not np.array_equal(first_batch(a), first_batch(a)), "second epoch should draw new augmentations"


def test_augmentation_can_be_switched_off():
    images, masks = blobs(4)
    none = Augmentation(
        flips=False,
        rot90=False,
        max_rotation_deg=0,
        scale_range=(1.0, 1.0),
        brightness=0,
        contrast=0,
        saturation=0,
        hue=0,
    )
    x, y = next(iter(make_dataset(images, masks=masks, training=True, batch_size=4, augmentation=none, seed=1)))
    order = [int(np.argmax([np.array_equal(img, i.astype(np.float32)) for i in images])) for img in x.numpy()]
    assert sorted(order) == [0, 1, 2, 3]


def test_needs_a_target():
    with pytest.raises(ValueError, match="labels, masks or both"):
        make_dataset(np.zeros((1, 4, 4, 3)), training=False)


def test_load_arrays_real_images_with_cache(metadata, tmp_path):
    sample = metadata.iloc[:6]
    images, masks = load_arrays(sample, size=(96, 128), with_masks=True, progress=False, cache=tmp_path)
    assert images.shape == (6, 96, 128, 3) and images.dtype == np.uint8
    assert masks.shape == (6, 96, 128) and masks.dtype == bool and masks.any()
    assert len(list(tmp_path.glob("arrays-*.npz"))) == 1
    again, again_masks = load_arrays(sample, size=(96, 128), with_masks=True, progress=False, cache=tmp_path)
    assert np.array_equal(images, again) and np.array_equal(masks, again_masks)


# ----------------------------------------------------------------- the battery-matched shifts (opt-in)

REFERENCE = Path(__file__).parent / "data" / "default_augmentation_reference.npz"
#: Every geometric and colour-jitter part off: what is left is the shift part alone.
PLAIN = {"flips": False, "rot90": False, "max_rotation_deg": 0, "scale_range": (1.0, 1.0)}
NO_JITTER = {"brightness": 0, "contrast": 0, "saturation": 0, "hue": 0}


def augment(augmentation, image, mask=None, seed=(0, 0)):
    """One augmented (image, mask) as numpy, from uint8/bool inputs."""
    mask = np.ones(image.shape[:2], bool) if mask is None else mask
    out, out_mask = augmentation(
        tf.constant(image, tf.float32), tf.constant(mask[..., None] * 255.0, tf.float32), tf.constant(seed, tf.int64)
    )
    return out.numpy(), out_mask.numpy()[..., 0] > 127.5


def only(**shift):
    return Augmentation(**PLAIN, **NO_JITTER, **shift)


def test_the_default_draws_exactly_what_it_drew_before_the_shift_options():
    # outputs of `Augmentation()` saved at commit 72c8c89, before the shift fields existed (2 shapes: the square
    # and the padded 90° branch; 4 seed pairs (s, 3) each; inputs: uint8 noise and a random mask, stored beside)
    stored = np.load(REFERENCE)
    for name in ("12x16", "14x14"):
        image, mask = stored[f"image_{name}"], stored[f"mask_{name}"]
        for s in range(4):
            out, out_mask = augment(Augmentation(), image, mask, (s, 3))
            np.testing.assert_allclose(out, stored[f"out_{name}_{s}"], atol=1e-3)
            assert np.array_equal(out_mask, stored[f"outmask_{name}_{s}"])
    assert not Augmentation().shifts and Augmentation.named("standard") == Augmentation()


def test_the_preset_spans_the_battery():
    from skinlib.evaluation.robustness import COLOUR_CASTS
    from skinlib.training.recipe import AUGMENTATIONS as RECIPE_AUGMENTATIONS

    battery = Augmentation.matched_to_battery()
    assert Augmentation.named("battery") == battery and battery.shifts
    strongest = max(np.abs(np.log(COLOUR_CASTS[name])).max() for name in ("strong warm", "strong cool"))
    assert battery.cast >= strongest - 1e-9  # (x, 0, -x) centred is itself: the strong casts can be drawn
    assert battery.exposure[0] <= 0.7 and battery.exposure[1] >= 1.3
    assert battery.blur_share[1] >= 0.02 and battery.blur_probability > 0
    assert battery.jpeg_quality[0] <= 10 and battery.jpeg_probability > 0
    assert battery.ring_radius[0] <= 0.6 and battery.ring_radius[1] >= 0.8 and battery.ring_probability > 0
    assert battery.scale_range[0] <= 0.75 and battery.scale_range[1] >= 1.3
    assert RECIPE_AUGMENTATIONS == AUGMENTATIONS
    with pytest.raises(ValueError, match="augmentation must be one of"):
        Augmentation.named("strong")
    with pytest.raises(ValueError, match="probability"):
        Augmentation(jpeg_probability=1.5)


def test_a_colour_cast_is_per_channel_gains_with_product_one_within_range():
    grey = np.full((8, 10, 3), 128, np.uint8)
    cast = Augmentation.matched_to_battery().cast
    gains = np.array([augment(only(cast=cast), grey, seed=(s, 1))[0][0, 0] / 128.0 for s in range(12)])
    np.testing.assert_allclose(gains.prod(axis=1), 1.0, atol=1e-4)
    assert np.abs(np.log(gains)).max() <= 4 / 3 * cast + 1e-4
    assert np.ptp(np.log(gains[:, 0] / gains[:, 2])) > 0.1, "casts should differ between draws"


def test_exposure_is_one_gain_for_every_channel_within_range():
    grey = np.full((8, 10, 3), 100, np.uint8)
    gains = np.array([augment(only(exposure=(0.7, 1.3)), grey, seed=(s, 2))[0][0, 0] / 100.0 for s in range(12)])
    assert np.allclose(gains, gains[:, :1], atol=1e-5)
    assert gains.min() >= 0.7 - 1e-5 and gains.max() <= 1.3 + 1e-5 and np.ptp(gains) > 0.1


def test_blur_sigma_lies_between_the_battery_like_opencv_blurs_at_its_ends():
    cv2 = pytest.importorskip("cv2")
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 200  # one vertical edge
    low, high = 0.01, 0.04

    def spread(blurred):  # width of the edge's ramp
        row = blurred[20, :, 0].astype(np.float64)
        return np.abs(np.diff(row)).sum() / np.abs(np.diff(row)).max()

    ends = [spread(cv2.GaussianBlur(image, (0, 0), share * 40).astype(np.float32)) for share in (low, high)]
    for s in range(6):
        out, _ = augment(only(blur_share=(low, high), blur_probability=1.0), image, seed=(s, 3))
        assert ends[0] - 0.05 <= spread(out) <= ends[1] + 0.05
    kept = [augment(only(blur_share=(low, high), blur_probability=0.5), image, seed=(s, 3))[0] for s in range(12)]
    untouched = sum(np.array_equal(out, image.astype(np.float32)) for out in kept)
    assert 0 < untouched < 12, "with probability 0.5 some draws blur and some do not"


def test_the_ring_darkens_outside_its_drawn_radius_only():
    image = np.full((30, 40, 3), 200, np.uint8)
    y, x = np.mgrid[:30, :40]
    r = np.hypot(y - 14.5, x - 19.5) / np.hypot(15, 20)
    for s in range(6):
        out, _ = augment(only(ring_radius=(0.6, 0.8), ring_probability=1.0), image, seed=(s, 4))
        assert np.allclose(out[r < 0.55], 200) and np.allclose(out[r > 0.8], 0)


def test_jpeg_reencodes_at_a_quality_in_range():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    as_float = tf.constant(image / 255.0, tf.float32)
    encoded = {q: tf.image.adjust_jpeg_quality(as_float, q).numpy() * 255.0 for q in range(10, 21)}
    for s in range(4):
        out, _ = augment(only(jpeg_quality=(10, 20), jpeg_probability=1.0), image, seed=(s, 5))
        assert not np.allclose(out, image)
        assert min(np.abs(out - e).max() for e in encoded.values()) < 1e-3


def test_masks_follow_the_geometry_only():
    images, masks = blobs(4, size=(24, 32))
    battery = Augmentation.matched_to_battery()
    same_geometry = dataclasses.replace(battery, scale_range=Augmentation().scale_range)
    for image, mask in zip(images, masks):
        for s in range(3):
            # no geometry: the mask comes back as it went in, whatever the shifts did to the image
            out, out_mask = augment(dataclasses.replace(battery, **PLAIN), image, mask, (s, 6))
            assert np.array_equal(out_mask, mask)
            # same geometry as the default: the same mask as the default draws, shifts or not
            assert np.array_equal(
                augment(same_geometry, image, mask, (s, 6))[1], augment(Augmentation(), image, mask, (s, 6))[1]
            )


def test_the_battery_augmentation_is_seeded_and_runs_in_the_dataset():
    images, masks = blobs(6)
    battery = Augmentation.matched_to_battery()
    one, two = augment(battery, images[0], masks[0], (4, 4)), augment(battery, images[0], masks[0], (4, 4))
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    assert not np.array_equal(one[0], augment(battery, images[0], masks[0], (5, 4))[0])

    def first_batch():
        data = make_dataset(images, masks=masks, training=True, batch_size=6, seed=2, augmentation=battery)
        return next(iter(data))

    (xa, ya), (xb, yb) = first_batch(), first_batch()
    assert xa.shape == (6, 48, 64, 3) and ya.shape == (6, 48, 64, 1)
    assert np.array_equal(xa.numpy(), xb.numpy()) and np.array_equal(ya.numpy(), yb.numpy())
    assert xa.numpy().min() >= 0.0 and xa.numpy().max() <= 255.0


def test_a_standard_classifier_keeps_its_feature_cache_key():
    from skinlib.training.classifier import augmentation_key, training_augmentation
    from skinlib.training.recipe import ClassifierConfig

    assert augmentation_key(ClassifierConfig()) == ()
    battery = ClassifierConfig(augment="battery")
    assert augmentation_key(battery) and training_augmentation(battery) == Augmentation.matched_to_battery()
    assert training_augmentation(ClassifierConfig()) == Augmentation()


def test_cached_features_draw_their_views_from_the_named_augmentation():
    import keras

    from skinlib.training.features import extract

    images, _ = blobs(3, size=(16, 16))
    inputs = keras.Input((16, 16, 3))
    lower = keras.Model(inputs, keras.layers.AveragePooling2D(4)(inputs))
    standard = extract(lower, images, 2, "augment", seed=1, progress=False)
    assert np.array_equal(
        standard, extract(lower, images, 2, "augment", seed=1, progress=False, augmentation=Augmentation())
    )
    battery = extract(
        lower, images, 2, "augment", seed=1, progress=False, augmentation=Augmentation.matched_to_battery()
    )
    assert battery.shape == standard.shape == (2, 3, 4, 4, 3) and not np.array_equal(battery, standard)
