"""Find HAM10000 on disk: the official Dataverse layout or a flat folder of `<image_id>.jpg`.

Official layout (doi:10.7910/DVN/DBW86T)::

    HAM10000_metadata.csv
    HAM10000_images_part_1/ISIC_xxxxxxx.jpg
    HAM10000_images_part_2/ISIC_xxxxxxx.jpg
    HAM10000_segmentations_lesion_tschandl/ISIC_xxxxxxx_segmentation.png

A flat folder holds the images (and optionally `<image_id>_segmentation.png` masks, or a `masks/`
sub-folder) directly, with the metadata CSV beside them. Any image size works.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError

#: Environment variable that points skinlib at the data folder.
DATA_ENV = "SKINLIB_DATA"

METADATA_NAMES = ("HAM10000_metadata.csv", "HAM10000_metadata", "metadata.csv")
IMAGE_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images")
MASK_FOLDERS = ("HAM10000_segmentations_lesion_tschandl", "masks")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MASK_SUFFIX = "_segmentation"

HOW_TO_POINT = (
    "Point skinlib at a HAM10000 folder with --data DIR or the environment variable "
    f"{DATA_ENV}=DIR (the official Dataverse download, doi:10.7910/DVN/DBW86T, or any folder in that layout, "
    "e.g. ../shared/data/ham10000)."
)


def resolve_data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data folder: the argument if given, else $SKINLIB_DATA; a clear error if neither exists."""
    if path is None:
        path = os.environ.get(DATA_ENV)
        if not path:
            raise DataError(f"No data folder given. {HOW_TO_POINT}")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DataError(f"Data folder {folder} does not exist. {HOW_TO_POINT}")
    if not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder. {HOW_TO_POINT}")
    return folder


@dataclass
class Layout:
    """Where the metadata, images and masks of one data folder are.

    `images` and `masks` map `image_id` to a file; `duplicates` lists image ids found in more than
    one file, which would make "the" image ambiguous.
    """

    root: Path
    metadata: Path | None
    images: dict[str, Path] = field(default_factory=dict)
    masks: dict[str, Path] = field(default_factory=dict)
    duplicates: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        official = any((self.root / name).is_dir() for name in IMAGE_FOLDERS)
        return "official" if official else "flat"


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_layout(root: Path) -> Layout:
    """Index a data folder: works for the official layout and for a flat folder."""
    metadata = next((root / n for n in METADATA_NAMES if (root / n).is_file()), None)
    image_dirs = [root / n for n in IMAGE_FOLDERS if (root / n).is_dir()] or [root]
    mask_dirs = [root / n for n in MASK_FOLDERS if (root / n).is_dir()] or [root]
    layout = Layout(root=root, metadata=metadata)
    for folder in image_dirs:
        for path in _image_files(folder):
            if path.stem.endswith(MASK_SUFFIX):
                continue
            if path.stem in layout.images:
                layout.duplicates.setdefault(path.stem, [layout.images[path.stem]]).append(path)
                continue
            layout.images[path.stem] = path
    for folder in mask_dirs:
        for path in _image_files(folder):
            stem = path.stem
            image_id = stem[: -len(MASK_SUFFIX)] if stem.endswith(MASK_SUFFIX) else None
            if image_id is not None:
                layout.masks.setdefault(image_id, path)
    return layout


def image_files_by_stem(folder) -> dict:
    """{file stem: path} of every image below `folder`, masks (`*_segmentation`) left out: how a labelled folder's
    images are matched to their label rows."""
    return {
        p.stem: p
        for p in Path(folder).rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.stem.endswith(MASK_SUFFIX)
    }


def collection_name(images_folder) -> str:
    """The name a collection of images is reported under: the folder that holds `images/` (so
    `../shared/data/isic2017/images` is `isic2017`), else the images folder's own name."""
    images_folder = Path(images_folder).resolve()
    return images_folder.parent.name if images_folder.name == "images" else images_folder.name
