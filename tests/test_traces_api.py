"""Trace search, one trace as a tree, per-service RED figures and dependency edges, over HTTP against the
real app and database; spans are sent through the ingest API with each tenant's key."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from fernando_telemetry.api.traces import MAX_NESTING
from tests.ingest_fixtures import Tenant, admin_key, make_tenant

NOW = datetime.now(UTC)
BASE = (NOW - timedelta(minutes=30)).replace(microsecond=0)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _at(offset_ms: float, base: datetime = BASE) -> str:
    return (base + timedelta(milliseconds=offset_ms)).isoformat()


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _span(trace_id: str, span_id: str, parent: str | None, start_ms: float, duration_ms: float, **fields: Any) -> dict[str, Any]:
    base = fields.pop("base", BASE)
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "operation_name": fields.pop("operation_name", "op"),
        "service_name": fields.pop("service_name", "web"),
        "start_time": _at(start_ms, base),
        "duration_ms": duration_ms,
        **fields,
    }


def _send(client: TestClient, key: str, spans: list[dict[str, Any]]) -> None:
    answer = client.post("/api/v1/spans", json={"spans": spans}, headers=_auth(key)).json()
    assert answer == {"accepted": len(spans), "rejected": []}, answer


def _sid(n: int) -> str:
    return f"{n + 1:016x}"


def _trace() -> str:
    return uuid.uuid4().hex


@pytest.fixture()
def engine(committed_engine: Engine) -> Engine:
    """These tests commit: they use the committed-writes database, never the shared rolled-back one."""
    return committed_engine


@pytest.fixture()
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine)


@pytest.fixture()
def other(engine: Engine) -> Tenant:
    return make_tenant(engine)


@pytest.fixture(scope="module")
def admin(committed_engine: Engine) -> str:
    return admin_key(committed_engine)


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()["error"]


class TestTraceDetail:
    def test_the_trace_comes_back_as_a_tree_with_depth_self_time_and_summary(self, client: TestClient, tenant: Tenant) -> None:
        """Children nest under their parent by start time, each with depth and self time; the summary covers the trace."""
        trace_id = _trace()
        _send(
            client,
            tenant.ingest_key,
            [
                _span(trace_id, _sid(3), _sid(1), 60, 30, service_name="payments", status="error", operation_name="charge"),
                _span(
                    trace_id,
                    _sid(0),
                    None,
                    0,
                    100,
                    service_name="web",
                    span_kind="server",
                    operation_name="POST /pay",
                    status_code=200,
                    attributes={"http.route": "/pay"},
                ),
                _span(trace_id, _sid(1), _sid(0), 10, 80, service_name="web", span_kind="client"),
                _span(trace_id, _sid(2), _sid(1), 20, 50, service_name="payments", operation_name="check"),
            ],
        )
        response = client.get(f"/api/v1/traces/{trace_id}", headers=_auth(tenant.read_key))
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        body = response.json()
        assert {
            key: body[key]
            for key in (
                "trace_id",
                "root_service",
                "root_operation",
                "span_count",
                "services",
                "error",
                "orphan_count",
                "max_depth",
                "truncated",
            )
        } == {
            "trace_id": trace_id,
            "root_service": "web",
            "root_operation": "POST /pay",
            "span_count": 4,
            "services": ["payments", "web"],
            "error": True,
            "orphan_count": 0,
            "max_depth": 2,
            "truncated": False,
        }
        assert body["duration_ms"] == pytest.approx(100.0)
        assert datetime.fromisoformat(body["start_time"]) == BASE
        [root] = body["roots"]
        assert (root["span_id"], root["depth"], root["orphan"], root["self_time_ms"]) == (_sid(0), 0, False, pytest.approx(20.0))
        assert root["attributes"] == {"http.route": "/pay"} and root["status_code"] == 200 and root["span_kind"] == "server"
        [client_span] = root["children"]
        # 10..90 minus its children 20..70 and 60..90 counted once (20..90); a plain subtraction would give 0
        assert (client_span["depth"], client_span["self_time_ms"]) == (1, pytest.approx(10.0))
        assert [(child["span_id"], child["depth"]) for child in client_span["children"]] == [(_sid(2), 2), (_sid(3), 2)]
        assert client_span["children"][1]["status"] == "error"

    def test_missing_parents_and_several_roots_are_at_the_top(self, client: TestClient, tenant: Tenant) -> None:
        """Spans whose parent never arrived are top-level and flagged orphan, beside every root, by start time."""
        trace_id = _trace()
        _send(
            client,
            tenant.ingest_key,
            [
                _span(trace_id, _sid(0), None, 10, 5),
                _span(trace_id, _sid(1), "00000000000000aa", 0, 5, service_name="late"),
                _span(trace_id, _sid(2), None, 20, 5, service_name="cron"),
                _span(trace_id, _sid(3), _sid(1), 1, 1, service_name="late"),
            ],
        )
        body = client.get(f"/api/v1/traces/{trace_id}", headers=_auth(tenant.read_key)).json()
        assert [(node["span_id"], node["orphan"], len(node["children"])) for node in body["roots"]] == [
            (_sid(1), True, 1),
            (_sid(0), False, 0),
            (_sid(2), False, 0),
        ]
        assert body["orphan_count"] == 1
        assert (body["root_service"], body["root_operation"]) == ("web", "op")  # the earliest span without a parent

    def test_a_trace_is_found_without_a_time_range_days_later(self, client: TestClient, tenant: Tenant) -> None:
        """A trace from five days ago is returned whole, across day partitions, with no from/to given."""
        trace_id = _trace()
        old = (NOW - timedelta(days=5)).replace(hour=23, minute=59, second=59, microsecond=900_000)
        _send(
            client,
            tenant.ingest_key,
            [
                _span(trace_id, _sid(0), None, 0, 300, base=old),
                _span(trace_id, _sid(1), _sid(0), 200, 50, base=old),  # starts on the next day, in the next partition
            ],
        )
        body = client.get(f"/api/v1/traces/{trace_id.upper()}", headers=_auth(tenant.read_key)).json()
        assert body["trace_id"] == trace_id and body["span_count"] == 2
        assert body["roots"][0]["children"][0]["span_id"] == _sid(1)

    def test_a_deep_trace_is_valid_json_with_nesting_capped(self, client: TestClient, tenant: Tenant) -> None:
        """A chain deeper than MAX_NESTING parses with any JSON reader: below the cap descendants are listed flat."""
        trace_id = _trace()
        depth = MAX_NESTING + 50
        _send(
            client,
            tenant.ingest_key,
            [_span(trace_id, _sid(i), None if i == 0 else _sid(i - 1), i * 0.01, 10_000 - i) for i in range(depth)],
        )
        body = client.get(f"/api/v1/traces/{trace_id}", headers=_auth(tenant.read_key)).json()
        assert body["max_depth"] == depth - 1 and body["span_count"] == depth
        node, nested = body["roots"][0], 1
        while node["children"] and not node.get("descendants_flattened"):
            node, nested = node["children"][0], nested + 1
        assert nested == MAX_NESTING and node["depth"] == MAX_NESTING - 1
        flat = node["children"]
        assert [child["depth"] for child in flat] == list(range(MAX_NESTING, depth))
        assert [child["parent_span_id"] for child in flat] == [_sid(i - 1) for i in range(MAX_NESTING, depth)]
        assert all(child["children"] == [] for child in flat)

    @pytest.mark.parametrize(
        "bad_id",
        ["abc", "4bf92f3577b34da6a3ce929d0e0e473", "4bf92f3577b34da6a3ce929d0e0e4736ff", "zbf92f3577b34da6a3ce929d0e0e4736"],
    )
    def test_an_id_that_is_not_32_hex_characters_is_400(self, client: TestClient, tenant: Tenant, bad_id: str) -> None:
        """A malformed trace id is refused with a message naming trace_id."""
        error = _error(client.get(f"/api/v1/traces/{bad_id}", headers=_auth(tenant.read_key)), 400)
        assert "trace_id" in error["message"]

    def test_an_unknown_trace_is_404(self, client: TestClient, tenant: Tenant) -> None:
        """No span of that id: 404 with the error body."""
        assert _error(client.get(f"/api/v1/traces/{_trace()}", headers=_auth(tenant.read_key)), 404)["code"] == "not_found"

    def test_another_licenses_trace_is_404_and_admin_sees_it(
        self, client: TestClient, tenant: Tenant, other: Tenant, admin: str
    ) -> None:
        """B's key cannot tell A's trace from a missing one; an admin reads it, or not when filtering by B."""
        trace_id = _trace()
        _send(client, tenant.ingest_key, [_span(trace_id, _sid(0), None, 0, 5)])
        url = f"/api/v1/traces/{trace_id}"
        assert client.get(url, headers=_auth(other.read_key)).status_code == 404
        assert client.get(url, headers=_auth(tenant.read_key)).status_code == 200
        assert client.get(url, headers=_auth(admin)).json()["span_count"] == 1
        assert client.get(url, params={"license_id": other.license_id}, headers=_auth(admin)).status_code == 404
        assert client.get(url, params={"license_id": tenant.license_id}, headers=_auth(admin)).status_code == 200
        assert client.get(url, params={"license_id": tenant.license_id}, headers=_auth(other.read_key)).status_code == 403

    def test_a_trace_spanning_two_licenses_shows_each_only_its_spans(
        self, client: TestClient, tenant: Tenant, other: Tenant
    ) -> None:
        """Where a trace crosses tenants, each key sees its own spans; a child whose parent it cannot see is an orphan."""
        trace_id = _trace()
        _send(client, tenant.ingest_key, [_span(trace_id, _sid(0), None, 0, 100, service_name="a-front")])
        _send(client, other.ingest_key, [_span(trace_id, _sid(1), _sid(0), 10, 20, service_name="b-api")])
        mine = client.get(f"/api/v1/traces/{trace_id}", headers=_auth(tenant.read_key)).json()
        theirs = client.get(f"/api/v1/traces/{trace_id}", headers=_auth(other.read_key)).json()
        assert (mine["services"], mine["roots"][0]["children"], mine["roots"][0]["self_time_ms"]) == (["a-front"], [], 100.0)
        assert (theirs["services"], theirs["roots"][0]["orphan"]) == (["b-api"], True)

    def test_reading_needs_the_read_scope(self, client: TestClient, engine: Engine) -> None:
        """No key is 401; an ingest-only key is 403 on every trace endpoint."""
        from fernando_telemetry.services import keys
        from fernando_telemetry.storage.database import session_factory
        from tests.ingest_fixtures import new_token

        tenant = make_tenant(engine)
        with session_factory(engine).begin() as session:
            ingest_only = keys.create_key(session, license_id=tenant.license_id, scopes=["ingest"], new_token=new_token).token
        for url in (f"/api/v1/traces/{_trace()}", "/api/v1/traces", "/api/v1/services", "/api/v1/services/dependencies"):
            assert client.get(url).status_code == 401
            assert client.get(url, headers=_auth(ingest_only)).status_code == 403


class TestTraceSearch:
    @pytest.fixture()
    def seeded(self, client: TestClient, tenant: Tenant) -> dict[str, str]:
        """Four traces of one tenant, ten minutes apart, newest last:

        - slow: web GET /cart (server, 200) -> cart-db query, 900 ms
        - failing: web POST /pay (server, 502) -> payments charge (error, attr card.brand=visa, retries=2)
        - fast: web GET /cart (server, 200), 5 ms
        - headless: payments charge whose parent never arrived (attr card.brand=amex)
        """
        ids = {name: _trace() for name in ("slow", "failing", "fast", "headless")}
        _send(
            client,
            tenant.ingest_key,
            [
                _span(ids["slow"], _sid(0), None, 0, 900, operation_name="GET /cart", span_kind="server", status_code=200),
                _span(ids["slow"], _sid(1), _sid(0), 100, 700, service_name="cart-db", operation_name="query"),
                _span(
                    ids["failing"], _sid(0), None, 600_000, 120, operation_name="POST /pay", span_kind="server", status_code=502
                ),
                _span(
                    ids["failing"],
                    _sid(1),
                    _sid(0),
                    600_010,
                    100,
                    service_name="payments",
                    operation_name="charge",
                    status="error",
                    attributes={"card.brand": "visa", "retries": 2},
                ),
                _span(ids["fast"], _sid(0), None, 1_200_000, 5, operation_name="GET /cart", span_kind="server", status_code=200),
                _span(
                    ids["headless"],
                    _sid(1),
                    "00000000000000bb",
                    1_500_000,
                    40,
                    service_name="payments",
                    operation_name="charge",
                    attributes={"card.brand": "amex"},
                ),
            ],
        )
        return ids

    def _search(self, client: TestClient, key: str, **params: Any) -> list[str]:
        response = client.get("/api/v1/traces", params=params, headers=_auth(key))
        assert response.status_code == 200, response.text
        return [found["trace_id"] for found in response.json()["traces"]]

    def test_every_trace_of_the_last_hour_newest_first_with_its_summary(
        self, client: TestClient, tenant: Tenant, seeded: dict[str, str]
    ) -> None:
        """Without filters: the last hour's traces, newest first, each summarised over all its spans."""
        body = client.get("/api/v1/traces", headers=_auth(tenant.read_key)).json()
        assert [found["trace_id"] for found in body["traces"]] == [
            seeded[name] for name in ("headless", "fast", "failing", "slow")
        ]
        assert body["limit"] == 20 and body["partial"] is False
        assert datetime.fromisoformat(body["to"]) - datetime.fromisoformat(body["from"]) == timedelta(hours=1)
        slow = body["traces"][3]
        assert {key: slow[key] for key in ("root_service", "root_operation", "span_count", "services", "error")} == {
            "root_service": "web",
            "root_operation": "GET /cart",
            "span_count": 2,
            "services": ["cart-db", "web"],
            "error": False,
        }
        assert slow["duration_ms"] == pytest.approx(900.0) and datetime.fromisoformat(slow["start_time"]) == BASE
        assert body["traces"][2]["error"] is True
        headless = body["traces"][0]
        assert (headless["root_service"], headless["root_operation"]) == (
            "payments",
            "charge",
        )  # no parentless span: the earliest

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"service": "payments"}, ["headless", "failing"]),
            ({"service": "cart-db"}, ["slow"]),
            ({"operation": "GET /cart"}, ["fast", "slow"]),
            ({"service": "web", "operation": "GET /cart"}, ["fast", "slow"]),
            ({"service": "web", "operation": "charge"}, []),
            ({"status": "error"}, ["failing"]),
            ({"service": "web", "status": "error"}, []),  # the error span is in payments: filters hold on one span
            ({"http_status": "502"}, ["failing"]),
            ({"http_status": "200"}, ["fast", "slow"]),
            ({"min_duration_ms": "100"}, ["failing", "slow"]),
            ({"max_duration_ms": "100"}, ["headless", "fast"]),
            ({"min_duration_ms": "40", "max_duration_ms": "120"}, ["headless", "failing"]),
            ({"min_duration_ms": "900.5"}, []),
            ({"attr.card.brand": "visa"}, ["failing"]),
            ({"attr.card.brand": "amex", "service": "payments"}, ["headless"]),
            ({"attr.retries": "2"}, ["failing"]),  # the number 2 matches the JSON number
            ({"attr.retries": "3"}, []),
            ({"attr.card.brand": "visa", "attr.retries": "2"}, ["failing"]),
            ({"attr.card.brand": "visa", "attr.retries": "3"}, []),
            ({"limit": "2"}, ["headless", "fast"]),
            ({"service": "nope"}, []),
        ],
    )
    def test_filters(
        self, client: TestClient, tenant: Tenant, seeded: dict[str, str], params: dict[str, str], expected: list[str]
    ) -> None:
        """Each filter, alone or combined, finds exactly the traces it should, newest first."""
        assert self._search(client, tenant.read_key, **params) == [seeded[name] for name in expected]

    def test_the_time_range_selects_by_span_start(self, client: TestClient, tenant: Tenant, seeded: dict[str, str]) -> None:
        """from is inclusive, to exclusive; the default window is the last hour."""
        key = tenant.read_key
        failing_start = BASE + timedelta(minutes=10)
        assert self._search(client, key, **{"from": _z(failing_start), "to": _z(failing_start + timedelta(minutes=10))}) == [
            seeded["failing"]
        ]
        assert self._search(client, key, **{"from": _z(BASE - timedelta(hours=2)), "to": _z(failing_start)}) == [seeded["slow"]]
        old_trace = _trace()
        _send(client, tenant.ingest_key, [_span(old_trace, _sid(0), None, 0, 5, base=NOW - timedelta(hours=3))])
        assert old_trace not in self._search(client, key)
        assert self._search(client, key, **{"from": _z(NOW - timedelta(hours=4)), "to": _z(NOW - timedelta(hours=2))}) == [
            old_trace
        ]

    def test_a_result_covers_spans_outside_the_window(self, client: TestClient, tenant: Tenant) -> None:
        """A trace found by one span in the window is summarised with all of its spans, before and after."""
        trace_id = _trace()
        _send(
            client,
            tenant.ingest_key,
            [
                _span(trace_id, _sid(0), None, -120_000, 300_000, service_name="batch"),
                _span(trace_id, _sid(1), _sid(0), 0, 10, service_name="found-me"),
            ],
        )
        [found] = client.get(
            "/api/v1/traces",
            params={"service": "found-me", "from": _z(BASE), "to": _z(BASE + timedelta(seconds=1))},
            headers=_auth(tenant.read_key),
        ).json()["traces"]
        assert (found["span_count"], found["root_service"], found["duration_ms"]) == (2, "batch", pytest.approx(300_000.0))

    def test_a_license_sees_only_its_traces_and_admin_may_filter(
        self, client: TestClient, tenant: Tenant, other: Tenant, admin: str, seeded: dict[str, str]
    ) -> None:
        """B's key finds none of A's traces; an admin filtering by license gets that license's only."""
        theirs = _trace()
        _send(client, other.ingest_key, [_span(theirs, _sid(0), None, 0, 5, service_name="payments")])
        assert self._search(client, other.read_key, service="payments") == [theirs]
        assert seeded["failing"] in self._search(client, tenant.read_key, service="payments")
        assert theirs not in self._search(client, tenant.read_key, service="payments")
        assert self._search(client, admin, service="payments", license_id=str(other.license_id)) == [theirs]
        everyone = self._search(client, admin, service="payments", limit="200")
        assert theirs in everyone and seeded["failing"] in everyone
        _error(client.get("/api/v1/traces", params={"license_id": other.license_id}, headers=_auth(tenant.read_key)), 403)

    def test_a_duration_filter_keeps_looking_past_the_first_candidates(self, client: TestClient, tenant: Tenant) -> None:
        """With a duration bound, traces that fail it do not use up the limit: older ones that pass still fill it."""
        service = "svc-" + uuid.uuid4().hex[:8]
        spans = [_span(_trace(), _sid(0), None, i * 1000, 10, service_name=service) for i in range(600)]
        slow_old = [_span(_trace(), _sid(0), None, -10_000 - i * 1000, 500, service_name=service) for i in range(3)]
        _send(client, tenant.ingest_key, spans + slow_old)
        found = self._search(client, tenant.read_key, service=service, min_duration_ms="400", limit="3")
        assert found == [span["trace_id"] for span in slow_old]

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"limit": "0"}, "limit"),
            ({"limit": "201"}, "limit"),
            ({"limit": "ten"}, "limit"),
            ({"status": "ok"}, "status"),
            ({"http_status": "99"}, "http_status"),
            ({"http_status": "abc"}, "http_status"),
            ({"min_duration_ms": "-1"}, "min_duration_ms"),
            ({"max_duration_ms": "fast"}, "max_duration_ms"),
            ({"max_duration_ms": "nan"}, "max_duration_ms"),
            ({"min_duration_ms": "10", "max_duration_ms": "5"}, "min_duration_ms"),
            ({"from": "yesterday"}, "from"),
            ({"to": "2026-13-01"}, "to"),
            ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
            ({"from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:01Z"}, "from"),
            ({"servce": "web"}, "servce"),
            ({"attr.": "x"}, "attr."),
            ({"license_id": "x"}, "license_id"),
        ],
    )
    def test_bad_parameters_are_400_naming_the_parameter(
        self, client: TestClient, tenant: Tenant, params: dict[str, str], field: str
    ) -> None:
        """Malformed, out-of-range and unknown parameters are refused with a 400 whose message names them."""
        error = _error(client.get("/api/v1/traces", params=params, headers=_auth(tenant.read_key)), 400)
        assert field in error["message"]

    def test_a_full_week_is_accepted(self, client: TestClient, tenant: Tenant) -> None:
        """Exactly seven days is the longest range, and allowed."""
        params = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z"}
        assert client.get("/api/v1/traces", params=params, headers=_auth(tenant.read_key)).status_code == 200


