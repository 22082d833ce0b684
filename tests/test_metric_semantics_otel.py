"""Metric semantics with the official OpenTelemetry SDK: what a counter and a histogram store, in both temporalities.

The SDK (MeterProvider, PeriodicExportingMetricReader, the OTLP/HTTP protobuf exporter with its defaults) exports to
the live server several times, across a process restart (a new MeterProvider, so a new start time), and once more
as a retried identical request. Every stored figure is compared with the values recorded in the test, and so is
every aggregation read back as users read it: the series API at 1m, 1h and 1d (raw rows, the rollups' raw tail, the
rollups), the service summary view and metric alert rules (``check_reads``; the error bound is ``value_tolerance``'s).
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from sqlalchemy import Engine, text

from fernando_telemetry.core.alert_condition import parse_condition
from fernando_telemetry.core.series import Aggregation, Step, align_down
from fernando_telemetry.core.sketch import RELATIVE_ACCURACY, Sketch, value_of
from fernando_telemetry.services import rollups
from fernando_telemetry.storage.alert_queries import observe
from fernando_telemetry.storage.database import session_factory
from tests.ingest_fixtures import Tenant, make_tenant

SDK_BOUNDS = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0)
"""The SDK's default explicit bucket bounds."""


@pytest.fixture()
def engine(committed_engine: Engine) -> Engine:
    """These tests commit: they use the committed-writes database."""
    return committed_engine


@pytest.fixture()
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine)


class RecordingExporter(MetricExporter):
    """The OTLP/HTTP exporter, keeping what it sent so a test can send the same request again."""

    def __init__(self, inner: OTLPMetricExporter) -> None:
        super().__init__(preferred_temporality=inner._preferred_temporality, preferred_aggregation=inner._preferred_aggregation)
        self.inner = inner
        self.sent: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.sent.append(metrics_data)
        return self.inner.export(metrics_data, timeout_millis=timeout_millis)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant(unix_nano: int) -> datetime:
    """An OTLP timestamp as stored (microseconds)."""
    return _EPOCH + timedelta(microseconds=unix_nano // 1000)


@dataclass(frozen=True)
class Export:
    """What one export added, as the SDK says: the values recorded in ``(start[metric], time]``."""

    start: dict[str, datetime]
    time: datetime
    values: tuple[float, ...]


@dataclass
class Process:
    """One instrumented process: its own MeterProvider (its own start time), a counter and a histogram.

    ``exports`` is the test's ledger: per export, the values recorded since the previous one and the interval the
    SDK's points give them (a delta point's own start; for a cumulative stream, the previous export, or the
    stream's start for the first one)."""

    provider: MeterProvider
    exporter: RecordingExporter
    counter: Any
    histogram: Any
    delta: bool = False
    recorded: list[float] = field(default_factory=list)
    exports: list[Export] = field(default_factory=list)
    pending: list[float] = field(default_factory=list)
    last_time: datetime | None = None

    def record(self, values: Sequence[float]) -> None:
        for value in values:
            self.counter.add(value, {"route": "/cart"})
            self.histogram.record(value, {"route": "/cart"})
        self.recorded.extend(values)
        self.pending.extend(values)

    def export(self) -> None:
        sent = len(self.exporter.sent)
        assert self.provider.force_flush()
        if len(self.exporter.sent) == sent:
            assert not self.pending
            return
        points = {
            metric.name: point
            for resource in self.exporter.sent[-1].resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            for point in metric.data.data_points
        }
        (time_nano,) = {point.time_unix_nano for point in points.values()}  # one collection: one time
        time = instant(time_nano)
        # each instrument's stream has its own start (its first measurement)
        starts = {
            name: instant(point.start_time_unix_nano) if self.delta or self.last_time is None else self.last_time
            for name, point in points.items()
        }
        if self.pending:
            self.exports.append(Export(starts, time, tuple(self.pending)))
        self.pending = []
        self.last_time = time


@pytest.fixture()
def start_process(live_server: str, tenant: Tenant) -> Iterator[Any]:
    providers: list[MeterProvider] = []

    def start(service: str, *, delta: bool, exponential: bool = False) -> Process:
        temporality = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA} if delta else None
        inner = OTLPMetricExporter(
            endpoint=f"{live_server}/v1/metrics",
            headers={"Authorization": f"Bearer {tenant.ingest_key}"},
            preferred_temporality=temporality,
        )
        exporter = RecordingExporter(inner)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
        # no service.instance.id: as the Python SDK's default resource, processes of one service look alike
        views = [View(instrument_name="latency", aggregation=ExponentialBucketHistogramAggregation())] if exponential else []
        provider = MeterProvider(resource=Resource.create({"service.name": service}), metric_readers=[reader], views=views)
        providers.append(provider)
        meter = provider.get_meter("shop")
        return Process(
            provider,
            exporter,
            meter.create_counter("orders", unit="1"),
            meter.create_histogram("latency", unit="ms"),
            delta=delta,
        )

    yield start
    for provider in providers:
        provider.shutdown()


