"""OTLP/HTTP receivers, fed by the official OpenTelemetry Python SDK and by hand-written requests."""

from __future__ import annotations

import gzip
import json
import logging
import time
import uuid

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry import trace as trace_api
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from sqlalchemy import Engine, text

from tests.ingest_fixtures import Tenant, make_tenant


@pytest.fixture()
def engine(committed_engine: Engine) -> Engine:
    """These tests commit: they use the committed-writes database, never the shared rolled-back one."""
    return committed_engine


@pytest.fixture()
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine)


def _rows(engine: Engine, sql: str, **params: object) -> list[dict]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text(sql), params)]


def _resource(service: str) -> Resource:
    return Resource.create(
        {
            "service.name": service,
            "host.name": "otel-host-1",
            "service.instance.id": "i-7",
            "deployment.environment.name": "staging",
        }
    )


class TestOfficialSdk:
    def test_spans_land_field_by_field(self, live_server: str, tenant: Tenant, engine: Engine) -> None:
        """Spans exported by the OTel SDK's OTLP/HTTP exporter are stored with every mapped column."""
        service = "svc-" + uuid.uuid4().hex[:8]
        provider = TracerProvider(resource=_resource(service))
        exporter = OTLPSpanExporter(endpoint=f"{live_server}/v1/traces", headers={"Authorization": f"Bearer {tenant.ingest_key}"})
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("tests")
        with tracer.start_as_current_span("GET /cart/{id}", kind=trace_api.SpanKind.SERVER) as root:
            root.set_attribute("http.request.method", "GET")
            root.set_attribute("http.route", "/cart/{id}")
            root.set_attribute("http.response.status_code", 500)
            root.set_attribute("enduser.id", tenant.user_id)
            with tracer.start_as_current_span("db.query", kind=trace_api.SpanKind.CLIENT) as child:
                try:
                    raise ValueError("connection reset")
                except ValueError as exc:
                    child.record_exception(exc)
                    child.set_status(trace_api.Status(trace_api.StatusCode.ERROR, "query failed"))
        provider.shutdown()
        rows = {
            r["operation_name"]: r
            for r in _rows(
                engine,
                # the resource is stored once in telemetry_resources; the span keeps {} in its own column
                "SELECT t.*, COALESCE(r.attributes, t.resource) AS shared_resource FROM traces t "
                "LEFT JOIN telemetry_resources r ON r.resource_id = t.resource_id AND r.license_id = t.license_id "
                "WHERE t.service_name = :s",
                s=service,
            )
        }
        assert set(rows) == {"GET /cart/{id}", "db.query"}
        root_row, child_row = rows["GET /cart/{id}"], rows["db.query"]
        root_context = root.get_span_context()
        assert root_row["trace_id"] == f"{root_context.trace_id:032x}"
        assert root_row["span_id"] == f"{root_context.span_id:016x}"
        assert root_row["parent_span_id"] is None
        assert child_row["parent_span_id"] == root_row["span_id"] and child_row["trace_id"] == root_row["trace_id"]
        assert (root_row["span_kind"], child_row["span_kind"]) == ("server", "client")
        assert (root_row["http_method"], root_row["http_route"], root_row["status_code"]) == ("GET", "/cart/{id}", 500)
        assert root_row["user_id"] == tenant.user_id and root_row["license_id"] == tenant.license_id
        assert root_row["host_name"] == "otel-host-1" and root_row["environment"] == "staging"
        assert root_row["shared_resource"]["service.name"] == service and root_row["resource"] == {}
        assert child_row["resource_id"] == root_row["resource_id"] is not None
        assert child_row["status"] == "error" and child_row["status_message"] == "query failed"
        assert (child_row["error_type"], child_row["error_message"]) == ("ValueError", "connection reset")
        assert child_row["span_events"][0]["name"] == "exception"
        assert root_row["duration_ms"] >= child_row["duration_ms"] > 0
        assert root_row["end_time"] > root_row["start_time"]

    def test_metrics_land_as_samples(self, live_server: str, tenant: Tenant, engine: Engine) -> None:
        """Counters, gauges and histograms from the OTel SDK become system_metrics rows with percentiles."""
        service = "svc-" + uuid.uuid4().hex[:8]
        exporter = OTLPMetricExporter(
            endpoint=f"{live_server}/v1/metrics", headers={"Authorization": f"Bearer {tenant.ingest_key}"}
        )
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
        provider = MeterProvider(resource=_resource(service), metric_readers=[reader])
        meter = provider.get_meter("tests")
        meter.create_counter("orders.placed", unit="1").add(7, {"region": "eu"})
        histogram = meter.create_histogram("request.duration", unit="ms")
        for value in range(1, 101):
            histogram.record(float(value), {"route": "/cart"})
        meter.create_gauge("queue.depth").set(42, {"queue": "emails"})
        provider.shutdown()
        rows = {r["metric_name"]: r for r in _rows(engine, "SELECT * FROM system_metrics WHERE service_name = :s", s=service)}
        assert set(rows) == {"orders.placed", "request.duration", "queue.depth"}
        assert (rows["orders.placed"]["metric_type"], rows["orders.placed"]["value"], rows["orders.placed"]["labels"]) == (
            "counter",
            7.0,
            {"region": "eu"},
        )
        assert (rows["queue.depth"]["metric_type"], rows["queue.depth"]["value"]) == ("gauge", 42.0)
        duration = rows["request.duration"]
        assert duration["metric_type"] == "histogram" and duration["sample_count"] == 100
        assert duration["value"] == pytest.approx(50.5)  # the mean: sum / count
        assert duration["p50"] == pytest.approx(50, abs=5) and duration["p99"] == pytest.approx(99, abs=5)
        assert duration["unit"] == "ms" and duration["host_name"] == "otel-host-1" and duration["instance_id"] == "i-7"
        assert duration["license_id"] == tenant.license_id
        # the first export of a stream holds everything since the SDK started: its distribution and exact extremes
        assert (sum(duration["sketch_counts"]), duration["min_value"], duration["max_value"]) == (100, 1.0, 100.0)
        assert rows["orders.placed"]["start_time"] is not None and rows["orders.placed"]["cumulative_value"] == 7.0

    def test_logs_land_as_events(self, live_server: str, tenant: Tenant, engine: Engine) -> None:
        """Log records become telemetry_events; ERROR and above are error_events."""
        service = "svc-" + uuid.uuid4().hex[:8]
        provider = LoggerProvider(resource=_resource(service))
        exporter = OTLPLogExporter(endpoint=f"{live_server}/v1/logs", headers={"Authorization": f"Bearer {tenant.ingest_key}"})
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = logging.getLogger("otlp-test-" + service)
        logger.propagate = False
        logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
        logger.setLevel(logging.INFO)
        logger.info("cache warmed")
        logger.error("payment declined")
        provider.shutdown()
        rows = _rows(
            engine, "SELECT * FROM telemetry_events WHERE payload->>'service_name' = :s ORDER BY event_timestamp", s=service
        )
        assert [(r["event_name"], r["event_type"], r["source"]) for r in rows] == [
            ("cache warmed", "system_event", "otlp"),
            ("payment declined", "error_event", "otlp"),
        ]
        assert rows[1]["payload"]["severity_number"] == SeverityNumber.ERROR.value
        assert rows[0]["license_id"] == tenant.license_id and rows[0]["environment"] == "staging"


