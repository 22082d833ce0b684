"""The four analytics views, read back over seeded random rows and compared with Python's own sums.

Rows are inserted through the models inside the test's rolled-back transaction; every expected number
is computed here from those same Python objects (percentile_cont re-implemented as PostgreSQL defines it).
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.core.enums import EventType, MetricCategory, MetricType, PeriodType, SpanStatus
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.storage.models import BusinessMetric, License, SystemMetric, TelemetryEvent, Trace, User

SEED = 20261128
# New York is what people reach for, but a whole-hour offset cannot move an hour bucket; the
# half-hour and 45-minute zones are the ones that would expose truncation in the session zone.
ZONES = ("UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu")
WINDOW_START_H = 20
WINDOW_HOURS = 8

GroupKey = tuple[Any, ...]
Groups = dict[GroupKey, dict[str, Any]]


# --- independent reference computations -----------------------------------------------------------


def percentile_cont(values: Iterable[float | None], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the two closest ranks, NULLs ignored."""
    ordered = sorted(value for value in values if value is not None)
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    if lower == upper:
        return ordered[lower]
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def mean(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def distinct(values: Iterable[Any]) -> int:
    return len({value for value in values if value is not None})


def utc_hour(timestamp: datetime) -> datetime:
    return timestamp.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def approx_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: pytest.approx(value, rel=1e-9) if isinstance(value, float) else value for name, value in fields.items()}


def assert_groups_match(view_groups: Groups, expected_groups: Groups) -> None:
    assert set(view_groups) == set(expected_groups)
    for key, expected_fields in expected_groups.items():
        assert view_groups[key] == approx_fields(expected_fields), key


def set_time_zone(session: Session, zone: str) -> None:
    # a SET LOCAL statement, not set_config(): Citus passes it on to the workers, which compute the buckets there
    assert "'" not in zone
    session.execute(text(f"SET LOCAL TimeZone = '{zone}'"))
    assert session.execute(text("SHOW TimeZone")).scalar_one() == zone


def offset_is_whole_hours(zone: str, at: datetime) -> bool:
    offset = ZoneInfo(zone).utcoffset(at.replace(tzinfo=None))
    assert offset is not None
    return offset % timedelta(hours=1) == timedelta(0)


# --- shared data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenants:
    license_ids: tuple[int, int]
    user_ids: tuple[str, ...]

    @property
    def license_choices(self) -> tuple[int, ...]:
        """Both licenses and the unattributed (NULL) bucket."""
        return (*self.license_ids, PLATFORM_LICENSE_ID)


