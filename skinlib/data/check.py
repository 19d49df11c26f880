"""`skinlib check-data`: verify a data folder before hours of training depend on it."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .classes import CLASSES, DISPLAY_NAMES
from .errors import DataError
from .images import read_image, read_mask
from .layout import find_layout, resolve_data_dir
from .metadata import DataWarning, load_metadata


@dataclass
class CheckReport:
    """What `check_data` found; `problems` is empty when the folder is fit to use."""

    root: Path
    layout_kind: str
    metadata: Path
    rows: int
    images_found: int
    masks_found: int
    lesions: int
    class_counts: dict[str, int]
    class_lesions: dict[str, int]
    missing_images: list[str] = field(default_factory=list)
    missing_masks: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    images_without_metadata: int = 0

    @property
    def problems(self) -> list[str]:
        found = []
        if self.missing_images:
            found.append(
                f"{len(self.missing_images)} image(s) listed in the metadata are missing: "
                + ", ".join(self.missing_images[:20])
                + (" ..." if len(self.missing_images) > 20 else "")
            )
        if self.missing_masks and self.masks_found:
            found.append(
                f"{len(self.missing_masks)} image(s) have no mask: "
                + ", ".join(self.missing_masks[:20])
                + (" ..." if len(self.missing_masks) > 20 else "")
            )
        for message in self.unreadable.values():
            found.append(f"unreadable: {message}")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    def class_table(self) -> pd.DataFrame:
        table = pd.DataFrame(
            {
                "class": list(CLASSES),
                "name": [DISPLAY_NAMES[c] for c in CLASSES],
                "images": [self.class_counts.get(c, 0) for c in CLASSES],
                "lesions": [self.class_lesions.get(c, 0) for c in CLASSES],
            }
        )
        table["share"] = (table["images"] / max(1, table["images"].sum())).map(lambda s: f"{100 * s:.1f} %")
        return table

    def render(self) -> str:
        """The summary a person reads: counts, the class table, then every problem."""
        lines = [
            f"data folder : {self.root} ({self.layout_kind} layout)",
            f"metadata    : {self.metadata} ({self.rows:,} rows)",
            f"images      : {self.images_found:,} found, {len(self.unreadable_images):,} unreadable, "
            f"{len(self.missing_images):,} missing",
            f"masks       : {self.masks_found:,} found, {len(self.unreadable_masks):,} unreadable, "
            f"{len(self.missing_masks) if self.masks_found else 0:,} missing",
            f"lesions     : {self.lesions:,} ({self.rows - self.lesions:,} images repeat a lesion: split by lesion_id)",
        ]
        if not self.masks_found:
            lines.append(
                "note        : no lesion masks found; the segmentation stage needs "
                "HAM10000_segmentations_lesion_tschandl/"
            )
        if self.images_without_metadata:
            lines.append(f"note        : {self.images_without_metadata:,} image file(s) have no metadata row (ignored)")
        lines += ["", self.class_table().to_string(index=False), ""]
        if self.ok:
            lines.append("OK: every listed image and mask is present and decodable.")
        else:
            lines.append(f"FAILED: {len(self.problems)} problem(s):")
            lines += [f"  - {p}" for p in self.problems]
            lines.append(
                "Fix: restore or re-download the files named above, or point --data / SKINLIB_DATA at a complete copy."
            )
        return "\n".join(lines)

    @property
    def unreadable_images(self) -> list[str]:
        return [p for p in self.unreadable if not p.endswith("_segmentation.png")]

    @property
    def unreadable_masks(self) -> list[str]:
        return [p for p in self.unreadable if p.endswith("_segmentation.png")]


def _try(reader, path) -> str | None:
    try:
        reader(path)
    except DataError as error:
        return str(error)
    return None


def check_data(data_dir=None, progress: bool = True, workers: int = 2) -> CheckReport:
    """Decode every listed image and mask and count what is there; never stops at the first problem."""
    layout = find_layout(resolve_data_dir(data_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        frame = load_metadata(layout=layout, missing="skip")
    jobs = [(read_image, p) for p in frame["image_path"]] + [(read_mask, p) for p in frame["mask_path"] if p]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(
            tqdm(
                pool.map(lambda job: (job[1], _try(*job)), jobs),
                total=len(jobs),
                desc="decoding images and masks",
                unit="file",
                disable=not progress,
            )
        )
    lesions = frame.groupby("dx")["lesion_id"].nunique()
    return CheckReport(
        root=layout.root,
        layout_kind=layout.kind,
        metadata=layout.metadata,
        rows=len(frame) + len(frame.attrs["missing_images"]),
        images_found=int(frame["image_path"].notna().sum()),
        masks_found=int(sum(1 for p in frame["mask_path"] if p)),
        lesions=int(frame["lesion_id"].nunique()),
        class_counts={k: int(v) for k, v in frame["dx"].value_counts().items()},
        class_lesions={k: int(v) for k, v in lesions.items()},
        missing_images=list(frame.attrs["missing_images"]),
        missing_masks=frame.loc[frame["mask_path"].isna(), "image_id"].tolist(),
        unreadable={str(path): error for path, error in results if error},
        images_without_metadata=len(set(layout.images) - set(frame["image_id"])),
    )