class TestServices:
    def _window(self) -> dict[str, str]:
        return {"from": _z(BASE - timedelta(minutes=1)), "to": _z(BASE + timedelta(minutes=9))}  # 600 s

    def test_red_figures_match_hand_computed_values(self, client: TestClient, tenant: Tenant) -> None:
        """Rate, error rate and exact p50/p95/p99 of a service's server and consumer spans over the window."""
        trace_id = _trace()
        spans = [
            _span(trace_id, _sid(i), None, i * 1000, duration, service_name="api", span_kind=kind, status=status)
            for i, (duration, kind, status) in enumerate(
                [
                    (10, "server", "ok"),
                    (20, "server", "error"),
                    (30, "consumer", "ok"),
                    (40, "server", "ok"),
                    (50, "server", "unset"),
                    (5000, "client", "error"),
                    (7000, "internal", "ok"),  # not requests of api: not counted
                ]
            )
        ]
        spans.append(
            _span(trace_id, _sid(20), None, 0, 99, service_name="api", span_kind="server", base=BASE - timedelta(minutes=2))
        )  # before the window
        _send(client, tenant.ingest_key, spans)
        body = client.get("/api/v1/services", params=self._window(), headers=_auth(tenant.read_key)).json()
        assert datetime.fromisoformat(body["from"]) == BASE - timedelta(minutes=1)
        [api] = body["services"]
        assert {key: api[key] for key in ("service_name", "basis", "requests", "errors")} == {
            "service_name": "api",
            "basis": "entry",
            "requests": 5,
            "errors": 1,
        }
        assert api["request_rate_per_s"] == pytest.approx(5 / 600)
        assert api["error_rate"] == pytest.approx(0.2)
        # percentile_cont over 10, 20, 30, 40, 50: linear interpolation at rank q * (n - 1)
        assert (api["p50_duration_ms"], api["p95_duration_ms"], api["p99_duration_ms"]) == (
            pytest.approx(30.0),
            pytest.approx(48.0),
            pytest.approx(49.6),
        )

    def test_a_service_without_server_spans_counts_all_its_spans(self, client: TestClient, tenant: Tenant) -> None:
        """A batch job that only has internal and client spans gets figures over all of them, basis 'all'."""
        trace_id = _trace()
        _send(
            client,
            tenant.ingest_key,
            [
                _span(trace_id, _sid(0), None, 0, 100, service_name="nightly", span_kind="internal"),
                _span(trace_id, _sid(1), _sid(0), 10, 50, service_name="nightly", span_kind="client", status="error"),
                _span(trace_id, _sid(2), _sid(1), 20, 10, service_name="store", span_kind="server"),
            ],
        )
        services = {
            s["service_name"]: s
            for s in client.get("/api/v1/services", params=self._window(), headers=_auth(tenant.read_key)).json()["services"]
        }
        assert sorted(services) == ["nightly", "store"]
        nightly = services["nightly"]
        assert (nightly["basis"], nightly["requests"], nightly["errors"], nightly["error_rate"]) == ("all", 2, 1, 0.5)
        assert (nightly["p50_duration_ms"], nightly["p99_duration_ms"]) == (pytest.approx(75.0), pytest.approx(99.5))
        assert (services["store"]["basis"], services["store"]["requests"]) == ("entry", 1)
        only = client.get(
            "/api/v1/services", params={**self._window(), "service": "store"}, headers=_auth(tenant.read_key)
        ).json()
        assert [s["service_name"] for s in only["services"]] == ["store"]

    def test_a_license_sees_only_its_services(self, client: TestClient, tenant: Tenant, other: Tenant, admin: str) -> None:
        """B's spans do not appear in A's figures; an admin filtering by license sees that license's only."""
        _send(client, tenant.ingest_key, [_span(_trace(), _sid(0), None, 0, 10, service_name="mine", span_kind="server")])
        _send(client, other.ingest_key, [_span(_trace(), _sid(0), None, 0, 10, service_name="theirs", span_kind="server")])
        names = lambda key, **extra: [  # noqa: E731
            s["service_name"]
            for s in client.get("/api/v1/services", params={**self._window(), **extra}, headers=_auth(key)).json()["services"]
        ]
        assert names(tenant.read_key) == ["mine"]
        assert names(other.read_key) == ["theirs"]
        assert names(admin, license_id=str(other.license_id)) == ["theirs"]
        assert {"mine", "theirs"} <= set(names(admin))

    def test_bad_windows_are_400(self, client: TestClient, tenant: Tenant) -> None:
        """A range over seven days, a reversed one and an unknown parameter are refused."""
        for params in (
            {"from": "2026-11-01T00:00:00Z", "to": "2026-11-09T00:00:00Z"},
            {"from": _z(NOW), "to": _z(NOW - timedelta(1))},
            {"window": "1h"},
        ):
            _error(client.get("/api/v1/services", params=params, headers=_auth(tenant.read_key)), 400)
            _error(client.get("/api/v1/services/dependencies", params=params, headers=_auth(tenant.read_key)), 400)


