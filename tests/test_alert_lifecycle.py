"""The evaluator on real PostgreSQL with an injected clock: pending -> firing -> resolved, ``for`` and
``keep_firing``, flapping, no-data each way, silences and their end, acknowledge then auto-resolve, repeat
notifications, one rule's failure isolated, rule intervals, and every change written to the history."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from fernando_telemetry.composition import jobs
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import Conflict
from fernando_telemetry.notify.notifier import ChannelNotifier
from fernando_telemetry.notify.targets import TargetPolicy, parse_networks
from fernando_telemetry.services import (
    alert_evaluation,
    alert_notifications,
    alerts,
    notification_channels,
    partitions,
    schema,
    silences,
)
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import make_engine, session_factory
from fernando_telemetry.storage.models import Alert, AlertEvent, AlertNotification, AlertRule, AlertRuleState
from tests.alert_fixtures import (
    MINUTE,
    T0,
    add_channel,
    add_license,
    add_rule,
    add_sample,
    alerts_of,
    events_of,
    outbox_of,
    unique,
)
from tests.notify_fixtures import BOX, Receiver

SECONDS_30 = timedelta(seconds=30)


def cpu_rule(session: Session, license_id: int | None, metric: str, **condition: Any) -> AlertRule:
    options = {
        key: condition.pop(key)
        for key in list(condition)
        if key in ("channels", "repeat_minutes", "interval_s", "name", "labels")
    }
    config = {"metric": metric, "operator": ">", "threshold": 80, "window_minutes": 1, **condition}
    return add_rule(session, license_id=license_id, condition=config, **options)


def evaluate(session: Session, rule: AlertRule, at: datetime) -> alert_evaluation.RuleEvaluation:
    return alert_evaluation.evaluate_rule(session, rule, now=at)


def actions(result: alert_evaluation.RuleEvaluation) -> list[tuple[str, str, str]]:
    return [(t.action, t.from_state, t.to_state) for t in result.transitions]


def sample(session: Session, metric: str, license_id: int | None, at: datetime, value: float, **fields: Any) -> None:
    """One sample 30 s before ``at``: inside a one-minute window ending at ``at`` only."""
    add_sample(session, metric=metric, at=at - SECONDS_30, value=value, license_id=license_id, **fields)


@pytest.fixture()
def tenant(session: Session) -> int:
    return add_license(session)


class TestPendingFiringResolved:
    def test_for_holds_the_alert_back_then_it_fires_and_resolves(self, session: Session, tenant: int) -> None:
        """With for=2m: pending at t, still pending at t+1, firing (an active alert) at t+2, resolved when it clears."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric, for_minutes=2)
        for minute, value in ((0, 90.0), (1, 95.0), (2, 97.0), (3, 10.0)):
            sample(session, metric, tenant, T0 + minute * MINUTE, value)

        assert actions(evaluate(session, rule, T0)) == [("pending", "inactive", "pending")]
        assert alerts_of(session, rule) == []
        assert actions(evaluate(session, rule, T0 + MINUTE)) == []
        fired = evaluate(session, rule, T0 + 2 * MINUTE)
        assert actions(fired) == [("fire", "pending", "active")]
        [alert] = alerts_of(session, rule)
        assert (alert.status, alert.observed_value, alert.threshold_value, alert.triggered_at) == (
            "active",
            97.0,
            80.0,
            T0 + 2 * MINUTE,
        )
        assert alert.license_id == tenant and alert.labels["alertname"] == rule.name
        assert rule.last_triggered_at == T0 + 2 * MINUTE

        resolved = evaluate(session, rule, T0 + 3 * MINUTE)
        assert actions(resolved) == [("resolve", "active", "resolved")]
        [alert] = alerts_of(session, rule)
        assert (alert.status, alert.resolved_at, alert.observed_value) == ("resolved", T0 + 3 * MINUTE, 10.0)
        assert alert.resolved_by is None  # it resolved by itself

    def test_history_holds_every_step_with_actor_value_and_time(self, session: Session, tenant: int) -> None:
        """The pending step (written before the alert existed) joins the alert's history; values and times are the observed ones."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric, for_minutes=1)
        for minute, value in ((0, 91.0), (1, 92.0), (2, 5.0)):
            sample(session, metric, tenant, T0 + minute * MINUTE, value)
        for minute in range(3):
            evaluate(session, rule, T0 + minute * MINUTE)
        [alert] = alerts_of(session, rule)
        found = alerts.history(session, alert_id=alert.alert_id, license_id=tenant)
        assert [(e.from_state, e.to_state, e.actor, e.observed_value, e.occurred_at) for e in found.events] == [
            ("inactive", "pending", "evaluator", 91.0, T0),
            ("pending", "active", "evaluator", 92.0, T0 + MINUTE),
            ("active", "resolved", "evaluator", 5.0, T0 + 2 * MINUTE),
        ]
        assert [e.details["action"] for e in found.events] == ["pending", "fire", "resolve"]

    def test_without_for_it_fires_at_once(self, session: Session, tenant: int) -> None:
        """for=0 goes inactive -> firing in one evaluation."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric)
        sample(session, metric, tenant, T0, 99.0)
        assert actions(evaluate(session, rule, T0)) == [("fire", "inactive", "active")]

    def test_a_condition_that_clears_while_pending_never_fires(self, session: Session, tenant: int) -> None:
        """pending -> inactive is recorded on the rule's history, and no alert is made."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric, for_minutes=5)
        sample(session, metric, tenant, T0, 99.0)
        sample(session, metric, tenant, T0 + MINUTE, 50.0)
        evaluate(session, rule, T0)
        assert actions(evaluate(session, rule, T0 + MINUTE)) == [("clear", "pending", "inactive")]
        assert alerts_of(session, rule) == []
        rows = session.scalars(select(AlertEvent).where(AlertEvent.rule_id == rule.rule_id).order_by(AlertEvent.event_id)).all()
        assert [(row.from_state, row.to_state, row.alert_id) for row in rows] == [
            ("inactive", "pending", None),
            ("pending", "inactive", None),
        ]

    def test_groups_fire_separately_with_one_alert_each(self, session: Session, tenant: int) -> None:
        """group_by host: each host has its own state and alert; the title and labels carry the group key."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric, group_by=["host_name"])
        sample(session, metric, tenant, T0, 95.0, host_name="web-1")
        sample(session, metric, tenant, T0, 20.0, host_name="web-2")
        sample(session, metric, tenant, T0, 85.0, host_name="web-3")
        evaluate(session, rule, T0)
        fired = {alert.group_key["host_name"]: alert for alert in alerts_of(session, rule)}
        assert sorted(fired) == ["web-1", "web-3"]
        assert fired["web-1"].title == f"{rule.name} (host_name=web-1)"
        assert fired["web-1"].labels["host_name"] == "web-1"
        assert fired["web-1"].fingerprint != fired["web-3"].fingerprint


