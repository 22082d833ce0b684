"""Rollups on real rows: the views and the metric series answer from the rollups what raw rows answer.

Counts, sums, minimum and maximum must be equal; percentiles exact where one rollup row holds a group,
otherwise within the sketch's stated bound (``core.sketch``), checked against exact sorted-list quantiles.
Most tests run in the rolled-back ``session``: rows they add there carry the transaction's start as
``created_at``, so a row "written later" (late data) is given an explicit, newer ``created_at``. The job,
the lock and in-flight writers are tested on a database of their own, with commits.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from fernando_telemetry.cli import app
from fernando_telemetry.composition import jobs
from fernando_telemetry.core.enums import EventType, MetricType, SpanStatus
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.core.series import Aggregation, GroupBy, Step, align_down
from fernando_telemetry.core.sketch import Sketch, key_of, value_of
from fernando_telemetry.services import partitions, retention, rollups, schema
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage import rollups as rollup_store
from fernando_telemetry.storage.database import make_engine, session_factory
from fernando_telemetry.storage.models import License, SystemMetric, TelemetryEvent, Trace, User
from tests.core.test_sketch import allowed_error, exact_quantile

SEED = 20261129
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
VIEW_FRACTIONS = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def roll_up(session: Session) -> rollups.RefreshStep:
    """Refresh up to this instant, in the test's transaction."""
    return rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)


def close(actual: float | None, exact: float | None) -> bool:
    if actual is None or exact is None:
        return actual is exact
    return math.isclose(actual, exact, rel_tol=1e-9, abs_tol=1e-12)


def within_bound(actual: float | None, values: Sequence[float], fraction: float) -> bool:
    """The sketch's bound against the exact percentile_cont of ``values``."""
    if not values:
        return actual is None
    ordered = sorted(values)
    return actual is not None and abs(actual - exact_quantile(ordered, fraction)) <= allowed_error(ordered, fraction)


def observed(rows: Iterable[SystemMetric]) -> list[float]:
    """The values rows without sketch stand for: each row's value ``sample_count`` times."""
    return [row.value for row in rows for _ in range(row.sample_count)]


def summed(rows: Iterable[SystemMetric]) -> float:
    """The ``sum`` aggregation: ``value * sample_count`` of histogram-like rows, ``value`` of gauges and counters."""
    histogram_like = (MetricType.HISTOGRAM, MetricType.TIMER, MetricType.DISTRIBUTION)
    return math.fsum(row.value * row.sample_count if row.metric_type in histogram_like else row.value for row in rows)


# --- data -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenants:
    license_ids: tuple[int, int]
    user_ids: tuple[str, ...]

    @property
    def license_choices(self) -> tuple[int | None, ...]:
        return (*self.license_ids, None)


@pytest.fixture()
def day_start() -> datetime:
    """UTC midnight three days ago: its day and the next have ended, inside the fixture's partitions."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) - 3 * DAY


@pytest.fixture()
def tenants(session: Session) -> Tenants:
    licenses = [License(name="Rollup A"), License(name="Rollup B")]
    session.add_all(licenses)
    session.flush()
    # users are scoped by license: every user id exists in both licenses and in the platform license (which owns
    # rows that name none), so rows may pick any pair
    user_ids = tuple(f"rollup-user-{index}" for index in range(6))
    owners = [*(license_.license_id for license_ in licenses), PLATFORM_LICENSE_ID]
    session.add_all([User(user_id=user_id, license_id=owner) for owner in owners for user_id in user_ids])
    session.flush()
    return Tenants(license_ids=(licenses[0].license_id, licenses[1].license_id), user_ids=user_ids)


def moments(rng: random.Random, start: datetime, hours: int, count: int) -> list[datetime]:
    """Every hour's first and last instant, then uniform moments over ``hours`` hours."""
    edges = [start + HOUR * hour for hour in range(hours)] + [
        start + HOUR * hour - timedelta(microseconds=1) for hour in range(1, hours + 1)
    ]
    return edges + [start + timedelta(microseconds=rng.randrange(hours * 3600 * 10**6)) for _ in range(count - len(edges))]


def make_events(
    rng: random.Random, start: datetime, tenants: Tenants, *, hours: int = 48, count: int = 500
) -> list[TelemetryEvent]:
    return [
        TelemetryEvent(
            event_id=uuid.UUID(int=rng.getrandbits(128)),
            event_type=rng.choice((EventType.USER_ACTION, EventType.API_EVENT, EventType.ERROR_EVENT)),
            event_name="rollup.test",
            event_timestamp=moment,
            license_id=rng.choice(tenants.license_choices),
            user_id=rng.choice((*tenants.user_ids, None)),
            session_id=rng.choice(("s-1", "s-2", "s-3", None)),
            duration_ms=None if rng.random() < 0.2 else rng.lognormvariate(4, 1.2),
            payload=rng.choice(({}, {"error": "timeout"}, {"page": "/"})),
        )
        for moment in moments(rng, start, hours, count)
    ]


def make_metrics(
    rng: random.Random, start: datetime, tenants: Tenants, *, hours: int = 48, count: int = 600
) -> list[SystemMetric]:
    metrics = []
    for moment in moments(rng, start, hours, count):
        metric_name = rng.choice(("latency_ms", "queue_delta"))
        value = rng.lognormvariate(3, 1.5) if metric_name == "latency_ms" else float(rng.randint(-40, 40))
        metrics.append(
            SystemMetric(
                metric_name=metric_name,
                metric_type=MetricType.GAUGE if metric_name == "queue_delta" else MetricType.HISTOGRAM,
                value=value,
                sample_count=rng.choice((1, 1, 3, 10)),
                service_name=rng.choice(("api", "worker", None)),
                host_name=rng.choice(("web-1", "web-2", None)),
                license_id=rng.choice(tenants.license_choices),
                timestamp=moment,
            )
        )
    return metrics