@pytest.fixture()
def day_start() -> datetime:
    """UTC midnight three days ago: inside the fixture's partition window whatever day the suite runs."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=3)


@pytest.fixture()
def tenants(session: Session) -> Tenants:
    """Two licenses with the same ten user ids each (users are scoped by license, so rows may pick any license
    and any user id), and the same user ids of the platform license, which owns rows that name none; flushed so
    FKs hold."""
    licenses = [License(name="Acme", plan="pro"), License(name="Globex", plan="free")]
    session.add_all(licenses)
    session.flush()
    user_ids = tuple(f"user-{index}" for index in range(8)) + tuple(f"orphan-{index}" for index in range(2))
    owners = [*(license_.license_id for license_ in licenses), PLATFORM_LICENSE_ID]
    session.add_all([User(user_id=user_id, license_id=owner) for owner in owners for user_id in user_ids])
    session.flush()
    return Tenants(license_ids=(licenses[0].license_id, licenses[1].license_id), user_ids=user_ids)


def window(day_start: datetime) -> tuple[datetime, datetime]:
    """The [20:00, next day 04:00) UTC span every hourly test writes into."""
    start = day_start + timedelta(hours=WINDOW_START_H)
    return start, start + timedelta(hours=WINDOW_HOURS)


def edge_timestamps(day_start: datetime) -> list[datetime]:
    """Exact hour boundaries, the last instants before midnight, midnight itself and just after."""
    start, end = window(day_start)
    next_day = day_start + timedelta(days=1)
    boundaries = [start + timedelta(hours=hour) for hour in range(WINDOW_HOURS)]
    return [
        *boundaries,
        next_day - timedelta(milliseconds=1),
        next_day - timedelta(microseconds=1),
        next_day,
        next_day + timedelta(microseconds=1),
        start + timedelta(hours=1) - timedelta(microseconds=1),
        end - timedelta(microseconds=1),
    ]


def timestamps(rng: random.Random, day_start: datetime, count: int) -> list[datetime]:
    """Every edge timestamp twice, the rest uniformly random inside the window."""
    start, _ = window(day_start)
    edges = edge_timestamps(day_start) * 2
    spread = [start + timedelta(microseconds=rng.randrange(WINDOW_HOURS * 3600 * 10**6)) for _ in range(count - len(edges))]
    return edges + spread


def hourly_view(session: Session, view: str, day_start: datetime) -> list[dict[str, Any]]:
    start, end = window(day_start)
    statement = text(f"SELECT * FROM {view} WHERE hour >= :start AND hour < :end")  # noqa: S608 - fixed names
    return [dict(row._mapping) for row in session.execute(statement, {"start": start, "end": end})]


def naive_hour_buckets(session: Session, table: str, column: str) -> set[datetime]:
    """Buckets a view would get by truncating in the session zone (what the views must not do)."""
    statement = text(f"SELECT DISTINCT date_trunc('hour', \"{column}\") FROM {table}")  # noqa: S608 - fixed names
    return set(session.execute(statement).scalars())


# --- telemetry_events_hourly_summary --------------------------------------------------------------

EVENT_TYPES = (EventType.USER_ACTION, EventType.API_EVENT, EventType.ERROR_EVENT)
EVENT_PAYLOADS: tuple[dict[str, Any], ...] = (
    {},
    {"page": "/checkout"},
    {"error": "timeout"},
    {"error": None},
    {"detail": {"error": "nested, not a top-level key"}},
    {"errors": 3},
    {"error": False},
    {"method": "GET", "route": "/pay", "status_code": 500},
    {"method": "GET", "route": "/pay", "status_code": 404},
    {"status_code": "503"},
    {"status_code": 600},
    {"exception": {"type": "ValueError"}},
)


def is_error_event(event_type: EventType, payload: dict[str, Any]) -> bool:
    """The documented rule: an error_event; a payload error or exception that is not null or false; a 5xx status_code."""
    status = payload.get("status_code")
    if isinstance(status, str):
        status = int(status) if status.isdigit() and len(status) == 3 else None
    return (
        event_type == EventType.ERROR_EVENT
        or payload.get("error") not in (None, False)
        or payload.get("exception") not in (None, False)
        or (isinstance(status, int | float) and 500 <= status < 600)
    )


def make_event(timestamp: datetime, event_type: EventType, **fields: Any) -> TelemetryEvent:
    fields.setdefault("payload", {})
    return TelemetryEvent(
        event_id=uuid.uuid4(), event_type=event_type, event_name=f"{event_type.value}.test", event_timestamp=timestamp, **fields
    )


def random_events(rng: random.Random, day_start: datetime, tenants: Tenants, count: int = 360) -> list[TelemetryEvent]:
    events = [
        TelemetryEvent(
            event_id=uuid.UUID(int=rng.getrandbits(128)),
            event_type=rng.choice(EVENT_TYPES),
            event_name=rng.choice(("page_view", "checkout", "login")),
            event_timestamp=timestamp,
            license_id=rng.choice(tenants.license_choices),
            user_id=rng.choice((*tenants.user_ids, None, None, None)),
            session_id=rng.choice(("s-1", "s-2", "s-3", "s-4", "s-5", None, None)),
            duration_ms=None if rng.random() < 0.25 else round(rng.lognormvariate(4, 1), rng.choice((0, 3))),
            payload=rng.choice(EVENT_PAYLOADS),
        )
        for timestamp in timestamps(rng, day_start, count)
    ]
    start, _ = window(day_start)
    # A group whose durations are all NULL, and a group of exactly one row at 23:59:59.999.
    events += [
        make_event(start + timedelta(hours=2, minutes=minute), EventType.SECURITY_EVENT, license_id=tenants.license_ids[1])
        for minute in (0, 15, 59)
    ]
    events.append(
        make_event(
            day_start + timedelta(days=1) - timedelta(milliseconds=1),
            EventType.PERFORMANCE_EVENT,
            license_id=tenants.license_ids[0],
            duration_ms=812.5,
        )
    )
    return events


def expected_event_groups(events: Sequence[TelemetryEvent]) -> Groups:
    grouped: dict[GroupKey, list[TelemetryEvent]] = defaultdict(list)
    for event in events:
        grouped[(utc_hour(event.event_timestamp), str(event.event_type), event.license_id)].append(event)
    return {
        key: {
            "events": len(rows),
            "unique_users": distinct(row.user_id for row in rows),
            "unique_sessions": distinct(row.session_id for row in rows),
            "avg_duration_ms": mean(row.duration_ms for row in rows),
            "p95_duration_ms": percentile_cont((row.duration_ms for row in rows), 0.95),
            "errors": sum(1 for row in rows if is_error_event(row.event_type, row.payload)),
            "server_span_errors": 0,
        }
        for key, rows in grouped.items()
    }


def event_view_groups(session: Session, day_start: datetime) -> Groups:
    rows = hourly_view(session, "telemetry_events_hourly_summary", day_start)
    groups = {(row.pop("hour"), row.pop("event_type"), row.pop("license_id")): row for row in rows}
    assert len(groups) == len(rows), "one row per (hour, event_type, license_id)"
    return groups


class TestTelemetryEventsHourlySummary:
    def test_matches_an_independent_computation_for_every_group(
        self, session: Session, day_start: datetime, tenants: Tenants
    ) -> None:
        """Counts, distinct users and sessions, average and p95 duration and errors agree with Python, group by group."""
        events = random_events(random.Random(SEED), day_start, tenants)
        session.add_all(events)
        session.flush()

        expected = expected_event_groups(events)
        assert len(expected) > 40, "the seeded data spreads over many groups"
        assert_groups_match(event_view_groups(session, day_start), expected)

    def test_nulls_are_ignored_by_distinct_counts_averages_and_percentiles(
        self, session: Session, day_start: datetime, tenants: Tenants
    ) -> None:
        """NULL users, sessions and durations are left out of distinct counts, the average and the p95; all-NULL gives NULL."""
        hour = day_start + timedelta(hours=21)
        license_a, license_b = tenants.license_ids
        session.add_all(
            [
                make_event(hour, EventType.USER_ACTION, license_id=license_a, user_id="user-0", duration_ms=10.0),
                make_event(
                    hour, EventType.USER_ACTION, license_id=license_a, user_id="user-0", session_id="s-1", duration_ms=20.0
                ),
                make_event(hour, EventType.USER_ACTION, license_id=license_a),
                make_event(hour, EventType.USER_ACTION, license_id=license_b),
                make_event(hour, EventType.USER_ACTION, license_id=license_b),
            ]
        )
        session.flush()

        groups = event_view_groups(session, day_start)
        assert groups[(hour, "user_action", license_a)] == {
            "events": 3,
            "unique_users": 1,
            "unique_sessions": 1,
            "avg_duration_ms": 15.0,
            "p95_duration_ms": pytest.approx(19.5),
            "errors": 0,
            "server_span_errors": 0,
        }
        assert groups[(hour, "user_action", license_b)] == {
            "events": 2,
            "unique_users": 0,
            "unique_sessions": 0,
            "avg_duration_ms": None,
            "p95_duration_ms": None,
            "errors": 0,
            "server_span_errors": 0,
        }

    def test_errors_count_error_events_failed_requests_and_a_top_level_error_key(
        self, session: Session, day_start: datetime, tenants: Tenants
    ) -> None:
        """An error_event counts whatever its payload; another type counts with a top-level "error" or "exception"
        (not null or false) or a 5xx "status_code"; nested keys, "errors" and 4xx do not."""
        hour = day_start + timedelta(hours=22)
        license_a = tenants.license_ids[0]
        session.add_all(
            [
                make_event(hour, EventType.ERROR_EVENT, license_id=license_a),
                make_event(hour, EventType.ERROR_EVENT, license_id=license_a, payload={"error": "boom"}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"error": "timeout"}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"error": None}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"error": False}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"detail": {"error": "nested"}}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"errors": 2}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"status": "error"}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"status_code": 500}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"status_code": 503.0}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"status_code": "502"}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"status_code": 499}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"status_code": "5xx"}),
                make_event(hour, EventType.API_EVENT, license_id=license_a, payload={"exception": "ValueError"}),
            ]
        )
        session.flush()

        groups = event_view_groups(session, day_start)
        assert groups[(hour, "error_event", license_a)]["errors"] == 2
        assert groups[(hour, "api_event", license_a)]["errors"] == 5
        assert groups[(hour, "api_event", license_a)]["events"] == 12

    def test_failed_server_spans_count_on_the_api_event_row(
        self, session: Session, day_start: datetime, tenants: Tenants
    ) -> None:
        """server_span_errors counts spans of kind server with status error, per hour and license, beside the api_event
        row; an hour with failed server spans and no api event gets a row of its own with no events."""
        hour = day_start + timedelta(hours=21)
        license_a, license_b = tenants.license_ids
        trace_id = uuid.uuid4().hex

        def span(n: int, kind: str, status: str, license_id: int, at: datetime = hour) -> Trace:
            return Trace(
                trace_id=trace_id, span_id=f"{n + 1:016x}", operation_name="GET /pay", service_name="shop", span_kind=kind,
                start_time=at + timedelta(minutes=n), end_time=at + timedelta(minutes=n, seconds=1), duration_ms=1000.0,
                status=status, license_id=license_id,
            )  # fmt: skip

        session.add_all(
            [
                make_event(hour, EventType.API_EVENT, license_id=license_a),
                make_event(hour, EventType.USER_ACTION, license_id=license_a),
                span(0, "server", "error", license_a),
                span(1, "server", "error", license_a),
                span(2, "server", "ok", license_a),
                span(3, "client", "error", license_a),
                span(4, "internal", "error", license_a),
                span(5, "server", "error", license_b, at=hour + timedelta(hours=1)),
            ]
        )
        session.flush()

        groups = event_view_groups(session, day_start)
        assert groups[(hour, "api_event", license_a)]["server_span_errors"] == 2
        assert groups[(hour, "api_event", license_a)]["events"] == 1
        assert groups[(hour, "user_action", license_a)]["server_span_errors"] == 0
        assert groups[(hour + timedelta(hours=1), "api_event", license_b)] == {
            "events": 0,
            "unique_users": 0,
            "unique_sessions": 0,
            "avg_duration_ms": None,
            "p95_duration_ms": None,
            "errors": 0,
            "server_span_errors": 1,
        }

    def test_rows_on_either_side_of_an_hour_and_of_midnight_land_in_their_own_utc_hour(
        self, session: Session, day_start: datetime, tenants: Tenants
    ) -> None:
        """22:59:59.999999 stays in 22:00, 23:00:00 and 23:59:59.999 go to 23:00, midnight opens the next day's 00:00."""
        next_day = day_start + timedelta(days=1)
        license_a = tenants.license_ids[0]
        for timestamp in (
            next_day - timedelta(hours=1, microseconds=1),
            next_day - timedelta(hours=1),
            next_day - timedelta(milliseconds=1),
            next_day,
        ):
            session.add(make_event(timestamp, EventType.SYSTEM_EVENT, license_id=license_a))
        session.flush()

        counts = {hour: fields["events"] for (hour, _, _), fields in event_view_groups(session, day_start).items()}
        assert counts == {next_day - timedelta(hours=2): 1, next_day - timedelta(hours=1): 2, next_day: 1}

    @pytest.mark.parametrize("zone", ZONES)
    def test_hour_buckets_do_not_depend_on_the_session_time_zone(
        self, session: Session, day_start: datetime, tenants: Tenants, zone: str
    ) -> None:
        """Read under UTC and again under another TimeZone, the view returns the same UTC-hour groups and numbers."""
        events = random_events(random.Random(SEED + 1), day_start, tenants)
        session.add_all(events)
        session.flush()
        expected = expected_event_groups(events)

        set_time_zone(session, "UTC")
        under_utc = event_view_groups(session, day_start)
        set_time_zone(session, zone)
        under_zone = event_view_groups(session, day_start)

        assert under_zone == under_utc
        assert_groups_match(under_zone, expected)
        utc_buckets = {key[0] for key in expected}
        naive_buckets = naive_hour_buckets(session, "telemetry_events", "event_timestamp")
        assert (naive_buckets == utc_buckets) == offset_is_whole_hours(zone, day_start)


