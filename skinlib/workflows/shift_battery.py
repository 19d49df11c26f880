"""`skinlib shifts`: both stages scored under the shift battery (`skinlib.evaluation.shifts`) on HAM10000 validation.

Robustness is measured where settings may be chosen: the validation split, shifted the ways a second clinic
shifts images. Each shifted image goes through the whole pipeline, as a new clinic's would: the U-Net masks the
shifted image (Dice against the shifted expert mask), the classifier reads the crop of that mask. Every change is
paired with the unshifted images and its interval resamples lesions. Test and external collections are read
elsewhere, afterwards: whether robustness measured this way transfers is a question for ISIC 2017, not an input.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from ..data import load_split_frame, read_image, read_mask, split_sample
from ..evaluation.classification import balanced_accuracy
from ..evaluation.report import (
    bootstrap_unit,
    count_units,
    headline_scores,
    paired_bootstrap_difference,
    paired_gains,
    signed_interval,
)
from ..evaluation.segmentation import dice as dice_coefficient
from ..evaluation.shifts import REFERENCE_SHIFT, SHIFTS, apply_shift
from ..runtime import StageTwo
from ..runtime.dual_stage import DualStage
from ..segmentation.apply import pair_images_and_masks
from ..segmentation.segmenter import UNetSegmenter, paired_batches

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0
#: The model every other model of a study is compared with under the battery (the ablation study's name for the
#: shipped recipe), when the study scores one by that name.
REFERENCE_MODEL = "baseline"


def validation_sample(data_dir=None, limit: int | None = None, seed: int = 0, split: str = "val"):
    """The split's images (all, or a class-stratified sample of about `limit`), sorted by image id."""
    return split_sample(load_split_frame(data_dir), split, limit, seed)


def _mean_of_second(_, values):
    return float(np.mean(values))


def dice_change(reference: np.ndarray, shifted: np.ndarray, lesions, samples: int) -> dict:
    """Mean Dice under a shift minus without it, on the same images, with a paired interval over lesions
    (over images when `lesions` is None: a collection without lesion ids)."""
    point, low, high = paired_bootstrap_difference(
        _mean_of_second, np.zeros(len(reference)), reference, shifted, samples, BOOTSTRAP_SEED, groups=lesions
    )
    return {
        "difference": point,
        "ci95": [low, high],
        "bootstrap_unit": bootstrap_unit(lesions),
        "units": count_units(lesions, len(reference)),
    }


def shift_battery_study(
    models: dict,
    unet_dir=None,
    data_dir=None,
    limit: int | None = None,
    shifts=tuple(SHIFTS),
    samples: int = BOOTSTRAP_SAMPLES,
    progress: bool = True,
    reference: str = REFERENCE_MODEL,
    unet_candidates: dict | None = None,
) -> dict:
    """{shift: segmentation Dice and its change} and {model: {shift: classification scores and change}} on the
    validation split; `models` is {name: classifier folder}. The U-Net masks each shifted image once for all.
    When a model is named `reference`, every other model also gets `battery_minus_reference`: how much higher
    its balanced accuracy is under the battery, paired on the same lesions (what the replacement rule weighs).
    `unet_candidates` ({name: U-Net folder}) are other U-Nets compared with the study's own on the same shifted
    images (`unet_comparison`); the classifiers always read the study's own U-Net's crops."""
    from tqdm.auto import tqdm

    if REFERENCE_SHIFT not in shifts:
        raise ValueError(f"the battery needs {REFERENCE_SHIFT!r}: every change is measured against it")
    part = validation_sample(data_dir, limit)
    lesions = part["lesion_id"].to_numpy()
    labels = part["label"].to_numpy()
    images = [read_image(path) for path in part["image_path"]]
    truths = [read_mask(path) for path in part["mask_path"]]
    segmenter = UNetSegmenter.load(unet_dir) if unet_dir else UNetSegmenter.load()
    classifiers = {name: StageTwo.load(folder) for name, folder in models.items()}
    candidates = {name: UNetSegmenter.load(folder) for name, folder in (unet_candidates or {}).items()}
    dice, probs = {}, {name: {} for name in models}
    candidate_dice = {name: {} for name in candidates}
    for shift in tqdm(shifts, desc="shift battery", unit="shift", disable=not progress):
        pairs = [apply_shift(shift, image, mask) for image, mask in zip(images, truths)]
        shifted = [image for image, _ in pairs]
        masks = segmenter.segment(shifted)
        dice[shift] = np.array([dice_coefficient(mask, truth) for mask, (_, truth) in zip(masks, pairs)])
        for name, candidate in candidates.items():
            own = candidate.segment(shifted)
            candidate_dice[name][shift] = np.array([dice_coefficient(m, t) for m, (_, t) in zip(own, pairs)])
        for name, classifier in classifiers.items():
            inputs = DualStage(_Fixed(masks), classifier).prepare(shifted)[2]
            probs[name][shift] = classifier.probabilities(inputs)
    study = {
        "split": "val",
        "images": int(len(part)),
        "lesions": int(len(set(lesions))),
        "limit": limit,
        "bootstrap": {"samples": samples, "seed": BOOTSTRAP_SEED, "paired": True, "unit": "lesions"},
        "shifts": {},
        "models": {},
    }
    for shift in shifts:
        record = {"family": SHIFTS[shift][0], "dice_mean": float(dice[shift].mean())}
        if shift != REFERENCE_SHIFT:
            record["dice_change"] = dice_change(dice[REFERENCE_SHIFT], dice[shift], lesions, samples)
        study["shifts"][shift] = record
    if candidates:
        study["unets"] = {
            name: unet_comparison(dice, candidate_dice[name], lesions, samples, Path(unet_candidates[name]).as_posix())
            for name in candidates
        }
    for name, by_shift in probs.items():
        scores = {}
        for shift, shifted_probs in by_shift.items():
            scores[shift] = headline_scores(labels, shifted_probs)
            if shift != REFERENCE_SHIFT:
                scores[shift]["change"] = paired_gains(
                    labels, by_shift[REFERENCE_SHIFT], shifted_probs, samples, BOOTSTRAP_SEED, groups=lesions
                )
        study["models"][name] = {
            "folder": Path(models[name]).as_posix(),
            "shifts": scores,
            "robustness": robustness_summary(scores),
        }
        if reference in probs and name != reference:
            study["models"][name]["battery_minus_reference"] = battery_difference(
                labels, probs[reference], by_shift, lesions, samples, reference
            )
    return study


