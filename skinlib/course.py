"""What the course notebooks share, so that each page shows the code that teaches and not the plumbing:
samples of a split, the shipped results and benchmarks, the project's targets and headline scores.

The notebooks live in a checkout (`notebooks/`, listed in `_toc.yml`); this module reads the shipped JSON
from the installed package and the benchmarks from the checkout.
"""

from __future__ import annotations

import json
import operator
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .data.images import read_image, read_mask
from .data.labels import read_labels
from .data.metadata import DataWarning
from .data.splits import split_sample  # noqa: F401  (re-exported: the notebooks sample through skinlib.course)
from .evaluation.report import signed, signed_interval
from .evaluation.segmentation import dice
from .shipped import ABLATION_RESULTS, CLASSIFIER, COLOUR_CAST_RESULTS, SHIFT_BATTERY_RESULTS, UNET
from .workflows.ablation import ECE_TARGET, chosen_row, chosen_tta_row, replacement_verdict
from .workflows.shift_battery import unet_verdict

#: The repository root (benchmarks/ and notebooks/ exist only in a checkout).
REPO = Path(__file__).resolve().parent.parent
BENCHMARK_RESULTS = REPO / "benchmarks" / "results"

#: The shipped result files a chapter reads, and the command that writes each.
SHIPPED_RESULTS = {
    "unet_metrics": (UNET / "metrics.json", "skinlib train-unet"),
    "classifier_metrics": (CLASSIFIER / "metrics.json", "skinlib train-classifier"),
    "ablation": (ABLATION_RESULTS, "skinlib ablate"),
    "colour_casts": (COLOUR_CAST_RESULTS, "skinlib colour-casts"),
    "shift_battery": (SHIFT_BATTERY_RESULTS, "skinlib shifts"),
}


def shipped_result(name: str) -> dict:
    """One shipped result file (a key of `SHIPPED_RESULTS`), read; a missing file names its command."""
    if name not in SHIPPED_RESULTS:
        raise KeyError(f"unknown shipped result {name!r}; choose from {', '.join(SHIPPED_RESULTS)}")
    path, command = SHIPPED_RESULTS[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: `{command}` writes it (see the reproduce page of the book)")
    return json.loads(path.read_text())


def benchmark_results() -> dict[str, dict]:
    """Every benchmark's recorded result ({name: JSON}), from `benchmarks/results/` of the checkout."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(BENCHMARK_RESULTS.glob("*.json"))}


def headline(scores: dict) -> dict:
    """The five numbers a results table shows for one split's classification report."""
    return {
        "balanced accuracy": scores["balanced_accuracy"],
        "accuracy": scores["accuracy"],
        "macro ROC AUC": scores["macro_roc_auc"],
        "melanoma recall": scores["per_class"]["mel"]["recall"],
        "ECE (calibrated)": scores["expected_calibration_error"],
    }


#: The project's targets for the test split: (area, measure, comparison, target).
TARGETS = (
    ("stage 2", "balanced accuracy", ">=", 0.80),
    ("stage 2", "macro ROC AUC", ">=", 0.95),
    ("stage 2", "melanoma recall", ">=", 0.75),
    ("calibration", "ECE after temperature scaling", "<=", ECE_TARGET),
    ("speed", "predict, ms per image", "<", 100),
    ("speed", "predict with TTA, ms per image", "<", 400),
    ("speed", "predict with augmented TTA (16 views), ms per image", "<", 400),
    ("TTA", "balanced accuracy gain of the TTA chosen on validation, lower end of the 95 % CI", ">", 0.0),
)
_COMPARE = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}


def measured_for_targets(classifier_metrics: dict, benchmarks: dict, ablation: dict | None) -> dict:
    """The measured value of each target's measure (None where its file is missing)."""
    test = classifier_metrics["test"]["plain"]
    latency = benchmarks.get("predict_latency", {})
    tta_row = chosen_tta_row(ablation) if ablation is not None else None
    return {
        "balanced accuracy": test["balanced_accuracy"],
        "macro ROC AUC": test["macro_roc_auc"],
        "melanoma recall": test["per_class"]["mel"]["recall"],
        "ECE after temperature scaling": test["expected_calibration_error"],
        "predict, ms per image": latency.get("predict_ms"),
        "predict with TTA, ms per image": latency.get("predict_tta_ms"),
        "predict with augmented TTA (16 views), ms per image": latency.get("predict_tta_augmented_ms"),
        "balanced accuracy gain of the TTA chosen on validation, lower end of the 95 % CI": None
        if tta_row is None
        else tta_row["test_minus_baseline"]["balanced_accuracy"]["ci95"][0],
    }


