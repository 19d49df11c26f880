"""Stage-2 training: transfer learning in phases on cached frozen-backbone features.

Phases (each `(stages_unfrozen, epochs, learning_rate)`): first only attention and head learn on top
of the frozen ImageNet backbone, then the last backbone stages are unfrozen one by one with lower,
cosine-decaying learning rates. The part below `cache_at` stays frozen throughout, which is what lets
its output be cached (see `skinlib.training.features`). Checkpoint and early stopping follow
validation balanced accuracy (the ISIC 2018 metric), never test. `members > 1` trains that many seeds
of the same recipe and ships them as one averaging ensemble (`train_members`).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import keras
import numpy as np

from ..data import CLASSES, class_weights, load_split_frame
from ..evaluation.calibration import apply_temperature, fit_temperature, loss_prior
from ..evaluation.classification import balanced_accuracy, classification_report_dict
from ..evaluation.referral import REFERRAL_SENSITIVITY, referral_record
from ..models.folder import ClassifierSpec, ClassPriorSpec, ModelFolder, ReferralSpec
from ..runtime import StageTwo, Views
from ..segmentation.segmenter import DEFAULT_UNET, UNetSegmenter
from .features import FeatureSequence, cached_extract, image_digest, split_model
from .recipe import LOSSES, ClassifierConfig
from .recipe import config_from_metrics as read


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
        picked = (
            part.groupby("dx", group_keys=False)
            .apply(lambda g: g.sample(n=max(1, round(limit * len(g) / len(part))), random_state=seed))
            .index
        )
        part = part.loc[picked]  # by index: newer pandas drops the grouping column from apply's result
    return part.sort_values("image_id").reset_index(drop=True)


def stage2_inputs(
    config: ClassifierConfig, splits=("train", "val", "test"), progress: bool = True, limit: int | None = None
) -> dict:
    """Per split: (uint8 inputs N x S x S x 3, labels, frame) as stage 1 hands them to stage 2.

    `limit` (quick checks): a stratified sample of at most that many images of every split, test included.
    """
    # deferred: loads TensorFlow
    from ..segmentation.crops import make_stage2_inputs

    frame = load_split_frame(config.data_dir, config.split_path)
    segmenter = UNetSegmenter.load(config.segmenter_dir or DEFAULT_UNET) if config.source == "crop" else None
    limits = {"train": config.train_limit, "val": config.val_limit, "test": None}
    if limit is not None:
        limits = dict.fromkeys(limits, limit)
    out = {}
    for name in splits:
        part = _subset(frame, name, limits[name], config.seed)
        images, info = make_stage2_inputs(
            part, config.image_size, config.source, segmenter, config.margin, cache=config.cache, progress=progress
        )
        out[name] = (
            images,
            part["label"].to_numpy(),
            part.assign(used_mask=info["used_mask"].to_numpy(), crop_note=info["reason"].to_numpy()),
        )
    return out


def loss_class_weights(config: ClassifierConfig, train_labels) -> np.ndarray | None:
    """Each class's weight in the configured loss (from the training labels' counts); None: unweighted."""
    # deferred: loads Keras
    from ..losses import focal_alpha_from_class_weights

    if config.loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, not {config.loss!r}")
    if config.loss == "ce":
        return None
    weights, _ = class_weights(train_labels, len(CLASSES))
    return focal_alpha_from_class_weights(weights, len(CLASSES))


def class_prior_spec(config: ClassifierConfig) -> dict:
    """The training mix and the mix the loss implied ({"training": [...], "model": [...]}, in `CLASSES` order)
    for a recipe, from its training split alone (no images read)."""

    train = _subset(load_split_frame(config.data_dir, config.split_path), "train", config.train_limit, config.seed)
    counts = np.bincount(train["label"].to_numpy(), minlength=len(CLASSES)).astype(np.float64)
    if np.any(counts == 0):
        missing = [CLASSES[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(f"the training split has no image of {missing}: no class prior can be stated for them")
    model = loss_prior(counts, loss_class_weights(config, train["label"].to_numpy()))
    return {
        "classes": list(CLASSES),
        "training": (counts / counts.sum()).tolist(),
        "model": model.tolist(),
        "training_images": int(counts.sum()),
        "model_from": f"training counts x the {config.loss} loss's class weights",
    }


def make_loss(config: ClassifierConfig, train_labels):
    """The configured loss; class weighting comes from the training labels' counts."""
    # deferred: loads Keras
    from ..losses import CategoricalFocalLoss, WeightedCategoricalCrossentropy

    alpha = loss_class_weights(config, train_labels)
    if config.loss == "focal":
        return CategoricalFocalLoss(gamma=config.gamma, alpha=alpha)
    if config.loss == "weighted_ce":
        return WeightedCategoricalCrossentropy(alpha)
    return keras.losses.CategoricalCrossentropy()


