"""Stage 1 -> stage 2 hand-over: lesion crops of a whole data frame, made once and cached.

Stage 2 sees what stage 1 hands it: the square lesion crop cut around the *predicted* mask (never the
expert mask, which a new image does not have), resized to the classifier's input size. With
`source="full"` it gets the whole image instead (the ablation that tells what segmentation is worth).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..data.images import fit_size, read_image
from ..data.tfdata import default_cache_dir
from .postprocess import lesion_crop

SOURCES = ("crop", "full")


def _key(frame, size, source, margin, segmenter_name, weights_file) -> str:
    digest = hashlib.sha1()
    digest.update("|".join(frame["image_id"]).encode())
    digest.update(f"{size}|{source}|{margin}|{segmenter_name}".encode())
    if weights_file and Path(weights_file).is_file():
        digest.update(Path(weights_file).read_bytes()[:1_000_000])
    return digest.hexdigest()[:20]


def make_stage2_inputs(
    frame: pd.DataFrame,
    size: int = 224,
    source: str = "crop",
    segmenter=None,
    margin: float = 0.25,
    batch_size: int = 32,
    cache: bool | str | Path = False,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Square uint8 inputs (N, size, size, 3) for the classifier, and a table of how each was made.

    The table has `image_id`, `used_mask` and `reason` (why a crop fell back to the full image).
    """

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    if source == "crop" and segmenter is None:
        raise ValueError("source='crop' needs a segmenter (e.g. UNetSegmenter.load())")
    name = getattr(segmenter, "name", "none")
    weights = getattr(segmenter, "weights_file", None)
    cache_file = None
    if cache:
        folder = default_cache_dir() if cache is True else Path(cache)
        cache_file = folder / f"stage2-{_key(frame, size, source, margin, name, weights)}.npz"
        if cache_file.is_file():
            stored = np.load(cache_file, allow_pickle=False)
            info = pd.DataFrame(
                {"image_id": stored["image_id"], "used_mask": stored["used_mask"], "reason": stored["reason"]}
            )
            return stored["images"], info
    paths = list(frame["image_path"])
    out = np.zeros((len(paths), size, size, 3), np.uint8)
    used, reasons = [], []
    for start in tqdm(
        range(0, len(paths), batch_size), desc=f"stage-2 inputs ({source})", unit="batch", disable=not progress
    ):
        images = [read_image(p) for p in paths[start : start + batch_size]]
        masks = segmenter.segment(images, batch_size) if source == "crop" else [None] * len(images)
        for offset, (image, mask) in enumerate(zip(images, masks)):
            if source == "crop":
                crop = lesion_crop(image, mask, margin=margin)
                picture, ok, why = crop.image, crop.used_mask, crop.reason
            else:
                picture, ok, why = image, False, "full image requested"
            out[start + offset] = fit_size(picture, (size, size), "pad")
            used.append(ok)
            reasons.append(why)
    info = pd.DataFrame({"image_id": list(frame["image_id"]), "used_mask": used, "reason": reasons})
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            images=out,
            image_id=info["image_id"].to_numpy(str),
            used_mask=info["used_mask"].to_numpy(),
            reason=info["reason"].to_numpy(str),
        )
        tmp.replace(cache_file)
    return out, info
