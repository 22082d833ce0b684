"""Native batch ingest over HTTP against the real app, writer and database."""

from __future__ import annotations

import gzip
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from fernando_telemetry.composition.wiring import build
from fernando_telemetry.services import keys
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import session_factory
from tests.ingest_fixtures import Tenant, admin_key, make_tenant

NOW = datetime.now(UTC)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _count(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


@pytest.fixture()
def engine(committed_engine: Engine) -> Engine:
    """These tests commit: they use the committed-writes database, never the shared rolled-back one."""
    return committed_engine


@pytest.fixture()
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine)


class TestAuth:
    def test_missing_unknown_and_revoked_keys_are_401(self, client: TestClient, tenant: Tenant, engine: Engine) -> None:
        """No key, a made-up key and a revoked key are all refused with 401 and the error body."""
        body = {"events": [{"event_name": "x"}]}
        assert client.post("/api/v1/events", json=body).status_code == 401
        assert client.post("/api/v1/events", json=body, headers=_auth("ft_" + "0" * 40)).status_code == 401
        with session_factory(engine).begin() as session:
            created = keys.create_key(
                session, license_id=tenant.license_id, scopes=["ingest"], new_token=lambda: "ft_" + uuid.uuid4().hex * 2
            )
        assert client.post("/api/v1/events", json=body, headers=_auth(created.token)).status_code == 200
        with session_factory(engine).begin() as session:
            keys.revoke(session, api_key_id=created.api_key_id, now=datetime.now(UTC))
        response = client.post("/api/v1/events", json=body, headers=_auth(created.token))
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "the API key has been revoked"

    def test_x_api_key_header_works_too(self, client: TestClient, tenant: Tenant) -> None:
        """The key may come in X-API-Key instead of Authorization."""
        response = client.post("/api/v1/events", json={"events": [{"event_name": "x"}]}, headers={"X-API-Key": tenant.ingest_key})
        assert response.status_code == 200

    def test_wrong_scope_is_403(self, client: TestClient, tenant: Tenant) -> None:
        """A read-only key cannot ingest; a license key cannot use the admin routes."""
        assert client.post("/api/v1/events", json={"events": []}, headers=_auth(tenant.read_key)).status_code == 403
        response = client.put("/api/v1/admin/users/x", json={}, headers=_auth(tenant.ingest_key))
        assert response.status_code == 403
        assert "admin" in response.json()["error"]["message"]


class TestPerItem:
    def test_bad_items_are_rejected_with_index_and_reason_and_the_rest_land(
        self, client: TestClient, tenant: Tenant, engine: Engine
    ) -> None:
        """Each bad item is named with its index and why; the good items beside them are committed."""
        marker = uuid.uuid4().hex
        items = [
            {"event_name": marker, "user_id": tenant.user_id, "payload": {"n": 0}},
            {"event_name": marker, "user_id": "nobody-" + marker},
            {"event_name": marker, "event_type": "bogus"},
            {"event_name": "x" * 201},
            {"event_name": marker, "event_timestamp": (NOW - timedelta(days=400)).isoformat()},
            {"event_name": marker, "event_timestamp": (NOW + timedelta(days=2)).isoformat()},
            {"event_name": marker, "payload": {"a": "nul\u0000"}},
            {"event_name": marker, "duration_ms": -1},
            "not an object",
            {"event_name": marker, "colour": "red"},
            {"event_name": marker, "payload": {"n": 10}, "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736"},
        ]
        response = client.post("/api/v1/events", json={"events": items}, headers=_auth(tenant.ingest_key))
        assert response.status_code == 200
        answer = response.json()
        assert answer["accepted"] == 3  # a user id never seen before is registered, not a reason to refuse
        reasons = {r["index"]: (r["field"], r["reason"]) for r in answer["rejected"]}
        assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9]
        assert reasons[2][0] == "event_type" and "'bogus' is not one of" in reasons[2][1]
        assert reasons[3] == ("event_name", "is 201 characters long; at most 200 are allowed")
        assert "older than the accepted window" in reasons[4][1]
        assert "in the future" in reasons[5][1]
        assert reasons[6][0] == "payload" and "NUL" in reasons[6][1]
        assert reasons[7][0] == "duration_ms"
        assert reasons[8] == (None, "an item must be a JSON object, got a string")
        assert reasons[9][0] == "colour" and "unknown field" in reasons[9][1]
        assert _count(engine, "SELECT count(*) FROM telemetry_events WHERE event_name = :m", m=marker) == 3
        assert (
            _count(
                engine,
                "SELECT count(*) FROM telemetry_events WHERE event_name = :m AND trace_id = '4bf92f3577b34da6a3ce929d0e0e4736'",
                m=marker,
            )
            == 1
        )

    def test_rows_belong_to_the_keys_license_whatever_the_body_says(
        self, client: TestClient, tenant: Tenant, engine: Engine
    ) -> None:
        """A license key's rows get its license even when the body names another; an admin key may name one."""
        marker = uuid.uuid4().hex
        other = make_tenant(engine)
        client.post(
            "/api/v1/events",
            json={"events": [{"event_name": marker, "license_id": other.license_id}]},
            headers=_auth(tenant.ingest_key),
        )
        assert _count(engine, "SELECT license_id FROM telemetry_events WHERE event_name = :m", m=marker) == tenant.license_id
        admin = admin_key(engine)
        answer = client.post(
            "/api/v1/events",
            json={
                "events": [
                    {"event_name": marker + "a", "license_id": other.license_id},
                    {"event_name": marker + "b", "license_id": 10**12},
                ]
            },
            headers=_auth(admin),
        ).json()
        assert answer["accepted"] == 1 and answer["rejected"][0]["field"] == "license_id"
        assert _count(engine, "SELECT license_id FROM telemetry_events WHERE event_name = :m", m=marker + "a") == other.license_id