#: Beside `best.weights.h5`: the validation score of those weights, so a resumed run knows what to beat.
BEST_SCORE_FILE = "best.json"


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

        probs = self.model.predict(self.features, batch_size=256, verbose=0)
        score = balanced_accuracy(self.labels, probs)
        logs = logs if logs is not None else {}
        logs["val_balanced_accuracy"] = score
        logs["val_accuracy"] = float(np.mean(probs.argmax(1) == self.labels))
        if score > self.best:
            self.best = score
            (self.full_model or self.model).save_weights(str(self.run_dir / "best.weights.h5"))
            (self.run_dir / BEST_SCORE_FILE).write_text(json.dumps({"val_balanced_accuracy": score}) + "\n")
        if score > self.phase_best:
            self.phase_best, self.misses = score, 0
        else:
            self.misses += 1
            if self.misses >= self.patience:
                self.model.stop_training = True


class BatchNormRecalibration(keras.callbacks.Callback):
    """At the end of every epoch, set each trainable BatchNorm layer's moving statistics to the average batch
    statistics of a fixed sample of training images under the *current* weights ("precise BN").

    Why: a network trained from random weights changes fast, and moving averages collected while it changed
    describe the weights of earlier steps. At inference BatchNorm then normalises with stale statistics and
    every image can get the same class, while the same weights with batch statistics tell the classes apart
    (seen on the random_init row's first checkpoint). Listed before the checkpoint callback, so the epoch is
    scored and saved with recalibrated statistics.
    """

    def __init__(self, images: np.ndarray, batch_size: int = 64):
        super().__init__()
        self.images, self.batch_size = np.asarray(images, np.float32), batch_size

    def on_epoch_end(self, epoch, logs=None):
        recalibrate_batchnorm(self.model, self.images, self.batch_size)


