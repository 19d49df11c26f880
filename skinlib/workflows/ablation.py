"""The ablation study: what each design choice of the shipped classifier is worth.

Every row is the shipped recipe with exactly one thing changed, the same split and the same seed, and
is reproduced by one command (`command`). Settings are compared on validation; test is reported once
per row, with the paired-bootstrap 95 % interval of its difference to the baseline on the *same* test
images, so a gain whose interval straddles zero is visibly not a gain.

A row is data: the baseline's `ClassifierConfig` with the row's `changes`, trained in this process. The
command the JSON records (`train_command`) is generated from that config and trains the same model on its
own; the run writes `predictions.npz` next to its checkpoints, and `collect_ablation` turns those into the JSON.
"""

from __future__ import annotations

import json
import math
import shlex
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..data import CLASSES, lesion_ids, load_split_frame, read_split
from ..evaluation.calibration import fit_temperature
from ..evaluation.report import detectable_gain, headline_scores, paired_gains, signed, signed_interval, units_to_detect
from ..models.folder import METRICS_FILE, SPEC_FILE, ModelFolder
from ..models.metadata_prior import MetadataPrior
from ..runtime import StageTwo
from ..runtime.views import SINGLE, Views
from ..training.classifier import PREDICTIONS_FILE
from ..training.recipe import NOT_RECIPE, ClassifierConfig, recipe_flags
from .metadata_fusion import SPLITS, fusion_record, training_frame
from .shift_battery import REFERENCE_MODEL

#: The baseline recipe: how it differs from `ClassifierConfig`'s defaults (smaller input, cache lower, three phases).
BASELINE_CHANGES = {"image_size": 128, "cache_at": "stage3_out", "phases": ((0, 3, 1e-3), (2, 4, 5e-4), (4, 8, 2e-4))}
#: The random-initialisation row: end to end (nothing frozen, nothing cached), BatchNorm learning, one long phase.
RANDOM_INIT_CHANGES = {"backbone_weights": None, "cache_at": "none", "phases": ((7, 20, 1e-3),), "patience": 8}
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class AblationRow:
    name: str
    question: str
    changes: dict = field(default_factory=dict)  # ClassifierConfig fields that differ from the baseline recipe
    views: Views = SINGLE  # score the row's model with these test-time augmentation views (`Views`)
    trains_from: str | None = None  # reuse another row's model instead of training (TTA rows)
    metadata: bool = False  # fuse the reused model's probabilities with age, sex and site (`fit-metadata`)
    scale_note: str = ""
    why_more_changes: str = ""  # a row changes one thing; one that needs several fields for it says why

    @property
    def has_own_predictions(self) -> bool:
        """False only for the plain TTA rows, whose predictions the reused model's run already holds."""
        return not self.trains_from or self.own_tta_views or self.metadata

    @property
    def tta(self) -> bool:
        """Whether the row scores its model with test-time augmentation."""
        return self.views.is_tta

    @property
    def own_tta_views(self) -> bool:
        """TTA with other views than the reused model's 8 dihedral ones (scales or augmented draws): scored
        here, with a temperature fitted on val for these views."""
        return self.views.is_tta and self.views != Views.dihedral()