def make_spans(rng: random.Random, start: datetime, tenants: Tenants, *, hours: int = 48, count: int = 500) -> list[Trace]:
    spans = []
    for moment in moments(rng, start, hours, count):
        duration = rng.paretovariate(1.5) * 3
        spans.append(
            Trace(
                trace_id=f"{rng.getrandbits(128):032x}",
                span_id=f"{rng.getrandbits(64):016x}",
                service_name=rng.choice(("checkout", "search")),
                operation_name=rng.choice(("GET /cart", "POST /pay")),
                start_time=moment,
                end_time=moment + timedelta(milliseconds=duration),
                duration_ms=duration,
                status=rng.choices((SpanStatus.OK, SpanStatus.UNSET, SpanStatus.ERROR), weights=(6, 3, 1))[0],
                license_id=rng.choice(tenants.license_choices),
            )
        )
    return spans


def utc_hour(moment: datetime) -> datetime:
    return align_down(moment, Step.ONE_HOUR)


def grouped(rows: Iterable[Any], key: Callable[[Any], tuple[Any, ...]]) -> dict[tuple[Any, ...], list[Any]]:
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def view_rows(session: Session, view: str, start: datetime, end: datetime) -> dict[tuple[Any, ...], dict[str, Any]]:
    statement = text(f"SELECT * FROM {view} WHERE hour >= :start AND hour < :end")  # noqa: S608 - fixed names
    keyed = {}
    for row in session.execute(statement, {"start": start, "end": end}):
        fields = dict(row._mapping)
        hour = fields.pop("hour")
        first, second = list(fields)[:2]
        key = (hour, fields.pop(first), fields.pop(second))
        assert key not in keyed, "one row per hour and group"
        keyed[key] = fields
    return keyed


# --- checks of each view against Python's numbers ---------------------------------------------------------


def check_events_view(session: Session, events: Sequence[TelemetryEvent], start: datetime, end: datetime) -> None:
    """Every field exact: one hourly row holds each group of the view."""
    view = view_rows(session, "telemetry_events_hourly_summary", start, end)
    expected = grouped(events, lambda e: (utc_hour(e.event_timestamp), str(e.event_type), e.license_id))
    assert set(view) == set(expected)
    for key, rows in expected.items():
        durations = [row.duration_ms for row in rows if row.duration_ms is not None]
        fields = view[key]
        assert fields["events"] == len(rows)
        assert fields["unique_users"] == len({row.user_id for row in rows} - {None})
        assert fields["unique_sessions"] == len({row.session_id for row in rows} - {None})
        assert fields["errors"] == sum(1 for row in rows if row.event_type == EventType.ERROR_EVENT or "error" in row.payload)
        assert close(fields["avg_duration_ms"], sum(durations) / len(durations) if durations else None)
        assert close(fields["p95_duration_ms"], exact_quantile(sorted(durations), 0.95) if durations else None), key


def check_metrics_view(session: Session, metrics: Sequence[SystemMetric], start: datetime, end: datetime) -> None:
    """Counts and extremes exact, the average (over observations) and sum to float precision, percentiles of the
    observed values within the bound."""
    view = view_rows(session, "system_metrics_service_summary", start, end)
    expected = grouped(metrics, lambda m: (utc_hour(m.timestamp), m.service_name, m.metric_name))
    assert set(view) == set(expected)
    for key, rows in expected.items():
        values = observed(rows)
        fields = view[key]
        assert (fields["samples"], fields["min_value"], fields["max_value"]) == (len(rows), min(values), max(values))
        assert fields["observations"] == len(values)
        assert close(fields["avg_value"], math.fsum(values) / len(values))
        assert close(fields["value_sum"], summed(rows))
        for name, fraction in VIEW_FRACTIONS.items():
            assert within_bound(fields[name], values, fraction), (key, name, fields[name])


def check_traces_view(session: Session, spans: Sequence[Trace], start: datetime, end: datetime) -> None:
    view = view_rows(session, "traces_service_summary", start, end)
    expected = grouped(spans, lambda s: (utc_hour(s.start_time), s.service_name, s.operation_name))
    assert set(view) == set(expected)
    for key, rows in expected.items():
        durations = [row.duration_ms for row in rows]
        errors = sum(1 for row in rows if row.status == SpanStatus.ERROR)
        fields = view[key]
        assert (fields["spans"], fields["errors"]) == (len(rows), errors)
        assert close(fields["error_rate"], errors / len(rows))
        for name in ("p50", "p95", "p99"):
            assert within_bound(fields[f"{name}_duration_ms"], durations, VIEW_FRACTIONS[name]), (key, name)


@dataclass
class Loaded:
    events: list[TelemetryEvent]
    metrics: list[SystemMetric]
    spans: list[Trace]
    start: datetime
    end: datetime


@pytest.fixture()
def loaded(session: Session, day_start: datetime, tenants: Tenants) -> Loaded:
    """Two whole days of seeded events, metric samples and spans over two licenses and none."""
    rng = random.Random(SEED)
    data = Loaded(
        events=make_events(rng, day_start, tenants),
        metrics=make_metrics(rng, day_start, tenants),
        spans=make_spans(rng, day_start, tenants),
        start=day_start,
        end=day_start + 2 * DAY,
    )
    session.add_all([*data.events, *data.metrics, *data.spans])
    session.flush()
    return data


def check_all_views(session: Session, data: Loaded) -> None:
    check_events_view(session, data.events, data.start, data.end)
    check_metrics_view(session, data.metrics, data.start, data.end)
    check_traces_view(session, data.spans, data.start, data.end)


def pending(session: Session, data: Loaded) -> set[datetime]:
    return set().union(
        *(rollup_store.pending_hours(session, table=table, start=data.start, end=data.end) for table in rollup_store.SOURCES)
    )


