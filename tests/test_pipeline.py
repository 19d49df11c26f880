"""The course runner: notebooks executed with papermill in this interpreter, artifacts, timings, failures."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from skinlib import pipeline
from skinlib.pipeline import NOTEBOOK_DIR, NOTEBOOKS, NotebookFailed, run_pipeline

REPO = NOTEBOOK_DIR.parent
QUICK = ["01_data_exploration.ipynb", "02_classical_masks.ipynb"]
FIGURES = [
    "01_class_imbalance.png",
    "01_images_per_lesion.png",
    "01_one_lesion.png",
    "01_metadata.png",
    "01_gallery.png",
    "01_lesion_browser.png",
    "02_steps.png",
    "02_dice_histogram.png",
    "02_worst_cases.png",
    "02_explorer.png",
]


def tiny_notebook(path, *cells, parameters=True):
    """A notebook with a papermill parameters cell (mode, data_dir, out_dir) and the given code cells."""
    first = [new_code_cell('mode = "quick"\ndata_dir = None\nout_dir = "."', metadata={"tags": ["parameters"]})]
    notebook = new_notebook(
        cells=(first if parameters else []) + [new_code_cell(c) for c in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(notebook, path)
    return path


# ------------------------------------------------------------------------------------ no kernel


def test_notebooks_are_numbered_in_order_and_declare_their_parameters():
    assert list(NOTEBOOKS) == sorted(NOTEBOOKS)
    assert set(QUICK) <= set(NOTEBOOKS)
    for name in NOTEBOOKS:
        parameters = pipeline.notebook_parameters(NOTEBOOK_DIR / name, "full", "/data", "/out")
        assert parameters["mode"] == "full" and parameters["data_dir"] == "/data" and parameters["out_dir"] == "/out"
        notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        assert not any(cell.get("outputs") for cell in notebook.cells), f"{name}: commit notebooks without outputs"
    assert (
        pipeline.notebook_parameters(NOTEBOOK_DIR / QUICK[1], "quick", "d", "o")["n_val"]
        == pipeline.MODES["quick"]["n_val"]
    )
    assert pipeline.MODES["full"]["n_val"] is None  # the whole validation split
    assert set(pipeline.MODES["quick"]) == set(pipeline.MODES["full"])


def test_resolve_notebooks_by_number_name_or_path(tmp_path):
    assert [p.name for p in pipeline.resolve_notebooks(None)] == list(NOTEBOOKS)
    assert [p.name for p in pipeline.resolve_notebooks(["02", "01_data_exploration", QUICK[1]])] == [
        QUICK[1],
        QUICK[0],
        QUICK[1],
    ]
    own = tiny_notebook(tmp_path / "own.ipynb")
    assert pipeline.resolve_notebooks([str(own)]) == [own.resolve()]
    with pytest.raises(ValueError, match="unknown notebook '99'"):
        pipeline.resolve_notebooks(["99"])


def test_a_notebook_without_the_parameters_cell_is_refused_before_anything_runs(tmp_path):
    bare = tiny_notebook(tmp_path / "bare.ipynb", "x = 1", parameters=False)
    with pytest.raises(ValueError, match="bare.ipynb.*mode, data_dir, out_dir"):
        run_pipeline("quick", out_dir=tmp_path / "out", notebooks=[bare], data_dir=tmp_path, progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="mode must be one of"):
        run_pipeline("medium", out_dir=tmp_path / "out", data_dir=tmp_path)


def test_kernel_is_this_interpreter():
    command = pipeline.kernel_command()
    assert command[0] == sys.executable and command[1:3] == ["-m", "ipykernel_launcher"]


def test_pipeline_subcommand_parser(monkeypatch, capsys):
    parser = argparse.ArgumentParser(prog="skinlib")
    pipeline.add_pipeline_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["pipeline", "--mode", "full", "--out", "o", "--data", "d", "--only", "01", "02"])
    assert (args.mode, args.out, args.data, args.only, args.book) == ("full", "o", "d", ["01", "02"], False)
    assert args.func is pipeline.cmd_pipeline
    assert parser.parse_args(["pipeline"]).mode == "quick"
    with pytest.raises(SystemExit):
        parser.parse_args(["pipeline", "--mode", "slow"])

    def failing(*_, **__):
        raise NotebookFailed(
            "02_x.ipynb",
            4,
            "ValueError",
            "boom",
            "out/notebooks/02_x.ipynb",
            exec_count=3,
            source="\nraise ValueError('boom')",
        )

    monkeypatch.setattr(pipeline, "run_pipeline", failing)
    assert pipeline.cmd_pipeline(args) == 1
    error = capsys.readouterr().err
    assert "02_x.ipynb failed in cell 4 (In [3]), which starts: raise ValueError('boom')" in error
    assert "ValueError: boom" in error


def test_the_staged_book_is_strict_about_glue_keys(tmp_path):
    """`make book` (no outputs) tolerates missing `{glue:text}` keys; the book staged from executed notebooks
    drops that suppression and keeps every other setting."""
    import yaml

    source = yaml.safe_load((REPO / "_config.yml").read_text())
    assert "mystnb.glue" in source["sphinx"]["config"]["suppress_warnings"]
    staged = yaml.safe_load((pipeline.stage_book(tmp_path) / "_config.yml").read_text())
    suppressed = staged["sphinx"]["config"].pop("suppress_warnings")
    assert "mystnb.glue" not in suppressed and "mystnb.unknown_mime_type" in suppressed
    source["sphinx"]["config"].pop("suppress_warnings")
    assert staged == source
    broad = "sphinx:\n  config:\n    suppress_warnings: [mystnb, 'mystnb.*', mystnb.glue, ref.doc]\n"
    assert yaml.safe_load(pipeline.strict_glue_config(broad)) == {
        "sphinx": {"config": {"suppress_warnings": ["ref.doc"]}}
    }
    assert yaml.safe_load(pipeline.strict_glue_config("title: t\n")) == {"title": "t"}


def test_a_missing_glue_key_in_the_executed_book_is_named_in_the_error(tmp_path, monkeypatch):
    """build_book's error says what a `[mystnb.glue]` failure means (the build itself is tested in test_book.py)."""
    log = "chapter.ipynb:3: WARNING: Could not find key 'ch02_dice' [mystnb.glue]\n"
    fake = subprocess.CompletedProcess([], 1, stdout=log, stderr="")
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: fake)
    monkeypatch.setattr(shutil, "which", lambda name: "/bin/jupyter-book")
    with pytest.raises(RuntimeError, match=r"(?s)ch02_dice.*is in no executed notebook: run the notebook"):
        pipeline.build_book(tmp_path)
    assert (tmp_path / "book" / "build.log").read_text() == log


