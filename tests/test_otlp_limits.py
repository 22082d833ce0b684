"""OTLP requests holding more items than the limit are refused before any item is decoded (413, google.rpc.Status)."""

from __future__ import annotations

import os

from fastapi.testclient import TestClient
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from sqlalchemy import Engine

from fernando_telemetry.composition.wiring import build
from fernando_telemetry.core.otlp import item_count
from fernando_telemetry.settings import Settings
from tests.ingest_fixtures import make_tenant

LIMIT = 20
NOW_NS = 1_700_000_000_000_000_000


def _traces(spans: int) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(spans):
        scope.spans.append(
            Span(
                trace_id=os.urandom(16),
                span_id=os.urandom(8),
                name=f"op-{i}",
                start_time_unix_nano=NOW_NS,
                end_time_unix_nano=NOW_NS + 1000,
            )
        )
    return request


def test_items_are_counted_per_signal() -> None:
    assert item_count(_traces(7)) == 7
    metrics = ExportMetricsServiceRequest()
    scope = metrics.resource_metrics.add().scope_metrics.add()
    gauge = Metric(name="g")
    gauge.gauge.data_points.extend(NumberDataPoint(as_double=i) for i in range(5))
    counter = Metric(name="c")
    counter.sum.data_points.extend(NumberDataPoint(as_int=i) for i in range(3))
    scope.metrics.extend([gauge, counter])
    assert item_count(metrics) == 8
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.extend(LogRecord() for _ in range(4))
    assert item_count(logs) == 4


def test_a_request_over_the_limit_is_refused_whole_and_one_at_the_limit_lands(committed_engine: Engine) -> None:
    tenant = make_tenant(committed_engine)
    wiring = build(Settings(otlp_max_items_per_request=LIMIT), engine=committed_engine)
    wiring.start()
    try:
        with TestClient(wiring.app) as client:
            headers = {"Authorization": f"Bearer {tenant.ingest_key}", "Content-Type": "application/x-protobuf"}
            refused = client.post("/v1/traces", content=_traces(LIMIT + 1).SerializeToString(), headers=headers)
            assert refused.status_code == 413
            status = status_pb2.Status.FromString(refused.content)
            assert f"{LIMIT + 1} items" in status.message and f"at most {LIMIT}" in status.message
            accepted = client.post("/v1/traces", content=_traces(LIMIT).SerializeToString(), headers=headers)
            assert accepted.status_code == 200, accepted.content
    finally:
        wiring.stop()
