"""Span resources stored once per license in ``telemetry_resources``: what ingest writes, what the trace API and user
SQL read, what each license sees, and what retention and archives do with them (real app, real PostgreSQL)."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from fernando_telemetry.core.resource_keys import resource_key
from fernando_telemetry.services import archives, retention, rollups, tenancy
from fernando_telemetry.storage import trace_queries
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.tenant_scope import scoped
from tests.helpers import add_license, add_span
from tests.ingest_fixtures import Tenant, make_tenant

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _otlp(resource: dict[str, str], trace_id: bytes, spans: int) -> bytes:
    """One resource with ``spans`` spans of one trace (a root and its children)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in resource.items():
        resource_spans.resource.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    scope = resource_spans.scope_spans.add()
    start = time.time_ns() - 60_000_000_000
    root = os.urandom(8)
    for i in range(spans):
        scope.spans.append(
            Span(
                trace_id=trace_id,
                span_id=root if i == 0 else os.urandom(8),
                parent_span_id=b"" if i == 0 else root,
                name=f"op{i}",
                start_time_unix_nano=start + i * 1000,
                end_time_unix_nano=start + i * 1000 + 500,
            )
        )
    return request.SerializeToString()


def _send(client: TestClient, tenant: Tenant, resource: dict[str, str], *, spans: int = 3) -> str:
    trace_id = os.urandom(16)
    answer = client.post("/v1/traces", content=_otlp(resource, trace_id, spans), headers={**_auth(tenant.ingest_key), **PROTOBUF})
    assert answer.status_code == 200, answer.content
    assert ExportTraceServiceResponse.FromString(answer.content).partial_success.rejected_spans == 0
    return trace_id.hex()


def _resource_rows(engine: Engine, license_id: int) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT resource_id, attributes, first_seen_at, last_seen_at FROM telemetry_resources "
                    "WHERE license_id = :l ORDER BY first_seen_at"
                ),
                {"l": license_id},
            )
        )


def _span_resources(engine: Engine, trace_id: str) -> list[tuple[Any, Any]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(text("SELECT resource, resource_id FROM traces WHERE trace_id = :t"), {"t": trace_id})
        ]


@pytest.fixture()
def resource() -> dict[str, str]:
    return {"service.name": f"svc-{uuid.uuid4().hex[:8]}", "host.name": "h1", "process.runtime.name": "cpython"}