def recalibrate_batchnorm(model, images: np.ndarray, batch_size: int = 64) -> int:
    """Replace the moving mean and variance of `model`'s trainable BatchNorm layers by the mean of their batch
    statistics over `images` (forward passes in training mode; no weight changes). Returns the layers reset.

    Batch k updates the moving averages with momentum k / (k + 1), which makes them the running mean of the
    batches seen so far; the momentum is restored afterwards."""
    norms = [
        layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    saved = [layer.momentum for layer in norms]
    try:
        for k, start in enumerate(range(0, len(images), batch_size)):
            for layer in norms:
                layer.momentum = k / (k + 1)
            model(images[start : start + batch_size], training=True)
    finally:
        for layer, momentum in zip(norms, saved):
            layer.momentum = momentum
    return len(norms)


def _all_layers(model):
    """Every layer of a model, nested models' layers included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def build_for(config: ClassifierConfig):
    # deferred: loads Keras
    from ..models.classifier import build_classifier

    return build_classifier(
        (config.image_size, config.image_size, 3),
        backbone=config.backbone,
        backbone_weights=config.backbone_weights,
        attention=config.attention,
        dropout=config.dropout,
        colour_constancy=config.colour_constancy,
    )


def unfreeze(model, config: ClassifierConfig, stages: int) -> None:
    """Train the last `stages` backbone stages; a random backbone also learns their BatchNorm statistics,
    which mean nothing yet (see `set_trainable_blocks`)."""
    # deferred: loads Keras
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


def feature_cache_key(config: ClassifierConfig) -> tuple:
    """What the cached frozen-backbone features depend on besides the images: everything below `cache_at`.
    (Colour constancy joins the key only when on, so caches made before it existed stay valid.)"""
    key = (config.backbone, config.backbone_weights, config.cache_at, config.image_size)
    return key + (("colour_constancy",) if config.colour_constancy else ())


def augmentation_key(config: ClassifierConfig) -> tuple:
    """What the augmented training views add to their cache key: nothing for the standard augmentation (so
    caches made before `augment` existed stay valid), its name otherwise."""
    return () if config.augment == "standard" else (("augmentation", config.augment),)


def training_augmentation(config: ClassifierConfig):
    """The `skinlib.data.tfdata.Augmentation` that `config.augment` names."""
    # deferred: loads TensorFlow
    from ..data.tfdata import Augmentation

    return Augmentation.named(config.augment)


#: `cache_at` value for end-to-end training: nothing frozen below the head's input, so nothing is cached.
END_TO_END = "none"
#: Training images whose batch statistics reset a random backbone's BatchNorm after every epoch.
BATCHNORM_SAMPLE = 1024


def _train_in_scope(config: ClassifierConfig, run_dir: Path, data: dict, progress: bool):
    model = build_for(config)
    if config.cache_at == END_TO_END:
        return _train_end_to_end(config, run_dir, data, model, progress)
    lower, upper = split_model(model, config.cache_at)
    cache_dir = None
    if config.cache:
        # deferred: loads TensorFlow
        from ..data.tfdata import default_cache_dir

        cache_dir = default_cache_dir()
    key = feature_cache_key(config)
    train_x, train_y, _ = data["train"]
    val_x, val_y, _ = data["val"]
    train_features = cached_extract(
        cache_dir,
        key + ("augment", image_digest(train_x), config.train_views, config.seed) + augmentation_key(config),
        lower,
        train_x,
        config.train_views,
        "augment",
        seed=config.seed,
        progress=progress,
        augmentation=training_augmentation(config),
    )
    val_features = cached_extract(
        cache_dir, key + ("dihedral", image_digest(val_x), 1), lower, val_x, 1, "dihedral", progress=progress
    )[0]

    def batches(phase):
        return FeatureSequence(train_features, train_y, len(CLASSES), config.batch_size, seed=config.seed + phase), {}

    return (
        *_run_phases(config, run_dir, model, upper, batches, val_features, val_y, make_loss(config, train_y), progress),
        data,
    )


def _train_end_to_end(config: ClassifierConfig, run_dir: Path, data: dict, model, progress: bool):
    """Every stage of the phase's depth trains on freshly augmented crops each epoch (`cache_at="none"`).

    Why: the cached recipe keeps the stages below `cache_at` frozen, which is free for ImageNet weights but
    leaves a randomly initialised backbone with random features it can never improve (the old `random_init`
    row scored 1/7). End to end, nothing is frozen and nothing can be cached: each epoch costs a full forward
    and backward pass of the network on every training image.
    """
    # deferred: loads TensorFlow
    from ..data.tfdata import make_dataset

    train_x, train_y, _ = data["train"]
    val_x, val_y, _ = data["val"]
    steps = int(np.ceil(len(train_x) / config.batch_size))

    sample = np.random.default_rng(config.seed).choice(len(train_x), min(len(train_x), BATCHNORM_SAMPLE), replace=False)
    callbacks = (
        [BatchNormRecalibration(train_x[np.sort(sample)], config.batch_size)] if config.backbone_weights is None else []
    )  # pretrained BatchNorm stays frozen (`set_trainable_blocks`): nothing to recalibrate

    def batches(phase):
        dataset = make_dataset(
            train_x,
            train_y,
            training=True,
            batch_size=config.batch_size,
            seed=config.seed + phase,
            augmentation=training_augmentation(config),
        )
        return dataset.repeat(), {"steps_per_epoch": steps, "shuffle": False}  # the dataset shuffles itself

    return (
        *_run_phases(
            config,
            run_dir,
            model,
            model,
            batches,
            val_x.astype(np.float32),
            val_y,
            make_loss(config, train_y),
            progress,
            callbacks,
        ),
        data,
    )


def _run_phases(
    config: ClassifierConfig,
    run_dir: Path,
    model,
    trainee,
    batches,
    val_inputs,
    val_y,
    loss,
    progress: bool = True,
    callbacks=(),
):
    """The phases of `config`: unfreeze, compile `trainee` (the part that trains: the upper model on cached
    features, or the whole model), fit with a cosine learning rate, keep the best validation checkpoint.

    `batches(phase)` gives the phase's training data and extra `fit` arguments; `callbacks` run before the
    checkpoint at each epoch's end. Resumable: a finished phase leaves `phase<k>.weights.h5`, which a rerun
    loads instead of training again.
    """
    history, best, seconds_before = _progress_so_far(run_dir)
    started = time.time()
    first_epoch = 0
    for phase, (stages, epochs, rate) in enumerate(config.phases):
        done = run_dir / f"phase{phase}.weights.h5"
        if done.is_file():
            model.load_weights(str(done))
            first_epoch += epochs
            continue
        unfreeze(model, config, stages)
        train_data, fit_arguments = batches(phase)
        steps = fit_arguments.get("steps_per_epoch") or len(train_data)
        schedule = keras.optimizers.schedules.CosineDecay(rate, decay_steps=epochs * steps, alpha=0.05)
        trainee.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
        checkpoint = BalancedAccuracyCheckpoint(val_inputs, val_y, run_dir, config.patience, best, full_model=model)
        fit = trainee.fit(
            train_data,
            epochs=first_epoch + epochs,
            initial_epoch=first_epoch,
            verbose=2 if progress else 0,
            callbacks=[*callbacks, checkpoint],
            **fit_arguments,
        )
        best = checkpoint.best
        history += [
            {"phase": phase, "epoch": first_epoch + i, **{k: float(v[i]) for k, v in fit.history.items()}}
            for i in range(len(fit.history["loss"]))
        ]
        model.load_weights(str(run_dir / "best.weights.h5"))  # next phase starts from the best so far
        model.save_weights(str(done))
        _write_progress(run_dir, history, best, seconds_before + time.time() - started)
        first_epoch += epochs
    model.load_weights(str(run_dir / "best.weights.h5"))
    return model, _write_progress(run_dir, history, best, seconds_before + time.time() - started)


def _progress_so_far(run_dir: Path) -> tuple[list, float, float]:
    """(history, best validation score, training seconds) of the finished phases of an interrupted run.

    Why: a resumed run must not count from zero, or the first epoch after the resume would overwrite a
    better checkpoint and the record would lose the finished phases' epochs and time.
    """
    history_path, best_path = run_dir / "history.json", run_dir / BEST_SCORE_FILE
    previous = json.loads(history_path.read_text()) if history_path.is_file() else {}
    best = (
        json.loads(best_path.read_text())["val_balanced_accuracy"]
        if best_path.is_file()
        else previous.get("best_val_balanced_accuracy", -np.inf)
    )  # a run dir from before best.json
    return list(previous.get("history", [])), float(best), float(previous.get("train_seconds", 0.0))


def _write_progress(run_dir: Path, history: list, best: float, seconds: float) -> dict:
    """`history.json` after every finished phase: epochs so far, best score, training seconds."""
    record = {"history": history, "best_val_balanced_accuracy": best, "train_seconds": round(seconds, 1)}
    (run_dir / "history.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def member_weights_name(index: int) -> str:
    """The weights file of ensemble member `index`; member 0 keeps the single model's name."""
    return "weights.npz" if index == 0 else f"weights_member{index}.npz"


def export_classifier(models, config: ClassifierConfig, out_dir: str | Path, temperature: float = 1.0) -> Path:
    """Write a shipped classifier folder: `model.json` + one float16 weights file per member.

    `models`: one Keras model, or the list of an ensemble's members (all of the same architecture).
    """
    # deferred: loads Keras
    from ..models.storage import save_compact_weights

    models = list(models) if isinstance(models, (list, tuple)) else [models]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [member_weights_name(i) for i in range(len(models))]
    for model, name in zip(models, names):
        save_compact_weights(model, out_dir / name)
    ensemble = len(models) > 1
    spec = ClassifierSpec(
        classes=CLASSES,
        backbone=config.backbone,
        attention=config.attention,
        colour_constancy=config.colour_constancy,
        dropout=config.dropout,
        image_size=config.image_size,
        source=config.source,
        margin=config.margin,
        temperature=temperature,
        weights=names[0],
        training_seed=config.seed,
        members=tuple(names) if ensemble else None,
        member_seeds=tuple(config.seed + i for i in range(len(models))) if ensemble else None,
    )
    ModelFolder(out_dir, "classifier").write_spec(spec)
    return out_dir


def member_run_dir(run_dir: str | Path, config: ClassifierConfig, index: int) -> Path:
    """Where member `index` keeps its checkpoints: `run_dir` itself for a single model."""
    return Path(run_dir) if config.members == 1 else Path(run_dir) / f"member{index}"


def train_members(config: ClassifierConfig, run_dir, progress: bool = True):
    """Train the `config.members` models of an ensemble (one for a single model), sharing the crops.

    Member i is the same recipe with seed `config.seed + i`: its own augmented views, initial head and
    batch order. Each is resumable on its own (see `train_classifier`). Returns (models, records, data).
    """
    from dataclasses import replace

    data, models, records = None, [], []
    for index in range(config.members):
        member = replace(config, seed=config.seed + index)
        if config.members > 1 and progress:
            print(f"ensemble member {index + 1}/{config.members} (seed {member.seed})", flush=True)
        model, record, data = train_classifier(
            member, member_run_dir(run_dir, config, index), data=data, progress=progress
        )
        models.append(model)
        records.append({"seed": member.seed, **record})
    return models, records, data


PREDICTIONS_FILE = "predictions.npz"


def save_predictions(path: Path, data: dict, results: dict, temperature: dict) -> Path:
    """Calibrated val/test probabilities (plain and TTA) per image: what paired comparisons of runs need."""

    arrays = {}
    for (split, tta), (labels, probs) in results.items():
        arrays[f"{split}_{'tta' if tta else 'plain'}"] = apply_temperature(probs, temperature[tta]).astype(np.float32)
        arrays[f"{split}_labels"] = np.asarray(labels)
        arrays[f"{split}_image_ids"] = data[split][2]["image_id"].to_numpy().astype(str)
        if "lesion_id" in data[split][2]:  # what a bootstrap over lesions resamples
            arrays[f"{split}_lesion_ids"] = data[split][2]["lesion_id"].to_numpy().astype(str)
        arrays[f"temperature_{'tta' if tta else 'plain'}"] = np.float64(temperature[tta])  # scoring elsewhere reuses it
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def train_and_ship_classifier(
    config: ClassifierConfig, run_dir, out_dir, command: str | None = None, progress: bool = True
) -> dict:
    """Train (every member of an ensemble), fit the temperature on val, export float16 weights, then score
    the *exported* model.

    Every choice (epochs, temperature, TTA on or off for the headline) is made on validation; the
    test split is scored once at the end, with and without TTA, and both are reported.
    """
    import platform

    import tensorflow as tf

    started = time.time()
    models, records, data = train_members(config, run_dir, progress=progress)
    export_classifier(models, config, out_dir)
    shipped = StageTwo.load(out_dir)
    results = {}
    for split in ("val", "test"):
        inputs, labels, _ = data[split]
        for views in (Views.single(), Views.dihedral()):
            results[(split, views.is_tta)] = (labels, shipped.raw_probabilities(inputs, views))
    temperature = {tta: fit_temperature(*results[("val", tta)]) for tta in (False, True)}
    calibrated = {
        key: (labels, apply_temperature(probs, temperature[key[1]])) for key, (labels, probs) in results.items()
    }
    val_scores = {tta: classification_report_dict(*calibrated[("val", tta)]) for tta in (False, True)}
    use_tta = val_scores[True]["balanced_accuracy"] > val_scores[False]["balanced_accuracy"]
    try:
        referral = referral_thresholds(calibrated)
    except ValueError as error:  # e.g. a custom split whose validation holds no melanoma: say so, ship no flag
        referral = {"not_fitted": f"{error}; predict reports melanoma_referral = null"}
        warnings.warn(f"melanoma referral threshold not fitted: {error}", stacklevel=2)
    folder = ModelFolder(out_dir, "classifier")  # the weights are final; only the calibration and the flag are added
    folder.write_spec(
        replace(
            folder.read_spec(),
            temperature=temperature[False],
            temperature_tta=temperature[True],
            tta_recommended=bool(use_tta),
            melanoma_referral=None if "not_fitted" in referral else referral_spec(referral),
            class_prior=ClassPriorSpec.from_dict(class_prior_spec(config)),
        )
    )  # for --prior (`skinlib fit-prior` scores it)
    test = {}
    for tta in (False, True):
        labels, probs = results[("test", tta)]
        test["tta" if tta else "plain"] = classification_report_dict(*calibrated[("test", tta)])
        test["tta" if tta else "plain"]["ece_before_temperature"] = classification_report_dict(labels, probs)[
            "expected_calibration_error"
        ]
    save_predictions(Path(run_dir) / PREDICTIONS_FILE, data, results, temperature)
    crops_used = float(np.mean(data["test"][2]["used_mask"])) if config.source == "crop" else 0.0
    metrics = {
        "model": "classifier",
        "command": command or f"skinlib train-classifier --out {out_dir} --run-dir {run_dir}",
        "config": asdict(config),
        "train_seconds": round(sum(r["train_seconds"] for r in records), 1),
        "best_val_balanced_accuracy_during_training": records[0]["best_val_balanced_accuracy"],
        "history": records[0]["history"],
        **(
            {
                "members": [
                    {
                        "seed": r["seed"],
                        "train_seconds": r["train_seconds"],
                        "best_val_balanced_accuracy_during_training": r["best_val_balanced_accuracy"],
                        "epochs": len(r["history"]),
                        **_member_val_scores(shipped, i, data),
                    }
                    for i, r in enumerate(records)
                ]
            }
            if len(records) > 1
            else {}
        ),
        "temperature": temperature[False],
        "temperature_tta": temperature[True],
        "tta_chosen_on_val": bool(use_tta),
        "val": {"plain": val_scores[False], "tta": val_scores[True]},
        "test": test,
        "melanoma_referral": referral,
        "test_fraction_with_lesion_crop": crops_used,
        "environment": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "machine": platform.machine(),
        },
    }
    metrics["total_seconds"] = round(time.time() - started, 1)  # crops, features, training and scoring
    folder.write_metrics(metrics)
    return metrics


