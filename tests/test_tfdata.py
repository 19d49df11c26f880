"""The tf.data pipeline: shapes, untouched evaluation data, seeded augmentation, image/mask alignment."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from skinlib.data.tfdata import Augmentation, load_arrays, make_dataset  # noqa: E402


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
