"""Endpoint fuzzing of native batch ingest and OTLP/HTTP against the real app, writer and PostgreSQL.

Hostile items ride in the same batch as valid ones carrying a fresh marker; every answer is a clear 4xx or a
200 naming each rejected item (index, field, reason), never a 5xx, and the valid items are then found in
the database. Whole bodies that are not batches at all (random bytes, invalid UTF-8, NaN, 1e999, deep
nesting, gzip bombs, truncated gzip) get a 4xx with the error body.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from google.protobuf import json_format
from google.rpc import status_pb2
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest, ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from sqlalchemy import Engine, text

from tests.fuzz import strategies
from tests.fuzz.budget import fuzz_settings
from tests.ingest_fixtures import Tenant, make_tenant

_ENDPOINTS = {
    "events": ("/api/v1/events", "events"),
    "system_metrics": ("/api/v1/system-metrics", "metrics"),
    "business_metrics": ("/api/v1/business-metrics", "metrics"),
    "spans": ("/api/v1/spans", "spans"),
}
_MARKED = {
    "events": "SELECT count(*) FROM telemetry_events WHERE event_name = :marker AND license_id = :license_id",
    "system_metrics": "SELECT count(*) FROM system_metrics WHERE metric_name = :marker AND license_id = :license_id",
    "business_metrics": "SELECT count(*) FROM business_metrics WHERE metric_name = :marker AND license_id = :license_id",
    "spans": "SELECT count(*) FROM traces WHERE operation_name = :marker AND license_id = :license_id",
}
_MAX_BODY_BYTES = 200_000  # the running_wiring fixture's limit
_ANCHOR = datetime.now(UTC).replace(microsecond=0)
"""The instant the strategies are built around: fixed for the run, since Hypothesis replays a strategy's draws."""


@pytest.fixture()
def tenant(committed_engine: Engine) -> Tenant:
    return make_tenant(committed_engine)


def _marked(engine: Engine, kind: str, marker: str, license_id: int) -> int:
    with engine.connect() as connection:
        return connection.execute(text(_MARKED[kind]), {"marker": marker, "license_id": license_id}).scalar_one()