@dataclass(frozen=True)
class Stored:
    counter_total: float
    counter_rows: int
    histogram_count: int
    histogram_sum: float
    sketch: Sketch
    sketch_total: int


def stored(engine: Engine, service: str) -> Stored:
    with engine.connect() as connection:
        counter_total, counter_rows = connection.execute(
            text(
                "SELECT coalesce(sum(value), 0), count(*) FROM system_metrics WHERE service_name = :s AND metric_name = 'orders'"
            ),
            {"s": service},
        ).one()
        histogram_rows = connection.execute(
            text(
                "SELECT value, sample_count, sketch_keys, sketch_counts, min_value, max_value FROM system_metrics "
                "WHERE service_name = :s AND metric_name = 'latency'"
            ),
            {"s": service},
        ).all()
    sketch = Sketch()
    for _, _, keys, counts, minimum, maximum in histogram_rows:
        # a row without exact extremes (a cumulative stream's later increment) is bounded by its outer sketch buckets
        low = minimum if minimum is not None else value_of(keys[0])
        high = maximum if maximum is not None else value_of(keys[-1])
        sketch.merge(Sketch.from_arrays(keys, counts, minimum=low, maximum=high))
    return Stored(
        float(counter_total),
        int(counter_rows),
        sum(row[1] for row in histogram_rows),
        math.fsum(row[0] * row[1] for row in histogram_rows),
        sketch,
        sum(sum(row[3] or ()) for row in histogram_rows),
    )