def targets_table(classifier_metrics: dict, benchmarks: dict, ablation: dict | None) -> pd.DataFrame:
    """The targets beside what was measured, and whether each is met (a measure with no result is left out)."""
    measured = measured_for_targets(classifier_metrics, benchmarks, ablation)
    rows = [
        {
            "area": area,
            "measure": measure,
            "measured": round(float(measured[measure]), 3),
            "target": f"{op} {target:g}",
            "met": bool(_COMPARE[op](measured[measure], target)),
        }
        for area, measure, op, target in TARGETS
        if measured[measure] is not None
    ]
    return pd.DataFrame(rows)


def interval_verdict(
    ci95, up: str = "helped", down: str = "hurt", neither: str = "no difference the split can resolve"
):
    """The word a sentence needs for a difference with a 95 % interval, so that prose follows the numbers:
    `up` when the whole interval lies above 0, `down` when below, `neither` when it contains 0."""
    low, high = ci95
    if low > high:
        raise ValueError(f"an interval runs from low to high, not {low} to {high}")
    return up if low > 0 else down if high < 0 else neither


def round_robin_sample(part: pd.DataFrame, n: int, by: str = "dx") -> pd.DataFrame:
    """`n` rows taken one per group in turn (first row of each group by image id, then the second, ...), so a
    handful of images shows every class before any class twice."""
    ordered = part.sort_values("image_id")
    turn = ordered.groupby(by).cumcount()
    picked = turn.sort_values(kind="stable").index[:n]
    return ordered.loc[picked].reset_index(drop=True)


def write_chapter_json(path, result: dict) -> Path:
    """A chapter's numbers as indented JSON (numpy scalars as floats), for the pipeline and the results page."""
    path = Path(path)
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    return path


# ------------------------------------------------------------------------------ chapter 13: domain shift


#: ISIC 2017 beside the checkout, as tests/conftest.py finds it (evaluation only: never fit or choose on it).
DEFAULT_ISIC2017 = REPO.parent / "shared" / "data" / "isic2017"

#: The command that writes each optional result chapter 13 reads.
DOMAIN_COMMANDS = {
    "ablation": "skinlib ablate --external ../shared/data/isic2017/images ../shared/data/isic2017/ISIC2017_labels.csv",
    "colour_casts": "skinlib colour-casts --external ../shared/data/isic2017/images "
    "../shared/data/isic2017/ISIC2017_labels.csv",
    "shift_battery": "skinlib shifts --model NAME=DIR ...",
    "unet_lever": "skinlib shifts --update --unet-candidate battery_augment=runs/unet_battery --external "
    "../shared/data/isic2017/images ../shared/data/isic2017/masks",
}


def isic2017_folder(isic_dir=None) -> Path:
    """The ISIC 2017 folder: `isic_dir`, else $SKINLIB_ISIC2017, else ../shared/data/isic2017 beside the checkout.
    A folder without ISIC2017_labels.csv is an error that says where it looked."""
    folder = Path(isic_dir or os.environ.get("SKINLIB_ISIC2017") or DEFAULT_ISIC2017)
    if not (folder / "ISIC2017_labels.csv").is_file():
        raise FileNotFoundError(
            f"ISIC 2017 not found at {folder}: pass isic_dir or set SKINLIB_ISIC2017 to the folder with "
            "ISIC2017_labels.csv, images/ and masks/"
        )
    return folder


def isic2017_sample(folder, n: int | None, seed: int = 0) -> pd.DataFrame:
    """ISIC 2017's labelled images (all, or a class-stratified sample of about `n`), sorted by image id, with
    `label`, `image_path` and `mask_path` columns. No lesion ids: every image is its own lesion."""
    folder = Path(folder)
    with warnings.catch_warnings():  # "no lesion_id column": known, and said in the docstring
        warnings.simplefilter("ignore", DataWarning)
        frame = read_labels(folder / "ISIC2017_labels.csv")
    if n is not None and n < len(frame):
        frame = frame.groupby("dx").sample(frac=n / len(frame), random_state=seed)
    frame = frame.sort_values("image_id").reset_index(drop=True)
    frame["image_path"] = [folder / "images" / f"{i}.jpg" for i in frame["image_id"]]
    frame["mask_path"] = [folder / "masks" / f"{i}_segmentation.png" for i in frame["image_id"]]
    return frame


