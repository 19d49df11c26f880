"""Colour casts: the cast itself, the scores under casts, and `skinlib colour-casts` on real data."""

import json

import numpy as np
import pytest

from skinlib.cli import main
from skinlib.data import CLASSES
from skinlib.evaluation.robustness import COLOUR_CASTS, colour_cast, colour_cast_scores


def test_a_cast_multiplies_each_channel_rounds_and_clips():
    image = np.array([[[[100, 100, 100], [250, 10, 0]]]], np.uint8)
    out = colour_cast(image, (1.15, 1.0, 0.5))
    np.testing.assert_array_equal(out, [[[[115, 100, 50], [255, 10, 0]]]])
    assert out.dtype == np.uint8


@pytest.mark.parametrize("gains", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, -1.0, 1.0)])
def test_bad_gains_are_refused(gains):
    with pytest.raises(ValueError, match="3 positive RGB gains"):
        colour_cast(np.zeros((1, 2, 2, 3), np.uint8), gains)


def test_every_cast_changes_the_colour_and_not_the_brightness():
    for name, gains in COLOUR_CASTS.items():
        assert np.prod(gains) == pytest.approx(1.0), name
    assert len({tuple(g) for g in COLOUR_CASTS.values()}) == len(COLOUR_CASTS)


class RednessClassifier:
    """Calls an image melanoma (class 4) when its red channel outweighs its blue one, else nevus (class 5):
    a model that leans on the light's colour."""

    def probabilities(self, inputs, tta=False):
        red, blue = inputs[..., 0].mean(axis=(1, 2)), inputs[..., 2].mean(axis=(1, 2))
        probs = np.full((len(inputs), len(CLASSES)), 0.01)
        probs[np.arange(len(inputs)), np.where(red > blue, 4, 5)] = 0.94
        return probs


class ShapeClassifier:
    """The same two classes told apart by colour-free structure: melanoma when the top half is the brighter."""

    def probabilities(self, inputs, tta=False):
        gray = inputs.astype(float).mean(axis=-1)
        half = inputs.shape[1] // 2
        top_brighter = gray[:, :half].mean(axis=(1, 2)) > gray[:, half:].mean(axis=(1, 2))
        probs = np.full((len(inputs), len(CLASSES)), 0.01)
        probs[np.arange(len(inputs)), np.where(top_brighter, 4, 5)] = 0.94
        return probs


