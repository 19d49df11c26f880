"""The dual-stage pipeline a user calls: segment, crop, classify (optionally with TTA), calibrate.

A shipped classifier folder holds `model.json` (architecture, input size, crop margin, temperature,
uncertainty threshold), `weights.npz` (float16) and `metrics.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.classes import CLASSES
from .data.images import fit_size
from .evaluation.calibration import apply_temperature
from .shipped import CLASSIFIER

DEFAULT_CLASSIFIER = CLASSIFIER

#: Below this calibrated top probability a prediction is flagged "uncertain" (refer to a clinician).
UNCERTAIN_BELOW = 0.5


@dataclass
class StageTwo:
    """The shipped classifier with its input size, crop margin and calibration.

    It may be an ensemble: `members` are models of one architecture trained with different seeds, and
    every probability is the mean of theirs (Grad-CAM and attention maps too, see `skinlib.explain`).
    `model` is the first member, for code that needs one Keras model (layer names, shapes).
    """

    model: object
    image_size: int
    margin: float = 0.25
    source: str = "crop"
    temperature: float = 1.0
    uncertain_below: float = UNCERTAIN_BELOW
    spec: dict = field(default_factory=dict)
    members: list = field(default_factory=list)
    metadata_prior: object = None  # a MetadataPrior when `skinlib fit-metadata` has fitted one for this model
    novelty: object = None  # a NoveltyModel when `skinlib fit-novelty` has fitted one for this model
    _feature_model: object = field(default=None, init=False, repr=False)  # see `_with_features`

    def __post_init__(self):
        self.members = list(self.members) or [self.model]
        if self.members[0] is not self.model:
            raise ValueError("StageTwo: `model` must be the first of `members`")

    @classmethod
    def load(cls, folder: str | Path = DEFAULT_CLASSIFIER) -> "StageTwo":
        from .models.classifier import build_classifier
        from .models.storage import load_compact_weights, read_model_spec

        folder = Path(folder)
        spec = read_model_spec(folder, "classifier", f"skinlib train-classifier --out {folder}")
        size = int(spec["image_size"])
        members = []
        for name in spec.get("members") or [spec.get("weights", "weights.npz")]:
            model = build_classifier((size, size, 3), backbone=spec["backbone"], backbone_weights=None,
                                     attention=spec["attention"], dropout=spec.get("dropout", 0.3),
                                     colour_constancy=spec.get("colour_constancy", False))
            members.append(load_compact_weights(model, folder / name))
        prior = None
        if spec.get("metadata_fusion"):
            from .models.metadata_prior import MetadataPrior

            prior = MetadataPrior.from_json(folder / spec["metadata_fusion"]["prior"])
        novelty = None
        if spec.get("novelty"):
            from .models.novelty import NoveltyModel

            novelty = NoveltyModel.load(folder / spec["novelty"]["file"])
        return cls(model=members[0], image_size=size, margin=spec.get("margin", 0.25),
                   source=spec.get("source", "crop"), temperature=spec.get("temperature", 1.0),
                   uncertain_below=spec.get("uncertain_below", UNCERTAIN_BELOW), spec=spec, members=members,
                   metadata_prior=prior, novelty=novelty)

    def raw_probabilities(self, inputs: np.ndarray, tta: bool = False, batch_size: int = 64,
                          scales=None, augmented: bool = False) -> np.ndarray:
        """Uncalibrated probabilities of square uint8 inputs (N, S, S, 3), averaged over the members.

        TTA averages the 8 dihedral views; `scales` (TTA only, e.g. (1.0, 1.2)) adds the same 8 views of
        each zoomed crop; `augmented` (TTA only) averages 16 views drawn from the training augmentation
        instead (`skinlib.tta`). All views of a chunk go through each member in one call.
        """
        return self._member_average(inputs, tta, batch_size, scales, augmented, with_features=False)[0]

    def member_probabilities(self, index: int, inputs: np.ndarray, tta: bool = False, batch_size: int = 64,
                             scales=None, augmented: bool = False) -> np.ndarray:
        """Uncalibrated probabilities of member `index` alone (see `raw_probabilities`)."""
        from .models.inference import predict_in_batches

        probs = predict_in_batches(self.members[index], _views(inputs, tta, scales, augmented), batch_size)
        return _fold_views(probs, len(inputs), tta)

    def raw_probabilities_and_novelty(self, inputs: np.ndarray, tta: bool = False, batch_size: int = 64,
                                      scales=None, augmented: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """`raw_probabilities` and the novelty scores (None without a novelty model) in one pass: the first
        member runs with its pooled features as a second output, so the check costs no second backbone pass.
        The features are the un-augmented input's (with TTA: its identity view at scale 1)."""
        from .tta import identity_view_start

        if self.novelty is None:
            return self.raw_probabilities(inputs, tta, batch_size, scales, augmented), None
        probs, features = self._member_average(inputs, tta, batch_size, scales, augmented, with_features=True)
        identity = identity_view_start(len(inputs), scales, augmented) if tta else 0
        if identity is None:  # no TTA view (augmented, or no scale 1) showed the network the input as it is
            features = self.features(inputs, batch_size)
        else:
            features = features[identity : identity + len(inputs)]
        return probs, self.novelty.score(features)

    def _member_average(self, inputs: np.ndarray, tta: bool, batch_size: int, scales, augmented: bool,
                        with_features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The one path behind `raw_probabilities`: each member's view-averaged probabilities, averaged.
        With `with_features` the first member runs as its two-output twin and its pooled features of every
        view come back too (else None)."""
        from .models.inference import predict_in_batches

        views = _views(inputs, tta, scales, augmented)
        first = predict_in_batches(self._with_features() if with_features else self.model, views, batch_size)
        first_probs, features = first if with_features else (first, None)
        per_member = [first_probs] + [predict_in_batches(member, views, batch_size) for member in self.members[1:]]
        return np.mean([_fold_views(probs, len(inputs), tta) for probs in per_member], axis=0), features

    def _with_features(self):
        """The first member with its pooled features as a second output (built once)."""
        from .models.novelty import feature_model

        if self._feature_model is None:
            self._feature_model = feature_model(self.model)
        return self._feature_model

    def temperature_for(self, tta: bool, augmented: bool = False) -> float:
        """The temperature fitted on validation for plain or TTA predictions (they differ: TTA is smoother).

        TTA with extra scales reuses the TTA temperature, which was fitted on the 8 dihedral views; augmented
        TTA has its own (model.json "tta_augmented", written by `skinlib fit-tta`) and is refused without it.
        """
        if tta and augmented:
            if "tta_augmented" not in self.spec:
                from .data.errors import DataError

                raise DataError("this classifier has no temperature for augmented TTA views: run "
                                "`skinlib fit-tta --model DIR` once (it fits one on validation)")
            return float(self.spec["tta_augmented"]["temperature"])
        return float(self.spec.get("temperature_tta", self.temperature)) if tta else self.temperature

    def referral_threshold(self, tta: bool, metadata: bool = False) -> float | None:
        """The P(mel) threshold of the melanoma referral flag, fitted on validation (None: not fitted yet,
        run `skinlib fit-referral`). TTA with extra scales or augmented views reuses the TTA threshold. With `metadata`, the
        threshold fitted for the metadata-fused probabilities (`skinlib fit-metadata`)."""
        fitted_for = (self.spec.get("metadata_fusion") or {}) if metadata else self.spec
        referral = fitted_for.get("melanoma_referral")
        return None if not referral else float(referral["threshold_tta" if tta else "threshold"])

    def metadata_weight(self, tta: bool) -> float:
        """The fusion weight fitted on validation for plain or TTA probabilities (`skinlib fit-metadata`)."""
        return float(self.spec["metadata_fusion"]["weight_tta" if tta else "weight"])

    def with_metadata(self, probs: np.ndarray, metadata, tta: bool, where: str = "metadata") -> tuple[np.ndarray, list]:
        """Calibrated probabilities updated by each image's age, sex and site (`skinlib.models.metadata_prior`).

        `metadata`: a frame with HAM10000 (age, sex, localization) or ISIC archive columns, one row per image.
        Returns the fused probabilities and per image the fields used ({field: value}, None if none: that
        image keeps its image-only probabilities); warns about values the model has never seen. A model
        without a fitted prior is an error that says how to fit one.
        """
        from .data.errors import DataError
        from .models.metadata_prior import fuse, metadata_values, warn_ignored

        if self.metadata_prior is None:
            raise DataError("this classifier has no metadata fusion: fit one with "
                             "`skinlib fit-metadata --model DIR` (or leave out the metadata)")
        if len(metadata) != len(probs):
            raise ValueError(f"got metadata for {len(metadata)} images but {len(probs)} predictions")
        values = metadata_values(metadata.reset_index(drop=True))
        log_ratios, usage = self.metadata_prior.log_ratios(values)
        warn_ignored(usage, where)
        return fuse(probs, log_ratios, self.metadata_weight(tta)), self.metadata_prior.used_fields(values)

    def with_prior(self, probs: np.ndarray, target) -> np.ndarray:
        """Probabilities for a population with class prior `target` ("training": HAM10000's training mix, or one
        share per class) instead of the mix the loss implied (`skinlib.training.class_prior`, Bayes' rule)."""
        from .data.errors import DataError
        from .evaluation.calibration import shift_prior

        recorded = self.spec.get("class_prior")
        if not recorded:
            raise DataError("this classifier has no recorded class prior: run `skinlib fit-prior --model DIR` "
                            "(or leave out --prior)")
        target = recorded["training"] if isinstance(target, str) and target == "training" else target
        return shift_prior(probs, recorded["model"], target)

    def features(self, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """The pooled features the first member's head reads (N, D): what the novelty score is computed on."""
        from .models.inference import predict_in_batches

        return predict_in_batches(self._with_features(), inputs, batch_size)[1]

    def novelty_scores(self, inputs: np.ndarray) -> np.ndarray | None:
        """Novelty score per input (`skinlib.models.novelty`; None when this model has no novelty model)."""
        return None if self.novelty is None else self.novelty.score(self.features(inputs))

    def probabilities(self, inputs: np.ndarray, tta: bool = False, batch_size: int = 64, scales=None,
                      augmented: bool = False) -> np.ndarray:
        """Calibrated (temperature-scaled) probabilities."""
        raw = self.raw_probabilities(inputs, tta, batch_size, scales, augmented)
        return apply_temperature(raw, self.temperature_for(tta, augmented))


def _views(inputs: np.ndarray, tta: bool, scales, augmented: bool = False) -> np.ndarray:
    """What the network sees: the inputs, or with TTA all their views (`skinlib.tta`)."""
    from .tta import DEFAULT_SCALES, tta_views

    if (scales is not None or augmented) and not tta:
        raise ValueError("scales and augmented views are test-time augmentation: pass tta=True with them")
    return tta_views(inputs, scales or DEFAULT_SCALES, augmented) if tta else inputs


def _fold_views(probs: np.ndarray, n_images: int, tta: bool) -> np.ndarray:
    from .tta import average_views

    return average_views(probs, n_images) if tta else probs


@dataclass
class DualStage:
    """Stage 1 (U-Net) + stage 2 (classifier). `predict` takes RGB arrays of any size."""

    segmenter: object
    classifier: StageTwo

    @classmethod
    def load(cls, unet_dir=None, classifier_dir=None) -> "DualStage":
        from .segmentation.segmenter import DEFAULT_UNET, UNetSegmenter

        return cls(UNetSegmenter.load(unet_dir or DEFAULT_UNET), StageTwo.load(classifier_dir or DEFAULT_CLASSIFIER))

    def prepare(self, images: list[np.ndarray]):
        """Masks, crop records and the classifier's square inputs for a list of images."""
        from .segmentation.postprocess import lesion_crop

        masks = self.segmenter.segment(images)
        crops = [lesion_crop(image, mask, self.classifier.margin) for image, mask in zip(images, masks)]
        size = self.classifier.image_size
        pictures = [c.image if self.classifier.source == "crop" else image for c, image in zip(crops, images)]
        inputs = np.stack([fit_size(p, (size, size), "pad") for p in pictures])
        return masks, crops, inputs

    def explain(self, inputs: np.ndarray, layer_name: str | None = None) -> list[dict]:
        """Grad-CAM (predicted class) and spatial-attention overlays on the classifier's inputs (the crops)."""
        from .explain import attention_maps, gradcam, gradcam_overlay
        from .visualize import overlay_heatmap

        model = self.classifier.members  # an ensemble's maps are its members' mean
        cams = gradcam(model, inputs.astype(np.float32), layer_name=layer_name)
        out = [{"gradcam": gradcam_overlay(x, cam)} for x, cam in zip(inputs, cams)]
        if self.classifier.spec.get("attention", True):
            spatial = attention_maps(model, inputs.astype(np.float32))["spatial"]
            for record, x, attention in zip(out, inputs, spatial):
                record["attention"] = overlay_heatmap(x, attention)
        return out

    def predict(self, images: list[np.ndarray], tta: bool = False, scales=None, metadata=None,
                augmented: bool = False, prior=None) -> list[dict]:
        """Per image: calibrated probabilities per class, the top class, the `uncertain` and `melanoma_referral`
        flags and crop notes. `metadata` (optional): a frame of age, sex and site, one row per image; `prior`
        (optional): "training" or a class prior vector, see `classify`."""
        return self.classify(*self.prepare(images), tta=tta, scales=scales, metadata=metadata, augmented=augmented,
                             prior=prior)

    def classify(self, masks, crops, inputs: np.ndarray, tta: bool = False, scales=None, metadata=None,
                 augmented: bool = False, prior=None) -> list[dict]:
        """Stage 2 on what `prepare` returned (so callers that also explain segment only once).

        With `metadata`, the probabilities are fused with it (`metadata_used` says which fields each image
        had; an image with none keeps its image-only probabilities) and the referral flag uses the threshold
        fitted for fused probabilities. With `prior`, the probabilities (and so the top class) are for a
        population with that class mix (`StageTwo.with_prior`); the referral flag still reads P(mel) before
        that correction, the probability its threshold was fitted on."""
        raw, novelty = self.classifier.raw_probabilities_and_novelty(inputs, tta, scales=scales, augmented=augmented)
        probs = apply_temperature(raw, self.classifier.temperature_for(tta, augmented))
        used = [None] * len(probs)
        if metadata is not None:
            probs, used = self.classifier.with_metadata(probs, metadata, tta)
        flagged_on = probs
        if prior is not None:
            probs = self.classifier.with_prior(probs, prior)
        referral = self.classifier.referral_threshold(tta, metadata=metadata is not None)
        unusual = [None] * len(probs) if novelty is None else list(novelty > self.classifier.novelty.threshold)
        mel = CLASSES.index("mel")
        results = []
        for i, (p, mask, crop, fields) in enumerate(zip(probs, masks, crops, used)):
            top = int(np.argmax(p))
            results.append({
                "probabilities": {c: round(float(v), 6) for c, v in zip(CLASSES, p)},
                "prediction": CLASSES[top],
                "confidence": round(float(p[top]), 6),
                "uncertain": bool(p[top] < self.classifier.uncertain_below or not crop.used_mask or unusual[i]),
                "unlike_training_images": None if unusual[i] is None else bool(unusual[i]),
                "novelty_score": None if novelty is None else round(float(novelty[i]), 2),
                "melanoma_referral": None if referral is None else bool(flagged_on[i, mel] >= referral),
                "melanoma_referral_threshold": referral,
                "metadata_used": fields,
                "lesion_found": bool(crop.used_mask),
                "crop_note": crop.reason,
                "mask": mask,
            })
        return results


def metadata_rows(table, image_ids):
    """The rows of a metadata table (`image_id` or ISIC `image` column) for `image_ids`, in that order;
    an id the table lacks gets an empty row (its image is classified from the image alone)."""
    from .data.errors import DataError

    key = next((c for c in ("image_id", "image") if c in table.columns), None)
    if key is None:
        raise DataError(f"the metadata table needs an image_id (or ISIC image) column to match images by file name; "
                        f"it has {', '.join(map(str, table.columns))}")
    if table[key].duplicated().any():
        raise DataError(f"the metadata table lists image(s) twice: {table.loc[table[key].duplicated(), key].tolist()[:5]}")
    rows = table.assign(**{key: table[key].astype(str).str.strip()}).set_index(key)
    return rows.reindex([str(i) for i in image_ids]).reset_index(drop=True)


def predict_files(paths, out_dir, pipeline: DualStage, tta: bool = False, explain: bool = False,
                  progress: bool = True, scales=None, metadata=None, augmented: bool = False, prior=None) -> dict:
    """Write `<stem>.json` (probabilities, prediction, flags) and `<stem>_overlay.png` per image;
    with `explain`, also `<stem>_gradcam.png` and `<stem>_attention.png` (on the lesion crop).
    `metadata`: a table of age, sex and site with an `image_id` column (file stems) to fuse with the images.
    `prior`: "training" or one share per class: answers for a population with that class mix (`classify`).

    Returns {"written": {path: json_path}, "failed": {path: message}}: one bad file never stops the batch.
    """
    from tqdm.auto import tqdm

    from .data.errors import DataError
    from .data.images import read_image
    from .visualize import overlay_mask, write_rgb

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, failed = {}, {}
    for path in tqdm([Path(p) for p in paths], desc="predicting", unit="img", disable=not progress):
        try:
            image = read_image(path)
        except DataError as error:
            failed[str(path)] = str(error)
            continue
        masks, crops, inputs = pipeline.prepare([image])
        row = None if metadata is None else metadata_rows(metadata, [path.stem])
        if row is not None and not row.notna().to_numpy().any():
            row = None  # the table says nothing about this image: it is classified (and flagged) on its own
        result = pipeline.classify(masks, crops, inputs, tta=tta, scales=scales, metadata=row, augmented=augmented,
                                   prior=prior)[0]
        mask = result.pop("mask")
        record = {"image": str(path), "size": [int(image.shape[1]), int(image.shape[0])], "tta": tta,
                  **_tta_record(tta, scales, augmented),
                  "calibrated": True, "class_prior": prior_record(prior),
                  "uncertain_below": pipeline.classifier.uncertain_below, **result}
        json_path = out_dir / f"{path.stem}.json"
        json_path.write_text(json.dumps(record, indent=2) + "\n")
        write_rgb(out_dir / f"{path.stem}_overlay.png", overlay_mask(image, mask))
        if explain:
            for kind, picture in pipeline.explain(inputs)[0].items():
                write_rgb(out_dir / f"{path.stem}_{kind}.png", picture)
        written[str(path)] = json_path
    return {"written": written, "failed": failed}


def prior_record(prior) -> str | dict:
    """How a result names the class prior its probabilities are for."""
    if prior is None:
        return "as trained (the loss's class weights: every class counted alike)"
    if isinstance(prior, str):
        return prior
    return dict(zip(CLASSES, (round(float(v), 6) for v in prior)))


def score_labelled_folder(images_dir, labels_csv, pipeline: DualStage, tta: bool = False, batch_size: int = 32,
                          progress: bool = True, report_dir=None, scales=None, metadata=None,
                          augmented: bool = False, prior=None) -> dict:
    """Classification metrics of the pipeline on any folder of images with a label CSV.

    Images are matched to labels by file stem; labelled images that are missing are counted and listed,
    never silently dropped. Unreadable images are an error naming the file. `metadata` (a table with
    `image_id` and age/sex/site columns, e.g. the HAM10000 metadata CSV) scores the image + metadata fusion;
    `prior` scores the probabilities for a population with that class mix (`DualStage.classify`), with the
    class-wise calibration before and after beside them.
    """
    from tqdm.auto import tqdm

    from .data.errors import DataError
    from .data.images import read_image
    from .data.labels import read_labels
    from .data.layout import IMAGE_SUFFIXES
    from .evaluation.classification import classification_report_dict

    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise DataError(f"images folder {images_dir} does not exist.")
    labels = read_labels(labels_csv)
    files = {p.stem: p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
             and not p.stem.endswith("_segmentation")}
    present = labels[labels["image_id"].isin(files)].reset_index(drop=True)
    missing = labels.loc[~labels["image_id"].isin(files), "image_id"].tolist()
    if present.empty:
        raise DataError(f"none of the {len(labels)} labelled images of {labels_csv} is in {images_dir}.")
    raw, lesion_found, novelty = [], [], []
    for start in tqdm(range(0, len(present), batch_size), desc="evaluating", unit="batch", disable=not progress):
        ids = present["image_id"].iloc[start : start + batch_size]
        images = [read_image(files[i]) for i in ids]
        _, crops, inputs = pipeline.prepare(images)
        batch_raw, batch_novelty = pipeline.classifier.raw_probabilities_and_novelty(inputs, tta=tta, scales=scales,
                                                                                     augmented=augmented)
        raw.append(batch_raw)
        novelty.append(batch_novelty)
        lesion_found += [c.used_mask for c in crops]
    raw = np.concatenate(raw)
    probs = apply_temperature(raw, pipeline.classifier.temperature_for(tta, augmented))
    fusion = None
    if metadata is not None:
        probs, used = pipeline.classifier.with_metadata(probs, metadata_rows(metadata, present["image_id"]), tta,
                                                        where=str(labels_csv))
        fusion = {"weight": pipeline.classifier.metadata_weight(tta),
                  "images_with_metadata": sum(u is not None for u in used),
                  **{f"images_with_{name}": sum(bool(u and name in u) for u in used) for name in ("age", "sex", "site")}}
    labels_array = present["label"].to_numpy()
    flagged_on, prior_effect = probs, None
    if prior is not None:
        from .evaluation.calibration import prior_scores

        probs = pipeline.classifier.with_prior(probs, prior)
        prior_effect = prior_scores(labels_array, flagged_on, probs, shifted_name="with_prior")
    report = classification_report_dict(labels_array, probs)
    threshold = pipeline.classifier.referral_threshold(tta, metadata=metadata is not None)
    if threshold is not None:  # the model's own threshold, fixed on HAM10000 validation: never refitted here
        from .evaluation.referral import referral_scores

        report["melanoma_referral"] = referral_scores(labels_array, flagged_on, threshold)
    if report_dir is not None:
        from .evaluation.report import write_report

        groups = present["lesion_id"].to_numpy() if "lesion_id" in present else None
        full = write_report(labels_array, probs, report_dir, probs_uncalibrated=None if prior is not None else raw,
                            referral_threshold=None if prior is not None else threshold,
                            groups=groups,
                            title=f"dual-stage pipeline on {Path(images_dir).name}{_tta_title(tta, scales, augmented)}"
                                  f"{' + metadata' if metadata is not None else ''}")
        report["report_dir"] = str(report_dir)
        report["confidence_intervals"] = full.get("confidence_intervals")
        report["bootstrap"] = full["bootstrap"]
        if "confidence_intervals_image_level" in full:
            report["confidence_intervals_image_level"] = full["confidence_intervals_image_level"]
        report["melanoma_operating_points"] = full.get("melanoma_operating_points")
    report.update({"images": str(images_dir), "labels": str(labels_csv), "tta": tta,
                   "class_prior": prior_record(prior), "prior_correction": prior_effect,
                   **_tta_record(tta, scales, augmented),
                   "metadata_fusion": fusion, "labelled_but_missing": len(missing), "missing_examples": missing[:20],
                   "fraction_with_lesion_crop": float(np.mean(lesion_found)),
                   "unlike_training_images": _novelty_summary(pipeline.classifier, novelty, present["image_id"])})
    return report


def _tta_record(tta: bool, scales, augmented: bool) -> dict:
    """What a result records about its TTA views beyond `tta` itself (nothing for the plain 8 views)."""
    from .tta import describe_views

    if not tta or (scales is None and not augmented):
        return {}
    return {"tta_views": describe_views(scales, augmented), **({"tta_scales": list(scales)} if scales else {})}


def _tta_title(tta: bool, scales, augmented: bool) -> str:
    from .tta import describe_views

    return f" (TTA, {describe_views(scales, augmented)} views)" if tta else ""


def _novelty_summary(classifier: StageTwo, scores: list, image_ids) -> dict | None:
    """How many images of a scored folder the novelty check flags (None: the model has none). A folder from
    another clinic or device with many flagged images is one where HAM10000's numbers should not be assumed."""
    if classifier.novelty is None:
        return None
    scores = np.concatenate(scores)
    flagged = scores > classifier.novelty.threshold
    return {"threshold": classifier.novelty.threshold, "flagged": int(flagged.sum()),
            "fraction": float(flagged.mean()), "median_score": float(np.median(scores)),
            "examples": [str(i) for i in np.asarray(image_ids)[flagged][:20]]}
