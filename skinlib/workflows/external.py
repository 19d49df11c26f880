"""Every ablation row scored on an external collection (e.g. ISIC 2017): read after the choice, never part of it.

A row's HAM10000 validation score chooses; its test score reports; its score on a collection from other clinics
says whether what it gained travels. The collection enters nothing that chooses: `replacement_verdict` reads
validation only (tested), and no temperature, threshold or weight is fitted on it. Each row's model scores the
collection's images through the dual stage (the shipped U-Net crops them, as the row's HAM10000 inputs were
cropped), with the row's views and the temperature fitted on HAM10000 validation for them. The raw probabilities are
saved beside the row's predictions (`external/<collection>.npz`), so collecting is cheap and repeatable.

A collection with some of the seven classes (ISIC 2017: mel, bkl, nv) is read both ways
(`skinlib.evaluation.subset`): the 7-class answer as is and the answer restricted to the classes present. Intervals
resample images: such a collection has no lesion ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from ..data import CLASSES
from ..data.errors import DataError
from ..data.images import read_image
from ..data.labels import read_labels
from ..data.layout import collection_name, image_files_by_stem
from ..evaluation.calibration import apply_temperature
from ..evaluation.report import bootstrap_ci, paired_bootstrap_difference
from ..evaluation.robustness import REFERENCE_CAST, colour_cast
from ..evaluation.subset import present_indices, restrict_probabilities, subset_readings
from ..runtime import StageTwo
from ..runtime.dual_stage import DualStage
from ..segmentation.segmenter import UNetSegmenter
from .ablation import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, PREDICTIONS_FILE, _row, model_dir, row_dir

MELANOMA = CLASSES.index("mel")


@dataclass(frozen=True)
class ExternalCollection:
    """A labelled folder from elsewhere: its images, its label CSV (`read_labels` formats) and a short name."""

    images: Path
    labels: Path
    name: str

    @classmethod
    def of(cls, images, labels, name: str | None = None) -> ExternalCollection:
        """The collection; its name defaults to the folder that holds `images/` (isic2017), else `images`' own."""
        images, labels = Path(images), Path(labels)
        if not images.is_dir():
            raise DataError(f"external images folder {images} does not exist (give --external IMAGES LABELS).")
        if not labels.is_file():
            raise DataError(f"external labels file {labels} not found (give --external IMAGES LABELS).")
        return cls(images, labels, name or collection_name(images))


def external_file(out_dir, name: str, collection: str) -> Path:
    """Where row `name`'s raw probabilities on `collection` are saved: under the row's own name, also for a TTA
    row whose HAM10000 predictions live with the model it reuses (its views differ from that model's row)."""
    return Path(out_dir) / name / "external" / f"{collection}.npz"


def not_applicable(name: str) -> str | None:
    """Why row `name` cannot be scored on a collection of images alone (None: it can)."""
    if _row(name).metadata:
        return "needs age, sex and site for every image, which the collection does not give"
    return None


class PreparedInputs:
    """The collection's labelled images, read and cropped once per (source, margin, size) for all rows: the U-Net
    masks the same images whichever classifier follows, so rows share them."""

    def __init__(self, collection: ExternalCollection, segmenter=None, progress: bool = True):
        self.collection, self.progress = collection, progress
        self.segmenter = segmenter if segmenter is not None else UNetSegmenter.load()  # the shipped U-Net
        labels = read_labels(collection.labels)
        files = image_files_by_stem(collection.images)
        missing = labels.loc[~labels["image_id"].isin(files), "image_id"].tolist()
        if missing:
            raise DataError(
                f"{len(missing)} labelled image(s) of {collection.labels} are not in {collection.images}, "
                f"e.g. {missing[:5]}: an external score must cover the whole collection."
            )
        self.image_ids = labels["image_id"].to_numpy().astype(str)
        self.labels = labels["label"].to_numpy()
        self.files = [files[i] for i in self.image_ids]
        self._inputs: dict = {}

    def inputs_for(self, classifier: StageTwo, batch_size: int = 64) -> np.ndarray:
        key = (classifier.source, classifier.margin, classifier.image_size)
        if key not in self._inputs:
            from tqdm.auto import tqdm

            pipeline = DualStage(self.segmenter, classifier)
            batches = []
            starts = range(0, len(self.files), batch_size)
            for start in tqdm(starts, desc=f"{self.collection.name} inputs", unit="batch", disable=not self.progress):
                images = [read_image(path) for path in self.files[start : start + batch_size]]
                batches.append(pipeline.prepare(images)[2])
            self._inputs[key] = np.concatenate(batches)
        return self._inputs[key]


