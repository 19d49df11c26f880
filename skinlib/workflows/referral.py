"""`skinlib fit-referral`: the melanoma referral thresholds of an already trained classifier folder."""

from __future__ import annotations

from ..runtime import StageTwo
from ..training.classifier import referral_spec, referral_thresholds, stage2_inputs
from .posthoc import calibrated_single_and_tta, model_recipe, record_fit


def fit_referral_for_model(
    model_dir,
    data_dir=None,
    sensitivity: float | None = None,
    limit: int | None = None,
    command: str | None = None,
    progress: bool = True,
) -> dict:
    """`skinlib fit-referral`: fit the referral thresholds of an already trained classifier folder.

    Its val and test inputs are rebuilt exactly as training built them (the recipe in its metrics.json);
    the thresholds go to model.json, their val and test scores to metrics.json ("melanoma_referral").
    `limit` (quick checks only) samples every split and writes nothing.
    """
    config = model_recipe(model_dir, data_dir, "fit-referral")
    data = stage2_inputs(config, splits=("val", "test"), progress=progress, limit=limit)
    classifier = StageTwo.load(model_dir)
    calibrated = calibrated_single_and_tta(classifier, data, ("val", "test"))
    record = referral_thresholds(calibrated, sensitivity)
    if limit is None:
        record_fit(
            model_dir,
            "melanoma_referral",
            referral_spec(record),
            {"command": command or f"skinlib fit-referral --model {model_dir}", **record},
        )
    return record
