"""The package's layers point one way (import-linter's contract in pyproject.toml), nothing imports the command
line, and a usage error is told apart from a data error."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skinlib"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.mark.skipif(not LINT_IMPORTS.is_file(), reason="import-linter is not installed (pip install -e .[test])")
def test_the_layer_contract_is_kept():
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def _imports(path: Path):
    """(module imported, inside a function?, line) of every skinlib import in one source file."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function |= {id(child) for child in ast.walk(node) if child is not node}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module or ""]).strip(".") if node.level else node.module or ""
            if module.startswith("skinlib"):
                yield module, id(node) in in_function, node.lineno


def test_nothing_in_the_library_imports_the_command_line():
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("cli.py", "__main__.py"):
            continue
        for module, _, line in _imports(path):
            assert module != "skinlib.cli", f"{path.relative_to(PACKAGE.parent)}:{line} imports the CLI"


def test_an_import_inside_a_function_says_why_it_is_deferred():
    """Imports belong at the top of a module; one inside a function stays only where it defers a heavy load
    (TensorFlow, Keras, a widget front-end), and a comment on its line or the line above says so."""
    unexplained = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().splitlines()
        for module, inside, line in _imports(path):
            first = line  # the comment may sit above a block of consecutive imports
            while first > 1 and re.match(r"\s*(from \S+ import|import )", lines[first - 2]):
                first -= 1
            context = lines[line - 1] + (lines[first - 2] if first >= 2 else "")
            if inside and "deferred" not in context:
                unexplained.append(f"{path.relative_to(PACKAGE.parent)}:{line} {module}")
    assert not unexplained, "imports inside functions without a `# deferred: ...` reason:\n" + "\n".join(unexplained)


def test_a_usage_error_points_at_help_and_a_data_error_names_the_file(tmp_path, capsys):
    from skinlib.cli import main

    assert main(["predict", str(tmp_path / "x.jpg"), "--out", str(tmp_path), "--tta-scales", "1.2"]) == 2
    usage = capsys.readouterr().err
    assert "add --tta" in usage and "skinlib predict --help" in usage
    assert main(["evaluate", "--images", str(tmp_path / "missing"), "--labels", str(tmp_path / "labels.csv")]) == 2
    data = capsys.readouterr().err
    assert "missing" in data and "--help" not in data
