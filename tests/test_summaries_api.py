"""The hourly summary routes against the real app: hand-computed figures, filters, hour rounding, pages, and
tenant scoping (a license key never sees another license's events, samples or spans).

Rows are committed to the committed-writes database under unique service names and fresh licenses,
about 30 hours ago (``H``), with explicit timestamps.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from fernando_telemetry.core.enums import EventType, SpanStatus
from fernando_telemetry.storage.database import session_factory
from tests.helpers import add_event, add_metric, add_span
from tests.ingest_fixtures import Tenant, admin_key, make_tenant


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class World:
    a: Tenant
    b: Tenant
    admin: str
    hour: datetime
    service: str
    only_a_service: str


@pytest.fixture()
def world(committed_engine: Engine) -> World:
    """Licenses A and B with events, samples and spans in hours H and H+1; figures for A are hand-computed in the tests.

    Events of A in H: user_action at :10 (10 ms) and :20 (30 ms) by one user in two sessions, an error_event at :30;
    in H+1 a user_action whose payload has an ``error`` key. B has one user_action in H.
    Samples of A (service S, metric ``latency``) in H: 1, 2, 3, 4; B has 100 in the same group.
    Spans of A (service S, ``GET /x``) in H: 10, 20, 30, 40 ms, the 40 ms one an error; B has a 1000 ms span there.
    Service T has samples and spans of A only (for comparing the views with the per-license figures).
    """
    a, b = make_tenant(committed_engine), make_tenant(committed_engine)
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=30)
    marker = uuid.uuid4().hex[:8]
    service, only_a = f"svc-{marker}", f"only-a-{marker}"
    with session_factory(committed_engine).begin() as session:
        for minute, duration, session_id in ((10, 10.0, "s1"), (20, 30.0, "s2")):
            add_event(
                session,
                at=hour + timedelta(minutes=minute),
                user_id=a.user_id,
                license_id=a.license_id,
                session_id=session_id,
                duration_ms=duration,
            )
        add_event(
            session, at=hour + timedelta(minutes=30), license_id=a.license_id, event_type=EventType.ERROR_EVENT, event_name="boom"
        )
        add_event(session, at=hour + timedelta(hours=1, minutes=5), license_id=a.license_id, payload={"error": "timeout"})
        add_event(session, at=hour + timedelta(minutes=40), user_id=b.user_id, license_id=b.license_id, session_id="sb")
        for value in (1.0, 2.0, 3.0, 4.0):
            add_metric(
                session,
                at=hour + timedelta(minutes=value * 10),
                metric_name="latency",
                service_name=service,
                value=value,
                license_id=a.license_id,
            )
        add_metric(
            session,
            at=hour + timedelta(minutes=50),
            metric_name="latency",
            service_name=service,
            value=100.0,
            license_id=b.license_id,
        )
        for duration in (10.0, 20.0, 30.0, 40.0):
            add_span(
                session,
                at=hour + timedelta(minutes=duration),
                duration_ms=duration,
                service_name=service,
                operation_name="GET /x",
                license_id=a.license_id,
                status=SpanStatus.ERROR if duration == 40.0 else SpanStatus.OK,
            )
        add_span(
            session,
            at=hour + timedelta(minutes=55),
            duration_ms=1000.0,
            service_name=service,
            operation_name="GET /x",
            license_id=b.license_id,
        )
        for index, value in enumerate((5.0, 7.0, 9.0, 50.0, 51.0)):
            moment = hour + timedelta(hours=index % 2, minutes=index)
            add_metric(session, at=moment, metric_name="rss", service_name=only_a, value=value, license_id=a.license_id)
            add_span(
                session,
                at=moment,
                duration_ms=value,
                service_name=only_a,
                operation_name="job",
                license_id=a.license_id,
                status=SpanStatus.ERROR if index == 0 else SpanStatus.OK,
            )
    return World(a, b, admin_key(committed_engine), hour, service, only_a)


def _window(world: World, hours: int = 2) -> dict[str, str]:
    return {"from": _iso(world.hour), "to": _iso(world.hour + timedelta(hours=hours))}


def _rows(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return response.json()["rows"]


class TestEventsHourly:
    def test_a_license_key_gets_its_hand_computed_hours_only(self, client: TestClient, world: World) -> None:
        """License A's two hours, by type, with counts, distinct users and sessions, mean and p95 duration, errors."""
        rows = _rows(client.get("/api/v1/summaries/events-hourly", params=_window(world), headers=_auth(world.a.read_key)))
        h0, h1 = _iso(world.hour), _iso(world.hour + timedelta(hours=1))
        got = [
            (
                row["hour"].replace("+00:00", "Z"),
                row["event_type"],
                row["license_id"],
                row["events"],
                row["unique_users"],
                row["unique_sessions"],
                row["avg_duration_ms"],
                row["p95_duration_ms"],
                row["errors"],
            )
            for row in rows
        ]
        a = world.a.license_id
        assert got == [
            (h0, "error_event", a, 1, 0, 0, None, None, 1),
            (h0, "user_action", a, 2, 1, 2, 20.0, pytest.approx(29.0), 0),  # p95 of 10, 30 = 10 + 0.95 * 20
            (h1, "user_action", a, 1, 0, 0, None, None, 1),  # the payload carries an error
        ]

    def test_an_admin_sees_every_license_or_the_one_it_names(self, client: TestClient, world: World) -> None:
        """Without license_id an admin key sees both licenses' rows; with it, that license's only."""
        admin = _auth(world.admin)
        every = _rows(client.get("/api/v1/summaries/events-hourly", params=_window(world), headers=admin))
        assert {world.a.license_id, world.b.license_id} <= {row["license_id"] for row in every}
        only_b = _rows(
            client.get(
                "/api/v1/summaries/events-hourly", params={**_window(world), "license_id": world.b.license_id}, headers=admin
            )
        )
        assert [(row["license_id"], row["events"]) for row in only_b] == [(world.b.license_id, 1)]

    def test_another_license_is_forbidden(self, client: TestClient, world: World) -> None:
        """A license key naming another license gets 403 on every summary route."""
        for route in ("events-hourly", "services", "traces"):
            response = client.get(
                f"/api/v1/summaries/{route}", params={"license_id": world.b.license_id}, headers=_auth(world.a.read_key)
            )
            assert response.status_code == 403, route

    def test_event_type_filter_and_hour_rounding(self, client: TestClient, world: World) -> None:
        """from is rounded down and to up to the hour: 0:30..1:00:01 past H reads both hours; event_type narrows."""
        params = {
            "from": _iso(world.hour + timedelta(minutes=30)),
            "to": _iso(world.hour + timedelta(hours=1, seconds=1)),
            "event_type": "user_action",
        }
        response = client.get("/api/v1/summaries/events-hourly", params=params, headers=_auth(world.a.read_key))
        assert [row["events"] for row in _rows(response)] == [2, 1]
        body = response.json()
        assert (body["from"], body["to"]) == (
            world.hour.isoformat().replace("+00:00", "Z"),
            (world.hour + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
        )

    def test_the_default_range_is_the_last_24_hours(self, client: TestClient, world: World, committed_engine: Engine) -> None:
        """Without from/to, an event of an hour ago is in and the events of 30 hours ago are not."""
        with session_factory(committed_engine).begin() as session:
            add_event(
                session,
                at=datetime.now(UTC) - timedelta(hours=1),
                license_id=world.a.license_id,
                event_type=EventType.SECURITY_EVENT,
            )
        rows = _rows(client.get("/api/v1/summaries/events-hourly", headers=_auth(world.a.read_key)))
        assert [(row["event_type"], row["events"]) for row in rows] == [("security_event", 1)]

    def test_offset_pages(self, client: TestClient, world: World) -> None:
        """limit=2 then offset=2 give the three rows once each; the last page has no next_offset."""
        params, key = _window(world), _auth(world.a.read_key)
        first = client.get("/api/v1/summaries/events-hourly", params={**params, "limit": 2}, headers=key).json()
        second = client.get(
            "/api/v1/summaries/events-hourly", params={**params, "limit": 2, "offset": first["next_offset"]}, headers=key
        ).json()
        assert first["next_offset"] == 2 and second["next_offset"] is None
        assert first["rows"] + second["rows"] == _rows(client.get("/api/v1/summaries/events-hourly", params=params, headers=key))

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"from": "last tuesday"}, "from"),
            ({"to": "2026-11-28T25:00:00Z"}, "to"),
            ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
            ({"from": "2026-09-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
            ({"event_type": "gossip"}, "event_type"),
            ({"limit": "100000"}, "limit"),
            ({"service_name": "x"}, "service_name"),
        ],
    )
    def test_bad_parameters_are_400s_naming_the_parameter(
        self, client: TestClient, world: World, params: dict[str, str], field: str
    ) -> None:
        """Unparseable or reversed times, a range over 31 days, an unknown type, a huge limit, a foreign filter: 400."""
        response = client.get("/api/v1/summaries/events-hourly", params=params, headers=_auth(world.a.read_key))
        assert response.status_code == 400, response.text
        assert response.json()["error"]["details"][0]["field"] == field