def _mean_over_shifts(labels, stacked) -> float:
    """Balanced accuracy averaged over the shifted copies: `stacked` is (images, shifts, classes)."""
    return float(np.mean([balanced_accuracy(labels, stacked[:, k]) for k in range(stacked.shape[1])]))


def battery_difference(labels, reference: dict, candidate: dict, lesions, samples: int, name: str) -> dict:
    """A model's balanced accuracy under the battery (mean over the shifted copies, the unshifted one left out)
    minus the reference model's, with a paired interval that resamples lesions: every draw takes the same
    lesions for both models and for every shift, so a model that is more robust shows it beyond noise."""
    shifted = [s for s in candidate if s != REFERENCE_SHIFT]
    if not shifted or set(shifted) != {s for s in reference if s != REFERENCE_SHIFT}:
        raise ValueError("the two models were not scored under the same shifts")
    point, low, high = paired_bootstrap_difference(
        _mean_over_shifts,
        labels,
        np.stack([reference[s] for s in shifted], axis=1),
        np.stack([candidate[s] for s in shifted], axis=1),
        samples,
        BOOTSTRAP_SEED,
        groups=lesions,
    )
    return {
        "reference": name,
        "shifts": len(shifted),
        "balanced_accuracy": {
            "difference": point,
            "ci95": [low, high],
            "bootstrap_unit": "lesions",
            "units": count_units(lesions, len(labels)),
        },
    }


def unet_comparison(reference: dict, candidate: dict, lesions, samples: int, folder: str) -> dict:
    """A candidate U-Net against the study's own on the same images: mean Dice under each shift, the clean Dice
    difference and the battery Dice difference (each image's Dice averaged over the shifted copies), both paired
    over lesions: the two numbers a replacement rule for stage 1 reads, as `replacement_verdict` does for stage 2."""
    shifted = [s for s in reference if s != REFERENCE_SHIFT]
    return {
        "folder": folder,
        "dice_mean": {shift: float(values.mean()) for shift, values in candidate.items()},
        "clean_minus_reference": dice_change(reference[REFERENCE_SHIFT], candidate[REFERENCE_SHIFT], lesions, samples),
        "battery_minus_reference": dice_change(
            np.mean([reference[s] for s in shifted], axis=0),
            np.mean([candidate[s] for s in shifted], axis=0),
            lesions,
            samples,
        ),
    }


