"""/api/v1/alert-rules through the real app: CRUD with field-level errors, channels by name, versions,
tenant scoping, backtest of saved and draft rules (nothing stored, nobody notified), and backtest
equal to what live evaluation produced over the same data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fernando_telemetry.core.alert_condition import fingerprint, parse_condition
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.services import alert_evaluation, alert_rules, keys, rule_backtest
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import (
    Alert,
    AlertEvent,
    AlertNotification,
    AlertRuleState,
    NotificationChannel,
    SystemMetric,
    TelemetryEvent,
    Trace,
)
from tests.ingest_fixtures import Tenant, admin_key, make_tenant

SEED_CONDITION = {"metric": "cpu_usage", "operator": ">", "threshold": 80}
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def channels(engine: Engine, license_id: int | None, *names: str) -> None:
    with session_factory(engine).begin() as session:
        for name in names:
            session.add(NotificationChannel(license_id=license_id, name=name, type="email", config={"to": ["ops@example.com"]}))


def rule_body(**overrides: Any) -> dict[str, Any]:
    return {"name": f"High CPU Usage {uuid.uuid4().hex[:6]}", "condition_config": SEED_CONDITION, **overrides}


def fields_of(response: Any) -> dict[str, dict[str, Any]]:
    return {detail["field"]: detail for detail in response.json()["error"]["details"]}


@pytest.fixture()
def tenant(committed_engine: Engine) -> Tenant:
    return make_tenant(committed_engine)


@pytest.fixture()
def other(committed_engine: Engine) -> Tenant:
    return make_tenant(committed_engine)


class TestCreate:
    def test_seed_rule_with_named_channels(self, client: TestClient, committed_engine: Engine, tenant: Tenant) -> None:
        """The seed's High CPU Usage rule with channels ["email", "slack"] is created once channels of those names exist."""
        channels(committed_engine, tenant.license_id, "email", "slack")
        body = {
            "name": "High CPU Usage",
            "description": "CPU usage above 80%",
            "condition_config": {**SEED_CONDITION, "for_minutes": 5, "window_minutes": 10},
            "severity": "critical",
            "notification_channels": ["email", "slack"],
            "evaluation_interval_seconds": 30,
            "labels": {"team": "infra"},
            "annotations": {"summary": "CPU high", "runbook_url": "https://runbooks.example.com/cpu"},
        }
        response = client.post("/api/v1/alert-rules", json=body, headers=auth(tenant.read_key))
        assert response.status_code == 201, response.text
        rule = response.json()
        assert rule["license_id"] == tenant.license_id
        assert rule["condition_config"]["source"] == "system_metrics" and rule["condition_config"]["aggregation"] == "avg"
        assert (rule["evaluation_window_minutes"], rule["pending_period_minutes"]) == (10, 5)
        assert rule["notification_channels"] == ["email", "slack"] and rule["severity"] == "critical"
        assert rule["version"] == 1 and rule["enabled"] is True
        assert rule["condition_summary"] == "avg(cpu_usage) over 10m > 80"

    def test_missing_channels_named_one_by_one(
        self, client: TestClient, committed_engine: Engine, tenant: Tenant, other: Tenant
    ) -> None:
        """A channel of another license does not count; each missing name is its own detail with the known ones."""
        channels(committed_engine, tenant.license_id, "ops-email")
        channels(committed_engine, other.license_id, "slack")
        response = client.post(
            "/api/v1/alert-rules",
            json=rule_body(notification_channels=["ops-email", "slack", "pager"]),
            headers=auth(tenant.read_key),
        )
        assert response.status_code == 400
        found = fields_of(response)
        assert set(found) == {"notification_channels[1]", "notification_channels[2]"}
        assert found["notification_channels[1]"]["allowed"] == ["ops-email"]

    def test_secrets_do_not_go_in_rules(self, client: TestClient, tenant: Tenant) -> None:
        """A webhook URL where a channel name belongs is refused, pointing at channels."""
        response = client.post(
            "/api/v1/alert-rules",
            json=rule_body(notification_channels=["https://hooks.slack.com/services/T000/B000/XXXX"]),
            headers=auth(tenant.read_key),
        )
        assert response.status_code == 400
        assert "/api/v1/notification-channels" in fields_of(response)["notification_channels[0]"]["reason"]

    def test_every_problem_at_once(self, client: TestClient, tenant: Tenant) -> None:
        """Rule fields and condition fields are all reported in one 400."""
        body = {
            "condition_config": {"metric": "cpu_usage", "operator": "=>", "aggregation": "error_rate"},
            "severity": "urgent",
            "evaluation_interval_seconds": 1,
            "labels": {"team": 5},
            "annotations": {"runbook_url": "ftp://x"},
            "colour": "red",
        }
        response = client.post("/api/v1/alert-rules", json=body, headers=auth(tenant.read_key))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_input"
        assert set(fields_of(response)) == {
            "name",
            "colour",
            "condition_config.operator",
            "condition_config.aggregation",
            "condition_config.threshold",
            "severity",
            "evaluation_interval_seconds",
            "labels.team",
            "annotations.runbook_url",
        }
        assert fields_of(response)["severity"]["allowed"] == ["info", "warning", "error", "critical"]

    def test_body_must_be_an_object(self, client: TestClient, tenant: Tenant) -> None:
        """A JSON array is a 422 with the error body, not a 500."""
        response = client.post("/api/v1/alert-rules", json=[1], headers=auth(tenant.read_key))
        assert response.status_code == 422 and "error" in response.json()

    def test_duplicate_name_is_conflict(self, client: TestClient, tenant: Tenant, other: Tenant) -> None:
        """Names are unique per license: a second one in the same license is 409, another license may reuse it."""
        body = rule_body()
        assert client.post("/api/v1/alert-rules", json=body, headers=auth(tenant.read_key)).status_code == 201
        again = client.post("/api/v1/alert-rules", json=body, headers=auth(tenant.read_key))
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        assert client.post("/api/v1/alert-rules", json=body, headers=auth(other.read_key)).status_code == 201

    def test_ingest_only_key_is_refused(self, client: TestClient, committed_engine: Engine, tenant: Tenant) -> None:
        """Rules need the read scope: an ingest-only key gets 403."""
        from tests.ingest_fixtures import new_token

        with session_factory(committed_engine).begin() as session:
            token = keys.create_key(session, license_id=tenant.license_id, scopes=["ingest"], new_token=new_token).token
        assert client.post("/api/v1/alert-rules", json=rule_body(), headers=auth(token)).status_code == 403


