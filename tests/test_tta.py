"""Test-time augmentation views: the dihedral group, zooms, their order, the `Views` value, and the CLI's checks."""

import dataclasses

import numpy as np
import pytest

from skinlib.runtime.views import DIHEDRAL, SINGLE, Views, average_views, check_scales, dihedral, zoom


def square(size=40, side=10, value=200):
    """A batch of one grey image with a bright centred square of `side` pixels."""
    image = np.full((1, size, size, 3), 30, np.uint8)
    start = (size - side) // 2
    image[:, start : start + side, start : start + side] = value
    return image


def bright_area(images):
    return int((images[..., 0] > 115).sum())


def test_zoom_one_is_the_identity_and_keeps_shape():
    image = square()
    assert zoom(image, 1.0) is image
    for scale in (0.7, 1.2, 1.5):
        assert zoom(image, scale).shape == image.shape and zoom(image, scale).dtype == np.uint8


def test_zooming_in_enlarges_the_centre_and_zooming_out_shrinks_it():
    image = square()
    assert bright_area(zoom(image, 1.5)) > 1.8 * bright_area(image)
    assert bright_area(zoom(image, 0.6)) < 0.6 * bright_area(image)
    assert zoom(image, 1.5)[0, 20, 20, 0] == 200  # the centre stays the centre


def test_views_are_scale_major_then_dihedral_and_start_with_the_input():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    views = Views.dihedral((1.0, 1.25)).expand(images)
    assert views.shape == (Views.dihedral((1.0, 1.25)).count * 3, 16, 16, 3) == (48, 16, 16, 3)
    assert np.array_equal(views[:3], images)
    assert np.array_equal(views[3 * 5 : 3 * 6], dihedral(images, 5))
    assert np.array_equal(views[24:27], zoom(images, 1.25))


def test_average_views_folds_predictions_back_per_image():
    per_view = np.stack([np.full((2, 7), v, np.float32) for v in range(8)]).reshape(16, 7)
    assert np.allclose(average_views(per_view, 2), 3.5)


@pytest.mark.parametrize("bad", [[], [0.1], [3.0], [1.0, -1.0]])
def test_bad_scales_are_refused_with_the_allowed_range(bad):
    with pytest.raises(ValueError, match="between 0.5 and 2"):
        check_scales(bad)


def test_cli_scales_need_tta(tmp_path, capsys):
    from skinlib.cli import main

    assert main(["predict", str(tmp_path / "x.jpg"), "--out", str(tmp_path), "--tta-scales", "1.0", "1.2"]) == 2
    assert "add --tta" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "x.jpg"), "--out", str(tmp_path), "--tta", "--tta-scales", "9"]) == 2
    assert "between 0.5 and 2" in capsys.readouterr().err


# --------------------------------------------------------------------------- augmented views


def test_augmented_views_are_fixed_draws_independent_of_the_batch():
    """View v of an image is the same alone or in any batch, and the same on every call (seeded)."""
    from skinlib.runtime.views import augmented_view

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    batch = augmented_view(images, 3)
    assert batch.shape == images.shape and batch.dtype == np.float32
    assert np.allclose(augmented_view(images[2:3], 3)[0], batch[2], atol=1e-3)
    assert np.array_equal(augmented_view(images, 3), batch)
    assert batch.min() >= 0 and batch.max() <= 255


def test_augmented_views_differ_from_each_other_and_from_the_input():
    from skinlib.runtime.views import AUGMENTED_VIEW_COUNT, augmented_views

    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    views = augmented_views(images)
    assert views.shape == (AUGMENTED_VIEW_COUNT * 2, 24, 24, 3)
    per_view = views.reshape(AUGMENTED_VIEW_COUNT, 2, -1)
    assert all(not np.allclose(per_view[v], images.reshape(2, -1), atol=2) for v in range(AUGMENTED_VIEW_COUNT))
    distinct = {per_view[v].round().astype(np.int64).tobytes() for v in range(AUGMENTED_VIEW_COUNT)}
    assert len(distinct) == AUGMENTED_VIEW_COUNT


def test_augmented_views_keep_a_symmetric_lesion_where_it_is():
    """A centred disc stays centred and keeps roughly its size under every draw (turns, small zooms)."""
    from skinlib.runtime.views import AUGMENTED_VIEW_COUNT, augmented_views

    image = np.full((1, 48, 48, 3), 40, np.uint8)
    yy, xx = np.mgrid[:48, :48]
    image[0][(yy - 23.5) ** 2 + (xx - 23.5) ** 2 < 100] = 220
    views = augmented_views(image)
    for view in views:
        bright = view.mean(axis=-1) > 130
        ys, xs = np.nonzero(bright)
        assert abs(ys.mean() - 23.5) < 2 and abs(xs.mean() - 23.5) < 2
        assert 0.7 < bright.sum() / (image[0, ..., 0] > 130).sum() < 1.4
    assert len(views) == AUGMENTED_VIEW_COUNT


def test_augmented_tta_views_take_no_scales_and_show_no_identity_view():
    with pytest.raises(ValueError, match="leave the scales out"):
        Views("augmented", scales=(1.0, 1.2), draws=16)
    assert Views.augmented().identity_start(2) is None and Views.dihedral().identity_start(2) == 0
    assert Views.augmented().count == 16
    assert (Views.dihedral().describe(), Views.dihedral((1.0, 1.2)).describe(), Views.augmented().describe()) == (
        "8 dihedral",
        "16 dihedral at scales 1, 1.2",
        "16 augmented",
    )


