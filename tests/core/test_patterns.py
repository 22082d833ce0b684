"""Pure checks of ``core.patterns`` (RE2 compilation and its refusals) and ``core.names`` (NFC, invisible names)."""

from __future__ import annotations

import unicodedata

import pytest

from fernando_telemetry.core.names import name_problem, normalize_name
from fernando_telemetry.core.patterns import MAX_PATTERN_CHARS, PatternError, compile_pattern


class TestCompilePattern:
    @pytest.mark.parametrize(
        ("pattern", "text", "full", "found"),
        [
            ("web-[0-9]+", "web-12", True, True),
            ("web", "web-12", False, True),  # fullmatch is anchored, search is not
            ("(a+)+b", "a" * 40 + "!", False, False),
            ("(a+)+b", "a" * 40 + "b", True, True),
            ("(?i)high cpu", "High CPU", True, True),
            (r"\p{L}+", "Café", True, True),
        ],
    )
    def test_matches_like_re(self, pattern: str, text: str, full: bool, found: bool) -> None:
        """fullmatch and search answer as Python's re would for the patterns both accept."""
        compiled = compile_pattern(pattern)
        assert (compiled.fullmatch(text) is not None, compiled.search(text) is not None) == (full, found)

    @pytest.mark.parametrize(
        ("pattern", "words"),
        [
            ("x" * (MAX_PATTERN_CHARS + 1), f"longer than {MAX_PATTERN_CHARS}"),
            (r"(a)\1", "backreferences"),
            ("(?<!a)b", "negative lookbehind"),
            ("[", "missing ]"),
            ("a\x00", "NUL"),
        ],
    )
    def test_refusals_say_why(self, pattern: str, words: str) -> None:
        """Each refusal names the limit or the construct."""
        with pytest.raises(PatternError) as caught:
            compile_pattern(pattern)
        assert words in caught.value.reason


class TestNames:
    def test_normal_form_is_nfc_and_trimmed(self) -> None:
        """NFD and NFC spellings normalise to the same text."""
        composed = "Café"
        assert normalize_name(" " + unicodedata.normalize("NFD", composed) + "\n") == composed

    @pytest.mark.parametrize(
        ("name", "refused"),
        [
            ("High CPU", False),
            ("\u05e9\u05dc\u05d5\u05dd", False),
            ("\u200fcpu", False),
            ("\u200b", True),
            ("\u202a\u202b\u202c\u202d\u202e", True),
            ("\u2066\u2067\u2068\u2069", True),
            ("\u0301", True),
            ("a\tb", True),
        ],
    )
    def test_invisible_names(self, name: str, refused: bool) -> None:
        """Only names that draw nothing, or hold control characters, have a problem."""
        assert (name_problem(name) is not None) is refused