class TestWholeRequest:
    @pytest.mark.parametrize(
        ("content", "headers", "status", "code"),
        [
            (b'{"events": [', {"content-type": "application/json"}, 400, "malformed"),
            (b"\x1f\x8b\x08\x00garbage", {"content-type": "application/json", "content-encoding": "gzip"}, 400, "malformed"),
            (
                gzip.compress(b'{"events": []}')[:-8],
                {"content-type": "application/json", "content-encoding": "gzip"},
                400,
                "malformed",
            ),
            (b"{}", {"content-type": "text/plain"}, 415, "unsupported_media_type"),
            (b"{}", {"content-type": "application/json", "content-encoding": "br"}, 415, "unsupported_media_type"),
            (b'{"evnts": []}', {"content-type": "application/json"}, 422, "schema_mismatch"),
            (b"[1, 2]", {"content-type": "application/json"}, 422, "schema_mismatch"),
            (b'{"events": {"a": 1}}', {"content-type": "application/json"}, 400, "invalid_input"),
            (
                b'{"events": [' + b'{"event_name": "a"},' * 20_000 + b"{}]}",
                {"content-type": "application/json"},
                413,
                "payload_too_large",
            ),
            (
                gzip.compress(b" " * 5_000_000 + b"{}"),
                {"content-type": "application/json", "content-encoding": "gzip"},
                413,
                "payload_too_large",
            ),
        ],
        ids=[
            "bad-json",
            "bad-gzip",
            "truncated-gzip",
            "text-plain",
            "brotli",
            "no-events-key",
            "array-body",
            "events-not-array",
            "too-large",
            "gzip-bomb",
        ],
    )
    def test_whole_request_problems_are_clear_4xx(
        self, client: TestClient, tenant: Tenant, content: bytes, headers: dict[str, str], status: int, code: str
    ) -> None:
        """Each whole-request problem has its own status and an error body saying what was wrong."""
        response = client.post("/api/v1/events", content=content, headers={**headers, **_auth(tenant.ingest_key)})
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["message"]

    def test_gzip_body_is_accepted(self, client: TestClient, tenant: Tenant, engine: Engine) -> None:
        """A gzip-encoded body is inflated and stored."""
        marker = uuid.uuid4().hex
        body = gzip.compress(f'{{"events": [{{"event_name": "{marker}"}}]}}'.encode())
        response = client.post(
            "/api/v1/events",
            content=body,
            headers={"content-type": "application/json", "content-encoding": "gzip", **_auth(tenant.ingest_key)},
        )
        assert response.json() == {"accepted": 1, "rejected": []}
        assert _count(engine, "SELECT count(*) FROM telemetry_events WHERE event_name = :m", m=marker) == 1