ROWS = (
    AblationRow("baseline", "The shipped recipe: U-Net lesion crop, ImageNet init, CBAM attention, focal loss."),
    AblationRow(
        "full_image", "Does the dual stage help? The whole image instead of the U-Net lesion crop.", {"source": "full"}
    ),
    AblationRow(
        "weighted_ce", "Focal loss vs class-weighted cross-entropy (same class weights).", {"loss": "weighted_ce"}
    ),
    AblationRow("plain_ce", "Focal loss vs plain cross-entropy (no class weighting at all).", {"loss": "ce"}),
    AblationRow(
        "no_attention",
        "Channel + spatial attention vs global pooling straight after the backbone.",
        {"attention": False},
    ),
    AblationRow(
        "colour_constancy",
        "Does removing the light's colour help? Shades-of-Gray colour constancy (each "
        "image's illuminant divided out, p=6, as top ISIC challenge entries did) as the model's first layer.",
        {"colour_constancy": True},
    ),
    AblationRow(
        "battery_augment",
        "Augmentation matched to the shift battery (colour casts, exposure, blur, JPEG, dermoscope ring, wider "
        "zoom) vs the standard augmentation.",
        {"augment": "battery"},
    ),
    AblationRow(
        "tight_crop",
        "Crop margin: 10 % of the lesion's side kept around it instead of 25 %. Less surrounding skin, where "
        "rulers, ink marks and dark corners let a model learn one clinic's habits (Bissoto et al. 2019).",
        {"margin": 0.1},
    ),
    AblationRow(
        "more_views",
        "Train views: 16 augmented views of each training image cached instead of 8 (more variety for the "
        "same number of updates).",
        {"train_views": 16},
    ),
    AblationRow(
        "random_init",
        "What is ImageNet worth? Random initialisation, every stage trained end to end.",
        RANDOM_INIT_CHANGES,
        scale_note="A fair start from random weights: the cached recipe freezes stages 1-3, which random "
        "weights cannot survive (an earlier version of this row froze them and every image got "
        "one class, balanced accuracy 1/7). Here nothing is frozen or cached: every stage, "
        "BatchNorm included, trains on freshly augmented crops for 20 epochs (one phase, Adam "
        "1e-3 with cosine decay, the same loss, data and seed), and after every epoch BatchNorm's "
        "statistics are recomputed on 1,024 training images (moving averages of a network that "
        "changes this fast go stale: without it, an early checkpoint gave every validation image "
        "one class in inference mode while its batch statistics told the classes apart). It costs "
        "several times the baseline's CPU time. The difference to the baseline reads as what ImageNet pretraining "
        "is worth under this machine's budget; a longer schedule would narrow it.",
        why_more_changes="one change, the initialisation; random weights cannot be trained with frozen, "
        "cached stages, so the row also says how it trains (end to end, one phase)",
    ),
    AblationRow(
        "lite2_backbone",
        "Is the backbone the limit? EfficientNet-Lite2 (wider and deeper, 77.6 % vs 75.1 % "
        "ImageNet top-1, about twice the compute) in place of Lite0, same recipe.",
        {"backbone": "lite2"},
    ),
    AblationRow(
        "lite2_tight_crop",
        "Do two qualifiers add up? EfficientNet-Lite2 with the 10 % crop margin, the two single changes that "
        "qualified with the largest validation gains that train one model.",
        {"backbone": "lite2", "margin": 0.1},
        why_more_changes="a combination row: it asks whether the two qualifying single changes (lite2_backbone, "
        "tight_crop) add up, so it changes exactly their two fields",
    ),
    AblationRow(
        "ensemble",
        "Three models of the baseline recipe (seeds 0, 1, 2), probabilities averaged, vs one.",
        {"members": 3},
    ),
    AblationRow(
        "half_data",
        "How much does data add? Half of the training images (sampled per class), same recipe.",
        {"train_limit": 3502},
        scale_note="The baseline recipe on 3500 of the 7005 training images (per-class sample, seed 0; same "
        "epochs, so half the updates): a point on the learning curve, not a design choice.",
    ),
    AblationRow(
        "quarter_data",
        "How much does data add? A quarter of the training images, same recipe.",
        {"train_limit": 1751},
        scale_note="The baseline recipe on 1751 of the 7005 training images (per-class sample, seed 0; same "
        "epochs, so a quarter of the updates): a point on the learning curve.",
    ),
    AblationRow(
        "tta",
        "Test-time augmentation: the baseline model, averaging the 8 flips/rotations.",
        views=Views.dihedral(),
        trains_from="baseline",
    ),
    AblationRow(
        "ensemble_tta",
        "TTA on the ensemble: each of the three models averages the 8 flips/rotations.",
        views=Views.dihedral(),
        trains_from="ensemble",
    ),
    AblationRow(
        "tta_scales",
        "TTA with scale: the 8 flips/rotations of the crop as it is and zoomed in by 20 %.",
        views=Views.dihedral(scales=(1.0, 1.2)),
        trains_from="baseline",
    ),
    AblationRow(
        "tta_augmented",
        "TTA with the training augmentation's views: 16 fixed draws (turn, flip, rotation up "
        "to 20°, zoom 0.9-1.15, colour jitter) instead of the 8 flips/rotations.",
        views=Views.augmented(),
        trains_from="baseline",
        scale_note="Full. Added after a validation-only comparison of view sets on the baseline model "
        "(dihedral, zooms, augmented draws); its test scores were read once, here.",
    ),
    AblationRow(
        "metadata",
        "Image + metadata: the baseline model's probabilities fused with age, sex and site "
        "(naive-Bayes prior counted on the training lesions, its weight fitted on val).",
        trains_from="baseline",
        metadata=True,
        scale_note="Full: no training; the baseline model with the late fusion of `skinlib fit-metadata`.",
    ),
)
ROW_NAMES = tuple(row.name for row in ROWS)
#: The rows that train a model of their own (the others score another row's model with TTA).
TRAINING_ROWS = tuple(row.name for row in ROWS if not row.trains_from)
#: Rows of the study not yet trained, so missing from the committed skinlib/shipped/ablation.json; a row leaves
#: this list when its results are committed (a test fails while a listed row has results, or an unlisted one none).
AWAITING_RESULTS: tuple[str, ...] = ()


