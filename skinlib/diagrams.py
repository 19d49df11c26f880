"""The course's diagrams, drawn by code: the dual-stage pipeline, the U-Net, CBAM's two gates and the
training phases of stage 2. Each function returns a matplotlib `Figure` (no pyplot state, no Keras).

The numbers in them are read, where that is cheap, from the shipped model folders (`model.json`, and the
recipe in the `config` of `metrics.json`): input sizes, decoder widths, the temperature, the referral
threshold, the phases, where the features are cached. What would need Keras to read (the widths of the
EfficientNet-Lite0 stages, the CBAM defaults) is spelled out below, and tests/test_diagrams.py keeps it equal
to the model code.

The book shows them as SVG files in `book/figures/`, written by

    python -m skinlib.diagrams              # or: make diagrams

and tests/test_diagrams.py fails when a committed SVG differs from a fresh one, so they cannot drift from the
code or the shipped models. The SVGs are made reproducible: text stays text (`svg.fonttype: none`, so the
files do not depend on a font's glyph outlines), element ids come from a fixed salt, and no date is written.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
from collections.abc import Callable
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path as DrawnPath

from .shipped import CLASSIFIER, UNET

#: EfficientNet-Lite0: output channels of stages 1..7 (`skinlib.models.efficientnet_lite.VARIANTS["lite0"]`),
#: the stride of each stage (after the stem's 2) and the width of the 1x1 head conv (`top_activation`).
LITE0_STAGE_CHANNELS = (16, 24, 40, 80, 112, 192, 320)
LITE0_STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
LITE0_HEAD_CHANNELS = 1280
#: The U-Net reads the last encoder stage at each stride (`FEATURE_LAYERS`; stage 7 at stride 32).
UNET_SKIP_STRIDES = (2, 4, 8, 16)
#: `skinlib.segmentation.unet.DECODER_STRIDES`: the decoder's output strides, bottom to top.
UNET_DECODER_STRIDES = (16, 8, 4, 2, 1)
#: `skinlib.models.attention.cbam_block` defaults: the channel MLP's reduction and the spatial kernel.
CBAM_REDUCTION = 8
CBAM_KERNEL = 7
#: Display names of the backbones a recipe can name.
BACKBONE_NAMES = {"lite0": "EfficientNet-Lite0", "lite2": "EfficientNet-Lite2", "efficientnetb0": "EfficientNet-B0"}

#: Where the book keeps the SVGs (in a checkout).
BOOK_FIGURES = Path(__file__).resolve().parent.parent / "book" / "figures"

#: Matplotlib settings every diagram is drawn and saved under.
STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "skinlib-diagrams",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "hatch.linewidth": 0.6,
}
SVG_METADATA = {"Date": None, "Creator": "skinlib.diagrams (python -m skinlib.diagrams)"}

#: Colours shared by all diagrams: (face, edge).
INPUT = ("#f2f2f2", "#6b6b6b")
STAGE1 = ("#dbe8f5", "#3c6e9f")
STAGE2 = ("#fbe3cc", "#b5651d")
CALIBRATE = ("#dff0dc", "#3e7d3a")
FLAG = ("#f7dcdc", "#a23b3b")
OPTIONAL = ("#ffffff", "#8c8c8c")
FROZEN = ("#dcdcdc", "#7a7a7a")
CACHED = ("#d4e6f1", "#3c6e9f")
TRAINED = ("#f6b26b", "#a0521b")
INK = "#303030"


# ------------------------------------------------------------------------------------------- reading


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def shipped_unet() -> tuple[dict, dict]:
    """(model.json, the recipe in metrics.json) of the shipped U-Net."""
    return read_json(UNET / "model.json"), read_json(UNET / "metrics.json")["config"]


def shipped_classifier() -> tuple[dict, dict]:
    """(model.json, the recipe in metrics.json) of the shipped classifier."""
    return read_json(CLASSIFIER / "model.json"), read_json(CLASSIFIER / "metrics.json")["config"]


def stage_strides() -> list[int]:
    """The output stride of EfficientNet-Lite stages 1..7 (the stem halves the input first)."""
    strides, stride = [], 2
    for step in LITE0_STAGE_STRIDES:
        stride *= step
        strides.append(stride)
    return strides


def last_stage_at(stride: int) -> int:
    """The last stage (1..7) whose output has `stride`: the feature map a U-Net skip reads."""
    return max(stage for stage, s in enumerate(stage_strides(), start=1) if s == stride)


def cached_stages(cache_at: str) -> int:
    """How many backbone stages lie below the cache point: "stage3_out" -> 3, "none" -> 0."""
    if cache_at == "none":
        return 0
    if not (cache_at.startswith("stage") and cache_at.endswith("_out") and cache_at[5:-4].isdigit()):
        raise ValueError(f"cache_at must be 'stageN_out' or 'none', not {cache_at!r}")
    return int(cache_at[5:-4])


def stage_span(first: int, last: int) -> str:
    return f"stage {first}" if first == last else f"stages {first}–{last}"


def rate_text(rate: float) -> str:
    """1e-3 -> "1e-3", 5e-4 -> "5e-4" (as the recipe's flags write them)."""
    mantissa, exponent = f"{rate:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


# ------------------------------------------------------------------------------------------ drawing


def styled(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw under `STYLE` (text properties are fixed when the text is made, not when it is saved)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> Figure:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def canvas(width: float, height: float):
    """A figure whose one axes spans it, in inches: (0, 0) bottom left, (width, height) top right."""
    figure = Figure(figsize=(width, height))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    return figure, ax


def box(ax, x, y, w, h, text, colours, fontsize=8.5, dashed=False, hatch=None, bold_first=True):
    """A rounded box with its lower left corner at (x, y); the first line of `text` in bold.
    Returns its anchor points: left, right, top, bottom (the middles of its sides)."""
    face, edge = colours
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.07",
            facecolor=face,
            edgecolor=edge,
            linewidth=1.0,
            linestyle=(0, (4, 2)) if dashed else "solid",
            hatch=hatch,
        )
    )
    lines = text.split("\n")
    if bold_first and len(lines) > 1:
        # The title line sits above the block of detail lines; both are centred as a group.
        step = fontsize * 1.32 / 72
        total = step * len(lines)
        top = y + h / 2 + total / 2 - step / 2
        ax.text(x + w / 2, top, lines[0], ha="center", va="center", fontsize=fontsize, weight="bold", color=INK)
        ax.text(
            x + w / 2,
            top - step * (len(lines) - 1) / 2 - step / 2,
            "\n".join(lines[1:]),
            ha="center",
            va="center",
            fontsize=fontsize - 0.5,
            color=INK,
            linespacing=1.32 * fontsize / (fontsize - 0.5),
        )
    else:
        weight = "bold" if bold_first else "normal"
        backing = {"facecolor": face, "edgecolor": "none", "pad": 1.5} if hatch else None
        ax.text(
            x + w / 2,
            y + h / 2,
            text,
            ha="center",
            va="center",
            fontsize=fontsize,
            weight=weight,
            color=INK,
            bbox=backing,
        )
    return {"left": (x, y + h / 2), "right": (x + w, y + h / 2), "top": (x + w / 2, y + h), "bottom": (x + w / 2, y)}