def lesions(n=40):
    """Half 'melanomas' that are slightly red and bright on top, half 'nevi' slightly blue and bright below."""
    rng = np.random.default_rng(0)
    labels = np.repeat([4, 5], n // 2)
    images = rng.integers(90, 110, size=(n, 8, 8, 3)).astype(np.float32)
    tint = np.where(labels[:, None] == 4, [1.05, 1.0, 0.95], [0.95, 1.0, 1.05])
    images *= tint[:, None, None, :]
    images[labels == 4, :4] += 20
    images[labels == 5, 4:] += 20
    return np.clip(images, 0, 255).astype(np.uint8), labels


def test_a_model_that_leans_on_colour_loses_under_a_cast_and_one_that_does_not_keeps_its_score():
    images, labels = lesions()
    colour = colour_cast_scores(RednessClassifier(), images, labels, bootstrap=200)
    shape = colour_cast_scores(ShapeClassifier(), images, labels, bootstrap=200)
    assert colour["none"]["accuracy"] == 1.0 and shape["none"]["accuracy"] == 1.0
    assert colour["strong warm"]["accuracy"] == 0.5  # every image now looks red: all called melanoma
    assert colour["strong warm"]["change"]["balanced_accuracy"]["difference"] < 0
    assert all(shape[name]["accuracy"] == 1.0 for name in COLOUR_CASTS)
    assert shape["warm"]["change"]["balanced_accuracy"] == {
        "difference": 0.0,
        "ci95": [0.0, 0.0],
        "standard_error": 0.0,
        "bootstrap_unit": "images",
        "units": 40,
    }
    assert colour["warm"]["gains"] == list(COLOUR_CASTS["warm"]) and "change" not in colour["none"]


def test_the_reference_cast_is_required():
    images, labels = lesions(8)
    with pytest.raises(ValueError, match="must include 'none'"):
        colour_cast_scores(RednessClassifier(), images, labels, casts={"warm": (1.1, 1.0, 1 / 1.1)})


def test_colour_casts_command_on_real_images(data_dir, tmp_path, capsys):
    out = tmp_path / "casts.json"
    assert (
        main(
            [
                "colour-casts",
                "--data",
                str(data_dir),
                "--model",
                "shipped=skinlib/shipped/classifier",
                "--limit",
                "20",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    study = json.loads(out.read_text())
    assert study["splits"] == ["val", "test"] and study["limit"] == 20
    shipped = study["models"]["shipped"]
    assert shipped["colour_constancy"] is False and set(shipped["test"]) == set(COLOUR_CASTS)
    for scores in shipped["test"].values():
        assert 0.0 <= scores["balanced_accuracy"] <= 1.0
    assert shipped["test"]["warm"]["change"]["balanced_accuracy"]["bootstrap_unit"] == "lesions"
    assert shipped["bootstrap_unit"] == "lesions"
    assert "shipped (colour constancy off)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "model, message", [("skinlib/shipped/classifier", "expected NAME=DIR"), ("x=models", "has no metrics.json")]
)
def test_colour_casts_command_refuses_bad_model_arguments(tmp_path, capsys, model, message):
    assert main(["colour-casts", "--model", model, "--out", str(tmp_path / "x.json")]) == 2
    assert message in capsys.readouterr().err


def test_the_figures_show_every_cast_and_model():
    from skinlib.plots import colour_cast_examples_figure, colour_cast_figure

    images, labels = lesions()
    study = {
        "casts": COLOUR_CASTS,
        "models": {
            "colour": {
                "colour_constancy": False,
                "test": colour_cast_scores(RednessClassifier(), images, labels, bootstrap=50),
            },
            "shape": {
                "colour_constancy": True,
                "test": colour_cast_scores(ShapeClassifier(), images, labels, bootstrap=50),
            },
        },
    }
    axes = colour_cast_figure(study).axes
    assert [t.get_text() for t in axes[0].get_xticklabels()] == list(COLOUR_CASTS)
    assert len(axes[0].patches) == 2 * len(COLOUR_CASTS)
    examples = colour_cast_examples_figure(images[0])
    assert len(examples.axes) == 2 * len(COLOUR_CASTS) and examples.axes[0].get_title() == "none"


def test_the_study_table_shows_each_change_with_its_interval():
    from skinlib.evaluation.robustness import colour_cast_rows

    change = {"balanced_accuracy": {"difference": -0.0641, "ci95": [-0.0902, -0.0371]}}
    study = {
        "casts": {"none": [1, 1, 1], "warm": [1.1, 1.0, 0.9]},
        "splits": ["test"],
        "models": {
            "shipped": {
                "test": {"none": {"balanced_accuracy": 0.6871}, "warm": {"balanced_accuracy": 0.6230, "change": change}}
            }
        },
    }
    assert colour_cast_rows(study) == [
        {
            "model": "shipped",
            "split": "test",
            "bootstrap": "images",
            "none": "0.687",
            "warm": "0.623 (-0.064 [-0.090, -0.037])",
        }
    ]  # no unit recorded: images


def test_update_rescores_some_models_and_keeps_the_others_with_their_bootstrap_unit():
    from skinlib.evaluation.robustness import colour_cast_rows, merge_colour_cast_studies

    def study(models, limit=None):
        return {"casts": {"none": [1, 1, 1]}, "splits": ["test"], "limit": limit, "models": models}

    old = study({"shipped": {"colour_constancy": False, "test": {}}, "cc": {"colour_constancy": True, "test": {}}})
    fresh = study({"shipped": {"colour_constancy": False, "bootstrap_unit": "lesions", "test": {}}})
    merged = merge_colour_cast_studies(old, fresh)
    assert merged["models"]["shipped"]["bootstrap_unit"] == "lesions"
    assert merged["models"]["cc"]["bootstrap_unit"] == "images"  # kept from before lesions were resampled
    with pytest.raises(ValueError, match="limit"):
        merge_colour_cast_studies(old, study(fresh["models"], limit=20))
    merged["models"]["cc"]["test"] = {"none": {"balanced_accuracy": 0.7}}
    merged["models"]["shipped"]["test"] = {"none": {"balanced_accuracy": 0.6}}
    assert [row["bootstrap"] for row in colour_cast_rows(merged)] == ["lesions", "images"]  # the study's order


def test_colour_casts_update_needs_an_existing_file(tmp_path, capsys):
    from skinlib.cli import main

    assert (
        main(
            [
                "colour-casts",
                "--model",
                "shipped=skinlib/shipped/classifier",
                "--update",
                "--out",
                str(tmp_path / "missing.json"),
            ]
        )
        == 2
    )
    assert "--update needs an existing" in capsys.readouterr().err
