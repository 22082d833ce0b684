"""Unbounded alerting work, attacked on real PostgreSQL through the real app and the real evaluation job.

- One license's heavy rules (p99 over 7 days) cannot keep another license's alert from firing: each rule runs
  under its own statement_timeout, the slow ones are recorded on the rule, and the rules are interleaved by
  license with a per-license budget per pass.
- Rules, channels, silences and API keys are capped per license, with a 409 that names the limit.
- A rule grouped by a high-cardinality field raises ONE "too many groups" alert and notification, not 2,001.
- A backtest of evaluations x groups beyond the bound is refused with a 400 before any work.

Slowness is made certain on any machine without timing assertions: while the pass runs, another transaction
holds a lock on ``traces`` (what A's heavy rules read), so every one of A's rules waits longer than its budget.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from fernando_telemetry.composition import jobs
from fernando_telemetry.composition.wiring import build
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import QuotaExceeded
from fernando_telemetry.core.quotas import Quotas
from fernando_telemetry.services import alert_evaluation, alert_rules, keys, rule_backtest
from fernando_telemetry.services import status as status_service
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import Alert, AlertNotification, AlertRule, NotificationChannel
from tests.ingest_fixtures import Tenant, make_tenant, new_token

HEAVY_RULES = 150
NOW = datetime.now(UTC).replace(microsecond=0)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def webhook(engine: Engine, license_id: int) -> str:
    name = f"hook-{uuid.uuid4().hex[:6]}"
    with session_factory(engine).begin() as session:
        session.add(
            NotificationChannel(
                license_id=license_id, name=name, type="webhook", config={"url": "http://127.0.0.1:9/hook", "format": "native"}
            )
        )
    return name


def alerts_and_outbox(engine: Engine, rule_id: int) -> tuple[list[Alert], int]:
    with session_factory(engine)() as session:
        found = list(session.scalars(select(Alert).where(Alert.rule_id == rule_id).order_by(Alert.alert_id)))
        queued = session.scalar(
            select(func.count())
            .select_from(AlertNotification)
            .join(Alert, Alert.alert_id == AlertNotification.alert_id)
            .where(Alert.rule_id == rule_id)
        )
    return found, int(queued or 0)


def rule_row(engine: Engine, rule_id: int) -> AlertRule:
    with session_factory(engine)() as session:
        rule = session.get(AlertRule, rule_id)
        assert rule is not None
        session.expunge(rule)
        return rule


def run_job(settings: Settings, engine: Engine, now: datetime) -> str:
    outcome = jobs.alert_evaluation_run(settings)(session_factory(engine), now)
    print(outcome.summary)
    return outcome.summary


@pytest.fixture()
def quiet_rules(committed_engine: Engine) -> Iterator[list[int]]:
    """Licenses whose rules this test made; their rules are disabled afterwards so later passes skip them."""
    licenses: list[int] = []
    yield licenses
    with session_factory(committed_engine).begin() as session:
        session.execute(update(AlertRule).where(AlertRule.license_id.in_(licenses)).values(enabled=False))


class TestFairEvaluation:
    def test_heavy_rules_of_a_cannot_stop_b_from_firing(
        self, client: TestClient, committed_engine: Engine, quiet_rules: list[int]
    ) -> None:
        """150 rules of A (p99 of span duration over 7 days, each slower than its budget) and B's one simple rule:
        one pass fires B's alert and queues its notification; each of A's rules it reached is recorded as timed
        out, and A's share of the pass is bounded by its budget (the rest deferred, still due)."""
        a, b = make_tenant(committed_engine), make_tenant(committed_engine)
        quiet_rules.extend([a.license_id, b.license_id])
        with session_factory(committed_engine).begin() as session:
            # 20,000 spans of A over the last day
            session.execute(
                text(
                    "INSERT INTO traces (trace_id, span_id, operation_name, service_name, start_time, end_time, duration_ms,"
                    " license_id) SELECT md5(g::text), substr(md5(g::text), 1, 16), 'GET /', 'web',"
                    " :now - make_interval(secs => g * 4), :now - make_interval(secs => g * 4) + interval '5 ms', 5 + g % 97,"
                    " :license FROM generate_series(1, 20000) g"
                ),
                {"now": NOW - timedelta(seconds=5), "license": a.license_id},
            )
            for index in range(HEAVY_RULES):
                alert_rules.create(
                    session,
                    caller=Caller.for_cli(clock=lambda: NOW),
                    license_id=a.license_id,
                    fields={
                        "name": f"heavy p99 {index}",
                        "condition_config": {
                            "source": "traces",
                            "metric": "duration_ms",
                            "aggregation": "p99",
                            "operator": ">",
                            "threshold": 10_000,
                            "window_minutes": 7 * 24 * 60,
                        },
                        "evaluation_interval_seconds": 10,
                    },
                )
            session.execute(
                text(
                    "INSERT INTO system_metrics (metric_name, metric_type, value, timestamp, license_id)"
                    " VALUES ('cpu_usage', 'gauge', 97, :at, :license)"
                ),
                {"at": NOW - timedelta(seconds=30), "license": b.license_id},
            )
        channel = webhook(committed_engine, b.license_id)
        created = client.post(
            "/api/v1/alert-rules",
            json={
                "name": "B high cpu",
                "condition_config": {"metric": "cpu_usage", "operator": ">", "threshold": 80},
                "severity": "critical",
                "notification_channels": [channel],
            },
            headers=auth(b.read_key),
        )
        assert created.status_code == 201, created.text
        b_rule = created.json()["rule_id"]

        settings = Settings(alert_rule_timeout_s=0.1, alert_license_budget_s=1.0)
        holder = committed_engine.connect()
        holder_tx = holder.begin()
        holder.execute(text("LOCK TABLE traces IN ACCESS EXCLUSIVE MODE"))
        try:
            summary = run_job(settings, committed_engine, NOW)
        finally:
            holder_tx.rollback()
            holder.close()

        fired, queued = alerts_and_outbox(committed_engine, b_rule)
        assert [alert.status for alert in fired] == ["active"]
        assert queued == 1
        assert rule_row(committed_engine, b_rule).last_evaluation_status == "ok"
        with session_factory(committed_engine)() as session:
            a_rules = list(session.scalars(select(AlertRule).where(AlertRule.license_id == a.license_id)))
        reached = [rule for rule in a_rules if rule.last_evaluated_at is not None]
        assert reached, "A's rules were not evaluated at all"
        for rule in reached:
            assert rule.last_evaluation_status == "error"
            assert rule.last_error is not None and rule.last_error.startswith("timed out")
            assert "0.1 s" in rule.last_error
        # every reached rule waited at least its 0.1 s budget: a 1 s budget lets at most 10 run, the rest wait
        assert len(reached) <= 10
        assert "deferred to the next pass" in summary and "timed out" in summary
        # `status` lists them
        with session_factory(committed_engine)() as session:
            failing = {rule.rule_id: rule for rule in status_service.report(session, now=NOW).failing_rules}
        listed = [failing[rule.rule_id] for rule in reached if rule.rule_id in failing]
        assert listed and all(row.status == "error" and (row.error or "").startswith("timed out") for row in listed)
        assert b_rule not in failing

    def test_round_robin_order(self, session: Session) -> None:
        """Rules are interleaved by license, each license's own order kept."""
        rules = [AlertRule(rule_id=i, license_id=lic, name=str(i)) for i, lic in enumerate([1, 1, 1, 2, 3, 3])]
        order = [(rule.license_id, rule.rule_id) for rule in alert_evaluation.interleave_by_license(rules)]
        assert order == [(1, 0), (2, 3), (3, 4), (1, 1), (3, 5), (1, 2)]