def arrow(ax, *points, colour=INK, dashed=False, width=1.1):
    """An arrow along `points` (straight segments), the head at the last one."""
    path = DrawnPath(points, [DrawnPath.MOVETO] + [DrawnPath.LINETO] * (len(points) - 1))
    ax.add_patch(
        FancyArrowPatch(
            path=path,
            arrowstyle="-|>",
            mutation_scale=9,
            color=colour,
            linewidth=width,
            linestyle=(0, (4, 2)) if dashed else "solid",
            shrinkA=0,
            shrinkB=0,
        )
    )


def label(ax, x, y, text, fontsize=7.5, colour="#555555", **kwargs):
    ax.text(x, y, text, fontsize=fontsize, color=colour, **kwargs)


# ---------------------------------------------------------------------------------------- diagrams


@styled
def pipeline_diagram(unet: dict | None = None, classifier: dict | None = None) -> Figure:
    """From a dermoscopic image to calibrated probabilities and flags, with the numbers of the shipped
    model folders (`model.json` of the U-Net and of the classifier, or the dicts given)."""
    unet = unet if unet is not None else shipped_unet()[0]
    classifier = classifier if classifier is not None else shipped_classifier()[0]
    height, width = unet["image_size"]
    size = classifier["image_size"]
    backbone = BACKBONE_NAMES.get(classifier["backbone"], classifier["backbone"])
    figure, ax = canvas(10.4, 5.6)

    # Row 1: stage 1.
    ax.add_patch(
        FancyBboxPatch(
            (1.95, 3.95),
            8.3,
            1.45,
            boxstyle="round,pad=0,rounding_size=0.1",
            facecolor="#f4f8fc",
            edgecolor=STAGE1[1],
            linewidth=0.8,
        )
    )
    label(ax, 2.05, 5.22, "Stage 1: segmentation", fontsize=8.5, colour=STAGE1[1], weight="bold")
    image = box(ax, 0.15, 4.15, 1.55, 0.95, "Image\ndermoscopic,\nany size, RGB", INPUT)
    net = box(
        ax,
        2.15,
        4.1,
        2.35,
        1.0,
        f"U-Net\n{BACKBONE_NAMES.get(unet['encoder'], unet['encoder'])} encoder\ninput {height}×{width}",
        STAGE1,
    )
    mask = box(
        ax,
        4.9,
        4.1,
        2.35,
        1.0,
        f"Lesion mask\nprobability ≥ {unet['threshold']:g}, largest part,\nholes filled",
        STAGE1,
    )
    crop = box(
        ax,
        7.65,
        4.1,
        2.45,
        1.0,
        f"Lesion crop\nbox + {classifier['margin']:.0%} margin, {size}×{size};\nwhole image if no plausible lesion",
        STAGE1,
    )
    arrow(ax, image["right"], net["left"])
    arrow(ax, net["right"], mask["left"])
    arrow(ax, mask["right"], crop["left"])

    # Row 2: stage 2.
    ax.add_patch(
        FancyBboxPatch(
            (0.1, 1.75),
            10.15,
            1.85,
            boxstyle="round,pad=0,rounding_size=0.1",
            facecolor="#fdf6ef",
            edgecolor=STAGE2[1],
            linewidth=0.8,
        )
    )
    label(ax, 10.15, 3.42, "Stage 2: classification", fontsize=8.5, colour=STAGE2[1], weight="bold", ha="right")
    back = box(ax, 0.3, 1.95, 2.0, 1.0, f"Backbone\n{backbone},\nImageNet weights", STAGE2)
    cbam = box(ax, 2.7, 1.95, 1.75, 1.0, "CBAM\nchannel gate,\nthen spatial gate", STAGE2)
    head = box(
        ax, 4.85, 1.95, 1.75, 1.0, f"Head\naverage pool, dropout {classifier['dropout']:g},\n7-way softmax", STAGE2
    )
    temperature = box(
        ax, 7.0, 1.95, 1.5, 1.0, f"Temperature\nT = {classifier['temperature']:.2f},\nfitted on validation", CALIBRATE
    )
    fusion = box(ax, 8.8, 1.95, 1.35, 1.0, "Metadata fusion\nage, sex, site\n(optional)", OPTIONAL, dashed=True)
    views = classifier.get("tta_augmented", {}).get("views")
    tta = "TTA (optional): average the 8 flips and quarter turns of the crop" + (
        f", or {views} augmented views" if views else ""
    )
    ax.add_patch(
        FancyBboxPatch(
            (0.3, 3.05),
            6.3,
            0.3,
            boxstyle="round,pad=0,rounding_size=0.05",
            facecolor="white",
            edgecolor=OPTIONAL[1],
            linewidth=0.8,
            linestyle=(0, (4, 2)),
        )
    )
    label(ax, 3.45, 3.2, tta, fontsize=7.5, colour=INK, ha="center", va="center")
    arrow(ax, crop["bottom"], (crop["bottom"][0], 3.75), (back["top"][0], 3.75), (back["top"][0], 3.35))
    arrow(ax, back["right"], cbam["left"])
    arrow(ax, cbam["right"], head["left"])
    arrow(ax, head["right"], temperature["left"])
    arrow(ax, temperature["right"], fusion["left"], dashed=True)

    # Row 3: the answer and its flags.
    answer = box(ax, 0.3, 0.15, 2.2, 1.2, "Answer\n7 calibrated probabilities,\ntop class, confidence", CALIBRATE)
    arrow(ax, fusion["bottom"], (fusion["bottom"][0], 1.6), (answer["top"][0], 1.6), answer["top"])
    referral = classifier.get("melanoma_referral") or {}
    novelty = classifier.get("novelty") or {}
    flags = [
        (
            "melanoma_referral",
            f"P(mel) ≥ {referral.get('threshold', float('nan')):.3f}, set for\n"
            f"{referral.get('target_sensitivity_on_val', float('nan')):.0%} sensitivity on validation",
        ),
        ("uncertain", f"top probability < {classifier.get('uncertain_below', 0.5):g},\nno lesion, or unusual"),
        (
            "unlike_training_images",
            f"novelty score of the backbone\nfeatures > {novelty.get('threshold', float('nan')):.2f}",
        ),
        ("lesion_found", "stage 1 found a plausible\nlesion to crop"),
    ]
    ax.add_patch(
        FancyBboxPatch(
            (2.9, 0.1),
            7.35,
            1.4,
            boxstyle="round,pad=0,rounding_size=0.1",
            facecolor="#fdf4f4",
            edgecolor=FLAG[1],
            linewidth=0.8,
        )
    )
    label(ax, 3.0, 1.32, "Flags: read them before the class", fontsize=8.5, colour=FLAG[1], weight="bold")
    for number, (name, detail) in enumerate(flags):
        box(ax, 3.0 + 1.8 * number, 0.2, 1.7, 0.98, f"{name}\n{detail}", FLAG, fontsize=7.5)
    arrow(ax, answer["right"], (2.9, answer["right"][1]))
    return figure


