"""The Python SDK of Fernando Telemetry: ``TelemetryClient``, its module-level default (``configure``,
``track_telemetry_event``) and the ASGI ``TelemetryMiddleware``.

Imports only ``fernando_telemetry.sdk.*``, the standard library and ``httpx`` (the bare install's one
dependency); nothing of the server. See docs/SDK.md.
"""

from fernando_telemetry.sdk.client import DEFAULT_SERVICE_NAME, TelemetryClient
from fernando_telemetry.sdk.default import (
    configure,
    dropped_without_client,
    get_default_client,
    set_default_client,
    track_telemetry_event,
)
from fernando_telemetry.sdk.enums import EventSource, EventType
from fernando_telemetry.sdk.exporter import Exporter, ExportResult, InMemoryExporter, ItemKind
from fernando_telemetry.sdk.http_exporter import HttpExporter
from fernando_telemetry.sdk.middleware import TelemetryMiddleware
from fernando_telemetry.sdk.sink import RecordingSink, TelemetrySink
from fernando_telemetry.sdk.span import Span, current_span, current_span_context
from fernando_telemetry.sdk.stats import ClientStats
from fernando_telemetry.sdk.tracecontext import SpanContext, format_traceparent, parse_traceparent

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "ClientStats",
    "EventSource",
    "EventType",
    "ExportResult",
    "Exporter",
    "HttpExporter",
    "InMemoryExporter",
    "ItemKind",
    "RecordingSink",
    "Span",
    "SpanContext",
    "TelemetryClient",
    "TelemetryMiddleware",
    "TelemetrySink",
    "configure",
    "current_span",
    "current_span_context",
    "dropped_without_client",
    "format_traceparent",
    "get_default_client",
    "parse_traceparent",
    "set_default_client",
    "track_telemetry_event",
]
