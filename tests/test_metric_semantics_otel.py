"""Metric semantics with the official OpenTelemetry SDK: what a counter and a histogram store, in both temporalities.

The SDK (MeterProvider, PeriodicExportingMetricReader, the OTLP/HTTP protobuf exporter with its defaults) exports to
the live server several times, across a process restart (a new MeterProvider, so a new start time), and once more
as a retried identical request. Every stored figure is compared with the values recorded in the test.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

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

from fernando_telemetry.core.sketch import RELATIVE_ACCURACY, Sketch, value_of
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


@dataclass
class Process:
    """One instrumented process: its own MeterProvider (its own start time), a counter and a histogram."""

    provider: MeterProvider
    exporter: RecordingExporter
    counter: Any
    histogram: Any
    recorded: list[float] = field(default_factory=list)

    def record(self, values: Sequence[float]) -> None:
        for value in values:
            self.counter.add(value, {"route": "/cart"})
            self.histogram.record(value, {"route": "/cart"})
        self.recorded.extend(values)

    def export(self) -> None:
        assert self.provider.force_flush()


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
        return Process(provider, exporter, meter.create_counter("orders", unit="1"), meter.create_histogram("latency", unit="ms"))

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


class TestCumulative:
    def test_repeated_exports_a_restart_and_a_retry_count_every_value_once(self, start_process: Any, engine: Engine) -> None:
        """Cumulative exports (the SDK default) repeated, across a restart and interleaved with the new process,
        and a retried request: the stored increments add up to exactly what was recorded."""
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
    def test_delta_exports_and_a_restart_store_each_interval_as_sent(self, start_process: Any, engine: Engine) -> None:
        """Delta temporality: each export is an increment as it is; a restart changes nothing."""
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
