"""Stage-2 training end to end at toy scale: phases, checkpoints, export, and tf.distribute."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from skinlib.training.classifier import ClassifierConfig, make_strategy, train_classifier
    config = ClassifierConfig(source="full", image_size=64, train_limit=28, val_limit=14, train_views=2,
                              phases=((0, 1, 1e-3), (1, 1, 3e-4)), cache=False, batch_size=8,
                              distribute=sys.argv[2] or None)
    replicas = make_strategy(config.distribute).num_replicas_in_sync
    model, record, data = train_classifier(config, sys.argv[1], progress=False)
    print(json.dumps({"replicas": replicas, "epochs": len(record["history"]),
                      "best": record["best_val_balanced_accuracy"]}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["", "mirrored"])
def test_tiny_training_runs_and_resumes(strategy, data_dir, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "SKINLIB_DATA": str(data_dir), "SKINLIB_CACHE": str(tmp_path / "cache")}
    first = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(run), strategy], capture_output=True, text=True, env=env, timeout=600
    )
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert result["replicas"] == (2 if strategy else 1)
    assert result["epochs"] == 2 and 0 <= result["best"] <= 1
    assert (run / "phase0.weights.h5").is_file() and (run / "phase1.weights.h5").is_file()
    # a rerun finds both phases done and trains nothing more
    second = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(run), strategy], capture_output=True, text=True, env=env, timeout=600
    )
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout.strip().splitlines()[-1])
    assert again["epochs"] == 2  # history kept, nothing added
    assert again["best"] == result["best"]  # and the best score is the one the finished phases reached


def test_a_resumed_run_keeps_the_best_score_and_epochs_of_its_finished_phases(tmp_path):
    """Interrupted after phase 0: the rerun must beat phase 0's best before it may overwrite its checkpoint."""
    import numpy as np

    from skinlib.training.classifier import BEST_SCORE_FILE, _progress_so_far, _write_progress

    assert _progress_so_far(tmp_path) == ([], -np.inf, 0.0)
    history = [{"phase": 0, "epoch": 0, "loss": 1.0, "val_balanced_accuracy": 0.5}]
    _write_progress(tmp_path, history, 0.5, 12.34)
    (tmp_path / BEST_SCORE_FILE).write_text(json.dumps({"val_balanced_accuracy": 0.5}))
    assert _progress_so_far(tmp_path) == (history, 0.5, 12.3)
    (tmp_path / BEST_SCORE_FILE).unlink()  # a run dir written before best.json existed
    assert _progress_so_far(tmp_path)[1] == 0.5


class ScriptedModel:
    """Stands in for the trained part of the classifier: each predict returns the next scripted probabilities."""

    def __init__(self, probabilities):
        self.probabilities, self.stop_training, self.saved = list(probabilities), False, 0

    def predict(self, features, batch_size=None, verbose=0):
        return self.probabilities.pop(0)

    def save_weights(self, path):
        self.saved += 1


def probabilities_with_recall(labels, recall):
    """Probabilities whose argmax is right for the first `recall` share of every class's images."""
    import numpy as np

    predicted = labels.copy()
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        wrong = members[int(round(recall * len(members))) :]
        predicted[wrong] = (label + 1) % 7
    return np.eye(7, dtype="float32")[predicted]


def run_phase(scores, best_before, patience, tmp_path):
    """Feed one phase's validation scores to the checkpoint; returns (epochs run, saves, best)."""
    import numpy as np

    from skinlib.training.classifier import BalancedAccuracyCheckpoint

    labels = np.repeat(np.arange(7), 10)
    model = ScriptedModel([probabilities_with_recall(labels, score) for score in scores])
    checkpoint = BalancedAccuracyCheckpoint(None, labels, tmp_path, patience, best=best_before)
    checkpoint.set_model(model)
    epochs = 0
    for epoch in range(len(scores)):
        checkpoint.on_epoch_end(epoch, {})
        epochs += 1
        if model.stop_training:
            break
    return epochs, model.saved, checkpoint.best


def test_a_phase_that_starts_below_the_previous_peak_may_climb_past_it(tmp_path):
    """The dip at a phase's start is not a run of misses: only epochs that stop improving the phase count."""
    epochs, saved, best = run_phase([0.5, 0.6, 0.7, 0.8, 0.9], best_before=0.8, patience=2, tmp_path=tmp_path)
    assert (epochs, saved, best) == (5, 1, pytest.approx(0.9))
    from skinlib.training.classifier import BEST_SCORE_FILE

    assert json.loads((tmp_path / BEST_SCORE_FILE).read_text())["val_balanced_accuracy"] == pytest.approx(0.9)


