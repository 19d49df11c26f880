"""Latency of `predict` per image on this machine: stage 1 + stage 2, without and with TTA (8 dihedral views,
and 16 augmented views where the classifier has its `skinlib fit-tta` temperature).

    python benchmarks/predict_latency.py [--images 32] [--repeats 3] [--model DIR] [--no-novelty]

Each image goes through the whole dual-stage pipeline alone (batch 1, as `skinlib predict` runs it):
U-Net mask, post-processing, lesion crop, classifier (1 view, 8 with --tta, 16 with --tta --tta-augmented),
calibration.
Reading the file is excluded. Results go to benchmarks/results/predict_latency.json. `--model` times another
classifier folder (e.g. an ensemble from `train-classifier --members 3`: one forward pass per member).
`--no-novelty` leaves out the novelty check (`skinlib fit-novelty`), to see what it costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from skinlib.data import load_split_frame, read_image
from skinlib.runtime import DualStage

DEFAULT_OUT = "benchmarks/results/predict_latency.json"


def per_image_ms(pipeline: DualStage, images, tta: bool, repeats: int, augmented: bool = False) -> float:
    pipeline.predict(images[:1], tta=tta, augmented=augmented)  # warm-up (traces the augmentation graph once)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for image in images:
            pipeline.predict([image], tta=tta, augmented=augmented)
        timings.append((time.perf_counter() - start) / len(images) * 1000)
    return float(np.median(timings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", help="classifier folder (default: the shipped skinlib/shipped/classifier)")
    parser.add_argument("--no-novelty", action="store_true", help="time the pipeline without its novelty check")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    frame = load_split_frame(args.data)
    paths = frame[frame["split"] == "test"].sort_values("image_id")["image_path"].iloc[: args.images]
    images = [read_image(p) for p in paths]
    pipeline = DualStage.load(classifier_dir=args.model)
    if args.no_novelty:
        pipeline.classifier.novelty = None
    results = {
        "predict_ms": per_image_ms(pipeline, images, False, args.repeats),
        "predict_tta_ms": per_image_ms(pipeline, images, True, args.repeats),
        "predict_tta_augmented_ms": (
            per_image_ms(pipeline, images, True, args.repeats, augmented=True)
            if pipeline.classifier.spec.tta_augmented is not None
            else None
        ),
        "images": len(images),
        "image_size": list(images[0].shape[:2]),
        "classifier_input": pipeline.classifier.image_size,
        "unet_input": list(pipeline.segmenter.image_size),
        "classifier_members": len(pipeline.classifier.members),
        "novelty_check": pipeline.classifier.novelty is not None,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "command": "python benchmarks/predict_latency.py"
        + (f" --model {args.model}" if args.model else "")
        + (" --no-novelty" if args.no_novelty else "")
        + (f" --out {args.out}" if args.out != DEFAULT_OUT else ""),
    }
    print(f"predict        {results['predict_ms']:7.1f} ms/image (target < 100)")
    print(f"predict --tta  {results['predict_tta_ms']:7.1f} ms/image (target < 400)")
    if results["predict_tta_augmented_ms"] is None:
        print("predict --tta --tta-augmented: not timed (the classifier has no `skinlib fit-tta` temperature)")
    else:
        print(f"predict --tta --tta-augmented {results['predict_tta_augmented_ms']:7.1f} ms/image (target < 400)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