# --- system_metrics_service_summary ---------------------------------------------------------------

SERVICES = ("api", "worker", None)
METRIC_NAMES = ("cpu_percent", "queue_delta")


def make_metric(timestamp: datetime, value: float, **fields: Any) -> SystemMetric:
    fields.setdefault("metric_name", "cpu_percent")
    fields.setdefault("service_name", "api")
    return SystemMetric(metric_type=MetricType.GAUGE, value=value, timestamp=timestamp, **fields)


def random_metrics(rng: random.Random, day_start: datetime, tenants: Tenants, count: int = 360) -> list[SystemMetric]:
    def value(metric_name: str) -> float:
        if metric_name == "queue_delta":
            return float(rng.randint(-50, 50))  # negatives and many ties
        return round(rng.uniform(0, 100), rng.choice((0, 2)))

    metrics = []
    for timestamp in timestamps(rng, day_start, count):
        metric_name = rng.choice(METRIC_NAMES)
        metrics.append(
            make_metric(
                timestamp,
                value(metric_name),
                metric_name=metric_name,
                service_name=rng.choice(SERVICES),
                host_name=rng.choice(("web-1", "web-2")),
                license_id=rng.choice(tenants.license_choices),
                user_id=rng.choice((*tenants.user_ids, None)),
            )
        )
    start, _ = window(day_start)
    # A dense group so p99 interpolates between distinct ranks, and a single-sample group at 23:59:59.999.
    metrics += [
        make_metric(start + timedelta(hours=2, seconds=second), rng.gauss(250, 40), metric_name="latency_ms", service_name="api")
        for second in range(0, 3600, 45)
    ]
    metrics.append(
        make_metric(day_start + timedelta(days=1) - timedelta(milliseconds=1), 7.25, metric_name="runs", service_name="cron")
    )
    return metrics


