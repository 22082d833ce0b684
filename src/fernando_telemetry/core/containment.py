"""JSON containment filters from query parameters: ``payload.plan=pro``, ``labels.region=eu``.

The rule for a value: text that is valid JSON other than a JSON string (a number, ``true``, ``false``,
``null``, an object or an array) matches either that JSON value or the same text as a string, so
``payload.count=3`` finds ``{"count": 3}`` and ``{"count": "3"}``; any other text matches that string
exactly. The key after the prefix is one top-level key taken literally, dots included
(``payload.http.route=/x`` is the key ``http.route``); nested fields are matched with an object value
(``payload.user={"plan": "pro"}``). Several parameters must all match.

Each condition is a tuple of alternative JSON documents, meant as ``column @> doc1 OR column @> doc2``;
conditions are ANDed. Unambiguous conditions are merged into one document, so the common case is a
single containment the GIN ``jsonb_path_ops`` index answers. Pure; imports only core.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from fernando_telemetry.core.errors import InvalidInput, field_problem

__all__ = ["Condition", "MAX_CONDITIONS", "conditions", "value_alternatives"]

Condition = tuple[dict[str, Any], ...]
MAX_CONDITIONS = 20
_MAX_KEY_CHARS = 200
_MAX_VALUE_CHARS = 2000


def value_alternatives(text: str) -> list[Any]:
    """What a parameter value matches: ``[json_value, text]`` when it is non-string JSON, else ``[text]``."""
    try:
        parsed = json.loads(text, parse_constant=_not_json, parse_float=_finite_float)
    except ValueError:
        return [text]
    if isinstance(parsed, str) or _has_nul(parsed):  # "\u0000" reads as NUL, which jsonb cannot hold
        return [text]
    return [parsed, text]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    return False


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # Python reads NaN and Infinity; PostgreSQL does not


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400 reads as infinity
        raise ValueError(f"{text} is out of range")
    return number


def conditions(prefix: str, pairs: Iterable[tuple[str, str]]) -> list[Condition]:
    """The containment conditions of the query parameters ``(name, value)`` whose name starts with
    ``prefix`` (for example ``"payload."``); other parameters are ignored."""
    merged: dict[str, Any] = {}
    result: list[Condition] = []
    count = 0
    for name, value in pairs:
        if not name.startswith(prefix):
            continue
        count += 1
        key = name[len(prefix) :]
        if not key or len(key) > _MAX_KEY_CHARS:
            raise InvalidInput(
                f"{name[:60]}: name a key after {prefix!r} (1 to {_MAX_KEY_CHARS} characters), e.g. {prefix}plan=pro",
                details=[field_problem(name[:60], "missing or too long key")],
            )
        if len(value) > _MAX_VALUE_CHARS:
            raise InvalidInput(
                f"{name}: the value is over {_MAX_VALUE_CHARS} characters",
                details=[field_problem(name, "value too long")],
            )
        alternatives = value_alternatives(value)
        if len(alternatives) == 1 and key not in merged:
            merged[key] = alternatives[0]
        else:
            result.append(tuple({key: alternative} for alternative in alternatives))
    if count > MAX_CONDITIONS:
        raise InvalidInput(
            f"at most {MAX_CONDITIONS} {prefix}<key> filters may be given, got {count}",
            details=[field_problem(prefix + "*", "too many filters")],
        )
    if merged:
        result.insert(0, (merged,))
    return result
