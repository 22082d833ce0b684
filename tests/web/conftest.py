"""A database of its own for the dashboard tests, seeded once: licenses A and B, two days of synthetic
telemetry for A (events, nested traces, host metrics, KPIs), a hand-made trace of A with an error deep in it,
and rows of B under names A must never see. The app runs with a fixed secret key; ``dashboard_server`` serves
it with uvicorn for the browser.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from fernando_telemetry.composition.wiring import Wiring, build, dump_json
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.enums import EventType, SpanStatus
from fernando_telemetry.services import alert_evaluation, alert_rules, keys, kpis, partitions, schema, synthetic
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import make_engine, session_factory
from fernando_telemetry.storage.models import AlertDelivery
from tests.helpers import add_event, add_metric, add_span
from tests.ingest_fixtures import make_tenant, new_token

SECRET_KEY = "dashboard-test-secret-key"
B_EVENT = "b-only-secret-event"
B_SERVICE = "b-secret-service"
B_METRIC = "b_secret_metric"
B_RULE = "B secret rule"


@dataclass(frozen=True)
class DashboardWorld:
    engine: Engine
    license_a: int
    license_b: int
    read_a: str
    read_b: str
    admin: str
    ingest_only_a: str
    trace_id: str
    """A trace of A: web -> api -> payments -> postgres, plus a failing retry under payments (depth 3)."""
    now: datetime
    rule_id: int
    """A's rule "High CPU Usage" (max cpu_usage by host over two hours > 1): one active alert per host."""
    alert_ids: tuple[int, ...]
    """Its alerts, all active after the seed's evaluation."""
    b_alert_id: int


def _known_trace(session, *, license_id: int, user_id: str, at: datetime) -> str:
    trace_id = uuid.uuid4().hex
    ids = {name: uuid.uuid4().hex[:16] for name in ("root", "api", "pay", "db", "retry")}
    common = {"trace_id": trace_id, "license_id": license_id, "user_id": user_id, "environment": "test"}
    add_span(
        session,
        at=at,
        duration_ms=120.0,
        span_id=ids["root"],
        service_name="web",
        operation_name="POST /checkout",
        span_kind="server",
        status=SpanStatus.ERROR,
        status_code=502,
        http_method="POST",
        http_route="/checkout",
        attributes={"http.route": "/checkout", "cart.items": 3},
        **common,
    )
    add_span(
        session,
        at=at + timedelta(milliseconds=5),
        duration_ms=100.0,
        span_id=ids["api"],
        parent_span_id=ids["root"],
        service_name="api",
        operation_name="POST /api/v1/checkout",
        span_kind="server",
        status=SpanStatus.ERROR,
        status_code=502,
        **common,
    )
    add_span(
        session,
        at=at + timedelta(milliseconds=10),
        duration_ms=60.0,
        span_id=ids["pay"],
        parent_span_id=ids["api"],
        service_name="payments",
        operation_name="payments.charge",
        span_kind="client",
        status=SpanStatus.ERROR,
        error_type="GatewayTimeout",
        error_message="card processor timed out",
        attributes={"payment.provider": "acme-pay"},
        **common,
    )
    add_span(
        session,
        at=at + timedelta(milliseconds=12),
        duration_ms=8.0,
        span_id=ids["db"],
        parent_span_id=ids["pay"],
        service_name="postgres",
        operation_name="SELECT payment_methods",
        span_kind="client",
        status=SpanStatus.OK,
        attributes={"db.statement": "SELECT * FROM payment_methods WHERE user_id = $1"},
        **common,
    )
    add_span(
        session,
        at=at + timedelta(milliseconds=30),
        duration_ms=35.0,
        span_id=ids["retry"],
        parent_span_id=ids["pay"],
        service_name="payments",
        operation_name="payments.retry",
        span_kind="internal",
        status=SpanStatus.ERROR,
        error_type="GatewayTimeout",
        error_message="second attempt timed out",
        **common,
    )
    return trace_id


