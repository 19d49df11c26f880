"""`skinlib predict`: run the dual-stage pipeline over image files and write one JSON (and overlays) per image."""

from __future__ import annotations

import json
from pathlib import Path

from .data.errors import DataError
from .data.images import read_image
from .data.metadata import metadata_rows
from .runtime.classifier import prior_record
from .runtime.dual_stage import DualStage
from .runtime.views import tta_record
from .visualize import overlay_mask, write_rgb


def predict_files(
    paths,
    out_dir,
    pipeline: DualStage,
    tta: bool = False,
    explain: bool = False,
    progress: bool = True,
    scales=None,
    metadata=None,
    augmented: bool = False,
    prior=None,
) -> dict:
    """Write `<stem>.json` (probabilities, prediction, flags) and `<stem>_overlay.png` per image;
    with `explain`, also `<stem>_gradcam.png` and `<stem>_attention.png` (on the lesion crop).
    `metadata`: a table of age, sex and site with an `image_id` column (file stems) to fuse with the images.
    `prior`: "training" or one share per class: answers for a population with that class mix (`classify`).

    Returns {"written": {path: json_path}, "failed": {path: message}}: one bad file never stops the batch.
    """
    from tqdm.auto import tqdm

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
        result = pipeline.classify(
            masks, crops, inputs, tta=tta, scales=scales, metadata=row, augmented=augmented, prior=prior
        )[0]
        mask = result.pop("mask")
        record = {
            "image": str(path),
            "size": [int(image.shape[1]), int(image.shape[0])],
            "tta": tta,
            **tta_record(tta, scales, augmented),
            "calibrated": True,
            "class_prior": prior_record(prior),
            "uncertain_below": pipeline.classifier.uncertain_below,
            **result,
        }
        json_path = out_dir / f"{path.stem}.json"
        json_path.write_text(json.dumps(record, indent=2) + "\n")
        write_rgb(out_dir / f"{path.stem}_overlay.png", overlay_mask(image, mask))
        if explain:
            for kind, picture in pipeline.explain(inputs)[0].items():
                write_rgb(out_dir / f"{path.stem}_{kind}.png", picture)
        written[str(path)] = json_path
    return {"written": written, "failed": failed}