def expected_metric_groups(metrics: Sequence[SystemMetric]) -> Groups:
    grouped: dict[GroupKey, list[float]] = defaultdict(list)
    for metric in metrics:
        grouped[(utc_hour(metric.timestamp), metric.service_name, metric.metric_name)].append(metric.value)
    return {
        key: {
            "samples": len(values),
            "avg_value": mean(values),
            "min_value": min(values),
            "max_value": max(values),
            "p50": percentile_cont(values, 0.50),
            "p90": percentile_cont(values, 0.90),
            "p95": percentile_cont(values, 0.95),
            "p99": percentile_cont(values, 0.99),
            "observations": len(values),
            "value_sum": pytest.approx(sum(values)),
        }
        for key, values in grouped.items()
    }


def metric_view_groups(session: Session, day_start: datetime) -> Groups:
    rows = hourly_view(session, "system_metrics_service_summary", day_start)
    groups = {(row.pop("hour"), row.pop("service_name"), row.pop("metric_name")): row for row in rows}
    assert len(groups) == len(rows), "one row per (hour, service_name, metric_name)"
    return groups


class TestSystemMetricsServiceSummary:
    def test_matches_an_independent_computation_for_every_group(
        self, session: Session, day_start: datetime, tenants: Tenants
    ) -> None:
        """Samples, average, min, max and the four interpolated percentiles agree with Python, group by group."""
        metrics = random_metrics(random.Random(SEED), day_start, tenants)
        session.add_all(metrics)
        session.flush()

        expected = expected_metric_groups(metrics)
        assert len(expected) > 30, "the seeded data spreads over many groups"
        assert any(key[1] is None for key in expected), "samples without a service form their own group"
        assert_groups_match(metric_view_groups(session, day_start), expected)

    def test_percentiles_interpolate_between_the_closest_ranks(self, session: Session, day_start: datetime) -> None:
        """Over 10, 20, 30, 40 and 100 the view gives p50 30, p90 76, p95 88, p99 97.6, as percentile_cont defines them."""
        hour = day_start + timedelta(hours=23)
        session.add_all(make_metric(hour + timedelta(minutes=index), value) for index, value in enumerate((40, 10, 100, 30, 20)))
        session.flush()

        fields = metric_view_groups(session, day_start)[(hour, "api", "cpu_percent")]
        assert fields == {
            "samples": 5,
            "avg_value": pytest.approx(40.0),
            "min_value": 10.0,
            "max_value": 100.0,
            "p50": pytest.approx(30.0),
            "p90": pytest.approx(76.0),
            "p95": pytest.approx(88.0),
            "p99": pytest.approx(97.6),
            "observations": 5,
            "value_sum": pytest.approx(200.0),
        }

    def test_rows_on_either_side_of_midnight_land_in_their_own_utc_hour(self, session: Session, day_start: datetime) -> None:
        """23:59:59.999 belongs to 23:00 of the day and 00:00:00.000 to 00:00 of the next."""
        next_day = day_start + timedelta(days=1)
        session.add_all([make_metric(next_day - timedelta(milliseconds=1), 1.0), make_metric(next_day, 2.0)])
        session.flush()

        groups = metric_view_groups(session, day_start)
        assert {hour: fields["max_value"] for (hour, _, _), fields in groups.items()} == {
            next_day - timedelta(hours=1): 1.0,
            next_day: 2.0,
        }

    @pytest.mark.parametrize("zone", ZONES)
    def test_hour_buckets_do_not_depend_on_the_session_time_zone(
        self, session: Session, day_start: datetime, tenants: Tenants, zone: str
    ) -> None:
        """Read under UTC and again under another TimeZone, the view returns the same UTC-hour groups and numbers."""
        metrics = random_metrics(random.Random(SEED + 1), day_start, tenants)
        session.add_all(metrics)
        session.flush()
        expected = expected_metric_groups(metrics)

        set_time_zone(session, "UTC")
        under_utc = metric_view_groups(session, day_start)
        set_time_zone(session, zone)
        under_zone = metric_view_groups(session, day_start)

        assert under_zone == under_utc
        assert_groups_match(under_zone, expected)
        utc_buckets = {key[0] for key in expected}
        naive_buckets = naive_hour_buckets(session, "system_metrics", "timestamp")
        assert (naive_buckets == utc_buckets) == offset_is_whole_hours(zone, day_start)