def _json_span(trace_id: str, span_id: str, name: str, start_ns: int) -> dict:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 2,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": start_ns + 5_000_000,
        "attributes": [{"key": "http.route", "value": {"stringValue": "/json"}}],
        "futureField": {"x": 1},
    }


class TestHandWritten:
    def test_json_request_with_gzip_and_partial_success(self, live_server: str, tenant: Tenant, engine: Engine) -> None:
        """OTLP/JSON (hex ids, int64 as string or number, unknown fields) gzip-encoded; a bad span is reported, the rest land."""
        trace_id = uuid.uuid4().hex
        now_ns = time.time_ns()
        body = {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                    "scopeSpans": [
                        {
                            "spans": [
                                _json_span(trace_id, "00000000000000a1", "good", now_ns),
                                _json_span(trace_id, "0000000000000000", "bad", now_ns),
                            ]
                        }
                    ],
                }
            ]
        }
        response = httpx.post(
            f"{live_server}/v1/traces",
            content=gzip.compress(json.dumps(body).encode()),
            headers={
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Authorization": f"Bearer {tenant.ingest_key}",
            },
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        partial = response.json()["partialSuccess"]
        assert partial["rejectedSpans"] == "1"
        assert "span 1" in partial["errorMessage"] and "all zeros" in partial["errorMessage"]
        rows = _rows(engine, "SELECT operation_name, span_kind, http_route FROM traces WHERE trace_id = :t", t=trace_id)
        assert rows == [{"operation_name": "good", "span_kind": "server", "http_route": "/json"}]

    def test_full_success_is_an_empty_response_in_the_request_encoding(self, live_server: str, tenant: Tenant) -> None:
        """A protobuf request with nothing rejected gets an empty protobuf ExportTraceServiceResponse."""
        request = ExportTraceServiceRequest()
        span = request.resource_spans.add().scope_spans.add().spans.add()
        span.trace_id, span.span_id, span.name = uuid.uuid4().bytes, uuid.uuid4().bytes[:8], "pb"
        span.start_time_unix_nano = time.time_ns()
        span.end_time_unix_nano = span.start_time_unix_nano + 1000
        response = httpx.post(
            f"{live_server}/v1/traces",
            content=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {tenant.ingest_key}"},
        )
        assert response.status_code == 200 and response.headers["content-type"] == "application/x-protobuf"
        decoded = ExportTraceServiceResponse.FromString(response.content)
        assert not decoded.HasField("partial_success")

    @pytest.mark.parametrize(
        ("content", "content_type", "status"),
        [
            (b"\x0a\xff\xff\xff", "application/x-protobuf", 400),
            (b"{not json", "application/json", 400),
            (b"hello", "text/plain", 415),
        ],
        ids=["truncated-protobuf", "bad-json", "text-plain"],
    )
    def test_bad_requests_get_a_status_body(
        self, live_server: str, tenant: Tenant, content: bytes, content_type: str, status: int
    ) -> None:
        """Undecodable bodies are 400 and unknown content types 415, with a google.rpc.Status saying why."""
        response = httpx.post(
            f"{live_server}/v1/traces",
            content=content,
            headers={"Content-Type": content_type, "Authorization": f"Bearer {tenant.ingest_key}"},
        )
        assert response.status_code == status
        if content_type == "application/x-protobuf":
            message = status_pb2.Status.FromString(response.content).message
        else:
            message = response.json()["message"]
        assert message

    def test_missing_key_is_401_with_a_status_body(self, live_server: str) -> None:
        """Without a key the receiver answers 401 and a Status in the request's encoding."""
        response = httpx.post(f"{live_server}/v1/metrics", content=b"", headers={"Content-Type": "application/x-protobuf"})
        assert response.status_code == 401
        assert status_pb2.Status.FromString(response.content).code == 16  # UNAUTHENTICATED