def percentile_cont(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def bucket_width(value: float) -> float:
    """The width of the SDK bucket holding ``value``: how far a bucket-derived estimate may be off."""
    upper = next(bound for bound in SDK_BOUNDS if value <= bound)
    lower = max((bound for bound in SDK_BOUNDS if bound < value), default=0.0)
    return upper - lower


def assert_matches(result: Stored, recorded: Sequence[float], *, relative_error: float | None = None) -> None:
    """Count, sum, mean and percentiles stored equal the recorded values' (percentiles within bucket + sketch error:
    the explicit bucket's width, or ``relative_error`` of the value for exponential buckets)."""
    assert result.counter_total == pytest.approx(math.fsum(recorded))
    assert result.histogram_count == len(recorded)
    assert result.sketch_total == len(recorded)
    assert result.histogram_sum == pytest.approx(math.fsum(recorded))
    for fraction in (0.5, 0.95):
        exact = percentile_cont(recorded, fraction)
        estimate = result.sketch.quantile(fraction)
        assert estimate is not None
        bucket_error = bucket_width(exact) if relative_error is None else relative_error * exact
        assert abs(estimate - exact) <= bucket_error + RELATIVE_ACCURACY * exact, (fraction, estimate, exact)


QUANTILES = {Aggregation.P50: 0.5, Aggregation.P90: 0.9, Aggregation.P95: 0.95, Aggregation.P99: 0.99}
HISTOGRAM_AGGREGATIONS = (Aggregation.COUNT, Aggregation.SUM, Aggregation.AVG, Aggregation.MIN, Aggregation.MAX, *QUANTILES)
HOUR = timedelta(hours=1)


PLACEMENT_ERROR = 4.0
"""How far a value of these scenarios is read back from a stored histogram row at most, before the sketch's error."""


def value_tolerance(value: float) -> float:
    """How far a value read back from a histogram's buckets may be from the recorded one.

    A stored histogram row knows how many of its values each SDK bucket holds and spreads them evenly over the
    bucket (its open ends cut at the stream's running minimum and maximum). In general a value is thus read back
    anywhere in its bucket: off by up to the bucket's width (25 around p95 of 1..100 with the SDK's default bounds)
    plus the sketch's relative error (0.75 %). That bound is too loose to notice a wrong distribution (clamped to a
    row's mean, 75.5, p95 of 1..100 is still in the bucket (75, 100]), so the scenarios record runs of consecutive
    integers (1..50, 51..100, 101..110, 1..30): each run fills the buckets it falls in evenly, so even placement puts
    each value within half a spacing (0.5) of where it was recorded; the counts of a bucket spread over the sketch's
    keys are then rounded (largest remainder), which moves a rank by a few values more: at most 3.1 in these
    buckets (25 values over the 21 keys of (75, 100]). Sorted values of several rows merged keep the largest of
    these errors. The bound used: ``PLACEMENT_ERROR`` (4) plus the sketch's 0.75 %; never looser than the general one.
    """
    assert PLACEMENT_ERROR < bucket_width(value)
    return PLACEMENT_ERROR + RELATIVE_ACCURACY * abs(value)


def percentile_tolerance(values: Sequence[float], fraction: float) -> float:
    """percentile_cont interpolates between the values at two ranks, each read back within ``value_tolerance``."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    return max(value_tolerance(ordered[math.floor(position)]), value_tolerance(ordered[math.ceil(position)]))


def expected_histogram(values: Sequence[float], aggregation: Aggregation, *, exact_extremes: bool) -> tuple[float, float]:
    """(expected value, allowed absolute error) of ``aggregation`` over the recorded ``values``. Count, sum and avg
    are exact (the SDK sends the count and sum); min and max are exact when every row of the bucket carries its
    own extremes (delta points), else (a cumulative stream's later increment has none) read from its buckets."""
    if aggregation in QUANTILES:
        return percentile_cont(values, QUANTILES[aggregation]), percentile_tolerance(values, QUANTILES[aggregation])
    if aggregation in (Aggregation.MIN, Aggregation.MAX):
        extreme = min(values) if aggregation is Aggregation.MIN else max(values)
        return extreme, 0.0 if exact_extremes else value_tolerance(extreme)
    total = math.fsum(values)
    return {Aggregation.COUNT: float(len(values)), Aggregation.SUM: total, Aggregation.AVG: total / len(values)}[aggregation], 0.0


def assert_close(actual: float | None, expected: float, tolerance: float, where: object) -> None:
    assert actual is not None, where
    if tolerance == 0.0:
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9), (where, actual, expected)
    else:
        assert abs(actual - expected) <= tolerance, (where, actual, expected, tolerance)


def values_by_bucket(exports: Sequence[Export], step: Step) -> dict[datetime, list[float]]:
    """The recorded values per step bucket: each export's values in the bucket of its point's time."""
    buckets: dict[datetime, list[float]] = defaultdict(list)
    for export in exports:
        buckets[align_down(export.time, step)].extend(export.values)
    return dict(buckets)


def spread_increases(
    exports: Sequence[Export], metric: str, amount: Callable[[Export], float], step: Step
) -> dict[datetime, float]:
    """The reference increase per bucket for ``rate``: each export's amount spread over its interval ``(start, time]``
    in proportion to the overlap with each bucket (all of it in the bucket of its time when the interval is empty).
    Intervals here last seconds, far under the one-hour lookback that would cut them."""
    increases: dict[datetime, float] = defaultdict(float)
    for export in exports:
        start = export.start[metric]
        if start >= export.time:
            increases[align_down(export.time, step)] += amount(export)
            continue
        bucket = align_down(start, step)
        while bucket < export.time:
            overlap = (min(export.time, bucket + step.delta) - max(start, bucket)).total_seconds()
            if overlap > 0:
                increases[bucket] += amount(export) * overlap / (export.time - start).total_seconds()
            bucket += step.delta
    return dict(increases)


def divisor(bucket: datetime, step: Step, now: datetime) -> float:
    """The seconds a bucket's rate divides by: the step, or those elapsed by ``now`` in the bucket holding it."""
    if bucket <= now < bucket + step.delta:
        return max((now - bucket).total_seconds(), 0.001)
    return float(step.seconds)


@dataclass(frozen=True)
class Answer:
    points: dict[datetime, float | None]
    source: str
    asked: datetime
    answered: datetime


@dataclass
class Reader:
    """Reads a service's metrics back the ways users do: the series API, the service summary view, alert rules."""

    http: httpx.Client
    engine: Engine
    tenant: Tenant

    def series(self, service: str, metric: str, step: Step, aggregation: Aggregation, first: datetime, end: datetime) -> Answer:
        params = {
            "metric_name": metric,
            "service_name": service,
            "step": step.value,
            "agg": aggregation.value,
            "from": first.isoformat(),
            "to": end.isoformat(),
        }
        asked = datetime.now(UTC)
        response = self.http.get(
            "/api/v1/metrics/series", params=params, headers={"Authorization": f"Bearer {self.tenant.read_key}"}
        )
        answered = datetime.now(UTC)
        assert response.status_code == 200, response.text
        body = response.json()
        (line,) = body["series"]
        points = {datetime.fromisoformat(stamp): value for stamp, value in line["points"]}
        return Answer(points, body["source"], asked, answered)

    def roll_up(self) -> None:
        with session_factory(self.engine).begin() as session:
            rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)

    def view(self, service: str, metric: str) -> dict[datetime, dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT * FROM system_metrics_service_summary WHERE service_name = :s AND metric_name = :m"),
                {"s": service, "m": metric},
            ).mappings()
            return {row["hour"]: dict(row) for row in rows}

    def alert_value(self, service: str, metric: str, aggregation: Aggregation, at: datetime) -> float | None:
        """A metric rule's value as its evaluation computes it, over the 60 minutes up to ``at``."""
        condition = parse_condition(
            {
                "metric": metric,
                "aggregation": aggregation.value,
                "operator": ">",
                "threshold": 0,
                "window_minutes": 60,
                "filters": {"service_name": service},
            }
        )
        with session_factory(self.engine)() as session:
            [observation] = observe(session, condition, license_id=self.tenant.license_id, at=[at])[at]
        return observation.value


