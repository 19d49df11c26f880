"""skinlib: segment a dermoscopic lesion, then classify it (HAM10000, 7 classes)."""

__version__ = "0.1.0"
