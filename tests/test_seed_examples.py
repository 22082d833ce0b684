"""The seed's four examples, each verbatim in a test (imports added), against the real product: the request
middleware that awaits ``track_telemetry_event``, a ``BusinessMetric`` with naive datetimes, an ``AlertRule``
named by ``rule_name`` with channels named by type, and the SQL retention call; plus plain SQL inserts
that give no ids."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.enums import Severity
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.notify.notifier import ChannelNotifier
from fernando_telemetry.notify.targets import TargetPolicy, parse_networks
from fernando_telemetry.sdk import (
    EventType,
    TelemetryClient,
    configure,
    dropped_without_client,
    get_default_client,
    set_default_client,
    track_telemetry_event,
)
from fernando_telemetry.services import alert_evaluation, alert_notifications, notification_channels, partitions, rollups, schema
from fernando_telemetry.storage.database import make_engine, session_factory
from fernando_telemetry.storage.models import Alert, AlertRule, BusinessMetric, SeverityLevel, SystemMetric, TelemetryEvent
from tests.helpers import add_event, add_license, add_metric, add_span
from tests.ingest_fixtures import make_tenant
from tests.notify_fixtures import BOX, Receiver

LOOPBACK_ALLOWED = TargetPolicy(allowed_networks=parse_networks("127.0.0.0/8"))


# --- 1. the middleware ------------------------------------------------------------------------------------------


def seed_app() -> FastAPI:
    """A FastAPI app with the seed's middleware, exactly as the seed wrote it."""
    app = FastAPI()

    @app.get("/items")
    def list_items() -> list[int]:
        return [1, 2, 3]

    @app.post("/items")
    def add_item() -> dict[str, bool]:
        return {"ok": True}

    # --- the seed, verbatim ---
    # fmt: off
    @app.middleware("http")
    async def telemetry_middleware(request: Request, call_next):
        start_time = time.time()
        response = await call_next(request)
        duration_ms = int((time.time() - start_time) * 1000)
        await track_telemetry_event(
            event_type=EventType.API_EVENT,
            event_name=f"{request.method}_{request.url.path}",
            duration_ms=duration_ms,
            source="api"
        )
        return response
    # fmt: on
    # --- end of the seed ---

    return app


