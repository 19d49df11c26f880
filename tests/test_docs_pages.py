"""The book's generated pages: the command-line reference (from the argparse parser) and the reproduce page
(from the shipped JSON files). These test the pure functions of book/_ext; tests/test_book.py builds the book."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "book" / "_ext"))

import cli_reference  # noqa: E402  (book/_ext is on the path only now)
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


# ---------------------------------------------------------------------------------------- the book


def test_book_registers_the_extensions_and_lists_the_pages():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    extensions = config["sphinx"]["local_extensions"]
    assert extensions == {"cli_reference": "book/_ext", "shipped_numbers": "book/_ext"}
    toc = (REPO / "_toc.yml").read_text()
    for page in ("book/usage", "book/how_it_works", "book/reproduce", "book/reference_cli"):
        assert f"- file: {page}\n" in toc
    assert "```{cli-reference}" in (REPO / "book" / "reference_cli.md").read_text()
    reproduce = (REPO / "book" / "reproduce.md").read_text()
    for section in shipped_numbers.SECTIONS:
        assert f"```{{shipped-numbers}} {section}" in reproduce
