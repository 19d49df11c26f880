"""How the classifier does for each group of patients and lesions: balanced accuracy and melanoma recall by
age band, sex, anatomical site and how the diagnosis was confirmed (`dx_type`), each with a 95 % interval.

Why: one overall score can hide a group the model serves badly, and a model card has to say for whom its
numbers hold. Why intervals: a subgroup is a fraction of an already small test split (a site may hold a few
dozen images, a few melanomas), so its score moves a lot from one draw of lesions to the next; a subgroup is
"worse" only when its interval says so. Intervals are the lesion-level percentile bootstrap of
`skinlib.evaluation.report.bootstrap_ci` (each drawn lesion brings all its images), computed inside each
subgroup.

Balanced accuracy here is the mean recall over the classes *present in the subgroup* (`classes` names them):
a subgroup without dermatofibromas is not scored on them. Two subgroups with different class mixes are
therefore scored on different tasks, which is why `dx_type` (histopathology confirms mostly suspicious
lesions, follow-up only nevi) says more about the class mix than about the confirmation itself.
Melanoma recall counts *images*: the share of the subgroup's melanoma images called melanoma.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.classes import CLASS_INDEX, CLASSES
from .classification import balanced_accuracy
from .report import bootstrap_ci

__all__ = [
    "AGE_BANDS",
    "ATTRIBUTES",
    "OTHER_SITE",
    "UNKNOWN",
    "INTERVALS",
    "age_bands",
    "below_overall",
    "all_or_none_interval",
    "melanoma_recall",
    "pooled_sites",
    "subgroup_columns",
    "subgroup_table",
]

#: (label, lowest age, first age above) of each age band; HAM10000 records ages in steps of 5 years.
AGE_BANDS = (("<30", 0, 30), ("30-44", 30, 45), ("45-59", 45, 60), ("60-74", 60, 75), (">=75", 75, np.inf))
UNKNOWN = "unknown"
#: The subgroup that pools the sites with too few images to be read on their own.
OTHER_SITE = "other"
#: The attributes a subgroup table splits by, and the metadata column each comes from.
ATTRIBUTES = {"age band": "age", "sex": "sex", "site": "localization", "dx_type": "dx_type"}
MELANOMA = CLASS_INDEX["mel"]


def age_bands(age) -> pd.Series:
    """Each image's age band (`AGE_BANDS`), "unknown" where the age is missing; ordered as the bands."""
    age = pd.to_numeric(pd.Series(age), errors="coerce").reset_index(drop=True)
    labels = [label for label, _, _ in AGE_BANDS]
    bands = pd.Series(UNKNOWN, index=age.index, dtype=object)
    for label, low, high in AGE_BANDS:
        bands[(age >= low) & (age < high)] = label
    return pd.Series(pd.Categorical(bands, categories=[*labels, UNKNOWN], ordered=True))


def _filled(values) -> pd.Series:
    """Strings with missing values and blanks as "unknown"."""
    values = pd.Series(values, dtype=object).reset_index(drop=True)
    missing = values.isna() | (values.astype(str).str.strip() == "")
    return values.where(~missing, UNKNOWN).astype(str)


def pooled_sites(localization, min_images: int = 30) -> list[str]:
    """The sites with fewer than `min_images` images, pooled as "other" (a missing site stays "unknown")."""
    counts = _filled(localization).value_counts()
    return sorted(site for site, count in counts.items() if count < min_images and site != UNKNOWN)


def subgroup_columns(metadata: pd.DataFrame, min_site_images: int = 30) -> pd.DataFrame:
    """One column per attribute of `ATTRIBUTES`, one row per image (in `metadata`'s order): the subgroup it
    falls in. Rare sites are pooled as "other" (`pooled_sites`); missing values read "unknown"."""
    missing = [column for column in ATTRIBUTES.values() if column not in metadata]
    if missing:
        raise ValueError(f"metadata lacks the column(s) {', '.join(missing)}")
    site = _filled(metadata["localization"])
    site = site.where(~site.isin(pooled_sites(site, min_site_images)), OTHER_SITE)
    return pd.DataFrame(
        {
            "age band": age_bands(metadata["age"]),
            "sex": _filled(metadata["sex"]),
            "site": site,
            "dx_type": _filled(metadata["dx_type"]),
        }
    )


def _ordered(values: pd.Series) -> list:
    """The subgroups of one attribute: age bands in order, others largest first, "other" and "unknown" last."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return list(values.cat.categories)
    counts = values.value_counts()
    last = [group for group in (OTHER_SITE, UNKNOWN) if group in counts.index]
    return [group for group in counts.index if group not in last] + last


def melanoma_recall(y_true, y_pred) -> float:
    """Share of the melanoma images called melanoma (NaN without melanomas). y_pred: classes or probabilities."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_pred.ndim == 2:
        y_pred = y_pred.argmax(axis=1)
    melanomas = y_true == MELANOMA
    return float(np.mean(y_pred[melanomas] == MELANOMA)) if melanomas.any() else float("nan")


def _interval(metric, labels, predicted, lesions, enough: bool, n_bootstrap: int, seed: int):
    if not enough:
        return np.nan, np.nan
    return tuple(bootstrap_ci(metric, labels, predicted, n=n_bootstrap, seed=seed, groups=lesions))