class TestNoDuplicates:
    def test_retried_events_and_spans_are_stored_once(self, client: TestClient, tenant: Tenant, engine: Engine) -> None:
        """Sending the same events (by event_id) and spans (by trace and span id) twice stores each once."""
        trace_id = uuid.uuid4().hex
        events = {
            "events": [
                {"event_id": str(uuid.uuid4()), "event_name": "retry", "event_timestamp": NOW.isoformat()} for _ in range(3)
            ]
        }
        spans = {
            "spans": [
                {
                    "trace_id": trace_id,
                    "span_id": f"{i:016x}",
                    "operation_name": "op",
                    "service_name": "svc",
                    "start_time": NOW.isoformat(),
                    "duration_ms": 3,
                }
                for i in range(1, 4)
            ]
        }
        for _ in range(2):
            assert client.post("/api/v1/events", json=events, headers=_auth(tenant.ingest_key)).json()["accepted"] == 3
            assert client.post("/api/v1/spans", json=spans, headers=_auth(tenant.ingest_key)).json()["accepted"] == 3
        ids = [e["event_id"] for e in events["events"]]
        assert _count(engine, "SELECT count(*) FROM telemetry_events WHERE event_id = ANY(CAST(:ids AS uuid[]))", ids=ids) == 3
        assert _count(engine, "SELECT count(*) FROM traces WHERE trace_id = :t", t=trace_id) == 3

    def test_idempotency_key_replays_the_answer_for_metrics(self, client: TestClient, tenant: Tenant, engine: Engine) -> None:
        """System metrics sent twice with one Idempotency-Key are stored once and get the same answer."""
        name = "metric_" + uuid.uuid4().hex[:8]
        body = {"metrics": [{"metric_name": name, "value": 1.5}, {"metric_name": name, "value": "x"}]}
        headers = {**_auth(tenant.ingest_key), "Idempotency-Key": uuid.uuid4().hex}
        first = client.post("/api/v1/system-metrics", json=body, headers=headers).json()
        second = client.post("/api/v1/system-metrics", json=body, headers=headers).json()
        assert first == second
        assert first["accepted"] == 1 and first["rejected"][0]["index"] == 1
        assert _count(engine, "SELECT count(*) FROM system_metrics WHERE metric_name = :n", n=name) == 1
        client.post("/api/v1/system-metrics", json=body, headers=_auth(tenant.ingest_key))
        assert _count(engine, "SELECT count(*) FROM system_metrics WHERE metric_name = :n", n=name) == 2

    def test_business_metrics_upsert_on_their_natural_key(self, client: TestClient, tenant: Tenant, engine: Engine) -> None:
        """A KPI sent again for the same period replaces the value instead of adding a row."""
        name = "kpi_" + uuid.uuid4().hex[:8]
        for value in ("10", "12.50"):
            item = {
                "metric_name": name,
                "metric_category": "revenue",
                "metric_value": value,
                "period_type": "daily",
                "period_start": "2026-11-01T00:00:00Z",
                "dimensions": {"region": "eu", "plan": "pro"},
            }
            assert (
                client.post("/api/v1/business-metrics", json={"metrics": [item]}, headers=_auth(tenant.ingest_key)).json()[
                    "accepted"
                ]
                == 1
            )
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT metric_value, period_end FROM business_metrics WHERE metric_name = :n"), {"n": name}
            ).all()
        assert [(str(value), end.isoformat()) for value, end in rows] == [("12.500000", "2026-11-02T00:00:00+00:00")]


