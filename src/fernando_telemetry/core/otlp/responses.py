"""OTLP/HTTP response bodies: the ``Export*ServiceResponse`` with its partial success, in the request's encoding.

Imports only ``google.protobuf``, ``opentelemetry.proto`` and ``fernando_telemetry.core.otlp``.
"""

from __future__ import annotations

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsPartialSuccess, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTracePartialSuccess, ExportTraceServiceResponse

from fernando_telemetry.core.otlp.requests import PROTOBUF, media_type

__all__ = ["logs_response", "metrics_response", "response_body", "traces_response"]


def traces_response(rejected_spans: int, error_message: str = "") -> ExportTraceServiceResponse:
    """The answer to ``/v1/traces``; ``partial_success`` is set only when something was rejected or needs saying."""
    if not rejected_spans and not error_message:
        return ExportTraceServiceResponse()
    return ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=rejected_spans, error_message=error_message)
    )


def metrics_response(rejected_data_points: int, error_message: str = "") -> ExportMetricsServiceResponse:
    """The answer to ``/v1/metrics``; ``partial_success`` is set only when something was rejected or needs saying."""
    if not rejected_data_points and not error_message:
        return ExportMetricsServiceResponse()
    return ExportMetricsServiceResponse(
        partial_success=ExportMetricsPartialSuccess(rejected_data_points=rejected_data_points, error_message=error_message)
    )


def logs_response(rejected_log_records: int, error_message: str = "") -> ExportLogsServiceResponse:
    """The answer to ``/v1/logs``; ``partial_success`` is set only when something was rejected or needs saying."""
    if not rejected_log_records and not error_message:
        return ExportLogsServiceResponse()
    return ExportLogsServiceResponse(
        partial_success=ExportLogsPartialSuccess(rejected_log_records=rejected_log_records, error_message=error_message)
    )


def response_body(pb2_response: Message, content_type: str | None) -> tuple[bytes, str]:
    """The response encoded as the request was (OTLP/HTTP answers in the request's encoding), with its Content-Type."""
    if media_type(content_type) == PROTOBUF:
        return pb2_response.SerializeToString(), PROTOBUF
    return json_format.MessageToJson(pb2_response, indent=None).encode(), "application/json"
