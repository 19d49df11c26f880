"""Instructor widgets for the course notebooks, with a static fall-back for papermill, nbval and the book.

Five tools, each a function that builds its widget and shows it:

* `lesion_browser(frame)`: pick a class, step through its images lesion by lesion, see the image with
  the expert mask and the metadata;
* `classical_mask_explorer(frame)`: move the main `ClassicalParams` knobs and watch every step of the
  classical segmentation and its Dice against the expert mask;
* `melanoma_threshold_slider(y_true, mel_scores)`: sensitivity, specificity and the confusion counts of
  "melanoma if score >= threshold" (the scores come from the caller, e.g. a classifier's `probs[:, mel]`);
* `gradcam_explorer(pipeline, images)`: pick an image, a class and a layer; see the lesion crop, its
  Grad-CAM overlay and the probabilities;
* `tta_toggle(pipeline, images)`: test-time augmentation on/off, the single view's probabilities against
  the 8-view average, and what each dihedral view alone predicts.

**Static mode.** A widget needs a live kernel *and* a front-end; papermill, nbval and the rendered book
have neither, so there each function displays a PNG of the tool's default state instead (the book then
shows a real figure, not a dead slider). `static_mode()` decides:

* environment variable ``SKINLIB_STATIC=1`` (also ``true``/``yes``): static. `skinlib pipeline` sets it
  for the kernels it starts; set it yourself for nbval or a plain ``papermill`` run;
* ``SKINLIB_STATIC=0``: live, even where static would be guessed;
* unset: live inside an IPython kernel (Jupyter), static anywhere else (a script, pytest, a console).

In static mode the ipywidgets objects are only built when `.widget` is first used, so executed notebooks
carry no widget state. Either way, `save=PATH` writes the default-state figure as a PNG.

The logic behind each tool is a small pure function (`lesion_panel`, `mask_panel`, `threshold_counts`,
`threshold_panel`, `params_from_controls`, `gradcam_panel`, `tta_panel`...), testable without a front-end.
Figures are `matplotlib.figure.Figure` objects (never registered with pyplot) and are displayed as PNG
images, which render the same in Jupyter, in papermill output and in the book.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .data.classes import CLASSES, DISPLAY_NAMES
from .data.images import fit_size, read_image, read_mask
from .evaluation.calibration import apply_temperature
from .evaluation.classification import check_binary_scores
from .evaluation.segmentation import dice
from .runtime.views import dihedral
from .segmentation.classical import CHANNELS, ClassicalParams, as_rgb, classical_steps
from .visualize import overlay_mask

#: Environment variable that forces static (1) or live (0) output; `skinlib pipeline` sets it to 1.
STATIC_ENV = "SKINLIB_STATIC"

#: Resolution of every figure these tools display or save.
FIGURE_DPI = 100

#: Colours of the two masks in every comparison: expert in green, prediction in red.
EXPERT_COLOUR = (0, 200, 0)
PREDICTED_COLOUR = (230, 30, 30)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# --------------------------------------------------------------------------------- display helpers


def static_mode() -> bool:
    """True where widgets cannot be live: `SKINLIB_STATIC` if set, else "not inside an IPython kernel"."""
    value = os.environ.get(STATIC_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    return shell is None or getattr(shell, "kernel", None) is None


def figure_png(figure: Figure, dpi: int = FIGURE_DPI) -> bytes:
    """The figure as PNG bytes (tight bounding box)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def show_figure(figure: Figure, save: str | os.PathLike | None = None, dpi: int = FIGURE_DPI) -> None:
    """Display a figure as a PNG image (works in Jupyter, papermill and the book); also write it to `save`.

    Why PNG rather than the figure object: a bare `Figure` is only rendered where matplotlib's inline
    back-end registered its formatter, a PNG everywhere. Returns None, so a notebook cell that ends with
    this call shows the image once and nothing else.
    """
    from IPython.display import Image, display

    png = figure_png(figure, dpi)
    if save is not None:
        save = Path(save)
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_bytes(png)
    display(Image(data=png, format="png"))


def _png_output(png: bytes, text: str = "figure") -> dict:
    """An nbformat display_data output, the form `ipywidgets.Output.outputs` holds."""
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": text},
    }