class TestMetricSemantics:
    def _metrics(self, engine: Engine, name: str) -> list[dict]:
        with engine.connect() as connection:
            return [
                dict(row._mapping)
                for row in connection.execute(
                    text(
                        "SELECT value, start_time, cumulative_value, sample_count, p50, p99, sketch_counts, min_value, max_value "
                        'FROM system_metrics WHERE metric_name = :n ORDER BY "timestamp"'
                    ),
                    {"n": name},
                )
            ]

    def test_a_cumulative_counter_is_stored_as_increments(self, client: TestClient, tenant: Tenant, engine: Engine) -> None:
        """Running totals (the default for counters) become increments: a baseline of 0, differences, a drop counted
        from zero; a resent point is accepted and adds nothing."""
        name = "orders_" + uuid.uuid4().hex[:8]
        times = [(NOW - timedelta(minutes=m)).isoformat() for m in (4, 3, 2, 1)]
        items = [
            {"metric_name": name, "metric_type": "counter", "value": v, "timestamp": t}
            for v, t in zip((10, 15, 3, 8), times, strict=True)
        ]
        assert (
            client.post("/api/v1/system-metrics", json={"metrics": items[:2]}, headers=_auth(tenant.ingest_key)).json()[
                "accepted"
            ]
            == 2
        )
        assert (
            client.post("/api/v1/system-metrics", json={"metrics": items[1:]}, headers=_auth(tenant.ingest_key)).json()[
                "accepted"
            ]
            == 3
        )
        rows = self._metrics(engine, name)
        assert [(r["value"], r["cumulative_value"]) for r in rows] == [(0.0, 10.0), (5.0, 15.0), (3.0, 3.0), (5.0, 8.0)]
        assert rows[0]["start_time"] is None and rows[1]["start_time"].isoformat() == times[0]

    def test_a_delta_counter_and_a_known_start_are_taken_as_sent(
        self, client: TestClient, tenant: Tenant, engine: Engine
    ) -> None:
        """A delta counter is its increment; a cumulative one with its start time counts its first total whole."""
        name = "jobs_" + uuid.uuid4().hex[:8]
        start = (NOW - timedelta(minutes=10)).isoformat()
        items = [
            {"metric_name": name, "metric_type": "counter", "temporality": "delta", "value": 4, "start_time": start,
             "timestamp": (NOW - timedelta(minutes=5)).isoformat()},
            {"metric_name": name, "metric_type": "counter", "value": 7, "start_time": start, "labels": {"k": "cumulative"},
             "timestamp": (NOW - timedelta(minutes=4)).isoformat()},
        ]  # fmt: skip
        assert (
            client.post("/api/v1/system-metrics", json={"metrics": items}, headers=_auth(tenant.ingest_key)).json()["accepted"]
            == 2
        )
        assert [(r["value"], r["start_time"].isoformat(), r["cumulative_value"]) for r in self._metrics(engine, name)] == [
            (4.0, start, None),
            (7.0, start, 7.0),
        ]

    def test_histograms_carry_buckets_or_samples(self, client: TestClient, tenant: Tenant, engine: Engine) -> None:
        """Buckets become the row's sketch, count and percentiles; raw samples give exact count, mean, extremes and percentiles."""
        name = "lat_" + uuid.uuid4().hex[:8]
        items = [
            {"metric_name": name, "metric_type": "histogram", "buckets": {"bounds": [10, 50], "counts": [4, 5, 1]},
             "value": 20.0, "timestamp": (NOW - timedelta(minutes=2)).isoformat()},
            {"metric_name": name, "metric_type": "timer", "samples": [float(v) for v in range(1, 101)],
             "timestamp": (NOW - timedelta(minutes=1)).isoformat()},
        ]  # fmt: skip
        assert (
            client.post("/api/v1/system-metrics", json={"metrics": items}, headers=_auth(tenant.ingest_key)).json()["accepted"]
            == 2
        )
        by_buckets, by_samples = self._metrics(engine, name)
        assert (by_buckets["value"], by_buckets["sample_count"], sum(by_buckets["sketch_counts"])) == (20.0, 10, 10)
        assert (by_samples["value"], by_samples["sample_count"], sum(by_samples["sketch_counts"])) == (50.5, 100, 100)
        assert (by_samples["min_value"], by_samples["max_value"], by_samples["p50"]) == (1.0, 100.0, 50.5)
        assert by_samples["p99"] == pytest.approx(99.01)

    @pytest.mark.parametrize(
        ("item", "field"),
        [
            ({"metric_type": "counter", "value": 1, "temporality": "sometimes"}, "temporality"),
            ({"metric_type": "gauge", "value": 1, "temporality": "delta"}, "temporality"),
            ({"metric_type": "counter", "value": 1, "samples": [1]}, "samples"),
            ({"metric_type": "histogram", "buckets": {"bounds": [1], "counts": [1]}}, "buckets"),
            ({"metric_type": "histogram", "buckets": {"bounds": [1], "counts": [1, 2]}, "p95": 3}, "p95"),
            ({"metric_type": "histogram", "samples": [1, "x"]}, "samples"),
            ({"metric_type": "histogram", "samples": [1], "buckets": {"bounds": [], "counts": [1]}}, "samples"),
            ({"metric_type": "histogram", "value": 2, "temporality": "cumulative"}, "temporality"),
            ({"metric_type": "counter", "value": 1, "start_time": "2999-01-01T00:00:00Z"}, "start_time"),
        ],
    )
    def test_bad_metric_fields_are_rejected_by_name(self, client: TestClient, tenant: Tenant, item: dict, field: str) -> None:
        """A wrong temporality, buckets, samples or start time rejects the item, naming the field."""
        body = {"metrics": [{"metric_name": "m", **item}]}
        answer = client.post("/api/v1/system-metrics", json=body, headers=_auth(tenant.ingest_key)).json()
        assert answer["accepted"] == 0
        assert answer["rejected"][0]["field"] == field