class TestReadChangeDelete:
    def test_lifecycle_of_a_rule(self, client: TestClient, tenant: Tenant) -> None:
        """GET one, list with filters, PATCH (version bumps), stale version 409, PUT resets omitted fields, DELETE."""
        headers = auth(tenant.read_key)
        created = client.post("/api/v1/alert-rules", json=rule_body(labels={"team": "a"}), headers=headers).json()
        rule_id = created["rule_id"]
        assert client.get(f"/api/v1/alert-rules/{rule_id}", headers=headers).json() == created
        traces_rule = client.post(
            "/api/v1/alert-rules",
            json=rule_body(condition_config={"source": "traces", "aggregation": "error_rate", "threshold": 0.05}, enabled=False),
            headers=headers,
        ).json()

        listed = client.get("/api/v1/alert-rules", headers=headers).json()["rules"]
        assert {rule["rule_id"] for rule in listed} == {rule_id, traces_rule["rule_id"]}
        by_source = client.get("/api/v1/alert-rules", params={"source": "traces"}, headers=headers).json()["rules"]
        assert [rule["rule_id"] for rule in by_source] == [traces_rule["rule_id"]]
        enabled = client.get("/api/v1/alert-rules", params={"enabled": "true"}, headers=headers).json()["rules"]
        assert [rule["rule_id"] for rule in enabled] == [rule_id]
        paged = client.get("/api/v1/alert-rules", params={"limit": "1"}, headers=headers).json()
        assert len(paged["rules"]) == 1 and paged["next_offset"] == 1
        assert client.get("/api/v1/alert-rules", params={"colour": "red"}, headers=headers).status_code == 400

        patched = client.patch(f"/api/v1/alert-rules/{rule_id}", json={"enabled": False, "version": 1}, headers=headers)
        assert patched.status_code == 200
        assert (patched.json()["enabled"], patched.json()["version"], patched.json()["labels"]) == (False, 2, {"team": "a"})
        stale = client.patch(f"/api/v1/alert-rules/{rule_id}", json={"enabled": True, "version": 1}, headers=headers)
        assert stale.status_code == 409

        new_condition = {"metric": "cpu_usage", "threshold": 95, "window_minutes": 15, "for_minutes": 3}
        replaced = client.put(
            f"/api/v1/alert-rules/{rule_id}", json={"name": created["name"], "condition_config": new_condition}, headers=headers
        ).json()
        assert replaced["labels"] == {} and replaced["enabled"] is True and replaced["version"] == 3
        assert (replaced["evaluation_window_minutes"], replaced["pending_period_minutes"]) == (15, 3)
        assert replaced["condition_config"]["threshold"] == 95.0
        bad_put = client.put(f"/api/v1/alert-rules/{rule_id}", json={"enabled": True}, headers=headers)
        assert bad_put.status_code == 400 and set(fields_of(bad_put)) == {"name", "condition_config"}
        bad_patch = client.patch(f"/api/v1/alert-rules/{rule_id}", json={"condition_config": {"metric": "x"}}, headers=headers)
        assert set(fields_of(bad_patch)) == {"condition_config.threshold"}

        assert client.delete(f"/api/v1/alert-rules/{rule_id}", headers=headers).status_code == 204
        assert client.get(f"/api/v1/alert-rules/{rule_id}", headers=headers).status_code == 404
        assert client.delete(f"/api/v1/alert-rules/{rule_id}", headers=headers).status_code == 404

    def test_rename_onto_a_taken_name(self, client: TestClient, tenant: Tenant) -> None:
        """PATCH to another rule's name is 409."""
        headers = auth(tenant.read_key)
        first = client.post("/api/v1/alert-rules", json=rule_body(), headers=headers).json()
        second = client.post("/api/v1/alert-rules", json=rule_body(), headers=headers).json()
        response = client.patch(f"/api/v1/alert-rules/{second['rule_id']}", json={"name": first["name"]}, headers=headers)
        assert response.status_code == 409


