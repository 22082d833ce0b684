"""Users scoped by license and registered on first sight; keys stored under another license are rejected, not acked.

Native events and OTLP spans (the official OpenTelemetry SDK against the served app) naming users the
database has never seen are stored and the users registered; the answer never says whether a user existed;
license A naming B's user id makes A's own user; concurrent first sightings all succeed; the platform's PUT
fills the row in; the tenant role reads only its license's users. A primary-key collision with a row of
another license is a per-item rejection (also in the stored idempotency answer and in OTLP's partial
success); a retry of a license's own item is an idempotent duplicate.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine, text

from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.services import tenancy
from fernando_telemetry.storage import lookups
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.tenant_scope import scoped
from tests.ingest_fixtures import Tenant, admin_key, make_tenant

NOW = datetime.now(UTC)


@pytest.fixture()
def engine(committed_engine: Engine) -> Engine:
    """These tests commit: they use the committed-writes database."""
    return committed_engine


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _rows(engine: Engine, sql: str, **params: object) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text(sql), params)]


def _user(engine: Engine, license_id: int, user_id: str) -> dict[str, Any] | None:
    found = _rows(engine, "SELECT * FROM users WHERE license_id = :l AND user_id = :u", l=license_id, u=user_id)
    return found[0] if found else None


def _sdk_spans(user_id: str, service: str) -> tuple[ReadableSpan, ...]:
    """A server span tagged ``user.id`` with a client child, as an instrumented app records them."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.users")
    with tracer.start_as_current_span("GET /orders", kind=SpanKind.SERVER, attributes={"user.id": user_id}):
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT):
            pass
    provider.shutdown()
    return exporter.get_finished_spans()