# ------------------------------------------------------------------------------------ kernels


def test_failing_notebook_stops_the_run_and_keeps_what_was_made(tmp_path):
    good = tiny_notebook(
        tmp_path / "good.ipynb", "from pathlib import Path\nPath(out_dir, 'good.txt').write_text(mode)"
    )
    bad = tiny_notebook(
        tmp_path / "bad.ipynb",
        "from pathlib import Path\nPath(out_dir, 'before.txt').write_text('x')",
        "raise ValueError('deliberate failure')",
        "Path(out_dir, 'after.txt').write_text('x')",
    )
    never = tiny_notebook(tmp_path / "never.ipynb", "x = 1")
    out = tmp_path / "out"
    with pytest.raises(NotebookFailed) as caught:
        run_pipeline("quick", out_dir=out, notebooks=[good, bad, never], data_dir=tmp_path, progress=False)
    failure = caught.value
    # cells of the executed notebook: parameters, injected parameters, before, raise, after
    assert (failure.notebook, failure.cell_index, failure.ename) == ("bad.ipynb", 3, "ValueError")
    assert "bad.ipynb failed in cell 3" in str(failure) and "deliberate failure" in str(failure)
    assert failure.executed == out / "notebooks" / "bad.ipynb"
    assert (out / "good.txt").read_text() == "quick" and (out / "before.txt").exists()
    assert not (out / "after.txt").exists()
    assert (out / "notebooks" / "good.ipynb").exists() and not (out / "notebooks" / "never.ipynb").exists()
    executed = nbformat.read(failure.executed, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0]["evalue"] == "deliberate failure"
    timings = json.loads((out / "timings.json").read_text())
    assert [(r["notebook"], r["status"]) for r in timings["notebooks"]] == [
        ("good.ipynb", "ok"),
        ("bad.ipynb", "failed"),
    ]
    assert timings["notebooks"][1]["cell_index"] == 3


@pytest.fixture(scope="module")
def quick_run(quick_course):
    """The session's quick run of the whole course (tests/conftest.py)."""
    return quick_course


