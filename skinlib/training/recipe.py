"""A stage-2 recipe as data: `ClassifierConfig` holds every default once, and `RECIPE_FLAGS` says which
`skinlib train-classifier` flag sets which field.

The command line builds its train-classifier options from this table (`config_from_options`), and
`recipe_flags` turns a config back into the flags that train it, so a recorded command is generated from
the config it trained and the two round-trip. The ablation study's rows are configs (`dataclasses.replace`
of its baseline), not flag strings. No Keras here: `skinlib --help` stays fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

LOSSES = ("focal", "weighted_ce", "ce")
SOURCES = ("crop", "full")
#: `skinlib.models.classifier.BACKBONES`, spelled out so that reading a recipe does not import Keras (a test
#: keeps them equal).
BACKBONES = ("lite0", "lite2", "efficientnetb0")
CACHE_POINTS = ("stage3_out", "stage4_out", "stage5_out", "none")
#: `skinlib.data.tfdata.AUGMENTATIONS`, spelled out for the same reason (a test keeps them equal).
AUGMENTATIONS = ("standard", "battery")


@dataclass
class ClassifierConfig:
    """Everything that defines a stage-2 run; saved beside the weights."""

    data_dir: str | None = None
    split_path: str | None = None
    image_size: int = 224
    source: str = "crop"  # "crop": lesion crop from the U-Net mask; "full": the whole image
    margin: float = 0.25
    segmenter_dir: str | None = None  # default: the shipped skinlib/shipped/unet
    backbone: str = "lite0"
    backbone_weights: str | None = "imagenet"
    attention: bool = True
    colour_constancy: bool = False  # Shades-of-Gray illuminant correction as the model's first layer
    dropout: float = 0.3
    loss: str = "focal"
    gamma: float = 2.0
    cache_at: str = "stage5_out"
    train_views: int = 8
    augment: str = "standard"  # "battery": plus the shifts the battery measures (`Augmentation.matched_to_battery`)
    eval_views: int = 8
    batch_size: int = 64
    phases: tuple = ((0, 4, 1e-3), (1, 4, 3e-4), (2, 6, 1e-4))
    patience: int = 4
    seed: int = 0
    members: int = 1  # an ensemble: this many models, seeds seed, seed+1, ..., probabilities averaged
    train_limit: int | None = None
    val_limit: int | None = None
    cache: bool = True
    distribute: str | None = None  # None: default strategy; "mirrored": tf.distribute.MirroredStrategy
    notes: dict = field(default_factory=dict)


DEFAULTS = ClassifierConfig()


def parse_phases(text: str) -> tuple:
    """ "0:4:1e-3,2:6:3e-4" -> ((0, 4, 0.001), (2, 6, 0.0003)): stages unfrozen, epochs, learning rate."""
    try:
        return tuple((int(s), int(e), float(r)) for s, e, r in (part.split(":") for part in text.split(",")))
    except ValueError:
        raise ValueError(f"phases {text!r}: expected STAGES:EPOCHS:RATE[,...], e.g. 0:4:1e-3,2:6:3e-4") from None


def format_phases(phases) -> str:
    """The inverse of `parse_phases`: ((0, 4, 0.001),) -> "0:4:0.001"."""
    return ",".join(f"{int(s)}:{int(e)}:{float(r):g}" for s, e, r in phases)


@dataclass(frozen=True)
class RecipeFlag:
    """One train-classifier flag. `switch_to`: a flag without a value that sets its field to this value
    (e.g. --no-attention sets attention to False); otherwise the flag takes a value of `type`."""

    flag: str
    field: str
    help: str
    type: type = str
    choices: tuple | None = None
    switch_to: object = None
    metavar: str | None = None

    @property
    def is_switch(self) -> bool:
        return self.switch_to is not None or self.field == "backbone_weights"

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def default(self):
        return getattr(DEFAULTS, self.field)

    def to_text(self, value) -> str:
        return format_phases(value) if self.field == "phases" else str(value)

    def from_text(self, text):
        return parse_phases(text) if self.field == "phases" else self.type(text)


#: The recipe's flags, in the order a generated command lists them.
RECIPE_FLAGS = (
    RecipeFlag("--size", "image_size", "square input size", int, metavar="PIXELS"),
    RecipeFlag("--source", "source", "lesion crop (from the U-Net mask) or the full image", choices=SOURCES),
    RecipeFlag(
        "--margin",
        "margin",
        "skin kept around the lesion's bounding box on each side, as a fraction of its longer side",
        float,
        metavar="FRACTION",
    ),
    RecipeFlag("--loss", "loss", "focal loss, class-weighted or plain cross-entropy", choices=LOSSES),
    RecipeFlag("--no-attention", "attention", "global pooling straight after the backbone, no CBAM", switch_to=False),
    RecipeFlag(
        "--colour-constancy",
        "colour_constancy",
        "divide out each image's illuminant first (Shades of "
        "Gray, p=6; part of the model, so predict and evaluate apply it too)",
        switch_to=True,
    ),
    RecipeFlag(
        "--backbone",
        "backbone",
        "ImageNet backbone: lite0, lite2 (wider and deeper, about twice the "
        "compute) or efficientnetb0 (its weights need the network or a local file)",
        choices=BACKBONES,
    ),
    RecipeFlag("--random-init", "backbone_weights", "no ImageNet weights (ablation)"),
    RecipeFlag("--views", "train_views", "augmented views per training image to cache", int, metavar="N"),
    RecipeFlag(
        "--augment",
        "augment",
        "training augmentation: standard (turns, flips, small rotation and zoom, colour jitter) or battery "
        "(also colour casts, exposure, blur, JPEG, a dermoscope ring and a wider zoom, matched to the shift battery)",
        choices=AUGMENTATIONS,
    ),
    RecipeFlag(
        "--cache-at",
        "cache_at",
        "backbone layer whose output is cached; only the stages above it can be "
        "trained; none: nothing cached, every stage trains end to end on freshly augmented crops (about "
        "100 s an epoch at 128 px on 2 CPU cores)",
        choices=CACHE_POINTS,
    ),
    RecipeFlag(
        "--phases",
        "phases",
        "last stages unfrozen, epochs and learning rate per phase",
        metavar="STAGES:EPOCHS:RATE,...",
    ),
    RecipeFlag(
        "--patience",
        "patience",
        "stop a phase after this many epochs without beating its best validation balanced accuracy",
        int,
        metavar="EPOCHS",
    ),
    RecipeFlag("--seed", "seed", "every random choice of the run", int),
    RecipeFlag(
        "--members",
        "members",
        "train N models (seeds SEED..SEED+N-1) and ship them as one ensemble that averages their probabilities",
        int,
        metavar="N",
    ),
    RecipeFlag("--train-limit", "train_limit", "a per-class sample of at most N training images", int, metavar="N"),
    RecipeFlag("--val-limit", "val_limit", "a per-class sample of at most N validation images", int, metavar="N"),
)


def _flag_value(spec: RecipeFlag, value):
    """What a switch flag means for its field when present (--random-init: no ImageNet weights)."""
    return None if spec.field == "backbone_weights" else spec.switch_to


def config_from_options(options: dict, **where) -> ClassifierConfig:
    """The config a parsed train-classifier command describes. `options`: {dest: parsed value} as argparse
    gives them (a switch True when given; a value None when not given, i.e. the config's default); `where`:
    fields that are not recipe (data_dir, split_path...)."""
    values = {}
    for spec in RECIPE_FLAGS:
        given = options.get(spec.dest)
        if spec.is_switch:
            if given:
                values[spec.field] = _flag_value(spec, given)
        elif given is not None:
            values[spec.field] = given
    return ClassifierConfig(**values, **where)


def recipe_flags(config: ClassifierConfig) -> list[str]:
    """The train-classifier flags that train `config`: one for every recipe field that differs from the
    default. `config_from_options` of these flags gives `config` back (tested)."""
    flagged = {spec.field for spec in RECIPE_FLAGS}
    unsayable = [
        name
        for name in recipe_fields()
        if name not in flagged and not _same(getattr(config, name), getattr(DEFAULTS, name))
    ]
    if unsayable:
        raise ValueError(
            f"no train-classifier flag sets {', '.join(unsayable)}; change its default in "
            "ClassifierConfig or add a flag to RECIPE_FLAGS"
        )
    flags = []
    for spec in RECIPE_FLAGS:
        value = getattr(config, spec.field)
        if _same(value, spec.default()):
            continue
        if spec.is_switch:
            if not _same(value, _flag_value(spec, True)):
                raise ValueError(f"{spec.field}={value!r} cannot be said with {spec.flag}")
            flags.append(spec.flag)
        else:
            flags += [spec.flag, spec.to_text(value)]
    return flags


def _same(a, b) -> bool:
    """Equal, reading JSON lists as the tuples they were (phases)."""
    as_tuple = lambda v: tuple(as_tuple(x) for x in v) if isinstance(v, (list, tuple)) else v  # noqa: E731
    return as_tuple(a) == as_tuple(b)


#: Config fields that say where things are or how a run is executed, not what is trained.
NOT_RECIPE = ("data_dir", "split_path", "segmenter_dir", "cache", "distribute", "notes")


def recipe_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(ClassifierConfig) if f.name not in NOT_RECIPE)


# ------------------------------------------------------------- reading a recorded recipe back


def _tuples(value):
    """JSON turned the config's tuples into lists; turn them back (nested, e.g. phases)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def config_from_metrics(config_class, metrics_path, **overrides):
    """`config_class` (a dataclass) as recorded in `metrics_path`'s "config", with `overrides` applied.

    Unknown recorded keys are ignored, so an older metrics file still reads.
    """
    recorded = json.loads(Path(metrics_path).read_text())["config"]
    known = {key: _tuples(value) for key, value in recorded.items() if key in config_class.__dataclass_fields__}
    return config_class(**{**known, **overrides})
