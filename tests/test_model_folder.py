"""The typed model folder (`skinlib.models.folder`): model.json and metrics.json read and written by one class."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from skinlib.data import CLASSES
from skinlib.data.errors import DataError
from skinlib.models.folder import (
    SCHEMA_VERSION,
    AugmentedTTASpec,
    ClassifierSpec,
    ClassPriorSpec,
    MetadataFusionSpec,
    ModelFolder,
    NoveltySpec,
    ReferralSpec,
    UNetSpec,
)
from skinlib.shipped import CLASSIFIER, UNET

shipped = pytest.mark.skipif(not (CLASSIFIER / "model.json").is_file(), reason=f"no shipped classifier in {CLASSIFIER}")

REFERRAL = ReferralSpec(target_sensitivity_on_val=0.85, threshold=0.2, threshold_tta=0.25)
SECTIONS = {
    "melanoma_referral": REFERRAL,
    "metadata_fusion": MetadataFusionSpec(
        weight=0.5,
        weight_tta=0.75,
        melanoma_referral=ReferralSpec(target_sensitivity_on_val=0.85, threshold=0.1, threshold_tta=0.15),
        tta_recommended=True,
        fitted_on="val",
    ),
    "novelty": NoveltySpec(threshold=2.0, components=8, fitted_on="training features"),
    "tta_augmented": AugmentedTTASpec(views=16, seed=0, temperature=0.7, recommended=False),
    "class_prior": ClassPriorSpec(
        training=tuple(np.full(7, 1 / 7)),
        model=(0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 0.1),
        training_images=70,
        model_from="counts",
    ),
}


def small_spec(**changes) -> ClassifierSpec:
    return ClassifierSpec(backbone="lite0", attention=True, image_size=32, **changes)


def write_raw(folder, data) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps(data))


# ----------------------------------------------------------------------------------- round trips


def test_a_spec_with_every_section_round_trips(tmp_path):
    spec = small_spec(
        temperature=0.9,
        temperature_tta=0.8,
        tta_recommended=False,
        members=("a.npz", "b.npz"),
        member_seeds=(0, 1),
        training_seed=0,
        **SECTIONS,
    )
    folder = ModelFolder(tmp_path)
    folder.write_spec(spec)
    assert folder.read_spec() == spec
    stored = json.loads((tmp_path / "model.json").read_text())
    assert stored["kind"] == "classifier" and stored["schema_version"] == SCHEMA_VERSION
    assert stored["members"] == ["a.npz", "b.npz"] and stored["metadata_fusion"]["prior"] == "metadata_prior.json"
    assert "temperature_tta" in stored and "novelty" in stored
    assert "temperature_tta" not in small_spec().to_dict() and "novelty" not in small_spec().to_dict()  # None: left out


def test_defaults_live_in_the_spec():
    spec = small_spec()
    assert (spec.source, spec.margin, spec.temperature, spec.uncertain_below, spec.dropout) == (
        "crop",
        0.25,
        1.0,
        0.5,
        0.3,
    )
    assert spec.classes == CLASSES and spec.weights_files == ("weights.npz",) and spec.colour_constancy is False
    assert spec.files() == ["weights.npz"]
    assert small_spec(**SECTIONS).files() == ["weights.npz", "metadata_prior.json", "novelty.npz"]


def _old_format_copy(path, folder) -> dict:
    """A copy of a model folder whose model.json is in the format before schema_version (and the classifier's
    colour_constancy field, False then) existed; returns that model.json."""
    shutil.copytree(path, folder)
    spec = json.loads((folder / "model.json").read_text())
    assert spec.get("colour_constancy", False) is False, "only a model without colour constancy had the old format"
    old = {key: value for key, value in spec.items() if key not in ("schema_version", "colour_constancy")}
    (folder / "model.json").write_text(json.dumps(old, indent=2) + "\n")
    return old


@pytest.mark.parametrize("path, kind", [(CLASSIFIER, "classifier"), (UNET, "unet")])
def test_the_shipped_folders_read_as_version_1_and_write_back_the_same_numbers(path, kind, tmp_path):
    """A shipped model.json in the format written before schema_version existed (the U-Net's is; the classifier's is
    made so here) reads as version 1, and writing it back only adds that field (and the classifier's
    colour_constancy default, which newer exports write anyway)."""
    if not (path / "model.json").is_file():
        pytest.skip(f"no shipped model in {path}")
    original = _old_format_copy(path, tmp_path / "old")
    spec = ModelFolder(tmp_path / "old", kind).read_spec()
    assert isinstance(spec, ClassifierSpec if kind == "classifier" else UNetSpec)
    copy = ModelFolder(tmp_path, kind)
    copy.write_spec(spec)
    written = json.loads(copy.spec_path.read_text())
    added = {"schema_version": SCHEMA_VERSION, **({"colour_constancy": False} if kind == "classifier" else {})}
    assert written == {**original, **added}
    assert [k for k in written if k in original] == list(original)  # same key order
    assert copy.read_spec() == spec


@shipped
def test_the_shipped_spec_has_its_sections_typed():
    spec = ModelFolder(CLASSIFIER).read_spec()
    recorded = json.loads((CLASSIFIER / "model.json").read_text())
    assert spec.melanoma_referral.threshold == recorded["melanoma_referral"]["threshold"]
    assert (
        spec.metadata_fusion.melanoma_referral.threshold_tta
        == recorded["metadata_fusion"]["melanoma_referral"]["threshold_tta"]
    )
    assert spec.novelty.file == recorded["novelty"]["file"] and spec.tta_augmented.views == 16
    assert list(spec.class_prior.training) == recorded["class_prior"]["training"]
    assert spec.temperature_for("plain") == recorded["temperature"]
    assert spec.temperature_for("tta") == recorded["temperature_tta"]
    assert spec.temperature_for("tta_augmented") == recorded["tta_augmented"]["temperature"]


@shipped
def test_an_old_format_folder_loads_and_predicts_exactly_as_after_a_rewrite(tmp_path):
    """A copy of today's files (no schema_version) loads; rewritten in the current schema, the same probabilities."""
    from skinlib.runtime import StageTwo, Views

    old, new = tmp_path / "old", tmp_path / "new"
    _old_format_copy(CLASSIFIER, old)
    shutil.copytree(CLASSIFIER, new)
    ModelFolder(new).write_spec(ModelFolder(new).read_spec())
    assert "schema_version" not in json.loads((old / "model.json").read_text())
    assert json.loads((new / "model.json").read_text())["schema_version"] == SCHEMA_VERSION
    inputs = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3)).astype(np.uint8)
    before, after = StageTwo.load(old), StageTwo.load(new)
    assert before.spec == after.spec
    for views in (Views.single(), Views.dihedral()):
        np.testing.assert_array_equal(before.probabilities(inputs, views), after.probabilities(inputs, views))