# --- traces_service_summary -----------------------------------------------------------------------

SPAN_SERVICES = ("checkout", "search")
OPERATIONS = ("GET /cart", "POST /pay", "db.query")


def make_span(rng: random.Random, start_time: datetime, duration_ms: float, **fields: Any) -> Trace:
    fields.setdefault("service_name", "checkout")
    fields.setdefault("operation_name", "GET /cart")
    return Trace(
        trace_id=f"{rng.getrandbits(128):032x}",
        span_id=f"{rng.getrandbits(64):016x}",
        start_time=start_time,
        end_time=start_time + timedelta(milliseconds=duration_ms),
        duration_ms=duration_ms,
        **fields,
    )


def random_spans(rng: random.Random, day_start: datetime, tenants: Tenants, count: int = 360) -> list[Trace]:
    spans = [
        make_span(
            rng,
            start_time,
            round(rng.lognormvariate(3.5, 1.2), rng.choice((0, 3))),
            service_name=rng.choice(SPAN_SERVICES),
            operation_name=rng.choice(OPERATIONS),
            status=rng.choices((SpanStatus.OK, SpanStatus.UNSET, SpanStatus.ERROR), weights=(6, 3, 1))[0],
            license_id=rng.choice(tenants.license_choices),
            user_id=rng.choice((*tenants.user_ids, None)),
        )
        for start_time in timestamps(rng, day_start, count)
    ]
    start, _ = window(day_start)
    # A dense group with a known share of errors, and a single failing span at 23:59:59.999.
    spans += [
        make_span(
            rng,
            start + timedelta(hours=3, seconds=second),
            rng.uniform(5, 500),
            service_name="search",
            operation_name="es.query",
            status=SpanStatus.ERROR if second % 300 == 0 else SpanStatus.OK,
        )
        for second in range(0, 3600, 30)
    ]
    spans.append(
        make_span(
            rng, day_start + timedelta(days=1) - timedelta(milliseconds=1), 42.0, operation_name="refund", status=SpanStatus.ERROR
        )
    )
    return spans


def expected_span_groups(spans: Sequence[Trace]) -> Groups:
    grouped: dict[GroupKey, list[Trace]] = defaultdict(list)
    for span in spans:
        grouped[(utc_hour(span.start_time), span.service_name, span.operation_name)].append(span)
    expected = {}
    for key, rows in grouped.items():
        durations = [row.duration_ms for row in rows]
        errors = sum(1 for row in rows if row.status == SpanStatus.ERROR)
        expected[key] = {
            "spans": len(rows),
            "errors": errors,
            "error_rate": errors / len(rows),
            "p50_duration_ms": percentile_cont(durations, 0.50),
            "p95_duration_ms": percentile_cont(durations, 0.95),
            "p99_duration_ms": percentile_cont(durations, 0.99),
        }
    return expected


def span_view_groups(session: Session, day_start: datetime) -> Groups:
    rows = hourly_view(session, "traces_service_summary", day_start)
    groups = {(row.pop("hour"), row.pop("service_name"), row.pop("operation_name")): row for row in rows}
    assert len(groups) == len(rows), "one row per (hour, service_name, operation_name)"
    return groups


