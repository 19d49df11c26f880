"""HAM10000 data layer: layout, metadata, robust image reading, lesion-aware splits and tf.data feeding.

`skinlib.data.tfdata` (TensorFlow) is imported lazily so that the CLI's data checks start fast.
"""

from .classes import CLASS_INDEX, CLASSES, DISPLAY_NAMES, MALIGNANT, class_index
from .errors import DataError
from .images import fit_size, read_image, read_mask, to_rgb, unfit_size
from .layout import DATA_ENV, Layout, find_layout, resolve_data_dir
from .metadata import DataWarning, load_metadata, read_metadata_csv
from .splits import (
    DEFAULT_FRACTIONS,
    DEFAULT_SEED,
    DEFAULT_SPLIT_PATH,
    SPLITS,
    attach_split,
    class_weights,
    lesion_ids,
    make_split,
    read_split,
    split_sample,
    split_summary,
    write_split,
)

__all__ = [
    "CLASSES",
    "CLASS_INDEX",
    "DISPLAY_NAMES",
    "MALIGNANT",
    "class_index",
    "DataError",
    "DataWarning",
    "fit_size",
    "read_image",
    "read_mask",
    "to_rgb",
    "unfit_size",
    "DATA_ENV",
    "Layout",
    "find_layout",
    "resolve_data_dir",
    "load_metadata",
    "read_metadata_csv",
    "DEFAULT_FRACTIONS",
    "DEFAULT_SEED",
    "DEFAULT_SPLIT_PATH",
    "SPLITS",
    "attach_split",
    "class_weights",
    "lesion_ids",
    "make_split",
    "read_split",
    "split_sample",
    "split_summary",
    "write_split",
    "load_split_frame",
]


def load_split_frame(data_dir=None, split_path=None):
    """Metadata of a data folder with the shared `split` column attached: what most code starts from."""
    return attach_split(load_metadata(data_dir), read_split(split_path))
