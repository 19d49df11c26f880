"""The course's diagrams (skinlib.diagrams): each builds, shows the shipped models' numbers, matches the SVG the book
commits, and appears in its chapter, in the source build and in the staged book alike."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from skinlib import diagrams
from skinlib.shipped import CLASSIFIER, UNET

REPO = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"

#: Where each diagram is shown: (page, the path it uses, relative to the page).
CHAPTERS = {
    "pipeline": [
        ("book/intro.md", "figures/pipeline.svg"),
        ("notebooks/10_new_images.ipynb", "../book/figures/pipeline.svg"),
    ],
    "unet": [("notebooks/03_unet_segmentation.ipynb", "../book/figures/unet.svg")],
    "cbam": [("notebooks/04_attention_classifier.ipynb", "../book/figures/cbam.svg")],
    "training_phases": [("notebooks/04_attention_classifier.ipynb", "../book/figures/training_phases.svg")],
}


def texts(svg: str) -> str:
    """Every text element of an SVG, joined by newlines (the diagrams keep text as text)."""
    root = ElementTree.fromstring(svg.encode())
    return "\n".join("".join(node.itertext()) for node in root.iter(f"{SVG}text"))


def normalised(svg: str) -> str:
    """SVG text with every decimal number rounded to one place, so a matplotlib release that prints coordinates
    with another number of digits does not count as a change of the drawing."""
    return re.sub(r"-?\d+\.\d+", lambda match: f"{float(match.group()):.1f}", svg)


@pytest.fixture(scope="module")
def drawn() -> dict[str, str]:
    return {name: diagrams.svg_text(draw()) for name, draw in diagrams.DIAGRAMS.items()}


def test_every_diagram_builds_as_svg_with_its_labels(drawn):
    assert set(drawn) == set(CHAPTERS)
    expected = {
        "pipeline": [
            "U-Net",
            "Lesion crop",
            "CBAM",
            "Temperature",
            "melanoma_referral",
            "uncertain",
            "unlike_training_images",
            "lesion_found",
        ],
        "unet": ["stem + stage 1", "stages 6–7 (bottom)", "skip: stage1_out, concatenated", "1×1 conv, sigmoid"],
        "cbam": ["Channel gate", "Spatial gate", "shared MLP", "conv 7×7"],
        "training_phases": ["computed once", "from the cache", "frozen", "trains", "phase 0"],
    }
    for name, svg in drawn.items():
        assert svg.startswith("<?xml") and svg.rstrip().endswith("</svg>"), name
        shown = texts(svg)
        for text in expected[name]:
            assert text in shown, f"{name}: {text!r} not drawn"


def test_drawing_is_reproducible(drawn):
    again = diagrams.svg_text(diagrams.DIAGRAMS["unet"]())
    assert again == drawn["unet"]
    assert "<dc:date>" not in again and "Matplotlib v" not in again


def test_the_committed_svgs_are_the_ones_the_code_draws(drawn):
    stale = []
    for name, svg in drawn.items():
        path = diagrams.BOOK_FIGURES / f"{name}.svg"
        if not path.is_file() or normalised(path.read_text()) != normalised(svg):
            stale.append(path.relative_to(REPO).as_posix())
    assert not stale, f"{stale} differ from what skinlib.diagrams draws: run `python -m skinlib.diagrams` and commit"


def test_diagrams_show_the_shipped_numbers(drawn):
    unet = json.loads((UNET / "model.json").read_text())
    unet_config = json.loads((UNET / "metrics.json").read_text())["config"]
    classifier = json.loads((CLASSIFIER / "model.json").read_text())
    recipe = json.loads((CLASSIFIER / "metrics.json").read_text())["config"]
    height, width = unet["image_size"]
    shown = texts(drawn["unet"])
    assert f"{height}×{width}×3" in shown
    for stride, filters in zip(diagrams.UNET_DECODER_STRIDES, unet["decoder_filters"]):
        assert f"{height // stride}×{width // stride}×{filters}" in shown
    assert f"first {unet_config['frozen_epochs']} of {unet_config['epochs']} epochs" in shown
    shown = texts(drawn["pipeline"])
    assert f"T = {classifier['temperature']:.2f}" in shown
    assert f"P(mel) ≥ {classifier['melanoma_referral']['threshold']:.3f}" in shown
    assert f"input {height}×{width}" in shown
    side = classifier["image_size"] // 32
    assert f"{side}×{side}×1280" in texts(drawn["cbam"])
    shown = texts(drawn["training_phases"])
    for number, (_, epochs, rate) in enumerate(recipe["phases"]):
        assert f"phase {number}: {epochs} epochs" in shown and diagrams.rate_text(rate) in shown
    assert recipe["cache_at"] in shown


def test_the_phase_diagram_follows_the_recipe():
    recipe = json.loads((CLASSIFIER / "metrics.json").read_text())["config"]
    figure = diagrams.training_phases_diagram(
        {**recipe, "cache_at": "stage5_out", "phases": [[0, 2, 1e-3], [1, 3, 1e-4]]}
    )
    shown = texts(diagrams.svg_text(figure))
    assert "stem +\nstages 1–5" in shown and "stage 4" not in shown
    assert "phase 1: 3 epochs" in shown and "phase 2" not in shown
    end_to_end = texts(diagrams.svg_text(diagrams.training_phases_diagram({**recipe, "cache_at": "none"})))
    assert "computed once" not in end_to_end and "stem +\nstage 1" in end_to_end
    with pytest.raises(ValueError, match="cache_at"):
        diagrams.cached_stages("top_activation")


def test_write_diagrams_and_the_command(tmp_path, capsys):
    assert diagrams.main([str(tmp_path), "--only", "cbam"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["cbam.svg"] and "wrote" in capsys.readouterr().out


def test_the_spelled_out_numbers_equal_the_model_code():
    """The diagrams avoid Keras, so they spell out a few facts of the model code; these must not drift."""
    import inspect

    from skinlib.models import attention, efficientnet_lite
    from skinlib.segmentation import unet

    assert efficientnet_lite.VARIANTS["lite0"].filters == diagrams.LITE0_STAGE_CHANNELS
    assert tuple(stride for _, stride, _ in efficientnet_lite._STAGES) == diagrams.LITE0_STAGE_STRIDES
    assert diagrams.LITE0_HEAD_CHANNELS == efficientnet_lite._HEAD_FILTERS
    for stride in diagrams.UNET_SKIP_STRIDES:
        assert efficientnet_lite.FEATURE_LAYERS[stride] == f"stage{diagrams.last_stage_at(stride)}_out"
    assert diagrams.last_stage_at(32) == 7  # the U-Net's bottom: lite0_encoder reads STAGE_OUTPUTS[7]
    assert diagrams.UNET_DECODER_STRIDES == unet.DECODER_STRIDES
    defaults = inspect.signature(attention.cbam_block).parameters
    assert (
        defaults["reduction"].default,
        defaults["kernel_size"].default,
    ) == (diagrams.CBAM_REDUCTION, diagrams.CBAM_KERNEL)


def _figure_paths(page: Path) -> list[str]:
    """The targets of the `{figure}` directives of a Markdown page or of a notebook's Markdown cells."""
    if page.suffix == ".ipynb":
        cells = json.loads(page.read_text())["cells"]
        text = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    else:
        text = page.read_text()
    return re.findall(r"^```\{figure\}\s+(\S+)", text, flags=re.M)


def test_each_diagram_appears_in_its_chapter_and_resolves():
    for name, places in CHAPTERS.items():
        for page, target in places:
            assert target in _figure_paths(REPO / page), f"{page} does not show {target}"
            assert (REPO / page).parent.joinpath(target).resolve() == diagrams.BOOK_FIGURES / f"{name}.svg"


def test_the_paths_resolve_in_the_staged_book_too(tmp_path):
    """`skinlib pipeline --book` builds a copy (skinlib.pipeline.stage_book): book/ beside the notebooks."""
    from skinlib.pipeline import stage_book

    stage = stage_book(tmp_path)
    for places in CHAPTERS.values():
        for page, target in places:
            assert (stage / page).parent.joinpath(target).is_file(), f"{target} of {page} is missing in {stage}"
