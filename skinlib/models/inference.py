"""Low-overhead inference: `predict_on_batch` per chunk instead of `Model.predict`.

Why: `Model.predict` builds a data pipeline and a progress loop on every call, which costs tens of
milliseconds; for the one-image calls of `skinlib predict` that overhead was larger than the network.
"""

from __future__ import annotations

import numpy as np


def predict_in_batches(model, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The model's outputs for `inputs`, computed `batch_size` at a time, as one numpy array."""
    inputs = np.asarray(inputs, np.float32)
    outputs = [np.asarray(model.predict_on_batch(inputs[start : start + batch_size]))
               for start in range(0, len(inputs), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)
