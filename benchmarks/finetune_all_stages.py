"""End-to-end fine-tuning on this CPU: how fast, and does it lift validation balanced accuracy?

    python benchmarks/finetune_all_stages.py --data ../shared/data/ham10000 [--epochs 12] [--rate 1e-4]

The shipped recipe trains on cached features, so backbone stages 1-3 never change. This script starts from the
shipped classifier and fine-tunes *every* stage (BatchNorm frozen, as in `set_trainable_blocks`) on freshly
augmented lesion crops each epoch, with the shipped loss (focal, class-weighted) and a cosine learning rate.
After each epoch it scores the validation split (never test). It records seconds per epoch (training speed
end to end) and validation balanced accuracy per epoch, in benchmarks/results/finetune_all_stages.json.
It changes nothing in models/.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import keras
import numpy as np

from skinlib.data.tfdata import make_dataset
from skinlib.evaluation.classification import balanced_accuracy
from skinlib.models.classifier import set_trainable_blocks
from skinlib.runtime import DEFAULT_CLASSIFIER, StageTwo
from skinlib.training.classifier import config_from_metrics, make_loss, stage2_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--rate", type=float, default=1e-4, help="peak learning rate (Adam, cosine decay)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/finetune_all_stages.json")
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    config = config_from_metrics(DEFAULT_CLASSIFIER / "metrics.json", data_dir=args.data)
    data = stage2_inputs(config, splits=("train", "val"))  # never the test split
    (train_x, train_y, _), (val_x, val_y, _) = data["train"], data["val"]
    model = StageTwo.load().model

    def val_score() -> float:
        return float(balanced_accuracy(val_y, model.predict(val_x.astype(np.float32), batch_size=128, verbose=0)))

    history = [{"epoch": 0, "val_balanced_accuracy": val_score(), "note": "the shipped model, before fine-tuning"}]
    set_trainable_blocks(model, 7)  # every stage; BatchNorm stays frozen
    steps = int(np.ceil(len(train_x) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(args.rate, decay_steps=args.epochs * steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=make_loss(config, train_y))
    batches = make_dataset(train_x, train_y, training=True, batch_size=args.batch_size, seed=args.seed).repeat()
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        fit = model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=2)
        seconds = time.perf_counter() - started
        history.append(
            {
                "epoch": epoch,
                "loss": float(fit.history["loss"][0]),
                "train_seconds": round(seconds, 1),
                "train_images_per_second": round(len(train_x) / seconds, 1),
                "val_balanced_accuracy": val_score(),
            }
        )
        print(history[-1], flush=True)
    best = max(history, key=lambda h: h["val_balanced_accuracy"])
    results = {
        "command": "python benchmarks/finetune_all_stages.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out"),
        "start": "skinlib/shipped/classifier (the shipped model)",
        "image_size": config.image_size,
        "train_images": int(len(train_x)),
        "val_images": int(len(val_x)),
        "median_train_images_per_second": float(np.median([h["train_images_per_second"] for h in history[1:]])),
        "shipped_val_balanced_accuracy": history[0]["val_balanced_accuracy"],
        "best_val_balanced_accuracy": best["val_balanced_accuracy"],
        "best_epoch": best["epoch"],
        "history": history,
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "keras": keras.__version__,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"best validation balanced accuracy {best['val_balanced_accuracy']:.4f} at epoch {best['epoch']} "
        f"(shipped: {history[0]['val_balanced_accuracy']:.4f}); wrote {args.out}"
    )


if __name__ == "__main__":
    main()