# ------------------------------------------------------------------------------------- post-hoc fits


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_record_fit_writes_each_section_to_both_files(section, tmp_path):
    folder = ModelFolder(tmp_path)
    folder.write_spec(small_spec())
    folder.write_metrics({"command": "train", "config": {"seed": 0}})
    entry = SECTIONS[section]
    folder.record_fit(section, entry, {"command": f"fit {section}", "score": np.float64(0.5)})
    assert getattr(folder.read_spec(), section) == entry
    metrics = folder.read_metrics()
    assert metrics[section] == {"command": f"fit {section}", "score": 0.5} and metrics["config"] == {"seed": 0}
    folder.record_fit(section, entry.to_dict(), {"command": "again"})  # its dict is checked and typed the same
    assert getattr(folder.read_spec(), section) == entry and folder.read_metrics()[section] == {"command": "again"}


def test_record_fit_refuses_an_unknown_section_or_a_bad_entry(tmp_path):
    folder = ModelFolder(tmp_path)
    folder.write_spec(small_spec())
    folder.write_metrics({})
    with pytest.raises(ValueError, match="not a section"):
        folder.record_fit("temperature", 1.0, {})
    with pytest.raises(DataError, match=r'"tta_augmented".*missing \[\'temperature\'\]'):
        folder.record_fit("tta_augmented", {"views": 16, "seed": 0}, {})
    assert folder.read_spec() == small_spec() and folder.read_metrics() == {}  # nothing written


def test_the_posthoc_record_fit_goes_through_the_folder(tmp_path):
    from skinlib.workflows.posthoc import record_fit

    folder = ModelFolder(tmp_path)
    folder.write_spec(small_spec())
    folder.write_metrics({})
    record_fit(tmp_path, "melanoma_referral", REFERRAL.to_dict(), {"command": "by hand"})
    assert folder.read_spec().melanoma_referral == REFERRAL


# ------------------------------------------------------------------------------ calibration lookups


def test_calibration_lookups_by_key():
    spec = small_spec(temperature=1.5, **SECTIONS)
    assert spec.temperature_for("plain") == 1.5 and spec.temperature_for("tta") == 1.5  # no TTA temperature yet
    assert dataclasses.replace(spec, temperature_tta=1.2).temperature_for("tta") == 1.2
    assert spec.temperature_for("tta_augmented") == 0.7
    assert (
        spec.referral_threshold("plain"),
        spec.referral_threshold("tta"),
        spec.referral_threshold("tta_augmented"),
    ) == (0.2, 0.25, 0.25)
    assert (spec.referral_threshold("plain", metadata=True), spec.referral_threshold("tta", metadata=True)) == (
        0.1,
        0.15,
    )
    assert (spec.metadata_weight("plain"), spec.metadata_weight("tta_augmented")) == (0.5, 0.75)
    bare = small_spec()
    assert bare.referral_threshold("plain") is None and bare.referral_threshold("tta", metadata=True) is None
    with pytest.raises(DataError, match="skinlib fit-tta"):
        bare.temperature_for("tta_augmented")
    with pytest.raises(DataError, match="skinlib fit-metadata"):
        bare.metadata_weight("plain")
    with pytest.raises(ValueError, match="calibration key"):
        spec.temperature_for("dihedral")