class TestIngest:
    def test_the_spans_of_a_resource_point_at_one_stored_row_and_keep_an_empty_copy(
        self, client: TestClient, committed_engine: Engine, resource: dict[str, str]
    ) -> None:
        """Three spans under one resource: one ``telemetry_resources`` row, each span ``{}`` and its key."""
        tenant = make_tenant(committed_engine)
        trace_id = _send(client, tenant, resource)
        rows = _resource_rows(committed_engine, tenant.license_id)
        assert len(rows) == 1
        assert rows[0].attributes == resource
        assert rows[0].resource_id == resource_key(tenant.license_id, json.dumps(resource))
        assert _span_resources(committed_engine, trace_id) == [({}, rows[0].resource_id)] * 3

    def test_the_trace_api_returns_the_full_resource_for_every_span(
        self, client: TestClient, committed_engine: Engine, resource: dict[str, str]
    ) -> None:
        """``GET /api/v1/traces/{id}`` reads each span's resource from its shared row."""
        tenant = make_tenant(committed_engine)
        trace_id = _send(client, tenant, resource)
        body = client.get(f"/api/v1/traces/{trace_id}", headers=_auth(tenant.read_key)).json()
        root = body["roots"][0]
        assert [root["resource"], *(child["resource"] for child in root["children"])] == [resource] * 3

    def test_a_resource_sent_again_within_the_hour_is_not_rewritten(
        self, client: TestClient, committed_engine: Engine, resource: dict[str, str]
    ) -> None:
        """A second batch under the same resource reuses its row and leaves ``last_seen_at`` until it is an hour old."""
        tenant = make_tenant(committed_engine)
        _send(client, tenant, resource)
        [first] = _resource_rows(committed_engine, tenant.license_id)
        _send(client, tenant, resource)
        [again] = _resource_rows(committed_engine, tenant.license_id)
        assert again.last_seen_at == first.last_seen_at  # no write amplification
        with committed_engine.begin() as connection:
            connection.execute(
                text("UPDATE telemetry_resources SET last_seen_at = last_seen_at - interval '2 hours' WHERE resource_id = :r"),
                {"r": first.resource_id},
            )
        _send(client, tenant, resource)
        [moved] = _resource_rows(committed_engine, tenant.license_id)
        assert moved.last_seen_at > first.last_seen_at and moved.first_seen_at == first.first_seen_at

    def test_native_spans_with_one_resource_in_any_key_order_share_a_row(
        self, client: TestClient, committed_engine: Engine
    ) -> None:
        """``POST /api/v1/spans``: the key hashes the canonical JSON, so the order of the keys sent does not matter."""
        tenant = make_tenant(committed_engine)
        start = datetime.now(UTC) - timedelta(minutes=5)
        trace_id = uuid.uuid4().hex
        spans = [
            {
                "trace_id": trace_id,
                "span_id": f"{i + 1:016x}",
                "operation_name": "op",
                "service_name": "web",
                "start_time": start.isoformat(),
                "duration_ms": 1.0,
                "resource": resource,
            }
            for i, resource in enumerate([{"a": "1", "b": "2"}, {"b": "2", "a": "1"}, {}])
        ]
        answer = client.post("/api/v1/spans", json={"spans": spans}, headers=_auth(tenant.ingest_key))
        assert answer.json() == {"accepted": 3, "rejected": []}
        [row] = _resource_rows(committed_engine, tenant.license_id)
        stored = sorted(_span_resources(committed_engine, trace_id), key=lambda pair: pair[1] is None)
        assert stored == [({}, row.resource_id), ({}, row.resource_id), ({}, None)]  # no attributes: nothing shared

    def test_spans_written_before_the_shared_table_read_the_same(self, client: TestClient, committed_engine: Engine) -> None:
        """A span with its resource inline and no ``resource_id`` (revision 0016 and before) reads its own copy."""
        tenant = make_tenant(committed_engine)
        trace_id = uuid.uuid4().hex
        with session_factory(committed_engine).begin() as session:
            at = datetime.now(UTC) - timedelta(minutes=3)
            add_span(session, at=at, trace_id=trace_id, license_id=tenant.license_id, resource={"service.name": "legacy"})
        body = client.get(f"/api/v1/traces/{trace_id}", headers=_auth(tenant.read_key)).json()
        assert body["roots"][0]["resource"] == {"service.name": "legacy"}


