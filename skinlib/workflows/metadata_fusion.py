"""Fit the image + metadata fusion of a trained classifier (`skinlib fit-metadata`).

The prior is counted on the model's own training split, the fusion weight and the fused referral
thresholds are fitted on validation, and test is scored once, image only and fused, with the paired
bootstrap interval of the difference (same images, same model), so the gain metadata brings is visible
with its uncertainty. See `skinlib.models.metadata_prior` for the method.
"""

from __future__ import annotations

from pathlib import Path

from ..data import load_split_frame
from ..evaluation.referral import referral_record
from ..evaluation.report import headline_scores, paired_gains
from ..models.folder import METADATA_PRIOR_FILE, MetadataFusionSpec
from ..models.metadata_prior import MetadataPrior, fit_weight, fuse, metadata_values
from ..runtime import StageTwo

PRIOR_FILE = METADATA_PRIOR_FILE
SPLITS = ("val", "test")


def fusion_record(prior: MetadataPrior, calibrated: dict, frames: dict) -> tuple[dict, dict]:
    """Fit the weights on validation and score val and test, image only vs fused.

    `calibrated`: {(split, tta): (labels, calibrated image probabilities)}; `frames`: {split: metadata frame,
    rows in the same order}. Returns (record for metrics.json, {(split, tta): (labels, fused probabilities)}).
    """

    ratios = {split: prior.log_ratios(metadata_values(frames[split])) for split in SPLITS}
    record = {"coverage": {split: usage for split, (_, usage) in ratios.items()}}
    fused = {}
    for tta in (False, True):
        view = "tta" if tta else "plain"
        weight = fit_weight(*calibrated[("val", tta)], ratios["val"][0])
        for split in SPLITS:
            labels, probs = calibrated[(split, tta)]
            fused[(split, tta)] = (labels, fuse(probs, ratios[split][0], weight))
        record[view] = {
            "weight": weight,
            **{
                split: {
                    "image_only": headline_scores(*calibrated[(split, tta)]),
                    "fused": headline_scores(*fused[(split, tta)]),
                }
                for split in SPLITS
            },
            **{
                f"{split}_fused_minus_image_only": paired_gains(
                    *calibrated[(split, tta)], fused[(split, tta)][1], groups=_lesions(frames[split])
                )
                for split in SPLITS
            },
            "melanoma_referral": referral_record(
                *fused[("val", tta)], test_labels=fused[("test", tta)][0], test_probs=fused[("test", tta)][1]
            ),
        }
    record["tta_chosen_on_val"] = bool(
        record["tta"]["val"]["fused"]["balanced_accuracy"] > record["plain"]["val"]["fused"]["balanced_accuracy"]
    )
    return record, fused


def _lesions(frame):
    """The lesion id of every image, for a bootstrap over lesions; None (images) if the frame has none."""
    return frame["lesion_id"].to_numpy() if "lesion_id" in frame else None


def fusion_spec(record: dict) -> MetadataFusionSpec:
    """What model.json keeps of a fusion record: the prior's file, the weights and the referral thresholds."""
    # deferred: loads Keras
    from ..training.classifier import referral_spec

    referral = referral_spec({view: record[view]["melanoma_referral"] for view in ("plain", "tta")})
    return MetadataFusionSpec(
        prior=PRIOR_FILE,
        weight=record["plain"]["weight"],
        weight_tta=record["tta"]["weight"],
        melanoma_referral=referral,
        tta_recommended=record["tta_chosen_on_val"],
        fitted_on="validation (weight: negative log-likelihood; thresholds: melanoma sensitivity)",
    )


def training_frame(config):
    """The training split the model itself was trained on (its `train_limit` sample included)."""
    # deferred: loads Keras
    from ..training.classifier import _subset

    frame = load_split_frame(config.data_dir, config.split_path)
    return _subset(frame, "train", config.train_limit, config.seed)


def fit_metadata_for_model(
    model_dir, data_dir=None, limit: int | None = None, command: str | None = None, progress: bool = True
) -> dict:
    """`skinlib fit-metadata`: count the prior on the model's training split, fit the weights on validation,
    score val and test; write metadata_prior.json, model.json's "metadata_fusion" and metrics.json's.

    `limit` (quick checks) samples val and test and writes nothing.
    """
    # deferred: loads Keras
    from ..training.classifier import stage2_inputs
    from .posthoc import calibrated_single_and_tta, model_recipe, record_fit

    config = model_recipe(model_dir, data_dir, "fit-metadata")
    data = stage2_inputs(config, splits=SPLITS, progress=progress, limit=limit)
    prior = MetadataPrior.fit(training_frame(config))
    classifier = StageTwo.load(model_dir)
    calibrated = calibrated_single_and_tta(classifier, data, SPLITS)
    record, _ = fusion_record(prior, calibrated, {split: data[split][2] for split in SPLITS})
    if limit is None:
        prior.to_json(Path(model_dir) / PRIOR_FILE)
        record_fit(
            model_dir,
            "metadata_fusion",
            fusion_spec(record),
            {"command": command or f"skinlib fit-metadata --model {model_dir}", **record},
        )
    return record