def table_rows(session: Session, table: str) -> list[str]:
    """Every row of ``table`` as text, sorted (text also shows a '-infinity' watermark)."""
    return sorted(session.execute(text(f"SELECT CAST(t AS text) FROM {table} t")).scalars())  # noqa: S608 - fixed names


# --- the sketch in SQL ------------------------------------------------------------------------------


class TestSketchInSql:
    def test_keys_match_the_core_sketch(self, session: Session) -> None:
        """rollup_sketch_key gives core's key for zeros, tiny, huge, negative and random values."""
        rng = random.Random(SEED)
        values = [0.0, -0.0, 1e-301, 1e-300, -1e-300, 1.0, -1.0, 1e300, -1e300, math.inf, -math.inf]
        values += [rng.lognormvariate(0, 8) * rng.choice((1, -1)) for _ in range(2000)]
        values += [1.0151133501259446**exponent for exponent in range(-300, 300)]  # bucket edges
        keys = (
            session.execute(
                text("SELECT rollup_sketch_key(v) FROM unnest(CAST(:values AS float8[])) WITH ORDINALITY AS u(v, n) ORDER BY n"),
                {"values": values},
            )
            .scalars()
            .all()
        )
        assert keys == [key_of(value) for value in values]

    def test_values_match_the_core_sketch(self, session: Session) -> None:
        """rollup_sketch_value gives core's estimate for every key it is asked about."""
        keys = [0, 1, -1, 50_000, -50_000, 99_999, -99_999, *range(3_000, 97_000, 997), *range(-97_000, -3_000, 991)]
        estimates = (
            session.execute(
                text("SELECT rollup_sketch_value(k) FROM unnest(CAST(:keys AS int[])) WITH ORDINALITY AS u(k, n) ORDER BY n"),
                {"keys": keys},
            )
            .scalars()
            .all()
        )
        assert estimates == [value_of(key) for key in keys]

    @pytest.mark.parametrize("fractions", [[0.5, 0.9, 0.95, 0.99], [0.99, 0.0, 0.5, 1.0, 0.25]], ids=["ascending", "any order"])
    def test_quantiles_match_the_core_sketch(self, session: Session, fractions: list[float]) -> None:
        """rollup_sketch_quantiles walks keys and counts exactly as Sketch.quantiles does, for sketches of 0..400 values."""
        rng = random.Random(SEED)
        statement = text(
            "SELECT rollup_sketch_quantiles(CAST(:keys AS int[]), CAST(:counts AS bigint[]), CAST(:fractions AS float8[]), "
            "CAST(:lowest AS float8), CAST(:highest AS float8))"
        )
        for size in (0, 1, 2, 3, 10, 57, 400):
            values = [rng.choice((rng.lognormvariate(2, 2), -rng.lognormvariate(1, 1), 0.0, 7.0)) for _ in range(size)]
            sketch = Sketch.of(values)
            keys, counts = sketch.to_arrays()
            in_sql = session.execute(
                statement,
                {
                    "keys": keys,
                    "counts": counts,
                    "fractions": fractions,
                    "lowest": min(values, default=None),
                    "highest": max(values, default=None),
                },
            ).scalar_one()
            if size == 0:
                assert in_sql == [None] * len(fractions)
            else:
                assert in_sql == pytest.approx(sketch.quantiles(fractions), rel=1e-12), size


# --- views over rollups -----------------------------------------------------------------------------


