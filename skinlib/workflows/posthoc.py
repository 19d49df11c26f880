"""What every post-hoc fit (`skinlib fit-*`) of a trained classifier folder shares: rebuild the folder's
recipe, then record the fit in its model.json (what `predict` needs) and metrics.json (scores, command)."""

from __future__ import annotations

from pathlib import Path

from ..models.folder import ModelFolder
from ..runtime import Views
from ..training.classifier import config_from_metrics


def model_recipe(model_dir, data_dir=None, command: str = "skinlib fit-*"):
    """The recipe a trained classifier folder's metrics.json records (data folder replaced by `data_dir`; None:
    $SKINLIB_DATA, as every command), so a post-hoc fit (`skinlib fit-referral`, `fit-metadata`, `fit-novelty`)
    rebuilds the splits and crops exactly as training built them."""
    metrics_path = Path(model_dir) / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(
            f"{metrics_path} is missing: {command} rebuilds the splits from the recipe a "
            "model's metrics.json records (train-classifier writes it)"
        )
    return config_from_metrics(metrics_path, data_dir=data_dir)


def record_fit(model_dir, key: str, spec_entry, metrics_entry: dict) -> None:
    """Write a post-hoc fit into a model folder: what `predict` needs into model.json[key] (a section of
    `skinlib.models.folder.ClassifierSpec`, or its dict: checked), its scores and the command that made them
    into metrics.json[key] (`ModelFolder.record_fit`)."""
    ModelFolder(model_dir, "classifier").record_fit(key, spec_entry, metrics_entry)


def calibrated_single_and_tta(classifier, data: dict, splits) -> dict:
    """Calibrated probabilities of each split with one view and with the 8 dihedral views,
    {(split, tta?): (labels, probabilities)}: what the referral and metadata fits choose between."""
    return {
        (split, views.is_tta): (data[split][1], classifier.probabilities(data[split][0], views))
        for split in splits
        for views in (Views.single(), Views.dihedral())
    }
