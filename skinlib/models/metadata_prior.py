"""Image + metadata fusion: what a patient's age, sex and lesion site add to the image's probabilities.

A dermatologist reads a lesion together with who has it and where: basal cell carcinomas sit on the
sun-exposed face of older people, nevi on the backs of the young. The fusion here is late and Bayesian:
the image model's calibrated probabilities are multiplied by how much more likely each class makes the
patient's metadata,

    log p(class | image, metadata) = log p(class | image) + w * sum_f log [p(m_f | class) / p(m_f)] + const,

with p(m_f | class) counted on the training split (one count per lesion, Laplace-smoothed) for each field
f in (age decade, sex, site), naive Bayes style. The image model is not retrained. A field that is missing,
"unknown" or a value training never saw adds nothing, so images without metadata keep their image-only
probabilities, and any dermoscopy set with some of the fields can use the rest. The one free number, the
weight w (1 = trust the naive-Bayes independence fully; less when metadata and image overlap, e.g. the site
is visible in the picture), is fitted on the validation split by negative log-likelihood.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.classes import CLASSES
from ..evaluation.calibration import negative_log_likelihood

FIELDS = ("age", "sex", "site")
#: Accepted column names per field: HAM10000 metadata first, then the ISIC archive's names.
COLUMN_ALIASES = {
    "age": ("age", "age_approx"),
    "sex": ("sex",),
    "site": ("localization", "anatom_site_general", "anatom_site_general_challenge"),
}
MISSING_WORDS = {"", "unknown", "nan", "none", "na", "n/a"}
AGE_DECADE_CAP = 8  # 80 and older share one bin (HAM10000 ages stop at 85)
#: Weights tried when fitting w on validation: 0 (image only) to 2 (twice the naive-Bayes update).
WEIGHT_GRID = tuple(np.round(np.arange(0.0, 2.0001, 0.05), 2))


def metadata_columns(frame: pd.DataFrame) -> dict[str, str]:
    """{field: column of `frame` that holds it} for the fields it has, by `COLUMN_ALIASES`."""
    return {
        field: next(c for c in names if c in frame.columns)
        for field, names in COLUMN_ALIASES.items()
        if any(c in frame.columns for c in names)
    }


def _age_bin(value) -> str | None:
    try:
        age = float(value)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(age) or age < 0 or age > 120:
        return None
    return f"{10 * min(int(age // 10), AGE_DECADE_CAP)}s"


def _word(value) -> str | None:
    text = (
        str(value).strip().lower() if value is not None and not (isinstance(value, float) and np.isnan(value)) else ""
    )
    return None if text in MISSING_WORDS else text


def metadata_values(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per image, columns `FIELDS`: age decade ("40s"), sex, site as lower-case words; None = missing.

    Reads HAM10000 columns (age, sex, localization) or the ISIC archive's (age_approx, sex,
    anatom_site_general); a field with no column is missing for every image.
    """
    columns = metadata_columns(frame)
    out = pd.DataFrame(index=frame.index)
    for field in FIELDS:
        raw = frame[columns[field]] if field in columns else pd.Series([None] * len(frame), index=frame.index)
        out[field] = [(_age_bin if field == "age" else _word)(v) for v in raw]
    return out.astype(object).where(out.notna(), None)