def run_dual_stage(pipeline, image_paths, mask_paths=None, batch_size: int = 32) -> dict:
    """The dual-stage pipeline on image files, as a new clinic's images meet it: calibrated probabilities (single
    view), whether a lesion crop was used, and, given expert masks, the U-Net's Dice per image."""
    probs, found, dices = [], [], []
    for start in range(0, len(image_paths), batch_size):
        images = [read_image(path) for path in image_paths[start : start + batch_size]]
        masks, crops, inputs = pipeline.prepare(images)
        probs.append(pipeline.classifier.probabilities(inputs))
        found += [bool(c.used_mask) for c in crops]
        if mask_paths is not None:
            truths = [read_mask(path) for path in mask_paths[start : start + batch_size]]
            dices += [dice(mask, truth) for mask, truth in zip(masks, truths)]
    return {
        "probs": np.concatenate(probs),
        "lesion_found": np.array(found),
        "dice": np.array(dices) if mask_paths is not None else None,
    }


def optional_result(path, command: str):
    """A result file chapter 13 reads if it exists: its JSON, or None after printing which command writes it."""
    path = Path(path)
    if not path.is_file():
        print(f"{path.name} is not there yet: `{command}` writes it; this part of the chapter is skipped.")
        return None
    return json.loads(path.read_text())


def _difference(entry):
    """(difference, low, high) of a {difference, ci95} entry, NaNs when it is missing."""
    if not entry:
        return (float("nan"),) * 3
    return (float(entry["difference"]), float(entry["ci95"][0]), float(entry["ci95"][1]))


def lever_table(ablation: dict | None, battery: dict | None, collection: str = "isic2017") -> pd.DataFrame:
    """One row per ablation row (lever): its validation gain in balanced accuracy over the baseline (interval and
    bootstrap unit as recorded), its battery robustness (mean and worst balanced-accuracy change over the shifts,
    and its balanced accuracy under the battery minus the baseline's with interval, what the replacement rule
    weighs, where the battery scored a model of that name), and its scores on `collection` (restricted balanced accuracy
    with interval, its change against the baseline with interval, melanoma AUC); NaN where a number is missing,
    `note` says why."""
    columns = [
        "row", "val_gain", "val_low", "val_high", "val_unit", "battery_mean", "battery_worst", "worst_shift",
        "battery_vs_baseline", "battery_vs_low", "battery_vs_high",
        "external_ba", "external_ba_low", "external_ba_high", "external_gain", "external_low", "external_high",
        "external_mel_auc", "note",
    ]  # fmt: skip
    if ablation is None:
        return pd.DataFrame(columns=columns)
    models = (battery or {}).get("models", {})
    rows = []
    for row in ablation["rows"]:
        name = row["name"]
        val = (row.get("val_minus_baseline") or {}).get("balanced_accuracy")
        if name == ablation.get("baseline", "baseline") and val is None:
            val = {"difference": 0.0, "ci95": [0.0, 0.0]}
        robustness = models.get(name, {}).get("robustness", {})
        against = (models.get(name, {}).get("battery_minus_reference") or {}).get("balanced_accuracy")
        scores = (row.get("external") or {}).get(collection)
        note = ""
        if scores is None:
            note = f"not scored on {collection} yet"
            scores = {}
        elif "not_applicable" in scores:
            note = scores["not_applicable"]
            scores = {}
        ba_ci = scores.get("balanced_accuracy_restricted_ci95") or [float("nan")] * 2
        gain, low, high = _difference(scores.get("restricted_change"))
        rows.append(
            {
                "row": name,
                **dict(zip(("val_gain", "val_low", "val_high"), _difference(val))),
                "val_unit": (val or {}).get("bootstrap_unit", ""),
                "battery_mean": robustness.get("mean_balanced_accuracy_change", float("nan")),
                "battery_worst": robustness.get("worst_balanced_accuracy_change", float("nan")),
                "worst_shift": robustness.get("worst_shift", ""),
                **dict(zip(("battery_vs_baseline", "battery_vs_low", "battery_vs_high"), _difference(against))),
                "external_ba": scores.get("balanced_accuracy_restricted", float("nan")),
                "external_ba_low": ba_ci[0],
                "external_ba_high": ba_ci[1],
                "external_gain": gain,
                "external_low": low,
                "external_high": high,
                "external_mel_auc": scores.get("melanoma_roc_auc", float("nan")),
                "note": note,
            }
        )
    table = pd.DataFrame(rows, columns=columns)
    numeric = [c for c in columns if c not in ("row", "val_unit", "worst_shift", "note")]
    table[numeric] = table[numeric].astype(float)
    return table


#: Levers the battery must have scored before `transfer_reading` ranks their robustness against transfer.
MIN_BATTERY_LEVERS = 4