def _row(name: str) -> AblationRow:
    for row in ROWS:
        if row.name == name:
            return row
    raise ValueError(f"unknown ablation row {name!r}; choose from {', '.join(ROW_NAMES)}")


def row_dir(out_dir, name: str) -> Path:
    """Where a row's predictions live: its own folder, except the plain TTA rows, which are their model's."""
    row = _row(name)
    return Path(out_dir) / (name if row.has_own_predictions else row.trains_from)


def model_dir(out_dir, name: str) -> Path:
    """The model a row scores: its own, or the one it reuses."""
    return Path(out_dir) / (_row(name).trains_from or name) / "model"


def row_config(name: str, data_dir: str | None = None):
    """The `ClassifierConfig` that row `name` trains: the baseline recipe with the row's changes."""

    row = _row(name)
    if row.trains_from:
        raise ValueError(f"row {name!r} trains nothing (it scores the {row.trains_from!r} model)")
    return replace(ClassifierConfig(data_dir=data_dir, **BASELINE_CHANGES), **row.changes)


def train_command(name: str, out_dir, data_dir: str | None = None) -> list[str]:
    """The `skinlib train-classifier` argv that trains row `name`, generated from its config (and parsed back to
    it by the command line: tested)."""

    folder = row_dir(out_dir, name)
    data = ["--data", str(data_dir)] if data_dir else []
    return [
        "skinlib",
        "train-classifier",
        *data,
        *recipe_flags(row_config(name)),
        "--out",
        str(folder / "model"),
        "--run-dir",
        str(folder / "run"),
    ]


def run_row(name: str, out_dir, data_dir: str | None = None, quiet: bool = False) -> Path:
    """Train row `name` unless its predictions exist (rerun to resume); returns its predictions file."""
    folder = row_dir(out_dir, name)
    predictions = folder / "run" / PREDICTIONS_FILE
    if predictions.is_file():
        return predictions
    if _row(name).own_tta_views:
        return own_view_tta_predictions(name, out_dir, data_dir)
    if _row(name).metadata:
        return metadata_predictions(name, out_dir, data_dir)
    # deferred: loads Keras
    from ..training.classifier import train_and_ship_classifier

    trained = _row(name).trains_from or name
    command = shlex.join(train_command(trained, out_dir, data_dir))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"[ablation] {name}: {command}", flush=True)
    started = time.time()
    train_and_ship_classifier(
        row_config(trained, data_dir),
        run_dir=folder / "run",
        out_dir=folder / "model",
        command=command,
        progress=not quiet,
    )
    keras_clear_session()  # the next row starts from a clean graph
    if not predictions.is_file():
        raise RuntimeError(f"ablation row {name!r} finished without writing {predictions}")
    print(f"[ablation] {name}: done in {time.time() - started:.0f} s", flush=True)
    return predictions


def keras_clear_session() -> None:
    """Free the finished row's models before the next row trains in the same process."""
    import keras  # deferred: loads TensorFlow

    keras.backend.clear_session()


def recipe_of(config) -> dict:
    """A config's recipe as a model's metrics.json records it (tuples as JSON lists), without the fields that
    say where things are."""

    recorded = json.loads(json.dumps(asdict(config)))
    return {key: value for key, value in recorded.items() if key not in NOT_RECIPE}


def baseline_config() -> dict:
    """The baseline recipe as recorded in a model's metrics.json."""

    return recipe_of(ClassifierConfig(**BASELINE_CHANGES))


def recipe_differences(recorded: dict) -> dict:
    """The recipe fields where a recorded config differs from the baseline: {field: recorded value}.

    A field missing from the record (a model trained before the field existed) had its default value.
    """
    # deferred: loads Keras
    from ..training.classifier import ClassifierConfig

    baseline = baseline_config()
    defaults = {name: f.default for name, f in ClassifierConfig.__dataclass_fields__.items()}
    recorded = {**{key: defaults.get(key) for key in baseline}, **recorded}
    return {key: recorded[key] for key, value in baseline.items() if recorded[key] != value}


