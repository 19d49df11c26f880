"""Read images and masks robustly: any size, grayscale, RGBA or 16-bit, and detect corrupt files.

All readers return `uint8` RGB (H, W, 3) images and boolean (H, W) masks, so the rest of the package
never has to care how a file was stored.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import DataError

_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"


def _decode(path: Path) -> np.ndarray:
    """Decode a file with OpenCV, keeping depth and channels; raise `DataError` if it is unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found. Check the path, or re-download the file.") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error}).") from None
    if not raw:
        raise DataError(f"{path}: the file is empty. Re-download or remove it.")
    # OpenCV decodes a truncated JPEG with only a warning (the missing part turns grey); refuse it instead.
    if raw.startswith(_JPEG_START) and _JPEG_END not in raw[-64:]:
        raise DataError(f"{path}: truncated or corrupt JPEG (no end-of-image marker). Re-download the file.")
    array = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.size == 0:
        raise DataError(f"{path}: not a readable image (corrupt, or not an image format OpenCV knows).")
    return array


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale 16-bit or float images to 8 bits; keep uint8 as it is."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array // 257).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        top = 1.0 if float(np.nanmax(array)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(array) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.clip(array, 0, 255).astype(np.uint8)


def to_rgb(array: np.ndarray) -> np.ndarray:
    """Convert a decoded OpenCV array (gray, BGR, BGRA; any depth) to uint8 RGB.

    Alpha is composited over black: a transparent background carries no lesion.
    """
    array = _to_uint8(array)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    channels = array.shape[2]
    if channels == 1:
        return cv2.cvtColor(array[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if channels == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        rgb = cv2.cvtColor(array[:, :, :3], cv2.COLOR_BGR2RGB).astype(np.float32)
        return (rgb * alpha + 0.5).astype(np.uint8)
    raise DataError(f"unsupported image with {channels} channels; expected gray, RGB or RGBA.")


def read_image(path: str | Path) -> np.ndarray:
    """Read any image file as uint8 RGB (H, W, 3)."""
    path = Path(path)
    try:
        return to_rgb(_decode(path))
    except DataError as error:
        if str(path) in str(error):
            raise
        raise DataError(f"{path}: {error}") from None


def read_mask(path: str | Path, strict: bool = False) -> np.ndarray:
    """Read a lesion mask as a boolean (H, W) array (lesion = True).

    Masks are binary {0, 255}. With `strict=True` any other value is an error (a resized or
    anti-aliased mask); otherwise values are thresholded at half their range.
    """
    path = Path(path)
    array = _decode(path)
    if array.ndim == 3:
        array = array[:, :, :3].max(axis=2) if array.shape[2] >= 3 else array[:, :, 0]
    array = _to_uint8(array)
    if strict:
        values = np.unique(array)
        if not set(values.tolist()) <= {0, 255}:
            shown = ", ".join(str(v) for v in values[:8]) + (" ..." if len(values) > 8 else "")
            raise DataError(
                f"{path}: mask has values {shown}; a lesion mask must contain only 0 and 255. "
                "Threshold it (lesion=255) and save it as PNG, not JPEG."
            )
    return array >= 128


def fit_size(
    image: np.ndarray, size: tuple[int, int], fit: str = "pad", interpolation: int | None = None
) -> np.ndarray:
    """Resize to `size` = (height, width).

    `fit="pad"` keeps the aspect ratio and pads with black (nothing of the lesion is lost),
    `"crop"` keeps the aspect ratio and crops the centre, `"stretch"` ignores the aspect ratio.
    Boolean masks are resized with nearest-neighbour and stay boolean.
    """
    height, width = size
    is_mask = image.dtype == bool
    source = image.astype(np.uint8) if is_mask else image
    if interpolation is None:
        shrinking = source.shape[0] > height or source.shape[1] > width
        interpolation = cv2.INTER_NEAREST if is_mask else (cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    h, w = source.shape[:2]
    if fit == "stretch" or (h * width == w * height):
        out = cv2.resize(source, (width, height), interpolation=interpolation)
    elif fit == "crop":
        scale = max(height / h, width / w)
        resized = cv2.resize(
            source, (max(width, round(w * scale)), max(height, round(h * scale))), interpolation=interpolation
        )
        top = (resized.shape[0] - height) // 2
        left = (resized.shape[1] - width) // 2
        out = resized[top : top + height, left : left + width]
    elif fit == "pad":
        scale = min(height / h, width / w)
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
        resized = cv2.resize(source, (new_w, new_h), interpolation=interpolation)
        out = np.zeros((height, width) + source.shape[2:], dtype=source.dtype)
        top, left = (height - new_h) // 2, (width - new_w) // 2
        out[top : top + new_h, left : left + new_w] = resized
    else:
        raise ValueError(f"fit must be 'pad', 'crop' or 'stretch', not {fit!r}")
    return out.astype(bool) if is_mask else out


def unfit_size(array: np.ndarray, original_shape: tuple[int, int], fit: str = "pad") -> np.ndarray:
    """Map a model-sized array (an image or a probability map) back onto the original image's pixels.

    The inverse of `fit_size`: removes the padding (or re-pads what a crop cut off with zeros) and
    resizes bilinearly, so a prediction can be compared with a mask at the mask's own resolution.
    """
    height, width = array.shape[:2]
    h, w = original_shape[:2]
    source = array.astype(np.float32)
    if fit == "pad" and h * width != w * height:
        scale = min(height / h, width / w)
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
        top, left = (height - new_h) // 2, (width - new_w) // 2
        source = source[top : top + new_h, left : left + new_w]
    elif fit == "crop" and h * width != w * height:
        scale = max(height / h, width / w)
        full_h, full_w = max(height, round(h * scale)), max(width, round(w * scale))
        canvas = np.zeros((full_h, full_w) + source.shape[2:], np.float32)
        top, left = (full_h - height) // 2, (full_w - width) // 2
        canvas[top : top + height, left : left + width] = source
        source = canvas
    elif fit not in ("pad", "crop", "stretch"):
        raise ValueError(f"fit must be 'pad', 'crop' or 'stretch', not {fit!r}")
    return cv2.resize(source, (w, h), interpolation=cv2.INTER_LINEAR)
