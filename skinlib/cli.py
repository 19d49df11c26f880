"""The `skinlib` command line: one sub-command per job, each a thin wrapper over the library."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from . import __version__
from .data import (
    DEFAULT_FRACTIONS,
    DEFAULT_SEED,
    DEFAULT_SPLIT_PATH,
    load_metadata,
    make_split,
    read_split,
    split_summary,
    write_split,
)
from .data.check import check_data
from .data.classes import CLASSES
from .data.errors import DataError
from .data.layout import collection_name
from .evaluation.calibration import prior_from_shares
from .evaluation.referral import REFERRAL_SENSITIVITY
from .evaluation.robustness import colour_cast_rows, merge_colour_cast_studies
from .evaluation.subset import AS_IS, RESTRICTED, reading_titles
from .models.metadata_prior import metadata_columns
from .pipeline import add_pipeline_parser
from .predict import predict_files
from .runtime import DualStage
from .runtime.views import Views
from .scoring import score_labelled_folder
from .segmentation.apply import pair_images_and_masks, segment_files
from .segmentation.segmenter import evaluate_segmenter, load_segmenter
from .shipped import CLASSIFIER
from .training import UNetConfig
from .training.recipe import AUGMENTATIONS, RECIPE_FLAGS, config_from_options, parse_phases
from .training.ship_unet import train_and_ship_unet
from .workflows.metadata_fusion import fit_metadata_for_model
from .workflows.novelty import fit_novelty_for_model


class UsageError(Exception):
    """Options that do not go together (e.g. --tta-scales without --tta): the user's command line is wrong,
    not the data. `DataError` is for files and folders that are missing or malformed."""


def _add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", help="HAM10000 folder (default: $SKINLIB_DATA)")


def cmd_check_data(args) -> int:

    report = check_data(args.data, progress=not args.quiet)
    print(report.render())
    return 0 if report.ok else 1


def cmd_split(args) -> int:

    frame = load_metadata(args.data)
    split = make_split(frame, fractions=tuple(args.fractions), seed=args.seed)
    if args.verify:
        shipped = read_split(args.out or DEFAULT_SPLIT_PATH)
        same = (
            shipped[["image_id", "split"]]
            .sort_values("image_id")
            .reset_index(drop=True)
            .equals(split[["image_id", "split"]].sort_values("image_id").reset_index(drop=True))
        )
        print(
            f"{'OK' if same else 'DIFFERENT'}: split made with seed {args.seed} "
            f"{'matches' if same else 'does not match'} {args.out or DEFAULT_SPLIT_PATH}"
        )
        return 0 if same else 1
    print(split_summary(split).to_string())
    if args.out:
        write_split(split, args.out, seed=args.seed, fractions=tuple(args.fractions))
        print(f"wrote {args.out} (and {Path(args.out).with_suffix('.json').name})")
    return 0


def cmd_train_unet(args) -> int:

    config = UNetConfig(
        data_dir=args.data,
        image_size=tuple(args.size),
        encoder=args.encoder,
        batch_size=args.batch_size,
        frozen_epochs=args.frozen_epochs,
        epochs=args.epochs,
        seed=args.seed,
        train_limit=args.train_limit,
        val_limit=args.val_limit,
        augment=args.augment,
    )
    command = _invoked_command()
    metrics = train_and_ship_unet(
        config, run_dir=args.run_dir, out_dir=args.out, command=command, progress=not args.quiet
    )
    print(json.dumps(metrics["test"], indent=2))
    return 0


def cmd_segment(args) -> int:

    segmenter = load_segmenter(args.method, args.model)
    result = segment_files(args.images, args.out, segmenter, progress=not args.quiet)
    print(f"segmented {len(result.written)} image(s) with {segmenter.name}; masks and overlays in {args.out}")
    for path, note in result.notes.items():
        print(f"  note: {path}: {note}")
    for error in result.failed.values():
        print(f"  FAILED: {error}", file=sys.stderr)
    return 1 if result.failed else 0


TTA_AUGMENTED_HELP = (
    "with --tta: average 16 views drawn from the training augmentation (turns, flips, small "
    "rotations and zooms, colour jitter) instead of the 8 flips/turns; needs `skinlib fit-tta` once"
)


PRIOR_HELP = (
    "answer for a population with this class mix instead of the mix the loss implied (every class "
    "counted alike): 'training' (HAM10000's training mix) or shares such as mel=0.02,nv=0.8 (the classes "
    "not named split the rest as in HAM10000's training mix); needs `skinlib fit-prior`"
)


def _prior(args, pipeline):
    """--prior as the classifier takes it: None, "training", or one share per class (checked here, so a typo is a
    usage error that names the option, before any image is read)."""
    if args.prior is None:
        return None
    recorded = pipeline.classifier.spec.class_prior
    if recorded is None:
        raise DataError(
            f"--prior: {args.model or 'the classifier'} has no recorded class prior; run "
            "`skinlib fit-prior --model DIR` first"
        )
    if args.prior == "training":
        return args.prior

    shares = {}
    for item in args.prior.split(","):
        code, _, value = item.partition("=")
        try:
            shares[code.strip()] = float(value)
        except ValueError:
            raise UsageError(
                f"--prior {args.prior!r}: expected 'training' or CLASS=SHARE[,...], e.g. mel=0.02"
            ) from None
    try:
        return prior_from_shares(shares, recorded.training, CLASSES)
    except ValueError as error:
        raise UsageError(f"--prior {args.prior!r}: {error}") from None


def _views(args):
    """--tta, --tta-scales and --tta-augmented as the one `Views` value predict and evaluate take. A flag that
    needs another, or two that exclude each other, is a usage error naming them, before anything is loaded."""

    if args.tta_scales is not None and not args.tta:
        raise UsageError("--tta-scales adds zoomed views to test-time augmentation: add --tta.")
    if args.tta_augmented and not args.tta:
        raise UsageError("--tta-augmented chooses the views of test-time augmentation: add --tta.")
    if not args.tta:
        return Views.single()
    if args.tta_augmented:
        if args.tta_scales is not None:
            raise UsageError("--tta-augmented views draw their own zooms: leave out --tta-scales.")
        return Views.augmented()
    try:
        return Views.dihedral() if args.tta_scales is None else Views.dihedral(args.tta_scales)
    except ValueError as error:
        raise UsageError(f"--tta-scales: {error}") from None


def _read_metadata_table(path):
    """A metadata CSV (image_id or ISIC image column, plus age/sex/site columns) as a DataFrame."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"metadata file {path} not found.")
    try:
        table = pd.read_csv(path, dtype={"image_id": str, "image": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV ({error}).") from None
    if not metadata_columns(table):
        raise DataError(
            f"{path} has no metadata columns (age or age_approx, sex, localization or "
            f"anatom_site_general); found {', '.join(map(str, table.columns))}."
        )
    return table


def _predict_metadata(args):
    """--metadata CSV, or --age/--sex/--site for every image, as a table predict_files matches by file stem."""
    import pandas as pd

    given = {"age": args.age, "sex": args.sex, "localization": args.site}
    given = {key: value for key, value in given.items() if value is not None}
    if args.metadata and given:
        raise UsageError("give --metadata CSV or --age/--sex/--site, not both")
    if args.metadata:
        return _read_metadata_table(args.metadata)
    if given:
        return pd.DataFrame([{"image_id": Path(p).stem, **given} for p in args.images])
    return None


def _invoked_command() -> str | None:
    """The command line as typed (`skinlib ...`), recorded beside what it wrote; None when not run as skinlib."""
    return "skinlib " + " ".join(sys.argv[1:]) if sys.argv and "skinlib" in sys.argv[0] else None


def _print_written(args, what: str) -> None:
    """The closing line of a `skinlib fit-*` command: what it wrote, or that --limit wrote nothing."""
    if args.limit:
        print(f"--limit {args.limit}: a quick check on samples; {args.model} is unchanged")
    else:
        print(f"wrote {what} in {args.model} (model.json; scores and the command in metrics.json)")


def _or_na(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _evaluate_classification(args) -> int:

    views = _views(args)
    pipeline = DualStage.load(classifier_dir=args.model)
    pipeline.classifier.temperature_for(views)  # refuses at once a folder without `fit-tta`
    metadata = None
    if args.metadata is not None:
        metadata = _read_metadata_table(args.labels if args.metadata is True else args.metadata)
    report = score_labelled_folder(
        args.images,
        args.labels,
        pipeline,
        views=views,
        progress=not args.quiet,
        report_dir=args.report,
        metadata=metadata,
        prior=_prior(args, pipeline),
    )
    if report["labelled_but_missing"]:
        print(
            f"note: {report['labelled_but_missing']} labelled image(s) are not in {args.images} and were not "
            f"scored, e.g. {report['missing_examples'][:5]}"
        )
    fusion = report["metadata_fusion"]
    with_metadata = f" + metadata ({fusion['images_with_metadata']} with some)" if fusion else ""
    with_views = f" with TTA ({views.describe()} views)" if views.is_tta else ""
    print(f"dual-stage pipeline on {report['n_samples']} image(s){with_views}{with_metadata}:")
    if "restricted_to_present_classes" in report:
        _print_both_readings(report)
    else:
        _print_reading(report, CLASSES)
    referral = report.get("melanoma_referral")
    if referral and referral["sensitivity"] is not None:
        print(
            f"  melanoma referral (P(mel) >= {referral['threshold']:.4f}, fixed on validation): sensitivity "
            f"{referral['sensitivity']:.3f}, specificity {_or_na(referral['specificity'])}, referred "
            f"{referral['referred']} of {referral['images']}, melanomas missed {referral['melanomas_missed']}"
        )
    if report.get("prior_correction"):
        before, after = report["prior_correction"]["as_trained"], report["prior_correction"]["with_prior"]
        print(
            f"  class prior: {report['class_prior'] if isinstance(report['class_prior'], str) else 'as given'}; "
            f"as trained -> with it: class-wise calibration error {before['classwise_calibration_error']:.4f} -> "
            f"{after['classwise_calibration_error']:.4f}, top-label ECE {before['expected_calibration_error']:.4f} -> "
            f"{after['expected_calibration_error']:.4f}, balanced accuracy {before['balanced_accuracy']:.4f} -> "
            f"{after['balanced_accuracy']:.4f} (the referral flag reads P(mel) as trained)"
        )
    unusual = report.get("unlike_training_images")
    if unusual:
        print(
            f"  unlike the training images (novelty check): {unusual['flagged']} of {report['n_samples']} "
            f"({unusual['fraction']:.1%}; about 1 % of HAM10000 validation images are flagged by design)"
        )
    if args.report:
        _print_intervals(report)
        print(f"report (figures as PNG and SVG, report.json, report.md) in {args.report}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, default=float) + "\n")
        print(f"wrote {args.out}")
    return 0


def _number(value, width: int = 0, digits: int = 4) -> str:
    """A number as printed; where it is undefined (None or NaN), "not defined" (in a table column, "n/a")."""
    if value is None or value != value:
        return f"{'n/a':>{width}}" if width else "not defined"
    return f"{value:{width}.{digits}f}"


def _print_reading(reading: dict, codes, indent: str = "  ") -> None:
    """The headline numbers of a reading of `evaluate --labels` and the per-class rows of `codes`."""
    for key in ("balanced_accuracy", "accuracy", "macro_roc_auc", "macro_f1", "expected_calibration_error"):
        print(f"{indent}{key:<28} {_number(reading[key])}")
    print(f"{indent}{'class':<6} {'recall':>7} {'precision':>9} {'specificity':>11} {'AUC':>6} {'support':>7}")
    for code in codes:
        c = reading["per_class"][code]
        print(
            f"{indent}{code:<6} {_number(c['recall'], 7, 3)} {_number(c['precision'], 9, 3)} "
            f"{_number(c['specificity'], 11, 3)} {_number(c['roc_auc'], 6, 3)} {c['support']:7d}"
        )


def _print_both_readings(report: dict) -> None:
    """Labels lacking some classes: the 7-class answer as is, then the answer restricted to the classes present,
    each under a heading that says which it is."""
    as_is, restricted_title = reading_titles(report)
    went = report["predictions_to_absent_classes"]["by_class"]
    print(f"  {as_is}:")
    print("    predictions of absent classes: " + ", ".join(f"{code} {count}" for code, count in went.items()))
    _print_reading(report, report["classes_present"], indent="    ")
    restricted = report["restricted_to_present_classes"]
    print(f"  {restricted_title}:")
    if "note" in restricted:
        print(f"    note: {restricted['note']}")
    _print_reading(restricted, report["classes_present"], indent="    ")


def _print_intervals(report: dict) -> None:
    """The report's 95 % intervals, naming what the bootstrap resampled; the image-level ones beside them
    when lesions were resampled (they are too narrow, shown for comparison)."""
    boot = report["bootstrap"]
    image_level = report.get("confidence_intervals_image_level")
    of_lesions = f" ({boot['units']} lesions)" if boot["unit"] == "lesions" else " (no lesion ids in the labels)"
    print(
        f"  95 % intervals, bootstrap over {boot['unit']}{of_lesions}, {boot['resamples']} resamples"
        + ("; over images beside them, too narrow:" if image_level else ":")
    )
    restricted = report.get("restricted_to_present_classes")
    indent = "    " if restricted else "  "  # labels lacking some classes: the intervals of each reading
    if restricted:
        print(f"  {AS_IS}:")
    for name, interval in report["confidence_intervals"].items():
        line = f"{indent}{name:<28} {_interval(interval)}"
        if image_level:
            line += f"   images: {_bounds(image_level[name])}"
        print(line)
    if restricted:
        print(f"  {RESTRICTED}:")
        for name, interval in restricted["confidence_intervals"].items():
            print(f"{indent}{name:<28} {_interval(interval)}")


def _interval(interval: dict) -> str:
    return f"{_number(interval['estimate'])} {_bounds(interval)}"


def _bounds(interval: dict) -> str:
    low, high = interval["low"], interval["high"]
    if low is None or high is None or low != low or high != high:
        return "[interval not defined]"
    return f"[{low:.4f}, {high:.4f}]"


def cmd_predict(args) -> int:

    views = _views(args)
    pipeline = DualStage.load(classifier_dir=args.model)
    pipeline.classifier.temperature_for(views)  # refuses at once a folder without `fit-tta`
    result = predict_files(
        args.images,
        args.out,
        pipeline,
        views=views,
        explain=args.explain,
        progress=not args.quiet,
        metadata=_predict_metadata(args),
        prior=_prior(args, pipeline),
    )
    for path, json_path in result["written"].items():
        record = json.loads(Path(json_path).read_text())
        flag = ("  UNCERTAIN" if record["uncertain"] else "") + ("  REFER(mel)" if record["melanoma_referral"] else "")
        flag += "  UNLIKE-TRAINING-IMAGES" if record["unlike_training_images"] else ""
        flag += f"  (+ {', '.join(record['metadata_used'])})" if record["metadata_used"] else ""
        note = f" ({record['crop_note']})" if record["crop_note"] else ""
        print(f"{path}: {record['prediction']} {record['confidence']:.3f}{flag}{note}")
    for error in result["failed"].values():
        print(f"FAILED: {error}", file=sys.stderr)
    if args.prior:
        print(
            f"probabilities for a population with class prior {args.prior} (Bayes' rule; `class_prior` in each "
            "JSON); the referral flag reads P(mel) as trained, where its threshold was fitted"
        )
    print(f"wrote {len(result['written'])} prediction(s) to {args.out}")
    return 1 if result["failed"] else 0


def _parse_phases(text: str) -> tuple:
    """--phases as `skinlib.training.recipe.parse_phases` reads it; a malformed value is a usage error."""

    try:
        return parse_phases(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def classifier_config_from_args(args):
    """The `ClassifierConfig` that `train-classifier` flags describe (parsed `args` of its sub-parser)."""

    return config_from_options(vars(args), data_dir=args.data)


def _add_recipe_arguments(parser) -> None:
    """train-classifier's recipe options, one per `skinlib.training.recipe.RECIPE_FLAGS` entry; defaults (and
    so the help's) come from `ClassifierConfig`, the one place that holds them."""

    checked = {
        "--phases": _parse_phases,
        "--patience": _at_least_one,
        "--members": _at_least_one,
        "--views": _at_least_one,
        "--margin": _crop_margin,
    }
    for spec in RECIPE_FLAGS:
        if spec.is_switch:
            parser.add_argument(spec.flag, action="store_true", help=spec.help)
            continue
        default = spec.to_text(spec.default()) if spec.default() is not None else "all"
        parser.add_argument(
            spec.flag,
            type=checked.get(spec.flag, spec.type),
            choices=spec.choices,
            metavar=spec.metavar,
            help=f"{spec.help} (default: {default})",
        )


def _crop_margin(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"a fraction of the lesion's side between 0 and 2, e.g. 0.25, not {value}")
    return value


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def train_classifier_config(flags):
    """The config a `skinlib train-classifier FLAGS...` command would train, without training it."""
    return classifier_config_from_args(build_parser().parse_args(["train-classifier", *flags]))


def cmd_train_classifier(args) -> int:
    # deferred: loads Keras
    from .training.classifier import train_and_ship_classifier

    config = classifier_config_from_args(args)
    command = _invoked_command()
    metrics = train_and_ship_classifier(
        config, run_dir=args.run_dir, out_dir=args.out, command=command, progress=not args.quiet
    )
    test = metrics["test"]["plain"]
    print(
        f"test balanced accuracy {test['balanced_accuracy']:.4f}, macro AUC {test['macro_roc_auc']:.4f}, "
        f"melanoma recall {test['per_class']['mel']['recall']:.4f}"
    )
    return 0


def cmd_fit_referral(args) -> int:
    # deferred: loads Keras
    from .workflows.referral import fit_referral_for_model

    sensitivity = REFERRAL_SENSITIVITY if args.sensitivity is None else args.sensitivity
    if not 0.0 < sensitivity <= 1.0:
        raise UsageError(f"--sensitivity {sensitivity}: a target melanoma sensitivity in (0, 1], e.g. 0.85")
    command = _invoked_command()
    record = fit_referral_for_model(
        args.model, args.data, sensitivity, limit=args.limit, command=command, progress=not args.quiet
    )
    for kind, fitted in record.items():
        line = f"{kind:5}: refer when P(mel) >= {fitted['threshold']:.4f}"
        for split in ("val", "test"):
            scores = fitted.get(split)
            if scores and scores["sensitivity"] is not None:
                line += (
                    f"; {split} sensitivity {scores['sensitivity']:.3f}, specificity {scores['specificity']:.3f},"
                    f" referred {scores['referral_rate']:.1%}"
                )
        print(line)
    _print_written(args, "the thresholds")
    return 0


def cmd_fit_metadata(args) -> int:

    command = _invoked_command()
    record = fit_metadata_for_model(args.model, args.data, limit=args.limit, command=command, progress=not args.quiet)
    for view in ("plain", "tta"):
        fitted = record[view]
        print(f"{view:5}: weight {fitted['weight']:.2f} (fitted on validation)")
        for split in ("val", "test"):
            before, after = fitted[split]["image_only"], fitted[split]["fused"]
            gain = fitted[f"{split}_fused_minus_image_only"]["balanced_accuracy"]
            print(
                f"  {split:4} balanced accuracy {before['balanced_accuracy']:.4f} -> {after['balanced_accuracy']:.4f} "
                f"({gain['difference']:+.4f}, 95 % CI {gain['ci95'][0]:+.4f} to {gain['ci95'][1]:+.4f}); macro AUC "
                f"{before['macro_roc_auc']:.4f} -> {after['macro_roc_auc']:.4f}; melanoma recall "
                f"{before['melanoma_recall']:.3f} -> {after['melanoma_recall']:.3f}"
            )
    _print_written(args, "the prior (metadata_prior.json), the weights and the fused referral thresholds")
    return 0


def cmd_fit_novelty(args) -> int:

    command = _invoked_command()
    record = fit_novelty_for_model(args.model, args.data, limit=args.limit, command=command, progress=not args.quiet)
    print(
        f"novelty threshold {record['threshold']:.1f} ({record['components']} components): flags "
        f"{record['val_flag_rate']:.1%} of validation and {record['test_flag_rate']:.1%} of test images"
    )
    for name, scored in record["unusual_images"].items():
        print(f"  {name:<28} score {scored['score']:10.1f}  {'FLAGGED' if scored['flagged'] else 'not flagged'}")
    _print_written(args, "the novelty model (novelty.npz) and its threshold")
    return 0


def cmd_fit_tta(args) -> int:
    # deferred: loads Keras
    from .workflows.augmented_tta import fit_augmented_tta

    record = fit_augmented_tta(
        args.model, args.data, limit=args.limit, command=_invoked_command(), progress=not args.quiet
    )
    print(
        f"{record['views']} augmented views: temperature {record['temperature']:.3f} (fitted on validation); "
        f"recommended on validation: {record['recommended']}"
    )
    for split in ("val", "test"):
        scores = record[split]
        gain = scores["tta_augmented_minus_plain"]["balanced_accuracy"]
        print(
            f"  {split:4} balanced accuracy {scores['plain']['balanced_accuracy']:.4f} -> "
            f"{scores['tta_augmented']['balanced_accuracy']:.4f} ({gain['difference']:+.4f}, 95 % CI "
            f"{gain['ci95'][0]:+.4f} to {gain['ci95'][1]:+.4f}); ECE "
            f"{scores['tta_augmented']['expected_calibration_error']:.4f} on {scores['images']} images"
        )
    _print_written(args, "the augmented-TTA temperature")
    return 0


def cmd_fit_prior(args) -> int:
    # deferred: loads Keras
    from .workflows.class_prior import fit_class_prior

    record = fit_class_prior(
        args.model, args.data, limit=args.limit, command=_invoked_command(), progress=not args.quiet
    )
    print("class prior the loss implied (model) and of the training split (training):")
    print(
        "  "
        + "  ".join(
            f"{code}: {m:.3f} / {t:.3f}" for code, m, t in zip(record["classes"], record["model"], record["training"])
        )
    )
    for split in ("val", "test"):
        before, after = record[split]["as_trained"], record[split]["training_prior"]
        print(
            f"  {split:4} as trained -> training prior: class-wise ECE {before['classwise_calibration_error']:.4f} "
            f"-> {after['classwise_calibration_error']:.4f}, top-label ECE {before['expected_calibration_error']:.4f}"
            f" -> {after['expected_calibration_error']:.4f}, NLL {before['negative_log_likelihood']:.4f} -> "
            f"{after['negative_log_likelihood']:.4f}; mean P(mel) {before['mean_probability']['mel']:.3f} -> "
            f"{after['mean_probability']['mel']:.3f} (melanoma rate {record[split]['class_rate']['mel']:.3f}); "
            f"balanced accuracy {before['balanced_accuracy']:.4f} -> {after['balanced_accuracy']:.4f}, accuracy "
            f"{before['accuracy']:.4f} -> {after['accuracy']:.4f}"
        )
    _print_written(args, "the class priors (predict/evaluate --prior)")
    return 0


def _name_and_folder(option: str, item: str, label: str, example: str) -> tuple[str, str]:
    """LABEL=DIR of a command-line option, split; a missing part is an error showing `example`."""
    name, _, folder = item.partition("=")
    if not name or not folder:
        raise UsageError(f"{option} {item!r}: expected {label}=DIR, e.g. {example}")
    return name, folder


def _reused_models(args) -> dict:
    """{row: trained model folder} from --reuse ROW=DIR and --baseline-from DIR."""
    # deferred: loads Keras
    from .workflows import ablation

    reuse = {"baseline": args.baseline_from} if args.baseline_from else {}
    for item in args.reuse or []:
        name, folder = _name_and_folder("--reuse", item, "ROW", "baseline=skinlib/shipped/classifier")
        if name not in ablation.TRAINING_ROWS:
            raise UsageError(
                f"--reuse {item!r}: {name!r} is not a row that trains a model; "
                f"choose from {', '.join(ablation.TRAINING_ROWS)}"
            )
        reuse[name] = folder
    return reuse


def cmd_colour_casts(args) -> int:
    # deferred: loads Keras
    from .workflows.colour_casts import colour_cast_study

    models = {}
    for item in args.model:
        name, folder = _name_and_folder("--model", item, "NAME", "shipped=skinlib/shipped/classifier")
        if not (Path(folder) / "metrics.json").is_file():
            raise DataError(
                f"--model {item!r}: {folder} has no metrics.json; give a folder written by "
                "`skinlib train-classifier` (e.g. skinlib/shipped/classifier)"
            )
        models[name] = folder
    if args.update and not Path(args.out).is_file():  # before any scoring, not after it
        raise UsageError(f"--update needs an existing {args.out}; leave out --update to write it")
    collection = _external_collection(args.external) if args.external else None
    study = {
        "command": _invoked_command(),
        **colour_cast_study(models, args.data, limit=args.limit, progress=not args.quiet, external=collection),
    }
    if args.update:
        try:
            study = merge_colour_cast_studies(json.loads(Path(args.out).read_text()), study, args.out)
        except ValueError as error:
            raise DataError(str(error)) from None
    rows = colour_cast_rows(study)
    for name, record in study["models"].items():
        over = "lesions" if record.get("bootstrap_unit") == "lesions" else "images, kept from an earlier run"
        print(
            f"{name} (colour constancy {'on' if record['colour_constancy'] else 'off'}), balanced accuracy "
            f"(change, paired 95 % CI over {over}):"
        )
        for row in (r for r in rows if r["model"] == name):
            print(f"  {row['split']:4} " + "; ".join(f"{cast} {row[cast]}" for cast in study["casts"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(study, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def cmd_shifts(args) -> int:
    # deferred: loads Keras
    from .workflows.shift_battery import merge_battery, shift_battery_markdown, shift_battery_study, unet_held_out

    models = {}
    for item in args.model:
        name, folder = _name_and_folder("--model", item, "NAME", "shipped=skinlib/shipped/classifier")
        if not (Path(folder) / "model.json").is_file():
            raise DataError(f"--model {item!r}: {folder} has no model.json; give a classifier folder")
        models[name] = folder
    candidates = {}
    for item in args.unet_candidate or []:
        name, folder = _name_and_folder("--unet-candidate", item, "NAME", "battery=runs/unet_battery")
        if not (Path(folder) / "model.json").is_file():
            raise DataError(f"--unet-candidate {item!r}: {folder} has no model.json; give a U-Net folder")
        candidates[name] = folder
    if args.update and not Path(args.out).is_file():  # before any scoring, not after it
        raise UsageError(f"--update needs an existing {args.out}; leave out --update to write it")
    external = _external_masks(args.external, candidates)
    study = {
        "command": _invoked_command(),
        **shift_battery_study(
            models, args.unet, args.data, limit=args.limit, progress=not args.quiet, unet_candidates=candidates
        ),
    }
    if candidates:  # where no choice is made: HAM10000 test, and --external's collection
        held_out = unet_held_out(args.unet, candidates, args.data, external, progress=not args.quiet)
        for name, scores in held_out.items():
            study["unets"][name]["held_out"] = scores
    if args.update:
        try:
            study = merge_battery(json.loads(Path(args.out).read_text()), study)
        except ValueError as error:
            raise DataError(f"--update {args.out}: {error}") from None
    print(shift_battery_markdown(study))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(study, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _external_masks(images_and_masks, candidates: dict):
    """--external IMAGES MASKS as (collection name, images, masks), checked before any scoring."""
    if images_and_masks is None:
        return None
    if not candidates:
        raise UsageError("--external scores U-Net candidates elsewhere: add --unet-candidate NAME=DIR")
    images, masks = (Path(p) for p in images_and_masks)
    for folder, what in ((images, "IMAGES"), (masks, "MASKS")):
        if not folder.is_dir():
            raise DataError(f"--external: {what} folder {folder} does not exist (give --external IMAGES MASKS)")
    return collection_name(images), images, masks


def cmd_ablate(args) -> int:
    # deferred: loads Keras
    from .workflows import ablation, external

    rows = args.rows or list(ablation.ROW_NAMES)
    unknown = sorted(set(rows) - set(ablation.ROW_NAMES))
    if unknown:
        raise UsageError(f"unknown ablation row(s) {unknown}; choose from {', '.join(ablation.ROW_NAMES)}")
    if args.update and not Path(args.results).is_file():  # before any training, not after it
        raise UsageError(f"--update needs an existing {args.results}; leave out --update to write it")
    out = Path(args.out)
    reuse = _reused_models(args)
    for name, trained in reuse.items():
        if not (ablation.row_dir(out, name) / "run" / ablation.PREDICTIONS_FILE).is_file():
            print(f"[ablation] {name}: scoring the already trained {trained}")
            try:
                ablation.row_from_model(name, trained, out, args.data)
            except ValueError as error:
                raise DataError(str(error)) from None
    if not args.collect_only:
        for name in dict.fromkeys(["baseline", *rows]):  # every difference is taken against the baseline
            ablation.run_row(name, out, args.data, quiet=args.quiet)
    if args.external:
        _score_rows_externally(out, args.external, quiet=args.quiet)
    results = external.with_external_columns(ablation.collect_ablation(out, args.data), out)
    if args.external and "external" in results:  # how to score the rows there again
        data = ["--data", str(args.data)] if args.data else []
        results["external"]["command"] = shlex.join(
            ["skinlib", "ablate", *data, "--out", str(out), "--collect-only", "--external", *args.external]
        )
    if args.update:
        existing = json.loads(Path(args.results).read_text())
        try:
            merged = ablation.merge_results(existing, results, args.results)
        except ValueError as error:
            raise DataError(str(error)) from None
        if "command" in existing.get("external", {}) and "command" not in merged.get("external", {"command": 0}):
            merged["external"]["command"] = existing["external"]["command"]  # a plain collect keeps how it was scored
        results = merged
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(results, indent=2) + "\n")
    print(ablation.ablation_markdown(results))
    print(f"wrote {args.results}")
    return 0


def _external_collection(images_and_labels: list[str]):
    """--external IMAGES LABELS as a collection; a missing folder or file is named."""
    # deferred: loads Keras
    from .workflows.external import ExternalCollection

    try:
        return ExternalCollection.of(*images_and_labels)
    except DataError as error:
        raise DataError(f"--external: {error}") from None


def _score_rows_externally(out: Path, images_and_labels: list[str], quiet: bool = False) -> None:
    """Score every finished ablation row on an external collection (read afterwards, never chosen with)."""
    # deferred: loads Keras
    from .workflows import ablation, external

    prepared = external.PreparedInputs(_external_collection(images_and_labels), progress=not quiet)
    for name in ablation.finished_rows(out):
        external.score_row_externally(name, out, prepared)


def cmd_evaluate(args) -> int:
    if args.masks is None and args.labels is None:
        raise UsageError("evaluate needs --masks DIR (segmentation) or --labels CSV (classification).")
    if args.report and args.labels is None:
        raise UsageError("--report is for classification: add --labels CSV.")
    if args.labels is not None:
        return _evaluate_classification(args)

    images, masks, unmatched = pair_images_and_masks(args.images, args.masks)
    if unmatched:
        print(f"note: {len(unmatched)} image(s) have no mask and are not scored, e.g. {unmatched[:5]}")
    segmenter = load_segmenter(args.method, args.model)
    scores = evaluate_segmenter(segmenter, images, masks, progress=not args.quiet)
    per_image = scores.pop("per_image")
    scores = {
        "method": segmenter.name,
        "images": str(args.images),
        "masks": str(args.masks),
        "unscored_images_without_mask": len(unmatched),
        **scores,
    }
    print(f"{segmenter.name} on {scores['count']} image(s):")
    for name in ("dice", "iou", "thresholded_jaccard"):
        print(f"  {name:<20} mean {scores[name + '_mean']:.4f}   median {scores[name + '_median']:.4f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({**scores, "per_image": per_image}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def cmd_export(args) -> int:
    # deferred: loads Keras
    from .export import export_keras

    path = export_keras(
        args.out, stage=args.stage, model_dir=args.model, unet_dir=args.unet, force=args.force, format=args.format
    )
    print(
        f"wrote {path} (stage {args.stage}); load it with: "
        f"import skinlib, keras; model = keras.saving.load_model({str(path)!r})"
    )
    return 0


def _add_fit_parser(sub, name: str, help_text: str, func):
    """A `skinlib fit-*` command: a post-hoc fit of an already trained classifier folder (same four options)."""
    parser = sub.add_parser(name, help=help_text)
    _add_data_argument(parser)
    parser.add_argument(
        "--model",
        default=str(CLASSIFIER),
        metavar="DIR",
        help="classifier folder with metrics.json (default: the shipped classifier, skinlib/shipped/classifier)",
    )
    parser.add_argument(
        "--limit", type=int, metavar="N", help="quick check on at most N images per split; writes nothing"
    )
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(prog="skinlib", description=__doc__)
    parser.add_argument("--version", action="version", version=f"skinlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = sub.add_parser("check-data", help="verify a HAM10000 folder and print a summary")
    _add_data_argument(check)
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=cmd_check_data)

    split = sub.add_parser("split", help="make (or verify) the lesion-disjoint train/val/test split")
    _add_data_argument(split)
    split.add_argument("--seed", type=int, default=DEFAULT_SEED)
    split.add_argument(
        "--fractions", type=float, nargs=3, default=list(DEFAULT_FRACTIONS), metavar=("TRAIN", "VAL", "TEST")
    )
    split.add_argument("--out", metavar="CSV", help="write the split here (a .json with the seed goes beside it)")
    split.add_argument("--verify", action="store_true", help="check that the split file equals a fresh split")
    split.set_defaults(func=cmd_split)

    segment = sub.add_parser("segment", help="write a lesion mask and an overlay PNG per image")
    segment.add_argument("images", nargs="+", metavar="IMAGE")
    segment.add_argument("--out", required=True, metavar="DIR")
    segment.add_argument("--method", choices=["unet", "classical"], default="unet")
    segment.add_argument(
        "--model", metavar="DIR", help="U-Net model folder (default: the shipped skinlib/shipped/unet)"
    )
    segment.add_argument("--quiet", action="store_true")
    segment.set_defaults(func=cmd_segment)

    evaluate = sub.add_parser("evaluate", help="score the shipped models on any labelled folder")
    evaluate.add_argument("--images", required=True, metavar="DIR")
    evaluate.add_argument("--masks", metavar="DIR", help="folder of <image_id>_segmentation.png masks")
    evaluate.add_argument("--labels", metavar="CSV", help="class labels (HAM10000 metadata or ISIC 2018 Task 3)")
    evaluate.add_argument("--method", choices=["unet", "classical"], default="unet", help="segmentation method")
    evaluate.add_argument("--tta", action="store_true", help="classification: average the 8 flips/turns")
    evaluate.add_argument(
        "--tta-scales",
        type=float,
        nargs="+",
        metavar="S",
        help="with --tta: also the 8 views of each zoomed crop, e.g. 1.0 1.2 (1 = as is)",
    )
    evaluate.add_argument("--tta-augmented", action="store_true", help=TTA_AUGMENTED_HELP)
    evaluate.add_argument("--prior", metavar="training|CLASS=SHARE,...", help=PRIOR_HELP)
    evaluate.add_argument(
        "--report", metavar="DIR", help="classification: write the full report (figures, JSON, Markdown) here"
    )
    evaluate.add_argument(
        "--metadata",
        nargs="?",
        const=True,
        metavar="CSV",
        help="classification: fuse age, sex and site with the images (`skinlib fit-metadata`); "
        "read from CSV, or from the --labels CSV when no CSV is given",
    )
    evaluate.add_argument("--model", metavar="DIR", help="model folder (default: the shipped one)")
    evaluate.add_argument("--out", metavar="JSON", help="write the metrics (and per-image scores) here")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="classify images: probabilities (JSON) and mask overlay per image")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--out", required=True, metavar="DIR")
    predict.add_argument("--tta", action="store_true", help="test-time augmentation: average the 8 flips/turns")
    predict.add_argument(
        "--tta-scales",
        type=float,
        nargs="+",
        metavar="S",
        help="with --tta: also the 8 views of each zoomed crop, e.g. 1.0 1.2 (1 = as is)",
    )
    predict.add_argument("--tta-augmented", action="store_true", help=TTA_AUGMENTED_HELP)
    predict.add_argument("--prior", metavar="training|CLASS=SHARE,...", help=PRIOR_HELP)
    predict.add_argument("--explain", action="store_true", help="also write Grad-CAM and attention overlays")
    predict.add_argument(
        "--metadata",
        metavar="CSV",
        help="fuse age, sex and site with the images: a CSV with "
        "image_id (file name without extension) and age, sex, localization columns",
    )
    predict.add_argument("--age", type=float, help="patient age in years, for every image (metadata fusion)")
    predict.add_argument("--sex", help="male or female, for every image (metadata fusion)")
    predict.add_argument("--site", help="lesion site, e.g. back, face, lower extremity (metadata fusion)")
    predict.add_argument(
        "--model", metavar="DIR", help="classifier folder (default: the shipped skinlib/shipped/classifier)"
    )
    predict.add_argument("--quiet", action="store_true")
    predict.set_defaults(func=cmd_predict)

    classifier = sub.add_parser("train-classifier", help="train the stage-2 classifier, score it, write a model folder")
    _add_data_argument(classifier)
    classifier.add_argument("--out", default="skinlib/shipped/classifier")
    classifier.add_argument("--run-dir", default="runs/classifier")
    _add_recipe_arguments(classifier)
    classifier.add_argument("--quiet", action="store_true")
    classifier.set_defaults(func=cmd_train_classifier)

    referral = _add_fit_parser(
        sub, "fit-referral", "fit a classifier's melanoma referral threshold on validation", cmd_fit_referral
    )
    referral.add_argument(
        "--sensitivity", type=float, metavar="S", help="target melanoma sensitivity on validation (default 0.85)"
    )
    _add_fit_parser(
        sub, "fit-metadata", "fit a classifier's image + metadata (age, sex, site) fusion", cmd_fit_metadata
    )
    _add_fit_parser(
        sub, "fit-novelty", "fit a classifier's check for inputs unlike its training images", cmd_fit_novelty
    )
    _add_fit_parser(
        sub,
        "fit-tta",
        "fit a classifier's temperature for augmented TTA views (--tta-augmented) on validation and score the views",
        cmd_fit_tta,
    )
    _add_fit_parser(
        sub,
        "fit-prior",
        "record the class prior a classifier learnt under (its loss's class weights) "
        "and score the prior correction of predict/evaluate --prior on val and test",
        cmd_fit_prior,
    )

    ablate = sub.add_parser("ablate", help="the ablation study: train each one-change variant, write the results JSON")
    _add_data_argument(ablate)
    ablate.add_argument("--out", default="runs/ablation", help="one folder per row; rerun to resume")
    ablate.add_argument(
        "--rows", nargs="+", metavar="ROW", help="rows to run (default: all); the baseline is always run"
    )
    ablate.add_argument(
        "--results", default="skinlib/shipped/ablation.json", help="results JSON to write (all finished rows)"
    )
    ablate.add_argument(
        "--baseline-from",
        metavar="DIR",
        help="use this trained baseline model (e.g. skinlib/shipped/classifier) "
        "instead of training the baseline again; refused unless it was trained with the baseline recipe",
    )
    ablate.add_argument(
        "--reuse",
        nargs="+",
        metavar="ROW=DIR",
        help="use these trained models as rows instead of training them, e.g. "
        "ensemble=runs/ens/model; refused unless each was trained with its row's recipe",
    )
    ablate.add_argument(
        "--external",
        nargs=2,
        metavar=("IMAGES", "LABELS"),
        help="also score every finished row on this labelled collection from elsewhere (e.g. "
        "../shared/data/isic2017/images ../shared/data/isic2017/ISIC2017_labels.csv): an extra column, read after "
        "the choice and never used by the replacement rule",
    )
    ablate.add_argument("--collect-only", action="store_true", help="only rebuild the JSON from finished rows")
    ablate.add_argument(
        "--update",
        action="store_true",
        help="replace only the rows finished under --out in the existing results JSON, keep the "
        "others (refused unless the baseline is the same)",
    )
    ablate.add_argument("--quiet", action="store_true")
    ablate.set_defaults(func=cmd_ablate)

    casts = sub.add_parser(
        "colour-casts",
        help="score classifiers on val and test under simulated colour casts of the "
        "light (another dermatoscope or lamp), write a JSON",
    )
    _add_data_argument(casts)
    casts.add_argument(
        "--model",
        nargs="+",
        required=True,
        metavar="NAME=DIR",
        help="model folders to compare, e.g. shipped=skinlib/shipped/classifier",
    )
    casts.add_argument("--out", default="skinlib/shipped/colour_casts.json", help="results JSON (default: %(default)s)")
    casts.add_argument(
        "--limit", type=_at_least_one, metavar="N", help="quick check: a stratified sample of N images per split"
    )
    casts.add_argument(
        "--update",
        action="store_true",
        help="replace only these models in the existing --out JSON, keep the others (same casts, splits and limit)",
    )
    casts.add_argument(
        "--external",
        nargs=2,
        metavar=("IMAGES", "LABELS"),
        help="also score each model under every cast on this labelled collection from elsewhere (e.g. ISIC 2017), "
        "read after the choice",
    )
    casts.add_argument("--quiet", action="store_true")
    casts.set_defaults(func=cmd_colour_casts)

    battery = sub.add_parser(
        "shifts",
        help="score both stages on HAM10000 validation under the shift battery a second clinic brings "
        "(colour, exposure, blur, zoom, aspect, JPEG, dermoscope ring), write a JSON",
    )
    _add_data_argument(battery)
    battery.add_argument(
        "--model",
        nargs="+",
        default=["shipped=skinlib/shipped/classifier"],
        metavar="NAME=DIR",
        help="classifier folders to score (default: %(default)s)",
    )
    battery.add_argument("--unet", metavar="DIR", help="U-Net folder (default: the shipped one)")
    battery.add_argument(
        "--unet-candidate",
        nargs="+",
        metavar="NAME=DIR",
        help="other U-Nets to compare with --unet on the same shifted images (Dice on clean images and under "
        "the battery, paired over lesions); the classifiers still read --unet's crops",
    )
    battery.add_argument(
        "--external",
        nargs=2,
        metavar=("IMAGES", "MASKS"),
        help="with --unet-candidate: also score each candidate against --unet on HAM10000 test and on this "
        "collection from elsewhere (e.g. ../shared/data/isic2017/images ../shared/data/isic2017/masks); read after "
        "the choice, never by the verdict",
    )
    battery.add_argument(
        "--out", default="skinlib/shipped/shift_battery.json", help="results JSON (default: %(default)s)"
    )
    battery.add_argument(
        "--limit", type=_at_least_one, metavar="N", help="quick check: a stratified sample of about N images"
    )
    battery.add_argument(
        "--update",
        action="store_true",
        help="add these models to the existing --out JSON, keep the others (refused unless it scored the same "
        "images under the same shifts through the same U-Net)",
    )
    battery.add_argument("--quiet", action="store_true")
    battery.set_defaults(func=cmd_shifts)

    add_pipeline_parser(sub)

    unet = sub.add_parser("train-unet", help="train the stage-1 U-Net, score it on test, write a model folder")
    _add_data_argument(unet)
    unet.add_argument(
        "--out", default="skinlib/shipped/unet", help="model folder to write (default: skinlib/shipped/unet)"
    )
    unet.add_argument("--run-dir", default="runs/unet", help="checkpoints and logs; rerun to resume")
    unet.add_argument("--size", type=int, nargs=2, default=[96, 128], metavar=("H", "W"))
    unet.add_argument("--encoder", choices=["lite0", "plain"], default="lite0")
    unet.add_argument("--batch-size", type=int, default=16)
    unet.add_argument("--frozen-epochs", type=int, default=2)
    unet.add_argument("--epochs", type=int, default=5)
    unet.add_argument("--seed", type=int, default=0)
    unet.add_argument("--train-limit", type=int, help="use a random subset of N training images (quick runs)")
    unet.add_argument("--val-limit", type=int)
    unet.add_argument(
        "--augment",
        choices=AUGMENTATIONS,
        default=UNetConfig.augment,
        help="training augmentation: standard, or battery (also colour casts, exposure, blur, JPEG, a dermoscope "
        "ring and a wider zoom, matched to the shift battery) (default: %(default)s)",
    )
    unet.add_argument("--quiet", action="store_true")
    unet.set_defaults(func=cmd_train_unet)

    export = sub.add_parser(
        "export",
        help="write the shipped models (both stages, or one) as a .keras file for keras.saving.load_model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Write the models with their weights, preprocessing and calibration as one Keras file. Inputs are RGB\n"
            "0..255 (float or uint8), a batch of images of one size.\n"
            "  dual:       image (B, H, W, 3) -> {probabilities (B, 7), lesion_found (B,), mask (B, H, W, 1),\n"
            "              crop (B, S, S, 3)}: `predict` without TTA, metadata or prior, in one model\n"
            "  classifier: lesion crop (B, H, W, 3), any size -> calibrated class probabilities (B, 7)\n"
            "  unet:       image (B, H, W, 3) -> lesion probability map at the image's size (B, H, W, 1)\n"
            "Load it in any Python with skinlib installed (importing skinlib registers its layers):\n"
            "  import skinlib, keras; model = keras.saving.load_model('skin.keras')\n"
            "Classes in skinlib.data.CLASSES order; see skinlib/export.py for where dual may differ from predict."
        ),
    )
    export.add_argument("--format", choices=["keras"], default="keras", help="file format (default: keras)")
    export.add_argument("--out", required=True, metavar="FILE.keras", help="the file to write")
    export.add_argument(
        "--stage",
        choices=["dual", "classifier", "unet"],
        default="dual",
        help="both stages as one model (default), or one stage",
    )
    export.add_argument(
        "--model", metavar="DIR", help="classifier folder (default: the shipped skinlib/shipped/classifier)"
    )
    export.add_argument("--unet", metavar="DIR", help="U-Net folder (default: the shipped skinlib/shipped/unet)")
    export.add_argument("--force", action="store_true", help="overwrite FILE.keras if it exists")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as error:
        print(f"skinlib {args.command}: {error} (see skinlib {args.command} --help)", file=sys.stderr)
        return 2
    except (DataError, FileNotFoundError) as error:
        print(f"skinlib {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