def _val_test_inputs(model_folder: Path, data_dir: str | None) -> dict:
    """The val and test stage-2 inputs of a trained model, made as its recorded config made them."""
    # deferred: loads Keras
    from ..training.classifier import config_from_metrics, stage2_inputs

    config = config_from_metrics(model_folder / "metrics.json", **({"data_dir": data_dir} if data_dir else {}))
    return stage2_inputs(config, splits=("val", "test"))


def row_recipe_differences(name: str) -> dict:
    """How row `name`'s recipe differs from the baseline's: {field: value} ({} for the baseline)."""
    return recipe_differences(recipe_of(row_config(name)))


def row_of_recipe(recorded: dict) -> str | None:
    """The row whose recipe a recorded config (a model's metrics.json "config") is; None if no row's."""
    differences = recipe_differences(recorded)
    return next((name for name in TRAINING_ROWS if row_recipe_differences(name) == differences), None)


def row_from_model(name: str, trained_dir, out_dir, data_dir: str | None = None) -> Path:
    """Use an already trained model (e.g. the shipped one) as row `name` instead of training it again.

    Refuses unless the model's recorded config is exactly that row's recipe, so the row stays what it claims.
    """
    # deferred: loads Keras
    from ..training.classifier import save_predictions

    trained_dir = Path(trained_dir)
    recorded = ModelFolder(trained_dir).read_metrics()["config"]
    different, expected = recipe_differences(recorded), row_recipe_differences(name)
    if different != expected:
        raise ValueError(
            f"{trained_dir} was not trained with the {name} row's recipe (it differs from the baseline "
            f"in {different}, the row in {expected}); train the row instead: "
            f"{shlex.join(train_command(name, out_dir, data_dir))}"
        )
    data = _val_test_inputs(trained_dir, data_dir)
    model = StageTwo.load(trained_dir)
    plain_and_tta = (Views.single(), Views.dihedral())
    results = {
        (split, views.is_tta): (data[split][1], model.raw_probabilities(data[split][0], views))
        for split in ("val", "test")
        for views in plain_and_tta
    }
    folder = row_dir(out_dir, name)
    copy_model(model.spec, trained_dir, folder / "model")
    temperature = {views.is_tta: model.temperature_for(views) for views in plain_and_tta}
    return save_predictions(folder / "run" / PREDICTIONS_FILE, data, results, temperature)


def model_files(spec) -> list[str]:
    """Every file of a classifier folder that its model.json (a `ClassifierSpec`) names (weights, metadata prior,
    novelty model), with metrics.json and model.json: what a copy needs for `StageTwo.load` to work on it."""

    return [METRICS_FILE, SPEC_FILE, *spec.files()]


def copy_model(spec, source, destination) -> Path:
    """Copy a classifier folder's files (`model_files`) into `destination`; a model that already sits there (say
    `--reuse baseline=runs/ablation/baseline/model` after a fresh checkout) is left as it is."""
    import shutil

    source, destination = Path(source), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    if destination.resolve() != source.resolve():
        for file in model_files(spec):
            shutil.copy(source / file, destination / file)
    return destination


def baseline_from_model(trained_dir, out_dir, data_dir: str | None = None) -> Path:
    """`row_from_model` for the baseline row."""
    return row_from_model("baseline", trained_dir, out_dir, data_dir)


def own_view_tta_predictions(name: str, out_dir, data_dir: str | None = None) -> Path:
    """Score the reused model with TTA on the row's views (scales or augmented draws); the temperature is
    fitted on val for these views."""
    # deferred: loads Keras
    from ..training.classifier import save_predictions

    row = _row(name)
    source = model_dir(out_dir, name)
    data = _val_test_inputs(source, data_dir)
    model = StageTwo.load(source)
    print(f"[ablation] {name}: TTA on {row.views.describe()} views with {source}", flush=True)
    results = {
        (split, True): (data[split][1], model.raw_probabilities(data[split][0], row.views)) for split in ("val", "test")
    }
    temperature = {True: fit_temperature(*results[("val", True)])}
    return save_predictions(row_dir(out_dir, name) / "run" / PREDICTIONS_FILE, data, results, temperature)