def verdict_paragraph(ablation: dict, battery: dict | None) -> str:
    """The replacement rule's verdict in words, as the results chapter prints it: which rows beat the baseline and
    how (validation, battery), which are held back and why, which one ships, then the test scores of the winners,
    read after the choice and never used for it."""
    verdict = replacement_verdict(ablation, battery=battery)
    rows = {r["name"]: r for r in ablation["rows"]}
    winners = verdict["beat_on_val"] + [n for n in verdict["beat_under_battery"] if n not in verdict["beat_on_val"]]
    lines = []
    if not verdict["robustness_weighed"]:
        lines.append("The shift battery's results are missing (`skinlib shifts`), so robustness is not weighed.")
    if not winners:
        lines.append("No row beats the shipped recipe on validation beyond noise, so it stays.")
    else:
        if verdict["beat_on_val"]:
            lines.append(
                "Rows that beat the baseline on clean validation images beyond noise: **"
                + ", ".join(verdict["beat_on_val"])
                + "**."
            )
        if verdict["beat_under_battery"]:
            lines.append(
                "Rows that beat it under the shift battery and lose nothing on clean images: **"
                + ", ".join(verdict["beat_under_battery"])
                + "**."
            )
        lines += [f"**{name}** is held back: {why}." for name, why in verdict["held_back"].items()]
        lines.append(
            "Qualifying: **" + ", ".join(verdict["qualify"]) + "**."
            if verdict["qualify"]
            else "None qualifies, so the baseline recipe stays."
        )
        if len(verdict["qualify"]) > 1:
            lines.append(
                f"Of these, the rule ships **{chosen_row(ablation, verdict)}**, the one with the largest validation gain."
            )
        for name in winners:  # reported after the choice, never used for it
            gain = rows[name]["test_minus_baseline"]["balanced_accuracy"]
            low, high = gain["ci95"]
            lines.append(
                f"On test, {name} scored {signed(gain['difference'])} against the baseline "
                f"(95 % CI {signed(low)} to {signed(high)})."
            )
    best = max((r for r in ablation["rows"] if r["name"] != "baseline"), key=lambda r: r["val"]["balanced_accuracy"])
    low, high = best["val_minus_baseline"]["balanced_accuracy"]["ci95"]
    lines.append(
        f"The highest validation balanced accuracy is **{best['name']}**'s "
        f"({best['val']['balanced_accuracy']:.3f}, interval of the difference [{signed(low)}, {signed(high)}])."
    )
    if verdict["image_level"]:
        names = ", ".join(f"**{name}**" for name in verdict["image_level"])
        lines.append(
            f"Provisional for {names}: their intervals still resample images, which usually makes them too narrow, "
            "so a verdict on them may change once they are rerun."
        )
    return " ".join(lines)


