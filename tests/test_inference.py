"""Inference helpers: batching, and the one TensorFlow notice that is silenced (and only that one)."""

import logging

import keras
import numpy as np

from skinlib.models.inference import RETRACING_NOTICE, predict_in_batches, quiet_retracing_notice


def test_predict_in_batches_matches_one_call_for_any_chunking():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    np.testing.assert_allclose(predict_in_batches(model, x, batch_size=4), model.predict_on_batch(x), rtol=1e-5)
    assert predict_in_batches(model, x[:0]).shape == (0,)


def test_predict_in_batches_returns_every_output_of_a_two_output_model():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4)(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(2)(hidden), hidden])
    x = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    first, second = predict_in_batches(model, x, batch_size=3)
    expected = model.predict_on_batch(x)
    np.testing.assert_allclose(first, expected[0], rtol=1e-5)
    np.testing.assert_allclose(second, expected[1], rtol=1e-5)


def test_only_the_retracing_notice_is_dropped(caplog):
    quiet_retracing_notice()
    quiet_retracing_notice()  # idempotent: one filter
    logger = logging.getLogger("tensorflow")
    assert sum(type(f).__name__ == "_DropRetracingNotice" for f in logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning("5 out of the last 9 calls to <function f> %s. Tracing is expensive", RETRACING_NOTICE)
        logger.warning("something else went wrong")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["something else went wrong"]