def metadata_predictions(name: str, out_dir, data_dir: str | None = None) -> Path:
    """Fuse the reused model's saved val/test probabilities with each image's metadata (`skinlib fit-metadata`'s
    method: prior counted on the model's training split, weight fitted on val); no images are read."""
    # deferred: loads Keras
    from ..training.classifier import config_from_metrics, save_predictions

    row = _row(name)
    source = run_row(row.trains_from, out_dir, data_dir)
    reused = _load(source)
    config = config_from_metrics(
        model_dir(out_dir, name) / "metrics.json", **({"data_dir": data_dir} if data_dir else {})
    )
    frame = load_split_frame(config.data_dir, config.split_path).set_index("image_id")
    frames = {split: frame.loc[reused[f"{split}_image_ids"]].reset_index() for split in SPLITS}
    calibrated = {
        (split, tta): (reused[f"{split}_labels"], reused[f"{split}_{'tta' if tta else 'plain'}"])
        for split in SPLITS
        for tta in (False, True)
    }
    print(f"[ablation] {name}: metadata fusion of {source}", flush=True)
    _, fused = fusion_record(MetadataPrior.fit(training_frame(config)), calibrated, frames)
    data = {split: (None, None, frames[split]) for split in SPLITS}
    return save_predictions(row_dir(out_dir, name) / "run" / PREDICTIONS_FILE, data, fused, {False: 1.0, True: 1.0})


def _load(path: Path) -> dict:
    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


def training_images(config: dict) -> int:
    """How many training images a recorded config trained on (`train_limit` samples them per class)."""
    # deferred: loads Keras
    from ..training.classifier import _subset

    split = read_split(config.get("split_path"))  # the count depends only on the class sizes of its train split
    return int(len(_subset(split, "train", config.get("train_limit"), config.get("seed", 0))))


def check_not_collapsed(name: str, probs, where) -> None:
    """A row whose validation predictions are all one class is a failed training, not a result: refuse it
    loudly (its balanced accuracy would be exactly 1/7 and read as a finding)."""
    predicted = np.unique(np.asarray(probs).argmax(axis=1))
    if len(predicted) < 2:
        raise ValueError(
            f"row {name!r} predicts {CLASSES[int(predicted[0])]!r} for every validation image: its "
            f"training failed (see {Path(where) / 'train.log'}); fix the recipe and rerun it, it does "
            "not enter the table"
        )


def finished_rows(out_dir) -> list[str]:
    return [name for name in ROW_NAMES if (row_dir(out_dir, name) / "run" / PREDICTIONS_FILE).is_file()]


def collect_ablation(out_dir, data_dir: str | None = None, names=None, samples: int | None = None) -> dict:
    """The results JSON from the rows' prediction files: val and test scores, test difference to baseline."""

    samples = samples or BOOTSTRAP_SAMPLES
    names = finished_rows(out_dir) if names is None else names
    if "baseline" not in names:
        raise FileNotFoundError(f"no baseline predictions under {out_dir}: run `skinlib ablate --rows baseline` first")
    base = _load(row_dir(out_dir, "baseline") / "run" / PREDICTIONS_FILE)
    lesions = {part: base.get(f"{part}_lesion_ids") for part in ("val", "test")}
    if any(ids is None for ids in lesions.values()):  # predictions saved before they recorded lesion ids
        config = ModelFolder(model_dir(out_dir, "baseline")).read_metrics()["config"]
        split = read_split(config.get("split_path"))
        lesions = {part: lesion_ids(base[f"{part}_image_ids"], split) for part in ("val", "test")}
    rows = []
    for name in names:
        row = _row(name)
        folder = row_dir(out_dir, name)
        arrays = _load(folder / "run" / PREDICTIONS_FILE)
        for split in ("val", "test"):
            if not np.array_equal(arrays[f"{split}_image_ids"], base[f"{split}_image_ids"]):
                raise ValueError(
                    f"row {name!r} was scored on other {split} images than the baseline; delete {folder} and rerun it"
                )
        view = "tta" if row.tta else "plain"
        check_not_collapsed(name, arrays[f"val_{view}"], folder)
        metrics = ModelFolder(model_dir(out_dir, name)).read_metrics()
        labels = base["test_labels"]
        entry = {
            "name": name,
            "question": row.question,
            "command": shlex.join(
                [
                    "skinlib",
                    "ablate",
                    *(["--data", str(data_dir)] if data_dir else []),
                    "--out",
                    str(out_dir),
                    "--rows",
                    name,
                ]
            ),
            "train_command": shlex.join(train_command(row.trains_from or name, out_dir, data_dir)),
            "tta": row.tta,
            "tta_scales": row.views.record().get("tta_scales"),
            "tta_views": row.views.describe() if row.tta else None,
            "scale": row.scale_note or "Full: the shipped model's own schedule and data.",
            "val": headline_scores(base["val_labels"], arrays[f"val_{view}"]),
            "test": headline_scores(labels, arrays[f"test_{view}"]),
            "val_minus_baseline": paired_gains(
                base["val_labels"],
                base["val_plain"],
                arrays[f"val_{view}"],
                samples,
                BOOTSTRAP_SEED,
                groups=lesions["val"],
            ),
            "test_minus_baseline": paired_gains(
                labels, base["test_plain"], arrays[f"test_{view}"], samples, BOOTSTRAP_SEED, groups=lesions["test"]
            ),
            "train_images": training_images(metrics["config"]),
            "model_command": metrics.get("command"),
            "train_seconds": metrics.get("train_seconds"),
            "total_seconds": metrics.get("total_seconds"),
        }
        rows.append(entry)
    return {
        "classes": list(CLASSES),
        "baseline": "baseline",
        "seed": 0,
        "test_images": int(len(base["test_labels"])),
        "val_images": int(len(base["val_labels"])),
        "test_lesions": int(len(set(lesions["test"]))),
        "val_lesions": int(len(set(lesions["val"]))),
        "bootstrap": {"samples": samples, "seed": BOOTSTRAP_SEED, "paired": True, "unit": "lesions"},
        "selection": "compare rows on val; test is reported once per row",
        "rows": rows,
    }


