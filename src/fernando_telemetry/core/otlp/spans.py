"""OTLP spans to ``traces`` rows (``core.ingest.rows.SpanRow``).

Imports only the standard library, ``opentelemetry.proto`` and ``fernando_telemetry.core``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from fernando_telemetry.core.enums import SpanKind, SpanStatus
from fernando_telemetry.core.ingest.common import (
    MAX_DURATION_MS,
    DecodeContext,
    ItemError,
    hex_id,
    in_window,
    json_array,
    json_object,
)
from fernando_telemetry.core.ingest.rows import SpanRow
from fernando_telemetry.core.otlp.attribution import license_of, user_of
from fernando_telemetry.core.otlp.batch import DecodedBatch
from fernando_telemetry.core.otlp.resources import ResourceFields, resource_fields, stored_resource_json
from fernando_telemetry.core.otlp.values import attribute_dict, clipped, first_attribute, text, unix_nano_datetime

__all__ = ["span_row", "spans_from_request"]

_SPAN_KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: SpanKind.UNSPECIFIED.value,
    Span.SPAN_KIND_INTERNAL: SpanKind.INTERNAL.value,
    Span.SPAN_KIND_SERVER: SpanKind.SERVER.value,
    Span.SPAN_KIND_CLIENT: SpanKind.CLIENT.value,
    Span.SPAN_KIND_PRODUCER: SpanKind.PRODUCER.value,
    Span.SPAN_KIND_CONSUMER: SpanKind.CONSUMER.value,
}
_STATUSES = {
    Status.STATUS_CODE_UNSET: SpanStatus.UNSET.value,
    Status.STATUS_CODE_OK: SpanStatus.OK.value,
    Status.STATUS_CODE_ERROR: SpanStatus.ERROR.value,
}
# current semantic conventions first, then the names before HTTP semconv 1.21
_METHOD_KEYS = ("http.request.method", "http.method")
_STATUS_CODE_KEYS = ("http.response.status_code", "http.status_code")
_EXCEPTION_EVENT = "exception"
_MAX_SCOPE_VERSION_CHARS = 64


def spans_from_request(pb2_request: ExportTraceServiceRequest, context: DecodeContext) -> DecodedBatch:
    """Decode every span of an export request; a span that cannot be stored becomes a rejection, the rest rows."""
    batch = DecodedBatch("span")
    index = 0
    for pb2_resource_spans in pb2_request.resource_spans:
        resource = resource_fields(pb2_resource_spans.resource)
        resource_json = _resource_json(resource, context)
        for pb2_scope_spans in pb2_resource_spans.scope_spans:
            scope = _scope_attributes(pb2_scope_spans.scope.name, pb2_scope_spans.scope.version, context.bounds.max_scope_chars)
            for pb2_span in pb2_scope_spans.spans:
                batch.add(index, span_row, pb2_span, resource, resource_json, scope, context)
                index += 1
    return batch


def span_row(
    pb2_span: Span,
    resource: ResourceFields,
    resource_json: str | ItemError,
    scope: dict[str, str],
    context: DecodeContext,
) -> SpanRow:
    """One span as a row; raises ``ItemError`` naming the OTLP field at fault."""
    if isinstance(resource_json, ItemError):
        raise resource_json
    trace_id = hex_id({"trace_id": pb2_span.trace_id.hex()}, "trace_id", 32, required=True)
    span_id = hex_id({"span_id": pb2_span.span_id.hex()}, "span_id", 16, required=True)
    parent_span_id = hex_id({"parent_span_id": pb2_span.parent_span_id.hex()}, "parent_span_id", 16)
    operation_name = clipped(pb2_span.name.strip(), 255)
    if operation_name is None:
        raise ItemError("name", "is required: a span needs a non-empty name")
    if not pb2_span.start_time_unix_nano:
        raise ItemError("start_time_unix_nano", "is required (nanoseconds since the Unix epoch)")
    start = in_window(unix_nano_datetime(pb2_span.start_time_unix_nano), "start_time_unix_nano", context)
    if pb2_span.end_time_unix_nano < pb2_span.start_time_unix_nano:
        raise ItemError(
            "end_time_unix_nano",
            f"{pb2_span.end_time_unix_nano} is before start_time_unix_nano {pb2_span.start_time_unix_nano}",
        )
    duration_ms = (pb2_span.end_time_unix_nano - pb2_span.start_time_unix_nano) / 1e6
    if duration_ms > MAX_DURATION_MS:
        raise ItemError(
            "end_time_unix_nano", f"is {duration_ms:g} ms after start_time_unix_nano; a span lasts at most {MAX_DURATION_MS:g} ms"
        )
    # an end past the accepted future (u64 max is year 2554) is refused like a start there would be
    end = in_window(unix_nano_datetime(pb2_span.end_time_unix_nano), "end_time_unix_nano", context, earliest=start)
    attributes = attribute_dict(pb2_span.attributes)
    events = [_event_dict(pb2_event) for pb2_event in pb2_span.events]
    exception: dict[str, Any] = next((event["attributes"] for event in events if event["name"] == _EXCEPTION_EVENT), {})
    method = first_attribute(_METHOD_KEYS, attributes)
    user_id = user_of(attributes, resource.attributes)
    license_id = license_of(context, attributes, resource.attributes)
    for key, value in scope.items():
        attributes.setdefault(key, value)
    return SpanRow(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        operation_name=operation_name,
        service_name=resource.service_name,
        span_kind=_SPAN_KINDS.get(pb2_span.kind, SpanKind.UNSPECIFIED.value),
        start_time=start,
        end_time=end,
        duration_ms=duration_ms,
        status=_STATUSES.get(pb2_span.status.code, SpanStatus.UNSET.value),
        status_message=text(pb2_span.status.message) or None,
        status_code=_http_status_code(first_attribute(_STATUS_CODE_KEYS, attributes)),
        http_method=clipped(method[1].upper(), 16) if method and isinstance(method[1], str) else None,
        http_route=_string_attribute(attributes, "http.route", 255),
        error_type=_string_attribute(exception, "exception.type", 255),
        error_message=_string_attribute(exception, "exception.message", None),
        host_name=resource.host_name,
        user_id=user_id,
        license_id=license_id,
        attributes=json_object({"attributes": attributes}, "attributes", context),
        span_events=json_array({"span_events": events}, "span_events", context),
        resource=resource_json,
        environment=resource.environment,
    )


def _resource_json(resource: ResourceFields, context: DecodeContext) -> str | ItemError:
    """The resource attributes as JSON once per resource, cut to ``bounds.max_resource_chars``.

    Every span of the resource shares this one string; the writer stores it once per license in
    ``telemetry_resources`` and gives the span rows its key (``storage.resources``). The attributes past the
    limit are dropped, and counted.
    """
    try:
        return stored_resource_json(resource.attributes, context.bounds.max_resource_chars, context.dump_json)
    except (TypeError, ValueError) as exc:
        return ItemError("resource", f"cannot be stored as JSON: {exc}")


def _scope_attributes(name: str, version: str, max_chars: int) -> dict[str, str]:
    """The instrumentation scope as the ``otel.scope.*`` attributes non-OTLP exporters (Zipkin, Jaeger) write, clipped."""
    scope = {}
    if name:
        scope["otel.scope.name"] = text(name[:max_chars])
    if version:
        scope["otel.scope.version"] = text(version[:_MAX_SCOPE_VERSION_CHARS])
    return scope


def _event_dict(pb2_event: Span.Event) -> dict[str, Any]:
    return {
        "name": text(pb2_event.name),
        "time": unix_nano_datetime(pb2_event.time_unix_nano).isoformat() if pb2_event.time_unix_nano else None,
        "attributes": attribute_dict(pb2_event.attributes),
    }


def _string_attribute(attributes: dict[str, Any], key: str, max_length: int | None) -> str | None:
    value = attributes.get(key)
    if not isinstance(value, str):
        return None
    return clipped(value, max_length) if max_length is not None else (value or None)


def _http_status_code(found: tuple[str, Any] | None) -> int | None:
    """An HTTP status code (an integer or a string of digits) in 100..599; anything else stays only in the attributes."""
    if found is None:
        return None
    value = found[1]
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        return None
    return value