@pytest.mark.data
@pytest.mark.slow
def test_every_notebook_runs_in_order_and_writes_its_json(quick_run):
    out, result = quick_run
    timings = json.loads((out / "timings.json").read_text())
    assert [(r["notebook"], r["status"]) for r in timings["notebooks"]] == [(n, "ok") for n in NOTEBOOKS]
    for name in NOTEBOOKS:
        executed = nbformat.read(out / "notebooks" / name, as_version=4)
        outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], name
        assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), name
        # TensorFlow's C++ start-up logs go to stderr; only cells tagged remove-stderr (hidden in the book) may have it
        for cell in executed.cells:
            if cell.cell_type == "code" and any(o.get("name") == "stderr" for o in cell.outputs):
                assert "remove-stderr" in cell.metadata.get("tags", []), (name, cell.source[:80])
    written = {path.name for path in out.glob("*.json")}
    assert {
        "01_data.json",
        "02_classical.json",
        "03_unet.json",
        "04_classifier.json",
        "05_losses.json",
        "06_tta.json",
        "07_explain.json",
        "08_evaluation.json",
        "10_new_images.json",
        "11_results.json",
        "12_model_card.json",
        "13_domain_shift.json",
    } <= written
    print(pipeline.timing_table(timings["notebooks"]))


@pytest.mark.data
@pytest.mark.slow
def test_classifier_chapters_train_live_and_compare_losses(quick_run):
    """04 trains a small model live; 05 compares the three losses live and reads the ablation study."""
    out, _ = quick_run
    classifier = json.loads((out / "04_classifier.json").read_text())
    assert classifier["retrained"] is None  # quick mode never retrains the shipped model
    assert {row["ImageNet class"] for row in classifier["imagenet_check"] if row["rank"] == 1} <= {
        281,
        282,
        283,
        284,
        285,
        504,
        967,
    }
    assert 1 / 7 - 0.1 < classifier["demo"]["val_balanced_accuracy"] <= 1.0
    assert [p["stages_unfrozen"] for p in classifier["phases"]] == [0, 2, 4]
    losses = json.loads((out / "05_losses.json").read_text())
    assert set(losses["live"]) == {"focal", "weighted_ce", "ce"}
    assert losses["always_nv"]["balanced_accuracy"] == pytest.approx(1 / 7)
    assert losses["best_on_validation"] in losses["ablation_rows"]
    assert set(losses["better_than_focal_beyond_noise"]) <= set(losses["ablation_rows"])
    for name in ("04_demo_curves.png", "04_shipped_curves.png", "05_focal_loss_shape.png", "05_live_recall.png"):
        assert (out / "figures" / name).read_bytes().startswith(b"\x89PNG"), name


