"""Temperature scaling: one number, fitted on validation, that makes probabilities honest.

A network trained with focal loss and class weights is usually *under*-confident on the common class
and over-confident elsewhere; dividing its log-probabilities by a temperature T (fitted to minimise the
validation negative log-likelihood) fixes most of that without changing any prediction's ranking.
"""

from __future__ import annotations

import numpy as np


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): T > 1 softens, T < 1 sharpens; argmax is unchanged."""
    logits = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(labels, probs) -> float:
    probs = np.asarray(probs, np.float64)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(probs)), np.asarray(labels)], 1e-12, 1.0))))


def fit_temperature(labels, probs, low: float = 0.05, high: float = 20.0) -> float:
    """The T minimising validation NLL (golden-section search on log T; NLL is unimodal in T)."""
    ratio = (np.sqrt(5) - 1) / 2
    a, b = np.log(low), np.log(high)
    loss = lambda t: negative_log_likelihood(labels, apply_temperature(probs, np.exp(t)))  # noqa: E731
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(60):
        if loss(c) < loss(d):
            b = d
        else:
            a = c
        c, d = b - ratio * (b - a), a + ratio * (b - a)
    return float(np.exp((a + b) / 2))