class TestTenancy:
    def test_license_keys_see_and_change_only_their_rules(self, client: TestClient, tenant: Tenant, other: Tenant) -> None:
        """B's key cannot list, read, change, delete or backtest A's rule, nor create one for A."""
        rule = client.post("/api/v1/alert-rules", json=rule_body(), headers=auth(tenant.read_key)).json()
        path = f"/api/v1/alert-rules/{rule['rule_id']}"
        b = auth(other.read_key)
        assert rule["rule_id"] not in [r["rule_id"] for r in client.get("/api/v1/alert-rules", headers=b).json()["rules"]]
        assert client.get(path, headers=b).status_code == 404
        assert client.patch(path, json={"enabled": False}, headers=b).status_code == 404
        assert client.put(path, json=rule_body(), headers=b).status_code == 404
        assert client.delete(path, headers=b).status_code == 404
        assert client.post("/api/v1/alert-rules/backtest", json={"rule_id": rule["rule_id"]}, headers=b).status_code == 404
        assert client.get("/api/v1/alert-rules", params={"license_id": tenant.license_id}, headers=b).status_code == 403
        assert client.post("/api/v1/alert-rules", json=rule_body(license_id=tenant.license_id), headers=b).status_code == 403
        # A's rule is untouched
        assert client.get(path, headers=auth(tenant.read_key)).json() == rule

    def test_admin_sees_all_and_creates_for_a_license_or_the_platform(
        self, client: TestClient, committed_engine: Engine, tenant: Tenant, other: Tenant
    ) -> None:
        """An admin key lists every license or one, creates rules for a license or platform-wide, and changes any."""
        admin = auth(admin_key(committed_engine))
        a_rule = client.post("/api/v1/alert-rules", json=rule_body(), headers=auth(tenant.read_key)).json()
        b_rule = client.post("/api/v1/alert-rules", json=rule_body(license_id=other.license_id), headers=admin).json()
        assert b_rule["license_id"] == other.license_id
        platform = client.post("/api/v1/alert-rules", json=rule_body(), headers=admin).json()
        assert platform["license_id"] is None
        everything = {
            r["rule_id"] for r in client.get("/api/v1/alert-rules", params={"limit": "500"}, headers=admin).json()["rules"]
        }
        assert {a_rule["rule_id"], b_rule["rule_id"], platform["rule_id"]} <= everything
        only_a = client.get("/api/v1/alert-rules", params={"license_id": tenant.license_id}, headers=admin).json()["rules"]
        assert [r["rule_id"] for r in only_a] == [a_rule["rule_id"]]
        assert (
            client.patch(f"/api/v1/alert-rules/{a_rule['rule_id']}", json={"severity": "info"}, headers=admin).status_code == 200
        )
        # license keys never see the platform-wide rule
        assert client.get(f"/api/v1/alert-rules/{platform['rule_id']}", headers=auth(tenant.read_key)).status_code == 404
        moved = client.patch(f"/api/v1/alert-rules/{a_rule['rule_id']}", json={"license_id": other.license_id}, headers=admin)
        assert moved.status_code == 400
        for license_id in (2**70, 2**62, "3"):
            response = client.post("/api/v1/alert-rules", json=rule_body(license_id=license_id), headers=admin)
            assert response.status_code == 400 and "license_id" in fields_of(response), license_id


