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
from fernando_telemetry.core.ingest.rows import SpanRow

__all__ = ["COLUMNS", "FIELDS", "SpanRow", "decode"]

COLUMNS = SpanRow._fields
"""The COPY columns: the decoded ones, then ``resource_id`` (filled by the writer, ``storage.resources``)."""
FIELDS = frozenset(COLUMNS) - {"resource_id"}


def decode(item: Mapping[str, Any], context: DecodeContext) -> SpanRow:
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
    return SpanRow(
        trace_id=hex_id(item, "trace_id", 32, required=True),
        span_id=hex_id(item, "span_id", 16, required=True),
        parent_span_id=hex_id(item, "parent_span_id", 16),
        operation_name=required_text(item, "operation_name", 255),
        service_name=required_text(item, "service_name", 100),
        span_kind=enum_value(item, "span_kind", SpanKind, SpanKind.INTERNAL),
        start_time=start,
        end_time=end,
        duration_ms=duration_ms,
        status=enum_value(item, "status", SpanStatus, SpanStatus.UNSET),
        status_message=optional_text(item, "status_message", 10_000),
        status_code=integer(item, "status_code", minimum=100, maximum=599),
        http_method=method.upper() if method else None,
        http_route=optional_text(item, "http_route", 255),
        error_type=optional_text(item, "error_type", 255),
        error_message=optional_text(item, "error_message", 10_000),
        host_name=optional_text(item, "host_name", 255),
        user_id=user_ref(item),
        license_id=license_ref(item, context),
        attributes=json_object(item, "attributes", context),
        span_events=json_array(item, "span_events", context),
        resource=json_object(item, "resource", context),
        environment=optional_text(item, "environment", 32),
    )