def _axis_image(ax, image, title: str | None = None, cmap: str | None = None) -> None:
    image = np.asarray(image)
    if image.dtype == bool:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    elif image.ndim == 2:
        ax.imshow(image, cmap=cmap or "gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    # a thin frame instead of axes: an all-white (or all-black) mask still shows where the image is
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.7")
        spine.set_linewidth(0.5)
    if title:
        ax.set_title(title, fontsize=8)


def compare_masks(image: np.ndarray, true_mask=None, pred_mask=None) -> np.ndarray:
    """The image with the expert mask (green) and a predicted mask (red) tinted and outlined."""
    out = np.asarray(image, np.uint8)
    if true_mask is not None:
        out = overlay_mask(out, true_mask, colour=EXPERT_COLOUR, alpha=0.2)
    if pred_mask is not None:
        out = overlay_mask(out, pred_mask, colour=PREDICTED_COLOUR, alpha=0.2)
    return out


def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    size: float = 2.2,
    suptitle: str | None = None,
) -> Figure:
    """A grid of images (RGB, gray or boolean), `ncols` wide, each with its title above it."""
    images = list(images)
    if not images:
        raise ValueError("image_grid needs at least one image")
    titles = list(titles) if titles is not None else [None] * len(images)
    ncols = max(1, min(ncols, len(images)))
    nrows = math.ceil(len(images) / ncols)
    height, width = np.asarray(images[0]).shape[:2]
    figure = Figure(figsize=(ncols * size, nrows * size * height / width + 0.35 * nrows + (0.3 if suptitle else 0)))
    axes = figure.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, title in zip(axes.flat, images, titles):
        _axis_image(ax, image, title)
    if suptitle:
        figure.suptitle(suptitle, fontsize=10)
    figure.tight_layout()
    return figure


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
    i.e. no TTA: what `probabilities(tta=False)` gives) and average (the 8 raw views averaged, TTA
    temperature: what `probabilities(tta=True)` gives).
    """

    stage = _stage_two(pipeline)
    crop = np.asarray(crop, np.uint8)
    views = np.concatenate([dihedral(crop[None], view) for view in range(8)])
    raw = stage.raw_probabilities(views, batch_size=8)  # each view alone, averaged over an ensemble's members
    view_probs = apply_temperature(raw, stage.temperature_for(False))
    average = apply_temperature(raw.mean(axis=0, keepdims=True), stage.temperature_for(True))[0]
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


# ------------------------------------------------------------------------------------- widgets


class InstructorWidget:
    """A tool: controls (built lazily), a pure `render(state) -> (Figure, info)`, an output area.

    `update()` re-renders from the controls (or from `state` before the widget exists) and returns the
    info dict; the controls call it on every change. `show()` displays the widget when live, else a PNG of
    the current state. Attributes: `state` (current values), `figure` and `info` (last render),
    `controls` (name -> ipywidget), `output` (the ipywidgets.Output the figure goes to), `widget`.
    """

    title = ""

    def __init__(self, state: dict, save: str | os.PathLike | None = None):
        self.state = dict(state)
        self.save = Path(save) if save is not None else None
        self.controls: dict = {}
        self.output = None
        self.text = None
        self._widget = None
        self._busy = False
        self.figure, self.info = self.render(self.state)
        self.png = figure_png(self.figure)
        if self.save is not None:
            self.save.parent.mkdir(parents=True, exist_ok=True)
            self.save.write_bytes(self.png)

    # to be provided by each tool
    def render(self, state: dict) -> tuple[Figure, dict]:
        raise NotImplementedError

    def describe(self, info: dict) -> str:
        return ""

    def build_controls(self, widgets) -> dict:
        raise NotImplementedError

    def layout(self, widgets) -> list:
        return [widgets.HBox(list(self.controls.values()))]

    def on_change(self, name: str, change) -> None:
        """Hook for controls that change other controls (e.g. a new class resets the image index)."""

    # shared machinery
    @property
    def widget(self):
        """The ipywidgets container (built on first use)."""
        if self._widget is None:
            try:
                import ipywidgets as widgets
            except ImportError as error:  # pragma: no cover - ipywidgets is a course dependency
                raise ImportError("the instructor widgets need ipywidgets: pip install -e '.[course]'") from error
            self.controls = self.build_controls(widgets)
            self.text = widgets.HTML(html.escape(self.describe(self.info)))
            self.output = widgets.Output()
            self.output.outputs = (_png_output(self.png, self.title),)
            for name, control in self.controls.items():
                if hasattr(control, "value"):
                    control.observe(lambda change, name=name: self._changed(name, change), names="value")
            self._widget = widgets.VBox([*self.layout(widgets), self.text, self.output])
        return self._widget

    def _changed(self, name: str, change) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            self.on_change(name, change)
        finally:
            self._busy = False
        self.update()

    def values(self) -> dict:
        """Current values: the controls' when the widget exists, else `state`."""
        if self._widget is None:
            return dict(self.state)
        return {**self.state, **{n: c.value for n, c in self.controls.items() if hasattr(c, "value")}}

    def update(self, change=None) -> dict:
        """Re-render from the current values; refresh the output area and text; return the info dict."""
        self.state = self.values()
        self.figure, self.info = self.render(self.state)
        self.png = figure_png(self.figure)
        if self._widget is not None:
            self.output.outputs = (_png_output(self.png, self.title),)
            self.text.value = html.escape(self.describe(self.info))
        return self.info

    def show(self) -> None:
        """Display the live widget, or (static mode) the current figure as a PNG with its description."""
        from IPython.display import Image, Markdown, display

        if static_mode():
            display(Image(data=self.png, format="png"))
            description = self.describe(self.info)
            if description:
                display(Markdown(description))
        else:
            display(self.widget)

    def _ipython_display_(self) -> None:
        self.show()