class TestTracesServiceSummary:
    def test_matches_an_independent_computation_for_every_group(
        self, session: Session, day_start: datetime, tenants: Tenants
    ) -> None:
        """Spans, errors, error rate and p50/p95/p99 durations agree with Python, group by group."""
        spans = random_spans(random.Random(SEED), day_start, tenants)
        session.add_all(spans)
        session.flush()

        expected = expected_span_groups(spans)
        assert len(expected) > 40, "the seeded data spreads over many groups"
        assert any(0 < fields["error_rate"] < 1 for fields in expected.values()), "some groups mix errors and successes"
        assert_groups_match(span_view_groups(session, day_start), expected)

    def test_error_rate_counts_only_the_error_status(self, session: Session, day_start: datetime) -> None:
        """Of ok, unset, error and error spans in one hour, errors is 2 and error_rate 0.5; unset is not a failure."""
        rng = random.Random(SEED)
        hour = day_start + timedelta(hours=21)
        session.add_all(
            make_span(rng, hour + timedelta(minutes=minute), 10.0 * (minute + 1), status=status)
            for minute, status in enumerate((SpanStatus.OK, SpanStatus.UNSET, SpanStatus.ERROR, SpanStatus.ERROR))
        )
        session.flush()

        fields = span_view_groups(session, day_start)[(hour, "checkout", "GET /cart")]
        assert fields == {
            "spans": 4,
            "errors": 2,
            "error_rate": 0.5,
            "p50_duration_ms": pytest.approx(25.0),
            "p95_duration_ms": pytest.approx(38.5),
            "p99_duration_ms": pytest.approx(39.7),
        }

    def test_rows_on_either_side_of_midnight_land_in_their_own_utc_hour(self, session: Session, day_start: datetime) -> None:
        """A span starting at 23:59:59.999 belongs to 23:00 and one starting at 00:00:00.000 to the next day's 00:00."""
        rng = random.Random(SEED)
        next_day = day_start + timedelta(days=1)
        session.add_all([make_span(rng, next_day - timedelta(milliseconds=1), 5.0), make_span(rng, next_day, 9.0)])
        session.flush()

        groups = span_view_groups(session, day_start)
        assert {hour: fields["p50_duration_ms"] for (hour, _, _), fields in groups.items()} == {
            next_day - timedelta(hours=1): 5.0,
            next_day: 9.0,
        }

    @pytest.mark.parametrize("zone", ZONES)
    def test_hour_buckets_do_not_depend_on_the_session_time_zone(
        self, session: Session, day_start: datetime, tenants: Tenants, zone: str
    ) -> None:
        """Read under UTC and again under another TimeZone, the view returns the same UTC-hour groups and numbers."""
        spans = random_spans(random.Random(SEED + 1), day_start, tenants)
        session.add_all(spans)
        session.flush()
        expected = expected_span_groups(spans)

        set_time_zone(session, "UTC")
        under_utc = span_view_groups(session, day_start)
        set_time_zone(session, zone)
        under_zone = span_view_groups(session, day_start)

        assert under_zone == under_utc
        assert_groups_match(under_zone, expected)
        utc_buckets = {key[0] for key in expected}
        naive_buckets = naive_hour_buckets(session, "traces", "start_time")
        assert (naive_buckets == utc_buckets) == offset_is_whole_hours(zone, day_start)


# --- business_metrics_kpi_summary -----------------------------------------------------------------

KPI_FIELDS = (
    "metric_category",
    "currency",
    "period_start",
    "period_end",
    "metric_value",
    "previous_value",
    "change",
    "change_pct",
)


def month_start(day: datetime, months_back: int) -> datetime:
    index = day.year * 12 + day.month - 1 - months_back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def kpi_key(row: BusinessMetric | dict[str, Any]) -> GroupKey:
    """(metric_name, period_type, license_id, dimensions) with the dimensions canonicalised as jsonb compares them."""
    if isinstance(row, BusinessMetric):
        return (row.metric_name, str(row.period_type), row.license_id, json.dumps(row.dimensions, sort_keys=True))
    return (row["metric_name"], row["period_type"], row["license_id"], json.dumps(row["dimensions"], sort_keys=True))


def expected_kpis(metrics: Sequence[BusinessMetric]) -> Groups:
    grouped: dict[GroupKey, list[BusinessMetric]] = defaultdict(list)
    for metric in metrics:
        grouped[kpi_key(metric)].append(metric)
    expected = {}
    for key, rows in grouped.items():
        history = sorted(rows, key=lambda row: row.period_start)
        latest = history[-1]
        previous = history[-2].metric_value if len(history) > 1 else latest.previous_value
        change = None if previous is None else latest.metric_value - previous
        change_pct = None
        if previous is not None and previous != 0:
            change_pct = ((latest.metric_value - previous) / abs(previous) * 100).quantize(
                Decimal("0.01"), rounding=ROUND_HALF_UP
            )
        expected[key] = {
            "metric_category": str(latest.metric_category),
            "currency": latest.currency,
            "period_start": latest.period_start,
            "period_end": latest.period_end,
            "metric_value": latest.metric_value,
            "previous_value": previous,
            "change": change,
            "change_pct": change_pct,
        }
    return expected


def kpi_view(session: Session, metric_names: Iterable[str]) -> Groups:
    statement = text("SELECT * FROM business_metrics_kpi_summary WHERE metric_name = ANY(:names)")
    rows = [dict(row._mapping) for row in session.execute(statement, {"names": sorted(set(metric_names))})]
    groups = {kpi_key(row): {field: row[field] for field in KPI_FIELDS} for row in rows}
    assert len(groups) == len(rows), "one row per KPI"
    return groups


