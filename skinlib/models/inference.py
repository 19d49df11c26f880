"""Low-overhead inference: `predict_on_batch` per chunk instead of `Model.predict`.

Why: `Model.predict` builds a data pipeline and a progress loop on every call, which costs tens of
milliseconds; for the one-image calls of `skinlib predict` that overhead was larger than the network.
"""

from __future__ import annotations

import logging

import numpy as np

RETRACING_NOTICE = "triggered tf.function retracing"


class _DropRetracingNotice(logging.Filter):
    """Drop TensorFlow's "N out of the last M calls ... triggered tf.function retracing" notice.

    `predict_on_batch` traces once per distinct batch shape (one image, a last partial chunk), which is
    expected here and cheap next to `Model.predict`'s overhead; TensorFlow still prints a paragraph
    about it into every notebook and log. Only that notice is dropped; every other warning stays.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING_NOTICE not in record.getMessage()


def quiet_retracing_notice() -> None:
    """Install the filter on TensorFlow's logger (once; `import skinlib` does it)."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _DropRetracingNotice) for f in logger.filters):
        logger.addFilter(_DropRetracingNotice())


def predict_in_batches(model, inputs: np.ndarray, batch_size: int = 64):
    """The model's outputs for `inputs`, computed `batch_size` at a time, as one numpy array (a tuple of
    arrays for a model with several outputs)."""
    inputs = np.asarray(inputs, np.float32)
    outputs = [
        model.predict_on_batch(inputs[start : start + batch_size]) for start in range(0, len(inputs), batch_size)
    ]
    if outputs and isinstance(outputs[0], (list, tuple)):
        return tuple(np.concatenate([np.asarray(chunk[k]) for chunk in outputs]) for k in range(len(outputs[0])))
    return np.concatenate([np.asarray(chunk) for chunk in outputs]) if outputs else np.zeros((0,), np.float32)
