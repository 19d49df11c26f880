"""The seven HAM10000 diagnostic classes, defined once for the whole package."""

from __future__ import annotations

#: Class codes in the order used for every label index, probability vector and confusion matrix.
CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

#: Human-readable names, for figures and reports.
DISPLAY_NAMES: dict[str, str] = {
    "akiec": "Actinic keratosis / Bowen's disease",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis-like lesion",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevus",
    "vasc": "Vascular lesion",
}

#: Classes that are malignant or pre-malignant: the ones a triage tool must not miss.
MALIGNANT: frozenset[str] = frozenset({"akiec", "bcc", "mel"})

CLASS_INDEX: dict[str, int] = {name: index for index, name in enumerate(CLASSES)}


def class_index(code: str) -> int:
    """Index of a class code (case-insensitive); a clear error lists the valid codes."""
    try:
        return CLASS_INDEX[code.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown class {code!r}; expected one of {', '.join(CLASSES)}") from None