@dataclass
class MetadataPrior:
    """log p(value | class) - log p(value) per field and value, counted on training lesions."""

    tables: dict  # field -> value -> list of K log-ratios
    counts: dict  # field -> value -> list of K lesion counts (for plots and the model card)
    classes: tuple = CLASSES
    smoothing: float = 1.0

    @classmethod
    def fit(cls, frame: pd.DataFrame, smoothing: float = 1.0, classes=CLASSES) -> MetadataPrior:
        """Count the fields of `frame` (a training split with `label`, metadata and `lesion_id` columns).

        Each lesion counts once: HAM10000 has up to six images of one lesion, all with the same metadata.
        p(value) is the mean over classes of p(value | class), so the ratios do not favour common classes
        (the image model already holds the class prior).
        """
        if "label" not in frame.columns or frame.empty:
            raise ValueError("MetadataPrior.fit needs a non-empty frame with a `label` column (the training split)")
        if not metadata_columns(frame):
            raise ValueError(
                f"no metadata columns to count: expected some of {sorted(sum(COLUMN_ALIASES.values(), ()))}"
            )
        lesions = frame.drop_duplicates("lesion_id") if "lesion_id" in frame.columns else frame
        values = metadata_values(lesions)
        labels = lesions["label"].to_numpy()
        tables, counts = {}, {}
        for field in FIELDS:
            known = values[field].notna().to_numpy()
            if not known.any():
                continue
            table = pd.crosstab(values[field][known], labels[known]).reindex(columns=range(len(classes)), fill_value=0)
            smoothed = table.to_numpy(float) + smoothing
            given_class = smoothed / smoothed.sum(axis=0, keepdims=True)
            ratio = np.log(given_class) - np.log(given_class.mean(axis=1, keepdims=True))
            tables[field] = {str(v): row.tolist() for v, row in zip(table.index, ratio)}
            counts[field] = {str(v): row.tolist() for v, row in zip(table.index, table.to_numpy(int))}
        return cls(tables=tables, counts=counts, classes=tuple(classes), smoothing=float(smoothing))

    def log_ratios(self, values: pd.DataFrame) -> tuple[np.ndarray, dict]:
        """(N, K) summed log-ratios for rows of `metadata_values`, and per field how many values were used or
        ignored (a value training never saw adds nothing and is listed, so a new vocabulary is visible)."""
        out = np.zeros((len(values), len(self.classes)))
        usage = {}
        for field in FIELDS:
            table = self.tables.get(field, {})
            column = values[field].tolist() if field in values.columns else [None] * len(values)
            used = [i for i, v in enumerate(column) if v is not None and v in table]
            for i in used:
                out[i] += table[column[i]]
            ignored = sorted({v for v in column if v is not None and v not in table})
            usage[field] = {"used": len(used), "ignored_values": ignored}
        return out, usage

    def used_fields(self, values: pd.DataFrame) -> list[dict | None]:
        """Per row of `metadata_values`, the fields whose values the prior knows ({field: value}); None if none."""
        rows = values.to_dict("records")
        known = [{f: v for f, v in row.items() if v is not None and v in self.tables.get(f, {})} for row in rows]
        return [row or None for row in known]

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(
            json.dumps(
                {
                    "kind": "metadata_prior",
                    "classes": list(self.classes),
                    "smoothing": self.smoothing,
                    "tables": self.tables,
                    "lesion_counts": self.counts,
                },
                indent=1,
            )
            + "\n"
        )
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> MetadataPrior:
        stored = json.loads(Path(path).read_text())
        if stored.get("kind") != "metadata_prior":
            raise ValueError(
                f"{path} is not a metadata prior (kind {stored.get('kind')!r}); make one with `skinlib fit-metadata`"
            )
        return cls(
            tables=stored["tables"],
            counts=stored["lesion_counts"],
            classes=tuple(stored["classes"]),
            smoothing=stored["smoothing"],
        )


def fuse(probs: np.ndarray, log_ratios: np.ndarray, weight: float) -> np.ndarray:
    """softmax(log p + w * log-ratios): the image probabilities updated by the metadata."""
    logits = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)) + float(weight) * np.asarray(log_ratios)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_weight(labels, probs, log_ratios, grid=WEIGHT_GRID) -> float:
    """The w of `grid` with the lowest negative log-likelihood of the fused probabilities (call on validation)."""

    losses = [negative_log_likelihood(labels, fuse(probs, log_ratios, w)) for w in grid]
    return float(grid[int(np.argmin(losses))])


def warn_ignored(usage: dict, where: str) -> None:
    """One warning naming metadata values the prior has never seen (they were left out, not guessed)."""
    ignored = {field: info["ignored_values"] for field, info in usage.items() if info["ignored_values"]}
    if ignored:
        shown = "; ".join(f"{field}: {', '.join(map(str, values[:8]))}" for field, values in ignored.items())
        warnings.warn(
            f"{where}: metadata values unknown to the model were ignored ({shown}). HAM10000 sites are "
            "e.g. back, face, lower extremity; sex male/female; age in years.",
            stacklevel=2,
        )