class TestRegisteredOnFirstSight:
    def test_a_native_event_naming_an_unknown_user_is_stored_and_the_user_registered(
        self, client: TestClient, engine: Engine
    ) -> None:
        """The event lands with its user id and the user row appears with origin ingest and first/last seen."""
        tenant = make_tenant(engine)
        user_id = "4242-" + uuid.uuid4().hex[:6]
        before = datetime.now(UTC)
        response = client.post(
            "/api/v1/events", json={"events": [{"event_name": "signup", "user_id": user_id}]}, headers=_auth(tenant.ingest_key)
        )
        assert response.status_code == 200 and response.json() == {"accepted": 1, "rejected": []}
        stored = _rows(engine, "SELECT user_id, license_id FROM telemetry_events WHERE user_id = :u", u=user_id)
        assert stored == [{"user_id": user_id, "license_id": tenant.license_id}]
        user = _user(engine, tenant.license_id, user_id)
        assert user is not None and user["origin"] == "ingest"
        assert before <= user["first_seen_at"] <= datetime.now(UTC)
        assert user["last_seen_at"] == user["first_seen_at"]

    def test_an_otlp_span_from_the_official_sdk_naming_an_unknown_user_is_stored(self, live_server: str, engine: Engine) -> None:
        """The SDK's OTLP/HTTP exporter delivers the whole trace; the span's user.id is registered for the key's license."""
        tenant = make_tenant(engine)
        user_id = "4242-" + uuid.uuid4().hex[:6]
        service = "svc-" + uuid.uuid4().hex[:8]
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = OTLPSpanExporter(endpoint=f"{live_server}/v1/traces", headers=_auth(tenant.ingest_key))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("tests.users")
        with tracer.start_as_current_span("GET /orders", kind=SpanKind.SERVER, attributes={"user.id": user_id}):
            with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT):
                pass
        provider.shutdown()
        spans = _rows(
            engine, "SELECT operation_name, user_id, license_id FROM traces WHERE service_name = :s ORDER BY 1", s=service
        )
        assert spans == [
            {"operation_name": "GET /orders", "user_id": user_id, "license_id": tenant.license_id},
            {"operation_name": "SELECT orders", "user_id": None, "license_id": tenant.license_id},
        ]
        user = _user(engine, tenant.license_id, user_id)
        assert user is not None and user["origin"] == "ingest" and user["first_seen_at"] is not None

    def test_the_answer_is_the_same_whether_or_not_the_user_existed(self, client: TestClient, engine: Engine) -> None:
        """Known and unknown users get byte-identical answers: a key cannot probe for user ids."""
        tenant = make_tenant(engine)
        other = make_tenant(engine)
        answers = [
            client.post(
                "/api/v1/events", json={"events": [{"event_name": "probe", "user_id": user_id}]}, headers=_auth(tenant.ingest_key)
            )
            for user_id in (tenant.user_id, "never-" + uuid.uuid4().hex[:6], other.user_id)
        ]
        assert {(a.status_code, a.content) for a in answers} == {(200, b'{"accepted":1,"rejected":[]}')}

    def test_a_license_naming_another_licenses_user_gets_its_own_user(self, client: TestClient, engine: Engine) -> None:
        """A's event naming B's user id makes A's user row; B's row is untouched and joins none of A's events."""
        a, b = make_tenant(engine), make_tenant(engine)
        marker = uuid.uuid4().hex
        response = client.post(
            "/api/v1/events", json={"events": [{"event_name": marker, "user_id": b.user_id}]}, headers=_auth(a.ingest_key)
        )
        assert response.json() == {"accepted": 1, "rejected": []}
        theirs = _user(engine, b.license_id, b.user_id)
        assert theirs is not None and theirs["origin"] == "platform" and theirs["first_seen_at"] is None
        mine = _user(engine, a.license_id, b.user_id)
        assert mine is not None and mine["origin"] == "ingest"
        joined = _rows(
            engine,
            "SELECT u.license_id FROM telemetry_events e JOIN users u ON u.license_id = e.license_id AND u.user_id = e.user_id "
            "WHERE e.event_name = :m",
            m=marker,
        )
        assert joined == [{"license_id": a.license_id}]

    def test_rows_of_no_license_register_their_user_under_the_platform_license(self, client: TestClient, engine: Engine) -> None:
        """An admin key's item without license_id belongs to the platform license, which registers its user."""
        admin = admin_key(engine)
        user_id = "loose-" + uuid.uuid4().hex[:6]
        response = client.post("/api/v1/events", json={"events": [{"event_name": "x", "user_id": user_id}]}, headers=_auth(admin))
        assert response.json() == {"accepted": 1, "rejected": []}
        assert _rows(engine, "SELECT license_id FROM telemetry_events WHERE user_id = :u", u=user_id) == [
            {"license_id": PLATFORM_LICENSE_ID}
        ]
        assert _rows(engine, "SELECT license_id FROM users WHERE user_id = :u", u=user_id) == [
            {"license_id": PLATFORM_LICENSE_ID}
        ]

    def test_an_unknown_license_stays_rejected(self, client: TestClient, engine: Engine) -> None:
        """An admin key naming a license that does not exist gets a per-item rejection on license_id."""
        admin = admin_key(engine)
        response = client.post(
            "/api/v1/events", json={"events": [{"event_name": "x", "license_id": 10**15, "user_id": "u"}]}, headers=_auth(admin)
        )
        assert response.json()["accepted"] == 0
        assert response.json()["rejected"][0]["field"] == "license_id"

    def test_a_later_sighting_moves_last_seen_and_keeps_first_seen(self, engine: Engine) -> None:
        """register_users again with a later time moves last_seen_at only; an earlier time changes nothing."""
        tenant = make_tenant(engine)
        user_id = "seen-" + uuid.uuid4().hex[:6]
        first, later = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
        for seen_at in (first, later, first):
            with session_factory(engine).begin() as session:
                lookups.register_users(session, [(tenant.license_id, user_id)], seen_at=seen_at)
        user = _user(engine, tenant.license_id, user_id)
        assert user is not None and (user["first_seen_at"], user["last_seen_at"]) == (first, later)


class TestConcurrentFirstSightings:
    def test_threads_registering_the_same_users_in_different_orders_all_succeed(self, engine: Engine) -> None:
        """Eight transactions register the same 40 new users in shuffled orders, held open together: none fails."""
        tenant = make_tenant(engine)
        keys = [(tenant.license_id, f"race-{uuid.uuid4().hex[:6]}-{n}") for n in range(40)]
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def work(seed: int) -> None:
            order = keys[:]
            random.Random(seed).shuffle(order)
            try:
                with session_factory(engine).begin() as session:
                    barrier.wait(timeout=30)
                    lookups.register_users(session, order, seen_at=NOW + timedelta(seconds=seed))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        count = _rows(
            engine,
            "SELECT count(*) AS n, max(last_seen_at) AS last FROM users WHERE user_id LIKE 'race-%' AND license_id = :l",
            l=tenant.license_id,
        )
        assert count == [{"n": 40, "last": NOW + timedelta(seconds=7)}]

    def test_concurrent_requests_first_sighting_the_same_users_are_all_accepted(self, live_server: str, engine: Engine) -> None:
        """Twelve requests at once, each naming the same 30 new users in its own order, are all fully accepted."""
        tenant = make_tenant(engine)
        marker = uuid.uuid4().hex
        user_ids = [f"crowd-{marker[:6]}-{n}" for n in range(30)]
        answers: list[Any] = []
        barrier = threading.Barrier(12)

        def work(seed: int) -> None:
            order = user_ids[:]
            random.Random(seed).shuffle(order)
            body = {"events": [{"event_name": marker, "user_id": user_id} for user_id in order]}
            barrier.wait(timeout=30)
            try:
                answers.append(
                    httpx.post(f"{live_server}/api/v1/events", json=body, headers=_auth(tenant.ingest_key), timeout=60).json()
                )
            except httpx.HTTPError as exc:
                answers.append(repr(exc))

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert answers == [{"accepted": 30, "rejected": []}] * 12
        assert _rows(engine, "SELECT count(*) AS n FROM telemetry_events WHERE event_name = :m", m=marker) == [{"n": 360}]
        registered = _rows(
            engine,
            "SELECT count(*) AS n FROM users WHERE license_id = :l AND user_id LIKE :p",
            l=tenant.license_id,
            p=f"crowd-{marker[:6]}-%",
        )
        assert registered == [{"n": 30}]


