"""Classical lesion segmentation ("advanced mask generation"): the method the course teaches first.

No learning, only image processing, in small steps that can each be shown in a figure::

    image -> remove hair -> one colour channel -> smooth -> field of view (drop dark corners)
          -> threshold (lesion is darker than skin) -> open/close -> pick the lesion component
          -> fill holes -> mask

Every knob lives in the frozen dataclass `ClassicalParams`, so a notebook slider can move one while the
others stay put. Sizes (kernels, block sizes) are given in pixels *for an image whose short side is
`reference_side` (150 px, HAM10000 at 200x150)* and scale with the image, so the same parameters work on
the 600x450 originals or a 4000x3000 camera image. Images larger than `work_side` are processed at that
size and the mask is scaled back, which keeps the run time independent of the input size.

Failure modes, by design: an all-black or constant image (nothing darker than its surroundings) gives an
empty mask instead of an error or a full-frame mask; so does an image whose only dark regions touch the
dermoscope's black vignette corners.

The trivial baseline the method must beat is `centre_disc_baseline`: photographers centre the lesion, so
a centred ellipse already scores a mean Dice of 0.63 on HAM10000 (validation split); the defaults here
score 0.86 (`benchmarks/classical_segmentation_scores.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

#: Channels `extract_channel` knows; each is oriented so that the lesion is *darker* than the skin.
CHANNELS = ("gray", "red", "green", "blue", "lab_l", "hsv_v", "xyz_z", "lab_b_inv", "hsv_s_inv")

#: Names of the intermediates `classical_steps` returns, in pipeline order.
STEP_NAMES = (
    "image",
    "hair",
    "hair_removed",
    "channel",
    "smoothed",
    "field_of_view",
    "threshold",
    "cleaned",
    "lesion_component",
    "filled",
    "mask",
)


@dataclass(frozen=True)
class ClassicalParams:
    """Every parameter of the classical pipeline (pixel sizes are for a 150 px short side; they scale).

    Defaults were tuned on 300 TRAIN-split images of HAM10000 (seeded sample; mean Dice against the
    expert masks), one parameter at a time over a small grid, repeated until nothing improved by 0.002;
    `python benchmarks/classical_segmentation_scores.py --tune` reruns it. What the search found:
    the blue channel beats brightness (gray, Lab L, HSV V) by ~0.05 Dice; "adaptive" with a block about the
    size of the image beats Otsu by ~0.01; shifting the threshold towards the skin (`adaptive_c` small,
    `otsu_offset` > 0) helps because the experts draw generous outlines; hair removal with a strict
    threshold is neutral on average (+0.001) but rescues hairy images, with a loose one it erodes lesions.
    """

    # hair removal: black-hat finds thin dark lines; inpainting replaces them by the surrounding skin
    hair_removal: bool = True
    hair_kernel: int = 5  #: black-hat structuring element; wider than a hair, narrower than a lesion
    hair_threshold: int = 40  #: black-hat response (grey levels) above which a pixel is hair
    # colour space
    channel: str = "blue"  #: one of `CHANNELS`
    # smoothing
    blur_kernel: int = 5  #: Gaussian kernel; removes JPEG noise and skin texture before thresholding
    # field of view: the dark vignette corners of a dermoscope are not skin
    vignette_level: int = 30  #: gray level below which a pixel connected to the border is vignette
    min_contrast: float = 8.0  #: channel spread (grey levels, 5-95 %) below which the image has no lesion
    # thresholding: lesion = darker than threshold
    method: str = "adaptive"  #: "otsu" (one global threshold) or "adaptive" (local mean minus C)
    otsu_offset: float = 10.0  #: added to the Otsu threshold; > 0 grows the mask, < 0 shrinks it
    adaptive_block: int = 151  #: neighbourhood for "adaptive"; about the short side, so it spans lesion and skin
    adaptive_c: float = 3.0  #: how much darker than its neighbourhood a pixel must be
    # morphological clean-up
    open_kernel: int = 5  #: opening removes specks and thin bridges to hair/vignette
    close_kernel: int = 7  #: closing merges a lesion broken into pieces by lighter structures
    fill_holes: bool = True  #: regression areas inside a lesion are still lesion
    # component selection
    min_area_fraction: float = 0.005  #: components smaller than this share of the image are noise
    centre_weight: float = 1.0  #: how strongly distance from the image centre lowers a component's score
    border_penalty: float = 0.1  #: score factor for components touching the image border
    vignette_penalty: float = 0.1  #: score factor for components touching the vignette (0: ignore them)
    # geometry
    reference_side: int = 150  #: short side, in pixels, for which the pixel sizes above are given
    work_side: int = 450  #: larger images are processed with this short side, then the mask is scaled back

    def __post_init__(self):
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {self.channel!r}")
        if self.method not in ("otsu", "adaptive"):
            raise ValueError(f"method must be 'otsu' or 'adaptive', not {self.method!r}")
        if self.reference_side < 1 or self.work_side < 1:
            raise ValueError("reference_side and work_side must be positive")


# ----------------------------------------------------------------------------------------- helpers


def as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) from gray (H, W) / (H, W, 1), RGB, or RGBA (alpha composited over black).

    `skinlib.data.read_image` already returns RGB; this only lets arrays from elsewhere in too.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        top = 1.0 if image.size and np.issubdtype(image.dtype, np.floating) and np.nanmax(image) <= 1.0 else 255.0
        image = np.clip(np.nan_to_num(image.astype(np.float64)) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected a gray, RGB or RGBA image, got shape {image.shape}")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        return (image[:, :, :3].astype(np.float32) * alpha + 0.5).astype(np.uint8)
    return image


def scaled_size(pixels: int, shape: tuple[int, ...], params: ClassicalParams, odd: bool = True) -> int:
    """A size given for a `reference_side` short side, scaled to this image (>= 1, odd if asked)."""
    size = max(1, int(round(pixels * min(shape[:2]) / params.reference_side)))
    if odd and size % 2 == 0:
        size += 1
    return size


def _disc(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def to_working_size(image: np.ndarray, params: ClassicalParams) -> np.ndarray:
    """Shrink images whose short side exceeds `work_side`; smaller ones are left as they are."""
    short = min(image.shape[:2])
    if short <= params.work_side:
        return image
    scale = params.work_side / short
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------------- steps


def hair_mask(image: np.ndarray, kernel_size: int, threshold: float) -> np.ndarray:
    """Thin dark lines (hairs): black-hat (closing minus image) of the gray image above `threshold`.

    Why black-hat: closing with a kernel wider than a hair erases the hair but not the much wider
    lesion, so their difference lights up hairs only.
    """
    gray = cv2.cvtColor(as_rgb(image), cv2.COLOR_RGB2GRAY)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(1, kernel_size), max(1, kernel_size)))
    blackhat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
    return blackhat > threshold


def remove_hair(image: np.ndarray, kernel_size: int = 5, threshold: float = 40) -> np.ndarray:
    """Image with hairs painted over by their surroundings (black-hat + threshold + Telea inpainting).

    Why: a hair crossing the lesion is as dark as the lesion and would join skin to lesion in the mask.
    """
    image = as_rgb(image)
    mask = hair_mask(image, kernel_size, threshold)
    if not mask.any():
        return image.copy()
    mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8))  # cover the hair's soft edges
    radius = max(1, kernel_size // 3)
    return cv2.inpaint(image, mask, radius, cv2.INPAINT_TELEA)


def extract_channel(image: np.ndarray, channel: str = "blue") -> np.ndarray:
    """One uint8 channel in which the lesion is darker than the skin.

    Why a choice: pigment absorbs blue light much more than skin, so the blue channel (or XYZ Z, which is
    close to it) separates a brown lesion from pink skin better than brightness does; the `_inv` channels
    flip colour measures (saturation, yellowness) where the lesion is *higher*.
    """
    rgb = as_rgb(image)
    if channel == "gray":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if channel in ("red", "green", "blue"):
        return np.ascontiguousarray(rgb[:, :, ("red", "green", "blue").index(channel)])
    if channel == "lab_l":
        return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[:, :, 0])
    if channel == "lab_b_inv":
        return np.ascontiguousarray(255 - cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[:, :, 2])
    if channel == "hsv_v":
        return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 2])
    if channel == "hsv_s_inv":
        return np.ascontiguousarray(255 - cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 1])
    if channel == "xyz_z":
        return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2XYZ)[:, :, 2])
    raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")


def smooth(channel: np.ndarray, kernel_size: int) -> np.ndarray:
    """Gaussian blur: thresholds then follow the lesion, not JPEG blocks and skin texture."""
    if kernel_size <= 1:
        return channel.copy()
    return cv2.GaussianBlur(channel, (kernel_size, kernel_size), 0)


def field_of_view(image: np.ndarray, vignette_level: int = 30) -> np.ndarray:
    """True where the image shows skin: everything except near-black regions connected to the border.

    Why: many dermoscopes leave black circular corners. They are darker than any lesion, so a global
    threshold would call them lesion and Otsu's threshold would be pulled towards them. A dark lesion in
    the middle is not connected to the border and stays in the field of view.
    """
    gray = cv2.cvtColor(as_rgb(image), cv2.COLOR_RGB2GRAY)
    dark = (gray < vignette_level).astype(np.uint8)
    count, labels = cv2.connectedComponents(dark, connectivity=8)
    if count <= 1:
        return np.ones(gray.shape, bool)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = border[border > 0]
    return ~np.isin(labels, border)


def has_contrast(channel: np.ndarray, fov: np.ndarray, min_contrast: float) -> bool:
    """Whether the field of view holds anything to segment (its 5-95 % spread reaches `min_contrast`).

    Why: Otsu always splits, even pure noise on a constant image; this guard returns "no lesion" instead.
    """
    values = channel[fov]
    if values.size < 2:
        return False
    low, high = np.percentile(values, [5, 95])
    return float(high - low) >= min_contrast


def threshold_dark(channel: np.ndarray, fov: np.ndarray, params: ClassicalParams) -> np.ndarray:
    """Pixels darker than the skin, inside the field of view: global Otsu or local adaptive threshold.

    Otsu is computed from field-of-view pixels only, so vignette corners do not drag the threshold down.
    """
    if not has_contrast(channel, fov, params.min_contrast):
        return np.zeros(channel.shape, bool)
    if params.method == "otsu":
        values = np.ascontiguousarray(channel[fov]).reshape(-1, 1)
        level, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        dark = channel <= level + params.otsu_offset
    else:
        block = max(3, scaled_size(params.adaptive_block, channel.shape, params))
        # fill the vignette with the median skin value so that it does not darken the local means
        filled = np.where(fov, channel, np.uint8(np.median(channel[fov]))).astype(np.uint8)
        dark = (
            cv2.adaptiveThreshold(
                filled, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, params.adaptive_c
            )
            > 0
        )
    return dark & fov


def clean_mask(mask: np.ndarray, open_size: int, close_size: int) -> np.ndarray:
    """Opening (drop specks, cut thin bridges) then closing (merge nearby pieces of one lesion)."""
    out = mask.astype(np.uint8)
    if open_size > 1:
        out = cv2.morphologyEx(out, cv2.MORPH_OPEN, _disc(open_size))
    if close_size > 1:
        out = cv2.morphologyEx(out, cv2.MORPH_CLOSE, _disc(close_size))
    return out > 0


def component_scores(mask: np.ndarray, fov: np.ndarray, params: ClassicalParams) -> tuple[np.ndarray, np.ndarray]:
    """Label the mask's components and score each: the lesion is big, central, and not a vignette edge.

    score = area share x (1 - centre_weight x centroid distance to the centre / half-diagonal)
            x border_penalty (if it touches the image border) x vignette_penalty (if it touches the vignette).
    Components below `min_area_fraction` score 0. Returns (labels, scores) with scores[0] for background.
    """
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    height, width = mask.shape
    scores = np.zeros(count)
    if count <= 1:
        return labels, scores
    half_diagonal = 0.5 * np.hypot(height, width)
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    near_vignette = cv2.dilate((~fov).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    touching_vignette = np.zeros(count, bool)
    touching_vignette[np.unique(labels[near_vignette & mask])] = True
    for label in range(1, count):
        left, top, w, h, area = stats[label]
        share = area / mask.size
        if share < params.min_area_fraction:
            continue
        distance = np.linalg.norm(centroids[label] - centre) / half_diagonal
        score = share * max(0.0, 1.0 - params.centre_weight * distance)
        if left == 0 or top == 0 or left + w == width or top + h == height:
            score *= params.border_penalty
        if touching_vignette[label]:
            score *= params.vignette_penalty
        scores[label] = score
    return labels, scores


def select_lesion(mask: np.ndarray, fov: np.ndarray, params: ClassicalParams) -> np.ndarray:
    """The single best-scoring component (see `component_scores`); empty if none qualifies."""
    labels, scores = component_scores(mask, fov, params)
    if scores.size <= 1 or scores.max() <= 0:
        return np.zeros(mask.shape, bool)
    return labels == int(np.argmax(scores))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill enclosed background (regression zones, light globules) inside the lesion."""
    return ndimage.binary_fill_holes(mask)


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A boolean mask at another (H, W), smoothly (linear interpolation, then threshold at one half)."""
    if mask.shape == tuple(shape):
        return mask
    resized = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return resized >= 0.5


# -------------------------------------------------------------------------------------- pipeline


def classical_steps(image: np.ndarray, params: ClassicalParams = ClassicalParams()) -> dict[str, np.ndarray]:
    """Every intermediate of the pipeline, keyed by `STEP_NAMES`, for teaching figures.

    Intermediates are at the working size (the input size unless its short side exceeds `work_side`);
    `"mask"` is the final boolean mask at the input's (H, W).
    """
    original = as_rgb(image)
    work = to_working_size(original, params)
    shape = work.shape
    steps: dict[str, np.ndarray] = {"image": work}
    hair_kernel = scaled_size(params.hair_kernel, shape, params)
    if params.hair_removal:
        steps["hair"] = hair_mask(work, hair_kernel, params.hair_threshold)
        steps["hair_removed"] = remove_hair(work, hair_kernel, params.hair_threshold)
    else:
        steps["hair"] = np.zeros(shape[:2], bool)
        steps["hair_removed"] = work
    steps["channel"] = extract_channel(steps["hair_removed"], params.channel)
    steps["smoothed"] = smooth(steps["channel"], scaled_size(params.blur_kernel, shape, params))
    steps["field_of_view"] = field_of_view(work, params.vignette_level)
    steps["threshold"] = threshold_dark(steps["smoothed"], steps["field_of_view"], params)
    steps["cleaned"] = clean_mask(
        steps["threshold"],
        scaled_size(params.open_kernel, shape, params),
        scaled_size(params.close_kernel, shape, params),
    )
    steps["lesion_component"] = select_lesion(steps["cleaned"], steps["field_of_view"], params)
    steps["filled"] = fill_holes(steps["lesion_component"]) if params.fill_holes else steps["lesion_component"]
    steps["mask"] = resize_mask(steps["filled"], original.shape[:2])
    return steps


def segment_classical(image: np.ndarray, params: ClassicalParams = ClassicalParams()) -> np.ndarray:
    """Boolean lesion mask (H, W) of an RGB, RGBA or gray image; empty when no lesion stands out.

    An all-black image (all vignette) or a constant image (no contrast) returns an all-False mask.
    """
    return classical_steps(image, params)["mask"]


def centre_disc_baseline(shape: tuple[int, ...], radius_fraction: float = 0.3) -> np.ndarray:
    """The trivial baseline: a centred ellipse whose semi-axes are `radius_fraction` of height and width.

    Why: photographers centre the lesion, so any method must beat "a blob in the middle" to be worth it.
    """
    height, width = int(shape[0]), int(shape[1])
    rows = (np.arange(height) - (height - 1) / 2) / max(radius_fraction * height, 1e-9)
    cols = (np.arange(width) - (width - 1) / 2) / max(radius_fraction * width, 1e-9)
    return rows[:, None] ** 2 + cols[None, :] ** 2 <= 1.0