def test_a_phase_that_stops_improving_stops_after_patience_epochs(tmp_path):
    epochs, saved, best = run_phase([0.5, 0.4, 0.5, 0.9], best_before=0.8, patience=2, tmp_path=tmp_path)
    assert (epochs, saved, best) == (3, 0, pytest.approx(0.8))  # 0.4 and 0.5 do not beat the phase's 0.5


def test_patience_flag_reaches_the_config_and_rejects_zero(capsys):
    from skinlib.cli import build_parser, train_classifier_config
    from skinlib.training.classifier import ClassifierConfig

    assert train_classifier_config(["--patience", "8"]).patience == 8
    assert train_classifier_config([]).patience == ClassifierConfig().patience
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train-classifier", "--patience", "0"])
    assert "must be 1 or more" in capsys.readouterr().err


def test_backbone_flag_offers_every_backbone_the_model_builds(capsys):
    from skinlib.cli import build_parser, train_classifier_config
    from skinlib.models.classifier import BACKBONE_TITLES, BACKBONES
    from skinlib.training.recipe import BACKBONES as BACKBONE_CHOICES

    assert BACKBONE_CHOICES == BACKBONES  # spelled out in the CLI so --help does not import Keras
    assert set(BACKBONE_TITLES) == set(BACKBONES)  # the model card names whichever backbone was trained
    assert train_classifier_config([]).backbone == "lite0"
    assert train_classifier_config(["--backbone", "lite2"]).backbone == "lite2"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train-classifier", "--backbone", "resnet50"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_end_to_end_training_moves_every_stage_of_a_random_backbone(data_dir, tmp_path, monkeypatch):
    """`cache_at="none"` (the random_init row): nothing is frozen or cached, so the stem, the first stage and their
    BatchNorm statistics learn too, which the cached recipe can never do."""
    import numpy as np

    from skinlib.models.classifier import backbone_layer_names
    from skinlib.training.classifier import ClassifierConfig, build_for, phase_plan, train_classifier

    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))
    config = ClassifierConfig(
        data_dir=str(data_dir),
        source="full",
        image_size=64,
        train_limit=28,
        val_limit=14,
        backbone_weights=None,
        cache_at="none",
        phases=((7, 2, 1e-3),),
        batch_size=8,
    )
    import keras

    keras.utils.set_random_seed(config.seed)
    initial = build_for(config)
    model, record, _ = train_classifier(config, tmp_path / "run", progress=False)
    assert len(record["history"]) == 2 and 0 <= record["best_val_balanced_accuracy"] <= 1
    first_stage = [name for name in backbone_layer_names(model) if name.startswith(("stem", "block1"))]
    assert first_stage, "the backbone has no stem or stage-1 layers to check"
    moved = {
        name: any(
            not np.allclose(a, b)
            for a, b in zip(model.get_layer(name).get_weights(), initial.get_layer(name).get_weights())
        )
        for name in first_stage
        if model.get_layer(name).weights
    }
    assert all(moved.values()), f"stage-1 layers that did not learn: {[n for n, m in moved.items() if not m]}"
    plan = phase_plan(config)
    assert plan[0]["share_of_model"] > 0.95  # every weight but BatchNorm's moving statistics trains


def test_batchnorm_recalibration_sets_the_moving_statistics_to_the_current_batch_statistics():
    """Precise BN: after it, inference normalises with the statistics of the current weights, not stale ones."""
    import keras
    import numpy as np

    from skinlib.training.classifier import recalibrate_batchnorm

    inputs = keras.Input((3,))
    norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, norm(keras.layers.Dense(3, kernel_initializer="identity")(inputs)))
    images = np.random.default_rng(0).normal(5.0, 2.0, (96, 3)).astype(np.float32)
    assert np.allclose(norm.moving_mean.numpy(), 0)  # stale: nothing seen yet
    assert recalibrate_batchnorm(model, images, batch_size=32) == 1
    batches = images.reshape(3, 32, 3)
    assert np.allclose(norm.moving_mean.numpy(), batches.mean(axis=1).mean(axis=0), atol=1e-4)
    assert np.allclose(norm.moving_variance.numpy(), batches.var(axis=1).mean(axis=0), rtol=1e-3)
    assert norm.momentum == 0.99  # restored
    norm.trainable = False  # a frozen (pretrained) BatchNorm is left alone
    before = norm.moving_mean.numpy().copy()
    assert recalibrate_batchnorm(model, images + 10, batch_size=32) == 0
    assert np.allclose(norm.moving_mean.numpy(), before)
