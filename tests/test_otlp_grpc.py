"""OTLP/gRPC receiver: the official gRPC exporters, raw stubs for status codes and partial success, overload with
RetryInfo, ``serve`` with its port, and ``opentelemetry-instrument`` with its defaults around a FastAPI app."""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import psycopg
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry import trace as trace_api
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import MetricsServiceStub
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as Pb2Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from fernando_telemetry.api.otlp_grpc import RETRY_INFO_METADATA, STATUS_DETAILS_METADATA, OtlpGrpcReceiver
from fernando_telemetry.composition.wiring import Wiring, build
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.services import keys
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import libpq_url, make_engine, session_factory
from tests.ingest_fixtures import Tenant, make_tenant, new_token

WORKTREE = Path(__file__).resolve().parents[1]
MAX_MESSAGE_BYTES = 200_000


@pytest.fixture()
def engine(committed_engine: Engine) -> Engine:
    """These tests commit: they use the committed-writes database, never the shared rolled-back one."""
    return committed_engine


@pytest.fixture()
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _receiver(wiring: Wiring, *, sessions: sessionmaker | None = None) -> OtlpGrpcReceiver:
    receiver = OtlpGrpcReceiver(host="127.0.0.1", port=0, workers=4, max_concurrent_rpcs=16, max_message_bytes=MAX_MESSAGE_BYTES)
    return receiver.start(sessions=sessions or wiring.app.state.sessions, ingestor=wiring.ingestor)


@pytest.fixture()
def grpc_port(running_wiring: Wiring) -> Iterator[int]:
    """The OTLP/gRPC receiver on a free port, storing through the test app's ingestor and writer."""
    receiver = _receiver(running_wiring)
    try:
        yield receiver.port
    finally:
        receiver.stop(grace_s=2)


@contextmanager
def _served(engine: Engine, **settings: object) -> Iterator[tuple[Wiring, int]]:
    """A wiring of its own (``settings`` changed) with its writer running and the receiver in front of it."""
    wiring = build(Settings(ingest_max_body_bytes=MAX_MESSAGE_BYTES, **settings), engine=engine)  # type: ignore[arg-type]
    wiring.start()
    receiver = _receiver(wiring)
    try:
        yield wiring, receiver.port
    finally:
        receiver.stop(grace_s=2)
        wiring.stop()


def _rows(engine: Engine, sql: str, **params: object) -> list[dict]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text(sql), params)]


def _resource(service: str) -> Resource:
    return Resource.create({"service.name": service, "host.name": "grpc-host-1"})


def _spans_request(service: str, *names: str) -> ExportTraceServiceRequest:
    now_ns = time.time_ns()
    spans = [
        Span(
            trace_id=uuid.uuid4().bytes,
            span_id=os.urandom(8),
            name=name,
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=now_ns - 5_000_000,
            end_time_unix_nano=now_ns,
        )  # fmt: skip
        for name in names
    ]
    resource = Pb2Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])])