class TestKeepFiringAndFlapping:
    def test_keep_firing_holds_the_alert_open_after_the_condition_clears(self, session: Session, tenant: int) -> None:
        """keep_firing=2m: clear at t+1 and t+2 keeps it firing; at t+3 (2 min after it last held) it resolves."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric, keep_firing_minutes=2)
        sample(session, metric, tenant, T0, 99.0)
        for minute in (1, 2, 3):
            sample(session, metric, tenant, T0 + minute * MINUTE, 10.0)
        evaluate(session, rule, T0)
        assert actions(evaluate(session, rule, T0 + MINUTE)) == []
        assert [alert.status for alert in alerts_of(session, rule)] == ["active"]
        assert actions(evaluate(session, rule, T0 + 2 * MINUTE)) == [("resolve", "active", "resolved")]

    def test_flapping_inside_keep_firing_keeps_one_alert(self, session: Session, tenant: int) -> None:
        """true, false, true, false, true with keep_firing=3m: one alert the whole time, never resolved."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric, keep_firing_minutes=3)
        for minute, value in enumerate((99.0, 10.0, 99.0, 10.0, 99.0)):
            sample(session, metric, tenant, T0 + minute * MINUTE, value)
            evaluate(session, rule, T0 + minute * MINUTE)
        assert [alert.status for alert in alerts_of(session, rule)] == ["active"]
        [alert] = alerts_of(session, rule)
        assert [event[0] for event in events_of(session, alert.alert_id)] == ["fire"]

    def test_flapping_without_keep_firing_gives_one_open_alert_at_a_time(self, session: Session, tenant: int) -> None:
        """Each true/false/true cycle resolves the alert and raises a new one; never two open at once."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric)
        for minute, value in enumerate((99.0, 10.0, 99.0, 10.0, 99.0)):
            sample(session, metric, tenant, T0 + minute * MINUTE, value)
            evaluate(session, rule, T0 + minute * MINUTE)
            open_count = sum(alert.status != "resolved" for alert in alerts_of(session, rule))
            assert open_count == (1 if value > 80 else 0)
        assert [alert.status for alert in alerts_of(session, rule)] == ["resolved", "resolved", "active"]

    def test_the_database_refuses_a_second_open_alert(self, session: Session, tenant: int) -> None:
        """uq_alerts_rule_id_fingerprint_open is what guarantees one open alert per rule and group key."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric)
        sample(session, metric, tenant, T0, 99.0)
        evaluate(session, rule, T0)
        [alert] = alerts_of(session, rule)
        from sqlalchemy.exc import IntegrityError

        savepoint = session.begin_nested()
        with pytest.raises(IntegrityError, match="uq_alerts_rule_id_fingerprint_open"):
            session.add(
                Alert(
                    rule_id=rule.rule_id,
                    severity="warning",
                    title="dup",
                    fingerprint=alert.fingerprint,
                    triggered_at=T0,
                    license_id=tenant,
                )
            )
            session.flush()
        savepoint.rollback()


