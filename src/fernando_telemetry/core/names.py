"""Names people give things (rules): one Unicode spelling per name, and no name that cannot be seen.

Two names that differ only in Unicode composition (``é`` as one code point, NFC, or as ``e`` plus a combining
accent, NFD) look the same and are the same name: names are stored NFC-normalised, so the unique constraint
compares that form. A name made only of invisible characters (format characters such as zero-width spaces and
direction overrides, controls, spaces, fillers) shows as blank and cannot be told apart or typed into a
silence, so it is refused. Pure; imports nothing of the project.
"""

from __future__ import annotations

import unicodedata

__all__ = ["INVISIBLE_CATEGORIES", "name_problem", "normalize_name"]

INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp", "Co", "Cn", "Mn", "Me"})
"""Unicode general categories that draw nothing on their own (format incl. bidi overrides U+202A-U+202E and
U+2066-U+2069, controls, separators, private use, unassigned, combining marks)."""
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""Letters and symbols that render as blank space (Hangul fillers, the blank Braille pattern)."""


def normalize_name(raw: str) -> str:
    """``raw`` in NFC with surrounding white space removed: the form names are stored and compared in."""
    return unicodedata.normalize("NFC", raw).strip()


def name_problem(name: str) -> str | None:
    """Why ``name`` (already normalised) cannot be a name, or None when it can."""
    if any(unicodedata.category(char) == "Cc" for char in name):
        return "holds control characters"
    if all(char in _BLANK_LETTERS or unicodedata.category(char) in INVISIBLE_CATEGORIES for char in name):
        return "is made only of invisible characters (spaces, zero-width or direction-override characters)"
    return None