class TestQuotas:
    @pytest.fixture()
    def small(self, committed_engine: Engine) -> Iterator[TestClient]:
        settings = Settings(
            quota_rules_per_license=2, quota_channels_per_license=1, quota_silences_per_license=1, quota_keys_per_license=3
        )
        wiring = build(settings, engine=committed_engine)
        wiring.start()
        try:
            with TestClient(wiring.app) as test_client:
                yield test_client
        finally:
            wiring.stop()

    @staticmethod
    def refused(response: Any, field: str, limit: int) -> None:
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "quota_exceeded"
        detail = error["details"][0]
        assert detail["field"] == field and detail["limit"] == limit
        assert f"quota is {limit}" in error["message"]

    def test_rules_channels_and_silences_over_quota_are_409(self, small: TestClient, committed_engine: Engine) -> None:
        tenant: Tenant = make_tenant(committed_engine)
        other: Tenant = make_tenant(committed_engine)
        key = auth(tenant.read_key)
        condition = {"metric": "cpu_usage", "operator": ">", "threshold": 80}
        for index in range(2):
            assert (
                small.post(
                    "/api/v1/alert-rules", json={"name": f"r{index}", "condition_config": condition}, headers=key
                ).status_code
                == 201
            )
        self.refused(
            small.post("/api/v1/alert-rules", json={"name": "r2", "condition_config": condition}, headers=key), "rules", 2
        )
        # another license is not affected by A's count
        assert (
            small.post(
                "/api/v1/alert-rules", json={"name": "r0", "condition_config": condition}, headers=auth(other.read_key)
            ).status_code
            == 201
        )

        channel = {"name": "hook1", "type": "webhook", "url": "https://hooks.example.com/a"}
        assert small.post("/api/v1/notification-channels", json=channel, headers=key).status_code == 201
        self.refused(small.post("/api/v1/notification-channels", json={**channel, "name": "hook2"}, headers=key), "channels", 1)

        silence = {"matchers": [{"name": "alertname", "value": "x"}], "duration_minutes": 30}
        assert small.post("/api/v1/silences", json=silence, headers=key).status_code == 201
        self.refused(small.post("/api/v1/silences", json=silence, headers=key), "silences", 1)

    def test_api_keys_over_quota_are_refused_and_revoked_ones_free_a_place(self, session: Session) -> None:
        license_id = keys.create_license(session, name=f"quota-{uuid.uuid4().hex[:6]}")
        quotas = Quotas(keys=2)
        first = keys.create_key(session, license_id=license_id, scopes=["read"], new_token=new_token, quotas=quotas)
        keys.create_key(session, license_id=license_id, scopes=["read"], new_token=new_token, quotas=quotas)
        with pytest.raises(QuotaExceeded, match="quota is 2"):
            keys.create_key(session, license_id=license_id, scopes=["read"], new_token=new_token, quotas=quotas)
        keys.revoke(session, api_key_id=first.api_key_id, now=NOW)
        keys.create_key(session, license_id=license_id, scopes=["read"], new_token=new_token, quotas=quotas)


