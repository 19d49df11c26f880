"""Small image overlays shared by the CLI, notebooks and reports (no matplotlib needed)."""

from __future__ import annotations

import cv2
import numpy as np


def overlay_mask(
    image: np.ndarray, mask: np.ndarray, colour=(0, 255, 0), alpha: float = 0.25, thickness: int | None = None
) -> np.ndarray:
    """The image with the mask tinted and its outline drawn: where the lesion is, and where it ends."""
    image = np.asarray(image, np.uint8)
    mask = np.asarray(mask, bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
    out = image.copy()
    tint = np.zeros_like(image)
    tint[:] = colour
    out[mask] = (image[mask] * (1 - alpha) + tint[mask] * alpha).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    thickness = thickness or max(1, round(min(image.shape[:2]) / 150))
    cv2.drawContours(out, contours, -1, colour, thickness)
    return out


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a [0, 1] heat map (any size; resized to the image) over the image with the JET colour map."""
    image = np.asarray(image, np.uint8)
    heat = cv2.resize(np.asarray(heatmap, np.float32), (image.shape[1], image.shape[0]))
    heat = np.clip(heat, 0, 1)
    colours = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return (image * (1 - alpha) + colours * alpha).astype(np.uint8)


def write_rgb(path, image: np.ndarray) -> None:
    """Write an RGB (or single-channel) uint8 array as PNG/JPEG; raise if OpenCV cannot."""
    image = np.asarray(image)
    array = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")