class TestViewsOverRollups:
    def test_views_agree_with_raw_rows_before_and_after_a_refresh(self, session: Session, loaded: Loaded) -> None:
        """Before any refresh the views read raw rows; after it they read rollups only, with the same answers."""
        assert pending(session, loaded), "nothing is rolled up before the first refresh"
        check_all_views(session, loaded)

        step = roll_up(session)

        assert step.hours_recomputed == 3 * 48 and step.days_recomputed == 3 * 2
        assert pending(session, loaded) == set()
        check_all_views(session, loaded)

    def test_the_views_read_the_rollup_rows(self, session: Session, loaded: Loaded) -> None:
        """Once rolled up, an hour's numbers come from the hourly tables: a change there shows in the views."""
        roll_up(session)
        hour = loaded.start + 5 * HOUR
        session.execute(
            text("UPDATE telemetry_events_hourly SET events = events + 1000 WHERE bucket_start = :hour"), {"hour": hour}
        )
        session.execute(text("UPDATE traces_hourly SET errors = 0 WHERE bucket_start = :hour"), {"hour": hour})

        events = view_rows(session, "telemetry_events_hourly_summary", hour, hour + HOUR)
        assert events and all(fields["events"] > 1000 for fields in events.values())
        spans = view_rows(session, "traces_service_summary", hour, hour + HOUR)
        assert spans and all(fields["errors"] == 0 for fields in spans.values())

    def test_a_late_row_counts_at_once_and_the_next_refresh_rolls_up_only_its_hour(
        self, session: Session, loaded: Loaded, tenants: Tenants
    ) -> None:
        """A row for an old hour, written after the refresh, is in the view at once (from raw) and in the rollups
        after the next refresh, which recomputes that hour and its day only."""
        roll_up(session)
        hour = loaded.start + 7 * HOUR
        late = TelemetryEvent(
            event_id=uuid.uuid4(),
            event_type=EventType.ERROR_EVENT,
            event_name="rollup.late",
            event_timestamp=hour + timedelta(minutes=30),
            license_id=tenants.license_ids[0],
            duration_ms=12.5,
            created_at=datetime.now(UTC),  # written by a later transaction
        )
        session.add(late)
        session.flush()
        stored_before = table_rows(session, "telemetry_events_hourly")

        assert pending(session, loaded) == {hour}
        check_events_view(session, [*loaded.events, late], loaded.start, loaded.end)

        step = rollups.refresh_step(session, now=datetime.now(UTC), safety_lag_s=0)

        assert step.recomputed == {"telemetry_events": (1, 1), "system_metrics": (0, 0), "traces": (0, 0)}
        assert table_rows(session, "telemetry_events_hourly") != stored_before
        assert pending(session, loaded) == set()
        check_events_view(session, [*loaded.events, late], loaded.start, loaded.end)
        daily_errors = session.execute(
            text("SELECT sum(errors) FROM telemetry_events_daily WHERE bucket_start = :day"), {"day": loaded.start}
        ).scalar_one()
        assert daily_errors == sum(
            1
            for event in [*loaded.events, late]
            if event.event_timestamp < loaded.start + DAY
            and (event.event_type == EventType.ERROR_EVENT or "error" in event.payload)
        )

    def test_a_second_refresh_changes_nothing(self, session: Session, loaded: Loaded) -> None:
        """Refreshing again with no new rows recomputes nothing and leaves every rollup row as it was."""
        roll_up(session)
        tables = [f"{source}_{grain}" for source in rollup_store.SOURCES for grain in ("hourly", "daily")]
        before = {table: table_rows(session, table) for table in tables}

        again = roll_up(session)

        assert (again.hours_marked, again.hours_recomputed, again.days_recomputed) == (0, 0, 0)
        assert {table: table_rows(session, table) for table in tables} == before

    def test_rows_inside_the_safety_lag_wait_for_a_later_refresh(self, session: Session, loaded: Loaded) -> None:
        """Rows written less than the safety lag ago are not rolled up yet; the views read them from raw meanwhile."""
        step = rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=3600)

        assert step.hours_recomputed == 0
        assert len(pending(session, loaded)) == 48
        check_all_views(session, loaded)

    def test_an_interrupted_refresh_leaves_nothing_behind(self, session: Session, loaded: Loaded) -> None:
        """A refresh rolled back half-way changes no rollup, dirty mark or watermark; the next one does the work."""
        state_before = table_rows(session, "rollup_state")
        nested = session.begin_nested()
        rollups.refresh_step(session, now=datetime.now(UTC), safety_lag_s=0, max_hours=5)
        nested.rollback()

        assert table_rows(session, "rollup_state") == state_before
        assert table_rows(session, "telemetry_events_hourly") == []
        assert table_rows(session, "rollup_dirty_buckets") == []
        assert roll_up(session).hours_recomputed == 3 * 48
        check_all_views(session, loaded)

    def test_small_batches_reach_the_same_rollups(self, session: Session, loaded: Loaded) -> None:
        """Steps of 5 hours and 1 day, repeated until done, build the same rows as one large step."""
        steps = 0
        while not rollups.refresh_step(session, now=datetime.now(UTC), safety_lag_s=0, max_hours=5, max_days=1).done:
            steps += 1
        assert steps >= 48 // 5
        check_all_views(session, loaded)
        assert session.execute(text("SELECT count(DISTINCT bucket_start) FROM traces_daily")).scalar_one() == 2

    def test_a_day_that_has_not_ended_waits_for_its_daily_rows(self, session: Session, tenants: Tenants) -> None:
        """Hours of today are rolled up; today's daily rows wait until the day is over (its day stays marked)."""
        now = datetime.now(UTC)
        session.add_all(make_spans(random.Random(SEED), utc_hour(now), tenants, hours=1, count=20))
        session.flush()

        roll_up(session)

        assert session.execute(text("SELECT count(*) FROM traces_hourly")).scalar_one() > 0
        assert session.execute(text("SELECT count(*) FROM traces_daily")).scalar_one() == 0
        dirty = session.execute(text("SELECT source_table, bucket_start FROM rollup_dirty_buckets WHERE grain = 'day'")).all()
        assert [tuple(row) for row in dirty] == [("traces", align_down(now, Step.ONE_DAY))]

    def test_rebuild_recomputes_days_from_raw_rows(self, session: Session, loaded: Loaded) -> None:
        """After rollup rows were changed behind the refresh's back, rebuilding their day restores them."""
        roll_up(session)
        session.execute(text("UPDATE system_metrics_hourly SET samples = 0"))
        session.execute(text("DELETE FROM traces_daily"))

        marked = rollups.rebuild(session, first_day=loaded.start.date(), last_day=loaded.start.date() + timedelta(days=1))
        step = roll_up(session)

        assert marked == 3 * 48 and step.hours_recomputed == 3 * 48
        check_all_views(session, loaded)
        assert session.execute(text("SELECT count(DISTINCT bucket_start) FROM traces_daily")).scalar_one() == 2

    def test_rebuild_refuses_a_reversed_range(self, session: Session) -> None:
        """--to before --from is a clear error, not an empty rebuild."""
        from fernando_telemetry.core.errors import InvalidInput

        with pytest.raises(InvalidInput, match="before first day"):
            rollups.rebuild(session, first_day=date(2026, 2, 2), last_day=date(2026, 2, 1))