def test_cli_augmented_views_need_tta_and_no_scales(tmp_path, capsys):
    from skinlib.cli import main

    image = str(tmp_path / "x.jpg")
    assert main(["predict", image, "--out", str(tmp_path), "--tta-augmented"]) == 2
    assert "add --tta" in capsys.readouterr().err
    assert main(["predict", image, "--out", str(tmp_path), "--tta", "--tta-augmented", "--tta-scales", "1.2"]) == 2
    assert "leave out --tta-scales" in capsys.readouterr().err


# --------------------------------------------------------------------------- the Views value


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(3).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)


def test_single_views_are_the_batch_itself(batch):
    views = Views.single()
    assert views == SINGLE and not views.is_tta and views.count == 1 and views.calibration_key == "plain"
    assert views.expand(batch) is batch
    probs = np.random.default_rng(0).random((3, 7))
    assert views.fold(probs, 3) is probs and views.identity_start(3) == 0
    assert views.record() == {"tta": False} and views.title() == "" and views.describe() == "single view"


def test_dihedral_views_expand_scale_major_and_fold_back(batch):
    views = Views.dihedral((1.2, 1.0))
    expanded = views.expand(batch)
    assert views.is_tta and views.count == 16 and expanded.shape == (16 * 3, 16, 16, 3)
    for scale_index, scale in enumerate(views.scales):
        for v in range(len(DIHEDRAL)):
            start = (scale_index * len(DIHEDRAL) + v) * 3
            assert np.array_equal(expanded[start : start + 3], dihedral(zoom(batch, scale), v))
    start = views.identity_start(3)
    assert start == 8 * 3 and np.array_equal(expanded[start : start + 3], batch)
    per_view = np.repeat(np.arange(16, dtype=np.float32), 3 * 7).reshape(48, 7)  # view v predicts v everywhere
    assert np.allclose(views.fold(per_view, 3), 7.5) and views.fold(per_view, 3).shape == (3, 7)
    assert Views.dihedral((1.2,)).identity_start(3) is None  # no view shows the input as it is
    assert views.calibration_key == Views.dihedral().calibration_key == "tta"


def test_augmented_views_expand_their_seeded_draws_and_fold_back(batch):
    from skinlib.runtime.views import augmented_views

    views = Views.augmented(count=3, seed=5)
    expanded = views.expand(batch)
    assert views.count == 3 and expanded.shape == (9, 16, 16, 3)
    assert np.array_equal(expanded, augmented_views(batch, 3, seed=5))
    assert not np.array_equal(expanded, Views.augmented(count=3, seed=6).expand(batch))
    assert np.allclose(views.fold(np.ones((9, 7)), 3), 1.0)
    assert views.calibration_key == "tta_augmented" and views.identity_start(3) is None


def test_what_results_record_and_titles_say():
    assert Views.dihedral().record() == {"tta": True}  # the plain 8 views: nothing more to say
    assert Views.dihedral((1.0, 1.2)).record() == {
        "tta": True,
        "tta_views": "16 dihedral at scales 1, 1.2",
        "tta_scales": [1.0, 1.2],
    }
    assert Views.augmented().record() == {"tta": True, "tta_views": "16 augmented"}
    assert Views.dihedral().title() == " (TTA, 8 dihedral views)"
    assert Views.augmented().title() == " (TTA, 16 augmented views)"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Views("single", scales=(1.0,)), "use Views.dihedral"),
        (lambda: Views("single", draws=16), "belong to augmented views"),
        (lambda: Views("dihedral"), "between 0.5 and 2"),
        (lambda: Views.dihedral(()), "between 0.5 and 2"),
        (lambda: Views.dihedral((1.0, 3.0)), "between 0.5 and 2"),
        (lambda: Views("dihedral", scales=(1.0,), draws=4), "belong to augmented views"),
        (lambda: Views("augmented", scales=(1.2,), draws=16), "leave the scales out"),
        (lambda: Views.augmented(0), "at least 1 view"),
        (lambda: Views("zoomed"), "must be one of"),
    ],
)
def test_an_invalid_combination_cannot_be_built(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_views_are_frozen_values():
    views = Views.dihedral([1, 1.2])
    assert (
        views.scales == (1.0, 1.2)
        and views == Views.dihedral((1.0, 1.2))
        and hash(views) == hash(Views.dihedral((1.0, 1.2)))
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        views.scales = (2.0,)


def test_the_classifier_refuses_anything_but_views():
    from skinlib.models.folder import ClassifierSpec
    from skinlib.runtime import StageTwo

    stage = StageTwo(model=object(), spec=ClassifierSpec(backbone="lite0", attention=True, image_size=16))
    with pytest.raises(TypeError, match="must be a skinlib.runtime.views.Views"):
        stage.temperature_for(True)
    assert stage.temperature_for(Views.dihedral()) == 1.0


def test_cli_builds_views_from_its_flags():
    import argparse

    from skinlib.cli import UsageError, _views

    def flags(tta=False, scales=None, augmented=False):
        return argparse.Namespace(tta=tta, tta_scales=scales, tta_augmented=augmented)

    assert _views(flags()) == Views.single()
    assert _views(flags(tta=True)) == Views.dihedral()
    assert _views(flags(tta=True, scales=[1.0, 1.2])) == Views.dihedral((1.0, 1.2))
    assert _views(flags(tta=True, augmented=True)) == Views.augmented()
    for bad, message in (
        (flags(scales=[1.2]), "add --tta"),
        (flags(augmented=True), "add --tta"),
        (flags(tta=True, scales=[1.2], augmented=True), "leave out --tta-scales"),
        (flags(tta=True, scales=[5.0]), "--tta-scales: TTA scales must be"),
    ):
        with pytest.raises(UsageError, match=message):
            _views(bad)
