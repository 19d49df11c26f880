"""Compact weight files: float16 `.npz` keyed by variable path.

Why: the shipped models must stay small (under 30 MB in all, in git). float16 halves the size of
Keras' float32 `.weights.h5`, and the metrics shipped with a model are measured *after* this round
trip, so they describe exactly the weights a user loads.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


def save_compact_weights(model: keras.Model, path: str | Path) -> Path:
    """Save every weight (trainable or not) as float16, keyed by its unique variable path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        arrays[variable.path] = value.astype(np.float16) if np.issubdtype(value.dtype, np.floating) else value
    if len(arrays) != len(model.weights):
        raise ValueError(f"{model.name}: variable paths are not unique; cannot save by name")
    np.savez_compressed(path, **arrays)
    return path


def load_compact_weights(model: keras.Model, path: str | Path) -> keras.Model:
    """Load weights saved by `save_compact_weights`; every variable must be found with its shape."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    with np.load(path) as stored:
        missing = [v.path for v in model.weights if v.path not in stored]
        unused = sorted(set(stored.files) - {v.path for v in model.weights})
        wrong = [f"{v.path}: {stored[v.path].shape} != {tuple(v.shape)}" for v in model.weights
                 if v.path in stored and stored[v.path].shape != tuple(v.shape)]
        if missing or unused or wrong:
            raise ValueError(f"{path} does not fit model {model.name}: missing {missing[:5]}, "
                             f"unused {unused[:5]}, wrong shapes {wrong[:5]}")
        for variable in model.weights:
            variable.assign(stored[variable.path].astype(variable.dtype))
    return model


def read_model_spec(folder: str | Path, kind: str, how_to_make: str) -> dict:
    """The `model.json` of a shipped model folder, checked to be of `kind` ("unet", "classifier").

    `how_to_make` is the command that creates such a folder; it goes into the error when none is found.
    """
    import json

    spec_path = Path(folder) / "model.json"
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path} not found: make one with `{how_to_make}`")
    spec = json.loads(spec_path.read_text())
    if spec.get("kind") != kind:
        from ..data.errors import DataError

        raise DataError(f"{spec_path} describes a {spec.get('kind')!r} model, not a {kind!r}")
    return spec
