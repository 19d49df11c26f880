"""Stage-2 training: transfer learning in phases on cached frozen-backbone features.

Phases (each `(stages_unfrozen, epochs, learning_rate)`): first only attention and head learn on top
of the frozen ImageNet backbone, then the last backbone stages are unfrozen one by one with lower,
cosine-decaying learning rates. The part below `cache_at` stays frozen throughout, which is what lets
its output be cached (see `skinlib.training.features`). Checkpoint and early stopping follow
validation balanced accuracy (the ISIC 2018 metric), never test.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from ..data import CLASSES, class_weights, load_split_frame
from .features import FeatureSequence, cached_extract, image_digest, split_model

LOSSES = ("focal", "weighted_ce", "ce")


@dataclass
class ClassifierConfig:
    """Everything that defines a stage-2 run; saved beside the weights."""

    data_dir: str | None = None
    split_path: str | None = None
    image_size: int = 224
    source: str = "crop"  # "crop": lesion crop from the U-Net mask; "full": the whole image
    margin: float = 0.25
    segmenter_dir: str | None = None  # default: the shipped models/unet
    backbone: str = "lite0"
    backbone_weights: str | None = "imagenet"
    attention: bool = True
    dropout: float = 0.3
    loss: str = "focal"
    gamma: float = 2.0
    cache_at: str = "stage5_out"
    train_views: int = 8
    eval_views: int = 8
    batch_size: int = 64
    phases: tuple = ((0, 4, 1e-3), (1, 4, 3e-4), (2, 6, 1e-4))
    patience: int = 4
    seed: int = 0
    train_limit: int | None = None
    val_limit: int | None = None
    cache: bool = True
    distribute: str | None = None  # None: default strategy; "mirrored": tf.distribute.MirroredStrategy
    notes: dict = field(default_factory=dict)


def make_strategy(name: str | None):
    """The `tf.distribute` strategy to train under: several GPUs or CPUs scale with TensorFlow's own engine."""
    import tensorflow as tf

    if name is None:
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"distribute must be None or 'mirrored', not {name!r}")


def _subset(frame, name, limit, seed):
    part = frame[frame["split"] == name]
    if limit is not None and limit < len(part):
        part = part.groupby("dx", group_keys=False).apply(
            lambda g: g.sample(n=max(1, round(limit * len(g) / len(part))), random_state=seed))
    return part.sort_values("image_id").reset_index(drop=True)


def stage2_inputs(config: ClassifierConfig, splits=("train", "val", "test"), progress: bool = True) -> dict:
    """Per split: (uint8 inputs N x S x S x 3, labels, frame) as stage 1 hands them to stage 2."""
    from ..data.crops import make_stage2_inputs
    from ..segmentation.segmenter import DEFAULT_UNET, UNetSegmenter

    frame = load_split_frame(config.data_dir, config.split_path)
    segmenter = UNetSegmenter.load(config.segmenter_dir or DEFAULT_UNET) if config.source == "crop" else None
    limits = {"train": config.train_limit, "val": config.val_limit, "test": None}
    out = {}
    for name in splits:
        part = _subset(frame, name, limits[name], config.seed)
        images, info = make_stage2_inputs(part, config.image_size, config.source, segmenter, config.margin,
                                          cache=config.cache, progress=progress)
        out[name] = (images, part["label"].to_numpy(), part.assign(used_mask=info["used_mask"].to_numpy(),
                                                                    crop_note=info["reason"].to_numpy()))
    return out


def make_loss(config: ClassifierConfig, train_labels):
    """The configured loss; class weighting comes from the training labels' counts."""
    from ..losses import CategoricalFocalLoss, WeightedCategoricalCrossentropy, focal_alpha_from_class_weights

    weights, _ = class_weights(train_labels, len(CLASSES))
    if config.loss == "focal":
        return CategoricalFocalLoss(gamma=config.gamma, alpha=focal_alpha_from_class_weights(weights, len(CLASSES)))
    if config.loss == "weighted_ce":
        return WeightedCategoricalCrossentropy(focal_alpha_from_class_weights(weights, len(CLASSES)))
    if config.loss == "ce":
        return keras.losses.CategoricalCrossentropy()
    raise ValueError(f"loss must be one of {LOSSES}, not {config.loss!r}")


