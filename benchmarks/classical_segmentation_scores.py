"""Scores of the classical segmentation and the centre-disc baseline against the HAM10000 expert masks.

    python benchmarks/classical_segmentation_scores.py                  # val and test, default parameters
    python benchmarks/classical_segmentation_scores.py --splits val     # validation only
    python benchmarks/classical_segmentation_scores.py --tune           # how the defaults were checked

The data folder comes from --data or $SKINLIB_DATA. `--tune` never looks at val or test: it scores every
one-parameter change of the defaults (over the grid below) on a seeded sample of 300 TRAIN images, so
it shows that the defaults are a local optimum there and what each knob is worth.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from skinlib.data import load_split_frame, read_image, read_mask
from skinlib.evaluation import dice, segmentation_scores
from skinlib.segmentation import ClassicalParams, centre_disc_baseline, segment_classical

TUNE_SAMPLE = 300
TUNE_SEED = 0

#: One-parameter changes tried by --tune.
GRID = {
    "channel": ["gray", "red", "green", "blue", "lab_l", "hsv_v", "xyz_z", "lab_b_inv", "hsv_s_inv"],
    "method": ["otsu", "adaptive"],
    "adaptive_block": [75, 121, 141, 151, 161, 201],
    "adaptive_c": [0, 1, 2, 3, 4, 6],
    "blur_kernel": [1, 3, 5, 7, 9],
    "open_kernel": [1, 3, 5, 7],
    "close_kernel": [1, 3, 7, 11],
    "border_penalty": [0.1, 0.5, 1.0],
    "centre_weight": [0.0, 0.5, 1.0, 1.5],
    "vignette_penalty": [0.0, 0.1, 1.0],
    "vignette_level": [15, 30, 45],
    "hair_removal": [False, True],
    "hair_kernel": [3, 5, 9],
    "hair_threshold": [15, 25, 40, 60],
    "min_area_fraction": [0.001, 0.005, 0.02],
    "fill_holes": [False, True],
}
DISC_RADII = [0.2, 0.25, 0.3, 0.35, 0.4]


def load_pairs(frame) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, expert mask) for every row of a metadata frame."""
    return [(read_image(row.image_path), read_mask(row.mask_path)) for row in frame.itertuples()]


def mean_dice(pairs, params: ClassicalParams) -> float:
    return float(np.mean([dice(segment_classical(image, params), mask) for image, mask in pairs]))


def score_split(pairs, params: ClassicalParams) -> dict[str, dict]:
    """segmentation_scores of the classical method and of the centre disc on one split."""
    truths = [mask for _, mask in pairs]
    return {
        "classical": segmentation_scores([segment_classical(image, params) for image, _ in pairs], truths),
        "centre disc": segmentation_scores([centre_disc_baseline(mask.shape) for mask in truths], truths),
    }


def report(args) -> None:
    frame = load_split_frame(args.data)
    params = ClassicalParams()
    print(f"parameters: {params}\n")
    print(f"{'split':<6} {'method':<12} {'n':>5} {'dice mean':>9} {'median':>7} {'IoU mean':>8} {'ISIC thr-J':>10}")
    for split in args.splits:
        subset = frame[frame["split"] == split].sort_values("image_id")
        if args.limit:
            subset = subset.head(args.limit)
        start = time.perf_counter()
        results = score_split(load_pairs(subset), params)
        for method, s in results.items():
            print(
                f"{split:<6} {method:<12} {s['count']:>5} {s['dice_mean']:>9.4f} {s['dice_median']:>7.4f} "
                f"{s['iou_mean']:>8.4f} {s['thresholded_jaccard_mean']:>10.4f}"
            )
        print(f"{'':<6} ({time.perf_counter() - start:.1f} s)")


def tune(args) -> None:
    """Score each one-parameter change of the defaults on the train sample (never val or test)."""
    frame = load_split_frame(args.data)
    train = frame[frame["split"] == "train"].sort_values("image_id")
    pairs = load_pairs(train.sample(n=TUNE_SAMPLE, random_state=TUNE_SEED))
    defaults = ClassicalParams()
    base = mean_dice(pairs, defaults)
    print(f"train sample: {len(pairs)} images (seed {TUNE_SEED}); defaults: mean Dice {base:.4f}")
    better = []
    for name, values in GRID.items():
        cells = []
        for value in values:
            params = dataclasses.replace(defaults, **{name: value})
            score = base if params == defaults else mean_dice(pairs, params)
            mark = "*" if params == defaults else ""
            cells.append(f"{value}{mark}={score:.4f}")
            if score > base + 0.002:
                better.append((name, value, score))
        print(f"  {name:<18} " + "  ".join(cells), flush=True)
    truths = [mask for _, mask in pairs]
    disc = [f"{r}={np.mean([dice(centre_disc_baseline(m.shape, r), m) for m in truths]):.4f}" for r in DISC_RADII]
    print("  centre disc radius " + "  ".join(disc))
    print(
        "no single change improves the defaults by more than 0.002"
        if not better
        else f"changes that improve the defaults: {better}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="HAM10000 folder (default: $SKINLIB_DATA)")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int, default=0, help="first N images of each split (0: all)")
    parser.add_argument("--tune", action="store_true", help="check the defaults on 300 TRAIN images instead")
    args = parser.parse_args(argv)
    tune(args) if args.tune else report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