class LesionBrowser(InstructorWidget):
    """Step through the images of one class; see `lesion_browser`."""

    title = "lesion browser"

    def __init__(self, frame: pd.DataFrame, dx: str = "mel", index: int = 0, save=None):
        self.frame = frame
        self._rows: dict[str, pd.DataFrame] = {}
        super().__init__({"dx": dx, "index": int(index)}, save)

    def rows(self, dx: str) -> pd.DataFrame:
        if dx not in self._rows:
            self._rows[dx] = browser_rows(self.frame, dx)
        return self._rows[dx]

    def current_row(self, state: dict | None = None) -> pd.Series:
        state = state or self.state
        rows = self.rows(state["dx"])
        if rows.empty:
            raise ValueError(f"no images of class {state['dx']!r} in this frame")
        return rows.iloc[int(np.clip(state["index"], 0, len(rows) - 1))]

    def render(self, state):
        row = self.current_row(state)
        return lesion_panel(row), {
            "image_id": row["image_id"],
            "lesion_id": row["lesion_id"],
            "dx": row["dx"],
            "text": lesion_text(row),
            "count": len(self.rows(state["dx"])),
        }

    def describe(self, info):
        return info["text"]

    def build_controls(self, widgets):
        options = [
            (f"{c}: {DISPLAY_NAMES[c]} ({int((self.frame['dx'] == c).sum())})", c)
            for c in CLASSES
            if (self.frame["dx"] == c).any()
        ]
        count = len(self.rows(self.state["dx"]))
        controls = {
            "dx": widgets.Dropdown(options=options, value=self.state["dx"], description="class"),
            "index": widgets.IntSlider(
                value=self.state["index"], min=0, max=max(0, count - 1), description="image", continuous_update=False
            ),
            "previous": widgets.Button(description="previous", icon="arrow-left"),
            "next": widgets.Button(description="next", icon="arrow-right"),
        }
        controls["previous"].on_click(lambda _: self.step(-1))
        controls["next"].on_click(lambda _: self.step(+1))
        return controls

    def layout(self, widgets):
        c = self.controls
        return [c["dx"], widgets.HBox([c["previous"], c["index"], c["next"]])]

    def on_change(self, name, change):
        if name == "dx":
            slider = self.controls["index"]
            slider.value = 0
            slider.max = max(0, len(self.rows(change["new"])) - 1)

    def step(self, delta: int) -> dict:
        """Next (+1) or previous (-1) image, wrapping around; returns the new info."""
        self.widget  # noqa: B018 - build the controls if needed
        slider = self.controls["index"]
        slider.value = (slider.value + delta) % (slider.max + 1)  # the observer re-renders
        return self.info