@pytest.fixture()
def reader(live_server: str, engine: Engine, tenant: Tenant) -> Iterator[Reader]:
    with httpx.Client(base_url=live_server, timeout=30) as http:
        yield Reader(http, engine, tenant)


def check_reads(reader: Reader, service: str, exports: Sequence[Export], *, exact_extremes: bool) -> None:
    """Every aggregation of the histogram ``latency`` and the counter ``orders``, as the series API answers at 1m
    (raw rows) and 1h (rollups: before a refresh from their raw tail, after it from the hourly rows; 1d from the daily
    rows), the service summary view's hours and metric alert rules, equals the value computed from the values the
    SDK recorded (``rate`` at 1m and 1h, from raw rows)."""
    times = [export.time for export in exports]
    hours_start, hours_end = align_down(min(times), Step.ONE_HOUR), align_down(max(times), Step.ONE_HOUR) + HOUR
    recorded = [value for export in exports for value in export.values]

    def check_series(step: Step, source: str) -> None:
        first, end = align_down(min(times), step), align_down(max(times), step) + step.delta
        by_bucket = values_by_bucket(exports, step)
        for aggregation in HISTOGRAM_AGGREGATIONS:
            answer = reader.series(service, "latency", step, aggregation, first, end)
            assert answer.source == source, (step, aggregation, answer.source)
            for bucket, value in answer.points.items():
                where = ("latency", step, source, aggregation, bucket)
                if bucket in by_bucket:
                    assert_close(value, *expected_histogram(by_bucket[bucket], aggregation, exact_extremes=exact_extremes), where)
                else:  # at most a repeated cumulative export's row without observation
                    assert value in (None, 0.0), where
            assert sorted(by_bucket) == sorted(bucket for bucket, value in answer.points.items() if value), (step, aggregation)
        totals = {bucket: math.fsum(values) for bucket, values in by_bucket.items()}
        answer = reader.series(service, "orders", step, Aggregation.SUM, first, end)
        assert answer.source == source
        for bucket, value in answer.points.items():
            # counted once: a repeated cumulative export adds an increment of 0
            assert (value or 0.0) == pytest.approx(totals.get(bucket, 0.0)), ("orders", step, source, "sum", bucket)

    def check_rates(step: Step) -> None:
        for metric, amount in (
            ("orders", lambda export: math.fsum(export.values)),
            ("latency", lambda export: len(export.values)),
        ):
            increases = spread_increases(exports, metric, amount, step)
            answer = reader.series(service, metric, step, Aggregation.RATE, hours_start, hours_end)
            assert answer.source == "raw"
            for bucket, value in answer.points.items():
                increase = increases.get(bucket, 0.0)
                # the server's now lies between asking and the answer: the bucket holding it divides by its elapsed
                # seconds then, so the rate lies between the increase over those two durations
                low, high = increase / divisor(bucket, step, answer.answered), increase / divisor(bucket, step, answer.asked)
                where = (metric, step, bucket, value, low, high)
                assert low * (1 - 1e-9) - 1e-12 <= (value or 0.0) <= high * (1 + 1e-9) + 1e-12, where
            assert math.fsum(increases.values()) == pytest.approx(math.fsum(amount(export) for export in exports))

    def check_view() -> None:
        by_hour = values_by_bucket(exports, Step.ONE_HOUR)
        rows = reader.view(service, "latency")
        assert set(by_hour) <= set(rows) and all(rows[hour]["observations"] == 0 for hour in set(rows) - set(by_hour))
        for hour, values in by_hour.items():
            row = rows[hour]
            assert row["observations"] == len(values), (hour, row)
            assert row["value_sum"] == pytest.approx(math.fsum(values))
            assert row["avg_value"] == pytest.approx(math.fsum(values) / len(values))
            for aggregation, column in (
                (Aggregation.MIN, "min_value"),
                (Aggregation.MAX, "max_value"),
                *((q, q.value) for q in QUANTILES),
            ):
                assert_close(
                    row[column], *expected_histogram(values, aggregation, exact_extremes=exact_extremes), ("view", column, hour)
                )
        counter_rows = reader.view(service, "orders")
        for hour, values in by_hour.items():
            assert counter_rows[hour]["value_sum"] == pytest.approx(math.fsum(values)), ("view orders", hour)

    def check_alerts() -> None:
        at = max(times) + timedelta(seconds=1)
        for aggregation in (
            Aggregation.COUNT,
            Aggregation.AVG,
            Aggregation.P50,
            Aggregation.P95,
            Aggregation.P99,
            Aggregation.MAX,
        ):
            value = reader.alert_value(service, "latency", aggregation, at)
            assert_close(value, *expected_histogram(recorded, aggregation, exact_extremes=exact_extremes), ("alert", aggregation))
        assert reader.alert_value(service, "orders", Aggregation.SUM, at) == pytest.approx(math.fsum(recorded))
        # every increment's interval lies inside the 60-minute window: the rate is the total over its seconds
        assert reader.alert_value(service, "orders", Aggregation.RATE, at) == pytest.approx(math.fsum(recorded) / 3600)

    check_series(Step.ONE_MINUTE, "raw")
    check_rates(Step.ONE_MINUTE)
    check_rates(Step.ONE_HOUR)
    check_series(Step.ONE_HOUR, "rollup")  # hours not refreshed yet: the rollups' raw tail
    check_view()
    check_alerts()
    reader.roll_up()
    hours = sorted(values_by_bucket(exports, Step.ONE_HOUR))
    with reader.engine.connect() as connection:
        rolled_up = connection.execute(
            text(
                "SELECT array_agg(DISTINCT bucket_start ORDER BY bucket_start) FROM system_metrics_hourly "
                "WHERE service_name = :s AND metric_name = 'latency' "
                "AND bucket_start NOT IN (SELECT p FROM rollup_pending_hours('system_metrics') p)"
            ),
            {"s": service},
        ).scalar_one()
    assert rolled_up == hours  # the next reads come from the hourly rows, not from raw rows
    check_series(Step.ONE_HOUR, "rollup")
    check_series(Step.ONE_DAY, "rollup")  # the day: its daily row, or its hours while the day is pending
    check_view()


