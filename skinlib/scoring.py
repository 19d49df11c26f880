"""`skinlib evaluate` on a labelled folder: the pipeline's classification metrics on any images with a label CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.errors import DataError
from .data.images import read_image
from .data.labels import read_labels
from .data.layout import image_files_by_stem
from .data.metadata import metadata_rows
from .evaluation.calibration import apply_temperature, prior_scores
from .evaluation.referral import referral_scores
from .evaluation.report import write_report
from .evaluation.subset import collection_report
from .runtime.classifier import StageTwo, prior_record
from .runtime.dual_stage import DualStage
from .runtime.views import SINGLE, Views


def score_labelled_folder(
    images_dir,
    labels_csv,
    pipeline: DualStage,
    views: Views = SINGLE,
    batch_size: int = 32,
    progress: bool = True,
    report_dir=None,
    metadata=None,
    prior=None,
) -> dict:
    """Classification metrics of the pipeline on any folder of images with a label CSV, its probabilities
    averaged over `views` (`skinlib.runtime.views.Views`; default: no TTA).

    Images are matched to labels by file stem; labelled images that are missing are counted and listed,
    never silently dropped. Unreadable images are an error naming the file. `metadata` (a table with
    `image_id` and age/sex/site columns, e.g. the HAM10000 metadata CSV) scores the image + metadata fusion;
    `prior` scores the probabilities for a population with that class mix (`DualStage.classify`), with the
    class-wise calibration before and after beside them. Labels that lack some of the classes (a collection such
    as ISIC 2017) give the 7-class answer as is and the answer restricted to the classes present, naming the
    absent ones (`skinlib.evaluation.subset.collection_report`).
    """
    from tqdm.auto import tqdm

    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise DataError(f"images folder {images_dir} does not exist.")
    labels = read_labels(labels_csv)
    files = image_files_by_stem(images_dir)
    present = labels[labels["image_id"].isin(files)].reset_index(drop=True)
    missing = labels.loc[~labels["image_id"].isin(files), "image_id"].tolist()
    if present.empty:
        raise DataError(f"none of the {len(labels)} labelled images of {labels_csv} is in {images_dir}.")
    raw, lesion_found, novelty = [], [], []
    for start in tqdm(range(0, len(present), batch_size), desc="evaluating", unit="batch", disable=not progress):
        ids = present["image_id"].iloc[start : start + batch_size]
        images = [read_image(files[i]) for i in ids]
        _, crops, inputs = pipeline.prepare(images)
        batch_raw, batch_novelty = pipeline.classifier.raw_probabilities_and_novelty(inputs, views)
        raw.append(batch_raw)
        novelty.append(batch_novelty)
        lesion_found += [c.used_mask for c in crops]
    raw = np.concatenate(raw)
    probs = apply_temperature(raw, pipeline.classifier.temperature_for(views))
    fusion = None
    if metadata is not None:
        probs, used = pipeline.classifier.with_metadata(
            probs, metadata_rows(metadata, present["image_id"]), views, where=str(labels_csv)
        )
        fusion = {
            "weight": pipeline.classifier.metadata_weight(views),
            "images_with_metadata": sum(u is not None for u in used),
            **{f"images_with_{name}": sum(bool(u and name in u) for u in used) for name in ("age", "sex", "site")},
        }
    labels_array = present["label"].to_numpy()
    flagged_on, prior_effect = probs, None
    if prior is not None:
        probs = pipeline.classifier.with_prior(probs, prior)
        prior_effect = prior_scores(labels_array, flagged_on, probs, shifted_name="with_prior")
    report = collection_report(labels_array, probs)  # labels lacking some classes: both readings, absent ones named
    threshold = pipeline.classifier.referral_threshold(views, metadata=metadata is not None)
    if threshold is not None:  # the model's own threshold, fixed on HAM10000 validation: never refitted here
        report["melanoma_referral"] = referral_scores(labels_array, flagged_on, threshold)
    if report_dir is not None:
        groups = present["lesion_id"].to_numpy() if "lesion_id" in present else None
        full = write_report(
            labels_array,
            probs,
            report_dir,
            classes_present=report.get("classes_present"),
            probs_uncalibrated=None if prior is not None else raw,
            referral_threshold=None if prior is not None else threshold,
            groups=groups,
            title=f"dual-stage pipeline on {Path(images_dir).name}{views.title()}"
            f"{' + metadata' if metadata is not None else ''}",
        )
        report["report_dir"] = str(report_dir)
        report["confidence_intervals"] = full.get("confidence_intervals")
        report["bootstrap"] = full["bootstrap"]
        if "confidence_intervals_image_level" in full:
            report["confidence_intervals_image_level"] = full["confidence_intervals_image_level"]
        report["melanoma_operating_points"] = full.get("melanoma_operating_points")
        if "restricted_to_present_classes" in full:  # with its intervals and calibration
            report["restricted_to_present_classes"] = full["restricted_to_present_classes"]
    report.update(
        {
            "images": str(images_dir),
            "labels": str(labels_csv),
            **views.record(),
            "class_prior": prior_record(prior),
            "prior_correction": prior_effect,
            "metadata_fusion": fusion,
            "labelled_but_missing": len(missing),
            "missing_examples": missing[:20],
            "fraction_with_lesion_crop": float(np.mean(lesion_found)),
            "unlike_training_images": _novelty_summary(pipeline.classifier, novelty, present["image_id"]),
        }
    )
    return report


def _novelty_summary(classifier: StageTwo, scores: list, image_ids) -> dict | None:
    """How many images of a scored folder the novelty check flags (None: the model has none). A folder from
    another clinic or device with many flagged images is one where HAM10000's numbers should not be assumed."""
    if classifier.novelty is None:
        return None
    scores = np.concatenate(scores)
    flagged = scores > classifier.novelty.threshold
    return {
        "threshold": classifier.novelty.threshold,
        "flagged": int(flagged.sum()),
        "fraction": float(flagged.mean()),
        "median_score": float(np.median(scores)),
        "examples": [str(i) for i in np.asarray(image_ids)[flagged][:20]],
    }