class MaskExplorer(InstructorWidget):
    """Classical segmentation with sliders; see `classical_mask_explorer`."""

    title = "classical mask explorer"

    def __init__(self, frame: pd.DataFrame, index: int = 0, params: ClassicalParams = ClassicalParams(), save=None):
        if frame.empty:
            raise ValueError("classical_mask_explorer needs at least one image")
        self.frame = frame.reset_index(drop=True)
        self.base = params
        self._pairs: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._default_dice: dict[int, float | None] = {}
        state = {"image": int(index), **{name: getattr(params, name) for name in EXPLORER_FIELDS}}
        super().__init__(state, save)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(image, expert mask or None) of row `index`, read once."""
        if index not in self._pairs:
            row = self.frame.iloc[index]
            mask_path = row.get("mask_path")
            mask = read_mask(mask_path) if _known(mask_path) and Path(mask_path).is_file() else None
            self._pairs[index] = (read_image(row["image_path"]), mask)
        return self._pairs[index]

    def render(self, state):
        index = int(np.clip(state["image"], 0, len(self.frame) - 1))
        image, mask = self.pair(index)
        params = params_from_controls(state, self.base)
        if index not in self._default_dice:
            self._default_dice[index] = _dice_of(image, mask, self.base) if mask is not None else None
        image_id = self.frame.iloc[index].get("image_id", f"image {index}")
        figure, score = mask_panel(image, params, mask, title=f"{image_id}")
        return figure, {
            "image_id": image_id,
            "dice": score,
            "default_dice": self._default_dice[index],
            "params": params,
        }

    def describe(self, info):
        if info["dice"] is None:
            return f"{info['image_id']}: no expert mask to compare with"
        return (
            f"Dice vs expert: {info['dice']:.3f} (default parameters: {info['default_dice']:.3f}) on {info['image_id']}"
        )

    def build_controls(self, widgets):
        s = self.state
        style = {"description_width": "110px"}
        controls = {
            "image": widgets.IntSlider(
                value=s["image"],
                min=0,
                max=len(self.frame) - 1,
                description="image",
                style=style,
                continuous_update=False,
            ),
            "hair_removal": widgets.Checkbox(value=s["hair_removal"], description="remove hair"),
            "hair_kernel": widgets.IntSlider(
                value=s["hair_kernel"],
                min=1,
                max=15,
                step=2,
                description="hair kernel",
                style=style,
                continuous_update=False,
            ),
            "channel": widgets.Dropdown(options=list(CHANNELS), value=s["channel"], description="channel", style=style),
            "method": widgets.ToggleButtons(
                options=["adaptive", "otsu"], value=s["method"], description="threshold", style=style
            ),
            "adaptive_block": widgets.IntSlider(
                value=s["adaptive_block"],
                min=15,
                max=301,
                step=2,
                description="block size",
                style=style,
                continuous_update=False,
            ),
            "adaptive_c": widgets.FloatSlider(
                value=s["adaptive_c"], min=-10, max=20, step=0.5, description="C", style=style, continuous_update=False
            ),
            "otsu_offset": widgets.FloatSlider(
                value=s["otsu_offset"],
                min=-40,
                max=40,
                step=1,
                description="Otsu offset",
                style=style,
                continuous_update=False,
            ),
            "open_kernel": widgets.IntSlider(
                value=s["open_kernel"], min=1, max=15, description="opening", style=style, continuous_update=False
            ),
            "close_kernel": widgets.IntSlider(
                value=s["close_kernel"], min=1, max=25, description="closing", style=style, continuous_update=False
            ),
            "reset": widgets.Button(description="defaults", icon="undo"),
        }
        controls["reset"].on_click(lambda _: self.reset())
        self._enable(controls)
        return controls

    def layout(self, widgets):
        c = self.controls
        return [
            widgets.HBox([c["image"], c["reset"]]),
            widgets.HBox([c["hair_removal"], c["hair_kernel"]]),
            widgets.HBox([c["channel"], c["method"]]),
            widgets.HBox([c["adaptive_block"], c["adaptive_c"]]),
            c["otsu_offset"],
            widgets.HBox([c["open_kernel"], c["close_kernel"]]),
        ]

    @staticmethod
    def _enable(controls) -> None:
        adaptive = controls["method"].value == "adaptive"
        controls["adaptive_block"].disabled = not adaptive
        controls["adaptive_c"].disabled = not adaptive
        controls["otsu_offset"].disabled = adaptive
        controls["hair_kernel"].disabled = not controls["hair_removal"].value

    def on_change(self, name, change):
        self._enable(self.controls)

    def reset(self) -> dict:
        """Every control back to the base parameters (the image stays)."""
        self.widget  # noqa: B018 - build the controls if needed
        self._busy = True
        try:
            for name in EXPLORER_FIELDS:
                self.controls[name].value = getattr(self.base, name)
            self._enable(self.controls)
        finally:
            self._busy = False
        return self.update()


def _dice_of(image, mask, params) -> float:
    return dice(classical_steps(image, params)["mask"], mask)


class ThresholdSlider(InstructorWidget):
    """Melanoma decision threshold; see `melanoma_threshold_slider`."""

    title = "melanoma threshold"

    def __init__(self, y_true, mel_scores, threshold: float = 0.5, save=None):
        self.y_true = np.asarray(y_true)
        self.scores = np.asarray(mel_scores, dtype=np.float64)
        threshold_counts(self.y_true, self.scores, threshold)  # validate early, with a clear message
        super().__init__({"threshold": float(threshold)}, save)

    def render(self, state):
        return threshold_panel(self.y_true, self.scores, state["threshold"])

    def describe(self, info):
        return threshold_summary(info)

    def build_controls(self, widgets):
        low = min(0.0, float(self.scores.min(initial=0.0)))
        high = max(1.0, float(self.scores.max(initial=1.0)))
        return {
            "threshold": widgets.FloatSlider(
                value=self.state["threshold"],
                min=low,
                max=high,
                step=(high - low) / 100,
                readout_format=".2f",
                description="threshold",
                continuous_update=False,
            )
        }


class _CropTool(InstructorWidget):
    """Shared by the stage-2 tools: the crops of `images`, computed once, and an image picker."""

    def _setup(self, pipeline, images, names):
        self.pipeline = pipeline
        self.crops = stage2_crops(pipeline, images)
        self.names = list(names) if names is not None else [f"image {i}" for i in range(len(self.crops))]
        if len(self.names) != len(self.crops):
            raise ValueError(f"{len(self.names)} names for {len(self.crops)} images")

    def _index(self, state) -> int:
        return int(np.clip(state["image"], 0, len(self.crops) - 1))

    def _image_control(self, widgets):
        return widgets.Dropdown(
            options=[(name, i) for i, name in enumerate(self.names)], value=self._index(self.state), description="image"
        )


class GradcamExplorer(_CropTool):
    """Grad-CAM for a chosen image, class and layer; see `gradcam_explorer`."""

    title = "Grad-CAM explorer"

    def __init__(
        self,
        pipeline,
        images,
        names=None,
        index: int = 0,
        class_name: str = "predicted",
        layer: str | None = None,
        save=None,
    ):
        # deferred: loads Keras
        from .explain import _default_layer, candidate_layers

        self._setup(pipeline, images, names)
        model = _stage_two(pipeline).model
        self.layers = candidate_layers(model)
        layer = layer or _default_layer(model)
        if layer not in self.layers:
            raise ValueError(f"layer {layer!r} is not one of {', '.join(self.layers)}")
        if class_name != "predicted" and class_name not in CLASSES:
            raise ValueError(f"unknown class {class_name!r}; expected 'predicted' or one of {', '.join(CLASSES)}")
        super().__init__({"image": int(index), "class_name": class_name, "layer": layer}, save)

    def render(self, state):
        index = self._index(state)
        figure, info = gradcam_panel(
            self.pipeline, self.crops[index], state["class_name"], state["layer"], title=self.names[index]
        )
        return figure, {**info, "image": self.names[index]}

    def describe(self, info):
        return (
            f"{info['image']}: Grad-CAM of class {info['class']} at layer {info['layer']} "
            f"(a {info['map_shape'][0]}x{info['map_shape'][1]} map); predicted {info['predicted']} "
            f"with probability {info['probabilities'][info['predicted']]:.2f}"
        )

    def build_controls(self, widgets):
        return {
            "image": self._image_control(widgets),
            "class_name": widgets.Dropdown(
                options=["predicted", *CLASSES], value=self.state["class_name"], description="class"
            ),
            "layer": widgets.Dropdown(options=self.layers, value=self.state["layer"], description="layer"),
        }

    def layout(self, widgets):
        c = self.controls
        return [widgets.HBox([c["image"], c["class_name"]]), c["layer"]]


class TtaToggle(_CropTool):
    """Test-time augmentation on/off for a chosen image; see `tta_toggle`."""

    title = "test-time augmentation"

    def __init__(self, pipeline, images, names=None, index: int = 0, tta: bool = True, save=None):
        self._setup(pipeline, images, names)
        self._views: dict[int, dict] = {}
        super().__init__({"image": int(index), "tta": bool(tta)}, save)

    def views(self, index: int) -> dict:
        """`tta_view_probabilities` of crop `index`, computed once."""
        if index not in self._views:
            self._views[index] = tta_view_probabilities(self.pipeline, self.crops[index])
        return self._views[index]

    def render(self, state):
        index = self._index(state)
        figure, info = tta_panel(
            self.pipeline, self.crops[index], bool(state["tta"]), title=self.names[index], views=self.views(index)
        )
        return figure, {**info, "image": self.names[index]}

    def describe(self, info):
        single = max(info["single"], key=info["single"].get)
        average = max(info["average"], key=info["average"].get)
        agree = sum(top == info["prediction"] for top in info["view_top"])
        return (
            f"{info['image']}: single view says {single} ({info['single'][single]:.2f}), the 8-view average "
            f"says {average} ({info['average'][average]:.2f}); {agree} of 8 views alone agree with "
            f"{info['prediction']} (TTA {'on' if info['tta'] else 'off'})"
        )

    def build_controls(self, widgets):
        return {
            "image": self._image_control(widgets),
            "tta": widgets.ToggleButtons(
                options=[("TTA off", False), ("TTA on (8 views)", True)], value=bool(self.state["tta"]), description=""
            ),
        }


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
    fused, used = stage.with_metadata(image_only[None], metadata, tta=False)
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


class MetadataExplorer(_CropTool):
    """Age, sex and site against the image's own probabilities; see `metadata_explorer`."""

    title = "metadata explorer"
    UNKNOWN = "unknown"

    def __init__(self, pipeline, images, names=None, index: int = 0, age=None, sex=None, site=None, save=None):
        self._setup(pipeline, images, names)
        prior = _stage_two(pipeline).metadata_prior
        if prior is None:
            raise ValueError("this classifier has no metadata fusion: run `skinlib fit-metadata` first")
        self.sites = sorted(prior.tables.get("site", {}))
        self._image_only: dict[int, np.ndarray] = {}
        sex = str(sex).strip().lower() if sex is not None else self.UNKNOWN
        site = str(site).strip().lower() if site is not None else self.UNKNOWN
        super().__init__(
            {
                "image": int(index),
                "age": age,  # values the controls do not offer start as unknown
                "sex": sex if sex in ("female", "male") else self.UNKNOWN,
                "site": site if site in self.sites else self.UNKNOWN,
            },
            save,
        )

    def image_only(self, index: int) -> np.ndarray:
        if index not in self._image_only:
            self._image_only[index] = _stage_two(self.pipeline).probabilities(self.crops[index][None])[0]
        return self._image_only[index]

    def render(self, state):
        index = self._index(state)
        known = {k: (None if state[k] in (self.UNKNOWN, None) else state[k]) for k in ("age", "sex", "site")}
        figure, info = metadata_panel(
            self.pipeline, self.crops[index], title=self.names[index], image_only=self.image_only(index), **known
        )
        return figure, {**info, "image": self.names[index]}

    def describe(self, info):
        alone = max(info["image_only"], key=info["image_only"].get)
        return (
            f"{info['image']}: the image alone says {alone} ({info['image_only'][alone]:.2f}); with "
            f"{', '.join(f'{k} {v}' for k, v in (info['used'] or {}).items()) or 'no metadata'} the fused answer is "
            f"{info['prediction']} ({info['fused'][info['prediction']]:.2f})"
        )

    def build_controls(self, widgets):
        ages = [(self.UNKNOWN, self.UNKNOWN)] + [(str(a), a) for a in range(0, 90, 5)]
        age = self.state["age"] if self.state["age"] in dict(ages).values() else self.UNKNOWN
        return {
            "image": self._image_control(widgets),
            "age": widgets.Dropdown(options=ages, value=age, description="age"),
            "sex": widgets.Dropdown(
                options=[self.UNKNOWN, "female", "male"], value=self.state["sex"], description="sex"
            ),
            "site": widgets.Dropdown(options=[self.UNKNOWN, *self.sites], value=self.state["site"], description="site"),
        }

    def layout(self, widgets):
        c = self.controls
        return [c["image"], widgets.HBox([c["age"], c["sex"], c["site"]])]


