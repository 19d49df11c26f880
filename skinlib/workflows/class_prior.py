"""`skinlib fit-prior`: record the class prior a classifier learnt under, so answers can be for a real population.

The shipped recipe weights every class so that all seven count alike (focal alpha from balanced class
weights). Its probabilities, even after temperature scaling, answer "which class, if all were equally
common?": its mean P(mel) on HAM10000 validation is about twice the melanoma rate. Bayes' rule turns them into
answers for a population with a known class mix (`skinlib.evaluation.calibration.shift_prior`): HAM10000's
own training mix by default, or a user's. Nothing is fitted to images: the model prior follows from the
training counts and the loss weights, the target from the counts. The scores before and after, on val and
test, show what the correction does to calibration (class-wise as well as top-label) and to the arg-max
class (it now maximises accuracy, not balanced accuracy).
"""

from __future__ import annotations

from pathlib import Path

from ..evaluation.calibration import prior_scores, shift_prior
from ..runtime import StageTwo
from ..training.classifier import class_prior_spec, stage2_inputs
from .posthoc import model_recipe, record_fit

#: model.json / metrics.json key of the fit.
KEY = "class_prior"


def fit_class_prior(
    model_dir, data_dir=None, limit: int | None = None, command: str | None = None, progress: bool = True
) -> dict:
    """Record a classifier folder's class priors in model.json and score the correction on val and test.

    `limit` (quick checks) samples val and test and writes nothing.
    """

    config = model_recipe(model_dir, data_dir, "fit-prior")
    spec = class_prior_spec(config)
    data = stage2_inputs(config, splits=("val", "test"), progress=progress, limit=limit)
    classifier = StageTwo.load(model_dir)
    record = {"command": command or f"skinlib fit-prior --model {model_dir}", **spec}
    for split in ("val", "test"):
        calibrated = classifier.probabilities(data[split][0])
        shifted = shift_prior(calibrated, spec["model"], spec["training"])
        record[split] = prior_scores(data[split][1], calibrated, shifted)
    if limit is None:
        record_fit(Path(model_dir), KEY, spec, record)
    return record