class TestNoData:
    def test_no_data_ok_raises_nothing(self, session: Session, tenant: int) -> None:
        """no_data=ok: an empty window is a false condition."""
        rule = cpu_rule(session, tenant, unique("cpu"), no_data="ok")
        assert actions(evaluate(session, rule, T0)) == []
        assert alerts_of(session, rule) == []

    def test_no_data_ok_resolves_a_firing_alert(self, session: Session, tenant: int) -> None:
        """no_data=ok: a firing group whose samples stop is resolved."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric, no_data="ok")
        sample(session, metric, tenant, T0, 99.0)
        evaluate(session, rule, T0)
        assert actions(evaluate(session, rule, T0 + 5 * MINUTE)) == [("resolve", "active", "resolved")]

    def test_no_data_alert_fires_after_for(self, session: Session, tenant: int) -> None:
        """no_data=alert: no samples counts as true, so it goes pending, then fires after for=1m; observed value is null."""
        rule = cpu_rule(session, tenant, unique("cpu"), no_data="alert", for_minutes=1)
        assert actions(evaluate(session, rule, T0)) == [("pending", "inactive", "pending")]
        assert actions(evaluate(session, rule, T0 + MINUTE)) == [("fire", "pending", "active")]
        [alert] = alerts_of(session, rule)
        assert alert.observed_value is None and "no data" in (alert.message or "")

    def test_no_data_alert_on_a_group_that_stops_reporting(self, session: Session, tenant: int) -> None:
        """Grouped by host, no_data=alert: a host seen before that goes quiet fires; the host still reporting does not."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric, group_by=["host_name"], no_data="alert")
        sample(session, metric, tenant, T0, 10.0, host_name="a")
        sample(session, metric, tenant, T0, 10.0, host_name="b")
        evaluate(session, rule, T0)
        sample(session, metric, tenant, T0 + MINUTE, 10.0, host_name="a")
        result = evaluate(session, rule, T0 + MINUTE)
        assert [(t.action, t.group_key) for t in result.transitions] == [("fire", {"host_name": "b"})]

    def test_no_data_keep_leaves_a_firing_alert_firing_and_an_idle_rule_idle(self, session: Session, tenant: int) -> None:
        """no_data=keep: no data changes nothing, either way."""
        metric = unique("cpu")
        firing_rule = cpu_rule(session, tenant, metric, no_data="keep")
        sample(session, metric, tenant, T0, 99.0)
        evaluate(session, firing_rule, T0)
        for minute in (5, 10, 60):
            assert actions(evaluate(session, firing_rule, T0 + minute * MINUTE)) == []
        assert [alert.status for alert in alerts_of(session, firing_rule)] == ["active"]
        idle_rule = cpu_rule(session, tenant, unique("cpu"), no_data="keep")
        assert actions(evaluate(session, idle_rule, T0)) == []
        assert alerts_of(session, idle_rule) == []

    def test_too_few_points_is_no_data(self, session: Session, tenant: int) -> None:
        """min_points=3 with two samples: no data (no_data=ok), so nothing fires although both are over."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric, min_points=3)
        add_sample(session, metric=metric, at=T0 - 10 * timedelta(seconds=1), value=99.0, license_id=tenant)
        add_sample(session, metric=metric, at=T0 - 20 * timedelta(seconds=1), value=99.0, license_id=tenant)
        assert actions(evaluate(session, rule, T0)) == []
        add_sample(session, metric=metric, at=T0 - 30 * timedelta(seconds=1), value=99.0, license_id=tenant)
        assert actions(evaluate(session, rule, T0)) == [("fire", "inactive", "active")]


class TestSilences:
    def test_an_alert_firing_under_a_silence_is_suppressed_and_not_announced(self, session: Session, tenant: int) -> None:
        """Created suppressed (silenced_by set), no firing notification; it still records its resolution."""
        metric = unique("cpu")
        channel = add_channel(session, license_id=tenant)
        rule = cpu_rule(session, tenant, metric, channels=[channel.name])
        silence = silences.create(
            session,
            caller=Caller(actor="key:1", clock=lambda: T0 - MINUTE),
            license_id=tenant,
            matchers=[{"name": "alertname", "op": "=", "value": rule.name}],
            ends_at=T0 + 10 * MINUTE,
        )
        sample(session, metric, tenant, T0, 99.0)
        assert actions(evaluate(session, rule, T0)) == [("fire", "inactive", "suppressed")]
        [alert] = alerts_of(session, rule)
        assert (alert.status, alert.silenced_by) == ("suppressed", silence.silence_id)
        assert outbox_of(session, alert.alert_id) == []
        assert actions(evaluate(session, rule, T0 + 2 * MINUTE)) == [("resolve", "suppressed", "resolved")]
        assert outbox_of(session, alert.alert_id) == []  # never announced, so no resolve message either
        assert [event[:3] for event in events_of(session, alert.alert_id)] == [
            ("fire", "inactive", "suppressed"),
            ("resolve", "suppressed", "resolved"),
        ]

    def test_when_the_silence_ends_the_alert_is_active_again_and_announced(self, session: Session, tenant: int) -> None:
        """At the first evaluation after ends_at: suppressed -> active, and the firing notification goes out then."""
        metric = unique("cpu")
        channel = add_channel(session, license_id=tenant)
        rule = cpu_rule(session, tenant, metric, channels=[channel.name])
        silences.create(
            session,
            caller=Caller(actor="key:1", clock=lambda: T0 - MINUTE),
            license_id=tenant,
            matchers=[{"name": "rule_id", "value": str(rule.rule_id)}],
            ends_at=T0 + 2 * MINUTE,
        )
        for minute in range(4):
            sample(session, metric, tenant, T0 + minute * MINUTE, 99.0)
        evaluate(session, rule, T0)
        assert actions(evaluate(session, rule, T0 + MINUTE)) == []
        assert actions(evaluate(session, rule, T0 + 2 * MINUTE)) == [("unsuppress", "suppressed", "active")]
        [alert] = alerts_of(session, rule)
        assert (alert.status, alert.silenced_by) == ("active", None)
        assert outbox_of(session, alert.alert_id) == [("firing", "pending")]

    def test_a_silence_made_while_firing_suppresses_at_once_and_expiring_it_restores(self, session: Session, tenant: int) -> None:
        """silences.create suppresses the open alert in the same call; expire brings it back; both are in the history."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric, labels={"team": "infra"})
        sample(session, metric, tenant, T0, 99.0)
        evaluate(session, rule, T0)
        made = silences.create(
            session,
            caller=Caller(actor="key:7", clock=lambda: T0 + MINUTE),
            license_id=tenant,
            matchers=[{"name": "team", "op": "=~", "value": "infra|ops"}],
            ends_at=T0 + 60 * MINUTE,
        )
        assert made.alerts_changed == 1
        [alert] = alerts_of(session, rule)
        assert alert.status == "suppressed"
        silences.expire(
            session, caller=Caller(actor="key:7", clock=lambda: T0 + 2 * MINUTE), silence_id=made.silence_id, license_id=tenant
        )
        [alert] = alerts_of(session, rule)
        assert alert.status == "active"
        assert [event for event in events_of(session, alert.alert_id)] == [
            ("fire", "inactive", "active", "evaluator"),
            ("suppress", "active", "suppressed", "key:7"),
            ("unsuppress", "suppressed", "active", "key:7"),
        ]

    def test_an_acknowledged_alert_comes_back_acknowledged(self, session: Session, tenant: int) -> None:
        """Acknowledged while silenced: when the silence ends it is acknowledged, not active (and gets no repeats)."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric)
        sample(session, metric, tenant, T0, 99.0)
        evaluate(session, rule, T0)
        [alert] = alerts_of(session, rule)
        made = silences.create(
            session,
            caller=Caller(actor="key:1", clock=lambda: T0),
            license_id=tenant,
            matchers=[{"name": "severity", "value": "warning"}, {"name": "rule_id", "value": str(rule.rule_id)}],
            ends_at=T0 + 60 * MINUTE,
        )
        alerts.acknowledge(
            session, caller=Caller(actor="key:1", clock=lambda: T0 + MINUTE), alert_id=alert.alert_id, license_id=tenant
        )
        assert alerts_of(session, rule)[0].status == "suppressed"
        silences.expire(
            session, caller=Caller(actor="key:1", clock=lambda: T0 + 2 * MINUTE), silence_id=made.silence_id, license_id=tenant
        )
        assert alerts_of(session, rule)[0].status == "acknowledged"

    def test_another_license_s_silence_does_not_touch_the_alert(self, session: Session, tenant: int) -> None:
        """A silence of license B with matchers that would match never suppresses license A's alert."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric)
        other = add_license(session)
        silences.create(
            session,
            caller=Caller(actor="key:2", clock=lambda: T0 - MINUTE),
            license_id=other,
            matchers=[{"name": "alertname", "value": rule.name}],
            ends_at=T0 + 60 * MINUTE,
        )
        sample(session, metric, tenant, T0, 99.0)
        assert actions(evaluate(session, rule, T0)) == [("fire", "inactive", "active")]