def held_out_dice(segmenters: dict, image_paths, mask_paths, progress: bool = True, desc: str = "") -> dict:
    """{name: Dice of each image} for several U-Nets, each batch of images read once (`paired_batches`), unrounded
    so the paired bootstrap sees the exact values."""
    scores = {name: [] for name in segmenters}
    for images, truths, _ in paired_batches(image_paths, mask_paths, progress=progress, desc=desc or "held-out Dice"):
        for name, segmenter in segmenters.items():
            scores[name] += [dice_coefficient(mask, truth) for mask, truth in zip(segmenter.segment(images), truths)]
    return {name: np.array(values) for name, values in scores.items()}


def unet_held_out(
    unet_dir,
    candidates: dict,
    data_dir=None,
    external=None,
    samples: int = BOOTSTRAP_SAMPLES,
    progress: bool = True,
    limit: int | None = None,
) -> dict:
    """Each candidate U-Net against the study's own where no choice is made: HAM10000 test (paired over lesions)
    and, with `external` = (name, images folder, masks folder), a collection from elsewhere (paired over images:
    it has no lesion ids). Read after the choice; `unet_verdict` never reads it. `limit`: a stratified sample of
    about that many test images (quick checks)."""
    segmenters = {REFERENCE_MODEL: UNetSegmenter.load(unet_dir) if unet_dir else UNetSegmenter.load()}
    segmenters.update({name: UNetSegmenter.load(folder) for name, folder in candidates.items()})
    test = split_sample(load_split_frame(data_dir), "test", limit, 0)
    sets = {"ham10000_test": (list(test["image_path"]), list(test["mask_path"]), test["lesion_id"].to_numpy())}
    if external is not None:
        name, images, masks = external
        image_paths, mask_paths, _ = pair_images_and_masks(images, masks)
        sets[name] = (image_paths, mask_paths, None)
    out = {name: {} for name in candidates}
    for collection, (image_paths, mask_paths, lesions) in sets.items():
        dice = held_out_dice(segmenters, image_paths, mask_paths, progress, desc=f"U-Nets on {collection}")
        for name in candidates:
            out[name][collection] = {
                "images": len(image_paths),
                "dice_mean": float(dice[name].mean()),
                "reference_dice_mean": float(dice[REFERENCE_MODEL].mean()),
                "minus_reference": dice_change(dice[REFERENCE_MODEL], dice[name], lesions, samples),
            }
    return out


def unet_verdict(comparison: dict) -> str:
    """Whether a candidate U-Net would replace the study's own, by the rule stage 2 follows: better beyond noise
    on the clean validation images, or under the battery while losing nothing on clean images; never when less
    robust beyond noise. Returns "replace", "less robust" or "no gain"."""
    clean, battery = comparison["clean_minus_reference"], comparison["battery_minus_reference"]
    if battery["ci95"][1] < 0:
        return "less robust"
    if clean["ci95"][0] > 0 or (battery["ci95"][0] > 0 and clean["difference"] >= 0):
        return "replace"
    return "no gain"


def merge_battery(existing: dict, fresh: dict) -> dict:
    """`existing` with `fresh`'s models added or replaced (`skinlib shifts --update`): refused unless both scored
    the same images under the same shifts through the same U-Net, so every model's numbers stay comparable.
    A carried-over model keeps its comparison with the reference only while the reference is unchanged."""
    same = ("split", "images", "lesions", "limit", "bootstrap")
    differ = [key for key in same if existing.get(key) != fresh.get(key)]
    if differ or list(existing["shifts"]) != list(fresh["shifts"]):
        raise ValueError(
            f"the existing battery was scored on other images or shifts ({', '.join(differ) or 'shifts'} differ): "
            "score every model again without --update"
        )
    dice = [abs(existing["shifts"][s]["dice_mean"] - fresh["shifts"][s]["dice_mean"]) for s in fresh["shifts"]]
    if max(dice) > 1e-6:
        raise ValueError("the existing battery masked the images with another U-Net: score every model again")
    merged = {**existing, "models": {**existing["models"], **fresh["models"]}}
    if "unets" in existing or "unets" in fresh:
        merged["unets"] = {**existing.get("unets", {}), **fresh.get("unets", {})}
    if REFERENCE_MODEL in fresh["models"]:  # a rescored reference: older comparisons were made with the old one
        reference = fresh["models"][REFERENCE_MODEL]["folder"]
        old = existing["models"].get(REFERENCE_MODEL, {}).get("folder")
        for name, model in merged["models"].items():
            if name not in fresh["models"] and old != reference:
                model.pop("battery_minus_reference", None)
    merged["command"] = one_run_command(merged, existing.get("command", ""), fresh.get("command", ""))
    merged["commands"] = [*existing.get("commands", [existing.get("command")]), fresh.get("command")]
    return merged