def score_row_externally(name: str, out_dir, prepared: PreparedInputs) -> Path | None:
    """Save row `name`'s raw probabilities on the collection (its own model and views); None when not applicable.
    Kept when already saved (rerun to resume; delete the file to score again)."""
    path = external_file(out_dir, name, prepared.collection.name)
    if not_applicable(name) or path.is_file():
        return None if not_applicable(name) else path
    row = _row(name)
    model = StageTwo.load(model_dir(out_dir, name))
    views = row.views.describe() + ("" if row.views.kind == "single" else " views")
    print(f"[ablation] {name}: scoring {prepared.collection.name} ({views})", flush=True)
    raw = model.raw_probabilities(prepared.inputs_for(model), row.views)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, raw=raw.astype(np.float32), labels=prepared.labels, image_ids=prepared.image_ids)
    return path


def row_temperature(name: str, out_dir) -> float:
    """The temperature row `name`'s HAM10000 predictions were calibrated with (fitted on HAM10000 validation):
    recorded in its predictions file, or the model's own for these views."""
    row = _row(name)
    with np.load(row_dir(out_dir, name) / "run" / PREDICTIONS_FILE) as arrays:
        key = f"temperature_{'tta' if row.tta else 'plain'}"
        if key in arrays.files:
            return float(arrays[key])
    if row.own_tta_views and row.views.kind != "augmented":
        raise DataError(
            f"row {name!r}'s validation temperature for its views was not recorded (predictions written before "
            f"skinlib saved it): delete {row_dir(out_dir, name) / 'run' / PREDICTIONS_FILE} and rerun the row"
        )
    return StageTwo.load(model_dir(out_dir, name)).temperature_for(row.views)


def _restricted_balanced_accuracy(present: list[int]):
    def metric(labels, probs):
        return balanced_accuracy_score(labels, np.asarray(present)[restrict_probabilities(probs, present).argmax(1)])

    return metric


def _as_is_balanced_accuracy(present: list[int]):
    def metric(labels, probs):  # mean recall over the classes present; a prediction of an absent class is a miss
        predicted = probs.argmax(1)
        return float(np.mean([np.mean(predicted[labels == k] == k) for k in present if np.any(labels == k)]))

    return metric