class KpiSeries:
    """Builds one KPI's history of periods; `money` draws values with two decimals from the seeded generator."""

    def __init__(self, rng: random.Random, day_start: datetime) -> None:
        self.rng = rng
        self.day_start = day_start
        self.rows: list[BusinessMetric] = []

    def money(self, low: int, high: int) -> Decimal:
        return Decimal(self.rng.randint(low * 100, high * 100)) / 100

    def add(
        self,
        name: str,
        period_type: PeriodType,
        periods_back: Sequence[int],
        values: Sequence[Decimal],
        *,
        license_id: int | None,
        dimensions: dict[str, Any] | None = None,
        previous_column: Callable[[int], Decimal | None] = lambda _: None,
        category: MetricCategory = MetricCategory.REVENUE,
        currency: str | None = None,
    ) -> None:
        for index, (back, value) in enumerate(zip(periods_back, values, strict=True)):
            if period_type == PeriodType.MONTHLY:
                start, end = month_start(self.day_start, back), month_start(self.day_start, back - 1)
            else:
                start = self.day_start - timedelta(days=back)
                end = start + timedelta(days=1)
            self.rows.append(
                BusinessMetric(
                    metric_name=name,
                    metric_category=category,
                    metric_value=value,
                    currency=currency,
                    period_start=start,
                    period_end=end,
                    period_type=period_type,
                    license_id=license_id,
                    dimensions=dict(dimensions or {}),
                    previous_value=previous_column(index),
                )
            )


def realistic_kpis(rng: random.Random, day_start: datetime, tenants: Tenants) -> list[BusinessMetric]:
    series = KpiSeries(rng, day_start)
    for license_id in tenants.license_choices:
        for dimensions in ({}, {"plan": "pro"}, {"plan": "free", "region": "eu"}):
            months = rng.randint(2, 6)
            series.add(
                "mrr",
                PeriodType.MONTHLY,
                range(months - 1, -1, -1),
                [series.money(1_000, 50_000) for _ in range(months)],
                license_id=license_id,
                dimensions=dimensions,
                # a stale column value on every row: the preceding stored period must win over it
                previous_column=lambda _: Decimal("1.00"),
                currency="EUR",
            )
        # ten days with gaps: the preceding stored day, not the calendar day before, is the previous value
        days = sorted(rng.sample(range(14), 10), reverse=True)
        series.add(
            "active_users",
            PeriodType.DAILY,
            days,
            [Decimal(rng.randint(0, 5_000)) for _ in days],
            license_id=license_id,
            dimensions={"platform": "web"},
            previous_column=lambda _: Decimal(rng.randint(1, 9)) if rng.random() < 0.5 else None,
            category=MetricCategory.USER_ENGAGEMENT,
        )
        series.add(
            "active_users",
            PeriodType.MONTHLY,
            [2, 1, 0],
            [Decimal(rng.randint(1, 90_000)) for _ in range(3)],
            license_id=license_id,
            dimensions={"platform": "web"},
            category=MetricCategory.USER_ENGAGEMENT,
        )
    rng.shuffle(series.rows)  # insertion order must not matter
    return series.rows


def edge_kpis(rng: random.Random, day_start: datetime, tenants: Tenants) -> tuple[list[BusinessMetric], Groups]:
    """KPIs whose previous value, change and change percentage are written out by hand beside them."""
    license_a, license_b = tenants.license_ids
    series = KpiSeries(rng, day_start)
    add = series.add
    add("signups", PeriodType.DAILY, [2, 1, 0], [Decimal(5), Decimal(0), Decimal(12)], license_id=license_b)
    add("net_flow", PeriodType.MONTHLY, [1, 0], [Decimal("-500.00"), Decimal("250.00")], license_id=license_b, currency="USD")
    add("conversion", PeriodType.DAILY, [1, 0], [Decimal(3), Decimal(5)], license_id=PLATFORM_LICENSE_ID)
    add("conversion", PeriodType.DAILY, [1, 0], [Decimal(3), Decimal(4)], license_id=license_a)
    add("nps", PeriodType.MONTHLY, [0], [Decimal("48.5")], license_id=license_a, previous_column=lambda _: Decimal("42.5"))
    add("nps", PeriodType.MONTHLY, [0], [Decimal(30)], license_id=license_b)
    add("nps", PeriodType.MONTHLY, [0], [Decimal(7)], license_id=PLATFORM_LICENSE_ID, previous_column=lambda _: Decimal(0))
    # the same KPI written with its dimension keys in different orders is one series: jsonb compares by value
    add("seats", PeriodType.DAILY, [1], [Decimal(10)], license_id=license_a, dimensions={"plan": "pro", "region": "eu"})
    add("seats", PeriodType.DAILY, [0], [Decimal(15)], license_id=license_a, dimensions={"region": "eu", "plan": "pro"})

    def hand(
        period_start: datetime, value: str, previous: str | None, change: str | None, change_pct: str | None
    ) -> dict[str, Any]:
        return {
            "period_start": period_start,
            "metric_value": Decimal(value),
            "previous_value": None if previous is None else Decimal(previous),
            "change": None if change is None else Decimal(change),
            "change_pct": None if change_pct is None else Decimal(change_pct),
        }

    today, this_month = day_start, month_start(day_start, 0)
    expected = {
        ("signups", "daily", license_b, "{}"): hand(today, "12", "0", "12", None),
        ("net_flow", "monthly", license_b, "{}"): hand(this_month, "250", "-500", "750", "150.00"),
        ("conversion", "daily", PLATFORM_LICENSE_ID, "{}"): hand(today, "5", "3", "2", "66.67"),
        ("conversion", "daily", license_a, "{}"): hand(today, "4", "3", "1", "33.33"),
        ("nps", "monthly", license_a, "{}"): hand(this_month, "48.5", "42.5", "6", "14.12"),
        ("nps", "monthly", license_b, "{}"): hand(this_month, "30", None, None, None),
        ("nps", "monthly", PLATFORM_LICENSE_ID, "{}"): hand(this_month, "7", "0", "7", None),
        ("seats", "daily", license_a, '{"plan": "pro", "region": "eu"}'): hand(today, "15", "10", "5", "50.00"),
    }
    return series.rows, expected