def metadata_explorer(
    pipeline, images, names=None, index: int = 0, age=None, sex=None, site=None, save=None, show: bool = True
) -> MetadataExplorer:
    """Pick an image and set the patient's age, sex and lesion site: the bars compare the image's own
    calibrated probabilities with the metadata-fused ones (`skinlib fit-metadata`). Arguments as for
    `gradcam_explorer`; `age`/`sex`/`site` set the starting state. Returns the `MetadataExplorer`."""
    tool = MetadataExplorer(pipeline, images, names=names, index=index, age=age, sex=sex, site=site, save=save)
    if show:
        tool.show()
    return tool


def lesion_browser(frame: pd.DataFrame, dx: str = "mel", index: int = 0, save=None, show: bool = True) -> LesionBrowser:
    """Browse the images of a class, lesion by lesion, with the expert mask and the metadata.

    `frame` is a metadata frame with `image_path` and `mask_path` (e.g. `load_split_frame()`, or one split
    of it). Displays the tool (live) or a PNG of `dx`/`index` (static mode); returns the `LesionBrowser`.
    """
    tool = LesionBrowser(frame, dx=dx, index=index, save=save)
    if show:
        tool.show()
    return tool


def classical_mask_explorer(
    frame: pd.DataFrame, index: int = 0, params: ClassicalParams = ClassicalParams(), save=None, show: bool = True
) -> MaskExplorer:
    """Sliders for the main `ClassicalParams` fields, every step drawn and the Dice against the expert mask.

    `frame` lists the images to choose from (pass a small sample: each is read when first shown);
    `params` is the starting point and what "defaults" returns to. Returns the `MaskExplorer`.
    """
    tool = MaskExplorer(frame, index=index, params=params, save=save)
    if show:
        tool.show()
    return tool