class TestServices:
    def test_a_license_key_gets_figures_of_its_own_samples(self, client: TestClient, world: World) -> None:
        """License A's latency in H is over 1, 2, 3, 4 only: B's 100 is not counted."""
        params = {**_window(world), "service_name": world.service}
        rows = _rows(client.get("/api/v1/summaries/services", params=params, headers=_auth(world.a.read_key)))
        assert len(rows) == 1
        row = rows[0]
        assert (row["metric_name"], row["samples"], row["avg_value"], row["min_value"], row["max_value"]) == (
            "latency",
            4,
            2.5,
            1.0,
            4.0,
        )
        assert (row["p50"], row["p90"], row["p95"], row["p99"]) == pytest.approx((2.5, 3.7, 3.85, 3.97))

    def test_an_admin_without_a_license_reads_the_view_over_every_license(self, client: TestClient, world: World) -> None:
        """The admin's figures for the shared service include B's sample; with license_id=B only B's."""
        params = {**_window(world), "service_name": world.service, "metric_name": "latency"}
        every = _rows(client.get("/api/v1/summaries/services", params=params, headers=_auth(world.admin)))
        assert [(row["samples"], row["max_value"]) for row in every] == [(5, 100.0)]
        only_b = _rows(
            client.get(
                "/api/v1/summaries/services", params={**params, "license_id": world.b.license_id}, headers=_auth(world.admin)
            )
        )
        assert [(row["samples"], row["max_value"]) for row in only_b] == [(1, 100.0)]

    def test_per_license_figures_equal_the_view_where_one_license_has_all_rows(self, client: TestClient, world: World) -> None:
        """For a service only A uses, the view (admin) and A's own figures agree, row for row (percentiles within 1%)."""
        params = {**_window(world), "service_name": world.only_a_service}
        view = _rows(client.get("/api/v1/summaries/services", params=params, headers=_auth(world.admin)))
        mine = _rows(client.get("/api/v1/summaries/services", params=params, headers=_auth(world.a.read_key)))
        assert len(view) == 2
        assert [{k: v for k, v in row.items() if k not in ("p50", "p90", "p95", "p99")} for row in mine] == [
            {k: v for k, v in row.items() if k not in ("p50", "p90", "p95", "p99")} for row in view
        ]
        for view_row, my_row in zip(view, mine, strict=True):
            assert [my_row[p] for p in ("p50", "p90", "p95", "p99")] == pytest.approx(
                [view_row[p] for p in ("p50", "p90", "p95", "p99")], rel=0.01
            )