class TestDailyRollups:
    def test_daily_rows_add_up_hours_and_count_distinct_users_over_the_day(self, session: Session, loaded: Loaded) -> None:
        """Per day: counts and extremes exact, users and sessions distinct over the whole day, percentiles in the bound."""
        roll_up(session)
        rows = session.execute(text("SELECT * FROM telemetry_events_daily")).mappings().all()
        expected = grouped(
            loaded.events, lambda e: (align_down(e.event_timestamp, Step.ONE_DAY), str(e.event_type), e.license_id)
        )
        assert {(row["bucket_start"], row["event_type"], row["license_id"]) for row in rows} == set(expected)
        for row in rows:
            events = expected[(row["bucket_start"], row["event_type"], row["license_id"])]
            durations = [event.duration_ms for event in events if event.duration_ms is not None]
            assert row["events"] == len(events)
            assert row["unique_users"] == len({event.user_id for event in events} - {None})
            assert row["unique_sessions"] == len({event.session_id for event in events} - {None})
            assert row["duration_count"] == len(durations)
            assert (row["duration_min"], row["duration_max"]) == (min(durations), max(durations))
            assert close(row["duration_sum"], math.fsum(durations))
            for name, fraction in VIEW_FRACTIONS.items():
                assert within_bound(row[f"duration_{name}"], durations, fraction), name
        hourly_users = session.execute(text("SELECT sum(unique_users) FROM telemetry_events_hourly")).scalar_one()
        assert sum(row["unique_users"] for row in rows) < hourly_users, "a user active in two hours counts once a day"

    def test_daily_span_and_metric_rows_match_their_days(self, session: Session, loaded: Loaded) -> None:
        """Daily spans and samples: counts, sums, extremes exact; p99 within the bound of the day's values."""
        roll_up(session)
        spans = grouped(
            loaded.spans, lambda s: (align_down(s.start_time, Step.ONE_DAY), s.service_name, s.operation_name, s.license_id)
        )
        for row in session.execute(text("SELECT * FROM traces_daily")).mappings():
            group = spans.pop((row["bucket_start"], row["service_name"], row["operation_name"], row["license_id"]))
            durations = [span.duration_ms for span in group]
            assert (row["spans"], row["duration_min"], row["duration_max"]) == (len(group), min(durations), max(durations))
            assert within_bound(row["duration_p99"], durations, 0.99)
        assert spans == {}
        metrics = grouped(
            loaded.metrics,
            lambda m: (align_down(m.timestamp, Step.ONE_DAY), m.service_name, m.metric_name, m.host_name, m.license_id),
        )
        for row in session.execute(text("SELECT * FROM system_metrics_daily")).mappings():
            group = metrics.pop(
                (row["bucket_start"], row["service_name"], row["metric_name"], row["host_name"], row["license_id"])
            )
            assert row["samples"] == len(group)
            assert row["observations"] == sum(metric.sample_count for metric in group)
            assert close(row["weighted_sum"], math.fsum(metric.value * metric.sample_count for metric in group))
            assert close(row["value_sum"], summed(group))
            assert within_bound(row["value_p50"], observed(group), 0.5)
        assert metrics == {}


# --- retention --------------------------------------------------------------------------------------


class TestRetentionWithRollups:
    def run_retention(self, session: Session, now: datetime) -> dict[str, retention.TableCleanup]:
        cleanups = retention.run(session, now=now, events_retention_days=90, metrics_retention_days=180, traces_retention_days=30)
        return {cleanup.table_name: cleanup for cleanup in cleanups}

    def test_raw_rows_not_rolled_up_are_kept_and_rollups_answer_after_they_go(self, session: Session, tenants: Tenants) -> None:
        """Retention waits for the rollups; once they hold the hours, raw rows go and the views answer as raw did."""
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        old_day = align_down(now - timedelta(days=100), Step.ONE_DAY)
        events = make_events(random.Random(SEED), old_day, tenants, hours=24, count=200)
        spans = make_spans(random.Random(SEED), old_day, tenants, hours=24, count=200)
        session.add_all([*events, *spans])
        session.flush()

        kept = self.run_retention(session, now)
        assert kept["telemetry_events"].rows_removed == 0 and kept["traces"].rows_removed == 0
        assert kept["telemetry_events"].cutoff <= old_day
        check_events_view(session, events, old_day, old_day + DAY)

        roll_up(session)
        dropped = self.run_retention(session, now)

        assert dropped["telemetry_events"].rows_removed == len(events)
        assert dropped["traces"].rows_removed == len(spans)
        assert dropped["telemetry_events"].cutoff == now - timedelta(days=90)
        assert session.execute(text("SELECT count(*) FROM telemetry_events WHERE event_name = 'rollup.test'")).scalar_one() == 0
        check_events_view(session, events, old_day, old_day + DAY)
        check_traces_view(session, spans, old_day, old_day + DAY)

    def test_cutoffs_are_whole_hours(self, session: Session) -> None:
        """A cutoff falls on a UTC hour, so raw hours are never left half deleted behind their rollup."""
        now = datetime(2026, 11, 28, 10, 41, 7, tzinfo=UTC)
        cleanups = self.run_retention(session, now)
        assert cleanups["traces"].cutoff == datetime(2026, 10, 29, 10, tzinfo=UTC)

    def test_rollup_retention_keeps_hours_that_raw_rows_still_hold(self, session: Session, tenants: Tenants) -> None:
        """Hourly rollups go after their own retention but never before their raw rows; daily rows stay longer."""
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        old_day = align_down(now - timedelta(days=100), Step.ONE_DAY)
        session.add_all(make_events(random.Random(SEED), old_day, tenants, hours=24, count=100))
        session.flush()
        roll_up(session)

        def expire(hourly_days: int, daily_days: int) -> dict[str, int]:
            cleanups = rollups.expire(session, now=now, hourly_retention_days=hourly_days, daily_retention_days=daily_days)
            return {cleanup.table_name: cleanup.rows_deleted for cleanup in cleanups}

        assert expire(30, 1825)["telemetry_events_hourly"] == 0, "the raw rows are still there"
        self.run_retention(session, now)
        hourly = session.execute(text("SELECT count(*) FROM telemetry_events_hourly")).scalar_one()
        assert hourly > 0
        assert expire(400, 1825)["telemetry_events_hourly"] == 0, "400 days have not passed"
        deleted = expire(30, 1825)
        assert deleted["telemetry_events_hourly"] == hourly and deleted["telemetry_events_daily"] == 0
        assert expire(30, 60)["telemetry_events_daily"] > 0

    @pytest.mark.single_node(
        reason="recreates a dropped partition inside the test's one transaction after the refresh's parallel statements, "
        "which Citus refuses; the product creates partitions in transactions of their own"
    )
    def test_a_late_row_for_an_expired_hour_does_not_replace_its_rollup(self, session: Session, tenants: Tenants) -> None:
        """An hour whose raw rows retention removed keeps its rollup when a straggler arrives for it."""
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        old_day = align_down(now - timedelta(days=100), Step.ONE_DAY)
        events = make_events(random.Random(SEED), old_day, tenants, hours=24, count=100)
        session.add_all(events)
        session.flush()
        roll_up(session)
        self.run_retention(session, now)
        partitions.ensure_for_days(session, first_day=old_day.date(), last_day=old_day.date(), tables=("telemetry_events",))
        session.add(
            TelemetryEvent(
                event_id=uuid.uuid4(),
                event_type=EventType.USER_ACTION,
                event_name="straggler",
                event_timestamp=old_day + HOUR,
                created_at=datetime.now(UTC),
            )
        )
        session.flush()

        roll_up(session)

        hour_events = session.execute(
            text("SELECT sum(events) FROM telemetry_events_hourly WHERE bucket_start = :hour"), {"hour": old_day + HOUR}
        ).scalar_one()
        assert hour_events == sum(1 for event in events if utc_hour(event.event_timestamp) == old_day + HOUR)

    def test_rollup_retention_refuses_less_than_a_day(self, session: Session) -> None:
        """Zero days would wipe the rollups: refused by the service and by the SQL function."""
        from fernando_telemetry.core.errors import InvalidInput

        with pytest.raises(InvalidInput, match="hourly_retention_days must be at least 1"):
            rollups.expire(session, now=datetime.now(UTC), hourly_retention_days=0, daily_retention_days=10)
        with pytest.raises(Exception, match="at least 1 day"):
            with session.begin_nested():
                session.execute(text("SELECT * FROM cleanup_old_rollups(0)"))


