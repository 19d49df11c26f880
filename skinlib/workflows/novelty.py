"""Fit a classifier's novelty check (`skinlib fit-novelty`): is an input unlike the training images?

The probabilistic PCA is fitted on the training split's features, the threshold on validation (a fixed share
of ordinary images flagged), and then two things are measured once: how many test images it flags (the false
alarms a user of HAM10000-like images sees) and what it makes of images that are not dermoscopy at all
(`unusual_images`: photographs and synthetic pictures that ship with scikit-image, noise, flat colours).
See `skinlib.models.novelty` for the method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.classes import CLASSES
from ..models.folder import NOVELTY_FILE, NoveltySpec
from ..models.novelty import COMPONENTS, VALIDATION_FLAG_RATE, NoveltyModel
from ..runtime import DualStage


def unusual_images() -> dict[str, np.ndarray]:
    """Pictures the pipeline was never meant for, all shipped with scikit-image or made here (no download)."""
    import skimage.data

    rng = np.random.default_rng(0)
    grey = skimage.data.camera()
    return {
        "cat (photo)": skimage.data.chelsea(),
        "coffee cup (photo)": skimage.data.coffee(),
        "astronaut (photo)": skimage.data.astronaut(),
        "rocket (photo)": skimage.data.rocket(),
        "camera man (grey photo)": np.stack([grey] * 3, axis=-1),
        "stained tissue (microscopy)": skimage.data.immunohistochemistry(),
        "galaxies (telescope)": skimage.data.hubble_deep_field(),
        "checkerboard": np.stack([skimage.data.checkerboard()] * 3, axis=-1),
        "uniform grey": np.full((450, 600, 3), 128, np.uint8),
        "plain skin colour": np.full((450, 600, 3), (215, 170, 150), np.uint8),
        "random noise": rng.integers(0, 256, (450, 600, 3), dtype=np.uint8),
    }


def _by_class(flagged, labels) -> dict:
    return {code: float(flagged[labels == i].mean()) for i, code in enumerate(CLASSES) if np.any(labels == i)}


def novelty_record(novelty: NoveltyModel, scores: dict, labels: dict, unusual: dict) -> dict:
    """What the fitted check does: flag rates on val (by construction) and test, per test class, and per
    unusual image. `scores`/`labels`: {split: array}; `unusual`: {name: score}."""
    flagged = {split: scores[split] > novelty.threshold for split in scores}
    return {
        "threshold": novelty.threshold,
        "components": int(len(novelty.variances)),
        "target_validation_flag_rate": VALIDATION_FLAG_RATE,
        "val_flag_rate": float(flagged["val"].mean()),
        "test_flag_rate": float(flagged["test"].mean()),
        "val_flag_rate_by_class": _by_class(flagged["val"], labels["val"]),
        "test_flag_rate_by_class": _by_class(flagged["test"], labels["test"]),
        "test_score_median": float(np.median(scores["test"])),
        "unusual_images": {
            name: {"score": float(score), "flagged": bool(score > novelty.threshold)} for name, score in unusual.items()
        },
        "unusual_flag_rate": float(np.mean([score > novelty.threshold for score in unusual.values()])),
    }


def fit_novelty_for_model(
    model_dir, data_dir=None, limit: int | None = None, command: str | None = None, progress: bool = True
) -> dict:
    """`skinlib fit-novelty`: fit on the model's training features, threshold on validation, score test and the
    unusual images; write novelty.npz, model.json's "novelty" and metrics.json's. `limit` writes nothing."""
    # deferred: loads Keras
    from ..training.classifier import stage2_inputs
    from .posthoc import model_recipe, record_fit

    config = model_recipe(model_dir, data_dir, "fit-novelty")
    data = stage2_inputs(config, splits=("train", "val", "test"), progress=progress, limit=limit)
    pipeline = DualStage.load(classifier_dir=model_dir)
    classifier = pipeline.classifier
    features = {split: classifier.features(data[split][0]) for split in data}
    components = min(COMPONENTS, len(features["train"]) - 1)
    novelty = NoveltyModel.fit(features["train"], data["train"][1], components).with_threshold(features["val"])
    images = unusual_images()
    odd = novelty.score(classifier.features(pipeline.prepare(list(images.values()))[2]))
    record = novelty_record(
        novelty,
        {split: novelty.score(features[split]) for split in ("val", "test")},
        {split: data[split][1] for split in ("val", "test")},
        dict(zip(images, odd)),
    )
    if limit is None:
        novelty.save(Path(model_dir) / NOVELTY_FILE)
        record_fit(
            model_dir,
            "novelty",
            NoveltySpec(
                file=NOVELTY_FILE,
                threshold=novelty.threshold,
                components=components,
                fitted_on=f"training features; threshold: validation, {VALIDATION_FLAG_RATE:.0%} flagged",
            ),
            {"command": command or f"skinlib fit-novelty --model {model_dir}", **record},
        )
    return record