class TestPeople:
    def test_acknowledged_alerts_still_resolve_by_themselves(self, session: Session, tenant: int) -> None:
        """acknowledge -> acknowledged (who, when, note); the condition clears -> resolved by the evaluator."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric)
        sample(session, metric, tenant, T0, 99.0)
        sample(session, metric, tenant, T0 + 2 * MINUTE, 10.0)
        evaluate(session, rule, T0)
        [alert] = alerts_of(session, rule)
        view = alerts.acknowledge(
            session,
            caller=Caller(actor="key:3", clock=lambda: T0 + MINUTE),
            alert_id=alert.alert_id,
            license_id=tenant,
            note="on it",
        )
        assert (view.status, view.acknowledged_at) == ("acknowledged", T0 + MINUTE)
        with pytest.raises(Conflict, match="already acknowledged"):
            alerts.acknowledge(
                session, caller=Caller(actor="key:3", clock=lambda: T0 + MINUTE), alert_id=alert.alert_id, license_id=tenant
            )
        assert actions(evaluate(session, rule, T0 + 2 * MINUTE)) == [("resolve", "acknowledged", "resolved")]
        history = alerts.history(session, alert_id=alert.alert_id, license_id=tenant)
        assert [(e.details["action"], e.from_state, e.to_state, e.actor, e.note) for e in history.events] == [
            ("fire", "inactive", "active", "evaluator", None),
            ("acknowledge", "active", "acknowledged", "key:3", "on it"),
            ("resolve", "acknowledged", "resolved", "evaluator", None),
        ]

    def test_resolving_by_hand_while_the_condition_holds_starts_the_group_over(self, session: Session, tenant: int) -> None:
        """A hand-resolved alert stays resolved; if the condition still holds, a new alert goes pending and fires after for."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric, for_minutes=1)
        for minute in range(5):
            sample(session, metric, tenant, T0 + minute * MINUTE, 99.0)
        evaluate(session, rule, T0)
        evaluate(session, rule, T0 + MINUTE)
        [first] = alerts_of(session, rule)
        alerts.resolve(
            session,
            caller=Caller(actor="cli", clock=lambda: T0 + 90 * timedelta(seconds=1)),
            alert_id=first.alert_id,
            license_id=None,
            note="rebooted",
        )
        assert actions(evaluate(session, rule, T0 + 2 * MINUTE)) == [("pending", "inactive", "pending")]
        assert actions(evaluate(session, rule, T0 + 3 * MINUTE)) == [("fire", "pending", "active")]
        first_again, second = alerts_of(session, rule)
        assert (first_again.status, first_again.resolution_notes, second.status) == ("resolved", "rebooted", "active")


