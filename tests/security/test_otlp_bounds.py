"""Work bounded by what is stored, not by what is sent: tiny OTLP bodies that decompress into millions of histogram
buckets, one resource sent over thousands of spans, oversize native ``buckets``/``samples``.

Each test performs the attack against the real app and real PostgreSQL and checks the outcome (timings printed).
"""

from __future__ import annotations

import gzip
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, NumberDataPoint
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from sqlalchemy import Engine, text

from fernando_telemetry.composition.wiring import build
from fernando_telemetry.core.ingest.common import IngestBounds
from fernando_telemetry.settings import Settings
from tests.ingest_fixtures import make_tenant

PROTOBUF = {"Content-Type": "application/x-protobuf"}
ATTACK_BUCKETS = 9_000_000


def _now_ns() -> int:
    return time.time_ns()


@pytest.fixture()
def default_server(committed_engine: Engine) -> Iterator[str]:
    """The app with the default settings (10 MB decompressed bodies, as ``serve`` runs) behind uvicorn on a free port."""
    wiring = build(Settings(), engine=committed_engine)
    wiring.start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(wiring.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        wiring.stop()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _exponential_bomb(name: str) -> bytes:
    """One delta exponential-histogram point whose positive side holds ``ATTACK_BUCKETS`` buckets, gzipped."""
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = name
    metric.exponential_histogram.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    point = metric.exponential_histogram.data_points.add()
    point.time_unix_nano = _now_ns()
    point.count = 1
    point.sum = 1.0
    point.scale = 0
    point.positive.bucket_counts.extend(bytes(ATTACK_BUCKETS))  # zeros: one byte each, next to nothing gzipped
    point.positive.bucket_counts[-1] = 1
    return gzip.compress(request.SerializeToString(), compresslevel=9)


def _gauge(name: str) -> bytes:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = name
    metric.gauge.data_points.append(NumberDataPoint(time_unix_nano=_now_ns(), as_double=1.0))
    return request.SerializeToString()


def test_an_exponential_histogram_of_nine_million_buckets_is_refused_before_its_buckets_are_read(
    default_server: str, committed_engine: Engine
) -> None:
    attacker, neighbour = make_tenant(committed_engine), make_tenant(committed_engine)
    name = f"bomb_{uuid.uuid4().hex[:8]}"
    bomb = _exponential_bomb(name)
    print(f"\nattack body: {len(bomb)} bytes gzipped, {ATTACK_BUCKETS} buckets")
    answers: list[httpx.Response] = []

    def attack() -> None:
        headers = {**_auth(attacker.ingest_key), **PROTOBUF, "Content-Encoding": "gzip"}
        answers.append(httpx.post(f"{default_server}/v1/metrics", content=bomb, headers=headers, timeout=120))

    started = time.monotonic()
    attackers = [threading.Thread(target=attack) for _ in range(2)]
    for thread in attackers:
        thread.start()
    # the neighbour's ingest and read while the two attacks run
    probe_name = f"probe_{uuid.uuid4().hex[:8]}"
    probe_started = time.monotonic()
    probe = httpx.post(
        f"{default_server}/v1/metrics",
        content=_gauge(probe_name),
        headers={**_auth(neighbour.ingest_key), **PROTOBUF},
        timeout=120,
    )
    read = httpx.get(f"{default_server}/api/v1/metrics/names", headers=_auth(neighbour.read_key), timeout=120)
    print(f"neighbour's probe answered in {time.monotonic() - probe_started:.3f} s")
    for thread in attackers:
        thread.join(120)
    print(f"both attacks answered after {time.monotonic() - started:.3f} s")
    assert probe.status_code == 200, probe.content
    assert ExportMetricsServiceResponse.FromString(probe.content).partial_success.rejected_data_points == 0
    assert read.status_code in (200, 404), read.content  # answered, whatever the route says
    assert len(answers) == 2
    for answer in answers:
        assert answer.status_code == 200, answer.content
        rejected = ExportMetricsServiceResponse.FromString(answer.content).partial_success
        assert rejected.rejected_data_points == 1
        assert "positive.bucket_counts" in rejected.error_message and f"{ATTACK_BUCKETS} buckets" in rejected.error_message
    with committed_engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM system_metrics WHERE metric_name = :n"), {"n": name}).scalar()
        probed = connection.execute(
            text("SELECT count(*) FROM system_metrics WHERE metric_name = :n"), {"n": probe_name}
        ).scalar()
    assert stored == 0 and probed == 1


def test_a_point_at_the_bucket_limit_lands_and_one_over_it_is_rejected_naming_the_field(
    client: TestClient, committed_engine: Engine
) -> None:
    tenant = make_tenant(committed_engine)
    name = f"explicit_{uuid.uuid4().hex[:8]}"
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = name
    metric.histogram.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    limit = Settings().ingest_max_histogram_bounds
    for bounds in (limit, limit + 1):
        point = metric.histogram.data_points.add(time_unix_nano=_now_ns(), count=1, sum=2.0)
        point.explicit_bounds.extend(float(i + 1) for i in range(bounds))
        point.bucket_counts.extend([0, 1] + [0] * (bounds - 1))
    answer = client.post("/v1/metrics", content=request.SerializeToString(), headers={**_auth(tenant.ingest_key), **PROTOBUF})
    assert answer.status_code == 200, answer.content
    partial = ExportMetricsServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_data_points == 1
    assert "data point 1: explicit_bounds" in partial.error_message and f"at most {limit}" in partial.error_message
    with committed_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM system_metrics WHERE metric_name = :n"), {"n": name}).scalar() == 1


def _resource_request(spans: int, resource_bytes: int, service: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attributes = resource_spans.resource.attributes
    attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    for i in range(resource_bytes // 1000):
        # random text: PostgreSQL's compression must not hide what a copy per span would cost
        attributes.append(KeyValue(key=f"padding.{i}", value=AnyValue(string_value=os.urandom(500).hex())))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "s" * 5000  # clipped: copied into every span's attributes
    start = _now_ns()
    for i in range(spans):
        scope.spans.append(
            Span(
                trace_id=os.urandom(16),
                span_id=os.urandom(8),
                name=f"op{i}",
                start_time_unix_nano=start,
                end_time_unix_nano=start + 1,
            )
        )
    return request


def test_a_large_resource_over_many_spans_is_stored_once(default_server: str, committed_engine: Engine) -> None:
    """One 60 KB resource over 2,000 spans through real OTLP/HTTP protobuf: one shared row (cut to
    ``max_resource_chars`` once), ``{}`` in each span's own column, and the trace API returns it whole for each span."""
    tenant = make_tenant(committed_engine)
    service = f"svc-{uuid.uuid4().hex[:8]}"
    spans = 2_000
    body = _resource_request(spans, 60_000, service).SerializeToString()
    started = time.monotonic()
    answer = httpx.post(
        f"{default_server}/v1/traces", content=body, headers={**_auth(tenant.ingest_key), **PROTOBUF}, timeout=120
    )
    print(f"\n{spans} spans under a 60 KB resource ({len(body)} bytes) answered in {time.monotonic() - started:.3f} s")
    assert answer.status_code == 200, answer.content
    assert ExportTraceServiceResponse.FromString(answer.content).partial_success.rejected_spans == 0
    max_chars = Settings().otlp_max_resource_chars
    with committed_engine.connect() as connection:
        spans_side = connection.execute(
            text(
                "SELECT count(*) AS n, count(DISTINCT resource_id) AS keys, bool_and(resource = '{}') AS empty,"
                " sum(pg_column_size(resource)) AS inline_bytes,"
                " max(length(attributes->>'otel.scope.name')) AS scope_chars,"
                " (array_agg(trace_id))[1:3] AS some_traces"
                " FROM traces WHERE service_name = :s"
            ),
            {"s": service},
        ).one()
        shared = connection.execute(
            text(
                "SELECT count(*) AS n, sum(pg_column_size(attributes)) AS bytes, max(length(attributes::text)) AS chars,"
                " (array_agg(attributes))[1] AS attributes FROM telemetry_resources WHERE license_id = :l"
            ),
            {"l": tenant.license_id},
        ).one()
    stored = spans_side.inline_bytes + shared.bytes
    print(
        f"stored resource: {stored} bytes ({spans_side.inline_bytes} in {spans_side.n} span rows + {shared.bytes} in "
        f"{shared.n} shared row); a copy per span would be {shared.bytes * spans} bytes"
    )
    assert spans_side.n == spans and spans_side.keys == 1 and spans_side.empty
    assert shared.n == 1
    # about one resource: the shared row (cut to the per-resource limit) and a few bytes of '{}' per span
    assert shared.chars <= max_chars * 1.2  # jsonb's own spacing only
    assert stored <= shared.bytes + spans * 8
    assert shared.attributes["service.name"] == service and shared.attributes["fernando.dropped_attributes_count"] > 0
    assert spans_side.scope_chars == IngestBounds().max_scope_chars  # the 5,000-character scope name clipped
    for trace_id in spans_side.some_traces:
        read = httpx.get(f"{default_server}/api/v1/traces/{trace_id}", headers=_auth(tenant.read_key), timeout=30)
        assert read.status_code == 200, read.content
        assert [root["resource"] for root in read.json()["roots"]] == [shared.attributes]


def test_native_samples_and_buckets_over_their_limits_are_rejected_naming_the_field(
    client: TestClient, committed_engine: Engine
) -> None:
    tenant = make_tenant(committed_engine)
    name = f"native_{uuid.uuid4().hex[:8]}"
    settings = Settings()
    too_many_bounds = settings.ingest_max_histogram_bounds + 1
    items = [
        {"metric_name": name, "metric_type": "histogram", "samples": [1.0] * (settings.ingest_max_samples + 1)},
        {
            "metric_name": name,
            "metric_type": "histogram",
            "value": 1.0,
            "buckets": {"bounds": [float(i) for i in range(too_many_bounds)], "counts": [1] * (too_many_bounds + 1)},
        },
        {"metric_name": name, "metric_type": "histogram", "samples": [1.0] * settings.ingest_max_samples},
    ]
    started = time.monotonic()
    answer = client.post("/api/v1/system-metrics", json={"metrics": items}, headers=_auth(tenant.ingest_key))
    print(f"\nnative samples/buckets answered in {time.monotonic() - started:.3f} s")
    assert answer.status_code in (200, 207), answer.content
    body = answer.json()
    assert body["accepted"] == 1
    rejected = {r["index"]: r for r in body["rejected"]}
    assert rejected[0]["field"] == "samples" and f"at most {settings.ingest_max_samples}" in rejected[0]["reason"]
    assert rejected[1]["field"] == "buckets" and f"at most {settings.ingest_max_histogram_bounds}" in rejected[1]["reason"]
