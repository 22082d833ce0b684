"""``telemetry_events`` items of ``POST /api/v1/events``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fernando_telemetry.core.enums import EventSource, EventType
from fernando_telemetry.core.ingest.common import (
    MAX_DURATION_MS,
    DecodeContext,
    check_fields,
    enum_value,
    finite_number,
    hex_id,
    in_window,
    ip_address,
    json_object,
    license_ref,
    optional_text,
    required_text,
    timestamp,
    user_ref,
    uuid_value,
)

__all__ = ["COLUMNS", "FIELDS", "decode"]

COLUMNS = (
    "event_id",
    "event_type",
    "event_name",
    "category",
    "source",
    "user_id",
    "license_id",
    "session_id",
    "payload",
    "duration_ms",
    "ip_address",
    "user_agent",
    "trace_id",
    "span_id",
    "environment",
    "app_version",
    "event_timestamp",
)
FIELDS = frozenset(COLUMNS)
USER_COLUMN = COLUMNS.index("user_id")
LICENSE_COLUMN = COLUMNS.index("license_id")
TIME_COLUMN = COLUMNS.index("event_timestamp")


def decode(item: Mapping[str, Any], context: DecodeContext) -> tuple[Any, ...]:
    check_fields(item, FIELDS)
    event_id = uuid_value(item, "event_id") or context.new_id()
    return (
        event_id,
        enum_value(item, "event_type", EventType, EventType.USER_ACTION),
        required_text(item, "event_name", 200),
        optional_text(item, "category", 100),
        enum_value(item, "source", EventSource, EventSource.API),
        user_ref(item),
        license_ref(item, context),
        optional_text(item, "session_id", 128),
        json_object(item, "payload", context),
        finite_number(item, "duration_ms", minimum=0, maximum=MAX_DURATION_MS),
        ip_address(item, "ip_address"),
        optional_text(item, "user_agent", 1024),
        hex_id(item, "trace_id", 32),
        hex_id(item, "span_id", 16),
        optional_text(item, "environment", 32),
        optional_text(item, "app_version", 64),
        in_window(timestamp(item, "event_timestamp", default=context.now), "event_timestamp", context),
    )
