"""OTLP/HTTP (protobuf and JSON) to the rows of the native ingest decoders: spans, metric points, log records as events.

Pure: parsing works on bytes, decoding takes a ``core.ingest.DecodeContext``. Imports only the standard
library, ``google.protobuf``, ``opentelemetry.proto`` and ``fernando_telemetry.core``.
"""

from fernando_telemetry.core.otlp import percentiles
from fernando_telemetry.core.otlp.batch import DecodedBatch, partial_success_message
from fernando_telemetry.core.otlp.logs import event_rows_from_logs_request
from fernando_telemetry.core.otlp.metrics import metric_rows_from_request
from fernando_telemetry.core.otlp.requests import (
    JSON,
    PROTOBUF,
    item_count,
    media_type,
    parse_logs_request,
    parse_metrics_request,
    parse_traces_request,
)
from fernando_telemetry.core.otlp.responses import logs_response, metrics_response, response_body, traces_response
from fernando_telemetry.core.otlp.spans import spans_from_request

__all__ = [
    "JSON",
    "PROTOBUF",
    "DecodedBatch",
    "event_rows_from_logs_request",
    "logs_response",
    "media_type",
    "metric_rows_from_request",
    "metrics_response",
    "item_count",
    "parse_logs_request",
    "parse_metrics_request",
    "parse_traces_request",
    "partial_success_message",
    "percentiles",
    "response_body",
    "spans_from_request",
    "traces_response",
]