GROUPS = 2001


def many_instances(engine: Engine, license_id: int) -> None:
    with session_factory(engine).begin() as session:
        session.execute(
            text(
                "INSERT INTO system_metrics (metric_name, metric_type, value, timestamp, license_id, instance_id)"
                " SELECT 'queue_depth', 'gauge', 500, :at, :license, 'i-' || g FROM generate_series(1, :groups) g"
            ),
            {"at": NOW - timedelta(seconds=30), "license": license_id, "groups": GROUPS},
        )


class TestGroupCap:
    def test_high_cardinality_rule_raises_one_too_many_groups_alert(
        self, client: TestClient, committed_engine: Engine, quiet_rules: list[int]
    ) -> None:
        """A rule grouped by instance_id over 2,001 instances: one alert, one notification, the rule in the
        too_many_groups state; the next pass adds neither."""
        tenant = make_tenant(committed_engine)
        quiet_rules.append(tenant.license_id)
        many_instances(committed_engine, tenant.license_id)
        channel = webhook(committed_engine, tenant.license_id)
        created = client.post(
            "/api/v1/alert-rules",
            json={
                "name": "deep queues",
                "condition_config": {"metric": "queue_depth", "operator": ">", "threshold": 100, "group_by": ["instance_id"]},
                "notification_channels": [channel],
                "evaluation_interval_seconds": 10,
            },
            headers=auth(tenant.read_key),
        )
        assert created.status_code == 201, created.text
        rule_id = created.json()["rule_id"]
        settings = Settings()  # cap of 100 groups
        run_job(settings, committed_engine, NOW)
        fired, queued = alerts_and_outbox(committed_engine, rule_id)
        assert len(fired) == 1 and queued == 1
        assert fired[0].group_key == {"alertstate": "too_many_groups"}
        assert "too many groups" in fired[0].title and fired[0].observed_value == GROUPS
        rule = rule_row(committed_engine, rule_id)
        assert rule.last_evaluation_status == "too_many_groups"
        assert rule.last_error is not None and f"{GROUPS} groups" in rule.last_error and "cap of 100" in rule.last_error
        shown = client.get(f"/api/v1/alert-rules/{rule_id}", headers=auth(tenant.read_key)).json()
        assert shown["last_evaluation_status"] == "too_many_groups"

        run_job(settings, committed_engine, NOW + timedelta(seconds=15))
        fired, queued = alerts_and_outbox(committed_engine, rule_id)
        assert len(fired) == 1 and queued == 1