def referral_thresholds(calibrated: dict, sensitivity: float | None = None) -> dict:
    """Fit the melanoma referral thresholds (plain and TTA) on validation.

    `calibrated`: {(split, tta): (labels, calibrated probabilities)} for split "val" (fit) and optionally
    "test" (scored once with the fixed threshold, for metrics.json). Returns {"plain": ..., "tta": ...}.
    """

    sensitivity = REFERRAL_SENSITIVITY if sensitivity is None else float(sensitivity)
    record = {}
    for tta in (False, True):
        test = calibrated.get(("test", tta), (None, None))
        record["tta" if tta else "plain"] = referral_record(
            *calibrated[("val", tta)], sensitivity, test_labels=test[0], test_probs=test[1]
        )
    return record


def referral_spec(record: dict) -> ReferralSpec:
    """The part of `referral_thresholds`'s record that model.json keeps: what predict needs, no scores."""
    return ReferralSpec(
        target_sensitivity_on_val=record["plain"]["target_sensitivity_on_val"],
        threshold=record["plain"]["threshold"],
        threshold_tta=record["tta"]["threshold"],
    )


def _member_val_scores(ensemble, index: int, data: dict) -> dict:
    """One member's own validation balanced accuracy and macro AUC (uncalibrated: argmax and ranks only)."""

    inputs, labels, _ = data["val"]
    report = classification_report_dict(labels, ensemble.member_probabilities(index, inputs))
    return {"val_balanced_accuracy": report["balanced_accuracy"], "val_macro_roc_auc": report["macro_roc_auc"]}


