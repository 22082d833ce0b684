"""The Python SDK of Fernando Telemetry: ``TelemetryClient`` and the ASGI ``TelemetryMiddleware``.

Imports only ``fernando_telemetry.sdk.*``, the standard library and ``httpx`` (the bare install's one
dependency); nothing of the server. See docs/SDK.md.
"""

from fernando_telemetry.sdk.client import DEFAULT_SERVICE_NAME, TelemetryClient, track_telemetry_event
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
    "current_span",
    "current_span_context",
    "format_traceparent",
    "parse_traceparent",
    "track_telemetry_event",
]
