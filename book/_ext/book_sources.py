"""Where the book's extensions read the project from.

A book built from a checkout (`make book`) documents that checkout's code and results, even when the Python
environment has skinlib installed from another folder. A book staged elsewhere (`skinlib pipeline --book`
builds it in OUT/book) has no checkout beside it and reads the installed skinlib.
"""

from __future__ import annotations

import sys
from pathlib import Path


def use_checkout(srcdir) -> Path | None:
    """Put the checkout holding the book first on sys.path (before skinlib is imported); return it, or None."""
    root = Path(srcdir).resolve()
    if not (root / "skinlib" / "__init__.py").is_file():
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


def benchmark_results(srcdir) -> Path | None:
    """`benchmarks/results` beside the book, else in the checkout skinlib was imported from; None if neither.

    An installed wheel carries no benchmarks, so the reproduce page then says so instead of failing.
    """
    from skinlib.shipped import SHIPPED

    for root in (Path(srcdir).resolve(), SHIPPED.parents[1]):
        folder = root / "benchmarks" / "results"
        if folder.is_dir():
            return folder
    return None


def markdown_directive(name: str, make_markdown, extension_file: str, arguments: tuple[str, ...] = ()):
    """A Sphinx directive class that parses the MyST markdown `make_markdown(srcdir, *arguments)` returns (with
    the files it read, which make the page rebuild when they change). `arguments`: the choices of its one
    argument, if it takes one."""
    from docutils import nodes
    from docutils.parsers.rst import directives
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class MarkdownDirective(SphinxDirective):
        required_arguments = 1 if arguments else 0

        def run(self):
            given = [directives.choice(self.arguments[0], arguments)] if arguments else []
            text, files = make_markdown(self.env.srcdir, *given)
            for path in [*files, extension_file]:
                self.env.note_dependency(str(path))
            holder = nodes.container()
            self.state.nested_parse(StringList(text.splitlines(), source=name), self.content_offset, holder)
            return list(holder.children)

    MarkdownDirective.__name__ = name.title().replace("-", "")
    return MarkdownDirective


def register_markdown_directive(app, name: str, make_markdown, extension_file: str, arguments=()) -> dict:
    """Register `name` as a `markdown_directive` after putting the book's checkout first on the path."""
    use_checkout(app.srcdir)
    app.add_directive(name, markdown_directive(name, make_markdown, extension_file, arguments))
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
