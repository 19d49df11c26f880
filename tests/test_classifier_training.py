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
    first = subprocess.run([sys.executable, "-c", SCRIPT, str(run), strategy], capture_output=True, text=True,
                           env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert result["replicas"] == (2 if strategy else 1)
    assert result["epochs"] == 2 and 0 <= result["best"] <= 1
    assert (run / "phase0.weights.h5").is_file() and (run / "phase1.weights.h5").is_file()
    # a rerun finds both phases done and trains nothing more
    second = subprocess.run([sys.executable, "-c", SCRIPT, str(run), strategy], capture_output=True, text=True,
                            env=env, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads(second.stdout.strip().splitlines()[-1])["epochs"] == 2  # history kept, nothing added
