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