def _bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def _failure(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def _details(error: grpc.RpcError) -> tuple[status_pb2.Status, error_details_pb2.RetryInfo | None]:
    """The google.rpc.Status of grpc-status-details-bin and the RetryInfo among its details, if any."""
    trailing = dict(error.trailing_metadata() or ())
    pb2_status = status_pb2.Status.FromString(trailing[STATUS_DETAILS_METADATA])
    for detail in pb2_status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            pb2_retry_info = error_details_pb2.RetryInfo()
            detail.Unpack(pb2_retry_info)
            # the copy the OpenTelemetry Python exporter reads says the same
            assert error_details_pb2.RetryInfo.FromString(trailing[RETRY_INFO_METADATA]) == pb2_retry_info
            return pb2_status, pb2_retry_info
    assert RETRY_INFO_METADATA not in trailing
    return pb2_status, None


class TestOfficialExporters:
    def test_spans_land(self, grpc_port: int, tenant: Tenant, engine: Engine) -> None:
        """Spans sent by the SDK's OTLP/gRPC exporter (Bearer key in the authorization metadata) are stored."""
        service = "svc-" + uuid.uuid4().hex[:8]
        provider = TracerProvider(resource=_resource(service))
        exporter = OTLPSpanExporter(
            endpoint=f"http://127.0.0.1:{grpc_port}", insecure=True, headers={"authorization": f"Bearer {tenant.ingest_key}"}
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("tests")
        with tracer.start_as_current_span("GET /cart", kind=trace_api.SpanKind.SERVER) as root:
            root.set_attribute("http.response.status_code", 200)
            with tracer.start_as_current_span("db.query", kind=trace_api.SpanKind.CLIENT):
                pass
        provider.shutdown()
        rows = {r["operation_name"]: r for r in _rows(engine, "SELECT * FROM traces WHERE service_name = :s", s=service)}
        assert set(rows) == {"GET /cart", "db.query"}
        assert rows["GET /cart"]["trace_id"] == f"{root.get_span_context().trace_id:032x}"
        assert rows["db.query"]["parent_span_id"] == rows["GET /cart"]["span_id"]
        assert rows["GET /cart"]["license_id"] == tenant.license_id and rows["GET /cart"]["span_kind"] == "server"
        assert rows["GET /cart"]["host_name"] == "grpc-host-1"

    def test_metrics_land_gzip_and_x_api_key(self, grpc_port: int, tenant: Tenant, engine: Engine) -> None:
        """Metrics sent gzip-compressed, with the key in x-api-key, become system_metrics rows of the key's license."""
        service = "svc-" + uuid.uuid4().hex[:8]
        exporter = OTLPMetricExporter(
            endpoint=f"http://127.0.0.1:{grpc_port}", insecure=True, headers={"x-api-key": tenant.ingest_key},
            compression=grpc.Compression.Gzip,
        )  # fmt: skip
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
        provider = MeterProvider(resource=_resource(service), metric_readers=[reader])
        meter = provider.get_meter("tests")
        meter.create_counter("orders.placed").add(7, {"region": "eu"})
        histogram = meter.create_histogram("request.duration", unit="ms")
        for value in range(1, 101):
            histogram.record(float(value))
        meter.create_gauge("queue.depth").set(42)
        provider.shutdown()
        rows = _rows(engine, "SELECT * FROM system_metrics WHERE service_name = :s", s=service)
        assert {row["metric_name"] for row in rows} == {"orders.placed", "request.duration", "queue.depth"}
        assert {row["license_id"] for row in rows} == {tenant.license_id}
        gauge = next(row for row in rows if row["metric_name"] == "queue.depth")
        assert (gauge["metric_type"], gauge["value"]) == ("gauge", 42.0)
        assert next(row for row in rows if row["metric_name"] == "request.duration")["metric_type"] == "histogram"

    def test_logs_land_gzip(self, grpc_port: int, tenant: Tenant, engine: Engine) -> None:
        """Log records sent gzip-compressed become telemetry_events; ERROR is an error_event."""
        service = "svc-" + uuid.uuid4().hex[:8]
        provider = LoggerProvider(resource=_resource(service))
        exporter = OTLPLogExporter(
            endpoint=f"http://127.0.0.1:{grpc_port}", insecure=True, headers={"authorization": f"Bearer {tenant.ingest_key}"},
            compression=grpc.Compression.Gzip,
        )  # fmt: skip
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = logging.getLogger(f"tests.grpc.{service}")
        logger.propagate = False
        logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
        logger.setLevel(logging.INFO)
        logger.info("cart opened")
        logger.error("payment declined")
        provider.shutdown()
        rows = _rows(
            engine, "SELECT * FROM telemetry_events WHERE payload->>'service_name' = :s ORDER BY event_timestamp", s=service
        )
        assert [(r["event_name"], r["event_type"]) for r in rows] == [
            ("cart opened", "system_event"),
            ("payment declined", "error_event"),
        ]
        assert rows[1]["payload"]["severity_number"] == SeverityNumber.ERROR.value
        assert {row["license_id"] for row in rows} == {tenant.license_id}


class TestStatusCodes:
    def test_keys(self, grpc_port: int, tenant: Tenant, engine: Engine) -> None:
        """No key or an unknown one: UNAUTHENTICATED; a key without the ingest scope: PERMISSION_DENIED; x-api-key works."""
        service = "svc-" + uuid.uuid4().hex[:8]
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = TraceServiceStub(channel)
            request = _spans_request(service, "GET /")
            assert _failure(lambda: stub.Export(request)).code() == grpc.StatusCode.UNAUTHENTICATED
            unknown = _failure(lambda: stub.Export(request, metadata=_bearer(new_token())))
            assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED
            assert _details(unknown)[0].code == code_pb2.UNAUTHENTICATED
            denied = _failure(lambda: stub.Export(request, metadata=_bearer(tenant.read_key)))
            assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and "ingest" in (denied.details() or "")
            assert _rows(engine, "SELECT 1 FROM traces WHERE service_name = :s", s=service) == []
            answer = stub.Export(request, metadata=(("x-api-key", tenant.ingest_key),))
        assert answer == ExportTraceServiceResponse()  # full success: no partial_success
        assert len(_rows(engine, "SELECT 1 FROM traces WHERE service_name = :s", s=service)) == 1

    def test_partial_success_names_the_rejected_item(self, grpc_port: int, tenant: Tenant, engine: Engine) -> None:
        """A span without a name is rejected alone: rejected_spans 1 and a message naming it; the others are stored."""
        service = "svc-" + uuid.uuid4().hex[:8]
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            answer = TraceServiceStub(channel).Export(
                _spans_request(service, "GET /a", "", "GET /b"), metadata=_bearer(tenant.ingest_key)
            )
        assert answer.partial_success.rejected_spans == 1
        assert "span 1" in answer.partial_success.error_message and "name" in answer.partial_success.error_message
        stored = {
            r["operation_name"] for r in _rows(engine, "SELECT operation_name FROM traces WHERE service_name = :s", s=service)
        }
        assert stored == {"GET /a", "GET /b"}

    def test_metrics_and_logs_answer_their_partial_success(self, grpc_port: int, tenant: Tenant, engine: Engine) -> None:
        """MetricsService and LogsService count their own rejected items (data points, log records)."""
        now_ns = time.time_ns()
        service = "svc-" + uuid.uuid4().hex[:8]
        resource = Pb2Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
        points = [NumberDataPoint(time_unix_nano=now_ns, as_double=1.5), NumberDataPoint(time_unix_nano=1, as_double=2.0)]
        metrics = ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[
            ScopeMetrics(metrics=[Metric(name="temperature", gauge=Gauge(data_points=points))])])])  # fmt: skip
        records = [LogRecord(time_unix_nano=now_ns, body=AnyValue(string_value="ok")), LogRecord(time_unix_nano=1)]
        logs = ExportLogsServiceRequest(
            resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=records)])]
        )
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            metrics_answer = MetricsServiceStub(channel).Export(metrics, metadata=_bearer(tenant.ingest_key))
            logs_answer = LogsServiceStub(channel).Export(logs, metadata=_bearer(tenant.ingest_key))
        # a timestamp in 1970 is far outside the retention window: that item alone is refused
        assert metrics_answer.partial_success.rejected_data_points == 1
        assert "data point 1" in metrics_answer.partial_success.error_message
        assert logs_answer.partial_success.rejected_log_records == 1
        assert "log record 1" in logs_answer.partial_success.error_message
        assert [r["value"] for r in _rows(engine, "SELECT value FROM system_metrics WHERE service_name = :s", s=service)] == [1.5]

    def test_bad_protobuf_is_invalid_argument(self, grpc_port: int, tenant: Tenant) -> None:
        """Bytes that are not an ExportTraceServiceRequest: INVALID_ARGUMENT saying so (not INTERNAL)."""
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=None,
                response_deserializer=ExportTraceServiceResponse.FromString,
            )
            error = _failure(lambda: export(b"\x0a\xff\xff\xff\xff\x0f", metadata=_bearer(tenant.ingest_key)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid protobuf ExportTraceServiceRequest" in (error.details() or "")
        assert _details(error) == (status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=error.details()), None)

    def test_message_over_the_body_limit_is_resource_exhausted(self, grpc_port: int, tenant: Tenant) -> None:
        """A message bigger than the HTTP body limit is refused by gRPC itself with RESOURCE_EXHAUSTED."""
        request = _spans_request("svc-big", *[f"op-{i}-" + "x" * 1000 for i in range(MAX_MESSAGE_BYTES // 1000 + 10)])
        assert request.ByteSize() > MAX_MESSAGE_BYTES
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            error = _failure(lambda: TraceServiceStub(channel).Export(request, metadata=_bearer(tenant.ingest_key)))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    def test_too_many_items_is_invalid_argument(self, engine: Engine, tenant: Tenant) -> None:
        """More spans than otlp_max_items_per_request: INVALID_ARGUMENT naming the limit, nothing stored."""
        service = "svc-" + uuid.uuid4().hex[:8]
        with _served(engine, otlp_max_items_per_request=3) as (_, port), grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            request = _spans_request(service, "a", "b", "c", "d")
            error = _failure(lambda: TraceServiceStub(channel).Export(request, metadata=_bearer(tenant.ingest_key)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "4 items in one OTLP request; at most 3" in (error.details() or "")
        assert _rows(engine, "SELECT 1 FROM traces WHERE service_name = :s", s=service) == []


class TestOverload:
    def test_a_key_over_its_rate_gets_resource_exhausted_with_retry_info(self, engine: Engine, tenant: Tenant) -> None:
        """Over the key's rate: RESOURCE_EXHAUSTED with the wait in RetryInfo (what HTTP sends as Retry-After)."""
        service = "svc-" + uuid.uuid4().hex[:8]
        with (
            _served(engine, ingest_rate_limit_items_per_s=0.01) as (_, port),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = TraceServiceStub(channel)
            stub.Export(_spans_request(service, "first", "second"), metadata=_bearer(tenant.ingest_key))  # the burst
            error = _failure(lambda: stub.Export(_spans_request(service, "third"), metadata=_bearer(tenant.ingest_key)))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        pb2_status, pb2_retry_info = _details(error)
        assert pb2_status.code == code_pb2.RESOURCE_EXHAUSTED and "rate" in pb2_status.message
        assert pb2_retry_info is not None and pb2_retry_info.retry_delay.seconds >= 100  # 1 item at 0.01/s
        stored = {
            r["operation_name"] for r in _rows(engine, "SELECT operation_name FROM traces WHERE service_name = :s", s=service)
        }
        assert stored == {"first", "second"}

    def test_a_full_writer_answers_unavailable_with_retry_info(self, engine: Engine, tenant: Tenant) -> None:
        """While the writer holds rows it cannot commit (the table is locked) and its queue is full, a call is
        answered UNAVAILABLE with RetryInfo; the call already queued is stored once the lock goes."""
        service = "svc-" + uuid.uuid4().hex[:8]
        with _served(engine, ingest_max_rows_in_flight=1) as (_, port), grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = TraceServiceStub(channel)
            stub.Export(_spans_request(service, "warm-up"), metadata=_bearer(tenant.ingest_key))  # partitions known
            with psycopg.connect(libpq_url(engine.url.render_as_string(hide_password=False))) as locker:
                locker.execute("LOCK TABLE traces IN ACCESS EXCLUSIVE MODE")
                queued = stub.Export.future(_spans_request(service, "queued"), metadata=_bearer(tenant.ingest_key))
                _wait_for_lock_waiter(engine)
                error = _failure(lambda: stub.Export(_spans_request(service, "refused"), metadata=_bearer(tenant.ingest_key)))
                locker.rollback()
            assert queued.result(timeout=60) == ExportTraceServiceResponse()
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        pb2_status, pb2_retry_info = _details(error)
        assert pb2_status.code == code_pb2.UNAVAILABLE and "waiting to be written" in pb2_status.message
        assert pb2_retry_info is not None and pb2_retry_info.retry_delay.seconds >= 1
        stored = {
            r["operation_name"] for r in _rows(engine, "SELECT operation_name FROM traces WHERE service_name = :s", s=service)
        }
        assert stored == {"warm-up", "queued"}

    def test_a_database_that_is_down_answers_unavailable_with_retry_info(self, running_wiring: Wiring, tenant: Tenant) -> None:
        """The key lookup cannot reach the database: UNAVAILABLE with RetryInfo, never INTERNAL."""
        dead = make_engine(f"postgresql://postgres@127.0.0.1:{_free_port()}/none", pool_size=1, connect_timeout_s=2)
        receiver = _receiver(running_wiring, sessions=session_factory(dead))
        try:
            with grpc.insecure_channel(f"127.0.0.1:{receiver.port}") as channel:
                error = _failure(
                    lambda: TraceServiceStub(channel).Export(_spans_request("svc", "x"), metadata=_bearer(tenant.ingest_key))
                )
        finally:
            receiver.stop(grace_s=2)
            dead.dispose()
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        pb2_status, pb2_retry_info = _details(error)
        assert "database is unavailable" in pb2_status.message
        assert pb2_retry_info is not None and pb2_retry_info.retry_delay.seconds == 2


def _wait_for_lock_waiter(engine: Engine, timeout_s: float = 30) -> None:
    """Until a backend waits for a lock on ``traces`` (the writer's COPY of the queued call)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        waiting = _rows(
            engine,
            "SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND relation = 'traces'::regclass "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        if waiting[0]["n"]:
            return
        time.sleep(0.05)
    raise AssertionError("the writer never waited for the lock on traces")


class TestLifecycle:
    def test_a_taken_port_is_a_clear_error(self) -> None:
        """Binding a port something already listens on fails at once, naming the port and the option."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(InvalidInput, match=f"port {port} on 127.0.0.1 is already in use.*--otlp-grpc-port"):
                OtlpGrpcReceiver(host="127.0.0.1", port=port, workers=1, max_concurrent_rpcs=1, max_message_bytes=1024)

    def test_stop_releases_the_port(self, running_wiring: Wiring) -> None:
        """After stop the port is free again (a new receiver binds it)."""
        receiver = _receiver(running_wiring)
        port = receiver.port
        receiver.stop(grace_s=1)
        again = OtlpGrpcReceiver(host="127.0.0.1", port=port, workers=1, max_concurrent_rpcs=1, max_message_bytes=1024)
        again.stop(grace_s=0)

    def test_a_start_that_fails_after_binding_releases_the_port(self) -> None:
        """A receiver stopped without being started (the database was unreachable, say) frees its port too."""
        bound = OtlpGrpcReceiver(host="127.0.0.1", port=0, workers=1, max_concurrent_rpcs=1, max_message_bytes=1024)
        port = bound.port
        bound.stop(grace_s=5)
        again = OtlpGrpcReceiver(host="127.0.0.1", port=port, workers=1, max_concurrent_rpcs=1, max_message_bytes=1024)
        again.stop(grace_s=0)


@dataclass
class _Process:
    process: subprocess.Popen[str]

    def output(self) -> str:
        return self.process.stdout.read() if self.process.stdout else ""

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def _env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess importing this worktree's code, without OTEL_* settings of the caller."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OTEL_") and k not in ("DATABASE_URL", "FERNANDO_TELEMETRY_DATABASE_URL")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(WORKTREE / "src"), str(WORKTREE)])
    return env | extra


def _wait_http(url: str, process: subprocess.Popen[str], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited early with {process.returncode}: {process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in time")


def _ingest_key(database_url: str) -> tuple[int, str]:
    engine = make_engine(database_url, pool_size=1)
    try:
        with session_factory(engine).begin() as session:
            license_id = keys.create_license(session, name=f"grpc-{uuid.uuid4().hex[:6]}")
            return license_id, keys.create_key(session, license_id=license_id, scopes=["ingest"], new_token=new_token).token
    finally:
        engine.dispose()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return True
    except ConnectionRefusedError:
        return False


class TestServe:
    def test_serve_answers_otlp_grpc_and_sigterm_stops_it(self, database_factory: Callable[[], str]) -> None:
        """``serve --otlp-grpc-port`` says where gRPC listens, stores what an exporter sends there, and SIGTERM
        stops both servers with exit code 0 and the gRPC port released."""
        url = database_factory()
        port, grpc_port = _free_port(), _free_port()
        command = [sys.executable, "-m", "fernando_telemetry", "serve", "--port", str(port), "--otlp-grpc-port", str(grpc_port)]
        served = _Process(
            subprocess.Popen(command, env=_env(DATABASE_URL=url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
        try:
            _wait_http(f"http://127.0.0.1:{port}/readyz", served.process)
            license_id, key = _ingest_key(url)
            service = "svc-" + uuid.uuid4().hex[:8]
            provider = TracerProvider(resource=_resource(service))
            exporter = OTLPSpanExporter(
                endpoint=f"http://127.0.0.1:{grpc_port}", insecure=True, headers={"authorization": f"Bearer {key}"}
            )
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            with provider.get_tracer("tests").start_as_current_span("job.run"):
                pass
            provider.shutdown()
            with psycopg.connect(libpq_url(url)) as connection:
                row = connection.execute("SELECT license_id FROM traces WHERE service_name = %s", (service,)).fetchone()
            assert row == (license_id,)
            served.process.send_signal(signal.SIGTERM)
            assert served.process.wait(60) == 0
            output = served.output()
            assert f"OTLP/gRPC: 127.0.0.1:{grpc_port}" in output and "Traceback" not in output
            assert not _listening(grpc_port) and not _listening(port)
        finally:
            served.end()

    def test_a_taken_grpc_port_is_one_line_and_exit_1(self) -> None:
        """A taken gRPC port stops serve before the database is touched, with one line naming the option."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            grpc_port = taken.getsockname()[1]
            result = subprocess.run(
                [sys.executable, "-m", "fernando_telemetry", "serve", "--port", str(_free_port()), "--otlp-grpc-port", str(grpc_port)],
                env=_env(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"), capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert f"port {grpc_port} on 127.0.0.1 is already in use" in result.stderr and "--otlp-grpc-port" in result.stderr
        assert "Traceback" not in result.stderr and "cannot reach the database" not in result.stderr


class TestStatus:
    @pytest.mark.parametrize(("setting", "shown", "in_json"), [("4399", "127.0.0.1:4399", 4399), ("0", "off", None)])
    def test_status_shows_the_grpc_port(
        self, migrated_url: str, monkeypatch: pytest.MonkeyPatch, setting: str, shown: str, in_json: int | None
    ) -> None:
        """``status`` shows the OTLP/gRPC port the settings give (FERNANDO_TELEMETRY_OTLP_GRPC_PORT), or "off"."""
        from fernando_telemetry.cli import main

        monkeypatch.setenv("DATABASE_URL", migrated_url)
        monkeypatch.setenv("FERNANDO_TELEMETRY_OTLP_GRPC_PORT", setting)
        printed = {}
        for args in (["status"], ["status", "--json"]):
            monkeypatch.setattr(sys, "argv", ["fernando-telemetry", *args])
            out = io.StringIO()
            with redirect_stdout(out), redirect_stderr(io.StringIO()):
                try:
                    main()
                except SystemExit as exc:
                    assert not exc.code
            printed[args[-1]] = out.getvalue()
        table_line = next(line for line in printed["status"].splitlines() if "otlp/grpc" in line)
        assert shown in table_line
        import json

        assert json.loads(printed["--json"])["listeners"] == {"host": "127.0.0.1", "http_port": 8000, "otlp_grpc_port": in_json}


class TestOpentelemetryInstrument:
    def test_zero_code_instrumentation_with_its_defaults(self, grpc_port: int, tenant: Tenant, engine: Engine) -> None:
        """``opentelemetry-instrument`` with only the endpoint, headers and service name set (so the protocol is its
        default, gRPC) around a FastAPI app under uvicorn: after SIGTERM its server spans and request-duration
        metric are stored."""
        service = "otel-app-" + uuid.uuid4().hex[:8]
        app_port = _free_port()
        instrument = Path(sys.executable).parent / "opentelemetry-instrument"
        env = _env(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{grpc_port}",
            OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{tenant.ingest_key}",
            OTEL_SERVICE_NAME=service,
            OTEL_METRIC_EXPORT_INTERVAL="500",
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        assert "OTEL_EXPORTER_OTLP_PROTOCOL" not in env and "OTEL_TRACES_EXPORTER" not in env
        command = [
            str(instrument),
            sys.executable,
            "-m",
            "uvicorn",
            "tests.otel_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(app_port),
        ]
        app = _Process(
            subprocess.Popen(command, env=env, cwd=WORKTREE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
        try:
            _wait_http(f"http://127.0.0.1:{app_port}/openapi.json", app.process)  # its spans are left out below
            for path in ("/hello", "/items/7", "/items/8", "/hello"):
                assert httpx.get(f"http://127.0.0.1:{app_port}{path}", timeout=10).status_code == 200
            app.process.send_signal(signal.SIGTERM)  # the SDK flushes its spans and metrics on the way out
            assert app.process.wait(60) == 0
            output = app.output()
        finally:
            app.end()
        spans = _rows(
            engine, "SELECT operation_name, span_kind, license_id FROM traces WHERE service_name = :s AND span_kind = 'server' "
            "AND operation_name <> 'GET /openapi.json'", s=service,
        )  # fmt: skip
        assert sorted(span["operation_name"] for span in spans) == ["GET /hello", "GET /hello", "GET /items/{item_id}",
                                                                    "GET /items/{item_id}"], output  # fmt: skip
        assert {span["license_id"] for span in spans} == {tenant.license_id}
        metric_names = {
            r["metric_name"]
            for r in _rows(engine, "SELECT DISTINCT metric_name FROM system_metrics WHERE service_name = :s", s=service)
        }
        assert metric_names & {"http.server.duration", "http.server.request.duration"}, (metric_names, output)