#: The calibration the shipped model must keep (expected calibration error after temperature scaling).
ECE_TARGET = 0.05


def replacement_verdict(results: dict, ece_target: float = ECE_TARGET, battery: dict | None = None) -> dict:
    """Which rows would replace the baseline recipe, decided on validation only.

    A row (not the baseline, not a TTA scoring) beats the baseline when the paired 95 % interval of its
    validation balanced-accuracy difference lies above 0. With `battery` (a `skinlib shifts` study of the baseline
    and the rows, by name) robustness is weighed too: a row also beats the baseline when its balanced accuracy
    under the battery is higher beyond noise (`battery_minus_reference` above 0) while it loses nothing on the
    clean validation images (difference at least 0); and a row that beats either way is held back when it is
    less robust beyond noise, or when the battery never scored it. Every row that beats must keep validation ECE
    at or below `ece_target`, the calibration every shipped model must meet. Returns {"beat_on_val",
    "beat_under_battery", "qualify", "held_back": {row: why}, "image_level", "robustness_weighed"}; a row in
    "image_level" was judged on an interval that resampled images (too narrow): its verdict is provisional.
    """
    candidates = [r for r in results["rows"] if not r["tta"] and r["name"] != "baseline"]
    under_battery = {r["name"]: _battery_interval(battery, r["name"]) for r in candidates} if battery else {}
    beat = [r["name"] for r in candidates if r["val_minus_baseline"]["balanced_accuracy"]["ci95"][0] > 0]
    robust = [
        r["name"]
        for r in candidates
        if battery is not None
        and under_battery[r["name"]][0] > 0
        and r["val_minus_baseline"]["balanced_accuracy"]["difference"] >= 0
    ]
    chosen = [r for r in candidates if r["name"] in beat or r["name"] in robust]
    held_back = {}
    for r in chosen:
        low, high = under_battery.get(r["name"], (0.0, 0.0))  # (0, 0): robustness not weighed
        if r["val"]["expected_calibration_error"] > ece_target:
            held_back[r["name"]] = f"validation ECE {r['val']['expected_calibration_error']:.3f} > {ece_target:g}"
        elif high < 0:
            held_back[r["name"]] = (
                f"less robust under the shift battery ([{signed(low)}, {signed(high)}] vs the baseline)"
            )
        elif math.isnan(low):
            held_back[r["name"]] = (
                f"not scored under the shift battery (skinlib shifts --update --model {r['name']}=...)"
            )
    return {
        "beat_on_val": beat,
        "beat_under_battery": robust,
        "held_back": held_back,
        "qualify": [r["name"] for r in chosen if r["name"] not in held_back],
        "image_level": [name for name in image_level_rows(results) if name != "baseline"],
        "robustness_weighed": battery is not None,
    }


def chosen_row(results: dict, verdict: dict) -> str:
    """The recipe the rule ships: of the qualifying rows, the one with the largest validation balanced-accuracy
    gain (still validation only); the baseline when none qualifies."""
    gains = {r["name"]: r["val_minus_baseline"]["balanced_accuracy"]["difference"] for r in results["rows"]}
    return max(verdict["qualify"], key=gains.get, default="baseline")


