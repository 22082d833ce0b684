"""Real OpenTelemetry SDK output decodes: spans, metrics and logs recorded by the Python SDK and encoded by its OTLP encoders.

The SDK stamps data with the real clock, so these tests (and only these) decode with ``now`` from the clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, format_span_id, format_trace_id, set_span_in_context

from fernando_telemetry.core.ingest import events as native_events
from fernando_telemetry.core.ingest import spans as native_spans
from fernando_telemetry.core.otlp import (
    JSON,
    PROTOBUF,
    event_rows_from_logs_request,
    metric_rows_from_request,
    parse_logs_request,
    parse_metrics_request,
    parse_traces_request,
    spans_from_request,
)
from tests.core.otlp.support import context
from tests.core.otlp.test_metrics import stored
from tests.core.otlp.test_requests import otlp_json

SDK_RESOURCE = Resource.create(
    {"service.name": "shop-api", "service.version": "3.1.0", "host.name": "web-7", "deployment.environment.name": "staging"}
)


def clock_context() -> Any:
    return context(now=datetime.now(UTC))


@pytest.fixture
def sdk_spans() -> Iterator[tuple[ReadableSpan, ...]]:
    """A server span with an HTTP request, a recorded exception and an error status, and a client child span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=SDK_RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop.http", "0.9")
    with tracer.start_as_current_span(
        "POST /checkout",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "POST",
            "http.route": "/checkout",
            "http.response.status_code": 502,
            "enduser.id": "u-42",
        },
    ) as server_span:
        with tracer.start_as_current_span("GET payments", kind=SpanKind.CLIENT, attributes={"http.method": "GET"}):
            pass
        try:
            raise ConnectionError("payment service unreachable")
        except ConnectionError as exc:
            server_span.record_exception(exc)
            server_span.set_status(Status(StatusCode.ERROR, "upstream failed"))
    yield exporter.get_finished_spans()
    provider.shutdown()


class TestSdkSpans:
    def rows(self, sdk_spans: tuple[ReadableSpan, ...], content_type: str = PROTOBUF) -> dict[str, dict[str, Any]]:
        pb2_request = encode_spans(sdk_spans)
        body = pb2_request.SerializeToString() if content_type == PROTOBUF else otlp_json(pb2_request)
        batch = spans_from_request(parse_traces_request(body, content_type), clock_context())
        assert (batch.rejections, batch.message) == ([], "")
        return {row["operation_name"]: row for row in (dict(zip(native_spans.COLUMNS, r, strict=True)) for r in batch.rows)}

    def test_sdk_spans_decode_with_ids_tree_and_timing(self, sdk_spans: tuple[ReadableSpan, ...]) -> None:
        """The SDK's spans keep their ids, parent link, kind, service and exact duration."""
        rows = self.rows(sdk_spans)
        server = next(s for s in sdk_spans if s.name == "POST /checkout")
        server_row, client_row = rows["POST /checkout"], rows["GET payments"]
        assert server_row["trace_id"] == format_trace_id(server.context.trace_id)
        assert server_row["span_id"] == format_span_id(server.context.span_id)
        assert server_row["parent_span_id"] is None
        assert client_row["parent_span_id"] == server_row["span_id"]
        assert (server_row["span_kind"], client_row["span_kind"]) == ("server", "client")
        assert server_row["duration_ms"] == pytest.approx((server.end_time - server.start_time) / 1e6)
        assert (server_row["service_name"], server_row["host_name"], server_row["environment"]) == (
            "shop-api",
            "web-7",
            "staging",
        )

    def test_sdk_status_http_exception_and_user_decode(self, sdk_spans: tuple[ReadableSpan, ...]) -> None:
        """Status, HTTP fields, the recorded exception and the end user come through from the SDK's encoding."""
        row = self.rows(sdk_spans)["POST /checkout"]
        assert (row["status"], row["status_message"]) == ("error", "upstream failed")
        assert (row["http_method"], row["http_route"], row["status_code"]) == ("POST", "/checkout", 502)
        assert (row["error_type"], row["error_message"]) == ("ConnectionError", "payment service unreachable")
        assert (row["user_id"], row["license_id"]) == ("u-42", 7)
        assert json.loads(row["span_events"])[0]["name"] == "exception"
        assert json.loads(row["resource"])["telemetry.sdk.language"] == "python"
        assert json.loads(row["attributes"])["otel.scope.name"] == "shop.http"

    def test_sdk_spans_as_otlp_json_give_the_same_rows(self, sdk_spans: tuple[ReadableSpan, ...]) -> None:
        """The OTLP/JSON form of the SDK's request decodes to the same rows as its protobuf form."""
        assert self.rows(sdk_spans, JSON) == self.rows(sdk_spans, PROTOBUF)


