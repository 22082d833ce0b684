"""OTLP scalar translations: ``AnyValue`` and attribute lists to plain Python, unix nanos to datetimes, text to column widths.

Imports only the standard library and ``opentelemetry.proto``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = ["attribute_dict", "clipped", "first_attribute", "python_value", "text", "unix_nano_datetime"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def text(value: str) -> str:
    """A protobuf string made storable: PostgreSQL text and jsonb cannot hold NUL, so it becomes U+FFFD."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def clipped(value: str | None, max_length: int) -> str | None:
    """A string cut to a column's width (OTLP senders are instrumentation that cannot shorten on request); '' is None."""
    if not value:
        return None
    return text(value[:max_length])


def python_value(pb2_any_value: AnyValue) -> Any:
    """An ``AnyValue`` as JSON-ready Python: bytes become base64 text, non-finite doubles their JSON names, unset None."""
    kind = pb2_any_value.WhichOneof("value")
    if kind == "string_value":
        return text(pb2_any_value.string_value)
    if kind == "bool_value":
        return pb2_any_value.bool_value
    if kind == "int_value":
        return pb2_any_value.int_value
    if kind == "double_value":
        number = pb2_any_value.double_value
        if math.isfinite(number):
            return number
        return _NON_FINITE.get(number, "NaN")
    if kind == "array_value":
        return [python_value(pb2_item) for pb2_item in pb2_any_value.array_value.values]
    if kind == "kvlist_value":
        return attribute_dict(pb2_any_value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(pb2_any_value.bytes_value).decode("ascii")
    return None  # unset, or string_value_strindex (only meaningful inside a profiles dictionary)


def attribute_dict(pb2_key_values: Iterable[KeyValue]) -> dict[str, Any]:
    """Attributes as a JSON object; a repeated key keeps its last value."""
    return {text(pb2_key_value.key): python_value(pb2_key_value.value) for pb2_key_value in pb2_key_values}


def first_attribute(keys: Iterable[str], *attribute_maps: dict[str, Any]) -> tuple[str, Any] | None:
    """The first of ``keys`` present (and not None) in the first map that has one; maps are searched in order."""
    for attributes in attribute_maps:
        for key in keys:
            value = attributes.get(key)
            if value is not None:
                return key, value
    return None


def unix_nano_datetime(unix_nano: int) -> datetime:
    """Nanoseconds since the Unix epoch as an aware UTC datetime (microsecond precision, truncated)."""
    return _EPOCH + timedelta(microseconds=unix_nano // 1000)
