"""`skinlib fit-tta`: fit a trained classifier for augmented test-time augmentation (`skinlib.runtime.views.augmented_views`).

Averaging 16 views drawn from the training augmentation (colour jitter included) makes probabilities smoother
than the 8 dihedral views do, so they get their own temperature, fitted on validation like every other
setting. The fit also scores the views against single crops on validation (the choice) and test (reported,
never used), with paired bootstrap intervals, and records them in metrics.json.
"""

from __future__ import annotations

from pathlib import Path

from ..evaluation.calibration import apply_temperature, fit_temperature
from ..evaluation.report import headline_scores, paired_gains
from ..models.folder import AugmentedTTASpec
from ..runtime import StageTwo
from ..runtime.views import AUGMENTED_VIEW_COUNT, AUGMENTED_VIEW_SEED
from ..training.classifier import stage2_inputs
from .posthoc import model_recipe, record_fit

#: model.json / metrics.json key of the fit.
KEY = "tta_augmented"


def augmented_tta_scores(labels, plain, augmented, samples: int = 1000, groups=None) -> dict:
    """Scores of calibrated single-crop and augmented-TTA probabilities on one split, and the paired gain
    (bootstrap over lesions when `groups` gives each image's lesion id)."""

    return {
        "images": int(len(labels)),
        "plain": headline_scores(labels, plain),
        "tta_augmented": headline_scores(labels, augmented),
        "tta_augmented_minus_plain": paired_gains(labels, plain, augmented, n=samples, groups=groups),
    }


def fit_augmented_tta(
    model_dir, data_dir=None, limit: int | None = None, command: str | None = None, progress: bool = True
) -> dict:
    """Fit the augmented-TTA temperature of a classifier folder on validation and score the views.

    The val and test inputs are rebuilt as training built them (the recipe in metrics.json). model.json gets
    what `predict --tta --tta-augmented` needs (views, seed, temperature, whether validation favours it);
    metrics.json the scores and the command. `limit` (quick checks) samples every split and writes nothing.
    """

    config = model_recipe(model_dir, data_dir, "fit-tta")
    data = stage2_inputs(config, splits=("val", "test"), progress=progress, limit=limit)
    classifier = StageTwo.load(model_dir)
    raw = {
        split: (
            classifier.raw_probabilities(data[split][0]),
            classifier.raw_probabilities(data[split][0], tta=True, augmented=True),
        )
        for split in ("val", "test")
    }
    val_labels = data["val"][1]
    temperature = fit_temperature(val_labels, raw["val"][1])
    scores = {
        split: augmented_tta_scores(
            data[split][1],
            apply_temperature(plain, classifier.temperature_for(False)),
            apply_temperature(augmented, temperature),
            groups=data[split][2]["lesion_id"].to_numpy(),
        )
        for split, (plain, augmented) in raw.items()
    }
    val_gain = scores["val"]["tta_augmented_minus_plain"]["balanced_accuracy"]
    spec = AugmentedTTASpec(
        views=AUGMENTED_VIEW_COUNT,
        seed=AUGMENTED_VIEW_SEED,
        temperature=temperature,
        recommended=bool(val_gain["difference"] > 0),
        fitted_on="validation (temperature: negative log-likelihood; recommended: balanced accuracy gain)",
    )
    record = {"command": command or f"skinlib fit-tta --model {model_dir}", **spec.to_dict(), **scores}
    if limit is None:
        record_fit(Path(model_dir), KEY, spec, record)
    return record