_VALUE_OPTIONS = {"--data": 1, "--limit": 1, "--unet": 1, "--out": 1, "--external": 2}


def _shifts_options(command: str) -> dict:
    """{option: its values} of the one-value options (and --external's two) of a recorded `skinlib shifts` call."""
    tokens, options = shlex.split(command), {}
    for at, token in enumerate(tokens):
        if token in _VALUE_OPTIONS:
            options[token] = tokens[at + 1 : at + 1 + _VALUE_OPTIONS[token]]
    return options


def one_run_command(study: dict, *commands: str) -> str:
    """The one `skinlib shifts` call that scores everything a merged battery holds: every model and U-Net candidate
    with its recorded folder, and the data folder, sample size and external collection of the runs merged (a later
    run's value wins). What `--update` runs add up to, so the JSON's `command` still reproduces it all at once."""
    options = {}
    for command in commands:
        options.update(_shifts_options(command or ""))
    argv = ["skinlib", "shifts"]
    for flag in ("--data", "--limit", "--unet"):
        if flag in options:
            argv += [flag, *options[flag]]
    argv += ["--model", *(f"{name}={model['folder']}" for name, model in study["models"].items())]
    if study.get("unets"):
        argv += ["--unet-candidate", *(f"{name}={unet['folder']}" for name, unet in study["unets"].items())]
        if "--external" in options:
            argv += ["--external", *options["--external"]]
    if "--out" in options:
        argv += ["--out", *options["--out"]]
    return shlex.join(argv + ["--quiet"])


class _Fixed:
    """A segmenter that hands back masks already made (the battery masks each shifted image once)."""

    def __init__(self, masks):
        self.masks = masks

    def segment(self, images):
        if len(images) != len(self.masks):
            raise ValueError("the fixed masks do not match the images")
        return self.masks


def robustness_summary(scores: dict) -> dict:
    """One model's battery in two numbers: the mean and the worst balanced-accuracy change over the shifts (what a
    rule that weighs robustness on validation would read), and which shift is the worst."""
    changes = {s: r["change"]["balanced_accuracy"]["difference"] for s, r in scores.items() if "change" in r}
    if not changes:
        return {}
    worst = min(changes, key=changes.get)
    return {
        "mean_balanced_accuracy_change": float(np.mean(list(changes.values()))),
        "worst_balanced_accuracy_change": float(changes[worst]),
        "worst_shift": worst,
    }


def shift_battery_markdown(study: dict) -> str:
    """The battery as a table: each shift's Dice change and each model's balanced-accuracy change (95 % CI)."""

    def change(entry) -> str:
        if entry is None:
            return "reference"
        return signed_interval(entry["difference"], *entry["ci95"])

    names = list(study["models"])
    lines = [
        "| shift | family | U-Net Dice | Dice change | " + " | ".join(f"{n} BA change" for n in names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for shift, record in study["shifts"].items():
        cells = [change(study["models"][n]["shifts"][shift].get("change", {}).get("balanced_accuracy")) for n in names]
        lines.append(
            f"| {shift} | {record['family']} | {record['dice_mean']:.3f} | {change(record.get('dice_change'))} | "
            + " | ".join(cells)
            + " |"
        )
    lines.append(
        f"\n{study['images']} validation images of {study['lesions']} lesions; paired 95 % intervals over lesions."
    )
    for name, unet in study.get("unets", {}).items():
        lines.append(
            f"U-Net {name} minus the study's U-Net: Dice {change(unet['clean_minus_reference'])} on the unshifted "
            f"images, {change(unet['battery_minus_reference'])} under the battery: {unet_verdict(unet)}."
        )
        for collection, scores in unet.get("held_out", {}).items():
            lines.append(
                f"  read afterwards, {collection}: Dice {scores['dice_mean']:.3f} against "
                f"{scores['reference_dice_mean']:.3f}, {change(scores['minus_reference'])} over "
                f"{scores['minus_reference']['bootstrap_unit']}."
            )
    compared = {n: m["battery_minus_reference"] for n, m in study["models"].items() if "battery_minus_reference" in m}
    for name, entry in compared.items():
        lines.append(
            f"{name}: balanced accuracy under the battery minus {entry['reference']}'s "
            f"{change(entry['balanced_accuracy'])} (mean over {entry['shifts']} shifts)."
        )
    return "\n".join(lines) + "\n"