def unet_lever_table(battery: dict | None, collection: str = "isic2017") -> pd.DataFrame:
    """One row per U-Net the battery compared with the shipped one (stage 1's levers): its Dice minus the shipped
    U-Net's on the clean validation images and under the battery (what `unet_verdict` reads) and the verdict; then,
    read afterwards, the same difference on HAM10000 test (over lesions) and on `collection` (over images) with the
    two U-Nets' mean Dice there. NaN where a number is missing."""
    rows = []
    for name, unet in ((battery or {}).get("unets") or {}).items():
        held_out = unet.get("held_out", {})
        elsewhere = held_out.get(collection, {})
        row = {"unet": name, "verdict": unet_verdict(unet)}
        for key, entry in (
            ("clean", unet["clean_minus_reference"]),
            ("battery", unet["battery_minus_reference"]),
            ("test", held_out.get("ham10000_test", {}).get("minus_reference")),
            ("external", elsewhere.get("minus_reference")),
        ):
            row.update(dict(zip((key, f"{key}_low", f"{key}_high"), _difference(entry))))
        row["external_dice"] = elsewhere.get("dice_mean", float("nan"))
        row["shipped_external_dice"] = elsewhere.get("reference_dice_mean", float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def unet_lever_display(table: pd.DataFrame) -> pd.DataFrame:
    """`unet_lever_table` as a reader reads it: each difference with its interval in one cell."""
    columns = {
        "clean": "clean validation",
        "battery": "under the battery",
        "test": "HAM10000 test (afterwards)",
        "external": "ISIC 2017 (afterwards)",
    }
    shown = pd.DataFrame(index=table["unet"])
    for key, title in columns.items():
        shown[title] = [
            signed_interval(*values) if np.isfinite(values[0]) else "not scored"
            for values in table[[key, f"{key}_low", f"{key}_high"]].to_numpy(float)
        ]
    shown.insert(2, "verdict", table["verdict"].to_numpy())
    return shown


def unet_lever_sentence(row: pd.Series, collection: str = "ISIC 2017") -> str:
    """What one stage-1 lever did, in words that follow its numbers: the verdict first (validation), then what
    test and the collection said afterwards."""
    ruling = {
        "replace": "beats the shipped U-Net under the rule, so it would replace it",
        "less robust": "is less robust than the shipped U-Net beyond noise, so the rule keeps the shipped one",
        "no gain": "beats the shipped U-Net neither on clean validation images nor under the battery beyond noise, "
        "so the rule keeps the shipped one",
    }[row["verdict"]]
    if row["verdict"] == "no gain" and row["battery_low"] > 0:  # robust, but it pays on the clean images
        ruling = (
            "is better under the battery beyond noise but scores lower on the clean images, and the rule lets "
            "robustness win only when nothing is lost on them, so it keeps the shipped one"
        )
    text = (
        f"U-Net {row['unet']}: Dice {signed_interval(row['clean'], row['clean_low'], row['clean_high'])} on the "
        f"clean validation images and {signed_interval(row['battery'], row['battery_low'], row['battery_high'])} "
        f"under the battery against the shipped U-Net; it {ruling}."
    )
    if np.isfinite(row["test"]) and np.isfinite(row["external"]):
        moved = (
            "gains beyond noise"
            if row["external_low"] > 0
            else "loses beyond noise"
            if row["external_high"] < 0
            else "differs by no more than noise"
        )
        text += (
            f" Read afterwards: {signed_interval(row['test'], row['test_low'], row['test_high'])} on HAM10000 test; "
            f"on {collection} it {moved} "
            f"({signed_interval(row['external'], row['external_low'], row['external_high'])}, mean Dice "
            f"{row['external_dice']:.3f} against {row['shipped_external_dice']:.3f})."
        )
    return text


def transfer_reading(table: pd.DataFrame, baseline: str = "baseline", collection: str = "ISIC 2017") -> dict:
    """Whether validation predicted transfer, from the lever table's numbers: how many rows validation said
    helped (interval above 0) and how many of those also gained on the collection (interval above 0), how many the
    collection says hurt, and the rank correlation of the two gains (and of battery robustness with the collection
    gain). The `sentence` is built from these counts, so the prose follows the numbers."""
    both = table[(table["row"] != baseline) & table["val_gain"].notna() & table["external_gain"].notna()]
    reading = {"rows": int(len(both))}
    if len(both) < 3:
        have = "No lever has" if len(both) == 0 else f"Only {len(both)} lever(s) have"
        reading["sentence"] = (
            f"{have} both a validation gain and a {collection} gain yet, too few to say whether validation "
            "predicted transfer."
        )
        reading.update(val_helped=0, also_external=0, external_hurt=0, rank_correlation=float("nan"))
        reading["battery_rank_correlation"] = float("nan")
        return reading
    helped = both[both["val_low"] > 0]
    also = helped[helped["external_low"] > 0]
    hurt = both[both["external_high"] < 0]
    rho = float(both["val_gain"].rank().corr(both["external_gain"].rank()))
    with_battery = both[both["battery_mean"].notna()]
    battery_rho = (
        float(with_battery["battery_mean"].rank().corr(with_battery["external_gain"].rank()))
        if len(with_battery) >= MIN_BATTERY_LEVERS
        else float("nan")
    )
    strength = "closely" if rho >= 0.7 else "loosely" if rho >= 0.3 else "hardly" if rho > -0.3 else "inversely"
    parts = [
        f"Of the {len(both)} levers scored both ways, validation said {len(helped)} helped (interval above 0)",
        f"and {len(also)} of those also gained on {collection} with an interval above 0;",
        f"{len(hurt)} lever(s) lost on {collection} with an interval below 0.",
        f"The validation gains and the {collection} gains are {strength} related in rank (Spearman ρ = {rho:.2f}).",
    ]
    if np.isfinite(battery_rho):
        battery_strength = "much as" if battery_rho >= 0.5 else "unlike the way"
        parts.append(
            f"Robustness under the battery ranked the levers {battery_strength} {collection} did "
            f"(Spearman ρ = {battery_rho:.2f} over {len(with_battery)} levers the battery scored: with so few "
            "levers, a pointer, not proof)."
        )
    else:
        parts.append(
            f"Only {len(with_battery)} of them were scored under the shift battery, too few to say whether "
            "robustness there predicted transfer."
        )
    reading.update(
        val_helped=int(len(helped)),
        also_external=int(len(also)),
        external_hurt=int(len(hurt)),
        rank_correlation=rho,
        battery_rank_correlation=battery_rho,
        sentence=" ".join(parts),
    )
    return reading