def _battery_interval(battery: dict, name: str) -> tuple[float, float]:
    """The 95 % interval of row `name`'s balanced accuracy under the battery minus the baseline's; NaN when the
    battery did not compare it with the baseline."""
    entry = battery["models"].get(name, {}).get("battery_minus_reference")
    if entry is None or entry.get("reference") != REFERENCE_MODEL:
        return (math.nan, math.nan)
    return tuple(entry["balanced_accuracy"]["ci95"])


def tta_rows(results: dict) -> list[dict]:
    """The rows that score the baseline model itself with test-time augmentation (one per set of views)."""
    return [r for r in results["rows"] if r["tta"] and _row(r["name"]).trains_from == "baseline"]


def chosen_tta_row(results: dict) -> dict:
    """The TTA views chosen on validation: the baseline-model TTA row with the largest validation balanced-
    accuracy gain. Its test gain is the one the study reports for TTA (test never takes part in the choice)."""
    rows = tta_rows(results)
    if not rows:
        raise ValueError("the results hold no TTA row on the baseline model: run `skinlib ablate --rows tta`")
    return max(rows, key=lambda r: r["val_minus_baseline"]["balanced_accuracy"]["difference"])


def gain_power(results: dict, name: str, split: str = "test", metric: str = "balanced_accuracy") -> dict:
    """How large a change row `name`'s comparison on `split` could detect, and how many lesions (the unit its
    bootstrap resampled; images for a row still collected over images) its measured change would take to
    detect (80 % power, 95 % intervals; `skinlib.evaluation.report.detectable_gain`).
    Needs the bootstrap standard error that `collect_ablation` records."""

    row = next((r for r in results["rows"] if r["name"] == name), None)
    if row is None:
        raise ValueError(f"no row {name!r} in the results")
    gain = row[f"{split}_minus_baseline"][metric]
    if "standard_error" not in gain:
        raise ValueError(
            "these results predate the bootstrap standard error: rebuild them with "
            "`skinlib ablate --collect-only --update`"
        )
    unit = gain.get("bootstrap_unit", "images")
    units = int(gain.get("units") or results[f"{split}_images"])
    return {
        "row": name,
        "split": split,
        "metric": metric,
        "unit": unit,
        "units": units,
        "images": int(results[f"{split}_images"]),
        "observed": gain["difference"],
        "standard_error": gain["standard_error"],
        "detectable": detectable_gain(gain["standard_error"]),
        "units_to_detect_observed": units_to_detect(gain["difference"], gain["standard_error"], units),
    }


def row_bootstrap_unit(row: dict) -> str:
    """What a row's intervals resampled: "lesions", or "images" for a row carried over from results collected
    before the bootstrap resampled lesions (its intervals are too narrow until it is rerun)."""
    return row["val_minus_baseline"]["balanced_accuracy"].get("bootstrap_unit", "images")


def image_level_rows(results: dict) -> list[str]:
    """The rows whose intervals still resample images: they need their predictions again (rerun the row)."""
    return [row["name"] for row in results["rows"] if row_bootstrap_unit(row) == "images"]


#: The rows that differ from the baseline only in how many training images they see.
LEARNING_CURVE_ROWS = ("quarter_data", "half_data", "baseline")


def learning_curve(results: dict, target: float | None = None) -> dict:
    """Balanced accuracy against training images from the data rows of the study, and a log-linear fit.

    The fit (validation balanced accuracy = a + b * log2(images)) gives the gain per doubling of the data; with
    `target`, also how many doublings past the full training split that rate would need to reach it. The gain of
    the last step alone (`val_gain_last_doubling`) shows whether the curve is already flattening. Three
    points and a straight line: an extrapolation to read as an order of magnitude, not a forecast.
    """
    rows = {row["name"]: row for row in results["rows"]}
    present = [name for name in LEARNING_CURVE_ROWS if name in rows and "train_images" in rows[name]]
    if len(present) < 2:
        raise ValueError(
            f"a learning curve needs at least two of the rows {LEARNING_CURVE_ROWS} with train_images; "
            f"run `skinlib ablate --rows quarter_data half_data`"
        )
    images = np.array([rows[name]["train_images"] for name in present], dtype=float)
    val = np.array([rows[name]["val"]["balanced_accuracy"] for name in present])
    test = np.array([rows[name]["test"]["balanced_accuracy"] for name in present])
    slope, intercept = np.polyfit(np.log2(images), val, 1)
    curve = {
        "rows": present,
        "train_images": images.astype(int).tolist(),
        "val_balanced_accuracy": val.tolist(),
        "test_balanced_accuracy": test.tolist(),
        "val_gain_per_doubling": float(slope),
        "val_fit_intercept": float(intercept),
        "val_gain_last_doubling": float((val[-1] - val[-2]) / np.log2(images[-1] / images[-2])),
    }
    if target is not None:
        needed = (target - val[-1]) / slope if slope > 1e-6 else float("inf")  # flat or falling: never
        curve.update(
            {
                "target": float(target),
                "doublings_to_target": float(needed),
                "images_for_target": float(images[-1] * 2**needed) if np.isfinite(needed) else float("inf"),
            }
        )
    return curve