class TestNotifications:
    def test_firing_and_resolved_are_queued_per_channel(self, session: Session, tenant: int) -> None:
        """Firing queues one row per channel; resolved only for channels with send_resolved."""
        metric = unique("cpu")
        loud, quiet = add_channel(session, license_id=tenant), add_channel(session, license_id=tenant, send_resolved=False)
        rule = cpu_rule(session, tenant, metric, channels=[loud.name, quiet.name])
        sample(session, metric, tenant, T0, 99.0)
        fired = evaluate(session, rule, T0)
        assert fired.notifications == 2
        [alert] = alerts_of(session, rule)
        evaluate(session, rule, T0 + 5 * MINUTE)
        rows = session.execute(
            select(AlertNotification.kind, AlertNotification.channel_name).where(AlertNotification.alert_id == alert.alert_id)
        ).all()
        assert sorted(rows) == sorted([("firing", loud.name), ("firing", quiet.name), ("resolved", loud.name)])

    def test_resolving_by_hand_tells_the_channels_that_heard_it_fire(self, session: Session, tenant: int) -> None:
        """A hand resolve queues a resolved message when a firing one was queued; an alert that fired under a
        silence (never announced) resolves without one, though its rule has the same channel."""
        metric = unique("cpu")
        channel = add_channel(session, license_id=tenant)
        announced_rule = cpu_rule(session, tenant, metric, channels=[channel.name])
        silenced_rule = cpu_rule(session, tenant, metric, channels=[channel.name])
        silences.create(session, caller=Caller(actor="key:4", clock=lambda: T0 - MINUTE), license_id=tenant, matchers=[{"name": "alertname", "value": silenced_rule.name}], ends_at=T0 + 60 * MINUTE)  # fmt: skip
        sample(session, metric, tenant, T0, 99.0)
        for rule in (announced_rule, silenced_rule):
            evaluate(session, rule, T0)
            [alert] = alerts_of(session, rule)
            alerts.resolve(
                session,
                caller=Caller(actor="key:4", clock=lambda: T0 + MINUTE),
                alert_id=alert.alert_id,
                license_id=tenant,
                note="done",
            )
        assert [kind for kind, _ in outbox_of(session, alerts_of(session, announced_rule)[0].alert_id)] == ["firing", "resolved"]
        silenced = alerts_of(session, silenced_rule)[0]
        assert silenced.status == "resolved" and outbox_of(session, silenced.alert_id) == []

    def test_repeat_interval_queues_repeats_until_acknowledged(self, session: Session, tenant: int) -> None:
        """repeat=10m: nothing while the firing message waits or before 10 min since it was sent; then a repeat;
        none after acknowledge."""
        metric = unique("cpu")
        channel = add_channel(session, license_id=tenant)
        rule = cpu_rule(session, tenant, metric, channels=[channel.name], repeat_minutes=10)
        for minute in range(0, 31):
            sample(session, metric, tenant, T0 + minute * MINUTE, 99.0)
        evaluate(session, rule, T0)
        [alert] = alerts_of(session, rule)
        assert evaluate(session, rule, T0 + 10 * MINUTE).notifications == 0  # the firing message has not gone yet
        # the dispatcher sent it a minute after it fired
        session.execute(update(AlertNotification).where(AlertNotification.alert_id == alert.alert_id).values(status="sent"))
        session.execute(update(Alert).where(Alert.alert_id == alert.alert_id).values(last_notified_at=T0 + MINUTE))
        assert evaluate(session, rule, T0 + 10 * MINUTE).notifications == 0
        repeated = evaluate(session, rule, T0 + 11 * MINUTE)
        assert actions(repeated) == [("repeat", "active", "active")]
        assert outbox_of(session, alert.alert_id) == [("firing", "sent"), ("repeat", "pending")]
        session.execute(update(AlertNotification).where(AlertNotification.alert_id == alert.alert_id).values(status="sent"))
        assert evaluate(session, rule, T0 + 15 * MINUTE).notifications == 0  # 10 min count from the repeat
        assert evaluate(session, rule, T0 + 21 * MINUTE).notifications == 1
        session.execute(update(AlertNotification).where(AlertNotification.alert_id == alert.alert_id).values(status="sent"))
        alerts.acknowledge(
            session, caller=Caller(actor="key:1", clock=lambda: T0 + 22 * MINUTE), alert_id=alert.alert_id, license_id=tenant
        )
        assert evaluate(session, rule, T0 + 30 * MINUTE).notifications == 0
        assert [kind for kind, _ in outbox_of(session, alert.alert_id)] == ["firing", "repeat", "repeat"]


