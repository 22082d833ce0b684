"""One license cannot take the ingest path from the others: fair admission to the shared write queue, and the
per-license ingest rate shared by all of a license's keys.

Each test runs the real app behind uvicorn (and the real OTLP/gRPC receiver) on real PostgreSQL and checks outcomes
only: answers, Retry-After, rows stored. Timings are printed, never asserted.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
import httpx
import pytest
import uvicorn
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from sqlalchemy import Engine, text

from fernando_telemetry.api.otlp_grpc import STATUS_DETAILS_METADATA, OtlpGrpcReceiver
from fernando_telemetry.composition.wiring import Wiring, build
from fernando_telemetry.services import keys
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import session_factory
from tests.ingest_fixtures import Tenant, make_tenant, new_token

LICENSE_SETTING = "FERNANDO_TELEMETRY_INGEST_RATE_LIMIT_ITEMS_PER_S_PER_LICENSE"


@contextmanager
def _serve(engine: Engine, settings: Settings) -> Iterator[tuple[str, Wiring]]:
    """``settings``' app behind uvicorn on a free port, writer running; yields its base URL and wiring."""
    wiring = build(settings, engine=engine)
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
        yield f"http://127.0.0.1:{port}", wiring
    finally:
        server.should_exit = True
        thread.join(10)
        wiring.stop()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _events(name: str, count: int) -> dict[str, list[dict[str, str]]]:
    return {"events": [{"event_type": "system_event", "event_name": name} for _ in range(count)]}


def _stored(engine: Engine, *, name: str, license_id: int) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM telemetry_events WHERE event_name = :n AND license_id = :l"),
                {"n": name, "l": license_id},
            ).scalar_one()
        )


def _second_ingest_key(engine: Engine, tenant: Tenant) -> str:
    with session_factory(engine).begin() as session:
        return keys.create_key(session, license_id=tenant.license_id, scopes=["ingest"], new_token=new_token).token


@dataclass
class _Tally:
    """What one side of the flood saw: items acknowledged, answers by status, Retry-After values, latencies."""

    acked_items: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    retry_after: set[str] = field(default_factory=set)
    codes: set[str] = field(default_factory=set)
    latencies_s: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, response: httpx.Response, items: int, latency_s: float) -> None:
        with self.lock:
            self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
            self.latencies_s.append(latency_s)
            if response.status_code == 200:
                self.acked_items += response.json()["accepted"]
                assert response.json()["accepted"] == items
            elif response.status_code in (429, 503):
                self.retry_after.add(response.headers.get("Retry-After", "missing"))
                self.codes.add(response.json()["error"]["code"])


def _quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "none"
    return " ".join(f"p{q}={ordered[min(len(ordered) - 1, len(ordered) * q // 100)] * 1000:.0f}ms" for q in (50, 90, 99))


class TestFairAdmission:
    def test_a_flooding_license_does_not_starve_another(self, committed_engine: Engine) -> None:
        """License A floods the write queue from several threads; license B's small batches are all answered 2xx and
        stored, A sees 429 with Retry-After, and every item A was acknowledged is stored (refused batches wholly not)."""
        flooder, modest = make_tenant(committed_engine), make_tenant(committed_engine)
        name = "flood-" + uuid.uuid4().hex[:8]
        # a small queue and a long linger: each group waits 300 ms for more, so A's threads fill the queue quickly
        settings = Settings(ingest_max_rows_in_flight=3000, writer_linger_ms=300, ingest_max_body_bytes=2_000_000)
        flood_items, modest_items, flood_threads, duration_s = 500, 20, 6, 6.0
        a_tally, b_tally = _Tally(), _Tally()
        with _serve(committed_engine, settings) as (url, _):
            stop = threading.Event()

            def flood() -> None:
                with httpx.Client(base_url=url, timeout=30) as client:
                    body = _events(name, flood_items)
                    while not stop.is_set():
                        started = time.monotonic()
                        response = client.post("/api/v1/events", json=body, headers=_auth(flooder.ingest_key))
                        a_tally.record(response, flood_items, time.monotonic() - started)
                        if response.status_code != 200:
                            time.sleep(0.01)  # a flooder ignores Retry-After; the pause only spares the test's CPU

            threads = [threading.Thread(target=flood, daemon=True) for _ in range(flood_threads)]
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            with httpx.Client(base_url=url, timeout=30) as client:
                deadline = time.monotonic() + duration_s
                while time.monotonic() < deadline:
                    started = time.monotonic()
                    response = client.post("/api/v1/events", json=_events(name, modest_items), headers=_auth(modest.ingest_key))
                    b_tally.record(response, modest_items, time.monotonic() - started)
                    time.sleep(0.05)
            stop.set()
            for thread in threads:
                thread.join(60)
        a_stored = _stored(committed_engine, name=name, license_id=flooder.license_id)
        b_stored = _stored(committed_engine, name=name, license_id=modest.license_id)
        print(
            f"\nflooder A: answers {a_tally.statuses}, codes {sorted(a_tally.codes)}, Retry-After {sorted(a_tally.retry_after)}, "
            f"acked {a_tally.acked_items} items, stored {a_stored}; latency {_quantiles(a_tally.latencies_s)}"
            f"\nmodest B: answers {b_tally.statuses}, acked {b_tally.acked_items} items, stored {b_stored}; "
            f"latency {_quantiles(b_tally.latencies_s)}"
        )
        assert set(b_tally.statuses) == {200} and b_tally.statuses[200] > 10
        assert b_stored == b_tally.acked_items
        assert a_tally.statuses.get(429, 0) > 0 and "over_fair_share" in a_tally.codes
        assert "missing" not in a_tally.retry_after and all(int(value) >= 1 for value in a_tally.retry_after)
        assert a_stored == a_tally.acked_items  # nothing acknowledged lost, nothing of a refused batch stored


