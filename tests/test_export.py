"""`skinlib export --format keras`: the files load with `keras.saving.load_model` in a fresh Python that imports
only skinlib (for its registered layers) and Keras, and answer what the runtime answers.

Single stages are held to float32 rounding (1e-5) on the inputs the runtime gives them. The dual-stage model
re-implements the OpenCV/SciPy steps between the stages with keras.ops (skinlib/export.py says where it can
differ); on the fixed images here it is held to: the same mask and lesion_found, crops at most one 8-bit level
apart, the same top class, and probabilities within DUAL_TOLERANCE of `DualStage.predict` (measured when this
was written: at most 6e-5 on the first 64 images of HAM10000_images_part_1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skinlib.cli import main
from skinlib.data import CLASSES
from skinlib.data.errors import DataError
from skinlib.data.images import fit_size, read_image
from skinlib.export import export_keras
from skinlib.runtime import DEFAULT_CLASSIFIER, DualStage, StageTwo

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

REPO = Path(__file__).resolve().parent.parent
SINGLE_STAGE_TOLERANCE = 1e-5
DUAL_TOLERANCE = 1e-3
#: How many real images (the first by image_id) the dual-stage model is compared on.
IMAGES = 12

# Run in a fresh interpreter: only skinlib (which must not import Keras itself) and Keras, then load_model.
LOADER = r"""
import sys
import numpy as np
import skinlib
assert "keras" not in sys.modules, "import skinlib imported Keras"
import keras

folder, inputs = sys.argv[1], np.load(sys.argv[2])
out = {}
for name in ("classifier", "ensemble", "unet", "dual"):
    model = keras.saving.load_model(f"{folder}/{name}.keras")
    for key in sorted(k for k in inputs.files if k.startswith(name + ":")):
        result = model.predict_on_batch(inputs[key])
        if isinstance(result, dict):
            out.update({f"{key}:{part}": np.asarray(value) for part, value in result.items()})
        else:
            out[key] = np.asarray(result)
model = keras.saving.load_model(f"{folder}/dual.keras")
out["uint8"] = np.asarray(model.predict_on_batch(inputs["dual:0"].astype(np.uint8))["probabilities"])
# (Keras itself imports OpenCV and SciPy when they are installed; skinlib's runtime stays out)
leaked = sorted(m for m in sys.modules if m.split(".")[:2] in (["skinlib", "predict"], ["skinlib", "segmentation"],
                                                              ["skinlib", "data"]))