def seed(engine: Engine, now: datetime) -> DashboardWorld:
    a, b = make_tenant(engine), make_tenant(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        ingest_only = keys.create_key(session, license_id=a.license_id, scopes=["ingest"], new_token=new_token).token
        admin = keys.create_key(session, license_id=None, scopes=[], admin=True, new_token=new_token).token
        synthetic.generate(
            session,
            now=now,
            days=2,
            events_count=4000,
            spans_count=4000,
            metrics_count=3000,
            users=40,
            license_id=a.license_id,
            seed=7,
            dump_json=dump_json,
        )
        trace_id = _known_trace(session, license_id=a.license_id, user_id=a.user_id, at=now - timedelta(minutes=10))
        rng = random.Random(3)
        for minute in range(0, 50, 5):
            at = now - timedelta(minutes=minute + 1)
            add_event(
                session,
                at=at,
                event_type=EventType.USER_ACTION,
                event_name=B_EVENT,
                license_id=b.license_id,
                user_id=b.user_id,
                payload={"secret": "b"},
            )
            add_span(
                session,
                at=at,
                duration_ms=rng.uniform(5, 50),
                service_name=B_SERVICE,
                operation_name="GET /b-secret",
                span_kind="server",
                license_id=b.license_id,
            )
            add_metric(
                session, at=at, metric_name=B_METRIC, value=rng.uniform(0, 1), service_name=B_SERVICE, license_id=b.license_id
            )
    # the rules in a transaction of their own: on Citus a reference table (alert_rules) cannot be written after a
    # parallel write of distributed tables in the same transaction (docs/DECISIONS.md, Citus)
    with sessions.begin() as session:
        cpu = alert_rules.create(
            session,
            caller=Caller.for_cli(clock=lambda: now),
            license_id=a.license_id,
            fields={
                "name": "High CPU Usage",
                "severity": "critical",
                "condition_config": {
                    "metric": "cpu_usage",
                    "aggregation": "max",
                    "operator": ">",
                    "threshold": 1,
                    "window_minutes": 120,
                    "group_by": ["host_name"],
                },
                "labels": {"team": "platform"},
            },
        )
        alert_rules.create(
            session,
            caller=Caller.for_cli(clock=lambda: now),
            license_id=b.license_id,
            fields={
                "name": B_RULE,
                "condition_config": {"metric": B_METRIC, "operator": ">=", "threshold": 0, "window_minutes": 60},
            },
        )
        alert_evaluation.evaluate_due(session, now=now, force=True)
        alert_ids = tuple(
            row[0]
            for row in session.execute(
                text("SELECT alert_id FROM alerts WHERE rule_id = :r ORDER BY alert_id"), {"r": cpu.rule_id}
            )
        )
        b_alert_id = session.execute(text("SELECT alert_id FROM alerts WHERE license_id = :b"), {"b": b.license_id}).scalar_one()
        # one delivery attempt in the log of the first alert, as the dispatcher records it
        session.add(
            AlertDelivery(
                alert_id=alert_ids[0],
                license_id=a.license_id,
                channel_name="ops-webhook",
                channel_type="webhook",
                kind="firing",
                attempt=1,
                outcome="sent",
                http_status=200,
                latency_ms=42.0,
                attempted_at=now,
            )
        )
        today = now.date()
        for period in kpis.backfill_periods(
            period_types=["daily", "weekly", "monthly"],
            first_day=today - timedelta(days=2),
            last_day=today,
            now=now,
            events_retention_days=90,
        ):
            kpis.compute_period(session, period=period, now=now)
    return DashboardWorld(
        engine=engine,
        license_a=a.license_id,
        license_b=b.license_id,
        read_a=a.read_key,
        read_b=b.read_key,
        admin=admin,
        ingest_only_a=ingest_only,
        trace_id=trace_id,
        now=now,
        rule_id=cpu.rule_id,
        alert_ids=alert_ids,
        b_alert_id=b_alert_id,
    )


@pytest.fixture(scope="session")
def dashboard_world(database_factory: Callable[[], str]) -> Iterator[DashboardWorld]:
    url = database_factory()
    engine = make_engine(url, pool_size=6)
    try:
        schema.upgrade(engine)
        now = datetime.now(UTC)
        with session_factory(engine).begin() as session:
            partitions.ensure_for_days(
                session, first_day=now.date() - timedelta(days=40), last_day=now.date() + timedelta(days=3)
            )
        yield seed(engine, now)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def dashboard_wiring(dashboard_world: DashboardWorld) -> Iterator[Wiring]:
    wiring = build(Settings(), engine=dashboard_world.engine, secret_key=SECRET_KEY)
    wiring.start()
    try:
        yield wiring
    finally:
        wiring.stop()


@pytest.fixture()
def web_client(dashboard_wiring: Wiring) -> Iterator[TestClient]:
    with TestClient(dashboard_wiring.app, base_url="http://testserver") as client:
        yield client


@pytest.fixture(scope="session")
def dashboard_server(dashboard_wiring: Wiring) -> Iterator[str]:
    """The dashboard app under a real uvicorn server on a free local port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(dashboard_wiring.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