# --- metric series ----------------------------------------------------------------------------------

AGGREGATIONS = [agg for agg in Aggregation if agg is not Aggregation.RATE]


def expected_points(
    samples: Iterable[SystemMetric],
    *,
    start: datetime,
    end: datetime,
    step: Step,
    group_column: str | None,
    metric_name: str,
    license_id: int | None = None,
    service_name: str | None = None,
) -> dict[str | None, dict[datetime, list[SystemMetric]]]:
    points: dict[str | None, dict[datetime, list[SystemMetric]]] = defaultdict(lambda: defaultdict(list))
    for sample in samples:
        if not start <= sample.timestamp < end or sample.metric_name != metric_name:
            continue
        if license_id is not None and sample.license_id != license_id:
            continue
        if service_name is not None and sample.service_name != service_name:
            continue
        group = getattr(sample, group_column) if group_column else None
        points[group][align_down(sample.timestamp, step)].append(sample)
    return points


def check_value(actual: float, samples: list[SystemMetric], agg: Aggregation, *, exact: bool = False) -> bool:
    """``exact``: percentiles must be percentile_cont's exactly when every sample is one plain value."""
    values = observed(samples)
    observations = sum(sample.sample_count for sample in samples)
    weighted = math.fsum(sample.value * sample.sample_count for sample in samples)
    if agg.quantile is not None:
        if exact and all(sample.sample_count == 1 for sample in samples):
            return close(actual, exact_quantile(sorted(values), agg.quantile))
        return within_bound(actual, values, agg.quantile)
    wanted = {
        Aggregation.COUNT: float(observations),
        Aggregation.SUM: summed(samples),
        Aggregation.AVG: weighted / observations,
        Aggregation.MIN: min(values),
        Aggregation.MAX: max(values),
    }[agg]
    return close(actual, wanted)