class TestPasses:
    def test_each_rule_runs_at_its_own_interval(self, session: Session, tenant: int) -> None:
        """interval 60 s: evaluated at t, not at t+30 s, again at t+60 s; a never-evaluated rule is due at once."""
        rule = cpu_rule(session, tenant, unique("cpu"), interval_s=60)
        mine = {rule.rule_id}
        assert [r.rule_id for r in alert_evaluation.evaluate_due(session, now=T0, rule_ids=mine).rules] == [rule.rule_id]
        assert alert_evaluation.evaluate_due(session, now=T0 + SECONDS_30, rule_ids=mine).rules == []
        assert len(alert_evaluation.evaluate_due(session, now=T0 + MINUTE, rule_ids=mine).rules) == 1
        assert len(alert_evaluation.evaluate_due(session, now=T0 + MINUTE, rule_ids=mine, force=True).rules) == 1
        assert (rule.last_evaluated_at, rule.last_evaluation_status, rule.last_error) == (T0 + MINUTE, "ok", None)

    def test_disabled_rules_are_not_evaluated(self, session: Session, tenant: int) -> None:
        """enabled=false: never due."""
        rule = add_rule(session, license_id=tenant, condition={"metric": "x", "threshold": 1}, enabled=False)
        assert alert_evaluation.evaluate_due(session, now=T0, rule_ids={rule.rule_id}, force=True).rules == []

    def test_one_rule_failing_in_sql_does_not_stop_the_others(self, session: Session, tenant: int) -> None:
        """A payload value past double precision makes one rule's query fail; it is marked error, the other fires."""
        broken = add_rule(
            session,
            license_id=tenant,
            condition={
                "source": "telemetry_events",
                "metric": "payload.v",
                "aggregation": "avg",
                "threshold": 1,
                "window_minutes": 5,
            },
        )
        session.execute(
            text(
                "INSERT INTO telemetry_events (event_id, event_type, event_name, event_timestamp, license_id, payload) "
                "VALUES (gen_random_uuid(), 'performance_event', 'huge', :at, :license, '{\"v\": 1e400}'::jsonb)"
            ),
            {"at": T0 - MINUTE, "license": tenant},
        )
        metric = unique("cpu")
        healthy = cpu_rule(session, tenant, metric)
        sample(session, metric, tenant, T0, 99.0)
        summary = alert_evaluation.evaluate_due(session, now=T0, rule_ids={broken.rule_id, healthy.rule_id})
        by_rule = {result.rule_id: result for result in summary.rules}
        assert by_rule[broken.rule_id].status == "error" and "out of range" in (by_rule[broken.rule_id].error or "")
        assert by_rule[healthy.rule_id].status == "ok"
        session.expire_all()
        stored = session.get(AlertRule, broken.rule_id)
        assert stored is not None and (stored.last_evaluation_status, stored.last_evaluated_at) == ("error", T0)
        assert "out of range" in (stored.last_error or "")
        assert [alert.status for alert in alerts_of(session, healthy)] == ["active"]

    def test_a_stored_condition_that_no_longer_parses_is_an_error_on_the_rule(self, session: Session, tenant: int) -> None:
        """A hand-edited condition_config: the rule's error says what is wrong with it."""
        rule = add_rule(session, license_id=tenant, condition={"metric": "cpu", "operator": "~", "threshold": 1}, validate=False)
        [result] = alert_evaluation.evaluate_due(session, now=T0, rule_ids={rule.rule_id}).rules
        assert result.status == "error" and "operator" in (result.error or "")

    def test_a_platform_wide_rule_grouped_by_license_gives_each_license_its_alert(self, session: Session, tenant: int) -> None:
        """license_id NULL rule over every license, grouped by license_id: each alert belongs to its license."""
        other = add_license(session)
        metric = unique("cpu")
        rule = cpu_rule(session, None, metric, group_by=["license_id"])
        sample(session, metric, tenant, T0, 99.0)
        sample(session, metric, other, T0, 99.0)
        evaluate(session, rule, T0)
        assert sorted(alert.license_id for alert in alerts_of(session, rule)) == sorted([tenant, other])

    def test_open_alerts_of_a_deleted_rule_are_resolved(self, session: Session, tenant: int) -> None:
        """Deleting a rule keeps its alerts (rule_id null); the next pass resolves the open ones."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric)
        sample(session, metric, tenant, T0, 99.0)
        evaluate(session, rule, T0)
        [alert] = alerts_of(session, rule)
        session.delete(rule)
        session.flush()
        summary = alert_evaluation.evaluate_due(session, now=T0 + MINUTE, rule_ids=set())
        assert [(t.action, t.alert_id) for t in summary.transitions] == [("resolve", alert.alert_id)]
        session.refresh(alert)
        assert alert.status == "resolved" and alert.rule_id is None

    def test_state_rows_follow_the_groups(self, session: Session, tenant: int) -> None:
        """A firing group keeps its state row with the alert id; once cleared and gone, the row is removed."""
        metric = unique("cpu")
        rule = cpu_rule(session, tenant, metric)
        sample(session, metric, tenant, T0, 99.0)
        evaluate(session, rule, T0)
        [row] = session.scalars(select(AlertRuleState).where(AlertRuleState.rule_id == rule.rule_id)).all()
        assert row.state == "firing" and row.alert_id == alerts_of(session, rule)[0].alert_id
        evaluate(session, rule, T0 + 5 * MINUTE)
        # without group_by the rule always observes its one group, so the row stays, inactive
        [row] = session.scalars(
            select(AlertRuleState).where(AlertRuleState.rule_id == rule.rule_id).execution_options(populate_existing=True)
        ).all()
        assert (row.state, row.alert_id) == ("inactive", None)


@pytest.fixture(scope="module")
def own_url(database_factory: Callable[[], str]) -> str:
    """A database of its own: the dispatcher claims every due notification there is."""
    url = database_factory()
    engine = make_engine(url, pool_size=1)
    try:
        schema.upgrade(engine)
        with session_factory(engine).begin() as session:
            partitions.ensure_for_days(session, first_day=T0.date() - timedelta(days=1), last_day=T0.date() + timedelta(days=1))
    finally:
        engine.dispose()
    return url


class TestWithTheDispatcher:
    def test_firing_repeat_resolved_reach_a_real_receiver_and_the_history(self, own_url: str) -> None:
        """Evaluation commits, the dispatcher posts to a real HTTP receiver; the repeat counts from the send;
        the alert's history holds its transitions and the three delivery attempts."""
        engine = make_engine(own_url, pool_size=2)
        sessions = session_factory(engine)
        metric = unique("cpu")
        try:
            with Receiver() as receiver:
                with sessions.begin() as session:
                    license_id = add_license(session)
                    notification_channels.create(
                        session,
                        caller=Caller.for_cli(),
                        license_id=license_id,
                        spec={"name": "ops", "type": "webhook", "url": receiver.url},
                        box=BOX,
                    )
                    rule = cpu_rule(session, license_id, metric, channels=["ops"], repeat_minutes=10, interval_s=60)
                    for minute in range(0, 13):
                        sample(session, metric, license_id, T0 + minute * MINUTE, 99.0)

                def evaluate_at(at: datetime) -> alert_evaluation.EvaluationSummary:
                    with sessions.begin() as session:
                        return alert_evaluation.evaluate_due(session, now=at)

                def dispatch_at(at: datetime) -> None:
                    alert_notifications.dispatch_due(
                        sessions,
                        now=at,
                        notifier=ChannelNotifier(
                            timeout_s=5, targets=TargetPolicy(allowed_networks=parse_networks("127.0.0.0/8"))
                        ),
                        box=BOX,
                    )

                assert [t.action for t in evaluate_at(T0).transitions] == ["fire"]
                dispatch_at(T0 + SECONDS_30)
                assert [t.action for t in evaluate_at(T0 + 10 * MINUTE).transitions] == []  # 9.5 min since it was sent
                assert [t.action for t in evaluate_at(T0 + 11 * MINUTE).transitions] == ["repeat"]
                dispatch_at(T0 + 11 * MINUTE)
                assert [t.action for t in evaluate_at(T0 + 20 * MINUTE).transitions] == ["resolve"]  # no data since t+12
                dispatch_at(T0 + 20 * MINUTE)
                events = [json.loads(request.body)["event"] for request in receiver.requests]
                assert events == ["firing", "repeat", "resolved"]

            with sessions() as session:
                [alert_id] = session.scalars(select(Alert.alert_id).where(Alert.rule_id == rule.rule_id)).all()
                found = alerts.history(session, alert_id=alert_id, license_id=license_id)
            assert [e.details["action"] for e in found.events] == ["fire", "repeat", "resolve"]
            assert [(d.kind, d.outcome, d.http_status, d.channel_name) for d in found.deliveries] == [
                ("firing", "sent", 200, "ops"),
                ("repeat", "sent", 200, "ops"),
                ("resolved", "sent", 200, "ops"),
            ]
        finally:
            engine.dispose()