def _auth(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def assert_error_body(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A 4xx (one of ``statuses``) with the error body and a message a person can read."""
    assert response.status_code in statuses, f"{response.status_code}: {response.text[:300]}"
    error = response.json()["error"]
    assert error["code"] and error["message"] and len(error["message"]) < 1000
    assert "Traceback" not in response.text
    return error


class TestNativeBatches:
    @pytest.mark.parametrize("kind", sorted(_ENDPOINTS))
    @given(data=st.data())
    @fuzz_settings(25)
    def test_hostile_items_are_rejected_and_valid_ones_land(
        self, kind: str, data: st.DataObject, client: TestClient, tenant: Tenant, committed_engine: Engine
    ) -> None:
        """A batch mixing hostile and valid items answers 200, names each rejection, and commits every valid item."""
        now = datetime.now(UTC)
        hostile = data.draw(st.lists(strategies.hostile_items(kind, _ANCHOR), min_size=1, max_size=5), label="hostile")
        marker = f"fuzz-{uuid.uuid4().hex}"
        items: list[Any] = list(hostile)
        valid_positions: list[int] = []
        for number in range(data.draw(st.integers(1, 3), label="valid_count")):
            at = data.draw(st.integers(0, len(items)), label="position")
            user = tenant.user_id if kind == "events" and number == 0 else None
            items.insert(at, strategies.valid_item(kind, marker, now, number, user_id=user))
            valid_positions = [p + 1 if p >= at else p for p in valid_positions] + [at]
        path, body_key = _ENDPOINTS[kind]
        headers = _auth(tenant.ingest_key, **{"Content-Type": "application/json"})
        if data.draw(st.booleans(), label="idempotency_key"):
            headers["Idempotency-Key"] = uuid.uuid4().hex
        body = json.dumps({body_key: items}, ensure_ascii=data.draw(st.booleans(), label="ascii")).encode()
        response = client.post(path, content=body, headers=headers)
        if len(body) > _MAX_BODY_BYTES:
            assert_error_body(response, 413)
            return
        assert response.status_code == 200, f"{response.status_code}: {response.text[:500]}"
        answer = response.json()
        rejected = {entry["index"]: entry for entry in answer["rejected"]}
        assert len(rejected) == len(answer["rejected"]), "an item rejected twice"
        assert answer["accepted"] + len(rejected) == len(items)
        for entry in answer["rejected"]:
            assert 0 <= entry["index"] < len(items) and entry["reason"]
        assert not set(valid_positions) & set(rejected), (
            f"valid items rejected: {[rejected[p] for p in valid_positions if p in rejected]}"
        )
        assert _marked(committed_engine, kind, marker, tenant.license_id) == len(valid_positions)

    @pytest.mark.parametrize(
        ("field", "value", "words"),
        [
            ("event_name", "nul\x00inside", "NUL"),
            ("payload", {"k": "v\x00"}, "NUL"),
            ("payload", {"k\x00": 1}, "NUL"),
            ("event_timestamp", "1970-01-01T00:00:00Z", "older than the accepted window"),
            ("event_timestamp", "2999-01-01T00:00:00Z", "in the future"),
            ("event_timestamp", "0001-01-01T00:00:00+01:00", "out of range"),
            ("event_timestamp", 1e300, "out of range"),
            ("trace_id", "abc", "32 hexadecimal"),
            ("span_id", "a" * 17, "16 hexadecimal"),
            ("ip_address", "fe80::1%eth0", "zone"),
            ("user_agent", "u" * 5000, "at most 1024"),
            ("payload", {"big": "x" * 70_000}, "at most 65536"),
            ("payload", strategies.nested_json(400), "JSON"),
        ],
        ids=lambda value: repr(value)[:20],
    )
    def test_one_bad_field_costs_only_its_item(
        self, field: str, value: Any, words: str, client: TestClient, tenant: Tenant, committed_engine: Engine
    ) -> None:
        """Each kind of bad field is a rejection naming index, field and reason; the items around it are committed."""
        now = datetime.now(UTC)
        marker = f"fuzz-{uuid.uuid4().hex}"
        items = [
            strategies.valid_item("events", marker, now, 0),
            {"event_name": marker, field: value},
            strategies.valid_item("events", marker, now, 1),
        ]
        if field == "payload" and not isinstance(value, dict):
            items[1][field] = {"v": value}
        response = client.post(
            "/api/v1/events", json={"events": items}, headers=_auth(tenant.ingest_key, **{"Idempotency-Key": marker})
        )
        assert response.status_code == 200, response.text[:300]
        [rejection] = response.json()["rejected"]
        assert rejection["index"] == 1 and rejection["field"] == field, rejection
        assert words in rejection["reason"], rejection
        assert _marked(committed_engine, "events", marker, tenant.license_id) == 2

    def test_nul_in_an_unknown_field_name_with_an_idempotency_key(
        self, client: TestClient, tenant: Tenant, committed_engine: Engine
    ) -> None:
        """The answer of a batch is stored with its Idempotency-Key: a NUL in a rejected field's name used to fail the whole batch."""
        marker = f"fuzz-{uuid.uuid4().hex}"
        items = [{"event_name": marker}, {"event_name": marker, "bad\x00field": 1}]
        headers = _auth(tenant.ingest_key, **{"Idempotency-Key": marker})
        first = client.post("/api/v1/events", json={"events": items}, headers=headers)
        assert first.status_code == 200, first.text[:300]
        assert first.json()["rejected"][0]["field"] == "'bad\\x00field'"
        assert client.post("/api/v1/events", json={"events": items}, headers=headers).json() == first.json()
        assert _marked(committed_engine, "events", marker, tenant.license_id) == 1

    def test_business_metric_rounding_past_18_digits(self, client: TestClient, tenant: Tenant, committed_engine: Engine) -> None:
        """A money value that numeric(24, 6) would round to 10**18 is a rejection; the KPI beside it is stored (was a 400 for both)."""
        marker = f"fuzz-{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        items = [
            strategies.valid_item("business_metrics", marker, now, 0),
            {**strategies.valid_item("business_metrics", marker, now, 1), "metric_value": "999999999999999999.9999999"},
        ]
        response = client.post("/api/v1/business-metrics", json={"metrics": items}, headers=_auth(tenant.ingest_key))
        assert response.status_code == 200, response.text[:300]
        assert [(r["index"], r["field"]) for r in response.json()["rejected"]] == [(1, "metric_value")]
        assert _marked(committed_engine, "business_metrics", marker, tenant.license_id) == 1


_BAD_BODIES = [
    (b"", 400),
    (b"NaN", 400),
    (b'{"events": [{"event_name": "x", "duration_ms": NaN}]}', 400),
    (b'{"events": [{"event_name": "x", "duration_ms": 1e999}]}', 400),
    (b'{"events": [{"event_name": "x", "duration_ms": -Infinity}]}', 400),
    (b'{"events": [{"event_name": "\xff\xfe"}]}', 400),
    (b'{"events": [{"event_name": "\\ud800"}]}', 400),
    (b'{"events": [{"event_name": "x"}]}\x00', 400),
    (b"\x00" * 64, 400),
    (b"[" * 100_000 + b"]" * 100_000, 400),
    (b'{"events": ' + b"[" * 2000 + b"]" * 2000 + b"}", 400),
    (b'{"events": {"event_name": "x"}}', 400),
    (b'{"events": "x"}', 400),
    (b'{"events": null}', 400),
    (b'{"nope": []}', 422),
    (b"[]", 422),
    (b'"events"', 422),
    (b'{"events": [' + b"{}," * 10_000 + b"{}]}", 400),
    (b'{"events": ["' + b"x" * (_MAX_BODY_BYTES + 10) + b'"]}', 413),
]


class TestWholeBodies:
    @pytest.mark.parametrize(("body", "status"), _BAD_BODIES, ids=lambda value: repr(value)[:24])
    def test_bodies_that_are_not_batches(self, body: bytes, status: int, client: TestClient, tenant: Tenant) -> None:
        """NaN, 1e999, invalid UTF-8, a lone surrogate, NULs, deep nesting, too many items, too large: a 4xx naming the problem."""
        response = client.post(
            "/api/v1/events", content=body, headers=_auth(tenant.ingest_key, **{"Content-Type": "application/json"})
        )
        assert_error_body(response, status)

    @given(body=st.one_of(st.binary(max_size=300), strategies.json_values().map(lambda value: json.dumps(value).encode())))
    @fuzz_settings(40)
    def test_random_bodies_are_4xx_or_answered(self, body: bytes, client: TestClient, tenant: Tenant) -> None:
        """Random bytes and random JSON documents: a 4xx with the error body, never a 5xx."""
        for path, _ in _ENDPOINTS.values():
            response = client.post(path, content=body, headers=_auth(tenant.ingest_key, **{"Content-Type": "application/json"}))
            if response.status_code != 200:
                assert_error_body(response, 400, 413, 422)

    @pytest.mark.parametrize(
        ("content_type", "encoding", "status"),
        [
            ("text/plain", None, 415),
            ("application/x-protobuf", None, 415),
            ("", None, 415),
            ("application/json", "br", 415),
            ("application/json", "deflate", 415),
            ("application/json", "gzip, gzip", 415),
        ],
    )
    def test_wrong_content_type_or_encoding(
        self, content_type: str, encoding: str | None, status: int, client: TestClient, tenant: Tenant
    ) -> None:
        """A content type or encoding the endpoint does not read is a 415 saying what to send."""
        headers = _auth(tenant.ingest_key, **{"Content-Type": content_type})
        if encoding:
            headers["Content-Encoding"] = encoding
        response = client.post("/api/v1/events", content=b'{"events": []}', headers=headers)
        assert_error_body(response, status)


def _gzip_bomb(size: int) -> bytes:
    """``size`` bytes of JSON-ish padding that gzip squeezes about a thousand to one."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * (1 << 20)
    parts = [compressor.compress(b'{"events": [')]
    for _ in range(size // len(chunk)):
        parts.append(compressor.compress(chunk))
    parts.append(compressor.compress(b"]}"))
    parts.append(compressor.flush())
    return b"".join(parts)


class TestGzip:
    def test_gzip_bomb_is_413_over_real_http(self, live_server: str, tenant: Tenant) -> None:
        """200 MB of padding squeezed to a few hundred kilobytes is cut off at the limit: 413, memory bounded by the limit."""
        bomb = _gzip_bomb(200 * (1 << 20))
        assert len(bomb) < 1_000_000
        for path in ("/api/v1/events", "/v1/traces"):
            response = httpx.post(
                f"{live_server}{path}",
                content=bomb,
                timeout=60,
                headers=_auth(tenant.ingest_key, **{"Content-Type": "application/json", "Content-Encoding": "gzip"}),
            )
            assert response.status_code == 413, response.text[:300]
            assert "once decompressed" in response.text

    @pytest.mark.parametrize(
        ("body", "status", "words"),
        [
            (gzip.compress(b'{"events": []}')[:-9], 400, "truncated"),
            (gzip.compress(b'{"events": []}')[:10], 400, "truncated"),
            (b"\x1f\x8b" + b"\x00" * 30, 400, "corrupt"),
            (b"not gzip at all", 400, "corrupt"),
            (gzip.compress(gzip.compress(b'{"events": []}')), 400, "not valid JSON"),
            (gzip.compress(b'{"events": []}') + b"trailing", 400, "not another gzip member"),
            (gzip.compress(b'{"events": []}') + gzip.compress(b" ")[:12], 400, "truncated"),
        ],
        ids=["cut-crc", "cut-header", "zeros", "plain", "double", "trailing", "cut-second-member"],
    )
    def test_broken_gzip(self, body: bytes, status: int, words: str, client: TestClient, tenant: Tenant) -> None:
        """A truncated, corrupt or doubly compressed gzip body is a 400 saying so."""
        response = client.post(
            "/api/v1/events",
            content=body,
            headers=_auth(tenant.ingest_key, **{"Content-Type": "application/json", "Content-Encoding": "gzip"}),
        )
        error = assert_error_body(response, status)
        assert words in error["message"]

    def test_several_gzip_members_are_one_body(self, client: TestClient, tenant: Tenant, committed_engine: Engine) -> None:
        """A body of several gzip members (RFC 1952) is read whole; the second member's items used to be dropped silently."""
        marker = f"fuzz-{uuid.uuid4().hex}"
        text_body = json.dumps({"events": [{"event_name": marker}, {"event_name": marker}, {"event_name": marker}]}).encode()
        body = gzip.compress(text_body[:20]) + gzip.compress(text_body[20:40]) + gzip.compress(text_body[40:])
        response = client.post(
            "/api/v1/events",
            content=body,
            headers=_auth(tenant.ingest_key, **{"Content-Type": "application/json", "Content-Encoding": "gzip"}),
        )
        assert response.status_code == 200 and response.json()["accepted"] == 3, response.text[:300]
        assert _marked(committed_engine, "events", marker, tenant.license_id) == 3

    def test_several_gzip_members_of_protobuf_keep_every_span(
        self, client: TestClient, tenant: Tenant, committed_engine: Engine
    ) -> None:
        """Two OTLP requests gzipped as two members are one request (protobuf concatenation merges): both spans land."""
        marker = f"fuzz-{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        members = [
            gzip.compress(_with_marked_item("traces", ExportTraceServiceRequest(), marker, now).SerializeToString())
            for _ in range(2)
        ]
        response = client.post(
            "/v1/traces",
            content=b"".join(members),
            headers=_auth(tenant.ingest_key, **{"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}),
        )
        assert response.status_code == 200
        assert _marked(committed_engine, "spans", marker, tenant.license_id) == 2


# -- OTLP ------------------------------------------------------------------------------------------------

_OTLP = {
    "traces": ("/v1/traces", strategies.traces_requests, ExportTraceServiceResponse, "rejected_spans", "spans"),
    "metrics": (
        "/v1/metrics",
        strategies.metrics_requests,
        ExportMetricsServiceResponse,
        "rejected_data_points",
        "system_metrics",
    ),
    "logs": ("/v1/logs", strategies.logs_requests, ExportLogsServiceResponse, "rejected_log_records", "events"),
}


def _with_marked_item(signal: str, pb2_request: Any, marker: str, now: datetime) -> Any:
    """The request with one more resource holding one valid item named ``marker``."""
    now_ns = int(now.timestamp() * 1e9)
    service = KeyValue(key="service.name", value=AnyValue(string_value="fuzz"))
    if signal == "traces":
        assert isinstance(pb2_request, ExportTraceServiceRequest)
        pb2_resource_spans = pb2_request.resource_spans.add()
        pb2_resource_spans.resource.attributes.append(service)
        pb2_resource_spans.scope_spans.add().spans.add(
            trace_id=uuid.uuid4().bytes,
            span_id=uuid.uuid4().bytes[:8],
            name=marker,
            start_time_unix_nano=now_ns - 60_000_000_000,
            end_time_unix_nano=now_ns - 59_000_000_000,
        )
    elif signal == "metrics":
        assert isinstance(pb2_request, ExportMetricsServiceRequest)
        pb2_resource_metrics = pb2_request.resource_metrics.add()
        pb2_resource_metrics.resource.attributes.append(service)
        pb2_metric = pb2_resource_metrics.scope_metrics.add().metrics.add(name=marker)
        pb2_metric.gauge.data_points.add(as_double=1.5, time_unix_nano=now_ns - 60_000_000_000)
    else:
        assert isinstance(pb2_request, ExportLogsServiceRequest)
        pb2_resource_logs = pb2_request.resource_logs.add()
        pb2_resource_logs.resource.attributes.append(service)
        pb2_resource_logs.scope_logs.add().log_records.add(
            event_name=marker, time_unix_nano=now_ns - 60_000_000_000, body=AnyValue(string_value="fuzz")
        )
    return pb2_request


def _otlp_status(response: httpx.Response, protobuf: bool) -> str:
    """The message of a 4xx OTLP answer, a google.rpc.Status in the request's encoding."""
    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.content[:300]!r}"
    if protobuf:
        pb2_status = status_pb2.Status()
        pb2_status.ParseFromString(response.content)
    else:
        pb2_status = json_format.Parse(response.content, status_pb2.Status())
    assert pb2_status.message and len(pb2_status.message) < 1000
    return pb2_status.message


class TestOtlp:
    @pytest.mark.parametrize("signal", sorted(_OTLP))
    @given(data=st.data())
    @fuzz_settings(20)
    def test_hostile_requests_keep_their_valid_items(
        self, signal: str, data: st.DataObject, client: TestClient, tenant: Tenant, committed_engine: Engine
    ) -> None:
        """A hostile but decodable request (protobuf or OTLP/JSON, maybe gzip) answers 200 with partial success; the valid item lands."""
        path, requests, response_class, rejected_field, kind = _OTLP[signal]
        now = datetime.now(UTC)
        marker = f"fuzz-{uuid.uuid4().hex}"
        pb2_request = _with_marked_item(signal, data.draw(requests(_ANCHOR), label="request"), marker, now)
        protobuf = data.draw(st.booleans(), label="protobuf")
        if protobuf:
            body, content_type = pb2_request.SerializeToString(), "application/x-protobuf"
        else:
            body, content_type = json.dumps(strategies.otlp_json(pb2_request)).encode(), "application/json"
        headers = _auth(tenant.ingest_key, **{"Content-Type": content_type})
        if data.draw(st.booleans(), label="gzip"):
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == 200, f"{response.status_code}: {response.content[:500]!r}"
        pb2_response = response_class()
        if protobuf:
            pb2_response.ParseFromString(response.content)
        else:
            json_format.Parse(response.content, pb2_response)
        rejected = getattr(pb2_response.partial_success, rejected_field)
        assert bool(rejected) == bool(pb2_response.partial_success.error_message)
        assert _marked(committed_engine, kind, marker, tenant.license_id) == 1

    @pytest.mark.parametrize("signal", sorted(_OTLP))
    @given(data=st.data())
    @fuzz_settings(20)
    def test_broken_bytes_are_400_or_accepted(self, signal: str, data: st.DataObject, client: TestClient, tenant: Tenant) -> None:
        """Truncated, flipped or random protobuf and JSON: a 400 with a google.rpc.Status, or a 200; never a 5xx."""
        path, requests, _, _, _ = _OTLP[signal]
        body = bytearray(data.draw(requests(_ANCHOR), label="request").SerializeToString())
        if body:
            for position, byte in data.draw(
                st.lists(st.tuples(st.integers(0, len(body) - 1), st.integers(0, 255)), max_size=3), label="flips"
            ):
                body[position] = byte
            body = body[: data.draw(st.integers(0, len(body)), label="cut")]
        protobuf = data.draw(st.booleans(), label="protobuf")
        if not protobuf:
            body = bytearray(
                data.draw(
                    st.one_of(st.binary(max_size=200), strategies.json_values().map(lambda v: json.dumps(v).encode())),
                    label="json",
                )
            )
        content_type = "application/x-protobuf" if protobuf else "application/json"
        response = client.post(path, content=bytes(body), headers=_auth(tenant.ingest_key, **{"Content-Type": content_type}))
        if response.status_code != 200:
            _otlp_status(response, protobuf)

    @pytest.mark.parametrize(
        ("body", "content_type", "status"),
        [
            (b'{"resourceSpans": NaN}', "application/json", 400),
            (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":1e999}]}]}]}', "application/json", 400),
            (b"[" * 100_000, "application/json", 400),
            (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\\ud800"}]}]}]}', "application/json", 400),
            (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abc"}]}]}]}', "application/json", 400),
            (b"\xff\xfe\x00", "application/json", 400),
            (b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf", 400),
            (b"\x0a\x05abc", "application/x-protobuf", 400),
            (b"{}", "text/plain", 415),
        ],
        ids=["nan", "1e999", "deep", "surrogate", "short-id", "utf16", "huge-length", "truncated", "text-plain"],
    )
    def test_whole_request_problems(
        self, body: bytes, content_type: str, status: int, client: TestClient, tenant: Tenant
    ) -> None:
        """Undecodable OTLP bodies are a 400 (415 for a content type) with a google.rpc.Status saying why."""
        response = client.post("/v1/traces", content=body, headers=_auth(tenant.ingest_key, **{"Content-Type": content_type}))
        assert response.status_code == status
        _otlp_status(response, content_type == "application/x-protobuf")

    def test_span_times_past_uint64_range_and_wrong_ids_are_rejected_per_span(
        self, client: TestClient, tenant: Tenant, committed_engine: Engine
    ) -> None:
        """Spans with a time at 2**64-1 ns, in 1970, or ids of the wrong length are rejections; the valid span lands."""
        now = datetime.now(UTC)
        now_ns = int(now.timestamp() * 1e9)
        marker = f"fuzz-{uuid.uuid4().hex}"
        pb2_request = ExportTraceServiceRequest()
        pb2_spans = pb2_request.resource_spans.add().scope_spans.add().spans
        pb2_spans.add(
            trace_id=b"\x01" * 16,
            span_id=b"\x02" * 8,
            name="future",
            start_time_unix_nano=2**64 - 1,
            end_time_unix_nano=2**64 - 1,
        )
        pb2_spans.add(trace_id=b"\x01" * 16, span_id=b"\x03" * 8, name="past", start_time_unix_nano=1, end_time_unix_nano=2)
        pb2_spans.add(
            trace_id=b"\x01" * 15, span_id=b"\x04" * 8, name="short", start_time_unix_nano=now_ns, end_time_unix_nano=now_ns
        )
        pb2_spans.add(
            trace_id=b"\x01" * 16, span_id=b"\x05" * 9, name="long", start_time_unix_nano=now_ns, end_time_unix_nano=now_ns
        )
        pb2_spans.add(
            trace_id=uuid.uuid4().bytes,
            span_id=b"\x06" * 8,
            name=marker,
            start_time_unix_nano=now_ns - 10**9,
            end_time_unix_nano=now_ns,
        )
        response = client.post(
            "/v1/traces",
            content=pb2_request.SerializeToString(),
            headers=_auth(tenant.ingest_key, **{"Content-Type": "application/x-protobuf"}),
        )
        assert response.status_code == 200
        pb2_response = ExportTraceServiceResponse()
        pb2_response.ParseFromString(response.content)
        assert pb2_response.partial_success.rejected_spans == 4
        message = pb2_response.partial_success.error_message
        assert "span 0: start_time_unix_nano" in message and "span 2: trace_id" in message
        assert _marked(committed_engine, "spans", marker, tenant.license_id) == 1