assert not leaked, f"loading and running the exported models imported {leaked}"
np.savez(sys.argv[3], **out)
"""


def _ensemble_folder(folder: Path) -> Path:
    """The shipped classifier as a two-member ensemble: the second member's head scaled, so the members differ."""
    shutil.copytree(DEFAULT_CLASSIFIER, folder)
    with np.load(folder / "weights.npz") as stored:
        weights = dict(stored)
    weights["predictions/kernel"] = (weights["predictions/kernel"].astype(np.float32) * 1.5).astype(np.float16)
    np.savez_compressed(folder / "weights_b.npz", **weights)
    spec = json.loads((folder / "model.json").read_text())
    spec["members"] = ["weights.npz", "weights_b.npz"]
    (folder / "model.json").write_text(json.dumps(spec))
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each stage written by the command line (the ensemble through the library), in one folder."""
    folder = tmp_path_factory.mktemp("exported")
    for stage in ("classifier", "unet", "dual"):
        assert main(["export", "--format", "keras", "--stage", stage, "--out", str(folder / f"{stage}.keras")]) == 0
    ensemble = _ensemble_folder(tmp_path_factory.mktemp("ensemble") / "classifier")
    export_keras(folder / "ensemble.keras", stage="classifier", model_dir=ensemble)
    return folder, ensemble


@pytest.fixture(scope="module")
def images(metadata):
    """Real HAM10000 images (the first by image_id), a blank one (no lesion) and one of another aspect ratio."""
    paths = metadata.sort_values("image_id")["image_path"].iloc[:IMAGES]
    real = [read_image(p) for p in paths]
    blank = np.full_like(real[0], 180)
    narrow = np.ascontiguousarray(real[1][:, real[1].shape[1] // 8 : -real[1].shape[1] // 8])  # 150 x 150 -> 3:4
    narrow = np.ascontiguousarray(narrow[: narrow.shape[0] - 17])  # not square either
    return real + [blank, narrow]


@pytest.fixture(scope="module")
def runtime():
    return DualStage.load()


@pytest.fixture(scope="module")
def loaded(exported, images, runtime, tmp_path_factory):
    """What the exported models answer in a fresh interpreter, keyed like the inputs written for it."""
    folder, _ = exported
    work = tmp_path_factory.mktemp("loaded")
    _, _, crops = runtime.prepare(images[:IMAGES])
    unet_size = runtime.segmenter.image_size
    inputs = {
        "classifier:crops": crops.astype(np.float32),
        "classifier:full": np.stack(images[:2]).astype(np.float32),  # another size: fitted in the model
        "ensemble:crops": crops.astype(np.float32),
        "unet:fitted": np.stack([fit_size(i, unet_size, "pad") for i in images[:4]]).astype(np.float32),
        "unet:image": np.stack(images[:4]).astype(np.float32),
        "unet:narrow": images[-1][None].astype(np.float32),
    }
    inputs.update({f"dual:{i}": image[None].astype(np.float32) for i, image in enumerate(images)})
    np.savez(work / "inputs.npz", **inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")  # this checkout's skinlib, nothing else
    result = subprocess.run(
        [sys.executable, "-c", LOADER, str(folder), str(work / "inputs.npz"), str(work / "out.npz")],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    with np.load(work / "out.npz") as out:
        return dict(out), inputs


@pytest.mark.slow
@pytest.mark.data
def test_classifier_stage_equals_calibrated_probabilities(loaded, runtime, exported):
    out, inputs = loaded
    crops = inputs["classifier:crops"].astype(np.uint8)
    expected = runtime.classifier.probabilities(crops)
    np.testing.assert_allclose(out["classifier:crops"], expected, atol=SINGLE_STAGE_TOLERANCE)
    assert out["classifier:crops"].shape == (len(crops), len(CLASSES))
    # a crop of another size is fitted as predict fits it (INTER_AREA here: HAM's 4:3 images, padded)
    size = (runtime.classifier.image_size,) * 2
    full = [fit_size(image.astype(np.uint8), size, "pad") for image in inputs["classifier:full"]]
    np.testing.assert_allclose(
        out["classifier:full"], runtime.classifier.probabilities(np.stack(full)), atol=SINGLE_STAGE_TOLERANCE
    )
    # an ensemble averages its members, then calibrates: StageTwo on the same folder
    ensemble = StageTwo.load(exported[1])
    each = [ensemble.member_probabilities(i, crops) for i in range(2)]
    assert np.abs(each[0] - each[1]).max() > 1e-3, "the two members should differ"
    np.testing.assert_allclose(out["ensemble:crops"], ensemble.probabilities(crops), atol=SINGLE_STAGE_TOLERANCE)


@pytest.mark.slow
@pytest.mark.data
def test_unet_stage_equals_the_probability_map(loaded, runtime, images):
    out, inputs = loaded
    segmenter = runtime.segmenter
    fitted = inputs["unet:fitted"]
    np.testing.assert_allclose(
        out["unet:fitted"], segmenter.model.predict_on_batch(fitted), atol=SINGLE_STAGE_TOLERANCE
    )
    np.testing.assert_allclose(
        out["unet:image"][..., 0], np.stack(segmenter.probabilities(images[:4])), atol=SINGLE_STAGE_TOLERANCE
    )
    assert out["unet:image"].shape == (4, *images[0].shape[:2], 1)
    narrow = segmenter.probabilities([images[-1]])[0]
    assert out["unet:narrow"].shape == (1, *images[-1].shape[:2], 1)
    # padded to the U-Net's 4:3: INTER_AREA sums may round one level apart on a few pixels of its input
    gap = float(np.abs(out["unet:narrow"][0, ..., 0] - narrow).max())
    print(
        f"U-Net export vs UNetSegmenter.probabilities, a {images[-1].shape[1]}x{images[-1].shape[0]} image: "
        f"largest gap {gap:.2e}"
    )
    assert gap < 0.02


@pytest.mark.slow
@pytest.mark.data
def test_dual_stage_agrees_with_predict(loaded, runtime, images):
    out, _ = loaded
    expected = runtime.predict(images)
    _, _, crops = runtime.prepare(images)
    gaps = []
    for i, record in enumerate(expected):
        probabilities = out[f"dual:{i}:probabilities"][0]
        reference = np.array([record["probabilities"][c] for c in CLASSES])
        gaps.append(float(np.abs(probabilities - reference).max()))
        assert CLASSES[int(np.argmax(probabilities))] == record["prediction"], f"image {i}"
        assert bool(out[f"dual:{i}:lesion_found"][0]) is record["lesion_found"], f"image {i}"
        assert np.array_equal(out[f"dual:{i}:mask"][0, ..., 0] > 0.5, record["mask"]), f"image {i}"
        assert np.abs(out[f"dual:{i}:crop"][0] - crops[i]).max() <= 1, f"image {i}"
    print(f"dual export vs DualStage.predict, {len(images)} images: largest probability gap {max(gaps):.2e}")
    assert max(gaps) < DUAL_TOLERANCE, gaps
    assert expected[IMAGES]["lesion_found"] is False, "the blank image should fall back to the full image"
    np.testing.assert_allclose(out["uint8"], out["dual:0:probabilities"], atol=1e-7)  # uint8 input works alike


@pytest.mark.slow
def test_import_order_does_not_matter_for_registration():
    code = (
        "import keras, skinlib; "
        "print(all(keras.saving.get_registered_object(f'skinlib>{n}') is not None for n in "
        "('ChannelAttention', 'SpatialAttention', 'ShadesOfGray', 'FitSize', 'UnfitSize', 'LesionMask', "
        "'LesionCrop', 'TemperatureScaling')))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr[-2000:]


# --------------------------------------------------------------------------- errors (no model is built)


def test_the_command_offers_every_stage_and_format_without_importing_keras():
    from skinlib.cli import build_parser
    from skinlib.export import FORMATS, STAGES

    parser = build_parser()
    for stage in STAGES:
        assert parser.parse_args(["export", "--stage", stage, "--out", "x.keras"]).stage == stage
    for name in FORMATS:
        assert parser.parse_args(["export", "--format", name, "--out", "x.keras"]).format == name
    code = (
        "import sys\nfrom skinlib.cli import main\ntry:\n    main(['export', '--help'])\n"
        "except SystemExit:\n    pass\nprint('keras' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    help_text = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout
    assert "keras.saving.load_model" in help_text and "classifier:" in help_text and "unet:" in help_text
    assert help_text.strip().endswith("False"), "`skinlib export --help` imported Keras"


def test_existing_file_is_refused_without_force(tmp_path, capsys):
    target = tmp_path / "skin.keras"
    target.write_bytes(b"keep me")
    assert main(["export", "--out", str(target)]) == 2
    message = capsys.readouterr().err
    assert str(target) in message and "--force" in message
    assert target.read_bytes() == b"keep me"


def test_a_file_name_without_keras_suffix_is_refused(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path / "skin.h5")]) == 2
    message = capsys.readouterr().err
    assert "skin.h5" in message and ".keras" in message
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "stage, flag", [("classifier", "--model"), ("dual", "--model"), ("unet", "--unet"), ("dual", "--unet")]
)
def test_a_folder_that_is_not_a_model_folder_is_named(tmp_path, capsys, stage, flag):
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    assert main(["export", "--stage", stage, flag, str(empty), "--out", str(tmp_path / "x.keras")]) == 2
    message = capsys.readouterr().err
    assert str(empty) in message and "model.json" in message and flag in message
    assert not (tmp_path / "x.keras").exists()


def test_unknown_format_and_misplaced_folders_are_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["export", "--format", "onnx", "--out", str(tmp_path / "x.keras")])
    assert stop.value.code == 2 and "invalid choice: 'onnx'" in capsys.readouterr().err
    with pytest.raises(DataError, match="unknown export format 'onnx'"):
        export_keras(tmp_path / "x.keras", format="onnx")
    assert main(["export", "--stage", "classifier", "--unet", str(tmp_path), "--out", str(tmp_path / "x.keras")]) == 2
    assert "--unet is for --stage dual or unet" in capsys.readouterr().err
