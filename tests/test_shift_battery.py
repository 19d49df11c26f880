"""The shift battery: what each shift does to an image and its mask, and both stages scored under it."""

import json

import cv2
import numpy as np
import pytest

from skinlib.evaluation import shifts
from skinlib.shipped import SHIFT_BATTERY_RESULTS
from skinlib.workflows import shift_battery


@pytest.fixture
def image_and_mask():
    """A dark disc (the lesion) off centre on light skin, with some texture."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:150, :200]
    mask = (y - 70) ** 2 + (x - 110) ** 2 < 30**2
    image = np.full((150, 200, 3), (210, 160, 140), np.float32) + rng.normal(0, 6, (150, 200, 3))
    image[mask] = (90, 50, 40)
    return np.clip(image, 0, 255).astype(np.uint8), mask


@pytest.mark.parametrize("name", list(shifts.SHIFTS))
def test_every_shift_keeps_an_rgb_image_and_a_matching_mask(name, image_and_mask):
    image, mask = image_and_mask
    shifted, moved = shifts.apply_shift(name, image, mask)
    assert shifted.dtype == np.uint8 and shifted.ndim == 3 and shifted.shape[-1] == 3
    assert moved.shape == shifted.shape[:2] and moved.dtype == mask.dtype
    assert moved.any()
    if name == shifts.REFERENCE_SHIFT:
        assert shifted is image and moved is mask
    else:
        assert not np.array_equal(shifted, image) or shifted.shape != image.shape, f"{name} changed nothing"


def test_zoom_moves_the_mask_with_the_lesion(image_and_mask):
    image, mask = image_and_mask
    for factor in (1.3, 0.75):
        shifted, moved = shifts.apply_shift(f"zoom in {factor}" if factor > 1 else f"zoom out {factor}", image, mask)
        assert moved.sum() == pytest.approx(mask.sum() * factor**2, rel=0.1)
        # the mask still covers the dark pixels: the lesion moved with it
        assert shifted[moved].mean() < shifted[~moved].mean() - 50


def test_photometric_shifts_leave_the_mask_and_the_frame_alone(image_and_mask):
    image, mask = image_and_mask
    for name in ("cast warm", "darker", "blur 2%", "jpeg 10", "ring 0.6"):
        shifted, moved = shifts.apply_shift(name, image, mask)
        assert moved is mask and shifted.shape == image.shape
    darker, _ = shifts.apply_shift("darker", image, mask)
    assert darker.mean() == pytest.approx(0.7 * image.mean(), rel=0.02)
    ring, _ = shifts.apply_shift("ring 0.6", image, mask)
    assert ring[0, 0].max() == 0 and np.array_equal(ring[75, 100], image[75, 100])


def test_bad_input_is_refused_with_what_was_expected(image_and_mask):
    image, mask = image_and_mask
    with pytest.raises(ValueError, match="unknown shift"):
        shifts.apply_shift("fog", image, mask)
    with pytest.raises(ValueError, match="uint8 RGB"):
        shifts.apply_shift("darker", image.astype(np.float32), mask)
    with pytest.raises(ValueError, match="does not match"):
        shifts.apply_shift("darker", image, mask[:10])
    with pytest.raises(ValueError, match="quality"):
        shifts.jpeg(0)


def test_the_summary_names_the_worst_shift():
    scores = {
        "none": {},
        "blur": {"change": {"balanced_accuracy": {"difference": -0.01}}},
        "jpeg": {"change": {"balanced_accuracy": {"difference": -0.05}}},
    }
    summary = shift_battery.robustness_summary(scores)
    assert summary["worst_shift"] == "jpeg" and summary["mean_balanced_accuracy_change"] == pytest.approx(-0.03)


@pytest.mark.data
@pytest.mark.slow
def test_both_stages_are_scored_under_shifts_on_real_validation_images(data_dir):
    from skinlib.shipped import CLASSIFIER, UNET

    study = shift_battery.shift_battery_study(
        {"shipped": CLASSIFIER},
        data_dir=data_dir,
        limit=14,
        shifts=("none", "ring 0.6"),
        samples=50,
        progress=False,
        unet_candidates={"same": UNET},
    )
    assert study["split"] == "val" and 7 <= study["images"] <= 21
    ring = study["shifts"]["ring 0.6"]
    assert ring["family"] == "dermoscope ring" and 0 <= ring["dice_mean"] <= 1
    low, high = ring["dice_change"]["ci95"]
    assert low <= ring["dice_change"]["difference"] <= high
    same = study["unets"]["same"]  # the shipped U-Net against itself: identical masks, no difference
    assert same["clean_minus_reference"]["difference"] == 0 and same["battery_minus_reference"]["ci95"] == [0, 0]
    assert shift_battery.unet_verdict(same) == "no gain" and "U-Net same" in shift_battery.shift_battery_markdown(study)
    scores = study["models"]["shipped"]["shifts"]
    assert "change" not in scores["none"] and "balanced_accuracy" in scores["ring 0.6"]["change"]
    assert "ring 0.6" in shift_battery.shift_battery_markdown(study)
    with pytest.raises(ValueError, match="needs 'none'"):
        shift_battery.shift_battery_study({"shipped": CLASSIFIER}, data_dir=data_dir, shifts=("ring 0.6",))


@pytest.mark.data
@pytest.mark.slow
def test_a_unet_candidate_is_read_on_test_and_elsewhere_after_the_choice(data_dir, isic2017_dir, tmp_path):
    from skinlib.shipped import UNET

    isic = isic2017_dir
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for path in sorted((isic / "images").iterdir())[:6]:
        (images / path.name).symlink_to(path)
        (masks / f"{path.stem}_segmentation.png").symlink_to(isic / "masks" / f"{path.stem}_segmentation.png")
    held_out = shift_battery.unet_held_out(
        None, {"same": UNET}, data_dir, ("isic2017", images, masks), samples=50, progress=False, limit=14
    )
    test, elsewhere = held_out["same"]["ham10000_test"], held_out["same"]["isic2017"]
    assert test["minus_reference"]["bootstrap_unit"] == "lesions" and elsewhere["images"] == 6
    assert elsewhere["minus_reference"]["bootstrap_unit"] == "images"  # no lesion ids there
    assert test["minus_reference"]["difference"] == 0 and elsewhere["minus_reference"]["ci95"] == [0, 0]
    assert 0 < elsewhere["dice_mean"] == elsewhere["reference_dice_mean"] <= 1


def test_a_mask_of_another_size_is_named_not_resized(tmp_path):
    from skinlib.data.errors import DataError

    image, mask = tmp_path / "a.png", tmp_path / "a_segmentation.png"
    cv2.imwrite(str(image), np.full((30, 40, 3), 120, np.uint8))
    cv2.imwrite(str(mask), np.zeros((20, 40), np.uint8))
    with pytest.raises(DataError, match="a_segmentation.png"):
        shift_battery.held_out_dice({"none": None}, [image], [mask], progress=False)


def test_external_masks_need_a_unet_candidate_and_existing_folders(capsys, tmp_path):
    from skinlib.cli import main

    assert main(["shifts", "--external", str(tmp_path), str(tmp_path)]) == 2
    assert "--unet-candidate" in capsys.readouterr().err


@pytest.mark.skipif(
    not SHIFT_BATTERY_RESULTS.is_file(), reason="skinlib/shipped/shift_battery.json not written yet (skinlib shifts)"
)
def test_the_committed_battery_covers_every_shift_for_every_model_and_says_how_it_was_made():
    study = json.loads(SHIFT_BATTERY_RESULTS.read_text())
    assert study["command"].startswith("skinlib shifts") and study["split"] == "val"
    assert list(study["shifts"]) == list(shifts.SHIFTS)
    assert study["bootstrap"]["unit"] == "lesions" and study["lesions"] <= study["images"]
    for name, model in study["models"].items():
        assert set(model["shifts"]) == set(shifts.SHIFTS), name
        assert model["robustness"]["worst_shift"] in shifts.SHIFTS, name


def test_the_example_figure_shows_every_shift(image_and_mask):
    from skinlib.plots import shift_examples_figure

    figure = shift_examples_figure(*image_and_mask)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert len(titles) == len(shifts.SHIFTS) and all(t.split("\n")[0] in shifts.SHIFTS for t in titles)


def _study_part(models, images=600, dice=0.9):
    return {
        "command": "skinlib shifts ...",
        "split": "val",
        "images": images,
        "lesions": 525,
        "limit": 600,
        "bootstrap": {"samples": 1000, "seed": 0, "paired": True, "unit": "lesions"},
        "shifts": {"none": {"family": "none", "dice_mean": dice}, "jpeg 10": {"family": "JPEG", "dice_mean": dice}},
        "models": {
            name: {"folder": f"runs/{name}", "battery_minus_reference": {"reference": "baseline"}} for name in models
        },
    }


def test_a_more_robust_model_shows_it_beyond_noise_on_the_same_lesions():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), 40)
    lesions = np.arange(labels.size) // 2  # two images per lesion
    truth = np.eye(7)[labels]

    def scores(scale):  # probabilities whose top class is right more often the smaller the noise
        logits = 3 * truth + rng.normal(0, scale, truth.shape)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    reference = {"none": scores(1), "blur": scores(5), "jpeg": scores(5)}
    robust = {"none": scores(1), "blur": scores(1.5), "jpeg": scores(1.5)}
    entry = shift_battery.battery_difference(labels, reference, robust, lesions, 200, "baseline")
    low, high = entry["balanced_accuracy"]["ci95"]
    assert 0 < low <= entry["balanced_accuracy"]["difference"] <= high
    assert entry["shifts"] == 2 and entry["balanced_accuracy"]["units"] == 140
    same = shift_battery.battery_difference(labels, reference, reference, lesions, 50, "baseline")
    assert same["balanced_accuracy"]["difference"] == 0 and same["balanced_accuracy"]["ci95"] == [0, 0]
    with pytest.raises(ValueError, match="same shifts"):
        shift_battery.battery_difference(labels, reference, {"none": truth, "blur": truth}, lesions, 10, "b")


def test_update_adds_models_only_to_a_battery_of_the_same_images_and_u_net():
    merged = shift_battery.merge_battery(_study_part(["baseline", "old"]), _study_part(["new"]))
    assert list(merged["models"]) == ["baseline", "old", "new"] and len(merged["commands"]) == 2
    assert "--model baseline=runs/baseline old=runs/old new=runs/new" in merged["command"]  # one run redoes it all
    assert "battery_minus_reference" in merged["models"]["old"]  # same reference: the comparison still holds
    rescored = _study_part(["baseline"])
    rescored["models"]["baseline"]["folder"] = "elsewhere"
    assert (
        "battery_minus_reference"
        not in shift_battery.merge_battery(_study_part(["baseline", "old"]), rescored)["models"]["old"]
    )
    with pytest.raises(ValueError, match="other images"):
        shift_battery.merge_battery(_study_part(["a"]), _study_part(["b"], images=300))
    with pytest.raises(ValueError, match="another U-Net"):
        shift_battery.merge_battery(_study_part(["a"]), _study_part(["b"], dice=0.8))


def test_the_merged_command_names_every_model_and_candidate_and_the_runs_options():
    first = _study_part(["baseline", "old"])
    first["command"] = "skinlib shifts --data ../d --limit 600 --model baseline=runs/baseline old=runs/old --quiet"
    second = _study_part(["new"])
    second["command"] = "skinlib shifts --data ../d --limit 600 --update --model new=runs/new --unet-candidate u=runs/u"
    second["command"] += " --external ../i/images ../i/masks"
    second["unets"] = {"u": {"folder": "runs/u"}}
    command = shift_battery.merge_battery(first, second)["command"]
    assert command == (
        "skinlib shifts --data ../d --limit 600 --model baseline=runs/baseline old=runs/old new=runs/new "
        "--unet-candidate u=runs/u --external ../i/images ../i/masks --quiet"
    )
    from skinlib.cli import build_parser

    parsed = build_parser().parse_args(command.split()[1:])
    assert parsed.model[-1] == "new=runs/new" and parsed.external == ["../i/images", "../i/masks"]


def test_a_u_net_that_holds_up_under_the_battery_can_replace_the_shipped_one():
    rng = np.random.default_rng(1)
    lesions = np.arange(300) // 3
    reference = {"none": rng.uniform(0.85, 0.95, 300), "blur": rng.uniform(0.6, 0.8, 300)}
    robust = {"none": reference["none"] + 0.001, "blur": reference["blur"] + 0.1}
    fragile = {"none": reference["none"] + 0.02, "blur": reference["blur"] - 0.1}
    comparison = shift_battery.unet_comparison(reference, robust, lesions, 100, "runs/robust")
    assert comparison["battery_minus_reference"]["difference"] == pytest.approx(0.1)
    assert comparison["dice_mean"]["blur"] == pytest.approx(robust["blur"].mean())
    assert shift_battery.unet_verdict(comparison) == "replace"
    assert shift_battery.unet_verdict(shift_battery.unet_comparison(reference, fragile, lesions, 100, "f")) == (
        "less robust"
    )
    assert shift_battery.unet_verdict(shift_battery.unet_comparison(reference, reference, lesions, 100, "s")) == (
        "no gain"
    )
