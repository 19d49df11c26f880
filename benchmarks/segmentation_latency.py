"""Segmentation latency per image on this machine: U-Net (batch 1 and 32) and the classical method.

    python benchmarks/segmentation_latency.py [--repeats 5] [--out benchmarks/results/segmentation_latency.json]

Times the whole `segment` call a user makes (resize to the model size, predict, resize back to the image's
own size, post-process) on real 200x150 test images from $SKINLIB_DATA. Reports the median over repeats.
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
from skinlib.segmentation.segmenter import ClassicalSegmenter, UNetSegmenter


def per_image_ms(segment, images, batch_size: int, repeats: int) -> float:
    """Median milliseconds per image over `repeats` passes through `images` in batches of `batch_size`."""
    segment(images[:batch_size], batch_size)  # warm-up: graph tracing, thread pools
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(images), batch_size):
            segment(images[i : i + batch_size], batch_size)
        timings.append((time.perf_counter() - start) / len(images) * 1000)
    return float(np.median(timings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/segmentation_latency.json")
    args = parser.parse_args()
    frame = load_split_frame(args.data)
    paths = frame[frame["split"] == "test"].sort_values("image_id")["image_path"].iloc[: args.images]
    images = [read_image(p) for p in paths]
    unet, classical = UNetSegmenter.load(), ClassicalSegmenter()
    results = {
        "unet_batch1_ms": per_image_ms(unet.segment, images[:16], 1, args.repeats),
        "unet_batch32_ms": per_image_ms(unet.segment, images, 32, args.repeats),
        "classical_ms": per_image_ms(classical.segment, images[:32], 1, args.repeats),
        "images": len(images),
        "image_size": list(images[0].shape[:2]),
        "model_input": list(unet.image_size),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "command": "python benchmarks/segmentation_latency.py",
    }
    for key in ("unet_batch1_ms", "unet_batch32_ms", "classical_ms"):
        print(f"{key:<16} {results[key]:8.1f} ms/image")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
