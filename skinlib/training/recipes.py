"""Read back the config a shipped model was trained with (its `metrics.json`), to retrain or reuse it."""

from __future__ import annotations

import json
from pathlib import Path


def _tuples(value):
    """JSON turned the config's tuples into lists; turn them back (nested, e.g. phases)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def config_from_metrics(config_class, metrics_path, **overrides):
    """`config_class` (a dataclass) as recorded in `metrics_path`'s "config", with `overrides` applied.

    Unknown recorded keys are ignored, so an older metrics file still reads.
    """
    recorded = json.loads(Path(metrics_path).read_text())["config"]
    known = {key: _tuples(value) for key, value in recorded.items() if key in config_class.__dataclass_fields__}
    return config_class(**{**known, **overrides})