# ------------------------------------------------------------------------------- course helpers


def config_from_metrics(metrics_path, **overrides) -> ClassifierConfig:
    """The config a shipped model was trained with (its `metrics.json`), optionally changed: to retrain it."""

    return read(ClassifierConfig, metrics_path, **overrides)


def phase_plan(config: ClassifierConfig) -> list[dict]:
    """Per phase: stages unfrozen, epochs, learning rate and how many weights actually learn.

    Counts only what lies above `cache_at` (below it everything stays frozen for the cache; `"none"`: the
    whole network, trained end to end).
    Builds the model without ImageNet weights: only the shapes matter here.
    """
    # deferred: loads Keras
    from ..models.classifier import build_classifier

    model = build_classifier(
        (config.image_size, config.image_size, 3),
        backbone=config.backbone,
        backbone_weights=None,
        attention=config.attention,
        dropout=config.dropout,
        colour_constancy=config.colour_constancy,
    )
    upper = model if config.cache_at == END_TO_END else split_model(model, config.cache_at)[1]
    total = int(sum(np.prod(w.shape) for w in model.weights))
    rows = []
    for phase, (stages, epochs, rate) in enumerate(config.phases):
        unfreeze(model, config, stages)
        trainable = int(sum(np.prod(w.shape) for w in upper.trainable_weights))
        rows.append(
            {
                "phase": phase,
                "stages_unfrozen": int(stages),
                "epochs": int(epochs),
                "learning_rate": rate,
                "trainable_weights": trainable,
                "share_of_model": trainable / total,
            }
        )
    return rows


def train_and_score(config: ClassifierConfig, run_dir, data: dict | None = None, progress: bool = False) -> dict:
    """Train (see `train_classifier`) and score the best checkpoint on validation only: for experiments.

    Returns the history, the validation report (`classification_report_dict`), the seconds taken and
    the stage-2 data, so several runs on the same images (e.g. one per loss) share crops and features.
    """

    started = time.time()
    data = data or stage2_inputs(config, splits=("train", "val"), progress=progress)  # never the test split
    model, record, data = train_classifier(config, run_dir, data=data, progress=progress)
    val_x, val_y, _ = data["val"]
    probs = model.predict(val_x.astype(np.float32), batch_size=64, verbose=0)
    return {
        "history": record["history"],
        "val": classification_report_dict(val_y, probs),
        "probs": probs,
        "seconds": round(time.time() - started, 1),
        "data": data,
    }