class TestPlatformFillsIn:
    def test_put_fills_in_a_user_registered_on_first_sight(self, client: TestClient, engine: Engine) -> None:
        """PUT with the license updates the ingest-made row: fields set, sightings kept, origin platform."""
        tenant = make_tenant(engine)
        admin = admin_key(engine)
        user_id = "fill-" + uuid.uuid4().hex[:6]
        client.post(
            "/api/v1/events", json={"events": [{"event_name": "x", "user_id": user_id}]}, headers=_auth(tenant.ingest_key)
        )
        seen = _user(engine, tenant.license_id, user_id)
        assert seen is not None and seen["email"] is None
        response = client.put(
            f"/api/v1/admin/users/{user_id}",
            json={"email": "ada@example.com", "display_name": "Ada", "license_id": tenant.license_id},
            headers=_auth(admin),
        )
        assert response.status_code == 200  # it existed: an update, not a creation
        body = response.json()
        assert (body["email"], body["display_name"], body["origin"]) == ("ada@example.com", "Ada", "platform")
        assert body["license_id"] == tenant.license_id and body["first_seen_at"] is not None
        user = _user(engine, tenant.license_id, user_id)
        assert user is not None and user["first_seen_at"] == seen["first_seen_at"] and user["origin"] == "platform"

    def test_put_takes_the_license_from_the_query_and_needs_one(self, client: TestClient, engine: Engine) -> None:
        """?license_id= works as the body field does; no license is a 400 naming license_id; two different ones a 400."""
        tenant = make_tenant(engine)
        admin = admin_key(engine)
        user_id = "q-" + uuid.uuid4().hex[:6]
        created = client.put(
            f"/api/v1/admin/users/{user_id}?license_id={tenant.license_id}", json={"email": "q@x.io"}, headers=_auth(admin)
        )
        assert created.status_code == 201 and created.json()["license_id"] == tenant.license_id
        assert created.json()["origin"] == "platform" and created.json()["first_seen_at"] is None
        missing = client.put(f"/api/v1/admin/users/{user_id}", json={"email": "q@x.io"}, headers=_auth(admin))
        assert missing.status_code == 400 and missing.json()["error"]["details"][0]["field"] == "license_id"
        clash = client.put(
            f"/api/v1/admin/users/{user_id}?license_id={tenant.license_id}",
            json={"license_id": tenant.license_id + 1},
            headers=_auth(admin),
        )
        assert clash.status_code == 400


class TestTenantReadsOnlyItsUsers:
    def test_a_scoped_session_sees_only_its_licenses_users(self, engine: Engine) -> None:
        """The tenant role's policy on users: no WHERE, and license B's users (same ids included) stay hidden."""
        a, b = make_tenant(engine), make_tenant(engine)
        with session_factory(engine).begin() as session:
            lookups.register_users(session, [(b.license_id, a.user_id)], seen_at=NOW)
        sessions = tenancy.scope_sessions(session_factory(engine))
        with scoped(a.license_id), sessions.begin() as session:
            seen = set(
                session.execute(
                    text("SELECT license_id, user_id FROM users WHERE user_id IN (:x, :y)"), {"x": a.user_id, "y": b.user_id}
                )
            )
        assert seen == {(a.license_id, a.user_id)}