@pytest.fixture()
def no_default_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No default client and none in the environment; whatever was the default before is put back after."""
    monkeypatch.delenv("FERNANDO_TELEMETRY_URL", raising=False)
    monkeypatch.delenv("FERNANDO_TELEMETRY_API_KEY", raising=False)
    previous = set_default_client(None)
    try:
        yield
    finally:
        current = set_default_client(previous)
        if isinstance(current, TelemetryClient):
            current.shutdown(timeout_s=1.0)


class TestMiddlewareSnippet:
    def test_requests_through_the_seed_middleware_are_stored_by_the_server(
        self, live_server: str, committed_engine: Engine, no_default_client: None
    ) -> None:
        """With a configured default client, each request the seed's middleware sees is an api_event row."""
        tenant = make_tenant(committed_engine)
        client = configure(live_server, tenant.ingest_key, flush_interval_s=0.1)
        assert get_default_client() is client
        with TestClient(seed_app()) as http:
            assert http.get("/items").json() == [1, 2, 3]
            assert http.get("/items").status_code == 200
            assert http.post("/items").status_code == 200
        assert client.flush(timeout_s=20)
        assert (client.stats.sent, client.stats.rejected, client.stats.failed, client.stats.dropped) == (3, 0, 0, 0)
        with committed_engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT event_type, event_name, source, duration_ms FROM telemetry_events "
                    "WHERE license_id = :license ORDER BY event_name"
                ),
                {"license": tenant.license_id},
            ).all()
        assert [(row.event_type, row.event_name, row.source) for row in rows] == [
            ("api_event", "GET_/items", "api"),
            ("api_event", "GET_/items", "api"),
            ("api_event", "POST_/items", "api"),
        ]
        assert all(row.duration_ms is not None and row.duration_ms >= 0 for row in rows)

    def test_without_a_client_requests_pass_and_events_are_dropped_counted_and_warned_once(
        self, no_default_client: None, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No default client: the app answers as usual; each event is counted as dropped; one warning in all."""
        before = dropped_without_client()
        with caplog.at_level(logging.WARNING, logger="fernando_telemetry.sdk"), TestClient(seed_app()) as http:
            responses = [http.get("/items") for _ in range(3)]
        assert [response.status_code for response in responses] == [200, 200, 200]
        assert dropped_without_client() - before == 3
        warnings = [record.getMessage() for record in caplog.records if record.name == "fernando_telemetry.sdk"]
        assert len(warnings) == 1 and "configure()" in warnings[0]

    def test_the_environment_configures_the_default_client(
        self, no_default_client: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """FERNANDO_TELEMETRY_URL and FERNANDO_TELEMETRY_API_KEY make the default client on first use."""
        monkeypatch.setenv("FERNANDO_TELEMETRY_URL", "http://127.0.0.1:9")
        monkeypatch.setenv("FERNANDO_TELEMETRY_API_KEY", "ft_test")
        set_default_client(None)  # forget that the environment was read without them
        client = get_default_client()
        assert isinstance(client, TelemetryClient)
        assert get_default_client() is client


# --- 2. a KPI with naive datetimes ------------------------------------------------------------------------------


class TestBusinessMetricSnippet:
    def test_naive_datetimes_mean_utc_whatever_the_session_time_zone(self, session: Session) -> None:
        """Added and committed as written, on a connection in Tokyo time: the period starts 2024-01-01T00:00Z."""
        session.execute(text("SET LOCAL TIME ZONE 'Asia/Tokyo'"))
        # --- the seed, verbatim ---
        # fmt: off
        business_metric = BusinessMetric(
            metric_name="daily_active_users",
            metric_category="user_engagement",
            metric_value=1250,
            period_start=datetime(2024, 1, 1),
            period_end=datetime(2024, 1, 1, 23, 59),
            period_type="daily"
        )
        # fmt: on
        # --- end of the seed ---
        session.add(business_metric)
        session.commit()
        row = session.execute(
            text(
                "SELECT to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI\"Z\"') AS starts, "
                "to_char(period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI\"Z\"') AS ends, "
                "license_id, currency, source, dimensions, metric_value FROM business_metrics WHERE business_metric_id = :id"
            ),
            {"id": business_metric.business_metric_id},
        ).one()
        assert (row.starts, row.ends) == ("2024-01-01T00:00Z", "2024-01-01T23:59Z")
        assert (row.license_id, row.currency, row.source, row.dimensions) == (PLATFORM_LICENSE_ID, None, "api", {})
        assert row.metric_value == 1250
        read_back = session.scalar(
            select(BusinessMetric.period_start).where(BusinessMetric.business_metric_id == business_metric.business_metric_id)
        )
        assert read_back == datetime(2024, 1, 1, tzinfo=UTC)

    def test_a_naive_datetime_in_a_query_means_utc_too(self, session: Session) -> None:
        """Filtering on a naive datetime finds the row stored with the same naive datetime."""
        session.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))
        name = f"kpi_{uuid.uuid4().hex[:8]}"
        session.add(
            BusinessMetric(
                metric_name=name,
                metric_category="usage",
                metric_value=1,
                period_start=datetime(2024, 1, 1, 12),
                period_end=datetime(2024, 1, 1, 13),
                period_type="hourly",
            )
        )
        session.flush()
        query = select(BusinessMetric.metric_name).where(BusinessMetric.period_start == datetime(2024, 1, 1, 12))
        assert session.scalars(query.where(BusinessMetric.metric_name == name)).all() == [name]


# --- 3. an alert rule made with the ORM -------------------------------------------------------------------------


@dataclass
class Mailbox:
    messages: list[dict[str, Any]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's naming)
        self.messages.append(
            {"rcpt_tos": list(envelope.rcpt_tos), "message": message_from_bytes(envelope.content, policy=policy.default)}
        )
        return "250 2.0.0 Message accepted for delivery"


@pytest.fixture()
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) in this process: what it received, and its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture()
def private_engine(database_factory: Callable[[], str]) -> Iterator[Engine]:
    """A database of its own: the seed's rule is platform-wide, so it sees every license's data and uses
    the platform's channels; nothing of other tests may be in either."""
    engine = make_engine(database_factory(), pool_size=2)
    schema.upgrade(engine)
    today = datetime.now(UTC).date()
    with session_factory(engine).begin() as session:
        partitions.ensure_for_days(session, first_day=today - timedelta(days=1), last_day=today + timedelta(days=1))
    yield engine
    engine.dispose()


def _cpu_samples(session: Session, now: datetime, values: list[float]) -> None:
    for minutes_ago, value in enumerate(values, start=1):
        session.add(
            SystemMetric(
                metric_name="cpu_usage",
                metric_type="gauge",
                value=value,
                host_name="web-1",
                timestamp=now - timedelta(minutes=minutes_ago),
            )
        )


class TestAlertRuleSnippet:
    def test_the_orm_rule_fires_and_notifies_the_default_email_and_slack_channels(
        self, private_engine: Engine, smtp: tuple[Mailbox, int]
    ) -> None:
        """Built as the seed wrote it and committed, the rule is evaluated like any other: cpu_usage over 80
        fires an alert, and the platform's oldest email and slack channels receive it."""
        mailbox, smtp_port = smtp
        now = datetime.now(UTC).replace(microsecond=0)
        sessions = session_factory(private_engine)
        with Receiver() as slack, Receiver() as other_slack:
            with sessions.begin() as session:
                for spec in (
                    {"name": "ops-mail", "type": "email", "to": ["ops@example.com"], "smtp_host": "127.0.0.1",
                     "smtp_port": smtp_port, "smtp_security": "none", "from": "alerts@example.com"},
                    {"name": "team-slack", "type": "slack", "webhook_url": slack.url + "/services/T/B/X"},
                    {"name": "later-mail", "type": "email", "to": ["later@example.com"], "smtp_host": "127.0.0.1",
                     "smtp_port": smtp_port, "smtp_security": "none"},
                    {"name": "later-slack", "type": "slack", "webhook_url": other_slack.url + "/services/T/B/Y"},
                ):  # fmt: skip
                    notification_channels.create(session, caller=Caller.for_cli(), license_id=None, spec=spec, box=BOX)
            with sessions.begin() as session:
                _cpu_samples(session, now, [91.0, 95.0, 93.0])
            with sessions.begin() as session:
                # --- the seed, verbatim ---
                # fmt: off
                alert_rule = AlertRule(
                    rule_name="High CPU Usage",
                    condition_config={"metric": "cpu_usage", "operator": ">", "threshold": 80},
                    severity=SeverityLevel.WARNING,
                    notification_channels=["email", "slack"]
                )
                # fmt: on
                # --- end of the seed ---
                session.add(alert_rule)
            with sessions.begin() as session:
                summary = alert_evaluation.evaluate_due(session, now=now)
            assert [(rule.rule_name, rule.status) for rule in summary.rules] == [("High CPU Usage", "ok")]
            assert summary.notifications == 2
            sent = alert_notifications.dispatch_due(
                sessions, now=now, notifier=ChannelNotifier(timeout_s=5, targets=LOOPBACK_ALLOWED), box=BOX
            )
            assert (sent.sent, sent.abandoned) == (2, 0)
        with sessions() as session:
            alert = session.scalars(select(Alert)).one()
            assert (alert.severity, alert.status, alert.license_id) == (Severity.WARNING, "active", None)
            assert alert.observed_value == pytest.approx(93.0)
            assert {name: entry["status"] for name, entry in alert.notification_status.items()} == {
                "ops-mail": "sent",
                "team-slack": "sent",
            }
        (mail,) = mailbox.messages
        assert mail["rcpt_tos"] == ["ops@example.com"]
        assert "High CPU Usage" in mail["message"]["Subject"]
        assert [request.path for request in slack.requests] == ["/services/T/B/X"]
        assert other_slack.requests == []

    def test_a_type_without_a_channel_is_named_on_the_alert_and_the_rest_is_sent(self, private_engine: Engine) -> None:
        """The rule names email and slack, the platform has only a slack channel: the alert says which type
        had nowhere to go, and slack is still notified."""
        now = datetime.now(UTC).replace(microsecond=0)
        sessions = session_factory(private_engine)
        with Receiver() as slack:
            with sessions.begin() as session:
                notification_channels.create(
                    session,
                    caller=Caller.for_cli(),
                    license_id=None,
                    spec={"name": "team-slack", "type": "slack", "webhook_url": slack.url},
                    box=BOX,
                )
                _cpu_samples(session, now, [85.0])
                session.add(
                    AlertRule(
                        rule_name="High CPU Usage",
                        condition_config={"metric": "cpu_usage", "operator": ">", "threshold": 80},
                        severity=SeverityLevel.WARNING,
                        notification_channels=["email", "slack"],
                    )
                )
            with sessions.begin() as session:
                assert alert_evaluation.evaluate_due(session, now=now).notifications == 1
            alert_notifications.dispatch_due(
                sessions, now=now, notifier=ChannelNotifier(timeout_s=5, targets=LOOPBACK_ALLOWED), box=BOX
            )
            assert len(slack.requests) == 1
        with sessions() as session:
            status = session.scalars(select(Alert)).one().notification_status
        assert status["team-slack"]["status"] == "sent"
        assert status["email"]["status"] == "failed"
        assert "no email channel" in status["email"]["error"] and "the platform" in status["email"]["error"]

    def test_rule_name_is_the_name(self, session: Session) -> None:
        """The ORM synonym reads, writes and filters the rule's name."""
        rule = AlertRule(
            rule_name="High CPU Usage", condition_config={"metric": "cpu_usage"}, license_id=add_license(session).license_id
        )
        session.add(rule)
        session.flush()
        assert rule.name == "High CPU Usage"
        assert session.scalars(select(AlertRule.rule_id).where(AlertRule.rule_name == "High CPU Usage")).all() == [rule.rule_id]
        assert SeverityLevel.WARNING is Severity.WARNING


class TestAlertRuleApi:
    def test_rule_name_and_channel_types_in_the_api_body(self, client: TestClient, committed_engine: Engine) -> None:
        """POST with the seed's field names: rule_name is the name; "email" means the license's email channel
        (which then cannot be deleted while it is the only one); a type without a channel is a 400 naming it."""
        tenant = make_tenant(committed_engine)
        headers = {"Authorization": f"Bearer {tenant.read_key}"}
        with session_factory(committed_engine).begin() as session:
            notification_channels.create(
                session,
                caller=Caller.for_cli(),
                license_id=tenant.license_id,
                spec={"name": "ops-mail", "type": "email", "to": ["ops@example.com"]},
                box=BOX,
            )
        body = {
            "rule_name": "High CPU Usage",
            "condition_config": {"metric": "cpu_usage", "operator": ">", "threshold": 80},
            "severity": "warning",
            "notification_channels": ["email", "slack"],
        }
        refused = client.post("/api/v1/alert-rules", json=body, headers=headers)
        assert refused.status_code == 400
        (detail,) = refused.json()["error"]["details"]
        assert detail["field"] == "notification_channels[1]" and detail["missing_type"] == "slack"
        assert "no slack channel" in detail["reason"] and f"license {tenant.license_id}" in detail["reason"]

        created = client.post("/api/v1/alert-rules", json={**body, "notification_channels": ["email"]}, headers=headers)
        assert created.status_code == 201, created.text
        assert created.json()["name"] == "High CPU Usage" and created.json()["notification_channels"] == ["email"]
        in_use = client.delete("/api/v1/notification-channels/ops-mail", headers=headers)
        assert in_use.status_code == 409 and "High CPU Usage" in in_use.json()["error"]["message"]

        both = client.post("/api/v1/alert-rules", json={**body, "name": "Other", "notification_channels": []}, headers=headers)
        assert both.status_code == 400
        assert [detail["field"] for detail in both.json()["error"]["details"]] == ["rule_name"]


# --- 4. retention in SQL ----------------------------------------------------------------------------------------

SEED_CLEANUP = """
SELECT * FROM cleanup_old_telemetry_data(
    events_retention_days := 90, metrics_retention_days := 180, traces_retention_days := 30);
"""


def _exists(session: Session, table: str, column: str, value: Any) -> bool:
    return session.execute(text(f"SELECT count(*) FROM {table} WHERE {column} = :v"), {"v": value}).scalar_one() == 1


class TestCleanupSnippet:
    def _rows(self, session: Session, now: datetime) -> dict[str, tuple[Any, Any]]:
        """An old and a recent row in each table, rolled up so retention may remove them; their ids."""
        session.execute(
            text("SELECT ensure_daily_partitions('system_metrics', CAST(:first AS date), CAST(:last AS date))"),
            {"first": (now - timedelta(days=191)).date(), "last": (now - timedelta(days=189)).date()},
        )
        ids = {
            "telemetry_events": (add_event(session, at=now - timedelta(days=100)).event_id, add_event(session, at=now).event_id),
            "system_metrics": (
                add_metric(session, at=now - timedelta(days=190)).metric_id,
                add_metric(session, at=now - timedelta(days=100)).metric_id,
            ),
            "traces": (
                add_span(session, at=now - timedelta(days=40)).span_id,
                add_span(session, at=now - timedelta(days=1)).span_id,
            ),
        }
        rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)
        return ids

    def test_old_rows_go_recent_rows_stay_one_row_per_table(self, session: Session) -> None:
        """The seed's call removes each table's expired rows (partitions dropped, the boundary trimmed) and
        reports per table what it removed."""
        now = datetime.now(UTC)
        ids = self._rows(session, now)
        columns = {"telemetry_events": "event_id", "system_metrics": "metric_id", "traces": "span_id"}
        report = {row.table_name: row for row in session.execute(text(SEED_CLEANUP))}
        assert set(report) == {"telemetry_events", "system_metrics", "traces"}
        for table, (old, recent) in ids.items():
            assert not _exists(session, table, columns[table], old), table
            assert _exists(session, table, columns[table], recent), table
            assert report[table].rows_dropped + report[table].rows_deleted >= 1
            assert report[table].partitions_dropped >= 1 and report[table].partitions_kept == 0

    def test_unarchived_partitions_are_kept_while_archiving_is_required(self, session: Session) -> None:
        """With archive_before_drop set (a retention run that archives), the SQL call keeps an expired
        partition with rows until it has an archive, and deletes none of its rows."""
        now = datetime.now(UTC)
        old_event = add_event(session, at=now - timedelta(days=100))
        rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)
        session.execute(text("INSERT INTO retention_settings (archive_before_drop) VALUES (true)"))
        report = {row.table_name: row for row in session.execute(text(SEED_CLEANUP))}
        assert report["telemetry_events"].partitions_kept == 1
        assert _exists(session, "telemetry_events", "event_id", old_event.event_id)
        partition = session.execute(
            text("SELECT tableoid::regclass::text FROM telemetry_events WHERE event_id = :id"), {"id": old_event.event_id}
        ).scalar_one()
        session.execute(
            text(
                "INSERT INTO partition_archives (table_name, partition_name, range_start, range_end, row_count, file_bytes, "
                "sha256, path, archived_at) VALUES ('telemetry_events', :p, now(), now(), 1, 1, repeat('0', 64), '/x', now())"
            ),
            {"p": partition},
        )
        report = {row.table_name: row for row in session.execute(text(SEED_CLEANUP))}
        assert report["telemetry_events"].partitions_kept == 0 and report["telemetry_events"].rows_dropped == 1
        assert not _exists(session, "telemetry_events", "event_id", old_event.event_id)

    def test_a_longer_license_override_keeps_the_partitions(self, session: Session) -> None:
        """A license promised 120 days of events keeps its 100-day-old events through the 90-day SQL call."""
        now = datetime.now(UTC)
        license_id = add_license(session).license_id
        session.execute(
            text("INSERT INTO retention_overrides (license_id, data_kind, retention_days) VALUES (:l, 'events', 120)"),
            {"l": license_id},
        )
        old_event = add_event(session, at=now - timedelta(days=100), license_id=license_id)
        rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)
        report = {row.table_name: row for row in session.execute(text(SEED_CLEANUP))}
        assert _exists(session, "telemetry_events", "event_id", old_event.event_id)
        assert report["telemetry_events"].cutoff <= now - timedelta(days=119)


