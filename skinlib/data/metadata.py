"""Read and validate HAM10000 metadata, joined with where each image and mask lives."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from .classes import CLASS_INDEX, CLASSES
from .errors import DataError
from .layout import HOW_TO_POINT, METADATA_NAMES, Layout, find_layout, resolve_data_dir

REQUIRED_COLUMNS = ("image_id", "dx")
OPTIONAL_COLUMNS = ("lesion_id", "dx_type", "age", "sex", "localization")


class DataWarning(UserWarning):
    """Something in the data was skipped or repaired; the message says what and how many."""


def _shown(items, limit: int = 10) -> str:
    items = [str(i) for i in items]
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def read_metadata_csv(path: Path) -> pd.DataFrame:
    """Read and validate a metadata CSV: required columns, known labels, unique image ids."""
    try:
        frame = pd.read_csv(path, dtype={"image_id": str, "lesion_id": str, "dx": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV ({error}).") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns))}. "
            "HAM10000 metadata has lesion_id,image_id,dx,dx_type,age,sex,localization."
        )
    if frame.empty:
        raise DataError(f"{path}: the metadata has a header but no rows.")
    frame["image_id"] = frame["image_id"].str.strip()
    frame["dx"] = frame["dx"].str.strip().str.lower()
    unknown = frame.loc[~frame["dx"].isin(CLASSES)]
    if len(unknown):
        rows = [f"row {i + 2} ({r.image_id}: {r.dx!r})" for i, r in unknown.iterrows()]
        raise DataError(
            f"{path}: {len(unknown)} row(s) with an unknown dx label: {_shown(rows)}. "
            f"Valid labels are {', '.join(CLASSES)}; fix or remove those rows."
        )
    duplicated = frame.loc[frame["image_id"].duplicated(keep=False), "image_id"].unique()
    if len(duplicated):
        raise DataError(
            f"{path}: {len(duplicated)} image_id(s) appear more than once: {_shown(duplicated)}. "
            "Each image must have exactly one row; remove the duplicates."
        )
    if "lesion_id" not in frame.columns:
        warnings.warn(
            f"{path}: no lesion_id column, so every image is treated as its own lesion; "
            "splits cannot then keep images of one lesion together.",
            DataWarning,
            stacklevel=2,
        )
        frame["lesion_id"] = frame["image_id"]
    frame["label"] = frame["dx"].map(CLASS_INDEX).astype("int64")
    return frame


def _empty_folder_error(layout: Layout) -> DataError:
    if not layout.images:
        return DataError(
            f"{layout.root} holds no HAM10000 metadata ({METADATA_NAMES[0]}) and no images. {HOW_TO_POINT}"
        )
    return DataError(
        f"{layout.root} holds {len(layout.images)} images but no metadata CSV ({METADATA_NAMES[0]}); "
        "labels come from that file. Put it in the folder, or pass --labels CSV where the command accepts it."
    )


def load_metadata(data_dir=None, missing: str = "error", layout: Layout | None = None) -> pd.DataFrame:
    """The metadata of a data folder with `image_path`, `mask_path` (None if absent) and `label` columns.

    `missing="error"` raises if any row's image is absent; `missing="skip"` drops those rows and says
    how many in a `DataWarning` (their ids are kept in `frame.attrs["missing_images"]`).
    Images whose id appears in two files are an error: which one is meant would be a guess.
    """
    if missing not in ("error", "skip"):
        raise ValueError("missing must be 'error' or 'skip'")
    layout = layout or find_layout(resolve_data_dir(data_dir))
    if layout.metadata is None:
        raise _empty_folder_error(layout)
    frame = read_metadata_csv(layout.metadata)
    clashes = [i for i in frame["image_id"] if i in layout.duplicates]
    if clashes:
        files = [str(p) for i in clashes for p in layout.duplicates[i]]
        raise DataError(f"image id(s) {_shown(clashes)} found in more than one file: {_shown(files)}. Keep one copy.")
    frame["image_path"] = frame["image_id"].map(layout.images)
    frame["mask_path"] = frame["image_id"].map(layout.masks)
    frame["mask_path"] = frame["mask_path"].astype(object).where(frame["mask_path"].notna(), None)
    absent = frame.loc[frame["image_path"].isna(), "image_id"].tolist()
    if absent and missing == "error":
        raise DataError(
            f"{len(absent)} image(s) listed in {layout.metadata} are missing from {layout.root}: {_shown(absent)}. "
            "Restore the files, or fix the data path."
        )
    if absent:
        warnings.warn(
            f"skipped {len(absent)} metadata row(s) whose image is missing: {_shown(absent)}",
            DataWarning,
            stacklevel=2,
        )
        frame = frame.loc[frame["image_path"].notna()].reset_index(drop=True)
    frame.attrs["missing_images"] = absent
    frame.attrs["root"] = str(layout.root)
    return frame


def metadata_rows(table, image_ids):
    """The rows of a metadata table (`image_id` or ISIC `image` column) for `image_ids`, in that order;
    an id the table lacks gets an empty row (its image is classified from the image alone)."""

    key = next((c for c in ("image_id", "image") if c in table.columns), None)
    if key is None:
        raise DataError(
            f"the metadata table needs an image_id (or ISIC image) column to match images by file name; "
            f"it has {', '.join(map(str, table.columns))}"
        )
    if table[key].duplicated().any():
        raise DataError(
            f"the metadata table lists image(s) twice: {table.loc[table[key].duplicated(), key].tolist()[:5]}"
        )
    rows = table.assign(**{key: table[key].astype(str).str.strip()}).set_index(key)
    return rows.reindex([str(i) for i in image_ids]).reset_index(drop=True)
