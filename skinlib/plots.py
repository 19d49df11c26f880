"""Course figures that are neither an evaluation report nor a widget: training curves, loss shapes,
per-class recall side by side, and the ablation study. Each returns a matplotlib `Figure` (no pyplot
state), so notebooks show it with `skinlib.display.show_figure` and tests can inspect it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .data.classes import CLASSES
from .evaluation.robustness import COLOUR_CASTS, colour_cast
from .evaluation.shifts import SHIFTS, apply_shift

PHASE_COLOURS = ("#e8eef7", "#f7efe3", "#e9f5e9", "#f5e6f0")


def training_curves_figure(history: Sequence[Mapping], title: str = "training") -> Figure:
    """Training loss and validation balanced accuracy per epoch, phases shaded, best epoch marked."""
    if not history:
        raise ValueError("history is empty: nothing was trained")
    epochs = np.array([h["epoch"] for h in history]) + 1
    phases = np.array([h["phase"] for h in history])
    figure = Figure(figsize=(9, 3.2))
    loss_ax, score_ax = figure.subplots(1, 2)
    for ax in (loss_ax, score_ax):
        for phase in np.unique(phases):
            span = epochs[phases == phase]
            ax.axvspan(span.min() - 0.5, span.max() + 0.5, color=PHASE_COLOURS[phase % len(PHASE_COLOURS)], zorder=0)
            ax.text(
                span.mean(),
                1.0,
                f"phase {phase}",
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xlabel("epoch")
    loss_ax.plot(epochs, [h["loss"] for h in history], marker="o", color="tab:blue")
    loss_ax.set_ylabel("training loss")
    scores = np.array([h["val_balanced_accuracy"] for h in history])
    score_ax.plot(epochs, scores, marker="o", color="tab:green", label="balanced accuracy")
    if "val_accuracy" in history[0]:
        score_ax.plot(epochs, [h["val_accuracy"] for h in history], marker=".", color="tab:gray", label="accuracy")
    best = int(np.argmax(scores))
    score_ax.scatter(
        [epochs[best]],
        [scores[best]],
        s=120,
        facecolors="none",
        edgecolors="red",
        zorder=3,
        label=f"best: epoch {epochs[best]}",
    )
    score_ax.set_ylabel("validation")
    score_ax.legend(fontsize=8, loc="lower right")
    figure.suptitle(title, y=1.06)
    figure.tight_layout()
    return figure


def focal_loss_values(p_true: np.ndarray, gamma: float) -> np.ndarray:
    """Per-sample focal loss of a 7-class prediction giving `p_true` to the true class (alpha = 1),
    computed by `skinlib.losses.CategoricalFocalLoss` itself (gamma 0 is plain cross-entropy)."""
    import keras

    # deferred: loads Keras
    from .losses import CategoricalFocalLoss

    p_true = np.asarray(p_true, np.float32)
    probs = np.repeat(((1 - p_true) / (len(CLASSES) - 1))[:, None], len(CLASSES), axis=1)
    probs[:, 0] = p_true
    truth = np.zeros_like(probs)
    truth[:, 0] = 1
    loss = CategoricalFocalLoss(gamma=gamma, reduction=None)
    return np.asarray(keras.ops.convert_to_numpy(loss(truth, probs)))


def focal_loss_figure(gammas: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 5.0)) -> Figure:
    """Loss against the probability of the true class, one curve per gamma, and the ratio to cross-entropy."""
    p = np.linspace(0.01, 0.99, 99)
    figure = Figure(figsize=(9, 3.4))
    left, right = figure.subplots(1, 2)
    ce = focal_loss_values(p, 0.0)
    for gamma in gammas:
        values = focal_loss_values(p, gamma)
        label = "cross-entropy (γ = 0)" if gamma == 0 else f"focal, γ = {gamma:g}"
        left.plot(p, values, label=label)
        right.plot(p, values / ce, label=label)
    left.set_xlabel("probability of the true class")
    left.set_ylabel("loss")
    left.set_ylim(0, 4)
    right.set_xlabel("probability of the true class")
    right.set_ylabel("share of the cross-entropy loss kept")
    right.axvspan(0.6, 1.0, color="0.92", zorder=0)
    right.text(0.8, 0.95, "easy examples", ha="center", fontsize=8)
    left.legend(fontsize=8)
    figure.tight_layout()
    return figure


def recall_comparison_figure(recalls: Mapping[str, Mapping[str, float]], title: str = "") -> Figure:
    """Grouped bars: per-class recall (x) for each named run (colour); the mean is the balanced accuracy."""
    names = list(recalls)
    if not names:
        raise ValueError("no runs to compare")
    x = np.arange(len(CLASSES))
    width = 0.8 / len(names)
    figure = Figure(figsize=(9, 3.4))
    ax = figure.subplots()
    for i, name in enumerate(names):
        values = [recalls[name].get(code, np.nan) for code in CLASSES]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=f"{name} (mean {np.nanmean(values):.3f})")
    ax.set_xticks(x, CLASSES)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall")
    ax.legend(fontsize=8, ncols=min(len(names), 3), loc="upper left")
    if title:
        ax.set_title(title)
    figure.tight_layout()
    return figure


def ablation_figure(results: Mapping) -> Figure:
    """Each ablation row's balanced accuracy minus the baseline's, on validation (where choices are made)
    and on test, each with its paired bootstrap 95 % interval."""
    rows = [r for r in results["rows"] if r["name"] != results.get("baseline", "baseline")]
    if not rows:
        raise ValueError("the ablation results hold no row besides the baseline")
    y = np.arange(len(rows))
    figure = Figure(figsize=(8, 0.55 * len(rows) + 1.6))
    ax = figure.subplots()
    for split, offset, colour, marker in (("val", -0.15, "tab:orange", "d"), ("test", 0.15, "tab:blue", "o")):
        diffs = [r[f"{split}_minus_baseline"]["balanced_accuracy"] for r in rows if f"{split}_minus_baseline" in r]
        if len(diffs) != len(rows):
            continue  # results written before validation differences were recorded
        point = np.array([d["difference"] for d in diffs])
        low = np.array([d["ci95"][0] for d in diffs])
        high = np.array([d["ci95"][1] for d in diffs])
        ax.errorbar(
            point,
            y + offset,
            xerr=[point - low, high - point],
            fmt=marker,
            color=colour,
            capsize=3,
            label=f"{'validation' if split == 'val' else 'test'} (paired 95 % CI)",
        )
    ax.axvline(0, color="black", linewidth=1)
    over_images = [
        r["val_minus_baseline"]["balanced_accuracy"].get("bootstrap_unit", "images") == "images" for r in rows
    ]
    ax.set_yticks(y, [r["name"] + (" *" if images else "") for r, images in zip(rows, over_images)])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(
        "balanced accuracy minus the baseline's"
        + (
            "\n* intervals over images (collected before the bootstrap resampled lesions): too narrow"
            if any(over_images)
            else ""
        )
    )
    ax.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return figure


def learning_curve_figure(curve: Mapping) -> Figure:
    """Balanced accuracy against training images (log scale) from `skinlib.workflows.ablation.learning_curve`,
    with its log-linear fit to validation extended (dashed) towards the target, if the curve has one."""
    images = np.asarray(curve["train_images"], dtype=float)
    figure = Figure(figsize=(6.5, 3.6))
    ax = figure.subplots()
    ax.plot(images, curve["val_balanced_accuracy"], "d-", color="tab:orange", label="validation")
    ax.plot(images, curve["test_balanced_accuracy"], "o-", color="tab:blue", label="test")
    far = images[-1] * 2 ** min(max(curve.get("doublings_to_target", 1.0), 1.0), 8.0)
    span = np.geomspace(images[0], far, 50)
    ax.plot(
        span,
        curve["val_fit_intercept"] + curve["val_gain_per_doubling"] * np.log2(span),
        "--",
        color="tab:orange",
        alpha=0.6,
        label=f"fit to validation: {curve['val_gain_per_doubling']:+.3f} per doubling",
    )
    if "target" in curve:
        ax.axhline(curve["target"], color="black", linestyle=":", linewidth=1, label=f"target {curve['target']:g}")
    ax.axvline(images[-1], color="grey", linewidth=0.8)
    ax.text(images[-1], 0.02, " all training images", transform=ax.get_xaxis_transform(), color="grey", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel("balanced accuracy")
    ax.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    return figure


def metadata_prior_figure(prior, min_lesions: int = 20) -> Figure:
    """What each age decade, sex and site says about each class: the prior's log-ratios
    log p(value | class) / p(value) as heatmaps (red: more likely with that value; blue: less).

    Sites with fewer than `min_lesions` training lesions are left out of the picture (they still count in
    the fusion, heavily smoothed); the caption says how many.
    """

    def order(field):
        values = list(prior.tables.get(field, {}))
        if field == "age":
            return sorted(values, key=lambda v: int(v.rstrip("s")))
        return [v for v in sorted(values) if sum(prior.counts[field][v]) >= min_lesions]

    fields = [f for f in ("age", "site", "sex") if order(f)]
    if not fields:
        raise ValueError("the prior has no fields to draw")
    heights = [len(order(f)) for f in fields]
    figure = Figure(figsize=(11, 0.3 * max(heights) + 2.4), layout="constrained")
    axes = figure.subplots(1, len(fields))
    axes = np.atleast_1d(axes)
    for ax, field in zip(axes, fields):
        values = order(field)
        matrix = np.array([prior.tables[field][v] for v in values])
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-2.5, vmax=2.5, aspect="auto")
        ax.set_xticks(np.arange(len(prior.classes)), list(prior.classes), fontsize=8, rotation=90)
        ax.set_yticks(np.arange(len(values)), values, fontsize=8)
        ax.set_title(field, fontsize=9)
        for (row, col), value in np.ndenumerate(matrix):
            if abs(value) >= 0.5:
                ax.text(
                    col,
                    row,
                    f"{value:+.1f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if abs(value) > 1.5 else "black",
                )
    hidden = sum(1 for v in prior.tables.get("site", {}) if sum(prior.counts["site"][v]) < min_lesions)
    figure.colorbar(image, ax=list(axes), shrink=0.8, label="log p(value | class) / p(value)")
    if hidden:
        figure.suptitle(f"{hidden} site(s) with fewer than {min_lesions} training lesions not drawn", fontsize=8)
    return figure


def colour_cast_examples_figure(crop: np.ndarray, casts: Mapping | None = None) -> Figure:
    """One lesion crop (H, W, 3 uint8) under every colour cast (top row) and after Shades-of-Gray colour
    constancy (bottom row): what a different light does, and what the correction undoes."""
    # deferred: loads Keras
    from .models.colour_constancy import ShadesOfGray

    casts = dict(casts or COLOUR_CASTS)
    cast = np.concatenate([colour_cast(crop[None], gains) for gains in casts.values()])
    corrected = np.asarray(ShadesOfGray()(cast.astype(np.float32))).round().astype(np.uint8)
    figure = Figure(figsize=(1.7 * len(casts), 3.8))
    axes = figure.subplots(2, len(casts), squeeze=False)
    for column, name in enumerate(casts):
        for row, (images, label) in enumerate(((cast, "as lit"), (corrected, "colour constancy"))):
            ax = axes[row, column]
            ax.imshow(images[column])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
            if column == 0:
                ax.set_ylabel(label, fontsize=9)
    figure.tight_layout()
    return figure


def colour_cast_figure(study: Mapping, split: str = "test") -> Figure:
    """Balanced accuracy of every model of a `skinlib colour-casts` study under each cast, with the paired
    95 % interval of its change against no cast as error bars."""
    casts = list(study["casts"])
    models = study["models"]
    figure = Figure(figsize=(8, 3.4))
    ax = figure.subplots()
    width = 0.8 / max(len(models), 1)
    for index, (name, record) in enumerate(models.items()):
        scores = record[split]
        values = np.array([scores[c]["balanced_accuracy"] for c in casts])
        changes = [scores[c].get("change", {}).get("balanced_accuracy") for c in casts]  # None for "none"
        errors = np.array(
            [
                [0.0, 0.0]
                if change is None
                else [change["difference"] - change["ci95"][0], change["ci95"][1] - change["difference"]]
                for change in changes
            ]
        ).T
        positions = np.arange(len(casts)) + (index - (len(models) - 1) / 2) * width
        label = f"{name} (colour constancy {'on' if record['colour_constancy'] else 'off'})"
        ax.bar(positions, values, width, yerr=np.clip(errors, 0, None), capsize=3, label=label)
    ax.set_xticks(np.arange(len(casts)), casts)
    ax.set_ylabel(f"{split} balanced accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper center", ncols=2, fontsize=8)
    ax.set_title("Scores under a different light (error bars: paired 95 % interval of the change)", fontsize=10)
    figure.tight_layout()
    return figure


HEAT_BASELINES = (
    ("gradcam", "the model's Grad-CAM", "tab:red"),
    ("other_images", "other images' Grad-CAM on this mask", "tab:orange"),
    ("centre", "a centred Gaussian (ignores the image)", "tab:gray"),
    ("uniform", "a uniform map (the mask's area)", "lightgray"),
)


def heat_inside_figure(shares: Mapping[str, Sequence[float]], names: Sequence[str]) -> Figure:
    """Share of heat inside the lesion mask per image: the model's map beside maps that ignore the image
    (`skinlib.explain.heat_inside_with_baselines`), so a high share is read against what centring alone gives."""
    figure = Figure(figsize=(max(6.0, 0.9 * len(names) + 2), 4.2))
    ax = figure.subplots()
    x = np.arange(len(names))
    width = 0.8 / len(HEAT_BASELINES)
    for k, (key, label, colour) in enumerate(HEAT_BASELINES):
        values = np.asarray(shares[key], np.float64)
        ax.bar(
            x + (k - (len(HEAT_BASELINES) - 1) / 2) * width,
            values,
            width,
            color=colour,
            label=f"{label}: mean {np.nanmean(values):.2f}",
        )
    ax.set_xticks(x, names, fontsize=8)
    ax.set(
        ylim=(0, 1.05),
        ylabel="share of heat inside the lesion mask",
        title="Is the heat on the lesion? The model's map against maps that ignore the image",
    )
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    figure.tight_layout()
    return figure


def class_prior_figure(labels, as_trained, with_prior, classes: Sequence[str] = CLASSES) -> Figure:
    """Per class: how often it is the truth, and the mean probability the model gives it as trained and after the
    prior correction (`skinlib.evaluation.calibration.shift_prior`). Calibrated probabilities average to the
    class's share; a model trained with class weights inflates the rare classes."""
    labels = np.asarray(labels)
    rates = np.bincount(labels, minlength=len(classes)) / len(labels)
    figure = Figure(figsize=(7.5, 3.2))
    ax = figure.subplots()
    x = np.arange(len(classes))
    series = (
        ("share of the images", rates, "black"),
        ("mean P(class), as trained", np.mean(as_trained, axis=0), "tab:orange"),
        ("mean P(class), training prior", np.mean(with_prior, axis=0), "tab:blue"),
    )
    for k, (label, values, colour) in enumerate(series):
        ax.bar(x + (k - 1) * 0.27, values, 0.27, label=label, color=colour, alpha=0.85 if k else 0.6)
    ax.set_xticks(x, list(classes))
    ax.set(ylabel="share / mean probability", title="Does P(class) average to the class's share?")
    ax.legend(fontsize=8)
    return figure


