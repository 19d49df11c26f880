"""`skinlib colour-casts`: score trained classifier folders under the fixed colour casts of
`skinlib.evaluation.robustness` on HAM10000 validation and test, lesion-level intervals included."""

from __future__ import annotations

from pathlib import Path

from ..evaluation.robustness import COLOUR_CASTS, colour_cast_scores
from ..runtime import StageTwo
from ..training.classifier import config_from_metrics, stage2_inputs
from .external import ExternalCollection, PreparedInputs, external_cast_scores


def colour_cast_study(
    models: dict,
    data_dir: str | None = None,
    splits=("val", "test"),
    casts: dict = COLOUR_CASTS,
    limit: int | None = None,
    progress: bool = True,
    external: ExternalCollection | None = None,
) -> dict:
    """`colour_cast_scores` of several model folders ({name: folder}) on the HAM10000 splits, each model fed
    the stage-2 inputs its recorded config made. What `skinlib colour-casts` writes.
    `limit` (quick checks): a stratified sample of at most that many images per split. `external`: also score
    each model on that collection under every cast (read afterwards; it chooses nothing)."""
    prepared = PreparedInputs(external, progress=progress) if external is not None else None
    study = {
        "casts": {name: [float(g) for g in gains] for name, gains in casts.items()},
        "splits": list(splits),
        "limit": limit,
        "models": {},
    }
    for name, folder in models.items():
        folder = Path(folder)
        config = config_from_metrics(folder / "metrics.json", **({"data_dir": data_dir} if data_dir else {}))
        data = stage2_inputs(config, splits=splits, progress=progress, limit=limit)
        classifier = StageTwo.load(folder)
        study["models"][name] = {
            "folder": folder.as_posix(),
            "colour_constancy": classifier.spec.colour_constancy,
            "bootstrap_unit": "lesions",
            **{
                split: colour_cast_scores(
                    classifier,
                    data[split][0],
                    data[split][1],
                    casts,
                    progress=progress,
                    desc=f"{name}, {split}",
                    groups=data[split][2]["lesion_id"].to_numpy(),
                )
                for split in splits
            },
        }
        if prepared is not None:
            study["models"][name]["external"] = external_cast_scores(classifier, prepared, casts)
    return study