@pytest.mark.data
@pytest.mark.slow
def test_new_images_chapter_handles_bad_files_and_scores_a_folder(quick_run):
    out, _ = quick_run
    new = json.loads((out / "10_new_images.json").read_text())
    assert set(new["failed"]) == {"broken_notes.jpg", "broken_truncated.jpg"}
    assert new["predictions"]["variant_no_lesion.png"]["uncertain"] is True
    for name in ("variant_gray.png", "variant_rgba.png", "variant_tiny.png", "variant_large.jpg"):
        assert sum(new["predictions"][name]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert new["evaluate"]["images"] == pipeline.MODES["quick"]["n_eval"] or new["evaluate"]["images"] > 0
    assert (out / "10_labelled_folder" / "report" / "roc.png").is_file()


@pytest.mark.data
@pytest.mark.slow
def test_results_page_and_model_card_read_the_recorded_metrics(quick_run):
    out, _ = quick_run
    results = json.loads((out / "11_results.json").read_text())
    shipped = json.loads((REPO / "skinlib" / "shipped" / "classifier" / "metrics.json").read_text())
    assert results["classification"]["test"]["balanced accuracy"] == shipped["test"]["plain"]["balanced_accuracy"]
    assert {t["measure"] for t in results["targets"]} >= {"balanced accuracy", "ECE after temperature scaling"}
    assert all(not c["whole test split"] for c in results["checks"])  # quick mode scores samples
    card = json.loads((out / "12_model_card.json").read_text())
    assert card["test_balanced_accuracy"] == shipped["test"]["plain"]["balanced_accuracy"]
    assert len(card["per_class"]) == 7 and card["weights_mb"] < 30


@pytest.mark.data
@pytest.mark.slow
def test_quick_pipeline_writes_notebooks_artifacts_and_timings(quick_run, data_dir):
    out, result = quick_run
    for name in QUICK:
        executed = nbformat.read(out / "notebooks" / name, as_version=4)
        outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"]
        assert not [o for o in outputs if o.get("name") == "stderr"], f"{name} wrote to stderr"
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4
        # static mode: no dead widgets in what the book renders
        assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
        assert "widgets" not in executed.metadata
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and f'data_dir = "{data_dir.resolve()}"' in injected[0].source
    timings = json.loads((out / "timings.json").read_text())
    assert timings["mode"] == "quick"
    assert all(r["seconds"] > 0 for r in timings["notebooks"]) and result["notebooks"] == timings["notebooks"]
    for figure in FIGURES:
        assert (out / "figures" / figure).read_bytes().startswith(b"\x89PNG"), figure
    data = json.loads((out / "01_data.json").read_text())
    assert (data["images"], data["lesions"], data["lesions_in_more_than_one_split"]) == (10015, 7470, 0)
    classical = json.loads((out / "02_classical.json").read_text())
    assert classical["mode"] == "quick" and classical["sampled"]
    assert classical["classical"]["count"] == pipeline.MODES["quick"]["n_val"]
    assert 0.7 < classical["classical"]["dice_mean"] <= 1.0
    assert classical["classical"]["dice_mean"] > classical["centre_disc"]["dice_mean"]  # beats the trivial baseline
    glued = nbformat.read(out / "notebooks" / QUICK[1], as_version=4)
    records = [
        o for c in glued.cells if c.cell_type == "code" for o in c.outputs if "scrapbook" in o.get("metadata", {})
    ]
    assert {r["metadata"]["scrapbook"]["name"] for r in records} >= {"classical_val_dice", "centre_disc_val_dice"}


@pytest.mark.data
@pytest.mark.slow
def test_book_builds_from_the_executed_notebooks(course_book):
    out, html = course_book
    for name in NOTEBOOKS:
        page = (html / "notebooks" / name.replace(".ipynb", ".html")).read_text()
        assert page.count("<img") >= (4 if name in QUICK else 1), name
        assert str(out) not in page  # the injected cell with this machine's paths is removed
    assert (html / "book" / "intro.html").is_file()


@pytest.mark.data
@pytest.mark.slow
def test_notebooks_pass_nbval_with_their_own_defaults(tmp_path, data_dir):
    """`pytest --nbval-lax` on copies of every notebook, in order (their default out_dir lands in tmp_path)."""
    (tmp_path / "notebooks").mkdir()
    copies = [shutil.copy(NOTEBOOK_DIR / name, tmp_path / "notebooks" / name) for name in NOTEBOOKS]
    env = {**os.environ, "SKINLIB_DATA": str(data_dir), "SKINLIB_STATIC": "1"}
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-current-env",
            "-q",
            "-p",
            "no:cacheprovider",
            *map(str, copies),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    print(f"nbval, all {len(copies)} notebooks: {time.perf_counter() - started:.1f} s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert (tmp_path / "outputs" / "live" / "02_classical.json").is_file()
    assert (tmp_path / "outputs" / "live" / "12_model_card.json").is_file()


@pytest.mark.data
@pytest.mark.slow
def test_results_notebooks_run_on_the_shipped_models(quick_run):
    """Notebooks 03 (U-Net), 06 (TTA), 07 (Grad-CAM) and 08 (evaluation) run in quick mode and write their numbers."""
    out, _ = quick_run
    for name in (
        "03_unet_segmentation.ipynb",
        "06_test_time_augmentation.ipynb",
        "07_gradcam_attention.ipynb",
        "08_evaluation.ipynb",
    ):
        executed = nbformat.read(out / "notebooks" / name, as_version=4)
        outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], name
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3, name
    unet = json.loads((out / "03_unet.json").read_text())
    evaluation = json.loads((out / "08_evaluation.json").read_text())
    assert unet and evaluation
    tta = json.loads((out / "06_tta.json").read_text())
    assert tta["tta_gain"]["low"] <= tta["tta_gain"]["difference"] <= tta["tta_gain"]["high"]
    assert "tta_recommended_on_validation" in tta
    explain = json.loads((out / "07_explain.json").read_text())
    assert explain["layers"][0] == "top_activation" and len(explain["layers"]) == 3 and explain["images"]
    assert set(explain["heat_inside_mask_means"]) == {"gradcam", "uniform", "centre", "other_images"}
    assert evaluation["bootstrap"]["unit"] == "lesions" and evaluation["lesions"] <= evaluation["images"]
    assert set(evaluation["class_prior"]) == {"as_trained", "training_prior"}
    assert tta["tta_gain"]["bootstrap_unit"] == "lesions"
    assert (out / "figures" / "06_dihedral_views.png").is_file() and (
        out / "figures" / "07_gradcam_layers.png"
    ).is_file()
    assert (out / "08_report" / "roc.png").is_file() and (out / "08_report" / "report.json").is_file()
