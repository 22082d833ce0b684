"""Realistic, internally consistent synthetic telemetry, as the ingest rows (``core.ingest.rows``).

Pure: a seeded ``random.Random``, the time window and the platform's users are passed in; JSON is
serialised by the caller's ``dump_json``. Traffic follows a daily curve (quiet nights, busy afternoons);
users have sessions; traces cross services (web -> api -> payments / inventory / db) with occasional
errors and slow spans; every business event carries an amount and a currency.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fernando_telemetry.core.ids import uuid7
from fernando_telemetry.core.ingest.rows import EventRow, MetricRow, SpanRow
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID, owner_license

__all__ = ["SyntheticUser", "Window", "event_rows", "metric_rows", "span_rows"]

PAGES = ("/", "/pricing", "/dashboard", "/reports", "/settings", "/checkout", "/docs", "/search")
SOURCES = (("web", 0.6), ("mobile", 0.25), ("api", 0.1), ("batch_job", 0.05))
PLANS = ("free", "pro", "enterprise")
CURRENCIES = (("EUR", 0.5), ("USD", 0.4), ("GBP", 0.1))
SERVICES = ("web", "api", "payments", "inventory", "postgres")
HOSTS = ("web-1", "web-2", "api-1", "api-2", "worker-1")
ROUTES = (
    ("GET", "/api/v1/products/{id}"),
    ("GET", "/api/v1/cart"),
    ("POST", "/api/v1/checkout"),
    ("GET", "/api/v1/search"),
    ("POST", "/api/v1/login"),
)


@dataclass(frozen=True)
class SyntheticUser:
    user_id: str
    license_id: int | None


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def moment(self, rng: random.Random) -> datetime:
        """A moment in the window, weighted by a daily traffic curve (peak mid-afternoon UTC)."""
        span_s = (self.end - self.start).total_seconds()
        while True:
            at = self.start + timedelta(seconds=rng.random() * span_s)
            hour = at.hour + at.minute / 60
            if rng.random() < 0.25 + 0.75 * (0.5 - 0.5 * math.cos((hour - 3) / 24 * 2 * math.pi)):
                return at


def _weighted(rng: random.Random, choices: Sequence[tuple[Any, float]]) -> Any:
    point = rng.random() * sum(weight for _, weight in choices)
    for value, weight in choices:
        point -= weight
        if point <= 0:
            return value
    return choices[-1][0]


def _hex(rng: random.Random, chars: int) -> str:
    return f"{rng.getrandbits(chars * 4):0{chars}x}".replace("0" * chars, "1" * chars)


def event_rows(
    rng: random.Random, count: int, *, window: Window, users: Sequence[SyntheticUser], dump_json: Callable[[Any], str]
) -> Iterator[EventRow]:
    """``count`` events as ``EventRow``s, about 90% attributed to a user."""
    sessions: dict[str, str] = {}
    for _ in range(count):
        at = window.moment(rng)
        user = users[min(len(users) - 1, int(rng.paretovariate(1.2))) % len(users)] if users and rng.random() < 0.9 else None
        user_id = user.user_id if user else None
        license_id = owner_license(user.license_id if user else None)
        if user_id and (user_id not in sessions or rng.random() < 0.05):
            sessions[user_id] = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
        session_id = sessions.get(user_id) if user_id else None
        roll = rng.random()
        payload: dict[str, Any]
        duration: float | None = None
        if roll < 0.55:
            event_type, name = "user_action", rng.choice(("page_view", "page_view", "button_click", "search", "checkout_started"))
            payload = {"page": rng.choice(PAGES), "plan": rng.choice(PLANS)}
        elif roll < 0.80:
            event_type, name = "api_event", "api_request"
            method, route = rng.choice(ROUTES)
            status = 500 if rng.random() < 0.02 else rng.choice((200, 200, 200, 201, 204, 404))
            duration = round(rng.lognormvariate(3.5, 0.8), 2)
            payload = {"method": method, "route": route, "status_code": status}
        elif roll < 0.86:
            event_type, name = "performance_event", "page_load"
            duration = round(rng.lognormvariate(6.5, 0.5), 1)
            payload = {"page": rng.choice(PAGES)}
        elif roll < 0.90:
            event_type, name = "error_event", rng.choice(("js_error", "payment_failed", "timeout"))
            payload = {"error": rng.choice(("TypeError", "CardDeclined", "GatewayTimeout")), "page": rng.choice(PAGES)}
        elif roll < 0.95:
            event_type, name = "business_event", rng.choice(("checkout_completed", "subscription_renewed"))
            payload = {
                "amount": round(rng.lognormvariate(3.8, 0.7), 2),
                "currency": _weighted(rng, CURRENCIES),
                "plan": rng.choice(PLANS),
            }
        elif roll < 0.98:
            event_type, name = "system_event", rng.choice(("deploy", "cache_flush", "job_finished"))
            payload = {"service": rng.choice(SERVICES)}
        else:
            event_type, name = "security_event", rng.choice(("login_failed", "password_reset"))
            payload = {"reason": "bad_password"}
        yield EventRow(
            event_id=uuid7(int(at.timestamp() * 1000), rng.getrandbits(80).to_bytes(10, "big")),
            event_type=event_type,
            event_name=name,
            category=None,
            source=_weighted(rng, SOURCES),
            user_id=user_id,
            license_id=license_id,
            session_id=session_id,
            payload=dump_json(payload),
            duration_ms=duration,
            ip_address=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" if user_id else None,
            user_agent="Mozilla/5.0 (X11; Linux x86_64)" if user_id else None,
            trace_id=None,
            span_id=None,
            environment="production",
            app_version="2.4.1",
            event_timestamp=at,
        )


def span_rows(
    rng: random.Random, count: int, *, window: Window, users: Sequence[SyntheticUser], dump_json: Callable[[Any], str]
) -> Iterator[SpanRow]:
    """About ``count`` spans as ``SpanRow``s, grouped in traces across services."""
    produced = 0
    while produced < count:
        start = window.moment(rng)
        trace_id = _hex(rng, 32)
        user = rng.choice(users) if users and rng.random() < 0.8 else None
        method, route = rng.choice(ROUTES)
        slow = rng.random() < 0.03
        failing = rng.random() < 0.03
        spans: list[SpanRow] = []

        def span(
            parent: str | None,
            service: str,
            operation: str,
            kind: str,
            begin: datetime,
            duration_ms: float,
            error: bool,
            **extra: Any,
        ) -> str:
            row = _span_row(rng, trace_id, user, parent, service, operation, kind, begin, duration_ms, error, dump_json, extra)  # noqa: B023
            spans.append(row)  # noqa: B023
            return row.span_id

        db_ms = rng.lognormvariate(1.5, 0.6) * (20 if slow else 1)
        downstream = "payments" if route.endswith("checkout") else "inventory"
        down_ms = db_ms + rng.lognormvariate(2.0, 0.5)
        api_ms = down_ms + rng.lognormvariate(1.8, 0.5)
        web_ms = api_ms + rng.lognormvariate(1.5, 0.5)
        status = 500 if failing else 200
        root = span(
            None, "web", f"{method} {route}", "server", start, web_ms, failing, status_code=status, method=method, route=route
        )
        api = span(
            root,
            "api",
            f"{method} {route}",
            "server",
            start + timedelta(milliseconds=1),
            api_ms,
            failing,
            status_code=status,
            method=method,
            route=route,
        )
        down = span(api, downstream, f"{downstream}.call", "client", start + timedelta(milliseconds=2), down_ms, failing)
        span(down, "postgres", "SELECT", "client", start + timedelta(milliseconds=3), db_ms, False)
        yield from spans
        produced += len(spans)


def _span_row(
    rng: random.Random,
    trace_id: str,
    user: SyntheticUser | None,
    parent: str | None,
    service: str,
    operation: str,
    kind: str,
    begin: datetime,
    duration_ms: float,
    error: bool,
    dump_json: Callable[[Any], str],
    extra: dict[str, Any],
) -> SpanRow:
    return SpanRow(
        trace_id=trace_id,
        span_id=_hex(rng, 16),
        parent_span_id=parent,
        operation_name=operation,
        service_name=service,
        span_kind=kind,
        start_time=begin,
        end_time=begin + timedelta(milliseconds=duration_ms),
        duration_ms=round(duration_ms, 3),
        status="error" if error else "ok",
        status_message="internal error" if error else None,
        status_code=extra.get("status_code"),
        http_method=extra.get("method"),
        http_route=extra.get("route"),
        error_type="GatewayTimeout" if error else None,
        error_message="upstream timed out" if error else None,
        host_name=rng.choice(HOSTS),
        user_id=user.user_id if user else None,
        license_id=owner_license(user.license_id if user else None),
        attributes=dump_json({"http.route": extra["route"]} if "route" in extra else {"peer.service": service}),
        span_events="[]",
        resource=dump_json({"service.name": service}),
        environment="production",
    )


def metric_rows(
    rng: random.Random,
    count: int,
    *,
    window: Window,
    dump_json: Callable[[Any], str],
    license_id: int = PLATFORM_LICENSE_ID,
) -> Iterator[MetricRow]:
    """``count`` samples of ``license_id`` as ``MetricRow``s: host gauges, request counters and latency histograms."""
    series = [(host, name) for host in HOSTS for name in ("cpu_usage", "memory_usage", "http.requests", "http.latency")]
    total_s = max(1.0, (window.end - window.start).total_seconds())
    step_s = total_s * len(series) / max(1, count)
    counters: dict[tuple[str, str], float] = {}
    produced = 0
    tick = 0
    while produced < count:
        at = window.start + timedelta(seconds=tick * step_s)
        if at >= window.end:
            tick = 0
            continue
        load = 0.3 + 0.5 * (0.5 - 0.5 * math.cos((at.hour - 3) / 24 * 2 * math.pi))
        for host, name in series:
            if produced >= count:
                break
            service = "api" if host.startswith("api") else "web" if host.startswith("web") else "worker"
            labels = dump_json({"region": "eu-west-1" if host.endswith("1") else "us-east-1"})
            p50 = p90 = p95 = p99 = None
            samples = 1
            start_time = total = None
            if name == "cpu_usage":
                metric_type, unit, value = "gauge", "percent", min(100.0, max(0.0, load * 100 + rng.gauss(0, 8)))
            elif name == "memory_usage":
                metric_type, unit, value = "gauge", "percent", min(100.0, 40 + load * 30 + rng.gauss(0, 3))
            elif name == "http.requests":
                increase = int(load * 50 + rng.random() * 10)  # counters are stored as increments
                counters[(host, name)] = total = counters.get((host, name), 0.0) + increase
                metric_type, unit, value, start_time = "counter", "1", float(increase), at - timedelta(seconds=step_s)
            else:
                p50 = rng.lognormvariate(3.0, 0.2) * (1 + load)
                p90, p95, p99 = p50 * 2.1, p50 * 2.8, p50 * 5.5
                metric_type, unit, value, samples = "histogram", "ms", p50 * 1.3, int(load * 300) + 1
            yield MetricRow(
                metric_name=name,
                metric_type=metric_type,
                value=round(value, 3),
                unit=unit,
                service_name=service,
                host_name=host,
                instance_id=f"{host}:8000",
                labels=labels,
                sample_count=samples,
                p50=p50,
                p90=p90,
                p95=p95,
                p99=p99,
                user_id=None,
                license_id=license_id,
                timestamp=at,
                start_time=start_time,
                sketch_keys=None,
                sketch_counts=None,
                min_value=None,
                max_value=None,
                cumulative_value=total,
            )
            produced += 1
        tick += 1
