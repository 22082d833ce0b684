"""The FastAPI application factory; it receives its engine, services and limits, never reads settings itself."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from fernando_telemetry import __version__
from fernando_telemetry.api import (
    admin,
    alert_rules,
    alerts,
    health,
    ingest,
    kpis,
    notification_channels,
    otlp,
    query_events,
    query_metrics,
    query_sql,
    silences,
    summaries,
    traces,
)
from fernando_telemetry.api.body_deadline import BodyDeadline
from fernando_telemetry.api.errors import install_error_handlers
from fernando_telemetry.api.response_deadline import ResponseDeadline
from fernando_telemetry.core import cursor as cursors
from fernando_telemetry.core.quotas import DEFAULT_QUOTAS, Quotas
from fernando_telemetry.services import rule_backtest, tenancy, user_query
from fernando_telemetry.services.health import ReadinessCheck
from fernando_telemetry.services.ingest import Ingestor
from fernando_telemetry.services.notification_channels import NotificationSetup
from fernando_telemetry.web import install_dashboard

__all__ = ["ApiLimits", "create_app"]

_BACKTEST_RESPONSE_S = rule_backtest.BACKTEST_TIMEOUT_MS / 1000.0 + 5.0
"""The response bound of backtest routes: above a backtest's own wall-time limit, so its 400 is what answers."""


@dataclass(frozen=True)
class ApiLimits:
    max_body_bytes: int = 10 * 1024 * 1024
    body_idle_timeout_s: float = 30.0
    """A request body that stalls this long between chunks ends with 408 (``BodyDeadline``); 0: no bound."""
    sign_in_failures_per_minute: int = 10
    """Refused dashboard sign-ins per client address before 429 (a burst, then this rate); 0: no limit."""
    response_timeout_s: float = 8.0
    """A request whose response has not started this long after it came is answered 503 with Retry-After
    (``ResponseDeadline``), so a hung database never leaves clients without an answer; 0: no bound."""


def create_app(
    *,
    engine: Engine,
    ingestor: Ingestor | None = None,
    limits: ApiLimits = ApiLimits(),
    query_url: str | None = None,
    query_limits: user_query.QueryLimits | None = None,
    secret_key: str | None = None,
    notifications: NotificationSetup | None = None,
    quotas: Quotas = DEFAULT_QUOTAS,
) -> FastAPI:
    app = FastAPI(
        title="Fernando Telemetry",
        version=__version__,
        description="Telemetry backend: events, metrics, KPIs, traces and alerts in one PostgreSQL database.",
        docs_url=None,  # the dashboard serves /docs from local files (web.api_docs)
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    # without a secret key (tests), one that lives as long as the app: its sessions and cursors end with it
    secret_key = secret_key or secrets.token_urlsafe(32)
    app.state.engine = engine
    app.state.readiness = ReadinessCheck(engine)
    app.state.cursor_key = cursors.derive_key(secret_key)
    # a factory of its own: requests of license keys switch its transactions to row-level security
    app.state.sessions = tenancy.scope_sessions(sessionmaker(engine, expire_on_commit=False))
    app.state.ingestor = ingestor
    app.state.limits = limits
    app.state.quotas = quotas
    app.state.query_url = query_url or user_query.query_role_url(engine.url.render_as_string(hide_password=False))
    app.state.query_limits = query_limits or user_query.QueryLimits()
    app.state.query_gate = user_query.ConcurrencyGate()
    # channel secrets are sealed with the server's key; without one (tests), with a key that lives as long as the app
    app.state.notifications = notifications or NotificationSetup.with_key(secret_key)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(alerts.router)
    app.include_router(silences.router)
    app.include_router(notification_channels.router)
    app.include_router(alert_rules.router)
    for query_router in (
        query_events.router,
        query_metrics.router,
        query_sql.router,
        traces.router,
        kpis.router,
        summaries.router,
    ):
        app.include_router(query_router)
    if ingestor is not None:
        app.include_router(ingest.router)
        app.include_router(otlp.router)
    # the dashboard at /; without a secret key its sign-ins last until the process ends
    install_dashboard(app, secret_key=secret_key, sign_in_failures_per_minute=limits.sign_in_failures_per_minute)
    app.add_middleware(BodyDeadline, idle_timeout_s=limits.body_idle_timeout_s)
    # outermost: it bounds the whole wait, body and route; the user SQL route may run its own statement timeout first
    query_timeout_s = app.state.query_limits.timeout_ms / 1000.0 + 2.0
    app.add_middleware(
        ResponseDeadline,
        timeout_s=limits.response_timeout_s,
        timeouts_by_path={
            "/api/v1/query": max(limits.response_timeout_s, query_timeout_s),
            # a backtest runs up to its own 30 s wall-time limit and answers a 400 when it passes it
            "/api/v1/alert-rules/backtest": max(limits.response_timeout_s, _BACKTEST_RESPONSE_S),
            "/ui/rules": max(limits.response_timeout_s, _BACKTEST_RESPONSE_S),
        }
        if limits.response_timeout_s > 0
        else {},
    )
    return app