class BalancedAccuracyCheckpoint(keras.callbacks.Callback):
    """Score validation balanced accuracy each epoch, keep the best weights, stop after `patience` misses.

    `best` is the best score of all phases so far (only a better epoch is saved), but a miss is an epoch
    that does not beat *this phase's* best: a phase starts below the previous one's peak (new stages meet a
    higher learning rate), and counting that dip as misses would stop it before it can climb past.
    """

    def __init__(self, features, labels, run_dir: Path, patience: int, best: float = -np.inf, full_model=None):
        super().__init__()
        self.features, self.labels, self.full_model = features, labels, full_model
        self.run_dir, self.patience, self.best = run_dir, patience, best
        self.phase_best, self.misses = -np.inf, 0

    def on_epoch_end(self, epoch, logs=None):
        from ..evaluation.classification import balanced_accuracy

        probs = self.model.predict(self.features, batch_size=256, verbose=0)
        score = balanced_accuracy(self.labels, probs)
        logs = logs if logs is not None else {}
        logs["val_balanced_accuracy"] = score
        logs["val_accuracy"] = float(np.mean(probs.argmax(1) == self.labels))
        if score > self.best:
            self.best = score
            (self.full_model or self.model).save_weights(str(self.run_dir / "best.weights.h5"))
        if score > self.phase_best:
            self.phase_best, self.misses = score, 0
        else:
            self.misses += 1
            if self.misses >= self.patience:
                self.model.stop_training = True


def build_for(config: ClassifierConfig):
    from ..models.classifier import build_classifier

    return build_classifier((config.image_size, config.image_size, 3), backbone=config.backbone,
                            backbone_weights=config.backbone_weights, attention=config.attention,
                            dropout=config.dropout)


def unfreeze(model, config: ClassifierConfig, stages: int) -> None:
    """Train the last `stages` backbone stages; a random backbone also learns their BatchNorm statistics,
    which mean nothing yet (see `set_trainable_blocks`)."""
    from ..models.classifier import set_trainable_blocks

    set_trainable_blocks(model, stages, train_batchnorm=config.backbone_weights is None)