@styled
def unet_diagram(unet: dict | None = None, config: dict | None = None) -> Figure:
    """Stage 1's U-Net: the EfficientNet-Lite0 encoder's feature maps, the decoder, the skips between them,
    with the sizes of the shipped model (`model.json`) and its training recipe (`metrics.json` config)."""
    if unet is None or config is None:
        shipped_spec, shipped_config = shipped_unet()
        unet = unet if unet is not None else shipped_spec
        config = config if config is not None else shipped_config
    if unet["encoder"] != "lite0":
        raise ValueError(f"the diagram draws the lite0 encoder, not {unet['encoder']!r}")
    height, width = unet["image_size"]
    decoder = dict(zip(UNET_DECODER_STRIDES, unet["decoder_filters"]))
    strides = stage_strides()
    figure, ax = canvas(10.4, 6.75)
    level_y = {1: 5.05, 2: 4.2, 4: 3.35, 8: 2.5, 16: 1.65, 32: 0.8}
    box_w, box_h = 2.3, 0.62

    def shape(stride, channels):
        return f"{height // stride}×{width // stride}×{channels}"

    image = box(ax, 0.2, level_y[1], box_w, box_h, f"Image\n{shape(1, 3)} (padded to fit)", INPUT)
    encoder = {}
    previous = image
    for level, stride in enumerate((2, 4, 8, 16), start=1):
        stages = [s for s, at in enumerate(strides, start=1) if at == stride]
        name = ("stem + " if stride == 2 else "") + stage_span(stages[0], stages[-1])
        channels = LITE0_STAGE_CHANNELS[last_stage_at(stride) - 1]
        encoder[stride] = box(
            ax, 0.2 + 0.45 * level, level_y[stride], box_w, box_h, f"{name}\n{shape(stride, channels)}", STAGE1
        )
        arrow(
            ax,
            (previous["bottom"][0] - 0.15, previous["bottom"][1]),
            (encoder[stride]["top"][0] - 0.6, encoder[stride]["top"][1]),
        )
        previous = encoder[stride]
    bottom_stages = [s for s, at in enumerate(strides, start=1) if at == 32]
    bottom = box(
        ax,
        4.05,
        level_y[32],
        box_w,
        box_h,
        f"{stage_span(bottom_stages[0], bottom_stages[-1])} (bottom)\n"
        f"{shape(32, LITE0_STAGE_CHANNELS[last_stage_at(32) - 1])}",
        STAGE1,
    )
    arrow(ax, (previous["bottom"][0] - 0.15, previous["bottom"][1]), (bottom["left"][0], bottom["left"][1]))

    decoded = {}
    below = bottom
    for level, stride in enumerate(UNET_DECODER_STRIDES):
        x = 7.9 - 0.45 * (4 - level)
        title = "up ×2, add skip" if stride in UNET_SKIP_STRIDES else "up ×2 (no skip)"
        decoded[stride] = box(
            ax, x, level_y[stride], box_w, box_h, f"{title}\n2 conv 3×3 → {shape(stride, decoder[stride])}", STAGE2
        )
        if below is bottom:
            arrow(ax, bottom["right"], decoded[stride]["bottom"])
        else:
            arrow(ax, (below["top"][0] + 0.15, below["top"][1]), (decoded[stride]["bottom"][0] + 0.6, level_y[stride]))
        below = decoded[stride]
        if stride in UNET_SKIP_STRIDES:
            arrow(ax, encoder[stride]["right"], decoded[stride]["left"], colour=STAGE1[1], dashed=True)
            label(
                ax,
                (encoder[stride]["right"][0] + decoded[stride]["left"][0]) / 2,
                level_y[stride] + box_h / 2 + 0.05,
                f"skip: stage{last_stage_at(stride)}_out, concatenated",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    output = box(ax, 7.9, 5.95, box_w, box_h, f"1×1 conv, sigmoid\n{shape(1, 1)} lesion probability", CALIBRATE)
    arrow(ax, decoded[1]["top"], output["bottom"])
    mask = box(ax, 4.95, 5.95, box_w, box_h, f"Mask\nprobability ≥ {unet['threshold']:g}, cleaned up", INPUT)
    arrow(ax, output["left"], mask["right"])

    label(
        ax,
        0.2,
        0.55,
        f"Encoder (down): {BACKBONE_NAMES['lite0']}, ImageNet weights;\n"
        f"frozen for the first {config['frozen_epochs']} of {config['epochs']} epochs, then fine-tuned",
        fontsize=7.5,
        va="top",
    )
    label(
        ax,
        7.0,
        0.55,
        "Decoder (up): bilinear upsampling ×2, concatenate\nthe skip, two 3×3 conv + BatchNorm + ReLU",
        fontsize=7.5,
        va="top",
    )
    return figure


@styled
def two_into(ax, upper: dict, lower: dict, target: dict, x: float) -> None:
    """Elbow arrows from two boxes, turning at `x`, into the left side of `target` just above and below its middle."""
    for source, offset in ((upper, 0.2), (lower, -0.2)):
        arrow(
            ax,
            source["right"],
            (x, source["right"][1]),
            (x, target["left"][1] + offset),
            (target["left"][0], target["left"][1] + offset),
        )


def cbam_diagram(classifier: dict | None = None) -> Figure:
    """CBAM on the classifier's last feature map: the channel gate (which channels), then the spatial gate
    (where), with the shapes of the shipped classifier's input size."""
    classifier = classifier if classifier is not None else shipped_classifier()[0]
    side = classifier["image_size"] // 32
    channels = LITE0_HEAD_CHANNELS
    hidden = channels // CBAM_REDUCTION
    figure, ax = canvas(10.4, 4.9)

    label(ax, 0.15, 4.65, "Channel gate: which feature detectors matter", fontsize=8.5, colour=STAGE2[1], weight="bold")
    features = box(ax, 0.15, 3.05, 1.55, 0.95, f"Features F\n{side}×{side}×{channels}\n(top_activation)", STAGE2)
    average = box(ax, 2.15, 3.75, 1.6, 0.6, f"average over space\n{channels}", INPUT, fontsize=8)
    maximum = box(ax, 2.15, 2.7, 1.6, 0.6, f"maximum over space\n{channels}", INPUT, fontsize=8)
    mlp = box(
        ax,
        4.25,
        3.0,
        1.85,
        1.05,
        f"shared MLP\n{channels} → {hidden} → {channels}\n(ReLU; reduction {CBAM_REDUCTION})",
        STAGE2,
        fontsize=8,
    )
    gate = box(ax, 6.6, 3.1, 1.5, 0.85, f"add, sigmoid\nchannel map\n1×1×{channels}", CALIBRATE, fontsize=8)
    times = box(ax, 8.6, 3.1, 1.65, 0.85, f"F′ = F × map\n{side}×{side}×{channels}", STAGE2, fontsize=8)
    arrow(ax, features["right"], (1.95, features["right"][1]), (1.95, average["left"][1]), average["left"])
    arrow(ax, features["right"], (1.95, features["right"][1]), (1.95, maximum["left"][1]), maximum["left"])
    two_into(ax, average, maximum, mlp, x=4.0)
    arrow(ax, mlp["right"], gate["left"])
    arrow(ax, gate["right"], times["left"])
    arrow(
        ax,
        (features["top"][0], features["top"][1]),
        (features["top"][0], 4.5),
        (times["top"][0], 4.5),
        times["top"],
        colour="#8c8c8c",
    )

    label(ax, 2.15, 2.15, "Spatial gate: where on the lesion", fontsize=8.5, colour=STAGE2[1], weight="bold")
    mean_c = box(ax, 2.15, 1.25, 1.6, 0.6, f"mean over channels\n{side}×{side}×1", INPUT, fontsize=8)
    max_c = box(ax, 2.15, 0.25, 1.6, 0.6, f"max over channels\n{side}×{side}×1", INPUT, fontsize=8)
    conv = box(
        ax,
        4.25,
        0.5,
        1.85,
        1.05,
        f"stack, conv {CBAM_KERNEL}×{CBAM_KERNEL}\n{side}×{side}×2 → {side}×{side}×1",
        STAGE2,
        fontsize=8,
    )
    spatial = box(ax, 6.6, 0.6, 1.5, 0.85, f"sigmoid\nspatial map\n{side}×{side}×1", CALIBRATE, fontsize=8)
    out = box(ax, 8.6, 0.6, 1.65, 0.85, f"F″ = F′ × map\n{side}×{side}×{channels} → head", STAGE2, fontsize=8)
    start = (times["bottom"][0], times["bottom"][1])
    arrow(ax, start, (start[0], 2.45), (1.95, 2.45), (1.95, mean_c["left"][1]), mean_c["left"])
    arrow(ax, (1.95, 2.45), (1.95, max_c["left"][1]), max_c["left"])
    two_into(ax, mean_c, max_c, conv, x=4.0)
    arrow(ax, conv["right"], spatial["left"])
    arrow(ax, spatial["right"], out["left"])
    label(
        ax,
        0.15,
        1.55,
        "Both gates start at 0.5\n(last weights zero):\nF passes unchanged up\nto a constant, and the\n"
        "gates learn where\nto deviate.",
        fontsize=7.5,
        va="top",
    )
    return figure


@styled
def training_phases_diagram(config: dict | None = None) -> Figure:
    """Stage 2's training phases from a recipe (the shipped classifier's `metrics.json` config by default):
    per phase, which part of the network is cached, frozen or trained."""
    config = config if config is not None else shipped_classifier()[1]
    below = cached_stages(config["cache_at"])
    phases = [tuple(phase) for phase in config["phases"]]
    backbone = BACKBONE_NAMES.get(config["backbone"], config["backbone"])
    # The network's parts, input to output: the cached block (if any), each stage above it, CBAM, head.
    parts = []
    if below:
        parts.append(("stem + " + stage_span(1, below), "cached"))
    for stage in range(below + 1, 8):
        parts.append(
            (("stem + " if stage == 1 else "") + f"stage {stage}" + (" + 1×1 conv" if stage == 7 else ""), stage)
        )
    if config.get("attention", True):
        parts.append(("CBAM", "top"))
    parts.append(("head", "top"))

    row_h, left, col_w = 0.62, 2.45, 7.8 / len(parts)
    figure, ax = canvas(10.4, 1.55 + row_h * (len(phases) + 1))
    top = figure.get_size_inches()[1] - 0.25
    label(
        ax,
        left,
        top,
        f"{backbone} + CBAM + head at {config['image_size']}×{config['image_size']}: input → output",
        fontsize=8.5,
        weight="bold",
        colour=INK,
        va="center",
    )
    y = top - 0.42
    for column, (name, _) in enumerate(parts):
        ax.text(
            left + col_w * (column + 0.5),
            y,
            name.replace(" + ", " +\n"),
            ha="center",
            va="center",
            fontsize=7.5,
            color=INK,
        )

    def cell(column, y, kind):
        colours = {"computed": CACHED, "cached": CACHED, "frozen": FROZEN, "trained": TRAINED}[kind]
        text = {"computed": "computed once", "cached": "from the cache", "frozen": "frozen", "trained": "trains"}[kind]
        box(
            ax,
            left + col_w * column + 0.04,
            y,
            col_w - 0.08,
            row_h - 0.12,
            text,
            colours,
            fontsize=7.5,
            hatch="///" if kind in ("computed", "cached") else None,
            bold_first=False,
        )

    y -= 0.35 + row_h
    if below:
        ax.text(
            0.15,
            y + (row_h - 0.12) / 2,
            f"once, before training:\n{config['train_views']} augmented views per crop",
            fontsize=7.5,
            va="center",
            color=INK,
        )
        cell(0, y, "computed")
        ax.text(
            left + col_w * 1 + 0.1,
            y + (row_h - 0.12) / 2,
            f"its output ({config['cache_at']}) is computed once and stored: every epoch reads it back",
            fontsize=7.5,
            va="center",
            color="#555555",
            style="italic",
        )
        y -= row_h
    for number, (unfrozen, epochs, rate) in enumerate(phases):
        first_trained = 8 - int(unfrozen)
        ax.text(
            0.15,
            y + (row_h - 0.12) / 2,
            f"phase {number}: {epochs} epochs,\nlearning rate {rate_text(rate)}, cosine",
            fontsize=7.5,
            va="center",
            color=INK,
        )
        for column, (_, what) in enumerate(parts):
            if what == "cached":
                kind = "cached"
            elif what == "top":
                kind = "trained"
            else:
                kind = "trained" if what >= first_trained else "frozen"
            cell(column, y, kind)
        y -= row_h
    label(
        ax,
        0.15,
        y + 0.22,
        "BatchNorm layers stay frozen in every phase. Each phase starts from the best weights so far and stops "
        f"after {config.get('patience', 4)} epochs that do not beat its own best;\nthe epoch with the best "
        "validation balanced accuracy is the model shipped.",
        fontsize=7.5,
        va="center",
    )
    return figure


#: Every diagram: file stem -> function.
DIAGRAMS: dict[str, Callable[[], Figure]] = {
    "pipeline": pipeline_diagram,
    "unet": unet_diagram,
    "cbam": cbam_diagram,
    "training_phases": training_phases_diagram,
}


# -------------------------------------------------------------------------------------------- files


def svg_text(figure: Figure) -> str:
    """The figure as SVG text, the same bytes every time for the same drawing."""
    buffer = io.StringIO()
    with matplotlib.rc_context(STYLE):
        figure.savefig(buffer, format="svg", metadata=SVG_METADATA)
    return buffer.getvalue()


def write_diagrams(folder=BOOK_FIGURES, names=None) -> list[Path]:
    """Write `<name>.svg` of every diagram (or of `names`) into `folder`; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or DIAGRAMS:
        path = folder / f"{name}.svg"
        path.write_text(svg_text(DIAGRAMS[name]()))
        written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skinlib.diagrams", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=str(BOOK_FIGURES), help="where to write (default: book/figures)")
    parser.add_argument("--only", nargs="+", choices=list(DIAGRAMS), help="write only these diagrams")
    args = parser.parse_args(argv)
    for path in write_diagrams(args.folder, args.only):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