# --- 5. plain SQL without ids -----------------------------------------------------------------------------------


class TestPlainSqlInserts:
    def test_telemetry_tables_fill_their_ids_and_times(self, session: Session) -> None:
        """INSERTs that give no id (and no time where one means "now") get them from the database."""
        event = session.execute(
            text(
                "INSERT INTO telemetry_events (event_type, event_name, source, duration_ms) "
                "VALUES ('api_event', 'GET_/items', 'api', 12) RETURNING event_id, event_timestamp = now() AS stamped"
            )
        ).one()
        assert isinstance(event.event_id, uuid.UUID) and event.stamped
        metric = session.execute(
            text(
                "INSERT INTO system_metrics (metric_name, metric_type, value) VALUES ('cpu_usage', 'gauge', 42) "
                "RETURNING metric_id, timestamp = now() AS stamped"
            )
        ).one()
        assert metric.metric_id > 0 and metric.stamped
        span = session.execute(
            text(
                "INSERT INTO traces (operation_name, service_name, end_time, duration_ms) "
                "VALUES ('GET /items', 'shop', now() + interval '12 ms', 12) "
                "RETURNING trace_id ~ '^[0-9a-f]{32}$' AS trace_ok, span_id ~ '^[0-9a-f]{16}$' AS span_ok, start_time = now() AS stamped"
            )
        ).one()
        assert (span.trace_ok, span.span_ok, span.stamped) == (True, True, True)
        kpi = session.execute(
            text(
                "INSERT INTO business_metrics (metric_name, metric_category, metric_value, period_start, period_end, period_type) "
                "VALUES ('daily_active_users', 'user_engagement', 1250, '2024-01-01Z', '2024-01-01 23:59Z', 'daily') "
                "RETURNING business_metric_id"
            )
        ).scalar_one()
        rule = session.execute(
            text(
                "INSERT INTO alert_rules (name, condition_config, severity, notification_channels) VALUES "
                '(\'High CPU Usage\', \'{"metric": "cpu_usage", "operator": ">", "threshold": 80}\', \'warning\', '
                '\'["email", "slack"]\') RETURNING rule_id'
            )
        ).scalar_one()
        assert kpi > 0 and rule > 0

    def test_two_spans_without_ids_get_different_ones(self, session: Session) -> None:
        """The random defaults do not collide (the primary key would refuse the second row)."""
        ids = session.execute(
            text(
                "INSERT INTO traces (operation_name, service_name, end_time, duration_ms) "
                "VALUES ('a', 'shop', now(), 0), ('b', 'shop', now(), 0) RETURNING trace_id, span_id"
            )
        ).all()
        assert len({row.trace_id for row in ids}) == 2 and len({row.span_id for row in ids}) == 2

    def test_the_orm_leaves_the_event_id_to_the_database(self, session: Session) -> None:
        """A TelemetryEvent made without event_id or timestamp gets both from the database on flush."""
        event = TelemetryEvent(event_type=EventType.API_EVENT, event_name="GET_/items")
        session.add(event)
        session.flush()
        assert isinstance(event.event_id, uuid.UUID) and event.event_timestamp is not None
