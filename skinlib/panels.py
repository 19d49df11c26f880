"""The pure panels behind the instructor widgets: each takes data and settings and returns a figure (and what it
shows as numbers), so the logic is tested without a front-end and the book shows the same figure a widget
draws (`skinlib.widgets`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .data.classes import CLASSES, DISPLAY_NAMES
from .data.images import fit_size, read_image, read_mask
from .display import _axis_image, compare_masks
from .evaluation.calibration import apply_temperature
from .evaluation.classification import check_binary_scores
from .evaluation.segmentation import dice
from .runtime.views import SINGLE, Views
from .segmentation.classical import ClassicalParams, as_rgb, classical_steps

# ------------------------------------------------------------------------------ lesion browser


def browser_rows(frame: pd.DataFrame, dx: str) -> pd.DataFrame:
    """The images of class `dx`, lesion by lesion (so several photos of one lesion come one after another).

    Adds `lesion_images` (how many images that lesion has) and `lesion_position` (1-based, within it).
    """
    if dx not in CLASSES:
        raise ValueError(f"unknown class {dx!r}; expected one of {', '.join(CLASSES)}")
    rows = frame[frame["dx"] == dx].sort_values(["lesion_id", "image_id"]).reset_index(drop=True)
    rows["lesion_images"] = rows.groupby("lesion_id")["image_id"].transform("size").astype(int)
    rows["lesion_position"] = rows.groupby("lesion_id").cumcount() + 1
    return rows


def _known(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and str(value) != "unknown"


def lesion_text(row) -> str:
    """One line of metadata for an image: ids, diagnosis, how it was confirmed, age, sex, site, split."""
    get = row.get if hasattr(row, "get") else (lambda key, default=None: getattr(row, key, default))
    parts = [f"{get('image_id')}", f"{get('dx')}: {DISPLAY_NAMES.get(get('dx'), get('dx'))}"]
    lesion = get("lesion_id")
    if _known(lesion):
        count = get("lesion_images")
        parts.append(f"lesion {lesion}" + (f" (image {get('lesion_position')} of {count})" if _known(count) else ""))
    if _known(get("dx_type")):
        parts.append(f"confirmed by {get('dx_type')}")
    if _known(get("age")):
        parts.append(f"age {float(get('age')):.0f}")
    for key in ("sex", "localization"):
        if _known(get(key)):
            parts.append(str(get(key)))
    if _known(get("split")):
        parts.append(f"{get('split')} split")
    return " | ".join(parts)


def lesion_panel(row) -> Figure:
    """The image, and the image with its expert mask (when there is one), titled with `lesion_text`."""
    get = row.get if hasattr(row, "get") else (lambda key, default=None: getattr(row, key, default))
    image = read_image(get("image_path"))
    mask_path = get("mask_path")
    mask = read_mask(mask_path) if _known(mask_path) and Path(mask_path).is_file() else None
    figure = Figure(figsize=(6.4, 2.3 * image.shape[0] / image.shape[1] + 0.9))
    left, right = figure.subplots(1, 2)
    _axis_image(left, image, "image")
    if mask is not None and mask.shape == image.shape[:2]:
        _axis_image(right, compare_masks(image, mask), "expert mask")
    else:
        right.set_axis_off()
        right.text(0.5, 0.5, "no expert mask", ha="center", va="center")
    text = lesion_text(row)
    cut = text.find(" | ", len(text) // 2)
    figure.suptitle(text if cut < 0 else text[:cut] + "\n" + text[cut + 3 :], fontsize=8)
    figure.tight_layout()
    return figure


# ------------------------------------------------------------------------- classical mask explorer

#: Steps drawn by the explorer (one row); the last panel compares the mask with the expert's.
EXPLORER_STEPS = ("image", "hair", "smoothed", "threshold", "cleaned", "mask")

#: Steps drawn by `steps_figure` (one row per image).
FIGURE_STEPS = (
    "image",
    "hair",
    "hair_removed",
    "smoothed",
    "field_of_view",
    "threshold",
    "cleaned",
    "lesion_component",
    "mask",
)

#: The `ClassicalParams` fields the explorer has a control for.
EXPLORER_FIELDS = (
    "hair_removal",
    "hair_kernel",
    "channel",
    "method",
    "adaptive_block",
    "adaptive_c",
    "otsu_offset",
    "open_kernel",
    "close_kernel",
)


def step_title(name: str, params: ClassicalParams) -> str:
    """A short, human title for one of `STEP_NAMES`."""
    titles = {
        "image": "input",
        "hair": "hair (black-hat)",
        "hair_removed": "hair removed",
        "channel": f"{params.channel} channel",
        "smoothed": f"{params.channel}, smoothed",
        "field_of_view": "field of view",
        "threshold": f"threshold ({params.method})",
        "cleaned": "open + close",
        "lesion_component": "lesion component",
        "filled": "holes filled",
        "mask": "mask",
    }
    return titles.get(name, name)


def params_from_controls(values: dict, base: ClassicalParams = ClassicalParams()) -> ClassicalParams:
    """`base` with the fields named in `values` replaced (other keys, e.g. "image", are ignored)."""
    fields = {f.name for f in dataclasses.fields(ClassicalParams)}
    return dataclasses.replace(base, **{k: v for k, v in values.items() if k in fields})


def _draw_steps(axes, image, steps: dict, names: Sequence[str], params: ClassicalParams, true_mask) -> float | None:
    """Draw `names` of `classical_steps` output on `axes`; "mask" is compared with `true_mask` if given."""
    score = None
    for ax, name in zip(axes, names):
        if name == "mask" and true_mask is not None:
            score = dice(steps["mask"], true_mask)
            _axis_image(ax, compare_masks(as_rgb(image), true_mask, steps["mask"]), f"Dice {score:.3f} (expert green)")
        elif name == "field_of_view":  # the image, darkened outside the field of view
            fov = steps["field_of_view"]
            _axis_image(ax, np.where(fov[..., None], steps["image"], steps["image"] // 4), step_title(name, params))
        else:
            _axis_image(ax, steps[name], step_title(name, params))
    return score


def mask_panel(
    image: np.ndarray,
    params: ClassicalParams = ClassicalParams(),
    true_mask=None,
    steps: Sequence[str] = EXPLORER_STEPS,
    title: str | None = None,
) -> tuple[Figure, float | None]:
    """One row of classical-segmentation steps, and the Dice of the final mask (None without `true_mask`).

    The last panel ("mask") shows the expert mask in green and the classical one in red when `true_mask`
    is given.
    """
    image = np.asarray(image)
    result = classical_steps(image, params)
    height, width = result["image"].shape[:2]
    figure = Figure(figsize=(1.9 * len(steps), 1.9 * height / width + 0.45 + (0.25 if title else 0)))
    axes = figure.subplots(1, len(steps), squeeze=False)[0]
    score = _draw_steps(axes, image, result, steps, params, true_mask)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure, score


def steps_figure(
    images: Sequence[np.ndarray],
    params: ClassicalParams = ClassicalParams(),
    true_masks=None,
    steps: Sequence[str] = FIGURE_STEPS,
    row_titles: Sequence[str] | None = None,
) -> Figure:
    """A grid: one row per image, one column per step of `classical_steps` (see `FIGURE_STEPS`)."""
    images = list(images)
    if not images:
        raise ValueError("steps_figure needs at least one image")
    true_masks = list(true_masks) if true_masks is not None else [None] * len(images)
    height, width = np.asarray(images[0]).shape[:2]
    figure = Figure(figsize=(1.6 * len(steps), len(images) * (1.6 * height / width + 0.35)))
    axes = figure.subplots(len(images), len(steps), squeeze=False)
    for row, (image, mask) in enumerate(zip(images, true_masks)):
        _draw_steps(axes[row], image, classical_steps(image, params), steps, params, mask)
        if row_titles is not None:
            axes[row][0].set_title(f"{row_titles[row]}\n{step_title(steps[0], params)}", fontsize=8)
    figure.tight_layout()
    return figure


# -------------------------------------------------------------------------- melanoma threshold


def threshold_counts(y_true, mel_scores, threshold: float) -> dict:
    """Confusion counts of "melanoma when score >= threshold", with sensitivity, specificity and PPV.

    `y_true` is 1/True for melanoma, 0/False otherwise (e.g. `labels == CLASS_INDEX["mel"]`). Ratios with
    a zero denominator (no melanoma at all, nothing flagged...) are NaN, as elsewhere in skinlib.
    """

    positive, scores = check_binary_scores(y_true, mel_scores)
    flagged = scores >= threshold
    tp, fn = int(np.sum(flagged & positive)), int(np.sum(~flagged & positive))
    fp, tn = int(np.sum(flagged & ~positive)), int(np.sum(~flagged & ~positive))

    def ratio(a: int, b: int) -> float:
        return a / b if b else math.nan

    return {
        "threshold": float(threshold),
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "tn": tn,
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "flagged": tp + fp,
        "n": len(scores),
    }


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def threshold_summary(counts: dict) -> str:
    """One line for a `threshold_counts` result."""
    return (
        f"threshold {counts['threshold']:.2f}: sensitivity {_fmt(counts['sensitivity'])}, "
        f"specificity {_fmt(counts['specificity'])}, {counts['flagged']} of {counts['n']} flagged "
        f"(missed melanomas: {counts['fn']})"
    )


def threshold_panel(y_true, mel_scores, threshold: float) -> tuple[Figure, dict]:
    """Score histograms of melanoma vs the rest with the threshold drawn, and the 2x2 confusion counts."""
    counts = threshold_counts(y_true, mel_scores, threshold)
    positive = np.asarray(y_true).astype(bool)
    scores = np.asarray(mel_scores, dtype=np.float64)
    low, high = min(0.0, float(scores.min(initial=0.0))), max(1.0, float(scores.max(initial=1.0)))
    bins = np.linspace(low, high, 31)
    figure = Figure(figsize=(8.4, 3.0))
    hist, matrix = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    hist.hist(scores[~positive], bins=bins, color="tab:blue", alpha=0.6, label=f"not melanoma ({(~positive).sum()})")
    hist.hist(scores[positive], bins=bins, color="tab:red", alpha=0.6, label=f"melanoma ({positive.sum()})")
    hist.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.2f}")
    hist.set_yscale("log")
    hist.set_xlabel("melanoma score")
    hist.set_ylabel("images")
    hist.legend(fontsize=7)
    table = np.array([[counts["tp"], counts["fn"]], [counts["fp"], counts["tn"]]])
    matrix.imshow(table, cmap="Blues")
    for (i, j), value in np.ndenumerate(table):
        matrix.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            fontsize=11,
            color="white" if value > table.max() / 2 else "black",
        )
    matrix.set_xticks([0, 1], ["flagged", "not flagged"], fontsize=8)
    matrix.set_yticks([0, 1], ["melanoma", "other"], fontsize=8)
    matrix.set_title(f"sens {_fmt(counts['sensitivity'])}, spec {_fmt(counts['specificity'])}", fontsize=9)
    figure.tight_layout()
    return figure, counts


# ------------------------------------------------------------------ Grad-CAM and TTA (stage 2)


def _stage_two(pipeline):
    """The classifier part (`StageTwo`) of a `DualStage`, or the argument itself."""
    return getattr(pipeline, "classifier", pipeline)


def stage2_crops(pipeline, images) -> np.ndarray:
    """The classifier's square uint8 inputs for `images`.

    With a `DualStage`, images of any size are segmented and cropped (`DualStage.prepare`); with a bare
    `StageTwo`, they are taken as crops already and only fitted (padded) to its input size.
    """

    images = list(images)
    if not images:
        raise ValueError("need at least one image")
    if hasattr(pipeline, "prepare"):
        return pipeline.prepare(images)[2]
    size = _stage_two(pipeline).image_size
    return np.stack([fit_size(np.asarray(i, np.uint8), (size, size), "pad") for i in images])


def _probability_bars(
    ax,
    probs,
    highlight: int | None = None,
    label: str | None = None,
    offset: float = 0.0,
    width: float = 0.8,
    colour="tab:blue",
) -> None:
    positions = np.arange(len(CLASSES)) + offset
    colours = [("tab:red" if i == highlight else colour) for i in range(len(CLASSES))]
    ax.bar(positions, probs, width=width, color=colours, label=label)
    ax.set_xticks(np.arange(len(CLASSES)), list(CLASSES), fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)


def gradcam_panel(
    pipeline, crop: np.ndarray, class_index: int | str | None = None, layer: str | None = None, title: str | None = None
) -> tuple[Figure, dict]:
    """The crop, its Grad-CAM overlay for one class at one layer, and the calibrated probabilities.

    `class_index`: None (or "predicted") for the predicted class, a class index or a class name;
    `layer`: any of `skinlib.explain.candidate_layers(model)`, None for the default (`top_activation`).
    Info: class, predicted, layer, probabilities (dict), map_shape (the map's resolution at that layer).
    """
    # deferred: loads Keras
    from .explain import _default_layer, gradcam, gradcam_overlay

    stage = _stage_two(pipeline)
    crop = np.asarray(crop, np.uint8)
    probs = stage.probabilities(crop[None])[0]
    predicted = int(np.argmax(probs))
    if class_index is None or class_index == "predicted":
        target = predicted
    elif isinstance(class_index, str):
        if class_index not in CLASSES:
            raise ValueError(f"unknown class {class_index!r}; expected one of {', '.join(CLASSES)}")
        target = CLASSES.index(class_index)
    else:
        target = int(class_index)
    layer = layer or _default_layer(stage.model)
    cam = gradcam(stage.members, crop[None].astype(np.float32), class_index=target, layer_name=layer)[0]
    figure = Figure(figsize=(8.6, 2.9))
    left, middle, right = figure.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.5]})
    _axis_image(left, crop, "classifier input (crop)")
    _axis_image(
        middle, gradcam_overlay(crop, cam), f"Grad-CAM for {CLASSES[target]}\n{layer} ({cam.shape[0]}x{cam.shape[1]})"
    )
    _probability_bars(right, probs, highlight=target)
    right.set_title(f"predicted {CLASSES[predicted]} ({probs[predicted]:.2f}); red: explained class", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    info = {
        "class": CLASSES[target],
        "predicted": CLASSES[predicted],
        "layer": layer,
        "probabilities": {c: float(v) for c, v in zip(CLASSES, probs)},
        "map_shape": tuple(cam.shape),
    }
    return figure, info


def tta_view_probabilities(pipeline, crop: np.ndarray) -> dict:
    """The 8 dihedral views of one crop and what the classifier makes of them (calibrated).

    Returns views (8, S, S, 3), view_probs (8, 7) (each view alone, plain temperature), single (view 0,
    i.e. no TTA: what `probabilities(crops)` gives) and average (the 8 raw views averaged, TTA
    temperature: what `probabilities(crops, Views.dihedral())` gives).
    """

    stage = _stage_two(pipeline)
    crop = np.asarray(crop, np.uint8)
    tta = Views.dihedral()
    views = tta.expand(crop[None])
    raw = stage.raw_probabilities(views, batch_size=8)  # each view alone, averaged over an ensemble's members
    view_probs = apply_temperature(raw, stage.temperature_for(SINGLE))
    average = apply_temperature(tta.fold(raw, 1), stage.temperature_for(tta))[0]
    return {"views": views, "view_probs": view_probs, "single": view_probs[0], "average": average}


def tta_panel(
    pipeline, crop: np.ndarray, tta: bool = True, title: str | None = None, views: dict | None = None
) -> tuple[Figure, dict]:
    """Probabilities of the single view vs the 8-view average (TTA on), and each view's top-class probability.

    `views`: a `tta_view_probabilities` result for this crop (computed if None). With `tta` off only the
    single-view bars are drawn and the views other than the identity are greyed out.
    Info: tta, prediction (of the mode shown), single, average (dicts), view_top (class of each view),
    view_confidence (its probability), spread (max - min over the views of the prediction's probability).
    """
    views = views or tta_view_probabilities(pipeline, crop)
    single, average, view_probs = views["single"], views["average"], views["view_probs"]
    shown = average if tta else single
    predicted = int(np.argmax(shown))
    figure = Figure(figsize=(8.8, 2.9))
    bars, strip = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    if tta:
        _probability_bars(bars, single, offset=-0.2, width=0.4, label="single view", colour="0.6")
        _probability_bars(bars, average, offset=0.2, width=0.4, label="8-view average (TTA)", colour="tab:blue")
        bars.legend(fontsize=7)
    else:
        _probability_bars(bars, single, label="single view", colour="tab:blue")
    bars.set_title(f"TTA {'on' if tta else 'off'}: predicted {CLASSES[predicted]} ({shown[predicted]:.2f})", fontsize=9)
    top = view_probs.argmax(axis=1)
    confidence = view_probs[np.arange(8), top]
    colours = [("tab:blue" if (tta or v == 0) else "0.85") for v in range(8)]
    strip.bar(np.arange(8), confidence, color=colours)
    for v in range(8):
        strip.text(v, confidence[v] + 0.02, CLASSES[top[v]], ha="center", fontsize=7, rotation=90)
    strip.set_xticks(np.arange(8), [str(v) for v in range(8)], fontsize=8)
    strip.set_xlabel("dihedral view (0 = as is)", fontsize=8)
    strip.set_ylim(0, 1.25)
    strip.set_yticks([0, 0.5, 1.0])
    strip.tick_params(axis="y", labelsize=7)
    strip.set_title("each view alone: top class and its probability", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    spread = float(view_probs[:, predicted].max() - view_probs[:, predicted].min())
    info = {
        "tta": bool(tta),
        "prediction": CLASSES[predicted],
        "confidence": float(shown[predicted]),
        "single": {c: float(v) for c, v in zip(CLASSES, single)},
        "average": {c: float(v) for c, v in zip(CLASSES, average)},
        "view_top": [CLASSES[t] for t in top],
        "view_confidence": [float(c) for c in confidence],
        "spread": spread,
    }
    return figure, info


def metadata_panel(
    pipeline,
    crop: np.ndarray,
    age=None,
    sex=None,
    site=None,
    title: str | None = None,
    image_only: np.ndarray | None = None,
) -> tuple[Figure, dict]:
    """The calibrated probabilities of one crop from the image alone vs fused with age, sex and site.

    `image_only`: those probabilities if already computed. None (or "unknown") for a field leaves it out.
    Info: image_only, fused (dicts), prediction (fused), used (the fields the prior knew).
    """

    stage = _stage_two(pipeline)
    if image_only is None:
        image_only = stage.probabilities(np.asarray(crop, np.uint8)[None])[0]
    metadata = pd.DataFrame({"age": [age], "sex": [sex], "localization": [site]})
    fused, used = stage.with_metadata(image_only[None], metadata, SINGLE)
    fused = fused[0]
    predicted = int(np.argmax(fused))
    figure = Figure(figsize=(8.8, 2.9))
    picture, bars = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.2]})
    _axis_image(picture, crop)
    _probability_bars(bars, image_only, offset=-0.2, width=0.4, label="image alone", colour="0.6")
    _probability_bars(bars, fused, offset=0.2, width=0.4, label="image + metadata", colour="tab:blue")
    bars.legend(fontsize=7)
    described = ", ".join(f"{k} {v}" for k, v in (used[0] or {}).items()) or "no metadata"
    bars.set_title(f"{described}: predicted {CLASSES[predicted]} ({fused[predicted]:.2f})", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    info = {
        "image_only": {c: float(v) for c, v in zip(CLASSES, image_only)},
        "fused": {c: float(v) for c, v in zip(CLASSES, fused)},
        "prediction": CLASSES[predicted],
        "used": used[0],
    }
    return figure, info