class TestTheJob:
    def test_the_job_evaluates_and_a_second_runner_skips(self, own_url: str) -> None:
        """default_jobs has alert_evaluation at the configured interval; its run fires a due rule; while another
        transaction holds the job's lock, a run is skipped."""
        settings = Settings(alert_evaluation_interval_s=7.0)
        [job] = [job for job in jobs.default_jobs(settings) if job.name == "alert_evaluation"]
        assert job.interval_s == 7.0
        assert "alert_evaluation" not in {j.name for j in jobs.default_jobs(Settings(alert_evaluation_interval_s=0))}
        engine = make_engine(own_url, pool_size=2)
        sessions = session_factory(engine)
        metric = unique("cpu")
        try:
            with sessions.begin() as session:
                license_id = add_license(session)
                rule = cpu_rule(session, license_id, metric)
                sample(session, metric, license_id, T0 + 30 * MINUTE, 99.0)
            with sessions.begin() as holder:
                holder.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended('fernando_telemetry.job:alert_evaluation', 0))")
                )
                assert job.run(sessions, T0 + 30 * MINUTE).ran is False
            outcome = job.run(sessions, T0 + 30 * MINUTE)
            assert outcome.ran and "0 failed" in outcome.summary
            with sessions() as session:
                assert session.scalars(select(Alert.status).where(Alert.rule_id == rule.rule_id)).all() == ["active"]
        finally:
            engine.dispose()
