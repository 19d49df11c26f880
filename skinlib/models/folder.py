"""A shipped model folder, typed: `model.json` (what loading and predicting need), `metrics.json` (scores, the
recipe and the commands that made them) and the weight files `model.json` names.

`ModelFolder` is the one reader and writer of both files. `model.json` reads into a frozen dataclass
(`ClassifierSpec` or `UNetSpec`) whose optional sections (`ReferralSpec`, `MetadataFusionSpec`, `NoveltySpec`,
`AugmentedTTASpec`, `ClassPriorSpec`) are None until the training command or a post-hoc fit (`skinlib fit-*`)
writes them; every default lives here, once. `metrics.json` is a record for people and reports, not read by
`predict`, so it stays a plain dict.

Schema: `model.json` carries a `schema_version` (`SCHEMA_VERSION`). Version 1 is the layout every folder has
had so far: the keys below, flat, under their JSON names (`melanoma_referral`, `metadata_fusion`, `novelty`,
`tta_augmented`, `class_prior` for the sections). A file without `schema_version` was written before it
existed and reads as version 1; it gets the field the next time something writes it. A newer version is
refused with a message that says so, and so is a key this version does not know (a typo such as
"temprature" must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from ..data.classes import CLASSES
from ..data.errors import DataError

#: The `model.json` layout this skinlib writes and reads (older folders without the field: version 1).
SCHEMA_VERSION = 1

SPEC_FILE = "model.json"
METRICS_FILE = "metrics.json"
WEIGHTS_FILE = "weights.npz"
METADATA_PRIOR_FILE = "metadata_prior.json"
NOVELTY_FILE = "novelty.npz"

#: Below this calibrated top probability a prediction is flagged "uncertain" (refer to a clinician).
UNCERTAIN_BELOW = 0.5

#: Which calibration applies to a set of views (`skinlib.runtime.views.Views.calibration_key`): the plain
#: input, the dihedral TTA views (any scales) or the views drawn from the training augmentation.
CALIBRATION_KEYS = ("plain", "tta", "tta_augmented")


# ------------------------------------------------------------------------------ JSON <-> dataclass


def _fail(where: str, message: str):
    raise DataError(f"{where}: {message}")


def _convert(value, hint, where: str):
    """`value` read from JSON checked against the field type `hint` (lists become tuples, sections their
    dataclass). Numbers are kept as written (an int stays an int), so a file reads and writes back unchanged."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if value is None and len(options) < len(typing.get_args(hint)):
            return None
        return _convert(value, options[0], where)  # every Optional here has one other type
    if dataclasses.is_dataclass(hint):
        return hint.from_dict(value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            _fail(where, f"expected a list, got {value!r}")
        items = typing.get_args(hint)
        if len(items) == 2 and items[1] is Ellipsis:
            items = (items[0],) * len(value)
        elif len(items) != len(value):
            _fail(where, f"expected {len(items)} values, got {list(value)!r}")
        return tuple(_convert(v, item, f"{where}[{i}]") for i, (v, item) in enumerate(zip(value, items)))
    if hint is bool:
        if not isinstance(value, bool):
            _fail(where, f"expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            _fail(where, f"expected a whole number, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            _fail(where, f"expected a number, got {value!r}")
        return value if type(value) in (int, float) else float(value)
    if hint is str:
        if not isinstance(value, str):
            _fail(where, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"{where}: no conversion for {hint!r}")  # a field type this module does not handle


def _plain(value):
    """A field value as JSON has it: sections as dicts, tuples as lists."""
    if isinstance(value, _Spec):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class _Spec:
    """What every part of `model.json` shares: read from a dict (checked, naming where a problem is), written
    back to one (None fields left out, keys in field order)."""

    @classmethod
    def from_dict(cls, data, where: str | None = None):
        where = where or cls.__name__
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            _fail(where, f"expected an object, got {data!r}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            _fail(where, f"unknown key(s) {unknown} (schema version {SCHEMA_VERSION} knows {sorted(known)})")
        missing = [
            name
            for name, f in known.items()
            if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            _fail(where, f"missing {missing}")
        hints = typing.get_type_hints(cls)
        values = {name: _convert(value, hints[name], f'{where} "{name}"') for name, value in data.items()}
        try:
            return cls(**values)
        except ValueError as error:
            _fail(where, str(error))

    def to_dict(self) -> dict:
        return {
            f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if getattr(self, f.name) is not None
        }


# ----------------------------------------------------------------------------------------- sections


@dataclass(frozen=True, kw_only=True)
class ReferralSpec(_Spec):
    """The melanoma referral flag's P(mel) thresholds, fitted on validation for a target sensitivity
    (`skinlib fit-referral`, or train-classifier). TTA of any views reuses `threshold_tta`."""

    target_sensitivity_on_val: float
    threshold: float
    threshold_tta: float

    def threshold_for(self, calibration_key: str) -> float:
        return float(self.threshold if _checked_key(calibration_key) == "plain" else self.threshold_tta)


@dataclass(frozen=True, kw_only=True)
class MetadataFusionSpec(_Spec):
    """Image + metadata fusion (`skinlib fit-metadata`): the prior's file in the folder, the fusion weight for
    plain and TTA probabilities, and the referral thresholds fitted for the fused probabilities."""

    prior: str = METADATA_PRIOR_FILE
    weight: float
    weight_tta: float
    melanoma_referral: ReferralSpec | None = None
    tta_recommended: bool | None = None
    fitted_on: str | None = None

    def weight_for(self, calibration_key: str) -> float:
        return float(self.weight if _checked_key(calibration_key) == "plain" else self.weight_tta)


@dataclass(frozen=True, kw_only=True)
class NoveltySpec(_Spec):
    """The novelty check (`skinlib fit-novelty`): its model's file in the folder and the score threshold."""

    file: str = NOVELTY_FILE
    threshold: float
    components: int
    fitted_on: str | None = None


@dataclass(frozen=True, kw_only=True)
class AugmentedTTASpec(_Spec):
    """Augmented TTA (`skinlib fit-tta`): the views it was fitted for (count, seed) and their temperature."""

    views: int
    seed: int
    temperature: float
    recommended: bool | None = None
    fitted_on: str | None = None


@dataclass(frozen=True, kw_only=True)
class ClassPriorSpec(_Spec):
    """The class mixes of `skinlib fit-prior` (in `classes` order): the training split's and the one the
    loss implied (`model`), for `predict --prior`."""

    classes: tuple[str, ...] = CLASSES
    training: tuple[float, ...]
    model: tuple[float, ...]
    training_images: int | None = None
    model_from: str | None = None

    def __post_init__(self):
        if not (len(self.classes) == len(self.training) == len(self.model)):
            raise ValueError(
                f"class_prior: {len(self.classes)} classes but {len(self.training)} training and "
                f"{len(self.model)} model shares"
            )


def _checked_key(calibration_key: str) -> str:
    if calibration_key not in CALIBRATION_KEYS:
        raise ValueError(f"calibration key {calibration_key!r}: expected one of {CALIBRATION_KEYS}")
    return calibration_key


# ------------------------------------------------------------------------------------ model specs


@dataclass(frozen=True, kw_only=True)
class ClassifierSpec(_Spec):
    """A classifier folder's `model.json`: architecture, input, calibration and the optional post-hoc sections.

    `members` names one weights file per ensemble member (None: the single `weights` file). `temperature_tta`
    is None until fitted (TTA then reuses `temperature`); `tta_recommended` records validation's choice.
    """

    KIND: typing.ClassVar[str] = "classifier"
    HOW_TO_MAKE: typing.ClassVar[str] = "skinlib train-classifier --out {folder}"

    classes: tuple[str, ...] = CLASSES
    backbone: str
    attention: bool
    colour_constancy: bool = False
    dropout: float = 0.3
    image_size: int
    source: str = "crop"
    margin: float = 0.25
    temperature: float = 1.0
    uncertain_below: float = UNCERTAIN_BELOW
    weights: str = WEIGHTS_FILE
    training_seed: int | None = None
    members: tuple[str, ...] | None = None
    member_seeds: tuple[int, ...] | None = None
    temperature_tta: float | None = None
    tta_recommended: bool | None = None
    melanoma_referral: ReferralSpec | None = None
    metadata_fusion: MetadataFusionSpec | None = None
    novelty: NoveltySpec | None = None
    tta_augmented: AugmentedTTASpec | None = None
    class_prior: ClassPriorSpec | None = None

    def __post_init__(self):
        if self.source not in ("crop", "full"):  # the lesion crop, or the whole image (`skinlib.segmentation.crops`)
            raise ValueError(f'"source" must be "crop" or "full", not {self.source!r}')
        if self.image_size < 1:
            raise ValueError(f'"image_size" must be positive, got {self.image_size}')
        if self.members is not None and not self.members:
            raise ValueError('"members" names no weights file')

    @property
    def weights_files(self) -> tuple[str, ...]:
        """One weights file per member (a single model: its `weights`)."""
        return self.members or (self.weights,)

    def files(self) -> list[str]:
        """Every file of the folder this spec names: weights, metadata prior, novelty model."""
        return [
            *self.weights_files,
            *([self.metadata_fusion.prior] if self.metadata_fusion else []),
            *([self.novelty.file] if self.novelty else []),
        ]

    def temperature_for(self, calibration_key: str) -> float:
        """The temperature fitted on validation for these views (`CALIBRATION_KEYS`): plain, dihedral TTA
        (`temperature_tta`; the plain one if never fitted) or augmented TTA (refused until `skinlib fit-tta`)."""
        key = _checked_key(calibration_key)
        if key == "tta_augmented":
            if self.tta_augmented is None:
                raise DataError(
                    "this classifier has no temperature for augmented TTA views: run "
                    "`skinlib fit-tta --model DIR` once (it fits one on validation)"
                )
            return float(self.tta_augmented.temperature)
        if key == "tta" and self.temperature_tta is not None:
            return float(self.temperature_tta)
        return float(self.temperature)

    def referral_threshold(self, calibration_key: str, metadata: bool = False) -> float | None:
        """The P(mel) referral threshold for these views (None: not fitted); with `metadata`, the one fitted
        for the metadata-fused probabilities."""
        fitted_for = self.metadata_fusion if metadata else self
        referral = fitted_for.melanoma_referral if fitted_for is not None else None
        return None if referral is None else referral.threshold_for(calibration_key)

    def metadata_weight(self, calibration_key: str) -> float:
        """The metadata fusion weight for these views (`skinlib fit-metadata`)."""
        if self.metadata_fusion is None:
            raise DataError(
                "this classifier has no metadata fusion: fit one with "
                "`skinlib fit-metadata --model DIR` (or leave out the metadata)"
            )
        return self.metadata_fusion.weight_for(calibration_key)


@dataclass(frozen=True, kw_only=True)
class UNetSpec(_Spec):
    """A U-Net folder's `model.json`: encoder, input size (height, width), how images are fitted to it,
    decoder widths, the mask threshold."""

    KIND: typing.ClassVar[str] = "unet"
    HOW_TO_MAKE: typing.ClassVar[str] = "skinlib train-unet --out {folder}"

    encoder: str
    image_size: tuple[int, int]
    fit: str = "pad"
    decoder_filters: tuple[int, ...]
    threshold: float = 0.5
    weights: str = WEIGHTS_FILE
    split_seed_file: str | None = None
    training_seed: int | None = None

    def files(self) -> list[str]:
        return [self.weights]


#: model.json "kind" -> its spec.
SPECS = {spec.KIND: spec for spec in (ClassifierSpec, UNetSpec)}

#: The optional sections of a classifier's model.json (what a post-hoc fit writes) -> their dataclass.
SECTIONS = {
    "melanoma_referral": ReferralSpec,
    "metadata_fusion": MetadataFusionSpec,
    "novelty": NoveltySpec,
    "tta_augmented": AugmentedTTASpec,
    "class_prior": ClassPriorSpec,
}


# ------------------------------------------------------------------------------------------ folder


class ModelFolder:
    """A model folder on disk: the one place that reads and writes its `model.json` and `metrics.json`.

    `kind` ("classifier" or "unet") is what the folder must hold; a missing `model.json` is a
    FileNotFoundError naming the file and the command that makes one (`how_to_make`, by default the
    training command of that kind).
    """

    def __init__(self, path, kind: str = "classifier", how_to_make: str | None = None):
        if kind not in SPECS:
            raise ValueError(f"kind must be one of {sorted(SPECS)}, not {kind!r}")
        self.path = Path(path)
        self.kind = kind
        self.spec_class = SPECS[kind]
        self.how_to_make = how_to_make or self.spec_class.HOW_TO_MAKE.format(folder=self.path)

    def __repr__(self) -> str:
        return f"ModelFolder({str(self.path)!r}, kind={self.kind!r})"

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    # -------------------------------------------------------------------- model.json

    def read_spec_dict(self) -> dict:
        """`model.json` as stored (JSON checked, kind and schema version checked, nothing else)."""
        data = _read_json(self.spec_path, self.how_to_make)
        if not isinstance(data, dict):
            _fail(str(self.spec_path), f"expected a JSON object, got {type(data).__name__}")
        if data.get("kind") != self.kind:
            raise DataError(f"{self.spec_path} describes a {data.get('kind')!r} model, not a {self.kind!r}")
        version = data.get("schema_version", 1)  # written before the field existed: version 1
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            _fail(str(self.spec_path), f'"schema_version" must be a positive whole number, got {version!r}')
        if version > SCHEMA_VERSION:
            raise DataError(
                f"{self.spec_path} has schema version {version}, newer than this skinlib reads "
                f"({SCHEMA_VERSION}): update skinlib"
            )
        return data

    def read_spec(self):
        """`model.json` as a `ClassifierSpec` or `UNetSpec`; any problem is a DataError naming the file."""
        data = {k: v for k, v in self.read_spec_dict().items() if k not in ("kind", "schema_version")}
        return self.spec_class.from_dict(data, str(self.spec_path))

    def write_spec(self, spec) -> Path:
        """Write `spec` (this folder's kind) as `model.json`, with the current schema version."""
        if not isinstance(spec, self.spec_class):
            raise TypeError(f"{self!r} holds a {self.spec_class.__name__}, not a {type(spec).__name__}")
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.spec_path, {"kind": self.kind, "schema_version": SCHEMA_VERSION, **spec.to_dict()})
        return self.spec_path

    def files(self) -> list[str]:
        """Every file of the folder: metrics.json, model.json and the files model.json names. What a copy needs."""
        return [METRICS_FILE, SPEC_FILE, *self.read_spec().files()]

    # ------------------------------------------------------------------ metrics.json

    def read_metrics(self) -> dict:
        """`metrics.json`: the recipe, scores and commands (a FileNotFoundError names the command that makes it)."""
        data = _read_json(self.metrics_path, self.how_to_make)
        if not isinstance(data, dict):
            _fail(str(self.metrics_path), f"expected a JSON object, got {type(data).__name__}")
        return data

    def write_metrics(self, metrics: dict) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.metrics_path, metrics)
        return self.metrics_path

    # ------------------------------------------------------------------- post-hoc fits

    def record_fit(self, section: str, entry, metrics_entry: dict):
        """A post-hoc fit (`skinlib fit-*`): its section of model.json (a section dataclass, or its dict,
        checked) and its scores and command as metrics.json[section]. Returns the new spec."""
        if self.kind != "classifier" or section not in SECTIONS:
            raise ValueError(f"{section!r} is not a section of a classifier's model.json: {sorted(SECTIONS)}")
        entry = SECTIONS[section].from_dict(entry, f'{self.spec_path} "{section}"')
        spec = dataclasses.replace(self.read_spec(), **{section: entry})
        metrics = self.read_metrics()
        self.write_spec(spec)
        self.write_metrics({**metrics, section: metrics_entry})
        return spec


def _read_json(path: Path, how_to_make: str):
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: make one with `{how_to_make}`")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}): remake it with `{how_to_make}`") from None


def _write_json(path: Path, data: dict) -> None:
    """Write through a temporary file, so an interrupted write never leaves half a file behind."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, default=float) + "\n")
    temporary.replace(path)