def train_classifier(config: ClassifierConfig, run_dir: str | Path, data: dict | None = None, progress: bool = True):
    """Train on the train split's cached features; returns (model, history list, data).

    Resumable: a finished phase leaves `phase<k>.weights.h5`; rerunning skips it.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2, default=list) + "\n")
    keras.utils.set_random_seed(config.seed)
    data = data or stage2_inputs(config, progress=progress)
    with make_strategy(config.distribute).scope():
        return _train_in_scope(config, run_dir, data, progress)


def _train_in_scope(config: ClassifierConfig, run_dir: Path, data: dict, progress: bool):
    model = build_for(config)
    lower, upper = split_model(model, config.cache_at)
    cache_dir = None
    if config.cache:
        from ..data.tfdata import default_cache_dir

        cache_dir = default_cache_dir()
    key = (config.backbone, config.backbone_weights, config.cache_at, config.image_size)
    train_x, train_y, _ = data["train"]
    val_x, val_y, _ = data["val"]
    train_features = cached_extract(cache_dir, key + ("augment", image_digest(train_x), config.train_views,
                                                      config.seed), lower, train_x, config.train_views, "augment",
                                    seed=config.seed, progress=progress)
    val_features = cached_extract(cache_dir, key + ("dihedral", image_digest(val_x), 1), lower, val_x, 1,
                                  "dihedral", progress=progress)[0]
    loss = make_loss(config, train_y)
    history, best, started = [], -np.inf, time.time()
    first_epoch = 0
    for phase, (stages, epochs, rate) in enumerate(config.phases):
        done = run_dir / f"phase{phase}.weights.h5"
        if done.is_file():
            model.load_weights(str(done))
            first_epoch += epochs
            continue
        unfreeze(model, config, stages)
        sequence = FeatureSequence(train_features, train_y, len(CLASSES), config.batch_size, seed=config.seed + phase)
        schedule = keras.optimizers.schedules.CosineDecay(rate, decay_steps=epochs * len(sequence), alpha=0.05)
        upper.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
        checkpoint = BalancedAccuracyCheckpoint(val_features, val_y, run_dir, config.patience, best, full_model=model)
        fit = upper.fit(sequence, epochs=first_epoch + epochs, initial_epoch=first_epoch,
                        verbose=2 if progress else 0, callbacks=[checkpoint])
        best = checkpoint.best
        history += [{"phase": phase, "epoch": first_epoch + i, **{k: float(v[i]) for k, v in fit.history.items()}}
                    for i in range(len(fit.history["loss"]))]
        model.load_weights(str(run_dir / "best.weights.h5"))  # next phase starts from the best so far
        model.save_weights(str(done))
        first_epoch += epochs
    model.load_weights(str(run_dir / "best.weights.h5"))
    seconds = round(time.time() - started, 1)
    previous = json.loads((run_dir / "history.json").read_text()) if (run_dir / "history.json").is_file() else {}
    record = {"history": previous.get("history", []) + history, "best_val_balanced_accuracy": best,
              "train_seconds": previous.get("train_seconds", 0) + seconds}
    (run_dir / "history.json").write_text(json.dumps(record, indent=2) + "\n")
    return model, record, data


def export_classifier(model, config: ClassifierConfig, out_dir: str | Path, temperature: float = 1.0) -> Path:
    """Write a shipped classifier folder: `model.json` + float16 `weights.npz`."""
    from ..models.storage import save_compact_weights
    from ..predict import UNCERTAIN_BELOW

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_compact_weights(model, out_dir / "weights.npz")
    spec = {"kind": "classifier", "classes": list(CLASSES), "backbone": config.backbone,
            "attention": config.attention, "dropout": config.dropout, "image_size": config.image_size,
            "source": config.source, "margin": config.margin, "temperature": temperature,
            "uncertain_below": UNCERTAIN_BELOW, "weights": "weights.npz", "training_seed": config.seed}
    (out_dir / "model.json").write_text(json.dumps(spec, indent=2) + "\n")
    return out_dir


PREDICTIONS_FILE = "predictions.npz"


def save_predictions(path: Path, data: dict, results: dict, temperature: dict) -> Path:
    """Calibrated val/test probabilities (plain and TTA) per image: what paired comparisons of runs need."""
    from ..evaluation.calibration import apply_temperature

    arrays = {}
    for (split, tta), (labels, probs) in results.items():
        arrays[f"{split}_{'tta' if tta else 'plain'}"] = apply_temperature(probs, temperature[tta]).astype(np.float32)
        arrays[f"{split}_labels"] = np.asarray(labels)
        arrays[f"{split}_image_ids"] = data[split][2]["image_id"].to_numpy().astype(str)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def train_and_ship_classifier(config: ClassifierConfig, run_dir, out_dir, command: str | None = None,
                              progress: bool = True) -> dict:
    """Train, fit the temperature on val, export float16 weights, then score the *exported* model.

    Every choice (epochs, temperature, TTA on or off for the headline) is made on validation; the
    test split is scored once at the end, with and without TTA, and both are reported.
    """
    import platform

    import tensorflow as tf

    from ..evaluation.calibration import apply_temperature, fit_temperature
    from ..evaluation.classification import classification_report_dict
    from ..predict import StageTwo

    started = time.time()
    model, record, data = train_classifier(config, run_dir, progress=progress)
    export_classifier(model, config, out_dir)
    shipped = StageTwo.load(out_dir)
    results = {}
    for split in ("val", "test"):
        inputs, labels, _ = data[split]
        for tta in (False, True):
            results[(split, tta)] = (labels, shipped.raw_probabilities(inputs, tta=tta))
    temperature = {tta: fit_temperature(*results[("val", tta)]) for tta in (False, True)}
    val_scores = {tta: classification_report_dict(results[("val", tta)][0],
                                                  apply_temperature(results[("val", tta)][1], temperature[tta]))
                  for tta in (False, True)}
    use_tta = val_scores[True]["balanced_accuracy"] > val_scores[False]["balanced_accuracy"]
    export_classifier(model, config, out_dir, temperature=temperature[False])
    spec_path = Path(out_dir) / "model.json"
    spec = json.loads(spec_path.read_text())
    spec["temperature_tta"] = temperature[True]
    spec["tta_recommended"] = bool(use_tta)
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    test = {}
    for tta in (False, True):
        labels, probs = results[("test", tta)]
        test["tta" if tta else "plain"] = classification_report_dict(labels, apply_temperature(probs, temperature[tta]))
        test["tta" if tta else "plain"]["ece_before_temperature"] = classification_report_dict(labels, probs)[
            "expected_calibration_error"]
    save_predictions(Path(run_dir) / PREDICTIONS_FILE, data, results, temperature)
    crops_used = float(np.mean(data["test"][2]["used_mask"])) if config.source == "crop" else 0.0
    metrics = {
        "model": "classifier",
        "command": command or f"skinlib train-classifier --out {out_dir} --run-dir {run_dir}",
        "config": asdict(config),
        "train_seconds": record["train_seconds"],
        "best_val_balanced_accuracy_during_training": record["best_val_balanced_accuracy"],
        "history": record["history"],
        "temperature": temperature[False],
        "temperature_tta": temperature[True],
        "tta_chosen_on_val": bool(use_tta),
        "val": {"plain": val_scores[False], "tta": val_scores[True]},
        "test": test,
        "test_fraction_with_lesion_crop": crops_used,
        "environment": {"python": platform.python_version(), "tensorflow": tf.__version__,
                        "keras": keras.__version__, "machine": platform.machine()},
    }
    metrics["total_seconds"] = round(time.time() - started, 1)  # crops, features, training and scoring
    Path(out_dir, "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return metrics


# ------------------------------------------------------------------------------- course helpers


def parse_phases(text: str) -> tuple:
    """"0:4:1e-3,2:6:3e-4" -> ((0, 4, 0.001), (2, 6, 0.0003)): stages unfrozen, epochs, learning rate."""
    try:
        return tuple((int(s), int(e), float(r)) for s, e, r in (part.split(":") for part in text.split(",")))
    except ValueError:
        raise ValueError(f"phases {text!r}: expected STAGES:EPOCHS:RATE[,...], e.g. 0:4:1e-3,2:6:3e-4") from None


def config_from_metrics(metrics_path, **overrides) -> ClassifierConfig:
    """The config a shipped model was trained with (its `metrics.json`), optionally changed: to retrain it."""
    from .recipes import config_from_metrics as read

    return read(ClassifierConfig, metrics_path, **overrides)


def phase_plan(config: ClassifierConfig) -> list[dict]:
    """Per phase: stages unfrozen, epochs, learning rate and how many weights actually learn.

    Counts only what lies above `cache_at` (below it everything stays frozen for the cache).
    Builds the model without ImageNet weights: only the shapes matter here.
    """
    from ..models.classifier import build_classifier

    model = build_classifier((config.image_size, config.image_size, 3), backbone=config.backbone,
                             backbone_weights=None, attention=config.attention, dropout=config.dropout)
    _, upper = split_model(model, config.cache_at)
    total = int(sum(np.prod(w.shape) for w in model.weights))
    rows = []
    for phase, (stages, epochs, rate) in enumerate(config.phases):
        unfreeze(model, config, stages)
        trainable = int(sum(np.prod(w.shape) for w in upper.trainable_weights))
        rows.append({"phase": phase, "stages_unfrozen": int(stages), "epochs": int(epochs), "learning_rate": rate,
                     "trainable_weights": trainable, "share_of_model": trainable / total})
    return rows


def train_and_score(config: ClassifierConfig, run_dir, data: dict | None = None, progress: bool = False) -> dict:
    """Train (see `train_classifier`) and score the best checkpoint on validation only: for experiments.

    Returns the history, the validation report (`classification_report_dict`), the seconds taken and
    the stage-2 data, so several runs on the same images (e.g. one per loss) share crops and features.
    """
    from ..evaluation.classification import classification_report_dict

    started = time.time()
    data = data or stage2_inputs(config, splits=("train", "val"), progress=progress)  # never the test split
    model, record, data = train_classifier(config, run_dir, data=data, progress=progress)
    val_x, val_y, _ = data["val"]
    probs = model.predict(val_x.astype(np.float32), batch_size=64, verbose=0)
    return {"history": record["history"], "val": classification_report_dict(val_y, probs), "probs": probs,
            "seconds": round(time.time() - started, 1), "data": data}