class TestIsolation:
    def test_two_licenses_sending_one_resource_get_a_row_each_and_see_only_their_own(
        self, client: TestClient, committed_engine: Engine, resource: dict[str, str]
    ) -> None:
        """Identical attributes from two licenses: two rows (the key hashes the license), each visible to its license only
        in a tenant session, in user SQL and through the trace API."""
        a, b = make_tenant(committed_engine), make_tenant(committed_engine)
        trace_a = _send(client, a, resource)
        trace_b = _send(client, b, resource)
        [row_a], [row_b] = _resource_rows(committed_engine, a.license_id), _resource_rows(committed_engine, b.license_id)
        assert row_a.resource_id != row_b.resource_id and row_a.attributes == row_b.attributes == resource

        sessions = tenancy.scope_sessions(session_factory(committed_engine))
        wanted = {"a": str(row_a.resource_id), "b": str(row_b.resource_id)}
        with scoped(a.license_id), sessions.begin() as session:
            # no WHERE on license_id: the policy alone hides license B's row
            seen = session.execute(
                text("SELECT resource_id::text FROM telemetry_resources WHERE resource_id::text IN (:a, :b)"), wanted
            ).scalars()
            assert set(seen) == {wanted["a"]}
            assert trace_queries.trace_spans(session, trace_id=trace_b, license_id=None, limit=10) == []

        response = client.post(
            "/api/v1/query",
            headers=_auth(b.read_key),
            json={
                "sql": f"SELECT resource_id::text, license_id FROM telemetry_resources WHERE resource_id::text IN "
                f"('{wanted['a']}', '{wanted['b']}')"
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["rows"] == [[wanted["b"], b.license_id]]
        # the join documented for user SQL
        joined = client.post(
            "/api/v1/query",
            headers=_auth(b.read_key),
            json={
                "sql": "SELECT COALESCE(r.attributes, t.resource) ->> 'host.name' FROM traces t LEFT JOIN telemetry_resources r "
                f"ON r.resource_id = t.resource_id WHERE t.trace_id IN ('{trace_a}', '{trace_b}')"
            },
        )
        assert joined.status_code == 200, joined.text
        assert joined.json()["rows"] == [["h1"]] * 3  # license B's three spans, none of A's
        assert client.get(f"/api/v1/traces/{trace_a}", headers=_auth(b.read_key)).status_code == 404


def _old_resource(session: Session, license_id: int, attributes: dict[str, str], last_seen_at: datetime) -> uuid.UUID:
    resource_id = resource_key(license_id, json.dumps(attributes))
    session.execute(
        text(
            "INSERT INTO telemetry_resources (resource_id, license_id, attributes, first_seen_at, last_seen_at) "
            "VALUES (:r, :l, CAST(:a AS jsonb), :t, :t)"
        ),
        {"r": resource_id, "l": license_id, "a": json.dumps(attributes), "t": last_seen_at},
    )
    return resource_id


def _exists(session: Session, resource_id: uuid.UUID) -> bool:
    found = session.execute(text("SELECT 1 FROM telemetry_resources WHERE resource_id = :r"), {"r": resource_id}).first()
    return found is not None


GLOBAL = {"events_retention_days": 30, "metrics_retention_days": 180, "traces_retention_days": 30}


class TestRetention:
    def test_a_resource_not_seen_for_the_longest_span_retention_is_deleted(self, session: Session) -> None:
        """Retention deletes a resource last seen before the longest span retention (and its grace), keeps a recent one."""
        now = datetime.now(UTC)
        license_id = add_license(session, "resources").license_id
        old = _old_resource(session, license_id, {"service.name": "gone"}, now - timedelta(days=40))
        recent = _old_resource(session, license_id, {"service.name": "kept"}, now - timedelta(days=20))
        cleanups = {c.table_name: c for c in retention.run(session, now=now, **GLOBAL)}
        assert not _exists(session, old) and _exists(session, recent)
        assert cleanups["telemetry_resources"].rows_deleted >= 1

    def test_a_longer_license_override_keeps_the_resource(self, session: Session) -> None:
        """The cutoff follows the LONGEST span retention: a license keeping spans 60 days keeps 40-day-old resources."""
        now = datetime.now(UTC)
        license_id = add_license(session, "long-resources").license_id
        retention.set_override(session, license_id=license_id, data_kind="traces", retention_days=60, now=now)
        old = _old_resource(session, license_id, {"service.name": "long"}, now - timedelta(days=40))
        retention.run(session, now=now, **GLOBAL)
        assert _exists(session, old)

    def test_an_archive_carries_the_shared_resource_and_restores_it(self, session: Session, tmp_path: Path) -> None:
        """An expired partition of spans pointing at a shared resource keeps the resource while it is kept, is archived
        with the resource inline, the resource is then deleted, and the restored spans still read it."""
        now = datetime.now(UTC)
        license_id = add_license(session, "archived-resources").license_id
        old = (now - timedelta(days=50)).replace(hour=10, minute=0, second=0, microsecond=0)
        attributes = {"service.name": "archived", "host.name": "h9"}
        resource_id = _old_resource(session, license_id, attributes, old)
        trace_id = uuid.uuid4().hex
        for i in range(3):
            at = old + timedelta(minutes=i)
            add_span(session, at=at, trace_id=trace_id, license_id=license_id, resource_id=resource_id, created_at=old)
        retention.run(session, now=now, **GLOBAL)
        # not rolled up yet: the partition is kept past its time, and so is the resource its spans point at
        assert _exists(session, resource_id)
        rollups.refresh(session, now=now, safety_lag_s=0)
        retention.run(session, now=now, archive_dir=tmp_path, **GLOBAL)

        parquet = tmp_path / "traces" / f"traces_p{old:%Y%m%d}.parquet"
        archived = [row for row in pq.read_table(parquet).to_pylist() if row["trace_id"] == trace_id]
        assert [json.loads(row["resource"]) for row in archived] == [attributes] * 3
        assert not _exists(session, resource_id)  # not seen for 50 days: gone with its spans

        archives.restore(session, parquet, into=None, now=now)
        spans = trace_queries.trace_spans(session, trace_id=trace_id, license_id=license_id, limit=10)
        assert [span.resource for span in spans] == [attributes] * 3
