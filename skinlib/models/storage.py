"""Compact weight files: float16 `.npz` keyed by variable path.

Why: the shipped models must stay small (under 30 MB in all, in git). float16 halves the size of
Keras' float32 `.weights.h5`, and the metrics shipped with a model are measured *after* this round
trip, so they describe exactly the weights a user loads.

A layer Keras names itself gets a process-wide counter (`normalization`, `normalization_2`, ...), so its
path depends on how many such layers were built before (keras.applications' EfficientNetB0 has one, its
input Normalization). Loading therefore matches a path it cannot find to a stored one that differs only in
that counter, when exactly one stored path of that base name and shape is left.
"""

from __future__ import annotations

import re
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


def _without_counter(path: str) -> str:
    """A variable path with the auto-naming counter of its layer removed ("normalization_3/mean" -> "normalization/mean")."""
    layer, _, rest = path.partition("/")
    return f"{re.sub(r'_[0-9]+$', '', layer)}/{rest}"


def _match_auto_named(model: keras.Model, stored) -> dict[str, str]:
    """Variable path -> stored key: the same path, else the one stored key left that differs only in its layer's
    auto-naming counter and has the same shape (see the module docstring)."""
    keys = {v.path: v.path for v in model.weights if v.path in stored}
    left = sorted(set(stored.files) - set(keys))
    for variable in model.weights:
        if variable.path in keys:
            continue
        base = _without_counter(variable.path)
        candidates = [k for k in left if _without_counter(k) == base and stored[k].shape == tuple(variable.shape)]
        if len(candidates) == 1:
            keys[variable.path] = candidates[0]
            left.remove(candidates[0])
    return keys


def load_compact_weights(model: keras.Model, path: str | Path) -> keras.Model:
    """Load weights saved by `save_compact_weights`; every variable must be found with its shape."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    with np.load(path) as stored:
        keys = _match_auto_named(model, stored)
        missing = [v.path for v in model.weights if v.path not in keys]
        unused = sorted(set(stored.files) - set(keys.values()))
        wrong = [
            f"{v.path}: {stored[keys[v.path]].shape} != {tuple(v.shape)}"
            for v in model.weights
            if v.path in keys and stored[keys[v.path]].shape != tuple(v.shape)
        ]
        if missing or unused or wrong:
            raise ValueError(
                f"{path} does not fit model {model.name}: missing {missing[:5]}, "
                f"unused {unused[:5]}, wrong shapes {wrong[:5]}"
            )
        for variable in model.weights:
            variable.assign(stored[keys[variable.path]].astype(variable.dtype))
    return model
