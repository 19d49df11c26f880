"""Training loops. Each writes a run folder (config, per-epoch log, best checkpoint) and can resume.

Stage 1 (`train_unet`): the ImageNet encoder is first frozen while the fresh decoder learns (about
twice as fast per image on a CPU), then the whole network is fine-tuned with a lower, cosine-decaying
learning rate. Early stopping and the kept checkpoint both follow validation Dice.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data import load_split_frame
from ..models.folder import WEIGHTS_FILE, ModelFolder, UNetSpec
from .recipe import config_from_metrics


@dataclass
class UNetConfig:
    """Everything that defines a U-Net training run; saved beside the weights."""

    data_dir: str | None = None
    split_path: str | None = None
    image_size: tuple[int, int] = (96, 128)
    fit: str = "pad"
    encoder: str = "lite0"
    encoder_weights: str | None = "imagenet"
    decoder_filters: tuple[int, ...] = (128, 64, 32, 24, 16)
    batch_size: int = 16
    frozen_epochs: int = 2
    epochs: int = 6
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 3e-4
    patience: int = 3
    seed: int = 0
    train_limit: int | None = None
    val_limit: int | None = None
    cache: bool = True
    threshold: float = 0.5
    augment: str = "standard"  # or "battery" (`skinlib.data.tfdata.Augmentation.named`)
    notes: dict = field(default_factory=dict)


def _subset(frame, name: str, limit: int | None, seed: int):
    part = frame[frame["split"] == name]
    if limit is not None and limit < len(part):
        part = part.sample(n=limit, random_state=seed)
    return part.sort_values("image_id").reset_index(drop=True)


def load_segmentation_data(config: UNetConfig, progress: bool = True):
    """Train and validation arrays (images, masks) of the shared split at the configured size."""
    # deferred: loads TensorFlow
    from ..data.tfdata import load_arrays

    frame = load_split_frame(config.data_dir, config.split_path)
    parts = {}
    for name, limit in (("train", config.train_limit), ("val", config.val_limit)):
        subset = _subset(frame, name, limit, config.seed)
        parts[name] = load_arrays(
            subset, config.image_size, config.fit, with_masks=True, progress=progress, cache=config.cache
        )
    return parts


def _callbacks(run_dir: Path, phase: str, patience: int, progress: bool):
    import keras

    return [
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.weights.h5"),
            monitor="val_dice",
            mode="max",
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.EarlyStopping(monitor="val_dice", mode="max", patience=patience, restore_best_weights=False),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.BackupAndRestore(str(run_dir / f"backup-{phase}")),
    ]


def _best_so_far(run_dir: Path) -> float:
    history = run_dir / "history.csv"
    if not history.is_file():
        return -np.inf
    import pandas as pd

    values = pd.read_csv(history).get("val_dice")
    return float(values.max()) if values is not None and len(values) else -np.inf


def train_unet(config: UNetConfig, run_dir: str | Path, progress: bool = True):
    """Train a U-Net on the train split, select on validation Dice; returns (model, history DataFrame).

    Interrupted? Run the same call again: finished phases are skipped and the current phase resumes
    from its last completed epoch (Keras `BackupAndRestore`).
    """
    import keras
    import pandas as pd

    # deferred: loads TensorFlow
    from ..data.tfdata import Augmentation, make_dataset
    from ..losses import DiceBCELoss
    from ..segmentation.unet import DiceScore, IoUScore, ThresholdedJaccard, build_unet

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    keras.utils.set_random_seed(config.seed)
    data = load_segmentation_data(config, progress)
    train = make_dataset(
        data["train"][0],
        masks=data["train"][1],
        training=True,
        batch_size=config.batch_size,
        seed=config.seed,
        augmentation=Augmentation.named(config.augment),
    )
    val = make_dataset(data["val"][0], masks=data["val"][1], training=False, batch_size=32)
    model = build_unet(
        (*config.image_size, 3),
        encoder=config.encoder,
        encoder_weights=config.encoder_weights,
        decoder_filters=config.decoder_filters,
    )
    metrics = lambda: [DiceScore(config.threshold), IoUScore(config.threshold), ThresholdedJaccard(config.threshold)]  # noqa: E731
    verbose = 1 if progress else 0
    started = time.time()

    phase1_done = run_dir / "phase1.weights.h5"
    if config.encoder == "lite0" and config.frozen_epochs > 0:
        if phase1_done.is_file():
            model.load_weights(str(phase1_done))
        else:
            model.get_layer("encoder").trainable = False
            model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=DiceBCELoss(), metrics=metrics())
            # shuffle=False: `train` is a tf.data pipeline that shuffles itself (Keras warns otherwise).
            model.fit(
                train,
                validation_data=val,
                epochs=config.frozen_epochs,
                verbose=verbose,
                shuffle=False,
                callbacks=_callbacks(run_dir, "frozen", config.patience, progress),
            )
            model.save_weights(str(phase1_done))
        model.get_layer("encoder").trainable = True
        first_epoch, rate = config.frozen_epochs, config.fine_tune_learning_rate
    else:
        first_epoch, rate = 0, config.learning_rate

    remaining = config.epochs - first_epoch
    if remaining > 0:
        steps = remaining * int(np.ceil(len(data["train"][0]) / config.batch_size))
        schedule = keras.optimizers.schedules.CosineDecay(rate, decay_steps=steps, alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=DiceBCELoss(), metrics=metrics())
        callbacks = _callbacks(run_dir, "fine-tune", config.patience, progress)
        callbacks[0].best = _best_so_far(run_dir)  # only replace phase 1's checkpoint with a better one
        model.fit(
            train,
            validation_data=val,
            initial_epoch=first_epoch,
            epochs=config.epochs,
            verbose=verbose,
            shuffle=False,
            callbacks=callbacks,
        )
    model.load_weights(str(run_dir / "best.weights.h5"))
    history = pd.read_csv(run_dir / "history.csv")
    (run_dir / "timing.json").write_text(json.dumps({"train_seconds": round(time.time() - started, 1)}) + "\n")
    return model, history


def export_unet(model, config: UNetConfig, out_dir: str | Path) -> Path:
    """Write a shipped model folder: `model.json` + float16 `weights.npz`."""
    # deferred: loads Keras
    from ..models.storage import save_compact_weights

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_compact_weights(model, out_dir / WEIGHTS_FILE)
    spec = UNetSpec(
        encoder=config.encoder,
        image_size=tuple(config.image_size),
        fit=config.fit,
        decoder_filters=tuple(config.decoder_filters),
        threshold=config.threshold,
        weights=WEIGHTS_FILE,
        split_seed_file="skinlib/resources/ham10000_split.json",
        training_seed=config.seed,
    )
    ModelFolder(out_dir, "unet").write_spec(spec)
    return out_dir


def unet_config_from_metrics(metrics_path, **overrides) -> UNetConfig:
    """The config a shipped U-Net was trained with (its `metrics.json`), optionally changed: to retrain it."""

    return config_from_metrics(UNetConfig, metrics_path, **overrides)
