"""Test-time augmentation views: the dihedral group, zooms, their order, and the CLI's checks."""

import numpy as np
import pytest

from skinlib.training.features import dihedral
from skinlib.tta import average_views, check_scales, tta_views, view_count, zoom


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
    views = tta_views(images, (1.0, 1.25))
    assert views.shape == (view_count((1.0, 1.25)) * 3, 16, 16, 3) == (48, 16, 16, 3)
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
