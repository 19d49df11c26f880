"""The book's generated pages: the command-line reference (from the argparse parser) and the reproduce page
(from the shipped JSON files). These test the pure functions of book/_ext; tests/test_book.py builds the book."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "book" / "_ext"))

import cli_reference  # noqa: E402  (book/_ext is on the path only now)
import course_timings  # noqa: E402
import shipped_numbers  # noqa: E402

from skinlib.cli import build_parser  # noqa: E402


def toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tool", description="A toy.")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run it", aliases=["go"], description="Runs the thing.")
    run.add_argument("files", nargs="+", metavar="FILE")
    run.add_argument("--out", required=True, metavar="DIR")
    run.add_argument("--size", type=int, default=224, help="square size (default: %(default)s)")
    run.add_argument("--mode", choices=["a", "b"], default="a")
    run.add_argument("--flag", action="store_true", help="a flag with --out and $HOME <id>_x")
    run.add_argument("--hidden", help=argparse.SUPPRESS)
    sub.add_parser("bare")
    return parser


def commands_by_name(parser) -> dict[str, cli_reference.Command]:
    return {command.name: command for command in cli_reference.describe_parser(parser)}


# ------------------------------------------------------------------------------------- CLI reference


def test_describe_parser_lists_each_subcommand_once_aliases_folded():
    commands = commands_by_name(toy_parser())
    assert list(commands) == ["", "run", "bare"]
    assert commands["run"].summary == "run it"
    assert commands["run"].description == "Runs the thing."
    assert commands["run"].prog == "tool run"


def test_options_carry_invocation_help_default_and_required():
    options = {option.invocation: option for option in commands_by_name(toy_parser())["run"].options}
    assert set(options) == {"FILE [FILE ...]", "--out DIR", "--size SIZE", "--mode {a,b}", "--flag"}
    assert options["FILE [FILE ...]"].positional
    assert options["--out DIR"].required and options["--out DIR"].default is None
    assert options["--size SIZE"].help == "square size (default: 224)"
    assert options["--size SIZE"].default is None  # the help already says it
    assert options["--mode {a,b}"].default == "a"
    assert options["--flag"].default is None  # a flag's False is not worth stating


def test_option_markdown_escapes_text_and_sets_options_as_code():
    option = next(o for o in commands_by_name(toy_parser())["run"].options if o.invocation == "--flag")
    line = cli_reference.option_markdown(option)
    assert line.startswith("- `--flag`: A flag with `--out` and \\$HOME \\<id\\>\\_x.")


def test_command_markdown_has_usage_and_every_option():
    command = commands_by_name(toy_parser())["run"]
    text = cli_reference.command_markdown(command)
    assert "```text\nusage: tool run" in text
    for option in command.options:
        assert f"`{option.invocation}`" in text
    assert "(required)" in text and "Default: `a`." in text
    assert "--hidden" not in text


def test_reference_covers_every_subcommand_and_option_of_skinlib():
    parser = build_parser()
    text = cli_reference.reference_markdown(parser)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, subparser in subparsers.choices.items():
        assert f"({'cli-' + name})=\n## `skinlib {name}`" in text
        assert f"<cli-{name}>`" in text  # listed, with a link, in the overview
        section = text.split(f"## `skinlib {name}`", 1)[1].split("\n## ", 1)[0]
        for action in subparser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                assert f"`{option}" in section, f"skinlib {name}: {option} missing from its section"


def test_usage_does_not_depend_on_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    narrow = cli_reference.reference_markdown(build_parser())
    monkeypatch.setenv("COLUMNS", "300")
    assert cli_reference.reference_markdown(build_parser()) == narrow


def test_source_files_name_the_modules_behind_the_commands():
    import skinlib.cli

    assert skinlib.cli.__file__ in cli_reference.source_files(build_parser())


# ------------------------------------------------------------------------------------ reproduce page


def recorded_commands(data) -> list[str]:
    """Every `command` field anywhere in a JSON document."""
    if isinstance(data, dict):
        found = [data["command"]] if isinstance(data.get("command"), str) else []
        return found + [c for value in data.values() for c in recorded_commands(value)]
    if isinstance(data, list):
        return [c for value in data for c in recorded_commands(value)]
    return []


@pytest.mark.parametrize(
    "seconds, text", [(None, "not recorded"), (42.4, "42 s"), (714.9, "11.9 min"), (9000, "2.5 h")]
)
def test_format_duration(seconds, text):
    assert shipped_numbers.format_duration(seconds) == text


def test_format_number_and_key_paths():
    assert shipped_numbers.format_number(0.93407) == "0.934"
    assert shipped_numbers.format_number(7005) == "7005"
    assert shipped_numbers.format_number(38.8967) == "38.9"
    assert shipped_numbers.dig({"a": {"b": 1}}, "a.b") == 1
    assert shipped_numbers.dig({"a": {}}, "a.b") is None
    assert shipped_numbers.key_path("models", "x", "strong cool", "y") == 'models.x["strong cool"].y'


def test_models_section_shows_every_recorded_command_and_time():
    from skinlib.shipped import CLASSIFIER, UNET

    text, files = shipped_numbers.section_markdown("models", REPO)
    assert set(files) == {UNET / "metrics.json", CLASSIFIER / "metrics.json"}
    for path in files:
        data = json.loads(path.read_text())
        for command in recorded_commands(data):
            assert f"```bash\n{command}\n```" in text
        assert shipped_numbers.format_duration(data["train_seconds"]) in text
    assert "`skinlib/shipped/unet/metrics.json`" in text


def test_model_entries_skip_missing_keys():
    entries = shipped_numbers.model_entries({"command": "u", "val": {"dice_mean": 0.5}}, {}, "u.json", "c.json")
    assert [e.title for e in entries] == ["U-Net segmentation (stage 1)", "Classifier (stage 2)"]
    assert entries[0].numbers == [("validation Dice (mean)", "val.dice_mean", 0.5)]
    assert entries[1].command is None and "No command recorded" in shipped_numbers.entry_markdown(entries[1])


def test_ablation_table_has_every_row_its_scores_and_its_command():
    from skinlib.shipped import ABLATION_RESULTS

    ablation = json.loads(ABLATION_RESULTS.read_text())
    text, _ = shipped_numbers.section_markdown("ablation", REPO)
    template = shipped_numbers.common_row_command(ablation["rows"])
    for row in ablation["rows"]:
        line = next(line for line in text.splitlines() if line.startswith(f"| `{row['name']}`"))
        assert shipped_numbers.format_number(row["test"]["balanced_accuracy"]) in line
        assert shipped_numbers.format_duration(row.get("train_seconds")) in line
        assert row["command"] in text or template.replace("ROW", row["name"]) == row["command"]


def test_common_row_command_only_when_all_rows_share_it():
    rows = [{"name": "a", "command": "x --rows a"}, {"name": "b", "command": "x --rows b"}]
    assert shipped_numbers.common_row_command(rows) == "x --rows ROW"
    assert shipped_numbers.common_row_command(rows + [{"name": "c", "command": "y c"}]) is None
    table = shipped_numbers.ablation_markdown({"rows": rows + [{"name": "c", "command": "y c"}]}, "f.json")
    assert "`c`: `y c`" in table


def test_colour_casts_and_benchmarks_show_their_commands():
    from skinlib.shipped import COLOUR_CAST_RESULTS

    text, _ = shipped_numbers.section_markdown("colour-casts", REPO)
    assert json.loads(COLOUR_CAST_RESULTS.read_text())["command"] in text
    text, files = shipped_numbers.section_markdown("benchmarks", REPO)
    assert files == sorted((REPO / "benchmarks" / "results").glob("*.json")) and files
    for path in files:
        assert f"`benchmarks/results/{path.name}`" in text
        command = json.loads(path.read_text()).get("command")
        assert command is None or command in text


def test_benchmarks_without_a_results_folder(tmp_path, monkeypatch):
    import book_sources

    monkeypatch.setattr(book_sources, "benchmark_results", lambda srcdir: None)
    text, files = shipped_numbers.section_markdown("benchmarks", tmp_path)
    assert files == [] and "No `benchmarks/results`" in text


def test_unknown_section_is_refused():
    with pytest.raises(ValueError, match="unknown section"):
        shipped_numbers.section_markdown("everything", REPO)


# ------------------------------------------------------------------------------------ the shipped role


def test_dig_value_steps_into_dicts_and_lists_by_index_or_name():
    data = {"rows": [{"name": "baseline", "val": {"score": 0.5}}, {"name": "tta"}], "fractions": [0.7, 0.3]}
    assert shipped_numbers.dig_value(data, "rows.baseline.val.score") == 0.5
    assert shipped_numbers.dig_value(data, "rows.1.name") == "tta"
    assert shipped_numbers.dig_value(data, "fractions.-1") == 0.3
    for missing in ("rows.other", "fractions.2", "rows.baseline.test", "nothing"):
        with pytest.raises(KeyError):
            shipped_numbers.dig_value(data, missing)


@pytest.mark.parametrize(
    "value, spec, text",
    [
        (0.66869, ".3f", "0.669"),
        (0.85, "%", "85 %"),
        (0.15, ".1%", "15.0 %"),
        (714.9, "duration", "11.9 min"),
        (10, "", "10"),
        (0.93407, "", "0.934"),
        (1.15, ".2f", "1.15"),
    ],
)
def test_format_value(value, spec, text):
    assert shipped_numbers.format_value(value, spec) == text


def test_shipped_text_reads_the_committed_files():
    from skinlib.shipped import ABLATION_RESULTS, CLASSIFIER, SHIPPED

    ablation = json.loads(ABLATION_RESULTS.read_text())
    baseline = next(row for row in ablation["rows"] if row["name"] == "baseline")
    text, path = shipped_numbers.shipped_text("ablation.json:rows.baseline.val.balanced_accuracy:.3f", REPO)
    assert (text, path) == (f"{baseline['val']['balanced_accuracy']:.3f}", ABLATION_RESULTS)
    metrics = json.loads((CLASSIFIER / "metrics.json").read_text())
    text, _ = shipped_numbers.shipped_text("classifier/metrics.json:train_seconds:duration", REPO)
    assert text == shipped_numbers.format_duration(metrics["train_seconds"])
    split = json.loads((SHIPPED.parent / "resources" / "ham10000_split.json").read_text())
    text, path = shipped_numbers.shipped_text("skinlib/resources/ham10000_split.json:fractions.0:%", REPO)
    assert text == f"{100 * split['fractions'][0]:.0f} %" and path.name == "ham10000_split.json"
    record = json.loads((REPO / "benchmarks" / "results" / "course_timings.json").read_text())
    text, path = shipped_numbers.shipped_text("benchmarks/results/course_timings.json:notebooks_recorded", REPO)
    assert text == str(record["notebooks_recorded"]) and path == REPO / "benchmarks/results/course_timings.json"


@pytest.mark.parametrize(
    "spec, error",
    [
        ("ablation.json", ValueError),
        ("ablation.json:", ValueError),
        ("no_such_file.json:a", FileNotFoundError),
        ("ablation.json:rows.no_such_row.val", KeyError),
        ("classifier/metrics.json:command:.3f", ValueError),
    ],
)
def test_shipped_text_refuses_what_it_cannot_read(spec, error):
    with pytest.raises(error):
        shipped_numbers.shipped_text(spec, REPO)


SHIPPED_ROLE = re.compile(r"\{shipped\}`([^`]+)`")


def test_every_shipped_role_of_the_book_resolves():
    """A typo in a page's `{shipped}` role fails here, not only in a book build."""
    import nbformat

    from skinlib.pipeline import toc_notebooks

    toc = REPO / "_toc.yml"
    texts = {page.name: page.read_text() for page in (REPO / "book").glob("*.md")}
    for name in toc_notebooks(toc):
        cells = nbformat.read(REPO / "notebooks" / name, as_version=4).cells
        texts[name] = "\n".join(cell.source for cell in cells if cell.cell_type == "markdown")
    used = [(name, spec) for name, text in texts.items() for spec in SHIPPED_ROLE.findall(text)]
    assert any(name == "reproduce.md" for name, _ in used)
    for name, spec in used:
        text, path = shipped_numbers.shipped_text(spec, REPO)
        assert text and path.is_file(), (name, spec)