class TestBackpressure:
    def test_over_the_in_flight_limit_answers_503_and_nothing_acknowledged_is_lost(
        self, engine: Engine, committed_url: str
    ) -> None:
        """While the database stalls, requests past the in-flight limit get 503 + Retry-After; acked rows all land."""
        tenant = make_tenant(engine)
        wiring = build(Settings(ingest_max_rows_in_flight=10), engine=engine)
        wiring.start()
        name = "bp_" + uuid.uuid4().hex[:8]
        blocker = psycopg.connect(committed_url)
        blocker.execute("LOCK TABLE system_metrics IN ACCESS EXCLUSIVE MODE")
        statuses: list[int] = []
        try:
            with TestClient(wiring.app) as client:

                def send() -> None:
                    body = {"metrics": [{"metric_name": name, "value": float(i)} for i in range(5)]}
                    response = client.post("/api/v1/system-metrics", json=body, headers=_auth(tenant.ingest_key))
                    statuses.append(response.status_code)
                    if response.status_code == 503:
                        assert response.headers["Retry-After"] == "1"
                        assert response.json()["error"]["code"] == "overloaded"

                threads = [threading.Thread(target=send) for _ in range(6)]
                for thread in threads:
                    thread.start()
                deadline = time.monotonic() + 20
                while statuses.count(503) < 3 and time.monotonic() < deadline:
                    time.sleep(0.05)
                blocker.rollback()  # the database moves again
                for thread in threads:
                    thread.join(30)
        finally:
            blocker.close()
            wiring.stop()
        assert statuses.count(503) >= 3
        assert statuses.count(200) >= 1
        assert _count(engine, "SELECT count(*) FROM system_metrics WHERE metric_name = :n", n=name) == 5 * statuses.count(200)

    def test_a_key_over_its_rate_gets_429(self, engine: Engine) -> None:
        """With a rate limit, a burst past it is answered 429 with Retry-After."""
        tenant = make_tenant(engine)
        wiring = build(Settings(ingest_rate_limit_items_per_s=2), engine=engine)
        wiring.start()
        try:
            with TestClient(wiring.app) as client:
                body = {"events": [{"event_name": "burst"}] * 15}
                assert client.post("/api/v1/events", json=body, headers=_auth(tenant.ingest_key)).status_code == 200
                response = client.post("/api/v1/events", json=body, headers=_auth(tenant.ingest_key))
        finally:
            wiring.stop()
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1


class TestAdmin:
    def test_platform_upserts_users_and_licenses(self, client: TestClient, engine: Engine) -> None:
        """PUT creates (201) then updates (200) users and licenses; explicit license ids do not collide later."""
        admin = admin_key(engine)
        license_id = 5_000_000 + int(uuid.uuid4().int % 1_000_000)
        first = client.put(
            f"/api/v1/admin/licenses/{license_id}", json={"name": "Platform Co", "plan": "pro"}, headers=_auth(admin)
        )
        assert first.status_code == 201 and first.json()["license_id"] == license_id
        again = client.put(
            f"/api/v1/admin/licenses/{license_id}", json={"name": "Platform Co", "plan": "enterprise"}, headers=_auth(admin)
        )
        assert again.status_code == 200 and again.json()["plan"] == "enterprise"
        user = client.put("/api/v1/admin/users/pl-1", json={"email": "A@x.io", "license_id": license_id}, headers=_auth(admin))
        assert user.status_code in (200, 201) and user.json()["license_id"] == license_id
        missing = client.put("/api/v1/admin/users/pl-2", json={"license_id": 10**15}, headers=_auth(admin))
        assert missing.status_code == 404
        bad = client.put("/api/v1/admin/users/pl-3", json={"email": 5, "nope": 1}, headers=_auth(admin))
        assert bad.status_code == 422 and bad.json()["error"]["details"]
        with session_factory(engine).begin() as session:
            assert keys.create_license(session, name="after") > license_id