def melanoma_threshold_slider(
    y_true, mel_scores, threshold: float = 0.5, save=None, show: bool = True
) -> ThresholdSlider:
    """Sensitivity, specificity and confusion counts of "melanoma if score >= threshold".

    `y_true`: 1/True for melanoma; `mel_scores`: the caller's melanoma scores (e.g. `probs[:, mel]`).
    Returns the `ThresholdSlider`.
    """
    tool = ThresholdSlider(y_true, mel_scores, threshold=threshold, save=save)
    if show:
        tool.show()
    return tool


def gradcam_explorer(
    pipeline,
    images,
    names=None,
    index: int = 0,
    class_name: str = "predicted",
    layer: str | None = None,
    save=None,
    show: bool = True,
) -> GradcamExplorer:
    """Pick an image, a class (default: the predicted one) and a layer; see the crop, its Grad-CAM overlay
    and the calibrated probabilities.

    `pipeline`: a `DualStage` (images of any size are segmented and cropped once, up front) or a
    `StageTwo` (images are crops already). `names`: one label per image (e.g. "ISIC_... (mel)").
    The layers offered are `skinlib.explain.candidate_layers` of the classifier. Returns the `GradcamExplorer`.
    """
    tool = GradcamExplorer(pipeline, images, names=names, index=index, class_name=class_name, layer=layer, save=save)
    if show:
        tool.show()
    return tool