def merge_results(existing: dict, fresh: dict, source: str = "the results JSON") -> dict:
    """`existing` with the rows of `fresh` replaced or added, so one row can be rerun without the others.

    Refuses unless both were measured against the same baseline on the same images, which is what makes
    their differences comparable.
    """

    def baseline_scores(results, split):
        row = next(row for row in results["rows"] if row["name"] == results["baseline"])
        return [row[split]["balanced_accuracy"], row[split]["macro_roc_auc"]]

    def resampling(results):  # the unit may differ: a row carried over keeps its own (see row_bootstrap_unit)
        return {key: value for key, value in results.get("bootstrap", {}).items() if key != "unit"}

    for key, read in (
        ("classes", dict.get),
        ("baseline", dict.get),
        ("test_images", dict.get),
        ("val_images", dict.get),
        ("bootstrap", lambda results, _: resampling(results)),
    ):
        if read(existing, key) != read(fresh, key):
            raise ValueError(
                f"{source} has {key}={read(existing, key)!r} but this run has {read(fresh, key)!r}; "
                f"rerun every row instead of --update"
            )
    for split in ("val", "test"):
        if not np.allclose(baseline_scores(existing, split), baseline_scores(fresh, split), atol=1e-6):
            raise ValueError(
                f"the baseline's {split} scores in {source} differ from this run's baseline; "
                f"the rows would not be comparable: rerun every row instead of --update"
            )
    carried = {row["name"]: _with_unit(row, existing) for row in existing["rows"]}
    rows = carried | {row["name"]: row for row in fresh["rows"]}
    return {
        **existing,
        **{key: value for key, value in fresh.items() if key != "rows"},
        "rows": [rows[name] for name in ROW_NAMES if name in rows],
    }


def _with_unit(row: dict, results: dict) -> dict:
    """A row of older results with its bootstrap unit written out ("images", as those results resampled)."""
    if "bootstrap_unit" in row["val_minus_baseline"]["balanced_accuracy"]:
        return row
    row = json.loads(json.dumps(row))
    for split in ("val", "test"):
        for gain in row[f"{split}_minus_baseline"].values():
            gain.update(bootstrap_unit="images", units=int(results[f"{split}_images"]))
    return row


def ablation_markdown(results: dict) -> str:
    """A table for the terminal and the README (the book renders it from the JSON, never retyped)."""

    def interval(diff):
        mark = " *" if diff.get("bootstrap_unit", "images") == "images" else ""
        return signed_interval(diff["difference"], *diff["ci95"]) + mark

    collections = results.get("external", {}).get("collections", [])
    lines = [
        "| row | val BMA | val - baseline (95 % CI) | test BMA | test - baseline (95 % CI) | test macro AUC | mel recall |"
        + "".join(f" {name} BMA, classes present |" for name in collections),
        "|---|---|---|---|---|---|---|" + "---|" * len(collections),
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['name']} | {row['val']['balanced_accuracy']:.3f} "
            f"| {interval(row['val_minus_baseline']['balanced_accuracy'])} "
            f"| {row['test']['balanced_accuracy']:.3f} | {interval(row['test_minus_baseline']['balanced_accuracy'])} "
            f"| {row['test']['macro_roc_auc']:.3f} | {row['test']['melanoma_recall']:.3f} |"
            + "".join(f" {external_cell(row, name)} |" for name in collections)
        )
    lines.append(
        "\nIntervals: paired bootstrap over lesions; * over images (a row collected before, too narrow "
        "until it is rerun)."
    )
    if collections:
        lines.append(
            f"External columns ({', '.join(collections)}): balanced accuracy restricted to the classes the collection "
            "holds, read after the choice (never used by the replacement rule); n/a: the row cannot be scored there."
        )
    return "\n".join(lines) + "\n"


def external_cell(row: dict, collection: str) -> str:
    """A row's external score for a table: its restricted balanced accuracy, n/a, or – when not scored."""
    scores = row.get("external", {}).get(collection)
    if scores is None:
        return "–"
    if "not_applicable" in scores:
        return "n/a"
    return f"{scores['balanced_accuracy_restricted']:.3f}"