class TestTraces:
    def test_a_license_key_gets_figures_of_its_own_spans(self, client: TestClient, world: World) -> None:
        """License A's GET /x in H: 4 spans, 1 error, durations 10..40 ms; B's 1000 ms span is not counted."""
        params = {**_window(world), "service_name": world.service, "operation_name": "GET /x"}
        rows = _rows(client.get("/api/v1/summaries/traces", params=params, headers=_auth(world.a.read_key)))
        assert len(rows) == 1
        row = rows[0]
        assert (row["spans"], row["errors"], row["error_rate"]) == (4, 1, 0.25)
        assert (row["p50_duration_ms"], row["p95_duration_ms"], row["p99_duration_ms"]) == pytest.approx((25.0, 38.5, 39.7))

    def test_an_admin_without_a_license_reads_the_view_over_every_license(self, client: TestClient, world: World) -> None:
        """The admin's figures include B's span; with license_id=A they are A's again."""
        params = {**_window(world), "service_name": world.service}
        every = _rows(client.get("/api/v1/summaries/traces", params=params, headers=_auth(world.admin)))
        assert [(row["spans"], row["errors"]) for row in every] == [(5, 1)]
        only_a = _rows(
            client.get(
                "/api/v1/summaries/traces", params={**params, "license_id": world.a.license_id}, headers=_auth(world.admin)
            )
        )
        assert [(row["spans"], row["errors"]) for row in only_a] == [(4, 1)]

    def test_per_license_figures_equal_the_view_where_one_license_has_all_rows(self, client: TestClient, world: World) -> None:
        """For a service only A uses, the view (admin) and A's own figures agree (percentiles within 1%)."""
        params = {**_window(world), "service_name": world.only_a_service}
        view = _rows(client.get("/api/v1/summaries/traces", params=params, headers=_auth(world.admin)))
        mine = _rows(client.get("/api/v1/summaries/traces", params=params, headers=_auth(world.a.read_key)))
        percentiles = ("p50_duration_ms", "p95_duration_ms", "p99_duration_ms")
        assert len(view) == 2
        assert [{k: v for k, v in row.items() if k not in percentiles} for row in mine] == [
            {k: v for k, v in row.items() if k not in percentiles} for row in view
        ]
        for view_row, my_row in zip(view, mine, strict=True):
            assert [my_row[p] for p in percentiles] == pytest.approx([view_row[p] for p in percentiles], rel=0.01)

    def test_a_key_is_required(self, client: TestClient) -> None:
        """Without a key every summary route answers 401."""
        for route in ("events-hourly", "services", "traces"):
            assert client.get(f"/api/v1/summaries/{route}").status_code == 401