def tta_toggle(
    pipeline, images, names=None, index: int = 0, tta: bool = True, save=None, show: bool = True
) -> TtaToggle:
    """Test-time augmentation on/off: the 7 probabilities of the single view vs the average of the 8
    dihedral views, and what each view alone predicts. Arguments as for `gradcam_explorer`.
    Returns the `TtaToggle`.
    """
    tool = TtaToggle(pipeline, images, names=names, index=index, tta=tta, save=save)
    if show:
        tool.show()
    return tool


__all__ = [
    "STATIC_ENV",
    "FIGURE_DPI",
    "static_mode",
    "figure_png",
    "show_figure",
    "compare_masks",
    "image_grid",
    "browser_rows",
    "lesion_text",
    "lesion_panel",
    "EXPLORER_STEPS",
    "FIGURE_STEPS",
    "EXPLORER_FIELDS",
    "step_title",
    "params_from_controls",
    "mask_panel",
    "steps_figure",
    "threshold_counts",
    "threshold_summary",
    "threshold_panel",
    "InstructorWidget",
    "LesionBrowser",
    "MaskExplorer",
    "ThresholdSlider",
    "lesion_browser",
    "classical_mask_explorer",
    "melanoma_threshold_slider",
    "stage2_crops",
    "gradcam_panel",
    "tta_view_probabilities",
    "tta_panel",
    "GradcamExplorer",
    "TtaToggle",
    "gradcam_explorer",
    "tta_toggle",
    "metadata_panel",
    "MetadataExplorer",
    "metadata_explorer",
]