class TestCumulative:
    def test_repeated_exports_a_restart_and_a_retry_count_every_value_once(
        self, start_process: Any, engine: Engine, reader: Reader
    ) -> None:
        """Cumulative exports (the SDK default) repeated, across a restart and interleaved with the new process,
        and a retried request: the stored increments add up to exactly what was recorded, and every aggregation
        reads back the recorded values (1..100 exported twice: count 100, avg 50.5, p95 about 95)."""
        service = "cum-" + uuid.uuid4().hex[:8]
        first = start_process(service, delta=False)
        first.record([float(v) for v in range(1, 51)])
        first.export()
        assert_matches(stored(engine, service), first.recorded)

        first.export()  # the same totals again: nothing more
        again = stored(engine, service)
        assert_matches(again, first.recorded)
        assert again.counter_rows == 2  # the repeat stored an increment of 0

        first.record([float(v) for v in range(51, 101)])
        first.export()
        assert_matches(stored(engine, service), first.recorded)
        check_reads(reader, service, first.exports, exact_extremes=False)

        # a restart: a new process of the same service (no instance id), its totals start again from 0
        second = start_process(service, delta=False)
        second.record([float(v) for v in range(1, 31)])
        second.export()
        both = first.recorded + second.recorded
        assert_matches(stored(engine, service), both)

        # the old process still exports, interleaved with the new one: neither looks like a reset to the other
        first.record([float(v) for v in range(101, 111)])
        first.export()
        second.export()
        both = first.recorded + second.recorded
        assert_matches(stored(engine, service), both)

        # a retried request (the exporter sends the same body again): accepted, nothing added
        before = stored(engine, service)
        assert first.exporter.inner.export(first.exporter.sent[-1]) == MetricExportResult.SUCCESS
        after = stored(engine, service)
        assert (after.counter_total, after.counter_rows, after.histogram_count) == (
            before.counter_total,
            before.counter_rows,
            before.histogram_count,
        )
        assert_matches(after, both)
        check_reads(reader, service, first.exports + second.exports, exact_extremes=False)

    def test_the_first_point_of_a_stream_keeps_its_start_time_and_extremes(self, start_process: Any, engine: Engine) -> None:
        """A new stream's first row covers (its OTLP start, time] and has the exact min and max; later rows start
        where the previous one ended."""
        service = "start-" + uuid.uuid4().hex[:8]
        process = start_process(service, delta=False)
        process.record([3.0, 7.0, 40.0])
        process.export()
        process.record([90.0])
        process.export()
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    'SELECT "timestamp", start_time, min_value, max_value, sample_count FROM system_metrics '
                    "WHERE service_name = :s AND metric_name = 'latency' ORDER BY \"timestamp\""
                ),
                {"s": service},
            ).all()
        first, second = rows
        assert first.start_time is not None and first.start_time < first.timestamp
        assert (first.min_value, first.max_value, first.sample_count) == (3.0, 40.0, 3)
        assert second.start_time == first.timestamp
        assert (second.min_value, second.max_value, second.sample_count) == (None, None, 1)


