"""``traces`` items (one span each) of ``POST /api/v1/spans``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from fernando_telemetry.core.enums import SpanKind, SpanStatus
from fernando_telemetry.core.ingest.common import (
    MAX_DURATION_MS,
    DecodeContext,
    ItemError,
    check_fields,
    enum_value,
    finite_number,
    hex_id,
    in_window,
    integer,
    json_array,
    json_object,
    license_ref,
    optional_text,
    required_text,
    timestamp,
    user_ref,
)

__all__ = ["COLUMNS", "FIELDS", "decode"]

COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "operation_name",
    "service_name",
    "span_kind",
    "start_time",
    "end_time",
    "duration_ms",
    "status",
    "status_message",
    "status_code",
    "http_method",
    "http_route",
    "error_type",
    "error_message",
    "host_name",
    "user_id",
    "license_id",
    "attributes",
    "span_events",
    "resource",
    "environment",
)
FIELDS = frozenset(COLUMNS)
USER_COLUMN = COLUMNS.index("user_id")
LICENSE_COLUMN = COLUMNS.index("license_id")
TIME_COLUMN = COLUMNS.index("start_time")


def decode(item: Mapping[str, Any], context: DecodeContext) -> tuple[Any, ...]:
    check_fields(item, FIELDS)
    start = in_window(timestamp(item, "start_time"), "start_time", context)
    duration_ms = finite_number(item, "duration_ms", minimum=0, maximum=MAX_DURATION_MS)
    if item.get("end_time") is not None:
        end = timestamp(item, "end_time")
        if end < start:
            raise ItemError("end_time", f"{end.isoformat()} is before start_time {start.isoformat()}")
        if duration_ms is None:
            duration_ms = (end - start) / timedelta(milliseconds=1)
            if duration_ms > MAX_DURATION_MS:
                raise ItemError(
                    "end_time", f"is {duration_ms:g} ms after start_time; a span lasts at most {MAX_DURATION_MS:g} ms"
                )
    elif duration_ms is not None:
        try:
            end = start + timedelta(milliseconds=duration_ms)
        except OverflowError:  # the end would fall past year 9999
            raise ItemError("duration_ms", f"{duration_ms:g} ms is too long for a span starting at {start.isoformat()}") from None
    else:
        raise ItemError("end_time", "give end_time or duration_ms")
    method = optional_text(item, "http_method", 16)
    return (
        hex_id(item, "trace_id", 32, required=True),
        hex_id(item, "span_id", 16, required=True),
        hex_id(item, "parent_span_id", 16),
        required_text(item, "operation_name", 255),
        required_text(item, "service_name", 100),
        enum_value(item, "span_kind", SpanKind, SpanKind.INTERNAL),
        start,
        end,
        duration_ms,
        enum_value(item, "status", SpanStatus, SpanStatus.UNSET),
        optional_text(item, "status_message", 10_000),
        integer(item, "status_code", minimum=100, maximum=599),
        method.upper() if method else None,
        optional_text(item, "http_route", 255),
        optional_text(item, "error_type", 255),
        optional_text(item, "error_message", 10_000),
        optional_text(item, "host_name", 255),
        user_ref(item),
        license_ref(item, context),
        json_object(item, "attributes", context),
        json_array(item, "span_events", context),
        json_object(item, "resource", context),
        optional_text(item, "environment", 32),
    )
