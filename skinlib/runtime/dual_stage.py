"""The dual-stage pipeline a user calls: segment (stage 1), crop, classify (stage 2, optionally with TTA),
calibrate, flag."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.classes import CLASSES
from ..data.images import fit_size
from ..evaluation.calibration import apply_temperature
from ..segmentation.postprocess import lesion_crop
from ..segmentation.segmenter import DEFAULT_UNET, UNetSegmenter
from ..visualize import overlay_heatmap
from .classifier import DEFAULT_CLASSIFIER, StageTwo


@dataclass
class DualStage:
    """Stage 1 (U-Net) + stage 2 (classifier). `predict` takes RGB arrays of any size."""

    segmenter: object
    classifier: StageTwo

    @classmethod
    def load(cls, unet_dir=None, classifier_dir=None) -> DualStage:

        return cls(UNetSegmenter.load(unet_dir or DEFAULT_UNET), StageTwo.load(classifier_dir or DEFAULT_CLASSIFIER))

    def prepare(self, images: list[np.ndarray]):
        """Masks, crop records and the classifier's square inputs for a list of images."""

        masks = self.segmenter.segment(images)
        crops = [lesion_crop(image, mask, self.classifier.margin) for image, mask in zip(images, masks)]
        size = self.classifier.image_size
        pictures = [c.image if self.classifier.source == "crop" else image for c, image in zip(crops, images)]
        inputs = np.stack([fit_size(p, (size, size), "pad") for p in pictures])
        return masks, crops, inputs

    def explain(self, inputs: np.ndarray, layer_name: str | None = None) -> list[dict]:
        """Grad-CAM (predicted class) and spatial-attention overlays on the classifier's inputs (the crops)."""
        # deferred: loads Keras
        from ..explain import attention_maps, gradcam, gradcam_overlay

        model = self.classifier.members  # an ensemble's maps are its members' mean
        cams = gradcam(model, inputs.astype(np.float32), layer_name=layer_name)
        out = [{"gradcam": gradcam_overlay(x, cam)} for x, cam in zip(inputs, cams)]
        if self.classifier.spec.attention:
            spatial = attention_maps(model, inputs.astype(np.float32))["spatial"]
            for record, x, attention in zip(out, inputs, spatial):
                record["attention"] = overlay_heatmap(x, attention)
        return out

    def predict(
        self,
        images: list[np.ndarray],
        tta: bool = False,
        scales=None,
        metadata=None,
        augmented: bool = False,
        prior=None,
    ) -> list[dict]:
        """Per image: calibrated probabilities per class, the top class, the `uncertain` and `melanoma_referral`
        flags and crop notes. `metadata` (optional): a frame of age, sex and site, one row per image; `prior`
        (optional): "training" or a class prior vector, see `classify`."""
        return self.classify(
            *self.prepare(images), tta=tta, scales=scales, metadata=metadata, augmented=augmented, prior=prior
        )

    def classify(
        self,
        masks,
        crops,
        inputs: np.ndarray,
        tta: bool = False,
        scales=None,
        metadata=None,
        augmented: bool = False,
        prior=None,
    ) -> list[dict]:
        """Stage 2 on what `prepare` returned (so callers that also explain segment only once).

        With `metadata`, the probabilities are fused with it (`metadata_used` says which fields each image
        had; an image with none keeps its image-only probabilities) and the referral flag uses the threshold
        fitted for fused probabilities. With `prior`, the probabilities (and so the top class) are for a
        population with that class mix (`StageTwo.with_prior`); the referral flag still reads P(mel) before
        that correction, the probability its threshold was fitted on."""
        raw, novelty = self.classifier.raw_probabilities_and_novelty(inputs, tta, scales=scales, augmented=augmented)
        probs = apply_temperature(raw, self.classifier.temperature_for(tta, augmented))
        used = [None] * len(probs)
        if metadata is not None:
            probs, used = self.classifier.with_metadata(probs, metadata, tta)
        flagged_on = probs
        if prior is not None:
            probs = self.classifier.with_prior(probs, prior)
        referral = self.classifier.referral_threshold(tta, metadata=metadata is not None)
        unusual = [None] * len(probs) if novelty is None else list(novelty > self.classifier.novelty.threshold)
        mel = CLASSES.index("mel")
        results = []
        for i, (p, mask, crop, fields) in enumerate(zip(probs, masks, crops, used)):
            top = int(np.argmax(p))
            results.append(
                {
                    "probabilities": {c: round(float(v), 6) for c, v in zip(CLASSES, p)},
                    "prediction": CLASSES[top],
                    "confidence": round(float(p[top]), 6),
                    "uncertain": bool(p[top] < self.classifier.uncertain_below or not crop.used_mask or unusual[i]),
                    "unlike_training_images": None if unusual[i] is None else bool(unusual[i]),
                    "novelty_score": None if novelty is None else round(float(novelty[i]), 2),
                    "melanoma_referral": None if referral is None else bool(flagged_on[i, mel] >= referral),
                    "melanoma_referral_threshold": referral,
                    "metadata_used": fields,
                    "lesion_found": bool(crop.used_mask),
                    "crop_note": crop.reason,
                    "mask": mask,
                }
            )
        return results