# ------------------------------------------------------------------------------------- bad files


def test_a_missing_model_json_names_the_file_and_the_command_that_makes_it(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"model\.json not found: make one with `skinlib train-classifier --out"
    ):
        ModelFolder(tmp_path).read_spec()
    with pytest.raises(FileNotFoundError, match="skinlib train-unet --out"):
        ModelFolder(tmp_path, "unet").read_spec()
    with pytest.raises(FileNotFoundError, match=r"metrics\.json not found"):
        ModelFolder(tmp_path).read_metrics()


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"kind": "unet"}), "describes a 'unet' model, not a 'classifier'"),
        (
            json.dumps({"kind": "classifier", "schema_version": SCHEMA_VERSION + 1, "backbone": "lite0"}),
            "update skinlib",
        ),
        (json.dumps({"kind": "classifier", "schema_version": "one"}), "schema_version"),
        (json.dumps({"kind": "classifier", "backbone": "lite0", "attention": True}), r"missing \['image_size'\]"),
        (
            json.dumps(
                {"kind": "classifier", "backbone": "lite0", "attention": True, "image_size": 32, "temprature": 1}
            ),
            r"unknown key\(s\) \['temprature'\]",
        ),
        (
            json.dumps({"kind": "classifier", "backbone": "lite0", "attention": "yes", "image_size": 32}),
            '"attention": expected true or false',
        ),
        (
            json.dumps({"kind": "classifier", "backbone": "lite0", "attention": True, "image_size": 32.5}),
            '"image_size": expected a whole number',
        ),
        (
            json.dumps(
                {"kind": "classifier", "backbone": "lite0", "attention": True, "image_size": 32, "source": "mask"}
            ),
            '"source" must be "crop" or "full"',
        ),
        (
            json.dumps(
                {
                    "kind": "classifier",
                    "backbone": "lite0",
                    "attention": True,
                    "image_size": 32,
                    "novelty": {"threshold": 1.0},
                }
            ),
            r'"novelty": missing \[\'components\'\]',
        ),
        (
            json.dumps(
                {
                    "kind": "classifier",
                    "backbone": "lite0",
                    "attention": True,
                    "image_size": 32,
                    "melanoma_referral": {
                        "threshold": 0.1,
                        "threshold_tta": 0.1,
                        "target_sensitivity_on_val": 0.8,
                        "extra": 1,
                    },
                }
            ),
            r'"melanoma_referral": unknown key',
        ),
        (
            json.dumps(
                {
                    "kind": "classifier",
                    "backbone": "lite0",
                    "attention": True,
                    "image_size": 32,
                    "class_prior": {"training": [0.5, 0.5], "model": [0.5, 0.5]},
                }
            ),
            "7 classes but 2",
        ),
    ],
)
def test_a_bad_model_json_is_a_data_error_naming_the_file(tmp_path, content, message):
    (tmp_path / "model.json").write_text(content)
    with pytest.raises(DataError, match=message) as error:
        ModelFolder(tmp_path).read_spec()
    assert str(tmp_path / "model.json") in str(error.value)


def test_a_bad_model_json_stops_the_cli_with_its_message(tmp_path, capsys):
    from skinlib.cli import main

    write_raw(
        tmp_path / "model",
        {"kind": "classifier", "backbone": "lite0", "attention": True, "image_size": 32, "temprature": 1.0},
    )
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--model", str(tmp_path / "model")]) == 2
    assert "temprature" in capsys.readouterr().err


def test_unet_spec_round_trips_and_checks_its_size(tmp_path):
    spec = UNetSpec(
        encoder="lite0", image_size=(96, 128), decoder_filters=(32, 16), split_seed_file="s.json", training_seed=0
    )
    ModelFolder(tmp_path, "unet").write_spec(spec)
    assert ModelFolder(tmp_path, "unet").read_spec() == spec
    write_raw(tmp_path / "bad", {"kind": "unet", "encoder": "lite0", "image_size": [96], "decoder_filters": [8]})
    with pytest.raises(DataError, match="expected 2 values"):
        ModelFolder(tmp_path / "bad", "unet").read_spec()
    with pytest.raises(TypeError, match="holds a UNetSpec"):
        ModelFolder(tmp_path, "unet").write_spec(small_spec())
