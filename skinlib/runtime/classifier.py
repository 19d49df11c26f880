"""Stage 2 at run time: the shipped classifier with its input size, crop margin, calibration and optional
metadata, prior and novelty parts, loaded from its folder.

A classifier folder holds `model.json` (architecture, input size, crop margin, temperature, uncertainty
threshold and the post-hoc fits; read as a `skinlib.models.folder.ClassifierSpec`), `weights.npz` (float16)
and `metrics.json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.classes import CLASSES
from ..data.errors import DataError
from ..evaluation.calibration import apply_temperature, shift_prior
from ..models.folder import UNCERTAIN_BELOW, ClassifierSpec, ModelFolder
from ..models.inference import predict_in_batches
from ..models.metadata_prior import MetadataPrior, fuse, metadata_values, warn_ignored
from ..models.novelty import NoveltyModel, feature_model
from ..shipped import CLASSIFIER
from .views import SINGLE, Views

DEFAULT_CLASSIFIER = CLASSIFIER

__all__ = ["DEFAULT_CLASSIFIER", "UNCERTAIN_BELOW", "StageTwo", "prior_record"]


@dataclass
class StageTwo:
    """The shipped classifier with its input size, crop margin and calibration.

    It may be an ensemble: `members` are models of one architecture trained with different seeds, and
    every probability is the mean of theirs (Grad-CAM and attention maps too, see `skinlib.explain`).
    `model` is the first member, for code that needs one Keras model (layer names, shapes). `spec` is the
    folder's typed `model.json`; `image_size`, `margin`, `source`, `temperature` and `uncertain_below` read it.
    """

    model: object
    spec: ClassifierSpec
    members: list = field(default_factory=list)
    metadata_prior: object = None  # a MetadataPrior when `skinlib fit-metadata` has fitted one for this model
    novelty: object = None  # a NoveltyModel when `skinlib fit-novelty` has fitted one for this model
    _feature_model: object = field(default=None, init=False, repr=False)  # see `_with_features`

    def __post_init__(self):
        self.members = list(self.members) or [self.model]
        if self.members[0] is not self.model:
            raise ValueError("StageTwo: `model` must be the first of `members`")
        if not isinstance(self.spec, ClassifierSpec):
            raise TypeError(f"StageTwo: `spec` must be a ClassifierSpec, not {type(self.spec).__name__}")

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    @property
    def margin(self) -> float:
        return self.spec.margin

    @property
    def source(self) -> str:
        return self.spec.source

    @property
    def temperature(self) -> float:
        """The plain (single view) temperature."""
        return self.spec.temperature

    @property
    def uncertain_below(self) -> float:
        return self.spec.uncertain_below

    @classmethod
    def load(cls, folder: str | Path = DEFAULT_CLASSIFIER) -> StageTwo:
        # deferred: loads Keras
        from ..models.classifier import build_classifier
        from ..models.storage import load_compact_weights

        folder = Path(folder)
        spec = ModelFolder(folder, "classifier").read_spec()
        size = spec.image_size
        members = []
        for name in spec.weights_files:
            model = build_classifier(
                (size, size, 3),
                backbone=spec.backbone,
                backbone_weights=None,
                attention=spec.attention,
                dropout=spec.dropout,
                colour_constancy=spec.colour_constancy,
            )
            members.append(load_compact_weights(model, folder / name))
        prior = None
        if spec.metadata_fusion is not None:
            prior = MetadataPrior.from_json(folder / spec.metadata_fusion.prior)
        novelty = None
        if spec.novelty is not None:
            novelty = NoveltyModel.load(folder / spec.novelty.file)
        return cls(model=members[0], spec=spec, members=members, metadata_prior=prior, novelty=novelty)

    def raw_probabilities(self, inputs: np.ndarray, views: Views = SINGLE, batch_size: int = 64) -> np.ndarray:
        """Uncalibrated probabilities of square uint8 inputs (N, S, S, 3), averaged over the members and over
        `views` (`skinlib.runtime.views.Views`: the input as it is, its dihedral views at one or more scales, or
        draws of the training augmentation). All views of a chunk go through each member in one call.
        """
        return self._member_average(inputs, views, batch_size, with_features=False)[0]

    def member_probabilities(
        self, index: int, inputs: np.ndarray, views: Views = SINGLE, batch_size: int = 64
    ) -> np.ndarray:
        """Uncalibrated probabilities of member `index` alone (see `raw_probabilities`)."""

        views = _checked(views)
        probs = predict_in_batches(self.members[index], views.expand(inputs), batch_size)
        return views.fold(probs, len(inputs))

    def raw_probabilities_and_novelty(
        self, inputs: np.ndarray, views: Views = SINGLE, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """`raw_probabilities` and the novelty scores (None without a novelty model) in one pass: the first
        member runs with its pooled features as a second output, so the check costs no second backbone pass.
        The features are the un-augmented input's (with TTA: its identity view at scale 1)."""
        if self.novelty is None:
            return self.raw_probabilities(inputs, views, batch_size), None
        probs, features = self._member_average(inputs, views, batch_size, with_features=True)
        identity = views.identity_start(len(inputs))
        if identity is None:  # no TTA view (augmented, or no scale 1) showed the network the input as it is
            features = self.features(inputs, batch_size)
        else:
            features = features[identity : identity + len(inputs)]
        return probs, self.novelty.score(features)

    def _member_average(
        self, inputs: np.ndarray, views: Views, batch_size: int, with_features: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The one path behind `raw_probabilities`: each member's view-averaged probabilities, averaged.
        With `with_features` the first member runs as its two-output twin and its pooled features of every
        view come back too (else None)."""

        views = _checked(views)
        expanded = views.expand(inputs)
        first = predict_in_batches(self._with_features() if with_features else self.model, expanded, batch_size)
        first_probs, features = first if with_features else (first, None)
        per_member = [first_probs] + [predict_in_batches(member, expanded, batch_size) for member in self.members[1:]]
        return np.mean([views.fold(probs, len(inputs)) for probs in per_member], axis=0), features

    def _with_features(self):
        """The first member with its pooled features as a second output (built once)."""

        if self._feature_model is None:
            self._feature_model = feature_model(self.model)
        return self._feature_model

    def temperature_for(self, views: Views) -> float:
        """The temperature fitted on validation for predictions over `views` (they differ: TTA is smoother).

        Dihedral views at other scales reuse the TTA temperature, which was fitted on the 8 dihedral views;
        augmented views have their own (model.json "tta_augmented", written by `skinlib fit-tta`), refused
        without it or for other draws than it was fitted on.
        """
        views = _checked(views)
        fitted = self.spec.tta_augmented
        drawn = (views.draws, views.seed)
        if views.kind == "augmented" and fitted is not None and drawn != (fitted.views, fitted.seed):
            raise DataError(
                f"this classifier's augmented-TTA temperature was fitted for {fitted.views} views with "
                f"seed {fitted.seed}, not {views.draws} with seed {views.seed}"
            )
        return self.spec.temperature_for(views.calibration_key)

    def referral_threshold(self, views: Views, metadata: bool = False) -> float | None:
        """The P(mel) threshold of the melanoma referral flag, fitted on validation (None: not fitted yet,
        run `skinlib fit-referral`). TTA with extra scales or augmented views reuses the TTA threshold. With `metadata`, the
        threshold fitted for the metadata-fused probabilities (`skinlib fit-metadata`)."""
        return self.spec.referral_threshold(_checked(views).calibration_key, metadata)

    def metadata_weight(self, views: Views) -> float:
        """The fusion weight fitted on validation for plain or TTA probabilities (`skinlib fit-metadata`)."""
        return self.spec.metadata_weight(_checked(views).calibration_key)

    def with_metadata(
        self, probs: np.ndarray, metadata, views: Views, where: str = "metadata"
    ) -> tuple[np.ndarray, list]:
        """Calibrated probabilities updated by each image's age, sex and site (`skinlib.models.metadata_prior`).

        `metadata`: a frame with HAM10000 (age, sex, localization) or ISIC archive columns, one row per image.
        Returns the fused probabilities and per image the fields used ({field: value}, None if none: that
        image keeps its image-only probabilities); warns about values the model has never seen. A model
        without a fitted prior is an error that says how to fit one.
        """

        if self.metadata_prior is None:
            raise DataError(
                "this classifier has no metadata fusion: fit one with "
                "`skinlib fit-metadata --model DIR` (or leave out the metadata)"
            )
        if len(metadata) != len(probs):
            raise ValueError(f"got metadata for {len(metadata)} images but {len(probs)} predictions")
        values = metadata_values(metadata.reset_index(drop=True))
        log_ratios, usage = self.metadata_prior.log_ratios(values)
        warn_ignored(usage, where)
        return fuse(probs, log_ratios, self.metadata_weight(views)), self.metadata_prior.used_fields(values)

    def with_prior(self, probs: np.ndarray, target) -> np.ndarray:
        """Probabilities for a population with class prior `target` ("training": HAM10000's training mix, or one
        share per class) instead of the mix the loss implied (`skinlib.workflows.class_prior`, Bayes' rule)."""

        recorded = self.spec.class_prior
        if recorded is None:
            raise DataError(
                "this classifier has no recorded class prior: run `skinlib fit-prior --model DIR` "
                "(or leave out --prior)"
            )
        target = recorded.training if isinstance(target, str) and target == "training" else target
        return shift_prior(probs, recorded.model, target)

    def features(self, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """The pooled features the first member's head reads (N, D): what the novelty score is computed on."""

        return predict_in_batches(self._with_features(), inputs, batch_size)[1]

    def novelty_scores(self, inputs: np.ndarray) -> np.ndarray | None:
        """Novelty score per input (`skinlib.models.novelty`; None when this model has no novelty model)."""
        return None if self.novelty is None else self.novelty.score(self.features(inputs))

    def probabilities(self, inputs: np.ndarray, views: Views = SINGLE, batch_size: int = 64) -> np.ndarray:
        """Calibrated (temperature-scaled) probabilities over `views` (see `raw_probabilities`)."""
        raw = self.raw_probabilities(inputs, views, batch_size)
        return apply_temperature(raw, self.temperature_for(views))


def _checked(views) -> Views:
    """`views` if it is a `Views` (a bool, say, is an error that says what to pass instead)."""
    if not isinstance(views, Views):
        raise TypeError(
            f"views must be a skinlib.runtime.views.Views (Views.single(), Views.dihedral(scales) or "
            f"Views.augmented()), not {views!r}"
        )
    return views


def prior_record(prior) -> str | dict:
    """How a result names the class prior its probabilities are for."""
    if prior is None:
        return "as trained (the loss's class weights: every class counted alike)"
    if isinstance(prior, str):
        return prior
    return dict(zip(CLASSES, (round(float(v), 6) for v in prior)))
