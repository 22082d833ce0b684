"""Builders for the OTLP tests: a fixed decode context and pb2 requests made with the real ``opentelemetry.proto`` classes."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, ResourceMetrics, ScopeMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from fernando_telemetry.core.ingest.common import DecodeContext

__all__ = [
    "NOW",
    "NOW_NS",
    "TRACE_ID",
    "SPAN_ID",
    "any_value",
    "context",
    "key_values",
    "logs_request",
    "metrics_request",
    "ns",
    "span",
    "traces_request",
]

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW_NS = int(NOW.timestamp()) * 10**9
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
RESOURCE = {"service.name": "checkout", "host.name": "web-1", "deployment.environment.name": "prod"}


def ns(moment: datetime) -> int:
    """Unix nanoseconds of an aware datetime (exact for whole microseconds)."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def _ids() -> Iterator[uuid.UUID]:
    for number in itertools.count(1):
        yield uuid.UUID(int=number)


def context(*, license_id: int | None = 7, is_admin: bool = False, now: datetime = NOW) -> DecodeContext:
    """A decode context at ``now`` accepting the last 30 days and the next hour, with numbered event ids."""
    ids = _ids()
    return DecodeContext(
        now=now,
        earliest=now - timedelta(days=30),
        latest=now + timedelta(hours=1),
        license_id=None if is_admin else license_id,
        is_admin=is_admin,
        new_id=lambda: next(ids),
        dump_json=lambda value: json.dumps(value, separators=(",", ":")),
    )


def any_value(value: Any) -> AnyValue:
    """A Python value as an ``AnyValue`` (dict -> kvlist, list -> array, bytes -> bytes)."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    if value is None:
        return AnyValue()
    raise TypeError(type(value))


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def span(**fields: Any) -> Span:
    """A valid server span starting one minute before ``NOW`` and lasting 250 ms, with ``fields`` overriding."""
    start = NOW_NS - 60 * 10**9
    values: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "name": "GET /orders/{id}",
        "kind": Span.SPAN_KIND_SERVER,
        "start_time_unix_nano": start,
        "end_time_unix_nano": start + 250_000_000,
    }
    attributes = fields.pop("attributes", {})
    values.update(fields)
    return Span(attributes=key_values(attributes), **values)


def traces_request(*spans: Span, resource: dict[str, Any] | None = None, scope: str = "") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=key_values(RESOURCE if resource is None else resource)),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name=scope), spans=list(spans))],
            )
        ]
    )


def metrics_request(*metrics: Metric, resource: dict[str, Any] | None = None) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(attributes=key_values(RESOURCE if resource is None else resource)),
                scope_metrics=[ScopeMetrics(metrics=list(metrics))],
            )
        ]
    )


def logs_request(*records: LogRecord, resource: dict[str, Any] | None = None, scope: str = "") -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=key_values(RESOURCE if resource is None else resource)),
                scope_logs=[ScopeLogs(scope=InstrumentationScope(name=scope), log_records=list(records))],
            )
        ]
    )