def _spans_request(service: str, count: int) -> ExportTraceServiceRequest:
    now_ns = time.time_ns()
    pb2_spans = [
        Span(
            trace_id=uuid.uuid4().bytes,
            span_id=os.urandom(8),
            name=f"op-{i}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=now_ns - 5_000_000,
            end_time_unix_nano=now_ns,
        )  # fmt: skip
        for i in range(count)
    ]
    pb2_resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=pb2_resource, scope_spans=[ScopeSpans(spans=pb2_spans)])]
    )


def _otlp_json_logs(name: str, count: int) -> dict[str, object]:
    now_ns = str(time.time_ns())
    records = [{"timeUnixNano": now_ns, "body": {"stringValue": name}, "severityText": "INFO"} for _ in range(count)]
    return {"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": [{"logRecords": records}]}]}


class TestLicenseRate:
    def test_keys_of_one_license_share_its_rate(self, committed_engine: Engine) -> None:
        """At 100 items/s per license (bursts of 1000), two keys of one license share one bucket, on native, OTLP/HTTP
        and OTLP/gRPC alike; the 429 names the license, its rate and the setting; another license is unaffected."""
        tenant, other = make_tenant(committed_engine), make_tenant(committed_engine)
        second_key = _second_ingest_key(committed_engine, tenant)
        name = "rate-" + uuid.uuid4().hex[:8]
        settings = Settings(ingest_rate_limit_items_per_s_per_license=100, ingest_max_body_bytes=2_000_000)
        with _serve(committed_engine, settings) as (url, wiring), httpx.Client(base_url=url, timeout=30) as client:
            receiver = OtlpGrpcReceiver(host="127.0.0.1", port=0, workers=2, max_concurrent_rpcs=8, max_message_bytes=4_000_000)
            receiver.start(sessions=wiring.app.state.sessions, ingestor=wiring.ingestor)
            try:
                started = time.monotonic()
                first = client.post("/api/v1/events", json=_events(name, 700), headers=_auth(tenant.ingest_key))
                # the second key alone has no per-key limit: only the license's bucket (300 left) refuses it
                second = client.post("/api/v1/events", json=_events(name, 700), headers=_auth(second_key))
                otlp_http = client.post("/v1/logs", json=_otlp_json_logs(name, 700), headers=_auth(second_key))
                with grpc.insecure_channel(f"127.0.0.1:{receiver.port}") as channel:
                    with pytest.raises(grpc.RpcError) as caught:
                        TraceServiceStub(channel).Export(
                            _spans_request("svc-" + name, 700), metadata=(("authorization", f"Bearer {tenant.ingest_key}"),)
                        )
                other_answer = client.post("/api/v1/events", json=_events(name, 700), headers=_auth(other.ingest_key))
                small = client.post("/api/v1/events", json=_events(name, 100), headers=_auth(second_key))
                print(f"\nfive requests answered in {(time.monotonic() - started) * 1000:.0f} ms")
            finally:
                receiver.stop(grace_s=2)
        assert first.status_code == 200
        assert second.status_code == 429, second.text
        error = second.json()["error"]
        assert f"license {tenant.license_id}" in error["message"] and "100 items/s" in error["message"]
        assert LICENSE_SETTING in error["message"] and error["details"][0]["setting"] == LICENSE_SETTING
        assert int(second.headers["Retry-After"]) >= 1
        assert otlp_http.status_code == 429 and int(otlp_http.headers["Retry-After"]) >= 1
        rpc_error = caught.value
        assert rpc_error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        pb2_status = status_pb2.Status.FromString(dict(rpc_error.trailing_metadata() or ())[STATUS_DETAILS_METADATA])  # type: ignore[attr-defined]
        assert pb2_status.code == code_pb2.RESOURCE_EXHAUSTED and f"license {tenant.license_id}" in pb2_status.message
        assert any(detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in pb2_status.details)
        assert other_answer.status_code == 200  # another license has its own bucket
        assert small.status_code == 200  # what is left of the license's burst still serves a batch that fits
        assert _stored(committed_engine, name=name, license_id=tenant.license_id) == 800
        assert _stored(committed_engine, name=name, license_id=other.license_id) == 700
