"""Sphinx directive `package-layers`: skinlib's layers, top to bottom, with each module's first docstring sentence,
read at build time from the import-linter contract in `pyproject.toml` and from the sources (no import).

The contract is what `lint-imports` checks (tests/test_architecture.py), so the page shows the architecture the
code actually keeps. `layers_markdown` is a pure function, tested without Sphinx (tests/test_docs_pages.py).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path


def contract_layers(pyproject_text: str) -> list[list[str]]:
    """The layers of the first import-linter "layers" contract, top first; each a list of sibling modules."""
    block = re.search(r"^layers = \[(.*?)^\]", pyproject_text, flags=re.S | re.M)
    if block is None:
        raise ValueError("pyproject.toml has no import-linter layers contract")
    layers = re.findall(r'^\s*"([^"]+)"', block.group(1), flags=re.M)
    return [[name.strip() for name in layer.split("|")] for layer in layers]


def first_sentence(source: str) -> str:
    """The first sentence of a module's docstring, on one line ("" when it has none)."""
    doc = ast.get_docstring(ast.parse(source)) or ""
    text = " ".join(doc.split())
    match = re.match(r"(.+?[.?])(\s|$)", text)
    return match.group(1) if match else text


def module_source(package: Path, name: str) -> Path | None:
    """`name` inside the package: a module file or a subpackage's __init__.py."""
    for path in (package / f"{name}.py", package / name / "__init__.py"):
        if path.is_file():
            return path
    return None


def layers_markdown(layers: list[list[str]], package: Path) -> str:
    """A table: layer (1 is the bottom), module, what it is for; a subpackage lists its modules below it."""
    lines = ["| layer | module | what it holds |", "|---|---|---|"]
    for depth, layer in enumerate(layers):
        number = len(layers) - depth
        for name in layer:
            path = module_source(package, name)
            about = first_sentence(path.read_text()) if path else ""
            lines.append(f"| {number} | `skinlib.{name}` | {about.replace('|', '/')} |")
            if path is not None and path.name == "__init__.py":
                for child in sorted(path.parent.glob("*.py")):
                    if child.name != "__init__.py":
                        sentence = first_sentence(child.read_text()).replace("|", "/")
                        lines.append(f"| | `.{child.stem}` | {sentence} |")
    return "\n".join(lines) + "\n"


def section_markdown(srcdir) -> tuple[str, list[Path]]:
    """The table for the checkout that holds the book (or the installed skinlib's), and the files it read."""
    from skinlib.shipped import SHIPPED

    for root in (Path(srcdir).resolve(), SHIPPED.parents[1]):
        pyproject = root / "pyproject.toml"
        if pyproject.is_file() and (root / "skinlib").is_dir():
            layers = contract_layers(pyproject.read_text())
            return layers_markdown(layers, root / "skinlib"), [pyproject]
    return "The package layout is documented in a checkout's `pyproject.toml`.\n", []


# ---------------------------------------------------------------------------------------------- Sphinx


def setup(app):
    """Register `{package-layers}`; a page using it is reread when a file it read changes."""
    from book_sources import register_markdown_directive

    return register_markdown_directive(app, "package-layers", section_markdown, __file__)