class TestDelta:
    def test_delta_exports_and_a_restart_store_each_interval_as_sent(
        self, start_process: Any, engine: Engine, reader: Reader
    ) -> None:
        """Delta temporality: each export is an increment as it is; a restart changes nothing; every aggregation
        reads back the recorded values, min and max exactly."""
        service = "delta-" + uuid.uuid4().hex[:8]
        first = start_process(service, delta=True)
        first.record([float(v) for v in range(1, 51)])
        first.export()
        first.export()  # nothing recorded since: nothing exported
        first.record([float(v) for v in range(51, 101)])
        first.export()
        assert_matches(stored(engine, service), first.recorded)

        second = start_process(service, delta=True)
        second.record([float(v) for v in range(1, 31)])
        second.export()
        result = stored(engine, service)
        assert_matches(result, first.recorded + second.recorded)
        assert result.counter_rows == 3
        with engine.connect() as connection:
            extremes = connection.execute(
                text(
                    "SELECT min(min_value), max(max_value), count(*) FILTER (WHERE min_value IS NULL) FROM system_metrics "
                    "WHERE service_name = :s AND metric_name = 'latency'"
                ),
                {"s": service},
            ).one()
        assert tuple(extremes) == (1.0, 100.0, 0)  # every delta row has its exact extremes
        check_reads(reader, service, first.exports + second.exports, exact_extremes=True)


class TestExponential:
    def test_an_exponential_histogram_that_rescales_keeps_its_counts(self, start_process: Any, engine: Engine) -> None:
        """A cumulative exponential histogram whose range grows is rescaled by the SDK (a lower scale): the increment is
        taken against the previous counts merged to the new scale, never mistaken for a reset."""
        service = "expo-" + uuid.uuid4().hex[:8]
        process = start_process(service, delta=False, exponential=True)
        process.record([1.0 + v / 100 for v in range(100)])  # a narrow range: a fine scale
        process.export()
        process.record([float(v) for v in range(1, 5001, 25)])  # a wide range: the SDK lowers the scale
        process.export()
        process.export()
        result = stored(engine, service)
        assert_matches(result, process.recorded, relative_error=0.1)