class TestMetricPoints:
    def points(self, session: Session, **overrides: Any) -> dict[str | None, dict[datetime, float]]:
        arguments: dict[str, Any] = {
            "metric_name": "latency_ms",
            "service_name": None,
            "host_name": None,
            "labels": {},
            "license_id": None,
            "step": Step.ONE_HOUR,
            "agg": Aggregation.AVG,
            "group_by": None,
        }
        return rollups.metric_points(session, **{**arguments, **overrides})

    @pytest.mark.parametrize("step", [Step.ONE_HOUR, Step.ONE_DAY])
    def test_every_aggregation_and_grouping_agrees_with_raw_samples(
        self, session: Session, loaded: Loaded, tenants: Tenants, step: Step
    ) -> None:
        """Over a range cut mid-hour at both ends, with a pending hour and a dirty day, every aggregation and
        grouping gives raw's count, sum, average, extremes, and percentiles within the bound."""
        roll_up(session)
        late = SystemMetric(
            metric_name="latency_ms",
            metric_type=MetricType.GAUGE,
            value=9999.0,
            service_name="api",
            host_name="web-1",
            timestamp=loaded.start + 10 * HOUR + timedelta(minutes=5),
            created_at=datetime.now(UTC),
        )
        session.add(late)
        session.flush()
        samples = [*loaded.metrics, late]
        # hourly: both ends cut mid-hour; daily: the first day cut (and holding the pending hour), the second whole
        start = loaded.start + timedelta(minutes=30)
        end = loaded.end - timedelta(minutes=50) if step is Step.ONE_HOUR else loaded.end

        for group_column in (None, "host_name", "service_name"):
            for agg in AGGREGATIONS:
                actual = self.points(
                    session,
                    start=start,
                    end=end,
                    step=step,
                    agg=agg,
                    group_by=GroupBy(column=group_column) if group_column else None,
                )
                expected = expected_points(
                    samples, start=start, end=end, step=step, group_column=group_column, metric_name="latency_ms"
                )
                assert {group: set(buckets) for group, buckets in actual.items()} == {
                    group: set(buckets) for group, buckets in expected.items()
                }, (group_column, agg)
                for group, buckets in expected.items():
                    for bucket, bucket_samples in buckets.items():
                        assert check_value(actual[group][bucket], bucket_samples, agg), (group_column, agg, group, bucket)

    def test_one_rollup_row_per_bucket_gives_exact_percentiles(self, session: Session, loaded: Loaded, tenants: Tenants) -> None:
        """For one license, service and host per hour, a percentile is the stored one: percentile_cont exactly when
        every row is one plain value, else within the sketch's bound."""
        roll_up(session)
        license_id = tenants.license_ids[0]
        for agg in (Aggregation.P50, Aggregation.P99):
            actual = self.points(
                session, start=loaded.start, end=loaded.end, agg=agg, license_id=license_id, service_name="api", host_name="web-2"
            )
            expected = expected_points(
                (sample for sample in loaded.metrics if sample.host_name == "web-2"),
                start=loaded.start,
                end=loaded.end,
                step=Step.ONE_HOUR,
                group_column=None,
                metric_name="latency_ms",
                license_id=license_id,
                service_name="api",
            )
            assert set(actual[None]) == set(expected[None])
            for bucket, bucket_samples in expected[None].items():
                assert check_value(actual[None][bucket], bucket_samples, agg, exact=True), bucket

    def test_whole_clean_days_are_read_from_the_daily_rows(self, session: Session, loaded: Loaded) -> None:
        """A day with nothing pending is answered by its daily rows: a change there shows in the series."""
        roll_up(session)
        second_day = loaded.start + DAY
        session.execute(
            text("UPDATE system_metrics_daily SET observations = observations + 1000 WHERE bucket_start = :day"),
            {"day": second_day},
        )

        actual = self.points(session, start=loaded.start, end=loaded.end, step=Step.ONE_DAY, agg=Aggregation.COUNT)
        expected = expected_points(
            loaded.metrics, start=loaded.start, end=loaded.end, step=Step.ONE_DAY, group_column=None, metric_name="latency_ms"
        )
        rows = session.execute(
            text("SELECT count(*) FROM system_metrics_daily WHERE bucket_start = :day AND metric_name = 'latency_ms'"),
            {"day": second_day},
        ).scalar_one()
        assert actual[None][second_day] == sum(sample.sample_count for sample in expected[None][second_day]) + 1000 * rows
        assert actual[None][loaded.start] == sum(sample.sample_count for sample in expected[None][loaded.start])

    def test_a_license_sees_only_its_samples(self, session: Session, loaded: Loaded, tenants: Tenants) -> None:
        """license_id keeps the series to that license's samples."""
        roll_up(session)
        license_id = tenants.license_ids[1]
        actual = self.points(
            session, start=loaded.start, end=loaded.end, step=Step.ONE_DAY, agg=Aggregation.COUNT, license_id=license_id
        )
        expected = expected_points(
            loaded.metrics,
            start=loaded.start,
            end=loaded.end,
            step=Step.ONE_DAY,
            group_column=None,
            metric_name="latency_ms",
            license_id=license_id,
        )
        assert actual == {None: {day: float(sum(s.sample_count for s in rows)) for day, rows in expected[None].items()}}

    @pytest.mark.parametrize(
        ("step", "agg", "labels", "group_by", "served"),
        [
            (Step.ONE_HOUR, Aggregation.P95, {}, None, True),
            (Step.ONE_DAY, Aggregation.COUNT, {}, GroupBy(column="host_name"), True),
            (Step.ONE_MINUTE, Aggregation.AVG, {}, None, False),
            (Step.FIVE_MINUTES, Aggregation.AVG, {}, None, False),
            (Step.ONE_HOUR, Aggregation.RATE, {}, None, False),
            (Step.ONE_HOUR, Aggregation.AVG, {"region": "eu"}, None, False),
            (Step.ONE_HOUR, Aggregation.AVG, {}, GroupBy(label="region"), False),
        ],
    )
    def test_which_series_the_rollups_serve(
        self, step: Step, agg: Aggregation, labels: dict[str, str], group_by: GroupBy | None, served: bool
    ) -> None:
        """Hourly and daily steps without labels and without rate are served; the rest needs raw samples."""
        assert rollups.serves_series(step=step, agg=agg, labels=labels, group_by=group_by) is served

    def test_a_series_it_cannot_serve_is_refused(self, session: Session) -> None:
        """Asked for a 1-minute step, metric_points raises instead of answering from the wrong rows."""
        with pytest.raises(ValueError, match="step=1m"):
            self.points(session, start=datetime.now(UTC) - HOUR, end=datetime.now(UTC), step=Step.ONE_MINUTE)


# --- the job, the lock and writers in flight, with commits -----------------------------------------


@pytest.fixture()
def own_database(database_factory: Callable[[], str]) -> Iterator[tuple[str, Engine]]:
    """A migrated database of its own (these tests commit and move the watermark), with recent partitions."""
    url = database_factory()
    engine = make_engine(url, pool_size=3)
    schema.upgrade(engine)
    today = datetime.now(UTC).date()
    with session_factory(engine).begin() as session:
        partitions.ensure_for_days(session, first_day=today - timedelta(days=3), last_day=today + timedelta(days=1))
    yield url, engine
    engine.dispose()


def add_committed_events(sessions: sessionmaker[Session], count: int, at: datetime) -> None:
    with sessions.begin() as session:
        session.add_all(
            TelemetryEvent(event_id=uuid.uuid4(), event_type=EventType.API_EVENT, event_name="committed", event_timestamp=at)
            for _ in range(count)
        )


def rolled_up_events(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.execute(text("SELECT coalesce(sum(events), 0) FROM telemetry_events_hourly")).scalar_one())


