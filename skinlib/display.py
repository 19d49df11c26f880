"""Showing a figure the same way everywhere: as a PNG in Jupyter, in papermill output and in the book, with an
optional copy on disk; image grids and mask comparisons; and `static_mode`, which decides whether the
instructor widgets (`skinlib.widgets`) are live or show a still of their default state."""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

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
