"""A stage-2 recipe is data: each default lives in ClassifierConfig, and config <-> command round-trips."""

import dataclasses
import json

import pytest

from skinlib.cli import build_parser, train_classifier_config
from skinlib.training.recipe import (
    DEFAULTS,
    RECIPE_FLAGS,
    ClassifierConfig,
    format_phases,
    parse_phases,
    recipe_fields,
    recipe_flags,
)


def test_the_default_config_needs_no_flags_and_no_flag_means_the_default():
    assert recipe_flags(ClassifierConfig()) == []
    assert train_classifier_config([]) == ClassifierConfig()


@pytest.mark.parametrize(
    "changes",
    [
        {"image_size": 96},
        {"source": "full"},
        {"margin": 0.1},
        {"loss": "ce"},
        {"attention": False},
        {"colour_constancy": True},
        {"backbone": "lite2"},
        {"backbone_weights": None},
        {"train_views": 2},
        {"augment": "battery"},
        {"cache_at": "none"},
        {"phases": ((0, 2, 1e-3), (3, 5, 2.5e-4))},
        {"patience": 9},
        {"seed": 3},
        {"members": 3},
        {"train_limit": 700, "val_limit": 300},
        {"image_size": 128, "backbone_weights": None, "cache_at": "none", "phases": ((7, 20, 1e-3),), "patience": 8},
    ],
)
def test_a_config_round_trips_through_its_generated_command(changes):
    config = dataclasses.replace(ClassifierConfig(), **changes)
    assert train_classifier_config(recipe_flags(config)) == config


def test_every_recipe_flag_is_an_option_of_train_classifier_with_the_config_default_in_its_help():
    help_text = build_parser()._subparsers._group_actions[0].choices["train-classifier"].format_help()
    for spec in RECIPE_FLAGS:
        assert spec.flag in help_text
    assert "(default: 224)" in help_text and f"(default: {format_phases(DEFAULTS.phases)})" in help_text


def test_a_recipe_field_without_a_flag_cannot_be_turned_into_a_command():
    with pytest.raises(ValueError, match="no train-classifier flag sets dropout"):
        recipe_flags(dataclasses.replace(ClassifierConfig(), dropout=0.5))
    assert "dropout" in recipe_fields()


def test_phases_text_round_trips_and_bad_text_is_a_usage_error(capsys):
    assert parse_phases(format_phases(((0, 4, 1e-3), (2, 6, 3e-4)))) == ((0, 4, 1e-3), (2, 6, 3e-4))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train-classifier", "--phases", "0:4"])
    assert "STAGES:EPOCHS:RATE" in capsys.readouterr().err


def test_augment_is_a_recipe_flag_and_train_unet_takes_it_too():
    assert recipe_flags(dataclasses.replace(ClassifierConfig(), augment="battery")) == ["--augment", "battery"]
    assert ClassifierConfig().augment == "standard"
    parser = build_parser()
    assert parser.parse_args(["train-unet"]).augment == "standard"
    assert parser.parse_args(["train-unet", "--augment", "battery"]).augment == "battery"
    with pytest.raises(SystemExit):
        parser.parse_args(["train-unet", "--augment", "strong"])


def test_an_older_recorded_config_without_augment_reads_as_standard(tmp_path):
    from skinlib.training.recipe import config_from_metrics
    from skinlib.training.unet import UNetConfig

    recorded = {"config": {"image_size": [96, 128], "seed": 2}}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(recorded))
    assert config_from_metrics(UNetConfig, path).augment == "standard"
    assert config_from_metrics(ClassifierConfig, path).augment == "standard"


@pytest.mark.parametrize("flag, bad", [("--margin", "-0.1"), ("--margin", "3"), ("--views", "0")])
def test_a_crop_margin_or_view_count_out_of_range_is_a_usage_error_that_says_the_range(capsys, flag, bad):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train-classifier", flag, bad])
    err = capsys.readouterr().err
    assert flag in err and ("between 0 and 2" in err or "1 or more" in err)


def test_the_crop_margin_flag_reaches_the_config_and_back():
    config = train_classifier_config(["--margin", "0.1", "--views", "16"])
    assert (config.margin, config.train_views) == (0.1, 16)
    assert recipe_flags(config) == ["--margin", "0.1", "--views", "16"]