# ---------------------------------------------------------------------------------------- the book


def test_book_registers_the_extensions_and_lists_the_pages():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    extensions = config["sphinx"]["local_extensions"]
    assert extensions == dict.fromkeys(
        ("cli_reference", "shipped_numbers", "course_timings", "package_layers", "exercise_numbers"), "book/_ext"
    )
    toc = (REPO / "_toc.yml").read_text()
    for page in ("book/usage", "book/how_it_works", "book/reproduce", "book/reference_cli"):
        assert f"- file: {page}\n" in toc
    assert "```{cli-reference}" in (REPO / "book" / "reference_cli.md").read_text()
    reproduce = (REPO / "book" / "reproduce.md").read_text()
    for section in shipped_numbers.SECTIONS:
        assert f"```{{shipped-numbers}} {section}" in reproduce


# ----------------------------------------------------------------------------------- instructor guide


TOY_NOTEBOOKS = ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]


def load_timings_script():
    """benchmarks/course_timings.py (a script, not a package; its name would clash with the book extension)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_timings_script", REPO / "benchmarks" / "course_timings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def toy_run(folder: Path, timed: dict, executed: dict, mode: str = "quick") -> Path:
    """A fake `skinlib pipeline` output folder: timings.json with `timed` (name -> (seconds, status)) and
    executed notebooks with papermill metadata for `executed` (name -> (duration, exception))."""
    (folder / "notebooks").mkdir(parents=True)
    entries = [{"notebook": name, "seconds": seconds, "status": status} for name, (seconds, status) in timed.items()]
    (folder / "timings.json").write_text(json.dumps({"mode": mode, "notebooks": entries}))
    for name, (duration, exception) in executed.items():
        papermill = {
            "duration": duration,
            "exception": exception,
            "parameters": {"mode": mode},
            "start_time": "2026-01-01T00:00:00",
        }
        notebook = {"cells": [], "metadata": {"papermill": papermill}, "nbformat": 4, "nbformat_minor": 5}
        (folder / "notebooks" / name).write_text(json.dumps(notebook))
    return folder


def test_timings_script_reads_timings_json_then_papermill_and_the_last_run_wins(tmp_path, monkeypatch):
    script = load_timings_script()
    notebooks = ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb", "04_d.ipynb"]
    first = toy_run(
        tmp_path / "first",
        {"01_a.ipynb": (10.04, "ok"), "02_b.ipynb": (5, "failed")},
        {"01_a.ipynb": (9.0, None), "02_b.ipynb": (4.0, True), "03_c.ipynb": (30.0, None)},
    )
    second = toy_run(tmp_path / "second", {"03_c.ipynb": (20.0, "ok")}, {})
    full = toy_run(tmp_path / "full", {"04_d.ipynb": (99.0, "ok")}, {"04_d.ipynb": (98.0, None)}, mode="full")
    monkeypatch.chdir(tmp_path)
    records = script.collect([first, second, full], "quick", notebooks)
    assert [(r["notebook"], r["seconds"], r["source"], r["run"]) for r in records] == [
        ("01_a.ipynb", 10.0, "timings.json", "first"),  # timings.json before papermill's duration
        ("03_c.ipynb", 20.0, "timings.json", "second"),  # the later run wins
    ]  # 02 failed in both records; 04 ran only in full mode
    assert records[0]["started"] == "2026-01-01T00:00:00"


def test_timings_script_writes_the_record_and_the_command(tmp_path, monkeypatch):
    script = load_timings_script()
    run = toy_run(tmp_path / "run", {}, {script.NOTEBOOKS[0]: (12.5, None)})
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "record.json"
    assert script.main(["run", "--out", str(out), "--note", "a test"]) == 0
    record = json.loads(out.read_text())
    assert record["notebooks"][0]["notebook"] == script.NOTEBOOKS[0] and record["total_seconds"] == 12.5
    assert record["notebooks_recorded"] == 1 and record["notebooks_in_course"] == len(script.NOTEBOOKS)
    assert record["command"] == "python benchmarks/course_timings.py run --note 'a test'"  # --out left out
    assert record["runs"] == ["run"] and record["note"] == "a test" and run.is_dir()
    with pytest.raises(SystemExit):
        script.main([str(tmp_path / "missing"), "--out", str(out)])


def test_timings_table_lists_every_notebook_in_course_order():
    record = {
        "mode": "quick",
        "runs": ["outputs/quick"],
        "cpu_count": 2,
        "machine": "x86_64",
        "note": "Shared.",
        "notebooks": [
            {"notebook": "02_b.ipynb", "seconds": 714.9, "source": "timings.json", "run": "outputs/quick"},
            {"notebook": "01_a.ipynb", "seconds": 42.4, "source": "papermill duration", "run": "x"},
        ],
    }
    text = course_timings.timings_markdown(record, TOY_NOTEBOOKS, "benchmarks/results/course_timings.json")
    rows = [line for line in text.splitlines() if line.startswith("| {doc}")]
    assert rows == [
        "| {doc}`../notebooks/01_a` | 42 s | `papermill duration` of `x` |",
        "| {doc}`../notebooks/02_b` | 11.9 min | `timings.json` of `outputs/quick` |",
        "| {doc}`../notebooks/03_c` | not recorded | – |",
    ]
    assert "| **the 2 recorded chapters** | **12.6 min** | |" in text
    assert "quick mode on a machine with 2 CPU cores, x86_64" in text and "`outputs/quick`" in text
    assert text.rstrip().endswith("Shared.")
    missing = course_timings.timings_markdown(None, TOY_NOTEBOOKS, "benchmarks/results/course_timings.json")
    assert "No timings are recorded yet" in missing


def test_the_instructor_table_is_generated_from_the_committed_record():
    from skinlib.pipeline import NOTEBOOKS

    record = json.loads((REPO / "benchmarks" / "results" / "course_timings.json").read_text())
    text, files = course_timings.section_markdown(REPO)
    assert REPO / "benchmarks" / "results" / "course_timings.json" in files and REPO / "_toc.yml" in files
    by_name = {entry["notebook"]: entry for entry in record["notebooks"]}
    rows = [line for line in text.splitlines() if line.startswith("| {doc}")]
    assert len(rows) == len(NOTEBOOKS)
    for name, row in zip(NOTEBOOKS, rows):
        assert row.startswith(f"| {{doc}}`../notebooks/{Path(name).stem}` |")
        expected = shipped_numbers.format_duration(by_name[name]["seconds"]) if name in by_name else "not recorded"
        assert f"| {expected} |" in row
    assert record["mode"] == "quick" and record["command"].startswith("python benchmarks/course_timings.py")
    if not (REPO / "benchmarks" / "results" / course_timings.record_name("full")).is_file():
        assert "No full-mode timings are recorded yet (`benchmarks/results/course_timings_full.json`" in text


def test_chapter_time_names_each_mode_and_never_invents_a_time():
    quick = {"mode": "quick", "notebooks": [{"notebook": "02_b.ipynb", "seconds": 7.0}]}
    full = {"mode": "full", "notebooks": [{"notebook": "02_b.ipynb", "seconds": 714.9}]}
    text = course_timings.chapter_time_text
    assert text({"quick": quick, "full": None}, "02_b") == "7 s in quick mode; full mode not recorded"
    assert text({"quick": quick, "full": full}, "02_b.ipynb") == "7 s in quick mode; 11.9 min in full mode"
    assert text({"quick": None, "full": full}, "notebooks/02_b") == "quick mode not recorded; 11.9 min in full mode"
    assert text({"quick": quick, "full": full}, "03_c") == "not recorded"
    assert text({"quick": None, "full": None}, "02_b") == "not recorded"


def test_chapter_time_reads_one_record_per_mode_as_the_script_writes_them(tmp_path, monkeypatch):
    """`course_timings.py --mode full` writes the file the role reads for full mode; quick keeps its old one."""
    from skinlib.pipeline import MODES

    script = load_timings_script()
    assert set(course_timings.MODES) == set(MODES)
    for mode in MODES:
        assert script.default_out(mode) == REPO / "benchmarks" / "results" / course_timings.record_name(mode)
    assert course_timings.record_name("quick") == "course_timings.json"
    run = toy_run(tmp_path / "run", {script.NOTEBOOKS[1]: (80.4, "ok")}, {}, mode="full")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(script, "RESULTS", tmp_path / "benchmarks" / "results")
    monkeypatch.setattr(script, "OUT", tmp_path / "benchmarks" / "results" / "course_timings.json")
    assert script.main([str(run), "--mode", "full"]) == 0
    assert not script.OUT.exists()  # the quick record is left alone
    (tmp_path / "benchmarks" / "results" / "course_timings.json").write_text(
        json.dumps(
            {
                "mode": "quick",
                "notebooks": [{"notebook": script.NOTEBOOKS[1], "seconds": 3.2, "source": "s", "run": "r"}],
            }
        )
    )
    monkeypatch.setattr("book_sources.benchmark_results", lambda srcdir: tmp_path / "benchmarks" / "results")
    records, files = course_timings.load_records(tmp_path)
    assert len(files) == 2 and records["full"]["mode"] == "full"
    assert course_timings.chapter_time_text(records, script.NOTEBOOKS[1]) == "3 s in quick mode; 80 s in full mode"
    assert course_timings.chapter_time_text(records, script.NOTEBOOKS[0]) == "not recorded"
    text, read = course_timings.section_markdown(REPO)  # the instructor guide: a table per recorded mode
    assert "| chapter | quick mode |" in text and "| chapter | full mode |" in text and "No full-mode" not in text
    assert set(files) <= set(read)


def test_chapter_time_from_the_committed_records():
    records, files = course_timings.load_records(REPO)
    assert REPO / "benchmarks" / "results" / "course_timings.json" in files
    for entry in records["quick"]["notebooks"]:
        assert course_timings.chapter_time_text(records, entry["notebook"]).startswith(
            f"{shipped_numbers.format_duration(entry['seconds'])} in quick mode; "
        )


def test_the_instructor_guide_is_in_the_book_and_uses_the_generated_table():
    page = (REPO / "book" / "instructor.md").read_text()
    assert "- file: book/instructor\n" in (REPO / "_toc.yml").read_text()
    assert "```{course-timings}\n```" in page
    assert "make lab" in page and "90-minute session" in page and "three-week module" in page
    import skinlib.widgets

    for widget in (
        "lesion_browser",
        "classical_mask_explorer",
        "melanoma_threshold_slider",
        "gradcam_explorer",
        "tta_toggle",
        "metadata_explorer",
    ):
        assert hasattr(skinlib.widgets, widget) and f"`{widget}(" in page, widget
    section = page.split("## How long")[1].split("\n## ")[0]
    typed = re.findall(r"\d+(?:\.\d+)? ?(?:s|min|h|seconds|minutes|hours)\b", section)
    assert not typed, f"run times on the instructor page come from the record, not from its text: {typed}"


def test_make_lab_starts_jupyterlab_in_notebooks_with_the_data_and_leaves_make_test_alone():
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # under `make test` (CI) this runs inside make: without the parent's MAKEFLAGS/MAKELEVEL, and with
    # --no-print-directory, the dry run prints just the recipe
    env = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env["SKINLIB_DATA"] = "relative/ham10000"
    lab = subprocess.run(
        ["make", "--no-print-directory", "-n", "lab"], cwd=REPO, capture_output=True, text=True, env=env
    )
    assert lab.returncode == 0, lab.stderr
    command = [line for line in lab.stdout.splitlines() if line.strip()][-2:]
    assert "cd notebooks" in command[0] and f'SKINLIB_DATA="{REPO / "relative" / "ham10000"}"' in command[0]
    assert "bin/jupyter" in command[1] and " lab" in command[1]
    test = subprocess.run(
        ["make", "--no-print-directory", "-n", "test"], cwd=REPO, capture_output=True, text=True, env=env
    )
    assert test.returncode == 0 and "jupyter" not in test.stdout and "-m pytest" in test.stdout


# ------------------------------------------------------------------------------------------ data page


def test_the_data_page_says_where_to_get_the_data_and_how_to_use_it():
    page = (REPO / "book" / "data.md").read_text()
    for fact in (
        "doi:10.7910/DVN/DBW86T",  # the download
        "HAM10000_images_part_1",
        "HAM10000_segmentations_lesion_tschandl",
        "SKINLIB_DATA",
        "skinlib check-data",
        "../shared/data/ham10000",
        "../shared/data/isic2017",
        "ISIC2017_labels.csv",
        "evaluation only",
        "CC BY-NC-SA 4.0",  # HAM10000's licence
        "CC-0 or CC BY-NC",  # ISIC 2017's
        "lesion_id",
        "skinlib split --verify",
    ):
        assert fact in page, fact
    for key in ("tschandl2018ham10000", "tschandl2020human", "codella2018isic2017"):
        assert f"{{cite}}`{key}`" in page and f"{{{key}," in (REPO / "book" / "references.bib").read_text()


def test_usage_links_the_data_page_instead_of_repeating_it():
    usage = (REPO / "book" / "usage.md").read_text()
    assert "{doc}`data`" in usage
    for repeated in ("CC BY-NC-SA", "HAM10000_segmentations_lesion_tschandl", "skinlib split --verify"):
        assert repeated not in usage, repeated


def test_the_package_layout_table_follows_the_import_contract():
    """The usage page's layer table is read from pyproject.toml's contract and the modules' docstrings."""
    import package_layers

    layers = package_layers.contract_layers((REPO / "pyproject.toml").read_text())
    assert layers[0] == ["__main__"] and "data" in layers[-1]
    table = package_layers.layers_markdown(layers, REPO / "skinlib")
    top_level = {p.stem for p in (REPO / "skinlib").glob("*.py") if p.stem != "__init__"}
    top_level |= {p.parent.name for p in (REPO / "skinlib").glob("*/__init__.py")}
    for name in top_level:
        assert f"`skinlib.{name}`" in table, name
    assert "| 1 | `skinlib.data` |" in table and "| | `.recipe` |" in table
    assert package_layers.first_sentence('"""One. Two."""') == "One."
    assert "{package-layers}" in (REPO / "book" / "usage.md").read_text()


def test_the_ablation_table_has_a_column_per_external_collection():
    rows = [
        {"name": "a", "command": "x --rows a", "external": {"isic2017": {"balanced_accuracy_restricted": 0.6123}}},
        {"name": "b", "command": "x --rows b", "external": {"isic2017": {"not_applicable": "needs metadata"}}},
        {"name": "c", "command": "x --rows c"},
    ]
    table = shipped_numbers.ablation_markdown({"rows": rows, "external": {"collections": ["isic2017"]}}, "f.json")
    lines = {
        row["name"]: next(line for line in table.splitlines() if line.startswith(f"| `{row['name']}`")) for row in rows
    }
    assert "isic2017 (classes present)" in table and "never read by the replacement rule" in table
    assert shipped_numbers.format_number(0.6123) in lines["a"] and "| n/a |" in lines["b"] and "| – |" in lines["c"]
    assert all(line.count("|") == table.splitlines()[2].count("|") for line in lines.values())
