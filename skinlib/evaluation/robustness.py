"""How much a classifier's scores move when the light changes colour: a stand-in for other dermatoscopes.

A different device or lamp tints every pixel of an image alike: channel c is multiplied by a gain k_c.
`COLOUR_CASTS` are such tints with k_r k_g k_b = 1, so they change the colour of the light and not its
brightness. `colour_cast_scores` scores a classifier on the same images under each cast, with the paired
bootstrap interval of every change, so a model that leans on the light's colour shows it. The casts are
applied to the stage-2 inputs (the lesion crops), which isolates the classifier from the segmenter.
"""

from __future__ import annotations

import numpy as np

from .report import headline_scores, paired_gains, signed_interval

#: Per-channel RGB gains of each cast (product 1). "warm": a yellower lamp; "cool": a bluer one; "green": a
#: green-magenta shift, as white balance errors of cameras make; "strong" doubles the log-gain.
COLOUR_CASTS = {
    "none": (1.0, 1.0, 1.0),
    "warm": (1.15, 1.0, 1 / 1.15),
    "strong warm": (1.15**2, 1.0, 1 / 1.15**2),
    "cool": (1 / 1.15, 1.0, 1.15),
    "strong cool": (1 / 1.15**2, 1.0, 1.15**2),
    "green": (1 / 1.15**0.5, 1.15, 1 / 1.15**0.5),
}
REFERENCE_CAST = "none"


def colour_cast(images: np.ndarray, gains) -> np.ndarray:
    """`images` (N, H, W, 3) uint8 RGB with channel c multiplied by gains[c], rounded and clipped to uint8."""
    gains = np.asarray(gains, np.float32)
    if gains.shape != (3,) or not np.all(gains > 0):
        raise ValueError(f"a colour cast is 3 positive RGB gains, got {gains.tolist()}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected RGB images (N, H, W, 3), got shape {images.shape}")
    return np.clip(np.rint(images.astype(np.float32) * gains), 0, 255).astype(np.uint8)


def colour_cast_scores(
    classifier,
    inputs: np.ndarray,
    labels: np.ndarray,
    casts: dict = COLOUR_CASTS,
    views=None,
    bootstrap: int = 1000,
    progress: bool = False,
    desc: str = "casts",
    groups=None,
) -> dict:
    """Per cast: the gains, `headline_scores` of the calibrated probabilities, and (every cast but "none") the
    change of balanced accuracy and macro AUC against no cast on the same images, with paired 95 % intervals.

    `classifier`: a `skinlib.runtime.StageTwo`; `inputs`: its uint8 stage-2 inputs; `labels`: class indices;
    `groups`: each image's lesion id (the intervals then resample lesions); `views`: TTA views to average (a
    `skinlib.runtime.views.Views`; None: the inputs as they are).
    """
    if REFERENCE_CAST not in casts:
        raise ValueError(f"casts must include {REFERENCE_CAST!r}, the reference the changes are measured against")
    from tqdm.auto import tqdm

    def calibrated(images):
        return classifier.probabilities(images) if views is None else classifier.probabilities(images, views)

    probs = {
        name: calibrated(colour_cast(inputs, gains))
        for name, gains in tqdm(casts.items(), desc=desc, unit="cast", disable=not progress)
    }
    scores = {}
    for name, gains in casts.items():
        scores[name] = {"gains": [float(g) for g in gains], **headline_scores(labels, probs[name])}
        if name != REFERENCE_CAST:
            scores[name]["change"] = paired_gains(
                labels, probs[REFERENCE_CAST], probs[name], n=bootstrap, groups=groups
            )
    return scores


def model_bootstrap_unit(record: dict) -> str:
    """What a model's intervals in a study resampled: "lesions", or "images" for a model scored before the
    study resampled lesions (too narrow until it is scored again)."""
    return record.get("bootstrap_unit", "images")


def merge_colour_cast_studies(existing: dict, fresh: dict, source: str = "the study JSON") -> dict:
    """`existing` with the models of `fresh` replaced or added, so one model can be rescored without the others.
    Refuses unless both used the same casts, splits and sample limit; kept models keep their bootstrap unit."""
    for key in ("casts", "splits", "limit"):
        if existing.get(key) != fresh.get(key):
            raise ValueError(
                f"{source} has {key}={existing.get(key)!r} but this run has {fresh.get(key)!r}; "
                "score every model again instead of --update"
            )
    kept = {
        name: {**record, "bootstrap_unit": model_bootstrap_unit(record)} for name, record in existing["models"].items()
    }
    return {
        **existing,
        **{key: value for key, value in fresh.items() if key != "models"},
        "models": kept | fresh["models"],
    }


def colour_cast_cell(scores: dict) -> str:
    """One model, split and cast of a study as text: balanced accuracy, and for a cast its change with the
    paired 95 % interval, e.g. "0.623 (-0.064 [-0.090, -0.037])"."""
    change = scores.get("change")
    if change is None:
        return f"{scores['balanced_accuracy']:.3f}"
    gain = change["balanced_accuracy"]
    return f"{scores['balanced_accuracy']:.3f} ({signed_interval(gain['difference'], *gain['ci95'])})"


def colour_cast_rows(study: dict) -> list[dict]:
    """The study as table rows, one per model and split ({"model", "split", cast: cell, ...}): what the
    `colour-casts` command prints and the new-images chapter shows."""
    return [
        {
            "model": name,
            "split": split,
            "bootstrap": model_bootstrap_unit(record),
            **{cast: colour_cast_cell(record[split][cast]) for cast in study["casts"]},
        }
        for name, record in study["models"].items()
        for split in study["splits"]
    ]