class TestBusinessMetricsKpiSummary:
    def test_latest_period_of_every_kpi_matches_an_independent_computation(
        self, session: Session, day_start: datetime, tenants: Tenants
    ) -> None:
        """Per KPI (name, period type, license or overall, dimensions) the view shows the newest period and its change."""
        metrics = realistic_kpis(random.Random(SEED), day_start, tenants)
        session.add_all(metrics)
        session.flush()

        expected = expected_kpis(metrics)
        assert len(expected) == 3 * 3 + 3 * 2, "mrr per license and dimensions, active_users daily and monthly per license"
        assert any(key[2] == PLATFORM_LICENSE_ID for key in expected), "overall KPIs (the platform license) are included"
        assert kpi_view(session, ["mrr", "active_users"]) == expected

    def test_previous_value_and_changes_follow_the_hand_written_cases(
        self, session: Session, day_start: datetime, tenants: Tenants
    ) -> None:
        """Preceding period wins, own column is the fallback, zero or missing previous gives a NULL change_pct, abs() in the denominator."""
        metrics, hand_written = edge_kpis(random.Random(SEED), day_start, tenants)
        session.add_all(metrics)
        session.flush()

        view = kpi_view(session, {key[0] for key in hand_written})
        assert set(view) == set(hand_written)
        for key, expected_fields in hand_written.items():
            assert {field: view[key][field] for field in expected_fields} == expected_fields, key
        assert view == expected_kpis(metrics)

    def test_a_kpi_with_one_period_takes_its_previous_value_from_its_own_column(
        self, session: Session, day_start: datetime
    ) -> None:
        """With no earlier stored period, previous_value, change and change_pct come from the row's previous_value column."""
        session.add(
            BusinessMetric(
                metric_name="arpu",
                metric_category=MetricCategory.REVENUE,
                metric_value=Decimal("12.00"),
                previous_value=Decimal("16.00"),
                currency="EUR",
                period_start=month_start(day_start, 0),
                period_end=month_start(day_start, -1),
                period_type=PeriodType.MONTHLY,
                dimensions={"segment": "smb"},
            )
        )
        session.flush()

        row = kpi_view(session, ["arpu"])[("arpu", "monthly", PLATFORM_LICENSE_ID, '{"segment": "smb"}')]
        assert (row["previous_value"], row["change"], row["change_pct"]) == (Decimal("16"), Decimal("-4"), Decimal("-25.00"))


# --- the reference implementation itself ---------------------------------------------------------


class TestPercentileCont:
    @pytest.mark.parametrize(
        ("values", "fraction", "expected"),
        [
            ([], 0.5, None),
            ([None, None], 0.5, None),
            ([7.0], 0.99, 7.0),
            ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
            ([4.0, None, 1.0, 3.0, 2.0], 0.5, 2.5),
            ([10.0, 20.0, 30.0, 40.0, 100.0], 0.9, 76.0),
            ([0.0, 10.0], 0.95, 9.5),
            ([5.0, 5.0, 5.0], 0.99, 5.0),
        ],
    )
    def test_interpolates_between_the_closest_ranks_and_ignores_nulls(
        self, values: list[float | None], fraction: float, expected: float | None
    ) -> None:
        """The Python oracle gives the textbook percentile_cont results on small hand-checked inputs."""
        assert percentile_cont(values, fraction) == pytest.approx(expected)

    def test_agrees_with_postgresql_on_random_samples(self, session: Session) -> None:
        """On seeded random samples the oracle matches PostgreSQL's own percentile_cont at every fraction the views use."""
        rng = random.Random(SEED)
        statement = text(
            "SELECT percentile_cont(:fraction) WITHIN GROUP (ORDER BY v) FROM unnest(CAST(:values AS float8[])) AS v"
        )
        for size in (1, 2, 3, 7, 20, 101):
            values = [rng.choice((None, rng.uniform(-100, 100), float(rng.randint(0, 3)))) for _ in range(size)]
            for fraction in (0.5, 0.9, 0.95, 0.99):
                from_postgres = session.execute(statement, {"fraction": fraction, "values": values}).scalar_one()
                assert percentile_cont(values, fraction) == pytest.approx(from_postgres), (values, fraction)