class TestKeysOfAnotherLicense:
    def test_an_event_id_stored_under_another_license_is_that_licenses_own_row_and_a_retry_is_a_duplicate(
        self, client: TestClient, engine: Engine
    ) -> None:
        """B (and an admin key with no license) reusing A's event id and time store their own rows, told nothing of
        A's; each one's retry is accepted and stored once; the idempotency answer stored is the one returned."""
        a, b = make_tenant(engine), make_tenant(engine)
        admin = admin_key(engine)
        event_id = str(uuid.uuid4())
        at = (NOW - timedelta(minutes=3)).isoformat()
        item = {"event_id": event_id, "event_timestamp": at, "event_name": "collide"}
        first = client.post("/api/v1/events", json={"events": [item]}, headers=_auth(a.ingest_key))
        assert first.json() == {"accepted": 1, "rejected": []}
        fresh = {"event_name": "fresh"}
        key = "idem-" + uuid.uuid4().hex
        theirs = client.post(
            "/api/v1/events", json={"events": [fresh, item]}, headers={**_auth(b.ingest_key), "Idempotency-Key": key}
        )
        answer = theirs.json()
        assert answer == {"accepted": 2, "rejected": []}
        replay = client.post(
            "/api/v1/events", json={"events": [fresh, item]}, headers={**_auth(b.ingest_key), "Idempotency-Key": key}
        )
        assert replay.json() == answer
        unlicensed = client.post("/api/v1/events", json={"events": [item]}, headers=_auth(admin))
        assert unlicensed.json() == {"accepted": 1, "rejected": []}
        for tenant_key in (a.ingest_key, b.ingest_key, admin):
            retry = client.post("/api/v1/events", json={"events": [item]}, headers=_auth(tenant_key))
            assert retry.json() == {"accepted": 1, "rejected": []}
        stored = _rows(engine, "SELECT license_id FROM telemetry_events WHERE event_id = :e ORDER BY 1", e=event_id)
        assert stored == [{"license_id": PLATFORM_LICENSE_ID}, {"license_id": a.license_id}, {"license_id": b.license_id}]

    def test_a_batch_repeating_a_key_across_licenses_stores_one_row_per_license(self, client: TestClient, engine: Engine) -> None:
        """An admin batch with the same event id for two licenses stores one row of each; the repeat of A's is skipped."""
        a, b = make_tenant(engine), make_tenant(engine)
        admin = admin_key(engine)
        event_id = str(uuid.uuid4())
        at = (NOW - timedelta(minutes=2)).isoformat()
        items = [
            {"event_id": event_id, "event_timestamp": at, "event_name": "dup", "license_id": a.license_id},
            {"event_id": event_id, "event_timestamp": at, "event_name": "dup", "license_id": b.license_id},
            {"event_id": event_id, "event_timestamp": at, "event_name": "dup", "license_id": a.license_id},
        ]
        # a first unique batch makes the writer take its careful path for the colliding one
        client.post("/api/v1/events", json={"events": [items[0]]}, headers=_auth(admin))
        answer = client.post("/api/v1/events", json={"events": items}, headers=_auth(admin)).json()
        assert answer == {"accepted": 3, "rejected": []}
        stored = _rows(engine, "SELECT license_id FROM telemetry_events WHERE event_id = :e ORDER BY 1", e=event_id)
        assert stored == [{"license_id": min(a.license_id, b.license_id)}, {"license_id": max(a.license_id, b.license_id)}]

    def test_the_same_otlp_spans_of_two_licenses_are_two_licenses_spans(self, live_server: str, engine: Engine) -> None:
        """The same SDK spans sent with B's key after A's are stored for B too; A's retry is a duplicate."""
        a, b = make_tenant(engine), make_tenant(engine)
        service = "svc-" + uuid.uuid4().hex[:8]
        spans = _sdk_spans("u-" + uuid.uuid4().hex[:6], service)
        body = encode_spans(spans).SerializeToString()
        headers = {"Content-Type": "application/x-protobuf"}
        exporter = OTLPSpanExporter(endpoint=f"{live_server}/v1/traces", headers=_auth(a.ingest_key))
        assert exporter.export(spans).name == "SUCCESS"
        exporter.shutdown()

        def send(tenant: Tenant) -> ExportTraceServiceResponse:
            response = httpx.post(
                f"{live_server}/v1/traces", content=body, headers={**headers, **_auth(tenant.ingest_key)}, timeout=30
            )
            assert response.status_code == 200
            return ExportTraceServiceResponse.FromString(response.content)

        theirs = send(b)
        assert theirs.partial_success.rejected_spans == 0
        mine = send(a)
        assert mine.partial_success.rejected_spans == 0
        stored = _rows(
            engine, "SELECT license_id, count(*) AS n FROM traces WHERE service_name = :s GROUP BY 1 ORDER BY 1", s=service
        )
        assert stored == [{"license_id": a.license_id, "n": 2}, {"license_id": b.license_id, "n": 2}]
