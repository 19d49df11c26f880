"""Temperature scaling and prior correction: making probabilities mean what they say.

Temperature: dividing the log-probabilities by one number T (fitted to minimise the validation negative
log-likelihood) fixes over- or under-confidence. It keeps every image's top class. It does *not* keep every
ranking: one-vs-rest ROC curves of a multiclass softmax can change, because P(class c) of two images can swap
order under a new T (logits (3, 0, 0) and (1, -1, -10): P0 0.909 > 0.881 at T = 1, 0.340 < 0.348 at T = 100).

Prior: a model trained with class weights (or focal alpha) learns probabilities under a re-weighted class
mix, not the one its images came from; the shipped recipe's balanced weights make all seven classes count as
if equally common. One temperature cannot undo a shift of the prior. Bayes' rule can: multiply each class's
probability by target prior / model prior and renormalise (`shift_prior`), with the model prior that its loss
implied (`loss_prior`) and the prior of the population the answer is for (HAM10000's training mix, or a
user's own).
"""

from __future__ import annotations

import numpy as np

from ..data.classes import CLASSES
from .classification import classification_report_dict


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


def _prior_vector(prior, num_classes: int, name: str) -> np.ndarray:
    vector = np.asarray(prior, np.float64).reshape(-1)
    if vector.shape != (num_classes,) or not np.all(np.isfinite(vector)) or np.any(vector <= 0):
        raise ValueError(f"{name} must be {num_classes} positive numbers (one per class), got {vector.tolist()}")
    return vector / vector.sum()


def shift_prior(probs: np.ndarray, model_prior, target_prior) -> np.ndarray:
    """Bayes' rule for a change of class prior: p'(c|x) = p(c|x) t_c / m_c, renormalised.

    `model_prior` (m): the class mix the probabilities were learnt under (`loss_prior`); `target_prior` (t): the
    mix of the population they should describe. Both are normalised here. Equal priors return `probs`.
    """
    probs = np.asarray(probs, np.float64)
    ratio = _prior_vector(target_prior, probs.shape[1], "target_prior") / _prior_vector(
        model_prior, probs.shape[1], "model_prior"
    )
    shifted = probs * ratio
    return shifted / shifted.sum(axis=1, keepdims=True)


def loss_prior(class_counts, class_loss_weights=None) -> np.ndarray:
    """The class prior a model's loss implied: training counts times each class's loss weight, normalised.

    Why: weighting class c by w_c in the loss is, for the optimum of cross-entropy, the same as seeing n_c w_c of
    its images; balanced weights (w_c proportional to 1 / n_c) make every class equally common. Without weights,
    the training frequencies. (Focal loss's (1 - p)^gamma factor shifts the optimum a little further; this is
    the part the weights make, and the part that matters most.)
    """
    counts = np.asarray(class_counts, np.float64)
    weights = np.ones_like(counts) if class_loss_weights is None else np.asarray(class_loss_weights, np.float64)
    if counts.shape != weights.shape or np.any(counts <= 0) or np.any(weights <= 0):
        raise ValueError("loss_prior needs one positive count and one positive loss weight per class")
    implied = counts * weights
    return implied / implied.sum()


def classwise_calibration_error(labels, probs, bins: int = 15) -> dict:
    """Class-wise ECE: for every class c, the binned gap between P(c) and how often c is the truth, over all
    images (weighted by bin size); and their mean over classes.

    Why beside top-label ECE: top-label ECE only looks at each image's highest probability, so a model can be
    well calibrated there while every P(mel) it reports for the other images is off by a factor.
    Returns {"per_class": [gap of class 0, ...], "mean": float}.
    """
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels)
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    gaps = []
    for c in range(probs.shape[1]):
        p = probs[:, c]
        truth = (labels == c).astype(np.float64)
        index = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, int(bins) - 1)
        count = np.bincount(index, minlength=int(bins))
        filled = count > 0
        mean_p = np.bincount(index, p, minlength=int(bins))[filled] / count[filled]
        share = np.bincount(index, truth, minlength=int(bins))[filled] / count[filled]
        gaps.append(float(np.sum(count[filled] * np.abs(share - mean_p)) / len(p)))
    return {"per_class": gaps, "mean": float(np.mean(gaps))}


def prior_from_shares(shares: dict, reference_prior, classes) -> np.ndarray:
    """A population's class prior from the shares a user knows, e.g. {"mel": 0.02}: the named classes get their
    shares, the others split the rest in the proportions of `reference_prior` (e.g. HAM10000's training mix).

    Naming every class needs shares summing to 1; naming some needs them to sum below 1.
    """
    classes = list(classes)
    unknown = sorted(set(shares) - set(classes))
    if unknown:
        raise ValueError(f"unknown class(es) {unknown} in the prior; classes are {', '.join(classes)}")
    if any(
        not (0.0 < float(v) < 1.0 or (float(v) == 1.0 and len(shares) == 1 == len(classes))) for v in shares.values()
    ):
        raise ValueError(f"every share of the prior must lie strictly between 0 and 1, got {shares}")
    given = sum(float(v) for v in shares.values())
    reference = _prior_vector(reference_prior, len(classes), "reference_prior")
    rest = [i for i, code in enumerate(classes) if code not in shares]
    if not rest:
        if abs(given - 1.0) > 1e-6:
            raise ValueError(f"the shares of all {len(classes)} classes must sum to 1, not {given:.6g}")
        return np.array([float(shares[code]) for code in classes])
    if given >= 1.0:
        raise ValueError(
            f"the named shares sum to {given:.6g}, leaving nothing for {', '.join(classes[i] for i in rest)}"
        )
    prior = np.array([float(shares.get(code, 0.0)) for code in classes])
    prior[rest] = (1.0 - given) * reference[rest] / reference[rest].sum()
    return prior


def prior_scores(labels, as_trained, shifted, shifted_name: str = "training_prior") -> dict:
    """Calibration (class-wise and top-label ECE, NLL, mean probability per class) and accuracy of one split's
    probabilities as trained and after a prior correction (`shift_prior`), with each class's share of the
    labels: what `skinlib fit-prior`, `evaluate --prior` and the evaluation chapter report."""

    labels = np.asarray(labels)
    scores = {}
    for name, probs in (("as_trained", as_trained), (shifted_name, shifted)):
        report = classification_report_dict(labels, probs)
        scores[name] = {
            key: report[key] for key in ("balanced_accuracy", "accuracy", "macro_roc_auc", "expected_calibration_error")
        }
        scores[name]["classwise_calibration_error"] = classwise_calibration_error(labels, probs)["mean"]
        scores[name]["negative_log_likelihood"] = negative_log_likelihood(labels, probs)
        scores[name]["mean_probability"] = dict(zip(CLASSES, np.mean(probs, axis=0).tolist()))
    scores["class_rate"] = dict(zip(CLASSES, (np.bincount(labels, minlength=len(CLASSES)) / len(labels)).tolist()))
    return scores
