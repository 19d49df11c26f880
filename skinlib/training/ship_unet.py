"""Train, ship and score the stage-1 U-Net in one reproducible step (`skinlib train-unet`)."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict

from ..data import load_split_frame
from ..models.folder import ModelFolder
from ..segmentation.segmenter import ClassicalSegmenter, UNetSegmenter, evaluate_segmenter
from .unet import export_unet, train_unet


def split_scores(segmenter, frame, split: str, progress: bool = True) -> dict:
    """Scores of one segmenter on one split of the shared split, at the masks' own resolution."""
    part = frame[frame["split"] == split].sort_values("image_id")
    scores = evaluate_segmenter(segmenter, part["image_path"], part["mask_path"], progress=progress)
    scores.pop("per_image")
    return scores


def train_and_ship_unet(config, run_dir, out_dir, command: str | None = None, progress: bool = True) -> dict:
    """Train on train, select on val, export float16 weights, then score the *exported* model on val and test.

    Test is scored once, after every choice is made. The classical method is scored beside it on the same
    images so the two are always compared like for like.
    """
    import keras
    import tensorflow as tf

    started = time.time()
    model, history = train_unet(config, run_dir, progress=progress)
    train_seconds = time.time() - started
    export_unet(model, config, out_dir)
    shipped = UNetSegmenter.load(out_dir)
    frame = load_split_frame(config.data_dir, config.split_path)
    metrics = {
        "model": "unet",
        "command": command or f"skinlib train-unet --out {out_dir} --run-dir {run_dir}",
        "config": asdict(config),
        "best_epoch": int(history["val_dice"].idxmax()),
        "history_val_dice": [round(v, 4) for v in history["val_dice"]],
        "train_seconds": round(train_seconds, 1),
        "val": split_scores(shipped, frame, "val", progress),
        "test": split_scores(shipped, frame, "test", progress),
        "classical_test": split_scores(ClassicalSegmenter(), frame, "test", progress),
        "evaluated_at": "each mask's own resolution (200x150 for ../shared data), after post-processing",
        "environment": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "machine": platform.machine(),
        },
    }
    ModelFolder(out_dir, "unet").write_metrics(metrics)
    return metrics