class TestDependencies:
    def _window(self) -> dict[str, str]:
        return {"from": _z(BASE - timedelta(minutes=1)), "to": _z(BASE + timedelta(minutes=9))}

    def _edges(self, client: TestClient, key: str, **extra: str) -> dict[tuple[str, str], dict[str, Any]]:
        response = client.get("/api/v1/services/dependencies", params={**self._window(), **extra}, headers=_auth(key))
        assert response.status_code == 200, response.text
        return {(edge["caller"], edge["callee"]): edge for edge in response.json()["edges"]}

    def _checkout(self, trace_id: str, *, failing: bool, duration_ms: float, base: datetime = BASE) -> list[dict[str, Any]]:
        """frontend (server) -> frontend (client) -> checkout (server) -> checkout (client) -> payments (server)."""
        return [
            _span(trace_id, _sid(0), None, 0, 500, service_name="frontend", span_kind="server", base=base),
            _span(trace_id, _sid(1), _sid(0), 5, 400, service_name="frontend", span_kind="client", base=base),
            _span(trace_id, _sid(2), _sid(1), 10, 300, service_name="checkout", span_kind="server", base=base),
            _span(trace_id, _sid(3), _sid(2), 20, 200, service_name="checkout", span_kind="client", base=base),
            _span(
                trace_id,
                _sid(4),
                _sid(3),
                30,
                duration_ms,
                service_name="payments",
                span_kind="server",
                status="error" if failing else "ok",
                base=base,
            ),
        ]

    def test_edges_join_each_span_to_its_parent_in_another_service(self, client: TestClient, tenant: Tenant) -> None:
        """Calls, callee errors and callee p95 per caller -> callee pair; calls within a service are no edge."""
        spans: list[dict[str, Any]] = []
        for i, duration in enumerate([10, 20, 30, 40, 100]):
            spans += self._checkout(_trace(), failing=i == 4, duration_ms=duration)
        orphan_trace = _trace()
        spans.append(_span(orphan_trace, _sid(9), "00000000000000cc", 0, 5, service_name="payments"))  # parent never arrived
        _send(client, tenant.ingest_key, spans)
        edges = self._edges(client, tenant.read_key)
        assert sorted(edges) == [("checkout", "payments"), ("frontend", "checkout")]
        payments = edges[("checkout", "payments")]
        assert (payments["calls"], payments["errors"], payments["error_rate"]) == (5, 1, 0.2)
        assert payments["p95_duration_ms"] == pytest.approx(88.0)  # 40 + 0.8 * (100 - 40)
        assert (edges[("frontend", "checkout")]["calls"], edges[("frontend", "checkout")]["errors"]) == (5, 0)
        assert edges[("frontend", "checkout")]["p95_duration_ms"] == pytest.approx(300.0)

    def test_a_parent_that_started_before_the_window_still_makes_the_edge(self, client: TestClient, tenant: Tenant) -> None:
        """The child's start decides; its parent may have started hours earlier (a long job calling a service)."""
        trace_id = _trace()
        long_ago = BASE - timedelta(hours=5)
        _send(
            client,
            tenant.ingest_key,
            [
                _span(trace_id, _sid(0), None, 0, 6 * 3600 * 1000, service_name="importer", base=long_ago),
                _span(trace_id, _sid(1), _sid(0), 0, 12, service_name="search", base=BASE),
            ],
        )
        assert self._edges(client, tenant.read_key)[("importer", "search")]["calls"] == 1

    def test_a_license_sees_only_its_edges(self, client: TestClient, tenant: Tenant, other: Tenant, admin: str) -> None:
        """B's calls are not in A's edges; a parent in another license makes no edge, not even for an admin reading all."""
        _send(client, tenant.ingest_key, self._checkout(_trace(), failing=False, duration_ms=10))
        _send(client, other.ingest_key, self._checkout(_trace(), failing=True, duration_ms=10))
        shared = _trace()
        _send(client, tenant.ingest_key, [_span(shared, _sid(0), None, 0, 50, service_name="gateway-" + shared[:6])])
        _send(client, other.ingest_key, [_span(shared, _sid(1), _sid(0), 1, 5, service_name="backend-" + shared[:6])])
        mine, theirs = self._edges(client, tenant.read_key), self._edges(client, other.read_key)
        assert sorted(mine) == sorted(theirs) == [("checkout", "payments"), ("frontend", "checkout")]
        assert (mine[("checkout", "payments")]["errors"], theirs[("checkout", "payments")]["errors"]) == (0, 1)
        assert self._edges(client, admin, license_id=str(other.license_id)) == theirs
        crossing = ("gateway-" + shared[:6], "backend-" + shared[:6])
        assert crossing not in self._edges(client, admin)
        assert crossing not in self._edges(client, admin, license_id=str(tenant.license_id))

    def test_openapi_documents_the_trace_endpoints(self, client: TestClient) -> None:
        """The four routes are in the OpenAPI document, the tree with its recursive node schema."""
        document = client.get("/openapi.json").json()
        assert {"/api/v1/traces", "/api/v1/traces/{trace_id}", "/api/v1/services", "/api/v1/services/dependencies"} <= set(
            document["paths"]
        )
        assert "children" in json.dumps(document["components"]["schemas"]["SpanNodeOut"])