def subgroup_figure(table, title: str = "") -> Figure:
    """Balanced accuracy and melanoma recall per subgroup (`skinlib.evaluation.subgroups.subgroup_table`):
    a point with its 95 % interval, hollow where the subgroup is too small for one, and the score of all
    images as a dashed line with its interval shaded, so a subgroup reads as worse only where its whole
    interval lies left of the line."""
    scores = (
        ("balanced_accuracy", "ba_low", "ba_high", "balanced accuracy"),
        ("melanoma_recall", "mel_low", "mel_high", "melanoma recall (images)"),
    )
    overall = table[table["attribute"] == "all"].iloc[0]
    rows = table[table["attribute"] != "all"].reset_index(drop=True)
    y = np.arange(len(rows))[::-1]
    figure = Figure(figsize=(10, 0.28 * len(rows) + 1.4))
    axes = figure.subplots(1, 2, sharey=True)
    attributes = list(dict.fromkeys(rows["attribute"]))
    colours = dict(zip(attributes, ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")))
    for ax, (score, low, high, label) in zip(axes, scores):
        ax.axvspan(overall[low], overall[high], color="0.9", zorder=0)
        ax.axvline(overall[score], color="0.4", linestyle="--", linewidth=1, label=f"all images {overall[score]:.2f}")
        for attribute in attributes:
            chosen = (rows["attribute"] == attribute).to_numpy()
            part, at = rows[chosen], y[chosen]
            has = part[low].notna().to_numpy()
            colour = colours.get(attribute, "tab:gray")
            ax.errorbar(
                part[score][has],
                at[has],
                xerr=[part[score][has] - part[low][has], part[high][has] - part[score][has]],
                fmt="o",
                color=colour,
                capsize=2,
                markersize=4,
            )
            ax.scatter(part[score][~has], at[~has], facecolors="none", edgecolors=colour, s=22, zorder=3)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    counts = [f"{r.attribute}: {r.subgroup}  ({r.images} img, {r.melanomas} mel)" for r in rows.itertuples()]
    axes[0].set_yticks(y, counts, fontsize=8)
    for tick, attribute in zip(axes[0].get_yticklabels(), rows["attribute"]):
        tick.set_color(colours.get(attribute, "black"))
    axes[0].set_ylim(-0.7, len(rows) - 0.3)
    figure.suptitle(title or "by subgroup: point and 95 % interval (hollow: too few for an interval)", fontsize=10)
    figure.tight_layout()
    return figure


def collections_figure(statistics: Mapping, mix) -> Figure:
    """Two collections side by side: brightness, per-channel colour means, lesion share of the frame (expert masks)
    and class mix. `statistics`: {collection: `skinlib.evaluation.collections.image_statistics` frame}; `mix`: a
    class-by-collection share table (`class_mix`)."""
    figure = Figure(figsize=(12, 3.4), layout="constrained")
    bright_ax, colour_ax, share_ax, mix_ax = figure.subplots(1, 4)
    names = list(statistics)
    for name in names:
        frame = statistics[name]
        bright_ax.hist(frame["brightness"], bins=30, range=(0, 255), alpha=0.55, density=True, label=name)
        share_ax.hist(frame["lesion_share"].dropna(), bins=25, range=(0, 1), alpha=0.55, density=True, label=name)
    bright_ax.set(title="brightness (luma)", xlabel="0-255", ylabel="density")
    share_ax.set(title="lesion share", xlabel="expert mask area / image area")
    bright_ax.legend(fontsize=8)
    width = 0.8 / max(len(names), 1)
    channels = np.arange(3)
    for i, name in enumerate(names):
        frame = statistics[name]
        means = [frame[f"mean_{c}"].median() for c in "rgb"]
        spread = [frame[f"std_{c}"].median() for c in "rgb"]
        colour_ax.bar(channels + i * width, means, width, yerr=spread, capsize=3, alpha=0.8, label=name)
    colour_ax.set_xticks(channels + width * (len(names) - 1) / 2, ["red", "green", "blue"])
    colour_ax.set(title="channel means (error bar: std)", ylim=(0, 255))
    positions = np.arange(len(mix.index))
    for i, name in enumerate(mix.columns):
        mix_ax.bar(positions + i * width, mix[name].to_numpy(), width, alpha=0.8, label=name)
    mix_ax.set_xticks(positions + width * (len(mix.columns) - 1) / 2, list(mix.index), fontsize=8)
    mix_ax.set(title="class mix", ylabel="share of images")
    mix_ax.legend(fontsize=8)
    return figure


def lever_transfer_figure(table, collection: str = "ISIC 2017", baseline: str = "baseline") -> Figure:
    """Each lever's validation gain against its gain on `collection` (balanced accuracy over the baseline, 95 %
    intervals as bars), and its battery robustness (mean change over the shifts) against the same external gain.
    `table`: `skinlib.course.lever_table`; rows lacking a number are left out of that panel, and so is the
    baseline (its gains are 0 by definition)."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    val_ax, battery_ax = figure.subplots(1, 2, sharey=True)
    panels = (
        (val_ax, "val_gain", ("val_low", "val_high"), "validation gain in balanced accuracy"),
        (battery_ax, "battery_mean", None, "mean balanced-accuracy change under the shift battery (validation)"),
    )
    for ax, x, bounds, label in panels:
        rows = table[table[x].notna() & table["external_gain"].notna() & (table["row"] != baseline)]
        yerr = [rows["external_gain"] - rows["external_low"], rows["external_high"] - rows["external_gain"]]
        xerr = None if bounds is None else [rows[x] - rows[bounds[0]], rows[bounds[1]] - rows[x]]
        ax.errorbar(rows[x], rows["external_gain"], xerr=xerr, yerr=yerr, fmt="o", capsize=2, alpha=0.8)
        for _, row in rows.iterrows():
            ax.annotate(row["row"], (row[x], row["external_gain"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel(label)
        if rows.empty:
            ax.text(0.5, 0.5, "no lever has both numbers yet", ha="center", transform=ax.transAxes)
    val_ax.set_ylabel(f"{collection} gain (restricted balanced accuracy)")
    return figure


def failure_figure(images, overlays, titles: Sequence[str]) -> Figure:
    """Mistakes explained: each image beside the classifier's input with its Grad-CAM overlay, titled."""
    n = len(images)
    figure = Figure(figsize=(2.6 * max(n, 1), 5.4), layout="constrained")
    if n == 0:
        figure.text(0.5, 0.5, "no mistake of this kind in the sample", ha="center")
        return figure
    axes = np.asarray(figure.subplots(2, n, squeeze=False))
    for i, (image, overlay, title) in enumerate(zip(images, overlays, titles)):
        axes[0, i].imshow(image)
        axes[0, i].set_title(title, fontsize=8)
        axes[1, i].imshow(overlay)
        axes[1, i].set_title("Grad-CAM on the crop", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    return figure


def shift_examples_figure(image: np.ndarray, mask: np.ndarray, names: Sequence[str] | None = None) -> Figure:
    """One validation image under every shift of the battery (`skinlib.evaluation.shifts`), the expert mask moved
    with it drawn as a contour: what the robustness numbers are robust to."""
    names = list(names or SHIFTS)
    columns = 5
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(2.2 * columns, 1.95 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, name in zip(axes.flat, names):
        shifted, moved = apply_shift(name, image, mask)
        ax.imshow(shifted)
        ax.contour(moved.astype(float), levels=[0.5], colors="lime", linewidths=0.8)
        ax.set_title(f"{name}\n({SHIFTS[name][0]})", fontsize=8)
    figure.tight_layout()
    return figure
