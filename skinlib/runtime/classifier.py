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
from .views import DEFAULT_SCALES, average_views, identity_view_start, tta_views

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

    def raw_probabilities(
        self, inputs: np.ndarray, tta: bool = False, batch_size: int = 64, scales=None, augmented: bool = False
    ) -> np.ndarray:
        """Uncalibrated probabilities of square uint8 inputs (N, S, S, 3), averaged over the members.

        TTA averages the 8 dihedral views; `scales` (TTA only, e.g. (1.0, 1.2)) adds the same 8 views of
        each zoomed crop; `augmented` (TTA only) averages 16 views drawn from the training augmentation
        instead (`skinlib.runtime.views`). All views of a chunk go through each member in one call.
        """
        return self._member_average(inputs, tta, batch_size, scales, augmented, with_features=False)[0]

    def member_probabilities(
        self,
        index: int,
        inputs: np.ndarray,
        tta: bool = False,
        batch_size: int = 64,
        scales=None,
        augmented: bool = False,
    ) -> np.ndarray:
        """Uncalibrated probabilities of member `index` alone (see `raw_probabilities`)."""

        probs = predict_in_batches(self.members[index], _views(inputs, tta, scales, augmented), batch_size)
        return _fold_views(probs, len(inputs), tta)

    def raw_probabilities_and_novelty(
        self, inputs: np.ndarray, tta: bool = False, batch_size: int = 64, scales=None, augmented: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """`raw_probabilities` and the novelty scores (None without a novelty model) in one pass: the first
        member runs with its pooled features as a second output, so the check costs no second backbone pass.
        The features are the un-augmented input's (with TTA: its identity view at scale 1)."""

        if self.novelty is None:
            return self.raw_probabilities(inputs, tta, batch_size, scales, augmented), None
        probs, features = self._member_average(inputs, tta, batch_size, scales, augmented, with_features=True)
        identity = identity_view_start(len(inputs), scales, augmented) if tta else 0
        if identity is None:  # no TTA view (augmented, or no scale 1) showed the network the input as it is
            features = self.features(inputs, batch_size)
        else:
            features = features[identity : identity + len(inputs)]
        return probs, self.novelty.score(features)

    def _member_average(
        self, inputs: np.ndarray, tta: bool, batch_size: int, scales, augmented: bool, with_features: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The one path behind `raw_probabilities`: each member's view-averaged probabilities, averaged.
        With `with_features` the first member runs as its two-output twin and its pooled features of every
        view come back too (else None)."""

        views = _views(inputs, tta, scales, augmented)
        first = predict_in_batches(self._with_features() if with_features else self.model, views, batch_size)
        first_probs, features = first if with_features else (first, None)
        per_member = [first_probs] + [predict_in_batches(member, views, batch_size) for member in self.members[1:]]
        return np.mean([_fold_views(probs, len(inputs), tta) for probs in per_member], axis=0), features

    def _with_features(self):
        """The first member with its pooled features as a second output (built once)."""

        if self._feature_model is None:
            self._feature_model = feature_model(self.model)
        return self._feature_model

    def temperature_for(self, tta: bool, augmented: bool = False) -> float:
        """The temperature fitted on validation for plain or TTA predictions (they differ: TTA is smoother).

        TTA with extra scales reuses the TTA temperature, which was fitted on the 8 dihedral views; augmented
        TTA has its own (model.json "tta_augmented", written by `skinlib fit-tta`) and is refused without it.
        """
        return self.spec.temperature_for(_calibration_key(tta, augmented))

    def referral_threshold(self, tta: bool, metadata: bool = False) -> float | None:
        """The P(mel) threshold of the melanoma referral flag, fitted on validation (None: not fitted yet,
        run `skinlib fit-referral`). TTA with extra scales or augmented views reuses the TTA threshold. With `metadata`, the
        threshold fitted for the metadata-fused probabilities (`skinlib fit-metadata`)."""
        return self.spec.referral_threshold(_calibration_key(tta), metadata)

    def metadata_weight(self, tta: bool) -> float:
        """The fusion weight fitted on validation for plain or TTA probabilities (`skinlib fit-metadata`)."""
        return self.spec.metadata_weight(_calibration_key(tta))

    def with_metadata(self, probs: np.ndarray, metadata, tta: bool, where: str = "metadata") -> tuple[np.ndarray, list]:
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
        return fuse(probs, log_ratios, self.metadata_weight(tta)), self.metadata_prior.used_fields(values)

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

    def probabilities(
        self, inputs: np.ndarray, tta: bool = False, batch_size: int = 64, scales=None, augmented: bool = False
    ) -> np.ndarray:
        """Calibrated (temperature-scaled) probabilities."""
        raw = self.raw_probabilities(inputs, tta, batch_size, scales, augmented)
        return apply_temperature(raw, self.temperature_for(tta, augmented))


def _calibration_key(tta: bool, augmented: bool = False) -> str:
    """Which calibration of model.json applies (`skinlib.models.folder.CALIBRATION_KEYS`)."""
    return ("tta_augmented" if augmented else "tta") if tta else "plain"


def _views(inputs: np.ndarray, tta: bool, scales, augmented: bool = False) -> np.ndarray:
    """What the network sees: the inputs, or with TTA all their views (`skinlib.runtime.views`)."""

    if (scales is not None or augmented) and not tta:
        raise ValueError("scales and augmented views are test-time augmentation: pass tta=True with them")
    return tta_views(inputs, scales or DEFAULT_SCALES, augmented) if tta else inputs


def _fold_views(probs: np.ndarray, n_images: int, tta: bool) -> np.ndarray:

    return average_views(probs, n_images) if tta else probs


def prior_record(prior) -> str | dict:
    """How a result names the class prior its probabilities are for."""
    if prior is None:
        return "as trained (the loss's class weights: every class counted alike)"
    if isinstance(prior, str):
        return prior
    return dict(zip(CLASSES, (round(float(v), 6) for v in prior)))