def _cpu_samples(engine: Engine, license_id: int, name: str, start: datetime, pattern: list[float]) -> None:
    with session_factory(engine).begin() as session:
        for minute, value in enumerate(pattern):
            session.add(
                SystemMetric(
                    metric_name=name,
                    metric_type="gauge",
                    value=value,
                    timestamp=start + timedelta(minutes=minute),
                    license_id=license_id,
                    host_name="web-1",
                )
            )


class TestBacktestApi:
    def test_saved_rule_transitions_and_alerts(self, client: TestClient, committed_engine: Engine, tenant: Tenant) -> None:
        """A saved rule over 20 minutes of samples: pending, firing after for, resolved; nothing stored, nobody notified."""
        name = f"cpu_{uuid.uuid4().hex[:8]}"
        start = NOW - timedelta(hours=2)
        # minute:        0   1   2   3   4   5   6   7   8   9  10 ...
        pattern = [10.0] * 3 + [90.0] * 6 + [10.0] * 11
        _cpu_samples(committed_engine, tenant.license_id, name, start, pattern)
        channels(committed_engine, tenant.license_id, "ops")
        rule = client.post(
            "/api/v1/alert-rules",
            json=rule_body(
                condition_config={"metric": name, "threshold": 80, "window_minutes": 1, "for_minutes": 2},
                notification_channels=["ops"],
            ),
            headers=auth(tenant.read_key),
        ).json()
        body = {
            "rule_id": rule["rule_id"],
            "from": start.isoformat(),
            "to": (start + timedelta(minutes=19)).isoformat(),
            "step_seconds": 60,
        }
        response = client.post("/api/v1/alert-rules/backtest", json=body, headers=auth(tenant.read_key))
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["evaluations"] == 19 and result["step_seconds"] == 60 and result["groups_seen"] == 1
        at = [(t["from_state"], t["to_state"], datetime.fromisoformat(t["at"])) for t in result["transitions"]]
        assert at == [
            ("inactive", "pending", start + timedelta(minutes=3)),
            ("pending", "firing", start + timedelta(minutes=5)),
            ("firing", "inactive", start + timedelta(minutes=9)),
        ]
        assert result["transitions"][1]["value"] == 90.0
        [alert] = result["alerts"]
        assert alert["fingerprint"] == fingerprint(rule["rule_id"], {})
        assert datetime.fromisoformat(alert["resolved_at"]) == start + timedelta(minutes=9)
        with session_factory(committed_engine)() as session:
            for model in (Alert, AlertEvent, AlertRuleState):
                assert session.scalar(select(func.count()).select_from(model).where(model.rule_id == rule["rule_id"])) == 0
            assert (
                session.scalar(
                    select(func.count()).select_from(AlertNotification).where(AlertNotification.license_id == tenant.license_id)
                )
                == 0
            )

    def test_draft_rule_reads_the_callers_license(
        self, client: TestClient, committed_engine: Engine, tenant: Tenant, other: Tenant
    ) -> None:
        """A draft sees the caller's data only: A's draft fires, B's identical draft sees nothing."""
        name = f"cpu_{uuid.uuid4().hex[:8]}"
        start = NOW - timedelta(hours=3)
        _cpu_samples(committed_engine, tenant.license_id, name, start, [99.0] * 5)
        draft = {
            "rule": {"name": "draft", "condition_config": {"metric": name, "threshold": 80}},
            "from": start.isoformat(),
            "to": (start + timedelta(minutes=10)).isoformat(),
        }
        mine = client.post("/api/v1/alert-rules/backtest", json=draft, headers=auth(tenant.read_key)).json()
        assert [(t["from_state"], t["to_state"]) for t in mine["transitions"]] == [("inactive", "firing"), ("firing", "inactive")]
        assert mine["rule_id"] is None and mine["license_id"] == tenant.license_id and mine["evaluations"] == 10
        theirs = client.post("/api/v1/alert-rules/backtest", json=draft, headers=auth(other.read_key)).json()
        assert theirs["transitions"] == [] and theirs["alerts"] == []
        admin = auth(admin_key(committed_engine))
        for_a = client.post("/api/v1/alert-rules/backtest", json={**draft, "license_id": tenant.license_id}, headers=admin).json()
        assert for_a["transitions"] == mine["transitions"]
        spoof = client.post(
            "/api/v1/alert-rules/backtest", json={**draft, "license_id": tenant.license_id}, headers=auth(other.read_key)
        )
        assert spoof.status_code == 403

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({}, "rule_id"),
            ({"rule_id": 1, "rule": {"condition_config": SEED_CONDITION}}, "rule_id"),
            ({"rule": {"condition_config": {"metric": "cpu"}}}, "rule.condition_config.threshold"),
            ({"rule": {"condition_config": SEED_CONDITION, "colour": 1}}, "rule.colour"),
            ({"rule": {"condition_config": SEED_CONDITION}, "step_seconds": 1}, "step_seconds"),
            ({"rule": {"condition_config": SEED_CONDITION}, "from": "yesterday"}, "from"),
            ({"rule": {"condition_config": SEED_CONDITION}, "from": "2026-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "to"),
            (
                {"rule": {"condition_config": SEED_CONDITION}, "from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
                "from",
            ),
            (
                {
                    "rule": {"condition_config": SEED_CONDITION},
                    "from": "2026-01-01T00:00:00Z",
                    "to": "2026-01-20T00:00:00Z",
                    "step_seconds": 10,
                },
                "step_seconds",
            ),
            ({"rule": {"condition_config": SEED_CONDITION}, "notify": True}, "notify"),
            ({"rule_id": "seven"}, "rule_id"),
            ({"rule_id": 2**70}, "rule_id"),
            (
                {"rule": {"condition_config": SEED_CONDITION}, "from": "0001-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"},
                "from",
            ),
            ({"rule": {"condition_config": SEED_CONDITION}, "license_id": 2**70}, "license_id"),
            ({"rule": {"condition_config": {**SEED_CONDITION, "threshold": 10**400}}}, "rule.condition_config.threshold"),
        ],
    )
    def test_invalid_backtests(self, client: TestClient, tenant: Tenant, body: dict[str, Any], field: str) -> None:
        """Each bad backtest request is a 400 naming the field."""
        response = client.post("/api/v1/alert-rules/backtest", json=body, headers=auth(tenant.read_key))
        assert response.status_code == 400, response.text
        assert field in fields_of(response)


# --- backtest == live evaluation --------------------------------------------------------------------------------


def _live_and_backtest(
    session: Session, license_id: int, condition_config: dict[str, Any], start: datetime, minutes: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rule_view = alert_rules.create(
        session,
        caller=Caller.for_cli(clock=lambda: start),
        license_id=license_id,
        fields={"name": f"r-{uuid.uuid4().hex[:6]}", "condition_config": condition_config},
    )
    rule = alert_rules.get_rule(session, rule_id=rule_view.rule_id, scope=license_id)
    live: list[tuple[Any, ...]] = []
    for instant in rule_backtest.backtest_instants(start=start, end=start + timedelta(minutes=minutes), step_seconds=60):
        evaluation = alert_evaluation.evaluate_rule(session, rule, now=instant, silences_in_force=[])
        live.extend(
            (t.at, t.fingerprint, t.action, t.value)
            for t in evaluation.transitions
            if t.action in ("pending", "clear", "fire", "resolve")
        )
    result = rule_backtest.backtest(
        session,
        condition=parse_condition(rule.condition_config),
        license_id=license_id,
        start=start,
        end=start + timedelta(minutes=minutes),
        step_seconds=60,
        rule_id=rule.rule_id,
    )
    action = {("inactive", "pending"): "pending", ("pending", "inactive"): "clear", ("firing", "inactive"): "resolve"}
    backtested = [
        (t.at, t.fingerprint, "fire" if t.to_state == "firing" else action[(t.from_state, t.to_state)], t.value)
        for t in result.transitions
    ]
    live_alerts = [
        (alert.fingerprint, alert.triggered_at, alert.resolved_at)
        for alert in session.scalars(
            select(Alert).where(Alert.rule_id == rule.rule_id).order_by(Alert.triggered_at, Alert.fingerprint)
        )
    ]
    backtest_alerts = [(alert.fingerprint, alert.fired_at, alert.resolved_at) for alert in result.alerts]
    return sorted(live, key=str), sorted(backtested, key=str), live_alerts, backtest_alerts


@pytest.mark.parametrize(
    "condition_config",
    [
        {
            "metric": "flappy",
            "threshold": 50,
            "group_by": ["host_name"],
            "window_minutes": 2,
            "for_minutes": 2,
            "keep_firing_minutes": 2,
        },
        {
            "metric": "flappy",
            "aggregation": "max",
            "threshold": 70,
            "group_by": ["host_name"],
            "window_minutes": 1,
            "no_data": "alert",
            "for_minutes": 1,
        },
        {
            "metric": "flappy",
            "aggregation": "count",
            "operator": ">=",
            "threshold": 2,
            "window_minutes": 1,
            "no_data": "keep",
            "min_points": 1,
        },
        {
            "source": "telemetry_events",
            "group_by": ["event_name"],
            "operator": "<",
            "threshold": 1,
            "window_minutes": 2,
            "for_minutes": 1,
        },
        {
            "source": "traces",
            "aggregation": "error_rate",
            "group_by": ["service_name"],
            "threshold": 0.3,
            "min_points": 2,
            "window_minutes": 3,
        },
    ],
)
def test_backtest_equals_live_evaluation(session: Session, condition_config: dict[str, Any]) -> None:
    """Evaluating a rule live once a minute and backtesting it over the same data give the same transitions and alerts."""
    import random

    rng = random.Random(11)
    license_id = keys.create_license(session, name="backtest-vs-live")
    start = NOW - timedelta(days=1, hours=1)
    for minute in range(60):
        at = start + timedelta(minutes=minute, seconds=rng.randrange(60))
        for host in ("a", "b"):
            if rng.random() < 0.8:  # gaps make no-data instants
                session.add(
                    SystemMetric(
                        metric_name="flappy",
                        metric_type="gauge",
                        value=rng.uniform(0, 100),
                        timestamp=at,
                        license_id=license_id,
                        host_name=host,
                    )
                )
        for name in ("login", "search"):
            if rng.random() < 0.6:
                session.add(
                    TelemetryEvent(
                        event_id=uuid.uuid4(),
                        event_type="user_action",
                        event_name=name,
                        event_timestamp=at,
                        license_id=license_id,
                    )
                )
        for service in ("api", "db"):
            session.add(
                Trace(
                    trace_id=uuid.uuid4().hex,
                    span_id=uuid.uuid4().hex[:16],
                    operation_name="op",
                    service_name=service,
                    start_time=at,
                    end_time=at,
                    duration_ms=1.0,
                    license_id=license_id,
                    status=rng.choice(["ok", "error"]),
                )
            )
    session.flush()
    live, backtested, live_alerts, backtest_alerts = _live_and_backtest(session, license_id, condition_config, start, 60)
    assert len(live) >= 4, "the data should make the rule change state several times"
    assert backtested == live
    assert backtest_alerts == live_alerts
