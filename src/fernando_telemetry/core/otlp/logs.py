"""OTLP log records to ``telemetry_events`` rows (``core.ingest.rows.EventRow``).

Imports only the standard library, ``opentelemetry.proto`` and ``fernando_telemetry.core``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber

from fernando_telemetry.core.enums import EventSource, EventType
from fernando_telemetry.core.ingest.common import DecodeContext, hex_id, in_window, json_object
from fernando_telemetry.core.ingest.rows import EventRow
from fernando_telemetry.core.otlp.attribution import license_of, user_of
from fernando_telemetry.core.otlp.batch import DecodedBatch
from fernando_telemetry.core.otlp.resources import ResourceFields, resource_fields
from fernando_telemetry.core.otlp.values import attribute_dict, clipped, python_value, text, unix_nano_datetime

__all__ = ["CATEGORY", "event_rows_from_logs_request", "log_event_row"]

CATEGORY = "log"
"""The ``category`` of every event that came in as an OTLP log record."""

_MAX_NAME_CHARS = 200  # event_name's column width; a longer body is a message, not a name
_FALLBACK_NAME = "log"
# when severity_number is unset, these severity texts still mark an error
_ERROR_TEXTS = frozenset({"ERROR", "FATAL", "CRITICAL", "CRIT", "ALERT", "EMERGENCY", "EMERG", "SEVERE", "PANIC"})


def event_rows_from_logs_request(pb2_request: ExportLogsServiceRequest, context: DecodeContext) -> DecodedBatch:
    """Decode every log record of an export request into an event row; a record that cannot be stored is a rejection."""
    batch = DecodedBatch("log record")
    index = 0
    for pb2_resource_logs in pb2_request.resource_logs:
        resource = resource_fields(pb2_resource_logs.resource)
        for pb2_scope_logs in pb2_resource_logs.scope_logs:
            scope_name = text(pb2_scope_logs.scope.name[: context.bounds.max_scope_chars]) or None
            for pb2_log_record in pb2_scope_logs.log_records:
                batch.add(index, log_event_row, pb2_log_record, resource, scope_name, context)
                index += 1
    return batch


def log_event_row(
    pb2_log_record: LogRecord, resource: ResourceFields, scope_name: str | None, context: DecodeContext
) -> EventRow:
    """One log record as an event row; raises ``ItemError`` naming the OTLP field at fault."""
    attributes = attribute_dict(pb2_log_record.attributes)
    body = python_value(pb2_log_record.body)
    payload = {
        "body": body,
        "severity_text": text(pb2_log_record.severity_text) or None,
        "severity_number": pb2_log_record.severity_number,
        "attributes": attributes,
        "service_name": resource.service_name,
    }
    if scope_name:
        payload["scope"] = scope_name
    unix_nano = pb2_log_record.time_unix_nano or pb2_log_record.observed_time_unix_nano
    return EventRow(
        event_id=context.new_id(),
        event_type=_event_type(pb2_log_record),
        event_name=_event_name(pb2_log_record, attributes, body),
        category=CATEGORY,
        source=EventSource.OTLP.value,
        user_id=user_of(attributes, resource.attributes),
        license_id=license_of(context, attributes, resource.attributes),
        session_id=_string(attributes.get("session.id"), 128),
        payload=json_object({"payload": payload}, "payload", context),
        duration_ms=None,
        ip_address=None,
        user_agent=_string(attributes.get("user_agent.original"), 1024),
        trace_id=_context_id(pb2_log_record.trace_id, "trace_id", 32),
        span_id=_context_id(pb2_log_record.span_id, "span_id", 16),
        environment=resource.environment,
        app_version=resource.app_version,
        event_timestamp=in_window(unix_nano_datetime(unix_nano) if unix_nano else context.now, "time_unix_nano", context),
    )


def _event_type(pb2_log_record: LogRecord) -> str:
    """ERROR (17) and above is an error event; with no severity number, an error-like severity text decides."""
    if pb2_log_record.severity_number >= SeverityNumber.SEVERITY_NUMBER_ERROR:
        return EventType.ERROR_EVENT.value
    if pb2_log_record.severity_number == SeverityNumber.SEVERITY_NUMBER_UNSPECIFIED:
        if pb2_log_record.severity_text.strip().upper() in _ERROR_TEXTS:
            return EventType.ERROR_EVENT.value
    return EventType.SYSTEM_EVENT.value


def _event_name(pb2_log_record: LogRecord, attributes: dict[str, Any], body: Any) -> str:
    """The record's ``event_name``, else its ``event.name`` attribute (cut to 200 characters), else a short string body, else "log"."""
    for candidate in (pb2_log_record.event_name, attributes.get("event.name")):
        if isinstance(candidate, str) and candidate.strip():
            return text(candidate.strip()[:_MAX_NAME_CHARS])
    if isinstance(body, str) and body.strip() and len(body.strip()) <= _MAX_NAME_CHARS:
        return body.strip()
    return _FALLBACK_NAME


def _string(value: Any, max_length: int) -> str | None:
    return clipped(value, max_length) if isinstance(value, str) else None


def _context_id(raw: bytes, field: str, length: int) -> str | None:
    """A trace or span id of the record's context; empty or all zeros (no context, as some SDKs send it) is None."""
    if not raw.strip(b"\x00"):
        return None
    return hex_id({field: raw.hex()}, field, length)