class TestBacktestBounds:
    def test_oversized_backtest_is_refused_and_a_small_one_runs(self, client: TestClient, committed_engine: Engine) -> None:
        """31 days at 135 s steps over 2,001 groups (about 40 million group evaluations) is a 400 naming the
        bound; an hour at 60 s steps over the same groups runs."""
        tenant = make_tenant(committed_engine)
        many_instances(committed_engine, tenant.license_id)
        draft = {"condition_config": {"metric": "queue_depth", "operator": ">", "threshold": 100, "group_by": ["instance_id"]}}
        end = NOW.isoformat()
        started = time.monotonic()
        response = client.post(
            "/api/v1/alert-rules/backtest",
            json={"rule": draft, "from": (NOW - timedelta(days=31)).isoformat(), "to": end, "step_seconds": 135},
            headers=auth(tenant.read_key),
        )
        print(f"oversized backtest refused in {time.monotonic() - started:.2f} s")
        assert response.status_code == 400, response.text
        detail = response.json()["error"]["details"][0]
        assert detail["field"] == "step_seconds" and detail["limit"] == rule_backtest.MAX_BACKTEST_GROUP_EVALUATIONS
        assert detail["groups"] == GROUPS
        small = client.post(
            "/api/v1/alert-rules/backtest",
            json={"rule": draft, "from": (NOW - timedelta(minutes=10)).isoformat(), "to": end, "step_seconds": 60},
            headers=auth(tenant.read_key),
        )
        assert small.status_code == 200, small.text
        assert small.json()["groups_seen"] == GROUPS

    def test_backtest_stepping_stops_at_its_deadline(self, session: Session) -> None:
        """The CPU loop checks the wall-time deadline: a clock past it ends the backtest with a 400-kind error."""
        from fernando_telemetry.core.alert_condition import parse_condition
        from fernando_telemetry.core.errors import InvalidInput

        ticks = iter([0.0, 0.0] + [100.0] * 1000)
        condition = parse_condition({"metric": "cpu_usage", "operator": ">", "threshold": 80})
        with pytest.raises(InvalidInput, match="ran longer than 30 s"):
            rule_backtest.backtest(
                session,
                condition=condition,
                license_id=None,
                start=NOW - timedelta(hours=1),
                end=NOW,
                step_seconds=60,
                clock=lambda: next(ticks),
            )
