"""Class labels for any labelled folder: HAM10000 metadata or ISIC 2018 Task 3 ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .classes import CLASSES
from .errors import DataError
from .metadata import read_metadata_csv

#: ISIC 2018 Task 3 ground-truth columns (one-hot), mapped to skinlib's class codes.
ISIC_COLUMNS = {"MEL": "mel", "NV": "nv", "BCC": "bcc", "AKIEC": "akiec", "BKL": "bkl", "DF": "df", "VASC": "vasc"}


def read_labels(path: str | Path) -> pd.DataFrame:
    """`image_id`, `dx`, `label` from a HAM10000-style CSV (image_id, dx) or an ISIC 2018 Task 3 CSV
    (image + one-hot MEL, NV, BCC, AKIEC, BKL, DF, VASC); `lesion_id` too when the CSV has it (HAM10000's
    metadata does; not when `read_metadata_csv` made one up, one per image), so intervals can resample lesions."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labels file {path} not found.")
    header = pd.read_csv(path, nrows=0).columns
    if {"image_id", "dx"} <= set(header):
        frame = read_metadata_csv(path)
        return frame[["image_id", "dx", "label", *(["lesion_id"] if "lesion_id" in header else [])]]
    if "image" in header and set(ISIC_COLUMNS) <= set(header):
        frame = pd.read_csv(path, dtype={"image": str})
        onehot = frame[list(ISIC_COLUMNS)].to_numpy(float)
        bad = np.flatnonzero(~np.isclose(onehot.sum(axis=1), 1.0) | ~np.isin(onehot, (0.0, 1.0)).all(axis=1))
        if len(bad):
            rows = ", ".join(f"row {i + 2} ({frame['image'].iloc[i]})" for i in bad[:10])
            raise DataError(f"{path}: {len(bad)} row(s) are not one-hot over {', '.join(ISIC_COLUMNS)}: {rows}.")
        dx = [ISIC_COLUMNS[c] for c in np.array(list(ISIC_COLUMNS))[onehot.argmax(axis=1)]]
        out = pd.DataFrame({"image_id": frame["image"].str.strip(), "dx": dx})
        out["label"] = out["dx"].map({c: i for i, c in enumerate(CLASSES)}).astype("int64")
        duplicated = out.loc[out["image_id"].duplicated(), "image_id"].tolist()
        if duplicated:
            raise DataError(f"{path}: image(s) listed twice: {duplicated[:10]}.")
        return out
    raise DataError(
        f"{path}: unknown label format (columns {', '.join(header)}). Expected HAM10000 metadata "
        "(image_id, dx) or ISIC 2018 Task 3 ground truth (image, MEL, NV, BCC, AKIEC, BKL, DF, VASC)."
    )
