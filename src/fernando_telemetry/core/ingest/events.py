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
from fernando_telemetry.core.ingest.rows import EventRow

__all__ = ["COLUMNS", "FIELDS", "EventRow", "decode"]

COLUMNS = EventRow._fields
FIELDS = frozenset(COLUMNS)


def decode(item: Mapping[str, Any], context: DecodeContext) -> EventRow:
    check_fields(item, FIELDS)
    event_id = uuid_value(item, "event_id") or context.new_id()
    return EventRow(
        event_id=event_id,
        event_type=enum_value(item, "event_type", EventType, EventType.USER_ACTION),
        event_name=required_text(item, "event_name", 200),
        category=optional_text(item, "category", 100),
        source=enum_value(item, "source", EventSource, EventSource.API),
        user_id=user_ref(item),
        license_id=license_ref(item, context),
        session_id=optional_text(item, "session_id", 128),
        payload=json_object(item, "payload", context),
        duration_ms=finite_number(item, "duration_ms", minimum=0, maximum=MAX_DURATION_MS),
        ip_address=ip_address(item, "ip_address"),
        user_agent=optional_text(item, "user_agent", 1024),
        trace_id=hex_id(item, "trace_id", 32),
        span_id=hex_id(item, "span_id", 16),
        environment=optional_text(item, "environment", 32),
        app_version=optional_text(item, "app_version", 64),
        event_timestamp=in_window(timestamp(item, "event_timestamp", default=context.now), "event_timestamp", context),
    )
