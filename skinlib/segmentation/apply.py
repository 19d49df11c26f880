"""Run a segmenter over files and folders: what `skinlib segment` and `skinlib evaluate` call."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.errors import DataError
from ..data.images import read_image
from ..data.layout import IMAGE_SUFFIXES, MASK_SUFFIX
from ..visualize import overlay_mask, write_rgb
from .postprocess import mask_problem


@dataclass
class SegmentResult:
    """What happened to each input file: written outputs, notes (e.g. no lesion found), or the error."""

    written: dict[str, list[Path]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def segment_files(paths, out_dir, segmenter, progress: bool = True) -> SegmentResult:
    """Write `<stem>_mask.png` (0/255, the image's own size) and `<stem>_overlay.png` per image.

    One unreadable file is reported and skipped; the others are still processed.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = SegmentResult()
    for path in tqdm([Path(p) for p in paths], desc="segmenting", unit="img", disable=not progress):
        try:
            image = read_image(path)
        except DataError as error:
            result.failed[str(path)] = str(error)
            continue
        mask = segmenter.segment([image])[0]
        mask_path, overlay_path = out_dir / f"{path.stem}_mask.png", out_dir / f"{path.stem}_overlay.png"
        write_rgb(mask_path, mask.astype(np.uint8) * 255)
        write_rgb(overlay_path, overlay_mask(image, mask))
        result.written[str(path)] = [mask_path, overlay_path]
        problem = mask_problem(mask, image=image)
        if problem:
            result.notes[str(path)] = problem
    return result


def pair_images_and_masks(images_dir, masks_dir) -> tuple[list[Path], list[Path], list[str]]:
    """Match `<id>.<ext>` images with `<id>_segmentation.png` masks; list the images left without a mask."""
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder, what in ((images_dir, "images"), (masks_dir, "masks")):
        if not folder.is_dir():
            raise DataError(f"{what} folder {folder} does not exist.")
    images = {
        p.stem: p
        for p in sorted(images_dir.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.stem.endswith(MASK_SUFFIX)
    }
    masks = {
        p.stem[: -len(MASK_SUFFIX)]: p
        for p in sorted(masks_dir.iterdir())
        if p.stem.endswith(MASK_SUFFIX) and p.suffix.lower() in IMAGE_SUFFIXES
    }
    paired = sorted(set(images) & set(masks))
    if not paired:
        raise DataError(
            f"no image in {images_dir} has a mask named <image_id>{MASK_SUFFIX}.png in {masks_dir} "
            f"({len(images)} images, {len(masks)} masks found)."
        )
    unmatched = sorted(set(images) - set(masks))
    return [images[i] for i in paired], [masks[i] for i in paired], unmatched