def all_or_none_interval(found: bool, lesions: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a recall of 1 (`found`) or 0 over `lesions` independent lesions.

    Why: when every melanoma of a subgroup is found (or none is), every bootstrap draw scores the same and
    the percentile interval collapses to a point, claiming a certainty a handful of lesions cannot give.
    All of m found bounds the recall below by (alpha/2)^(1/m); none found bounds it above by 1 - that.
    """
    bound = (alpha / 2) ** (1 / lesions)
    return (bound, 1.0) if found else (0.0, 1.0 - bound)


def _row(labels, predicted, lesions, rules: dict, n_bootstrap: int, seed: int) -> dict:
    """The scores of one subgroup's images."""
    n_lesions = len(np.unique(lesions))
    is_melanoma = labels == MELANOMA
    melanomas = int(np.count_nonzero(is_melanoma))
    mel_lesions = len(np.unique(lesions[is_melanoma]))
    present = [code for k, code in enumerate(CLASSES) if np.any(labels == k)]
    ba_enough = n_lesions >= rules["min_lesions"]
    mel_enough = mel_lesions >= rules["min_melanomas"]
    ba_low, ba_high = _interval(balanced_accuracy, labels, predicted, lesions, ba_enough, n_bootstrap, seed)
    recall = melanoma_recall(labels, predicted)
    mel_low, mel_high = _interval(melanoma_recall, labels, predicted, lesions, mel_enough, n_bootstrap, seed)
    notes = []
    if not ba_enough:
        notes.append(f"too few lesions for a balanced-accuracy interval ({n_lesions})")
    elif len(present) == 1:
        notes.append(f"one class ({present[0]}): balanced accuracy is its recall")
    if not mel_enough:
        notes.append(f"too few melanoma lesions for an interval ({mel_lesions})")
    elif recall in (0.0, 1.0):
        mel_low, mel_high = all_or_none_interval(recall == 1.0, mel_lesions)
        notes.append(f"{'all' if recall else 'no'} melanomas found: exact interval over {mel_lesions} lesions")
    return {
        "images": len(labels),
        "lesions": n_lesions,
        "classes": " ".join(present),
        "balanced_accuracy": balanced_accuracy(labels, predicted) if present else np.nan,
        "ba_low": ba_low,
        "ba_high": ba_high,
        "melanomas": melanomas,
        "melanoma_lesions": mel_lesions,
        "melanoma_recall": recall,
        "mel_low": mel_low,
        "mel_high": mel_high,
        "note": "; ".join(notes),
    }


def subgroup_table(
    labels,
    predictions,
    metadata: pd.DataFrame,
    lesion_ids,
    n_bootstrap: int = 1000,
    seed: int = 0,
    min_site_images: int = 30,
    min_lesions: int = 20,
    min_melanomas: int = 5,
) -> pd.DataFrame:
    """Balanced accuracy and melanoma recall for every subgroup of `ATTRIBUTES`, and for all images.

    labels: class indices (N,); predictions: class indices (N,) or probabilities (N, K), scored by their
    argmax; metadata: age, sex, localization and dx_type, one row per image in the same order; lesion_ids:
    each image's lesion, the unit the bootstrap resamples. A subgroup with fewer than `min_lesions`
    lesions gets no balanced-accuracy interval, and one with fewer than `min_melanomas`
    melanoma lesions no recall interval: its `note` says so, the counts and point values stay. A melanoma
    recall of exactly 0 or 1 gets the exact interval of `all_or_none_interval` (the bootstrap's collapses).

    One row per (attribute, subgroup), the "all" row first: images, lesions, classes (the codes present:
    balanced accuracy averages their recalls), balanced_accuracy with ba_low/ba_high, melanomas (images), melanoma_lesions,
    melanoma_recall with mel_low/mel_high (95 % intervals, NaN where too few), note.
    """
    labels = np.asarray(labels).astype(int)
    predictions = np.asarray(predictions)
    predicted = predictions.argmax(axis=1) if predictions.ndim == 2 else predictions.astype(int)
    lesions = np.asarray(lesion_ids)
    if not len(labels) == len(predicted) == len(metadata) == len(lesions):
        raise ValueError(
            f"labels ({len(labels)}), predictions ({len(predicted)}), metadata ({len(metadata)}) and lesion ids "
            f"({len(lesions)}) must have one entry per image"
        )
    rules = {"min_lesions": min_lesions, "min_melanomas": min_melanomas}
    columns = subgroup_columns(metadata.reset_index(drop=True), min_site_images)
    rows = [{"attribute": "all", "subgroup": "all", **_row(labels, predicted, lesions, rules, n_bootstrap, seed)}]
    for attribute in ATTRIBUTES:
        values = columns[attribute]
        for group in _ordered(values):
            chosen = (values == group).to_numpy()
            if chosen.any():
                scores = _row(labels[chosen], predicted[chosen], lesions[chosen], rules, n_bootstrap, seed)
                rows.append({"attribute": attribute, "subgroup": str(group), **scores})
    return pd.DataFrame(rows)


#: The interval columns of each score in a subgroup table.
INTERVALS = {"balanced_accuracy": ("ba_low", "ba_high"), "melanoma_recall": ("mel_low", "mel_high")}


def below_overall(table: pd.DataFrame, score: str = "balanced_accuracy") -> pd.DataFrame:
    """The subgroups whose whole interval lies below the score of all images: the only ones the data say are
    served worse. (A subgroup is part of the whole, so this is a reading aid, not a formal test.)"""
    low, high = INTERVALS[score]
    overall = float(table.loc[table["attribute"] == "all", score].iloc[0])
    return table[(table["attribute"] != "all") & (table[high] < overall)]
