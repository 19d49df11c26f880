"""Load a trained U-Net (or the classical method) and segment images of any size.

A shipped model folder holds `model.json` (architecture and input size, read as a `skinlib.models.folder.UNetSpec`),
`weights.npz` (float16, see `skinlib.models.storage`) and `metrics.json` (test metrics and the command that made it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..data.errors import DataError
from ..data.images import fit_size, read_image, read_mask, unfit_size
from ..evaluation.segmentation import dice, iou, segmentation_scores
from ..models.folder import ModelFolder
from ..models.inference import predict_in_batches
from ..shipped import UNET
from .classical import ClassicalParams, segment_classical
from .postprocess import postprocess_mask

DEFAULT_UNET = UNET


@dataclass
class UNetSegmenter:
    """A U-Net with its input size and threshold; `segment` takes and returns original-size arrays."""

    model: object
    image_size: tuple[int, int]
    fit: str = "pad"
    threshold: float = 0.5
    name: str = "unet"
    weights_file: Path | None = None

    @classmethod
    def load(cls, folder: str | Path = DEFAULT_UNET) -> UNetSegmenter:
        # deferred: loads Keras
        from ..models.storage import load_compact_weights
        from .unet import build_unet

        folder = Path(folder)
        spec = ModelFolder(folder, "unet").read_spec()
        model = build_unet(
            (*spec.image_size, 3), encoder=spec.encoder, encoder_weights=None, decoder_filters=spec.decoder_filters
        )
        load_compact_weights(model, folder / spec.weights)
        return cls(
            model=model,
            image_size=spec.image_size,
            fit=spec.fit,
            threshold=spec.threshold,
            weights_file=folder / spec.weights,
        )

    def probabilities(self, images: list[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
        """Lesion probability maps at each image's own size."""
        batch = np.stack([fit_size(image, self.image_size, self.fit) for image in images]).astype(np.float32)

        maps = predict_in_batches(self.model, batch, batch_size)[..., 0]
        return [unfit_size(m, image.shape[:2], self.fit) for m, image in zip(maps, images)]

    def segment(self, images: list[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
        """Boolean masks at each image's own size (largest component, holes filled)."""
        return [postprocess_mask(p, self.threshold) for p in self.probabilities(images, batch_size)]


@dataclass
class ClassicalSegmenter:
    """The classical pipeline behind the same interface as the U-Net."""

    params: ClassicalParams = ClassicalParams()
    name: str = "classical"

    def segment(self, images: list[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
        return [segment_classical(image, self.params) for image in images]


def load_segmenter(method: str = "unet", model_dir: str | Path | None = None):
    """`"unet"` (the shipped model, or `model_dir`) or `"classical"`."""
    if method == "unet":
        return UNetSegmenter.load(model_dir or DEFAULT_UNET)
    if method == "classical":
        return ClassicalSegmenter()
    raise ValueError(f"method must be 'unet' or 'classical', not {method!r}")


def paired_batches(image_paths, mask_paths, batch_size: int = 32, progress: bool = True, desc: str = "segmenting"):
    """Yield (images, masks, image ids) a batch at a time, so several segmenters can share one read of the
    images. Masks are read strictly (only 0 and 255); a mask whose size differs from its image is an error that
    names the file, not a silent resize."""
    image_paths, mask_paths = [Path(p) for p in image_paths], [Path(p) for p in mask_paths]
    for start in tqdm(range(0, len(image_paths), batch_size), desc=desc, unit="batch", disable=not progress):
        batch_images, batch_masks = image_paths[start : start + batch_size], mask_paths[start : start + batch_size]
        images = [read_image(p) for p in batch_images]
        masks = [read_mask(p, strict=True) for p in batch_masks]
        for image, mask, path in zip(images, masks, batch_masks):
            if image.shape[:2] != mask.shape:
                raise DataError(
                    f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                    f"{image.shape[1]}x{image.shape[0]}; masks must match their image's size."
                )
        yield images, masks, [p.stem for p in batch_images]


def evaluate_segmenter(segmenter, image_paths, mask_paths, batch_size: int = 32, progress: bool = True) -> dict:
    """Score a segmenter against masks at each mask's own resolution.

    Returns the summary of `segmentation_scores` plus `per_image` (id -> dice, iou) for error analysis.
    Images are read with `read_image`, masks strictly (only 0 and 255), and a mask whose size differs
    from its image is an error, not a silent resize.
    """
    preds, trues, names = [], [], []
    for images, masks, ids in paired_batches(
        image_paths, mask_paths, batch_size, progress, desc=f"segmenting ({segmenter.name})"
    ):
        preds += segmenter.segment(images, batch_size)
        trues += masks
        names += ids
    summary = segmentation_scores(preds, trues)
    summary["per_image"] = {
        n: {"dice": round(dice(p, t), 4), "iou": round(iou(p, t), 4)} for n, p, t in zip(names, preds, trues)
    }
    return summary