class TestRefreshJob:
    def test_the_job_rolls_up_committed_rows_and_skips_while_a_refresh_runs_elsewhere(
        self, own_database: tuple[str, Engine]
    ) -> None:
        """The scheduler's job commits its rollups; while another session holds the rollup lock it skips its tick."""
        _, engine = own_database
        sessions = session_factory(engine)
        add_committed_events(sessions, 30, datetime.now(UTC) - 2 * HOUR)
        job = jobs.rollup_refresh(Settings(rollup_safety_lag_s=0))

        outcome = job(sessions, datetime.now(UTC))

        assert outcome.ran and "1 hours" in outcome.summary
        assert rolled_up_events(sessions) == 30
        with engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_lock(hashtextextended('fernando_telemetry.rollups', 0))"))
            skipped = job(sessions, datetime.now(UTC))
            holder.execute(text("SELECT pg_advisory_unlock(hashtextextended('fernando_telemetry.rollups', 0))"))
        assert not skipped.ran and "skipped" in skipped.summary

    def test_a_writer_still_in_flight_holds_the_watermark_back(self, own_database: tuple[str, Engine]) -> None:
        """Rows of a transaction that started before the refresh and commits after it are rolled up by the next one.

        The second row is copied from the first by INSERT ... SELECT, which on Citus runs on the worker, where its
        ``created_at`` is the worker's transaction start rather than the coordinator's."""
        _, engine = own_database
        sessions = session_factory(engine)
        with engine.connect() as writer:
            writer.execute(
                text(
                    "INSERT INTO telemetry_events (event_id, event_type, event_name, event_timestamp) "
                    "VALUES (gen_random_uuid(), 'api_event', 'in flight', now() - interval '2 hours')"
                )
            )
            writer.execute(
                text(
                    "INSERT INTO telemetry_events (event_id, event_type, event_name, event_timestamp, license_id) "
                    "SELECT gen_random_uuid(), event_type, 'in flight, copied', event_timestamp, license_id "
                    "FROM telemetry_events WHERE event_name = 'in flight'"
                )
            )
            written = writer.execute(text("SELECT min(created_at) FROM telemetry_events")).scalar_one()
            with sessions.begin() as session:
                step = rollups.refresh_step(session, now=datetime.now(UTC), safety_lag_s=0)
            assert step.watermark < written
            writer.commit()

        assert rolled_up_events(sessions) == 0
        with sessions.begin() as session:
            rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)
        assert rolled_up_events(sessions) == 2

    def test_the_cli_refreshes_rebuilds_and_reports(self, own_database: tuple[str, Engine]) -> None:
        """``rollups refresh`` rolls up what changed, ``--from/--to`` recomputes whole days, ``status`` shows the state."""
        url, engine = own_database
        sessions = session_factory(engine)
        yesterday = align_down(datetime.now(UTC), Step.ONE_DAY) - DAY
        add_committed_events(sessions, 12, yesterday + 3 * HOUR)
        runner = CliRunner()

        refreshed = runner.invoke(app, ["rollups", "refresh", "--safety-lag-s", "0", "--database-url", url])
        assert refreshed.exit_code == 0, refreshed.output
        assert "recomputed 1 hourly and 1 daily buckets" in refreshed.output
        day = yesterday.date().isoformat()
        rebuilt = runner.invoke(
            app, ["rollups", "refresh", "--from", day, "--to", day, "--safety-lag-s", "0", "--database-url", url]
        )
        assert rebuilt.exit_code == 0, rebuilt.output
        assert "recomputed 72 hourly and 3 daily buckets" in rebuilt.output
        assert rolled_up_events(sessions) == 12
        shown = runner.invoke(app, ["rollups", "status", "--database-url", url], terminal_width=200)
        assert shown.exit_code == 0, shown.output
        assert "telemetry_events" in shown.output and "never" in shown.output  # no retention yet: no raw horizon

    def test_the_scheduler_runs_the_refresh_unless_turned_off(self) -> None:
        """The rollup job is among the default jobs at its interval; an interval of 0 leaves it out."""
        by_name = {job.name: job for job in jobs.default_jobs(Settings(rollup_refresh_interval_s=30))}
        assert by_name["rollups"].interval_s == 30
        assert "rollups" not in {job.name for job in jobs.default_jobs(Settings(rollup_refresh_interval_s=0))}


class TestSeriesSource:
    def test_the_series_service_answers_hourly_steps_from_rollups_with_raws_answer(
        self, session: Session, loaded: Loaded
    ) -> None:
        """source=auto takes the rollups for an hourly step and gives raw's counts, averages and extremes, and
        percentiles within the bound; a 1-minute step or a label filter falls back to raw."""
        from fernando_telemetry.core.keys import Principal
        from fernando_telemetry.services import metric_series

        roll_up(session)
        admin = Principal(api_key_id=0, license_id=None, scopes=frozenset({"read", "admin"}))
        now = datetime.now(UTC)
        for agg in (Aggregation.COUNT, Aggregation.AVG, Aggregation.MIN, Aggregation.MAX, Aggregation.P95):
            request = metric_series.SeriesRequest(
                metric_name="latency_ms", start=loaded.start, end=loaded.end, step=Step.ONE_HOUR, aggregation=agg
            )
            auto = metric_series.series(session, principal=admin, request=request, now=now)
            raw = metric_series.series(session, principal=admin, request=request, now=now, source="raw")
            assert (auto.source, raw.source) == ("rollup", "raw")
            (auto_line,), (raw_line,) = auto.series, raw.series
            assert [at for at, _ in auto_line.points] == [at for at, _ in raw_line.points]
            for (_, from_rollup), (_, from_raw) in zip(auto_line.points, raw_line.points, strict=True):
                if agg is Aggregation.P95:
                    assert (from_rollup is None) == (from_raw is None)
                    assert from_rollup is None or abs(from_rollup - from_raw) <= 0.01 * abs(from_raw)
                else:
                    assert close(from_rollup, from_raw), agg
        minute = metric_series.SeriesRequest(
            metric_name="latency_ms", start=loaded.start, end=loaded.start + HOUR, step=Step.ONE_MINUTE
        )
        assert metric_series.series(session, principal=admin, request=minute, now=now).source == "raw"
