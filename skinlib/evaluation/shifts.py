"""A fixed battery of the shifts a second clinic brings, applied to whole images (and their masks) before stage 1.

Another clinic's dermatoscope, camera and habits change an image in a few ways, each simulated here on HAM10000
*validation* images so that robustness can be measured (and chosen with) without touching test or an external
collection:

* **colour cast**: another lamp or white balance (`robustness.COLOUR_CASTS`);
* **exposure**: a darker or brighter picture (every channel times one gain);
* **blur**: focus or a lower-resolution sensor (Gaussian, sigma a share of the short side);
* **zoom**: the lesion larger or smaller in the frame (a centred crop, or the image shrunk onto a reflected border);
* **aspect**: pictures squashed to a square, as the public 256 x 256 ISIC copies were;
* **JPEG**: stronger compression;
* **dermoscope ring**: the dark circular edge a contact dermatoscope leaves in the corners.

Every shift is deterministic (no random draw), keeps the image's size (but the square squash), and moves the mask exactly as it moves
the lesion, so Dice is measured against the shifted mask. `SHIFTS` is the battery: name -> (family, function).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from .robustness import COLOUR_CASTS

Shift = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _checked(image: np.ndarray, mask: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"the mask {mask.shape} does not match the image {image.shape[:2]}")


def gains(rgb) -> Shift:
    """Every pixel's channel c times rgb[c] (a colour cast, or one gain thrice: exposure)."""
    factors = np.asarray(rgb, np.float32)

    def shift(image, mask):
        _checked(image, mask)
        return np.clip(np.rint(image.astype(np.float32) * factors), 0, 255).astype(np.uint8), mask

    return shift


def blur(sigma_share: float) -> Shift:
    """Gaussian blur with sigma = sigma_share x the short side (1 % of 150 px: 1.5 px)."""

    def shift(image, mask):
        _checked(image, mask)
        return cv2.GaussianBlur(image, (0, 0), sigma_share * min(image.shape[:2])), mask

    return shift


def zoom(factor: float) -> Shift:
    """The lesion `factor` times larger in the frame (> 1: a centred crop enlarged; < 1: the image shrunk onto a
    reflected border, so no black edge tells the model what happened)."""
    if factor <= 0:
        raise ValueError(f"a zoom factor is positive, got {factor}")

    def shift(image, mask):
        _checked(image, mask)
        height, width = image.shape[:2]
        size = (width, height)
        if factor >= 1:
            h, w = round(height / factor), round(width / factor)
            top, left = (height - h) // 2, (width - w) // 2
            crop = (slice(top, top + h), slice(left, left + w))
            return (
                cv2.resize(image[crop], size, interpolation=cv2.INTER_LINEAR),
                cv2.resize(mask[crop].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(mask.dtype),
            )
        h, w = round(height * factor), round(width * factor)
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        top, left = (height - h) // 2, (width - w) // 2
        pads = (top, height - h - top, left, width - w - left)
        return (
            cv2.copyMakeBorder(small, *pads, cv2.BORDER_REFLECT_101),
            cv2.copyMakeBorder(small_mask, *pads, cv2.BORDER_CONSTANT, value=0).astype(mask.dtype),
        )

    return shift


def square_squash() -> Shift:
    """Squashed to a square of the short side (image and mask): a frame of another shape, the lesion narrowed
    along the long side, as a square copy of a 4:3 picture shows it."""

    def shift(image, mask):
        _checked(image, mask)
        side = min(image.shape[:2])
        squashed = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
        squashed_mask = cv2.resize(mask.astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST)
        return squashed, squashed_mask.astype(mask.dtype)

    return shift


def jpeg(quality: int) -> Shift:
    """Encoded and decoded as JPEG at `quality` (the HAM10000 and ISIC copies are already JPEG, at about 90)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality is 1-100, got {quality}")

    def shift(image, mask):
        _checked(image, mask)
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode the image as JPEG")
        return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), mask

    return shift


def dermoscope_ring(radius_share: float) -> Shift:
    """Black outside a centred circle of radius `radius_share` x the half-diagonal, with a soft edge: the ring a
    contact dermatoscope leaves (0.8 darkens the corners; smaller eats into the field)."""

    def shift(image, mask):
        _checked(image, mask)
        height, width = image.shape[:2]
        y, x = np.mgrid[:height, :width].astype(np.float32)
        r = np.hypot(y - (height - 1) / 2, x - (width - 1) / 2) / np.hypot(height / 2, width / 2)
        edge = 0.05
        light = np.clip((radius_share - r) / edge, 0.0, 1.0)[..., None]
        return np.rint(image.astype(np.float32) * light).astype(np.uint8), mask

    return shift


def identity() -> Shift:
    def shift(image, mask):
        _checked(image, mask)
        return image, mask

    return shift


REFERENCE_SHIFT = "none"
#: The battery: name -> (family, shift). Severities are the mild and strong ends of what a second clinic brings.
SHIFTS: dict[str, tuple[str, Shift]] = {
    REFERENCE_SHIFT: ("none", identity()),
    "cast warm": ("colour cast", gains(COLOUR_CASTS["strong warm"])),
    "cast cool": ("colour cast", gains(COLOUR_CASTS["strong cool"])),
    "darker": ("exposure", gains((0.7, 0.7, 0.7))),
    "brighter": ("exposure", gains((1.3, 1.3, 1.3))),
    "blur 1%": ("blur", blur(0.01)),
    "blur 2%": ("blur", blur(0.02)),
    "zoom in 1.3": ("zoom", zoom(1.3)),
    "zoom out 0.75": ("zoom", zoom(0.75)),
    "squashed square": ("aspect", square_squash()),
    "jpeg 30": ("jpeg", jpeg(30)),
    "jpeg 10": ("jpeg", jpeg(10)),
    "ring 0.8": ("dermoscope ring", dermoscope_ring(0.8)),
    "ring 0.6": ("dermoscope ring", dermoscope_ring(0.6)),
}


def apply_shift(name: str, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The battery's shift `name` applied to one image and its mask."""
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; the battery has {', '.join(SHIFTS)}")
    return SHIFTS[name][1](image, mask)