def external_scores(
    labels, probs, reference_probs=None, reference: str = "baseline", samples: int = BOOTSTRAP_SAMPLES
) -> dict:
    """The collection's headline numbers for one row: balanced accuracy as is and restricted to the classes
    present (95 % intervals over images), melanoma one-vs-rest AUC, the share of answers naming an absent class,
    and, given `reference_probs` (the baseline's, or the same model without a cast), the paired difference of the
    restricted balanced accuracy against them."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    present = present_indices(labels)
    readings = subset_readings(labels, probs)
    as_is, restricted = readings["as_is"], readings["restricted_to_present_classes"]
    metrics = {"as_is": _as_is_balanced_accuracy(present), "restricted": _restricted_balanced_accuracy(present)}
    scores = {
        "images": int(len(labels)),
        "classes_present": readings["classes_present"],
        "bootstrap": {"unit": "images", "samples": samples, "seed": BOOTSTRAP_SEED},
        "balanced_accuracy_as_is": as_is["balanced_accuracy"],
        "balanced_accuracy_restricted": restricted["balanced_accuracy"],
        "melanoma_roc_auc": as_is["per_class"].get("mel", {}).get("roc_auc"),
        "predicted_absent_share": as_is["predicted_absent"]["share"],
    }
    for key, metric in metrics.items():
        low, high = bootstrap_ci(metric, labels, probs, samples, BOOTSTRAP_SEED)
        scores[f"balanced_accuracy_{'as_is' if key == 'as_is' else 'restricted'}_ci95"] = [low, high]
    if reference_probs is not None:
        gain = paired_bootstrap_difference(
            metrics["restricted"], labels, np.asarray(reference_probs), probs, samples, BOOTSTRAP_SEED
        )
        scores["restricted_change"] = {"against": reference, "difference": gain[0], "ci95": [gain[1], gain[2]]}
    return scores


def collect_external(out_dir, names, collection: str, samples: int = BOOTSTRAP_SAMPLES) -> dict:
    """{row: scores on `collection`, or {"not_applicable": why}} for the rows scored on it; rows not scored yet
    are left out (the table shows them as missing)."""
    baseline = _calibrated(out_dir, "baseline", collection)
    results = {}
    for name in names:
        if not_applicable(name):
            results[name] = {"not_applicable": not_applicable(name)}
            continue
        calibrated = _calibrated(out_dir, name, collection)
        if calibrated is None:
            continue
        labels, probs = calibrated
        results[name] = external_scores(labels, probs, None if baseline is None else baseline[1], samples=samples)
    return results


def _calibrated(out_dir, name: str, collection: str):
    path = external_file(out_dir, name, collection)
    if not path.is_file():
        return None
    with np.load(path) as arrays:
        return arrays["labels"], apply_temperature(arrays["raw"], row_temperature(name, out_dir))


def collections_scored(out_dir, names) -> list[str]:
    """The external collections some of the rows `names` have been scored on (their saved files' names)."""
    found = {path.stem for name in names for path in external_file(out_dir, name, "*").parent.glob("*.npz")}
    return sorted(found)


def with_external_columns(results: dict, out_dir, samples: int = BOOTSTRAP_SAMPLES) -> dict:
    """`results` (the ablation JSON) with each row's scores on every collection its rows were scored on, under
    row["external"][collection], and a top-level note saying how they were read. Rows carried over from an
    earlier JSON keep their own external scores unless they were scored again."""
    names = [row["name"] for row in results["rows"]]
    collections = collections_scored(out_dir, names)
    if not collections:
        return results
    for collection in collections:
        scores = collect_external(out_dir, names, collection, samples)
        for row in results["rows"]:
            if row["name"] in scores:
                row.setdefault("external", {})[collection] = scores[row["name"]]
    results["external"] = {
        "collections": collections,
        "read": "after the choice: never used by replacement_verdict, no setting fitted on it; bootstrap over images",
    }
    return results


def external_cast_scores(classifier: StageTwo, prepared: PreparedInputs, casts: dict, samples: int = BOOTSTRAP_SAMPLES):
    """The colour-cast study's external column: `classifier` on the collection under each cast (its HAM10000
    temperature), each cast's restricted balanced accuracy compared with no cast on the same images."""
    inputs = prepared.inputs_for(classifier)
    probs = {name: classifier.probabilities(colour_cast(inputs, gains)) for name, gains in casts.items()}
    return {
        "collection": prepared.collection.name,
        "read": "after the choice; bootstrap over images",
        "casts": {
            name: external_scores(
                prepared.labels,
                probs[name],
                None if name == REFERENCE_CAST else probs[REFERENCE_CAST],
                reference=f"{REFERENCE_CAST!r} cast",
                samples=samples,
            )
            for name in casts
        },
    }
