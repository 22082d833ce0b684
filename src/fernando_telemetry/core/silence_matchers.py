"""Silence matchers: ``{"name": ..., "op": "=" | "!=" | "=~" | "!~", "value": ...}`` checked and applied.

A matcher names an alert label: ``alertname`` (the rule's name), ``rule_id``, ``severity``, one of the
rule's labels, or a field of the alert's group key. As in Alertmanager, a label the alert lacks reads as
the empty string, regular expressions match the whole value, and a silence needs at least one matcher
that does not match the empty string (so one silence cannot mute every alert by accident). Patterns run on
RE2 (``core.patterns``: linear time, at most ``MAX_PATTERN_CHARS``, no backreferences or lookaround), and
values and labels are compared in Unicode NFC, the form rule names are stored in. Pure; imports only core.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fernando_telemetry.core.errors import InvalidInput, field_problem
from fernando_telemetry.core.patterns import MAX_PATTERN_CHARS, Pattern, PatternError, compile_pattern

__all__ = ["MAX_MATCHERS", "OPERATORS", "SPECIAL_NAMES", "Matcher", "matches_all", "parse_matchers"]

OPERATORS = ("=", "!=", "=~", "!~")
SPECIAL_NAMES = ("alertname", "rule_id", "severity")
"""Names every alert carries; any other name is looked up in the alert's labels and group key."""
MAX_MATCHERS = 20
_MAX_NAME_CHARS = 100
_MAX_VALUE_CHARS = MAX_PATTERN_CHARS
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")


@dataclass(frozen=True)
class Matcher:
    """One condition on one label; ``pattern`` is the compiled (RE2) regular expression of ``=~``/``!~``."""

    name: str
    op: str
    value: str
    pattern: Pattern | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = unicodedata.normalize("NFC", labels.get(self.name, ""))
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


def matches_all(matchers: tuple[Matcher, ...] | list[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (an empty list matches nothing: a silence always has matchers)."""
    return bool(matchers) and all(matcher.matches(labels) for matcher in matchers)


def parse_matchers(raw: Any, *, field: str = "matchers") -> tuple[Matcher, ...]:
    """The matchers of ``raw`` (a JSON list), or ``InvalidInput`` listing every problem with its field."""
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(
            f"{field} must be a non-empty list of {{name, op, value}} objects",
            details=[field_problem(field, "not a non-empty list")],
        )
    if len(raw) > MAX_MATCHERS:
        raise InvalidInput(
            f"{field}: at most {MAX_MATCHERS} matchers", details=[field_problem(field, f"more than {MAX_MATCHERS}")]
        )
    problems: list[dict[str, Any]] = []
    parsed: list[Matcher] = []
    for index, item in enumerate(raw):
        matcher = _parse_one(item, f"{field}[{index}]", problems)
        if matcher is not None:
            parsed.append(matcher)
    if not problems and all(matcher.matches({}) for matcher in parsed):
        problems.append(
            field_problem(
                field,
                "every matcher matches an empty value, so the silence would mute every alert; "
                "add one that names something (for example alertname=...)",
            )
        )
    if problems:
        raise InvalidInput(f"{field}: " + "; ".join(f"{p['field']}: {p['reason']}" for p in problems), details=problems)
    return tuple(parsed)


def _parse_one(item: Any, field: str, problems: list[dict[str, Any]]) -> Matcher | None:
    if not isinstance(item, dict):
        problems.append(field_problem(field, "not an object with name, op and value"))
        return None
    before = len(problems)
    unknown = sorted(str(key) for key in item if key not in ("name", "op", "value", "isRegex", "isEqual"))
    for key in unknown:
        problems.append(field_problem(f"{field}.{key[:40]}", "unknown field", allowed=["name", "op", "value"]))
    name = item.get("name")
    if not isinstance(name, str) or not name:
        problems.append(field_problem(f"{field}.name", "missing or not a string"))
    elif len(name) > _MAX_NAME_CHARS or not _NAME.fullmatch(name):
        problems.append(field_problem(f"{field}.name", f"not a label name (letters, digits, _ . : -, at most {_MAX_NAME_CHARS})"))
    op = item.get("op", _alertmanager_op(item))
    if op not in OPERATORS:
        problems.append(field_problem(f"{field}.op", "unknown operator", allowed=list(OPERATORS)))
    value = item.get("value")
    if isinstance(value, bool) or isinstance(value, int | float):
        value = str(value).lower() if isinstance(value, bool) else str(value)
    if not isinstance(value, str):
        problems.append(field_problem(f"{field}.value", "missing or not a string"))
    elif len(value) > _MAX_VALUE_CHARS or "\x00" in value:
        problems.append(field_problem(f"{field}.value", f"longer than {_MAX_VALUE_CHARS} characters or holds NUL"))
    pattern = None
    if len(problems) == before and isinstance(value, str) and op in ("=~", "!~"):
        try:
            pattern = compile_pattern(value)
        except PatternError as exc:
            problems.append(field_problem(f"{field}.value", exc.reason))
    # the isinstance checks repeat what the problems above say, so the types below are proven, not assumed
    if len(problems) != before or not isinstance(name, str) or not isinstance(value, str):
        return None
    return Matcher(name=name, op=op, value=unicodedata.normalize("NFC", value), pattern=pattern)


def _alertmanager_op(item: dict[str, Any]) -> Any:
    """Alertmanager's ``isRegex``/``isEqual`` spelling, so its silences can be pasted unchanged."""
    if "isRegex" not in item and "isEqual" not in item:
        return "="
    regex, equal = item.get("isRegex", False), item.get("isEqual", True)
    if not isinstance(regex, bool) or not isinstance(equal, bool):
        return None
    return {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[(regex, equal)]
