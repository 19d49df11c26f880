"""Lesion-disjoint, class-stratified train/val/test splits, stored as a CSV everyone reads.

HAM10000 has several images of many lesions. Splitting by image puts photos of the same lesion in
train and test and inflates every metric, so the unit of splitting here is `lesion_id`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .classes import CLASSES
from .errors import DataError

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)
DEFAULT_SEED = 20181201  # recorded in the split's JSON sidecar

#: The split every notebook and command uses unless told otherwise (committed with the package).
DEFAULT_SPLIT_PATH = Path(__file__).resolve().parent.parent / "resources" / "ham10000_split.csv"


def _lesion_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per lesion with its class; a lesion labelled with two classes is an error."""
    per_lesion = frame.groupby("lesion_id")["dx"].agg(["nunique", "first", "size"])
    conflicting = per_lesion.index[per_lesion["nunique"] > 1].tolist()
    if conflicting:
        raise DataError(f"lesion(s) {conflicting[:10]} carry more than one dx label; fix the metadata.")
    return per_lesion.rename(columns={"first": "dx", "size": "images"})[["dx", "images"]]


def make_split(frame: pd.DataFrame, fractions=DEFAULT_FRACTIONS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Assign every image to train/val/test so that no lesion crosses splits.

    Within each class the lesions are shuffled with `seed` and dealt out so that each split gets its
    share of that class's *images* (not just lesions), which keeps image-level class proportions close
    to the requested fractions even though lesions have different numbers of images.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions.tolist()}")
    lesions = _lesion_table(frame)
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for dx in CLASSES:
        group = lesions[lesions["dx"] == dx]
        order = group.index.to_numpy()[rng.permutation(len(group))]
        counts = group.loc[order, "images"].to_numpy()
        targets = fractions * counts.sum()
        filled = np.zeros(3)
        for lesion, n in zip(order, counts):
            # give the lesion to the split that is furthest below its target share
            which = int(np.argmax((targets - filled) / np.maximum(targets, 1e-9)))
            assignment[lesion] = SPLITS[which]
            filled[which] += n
    out = frame[["image_id", "lesion_id", "dx"]].copy()
    out["split"] = out["lesion_id"].map(assignment)
    return out.sort_values("image_id").reset_index(drop=True)


def split_summary(split: pd.DataFrame) -> pd.DataFrame:
    """Images per class and split, as a table (rows: class, columns: split)."""
    table = pd.crosstab(split["dx"], split["split"]).reindex(index=list(CLASSES), columns=list(SPLITS), fill_value=0)
    table.loc["total"] = table.sum()
    return table


def write_split(split: pd.DataFrame, path: str | Path, seed: int, fractions=DEFAULT_FRACTIONS) -> Path:
    """Write the split CSV and a JSON sidecar that records the seed and fractions that made it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    split[["image_id", "lesion_id", "dx", "split"]].to_csv(path, index=False)
    sidecar = {
        "seed": int(seed),
        "fractions": [float(f) for f in fractions],
        "unit": "lesion_id",
        "images": {s: int((split["split"] == s).sum()) for s in SPLITS},
        "lesions": {s: int(split.loc[split["split"] == s, "lesion_id"].nunique()) for s in SPLITS},
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def read_split(path: str | Path | None = None) -> pd.DataFrame:
    """Read a split CSV (default: the one shipped with skinlib) and check it is lesion-disjoint."""
    path = Path(path) if path is not None else DEFAULT_SPLIT_PATH
    if not path.is_file():
        raise DataError(f"split file {path} not found. Make one with `skinlib split --data DIR --out {path}`.")
    split = pd.read_csv(path, dtype=str)
    missing = {"image_id", "lesion_id", "split"} - set(split.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; expected image_id,lesion_id,dx,split.")
    bad = sorted(set(split["split"]) - set(SPLITS))
    if bad:
        raise DataError(f"{path}: unknown split name(s) {bad}; expected {', '.join(SPLITS)}.")
    crossing = split.groupby("lesion_id")["split"].nunique()
    crossing = crossing.index[crossing > 1].tolist()
    if crossing:
        raise DataError(f"{path}: lesion(s) {crossing[:10]} appear in more than one split; regenerate it.")
    return split


def lesion_ids(image_ids, split: pd.DataFrame | None = None) -> np.ndarray:
    """The lesion id of every image id, from a split (default: the shipped one): what a bootstrap over
    lesions resamples. An image the split does not know is an error, never a lesion of its own."""
    split = read_split() if split is None else split
    lookup = split.set_index("image_id")["lesion_id"]
    image_ids = pd.Index(np.asarray(image_ids).astype(str))
    unknown = image_ids[~image_ids.isin(lookup.index)]
    if len(unknown):
        raise DataError(
            f"{len(unknown)} image(s) are not in the split, so their lesions are unknown (e.g. {list(unknown[:5])})."
        )
    return lookup.loc[image_ids].to_numpy().astype(str)


def attach_split(frame: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """Add the `split` column to a metadata frame; every image must be in the split file."""
    merged = frame.merge(split[["image_id", "split"]], on="image_id", how="left")
    unassigned = merged.loc[merged["split"].isna(), "image_id"].tolist()
    if unassigned:
        raise DataError(
            f"{len(unassigned)} image(s) are not in the split file (e.g. {unassigned[:5]}). "
            "The split belongs to another data set: make one with `skinlib split --data DIR --out FILE`."
        )
    return merged


def class_weights(labels, num_classes: int = len(CLASSES)) -> tuple[dict[int, float], np.ndarray]:
    """Balanced class weights n / (k * count_c), and the counts behind them.

    A class absent from `labels` gets weight 0 (nothing to weigh) rather than a division by zero.
    """
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=num_classes)
    total, present = counts.sum(), np.count_nonzero(counts)
    weights = {c: (float(total / (present * counts[c])) if counts[c] else 0.0) for c in range(num_classes)}
    return weights, counts


def split_sample(frame: pd.DataFrame, split: str, n: int | None, seed: int = 0) -> pd.DataFrame:
    """The images of one split, or (quick mode) a stratified sample of about `n` of them in which every class
    keeps its share of the split; sorted by image id, so a rerun draws the same images."""
    part = frame[frame["split"] == split]
    if n is not None and n < len(part):
        part = part.groupby("dx").sample(frac=n / len(part), random_state=seed)
    return part.sort_values("image_id").reset_index(drop=True)
