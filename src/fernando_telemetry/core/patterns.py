"""User regular expressions compiled with RE2: matching time linear in the input, whatever the pattern.

Python's ``re`` backtracks, so a pattern like ``(a+)+b`` takes time exponential in the text it is matched
against and holds the interpreter while it runs. RE2 has no backreferences and no lookaround, which is what
makes it linear; such patterns are refused with a reason. Pure; imports only core and ``re2``.
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

import re2

__all__ = ["MAX_PATTERN_CHARS", "MAX_PROGRAM_BYTES", "Pattern", "PatternError", "compile_pattern"]

MAX_PATTERN_CHARS = 1000
"""Longest user regular expression accepted, in characters (silence matchers, and any later user pattern)."""
MAX_PROGRAM_BYTES = 1 << 20
"""Memory RE2 may use for one compiled pattern (program and DFA cache); a pattern that needs more is refused."""


class Pattern(Protocol):
    """What callers use of a compiled pattern (``re2._Regexp``)."""

    def fullmatch(self, text: str) -> object | None: ...

    def search(self, text: str) -> object | None: ...


class PatternError(ValueError):
    """The text is not a pattern RE2 accepts; ``reason`` says why in words meant for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the reason goes back to the caller, not to stderr
    options.max_mem = MAX_PROGRAM_BYTES
    return options


_OPTIONS = _options()
_UNSUPPORTED = (
    ("(?=", "lookahead (?=...) is not supported"),
    ("(?!", "negative lookahead (?!...) is not supported"),
    ("(?<=", "lookbehind (?<=...) is not supported"),
    ("(?<!", "negative lookbehind (?<!...) is not supported"),
)


def compile_pattern(value: str) -> Pattern:
    """``value`` compiled by RE2 (NFC-normalised, as names are), or ``PatternError`` with a reason naming the limit
    or the construct RE2 lacks. Use ``fullmatch`` for patterns that match the whole value, ``search`` otherwise."""
    if len(value) > MAX_PATTERN_CHARS:
        raise PatternError(f"longer than {MAX_PATTERN_CHARS} characters")
    if "\x00" in value:
        raise PatternError("holds NUL")
    try:
        return re2.compile(unicodedata.normalize("NFC", value), _OPTIONS)
    except re2.error as exc:
        raise PatternError(_reason(value, exc)) from None


def _reason(value: str, exc: Exception) -> str:
    for marker, reason in _UNSUPPORTED:
        if marker in value:
            return f"not a supported regular expression: {reason} (patterns run on RE2, in linear time)"
    detail = exc.args[0] if exc.args else exc
    text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    if "invalid escape sequence: \\" in text and text.rstrip()[-1:].isdigit():
        return f"not a supported regular expression: backreferences ({text.split(': ', 1)[-1]}) are not supported (patterns run on RE2, in linear time)"
    if "pattern too large" in text:
        return "not a supported regular expression: it compiles to more than RE2's memory bound; simplify it"
    return f"not a regular expression: {text}"