class TestSdkMetrics:
    def test_sdk_instruments_decode_to_typed_rows(self) -> None:
        """Counter, up-down counter, gauge, histogram and exponential histogram from the SDK become typed rows
        (cumulative, the SDK's default: as the first points of their streams, everything since the SDK started)."""
        reader = InMemoryMetricReader()
        provider = MeterProvider(
            resource=SDK_RESOURCE,
            metric_readers=[reader],
            views=[View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation())],
        )
        meter = provider.get_meter("shop.metrics")
        meter.create_counter("orders", unit="{order}").add(3, {"plan": "pro"})
        meter.create_up_down_counter("carts.open").add(-2)
        meter.create_gauge("queue.depth").set(17)
        duration = meter.create_histogram("checkout.duration", unit="ms")
        for value in (5, 15, 15, 40):
            duration.record(value)
        payload = meter.create_histogram("payload.size", unit="By")
        for value in (1, 2, 4):
            payload.record(value)
        body = encode_metrics(reader.get_metrics_data()).SerializeToString()
        provider.shutdown()

        batch = metric_rows_from_request(parse_metrics_request(body, PROTOBUF), clock_context())
        assert batch.rejections == []
        rows = {row["metric_name"]: row for row in (stored(r) for r in batch.rows) if row is not None}
        assert (rows["orders"]["metric_type"], rows["orders"]["value"], rows["orders"]["unit"]) == ("counter", 3.0, "{order}")
        assert json.loads(rows["orders"]["labels"]) == {"plan": "pro"}
        assert (rows["carts.open"]["metric_type"], rows["carts.open"]["value"]) == ("gauge", -2.0)
        assert (rows["queue.depth"]["metric_type"], rows["queue.depth"]["value"]) == ("gauge", 17.0)
        assert rows["orders"]["instance_id"] == SDK_RESOURCE.attributes["service.instance.id"]
        assert rows["orders"]["start_time"] is not None and rows["orders"]["cumulative_value"] == 3.0

        # default bounds (0, 5, 10, 25, 50, ...), min 5, max 40: buckets [5,5]:1, [10,25]:2, [25,40]:1
        histogram = rows["checkout.duration"]
        assert (histogram["metric_type"], histogram["value"], histogram["sample_count"]) == ("histogram", 18.75, 4)
        assert (histogram["p50"], histogram["p90"], histogram["p95"], histogram["p99"]) == pytest.approx((17.5, 34, 37, 39.4))
        assert (histogram["min_value"], histogram["max_value"], sum(histogram["sketch_counts"])) == (5, 40, 4)

        exponential = rows["payload.size"]
        assert (exponential["metric_type"], exponential["sample_count"]) == ("histogram", 3)
        assert exponential["value"] == pytest.approx(7 / 3)
        assert exponential["p50"] == pytest.approx(2, rel=0.02)
        assert 2 < exponential["p99"] <= 4


class TestSdkLogs:
    def test_sdk_log_records_decode_to_events_in_their_span(self) -> None:
        """A log record emitted by the SDK inside a span becomes an event carrying that span's ids."""
        exporter = InMemoryLogRecordExporter()
        logger_provider = LoggerProvider(resource=SDK_RESOURCE)
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        tracer_provider = TracerProvider(resource=SDK_RESOURCE)
        logger = logger_provider.get_logger("shop.audit")
        with tracer_provider.get_tracer("t").start_as_current_span("job") as sdk_span:
            logger.emit(
                body="refund issued",
                severity_number=SeverityNumber.WARN,
                severity_text="WARN",
                attributes={"user.id": "u-8", "amount": 12.5},
                context=set_span_in_context(sdk_span),
            )
            logger.emit(body={"detail": "card expired"}, severity_number=SeverityNumber.ERROR, event_name="payment.failed")
        body = encode_logs(exporter.get_finished_logs()).SerializeToString()
        logger_provider.shutdown()
        tracer_provider.shutdown()

        batch = event_rows_from_logs_request(parse_logs_request(body, PROTOBUF), clock_context())
        assert batch.rejections == []
        warning, error = (dict(zip(native_events.COLUMNS, r, strict=True)) for r in batch.rows)
        assert (warning["event_name"], warning["event_type"], warning["user_id"]) == ("refund issued", "system_event", "u-8")
        assert warning["trace_id"] == format_trace_id(sdk_span.get_span_context().trace_id)
        assert warning["span_id"] == format_span_id(sdk_span.get_span_context().span_id)
        assert (warning["environment"], warning["app_version"]) == ("staging", "3.1.0")
        assert json.loads(warning["payload"])["attributes"] == {"user.id": "u-8", "amount": 12.5}
        assert (error["event_name"], error["event_type"]) == ("payment.failed", "error_event")
        assert json.loads(error["payload"])["body"] == {"detail": "card expired"}
