"""Every metric reader aggregates increments and merged distributions: rows written as the ingest contract
says (counter increments over (start_time, timestamp], histogram rows with their sketch) are read back by the
series API (raw at 1m, 1h and 1d; rollups at 1h and 1d), the service summary view and metric alert rules, and
each answer is compared with numbers computed here from the recorded samples.

Rows are inserted directly in the test's rolled-back transaction (the rollups refreshed inside it); the HTTP
answer's current bucket goes through the real app.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from fernando_telemetry.core.alert_condition import parse_condition
from fernando_telemetry.core.enums import MetricType
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.core.series import Aggregation, Step, align_down
from fernando_telemetry.core.sketch import Sketch
from fernando_telemetry.services import metric_series, rollups
from fernando_telemetry.services.metric_series import CurrentBucket, SeriesRequest, SeriesResult
from fernando_telemetry.storage import summary_queries
from fernando_telemetry.storage.alert_queries import observe
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import SystemMetric
from tests.core.test_sketch import allowed_error, exact_quantile
from tests.helpers import add_license, add_metric
from tests.ingest_fixtures import Tenant, make_tenant

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
HOUR0 = (NOW - timedelta(days=2)).replace(hour=6, minute=0)  # an hour in the past, inside the test partitions
ADMIN = Principal(api_key_id=0, license_id=None, scopes=frozenset({"admin"}))
QUANTILES = {Aggregation.P50: 0.5, Aggregation.P90: 0.9, Aggregation.P95: 0.95, Aggregation.P99: 0.99}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def histogram_row(
    session: Session, *, name: str, at: datetime, start: datetime | None, values: Sequence[float], **fields: Any
) -> SystemMetric:
    """One histogram row as the ingest contract writes it: mean, count, exact extremes, the values' sketch."""
    keys, counts = Sketch.of(values).to_arrays()
    ordered = sorted(values)
    return add_metric(
        session,
        at=at,
        metric_name=name,
        metric_type=MetricType.HISTOGRAM,
        value=math.fsum(values) / len(values),
        sample_count=len(values),
        start_time=start,
        sketch_keys=keys,
        sketch_counts=counts,
        min_value=ordered[0],
        max_value=ordered[-1],
        p50=exact_quantile(ordered, 0.5),
        p95=exact_quantile(ordered, 0.95),
        service_name=fields.pop("service_name", "api"),
        **fields,
    )


def counter_row(
    session: Session, *, name: str, at: datetime, start: datetime | None, increment: float, **fields: Any
) -> SystemMetric:
    return add_metric(
        session,
        at=at,
        metric_name=name,
        metric_type=MetricType.COUNTER,
        value=increment,
        start_time=start,
        service_name=fields.pop("service_name", "api"),
        **fields,
    )


def series(
    session: Session,
    name: str,
    *,
    start: datetime,
    end: datetime,
    step: Step,
    agg: Aggregation,
    source: str = "auto",
    now: datetime = NOW,
) -> SeriesResult:
    request = SeriesRequest(metric_name=name, start=start, end=end, step=step, aggregation=agg)
    return metric_series.series(session, principal=ADMIN, request=request, now=now, source=source)


def points(result: SeriesResult) -> list[float | None]:
    (line,) = result.series
    return [value for _, value in line.points]


def within_bound(actual: float | None, values: Sequence[float], fraction: float) -> bool:
    ordered = sorted(values)
    return actual is not None and abs(actual - exact_quantile(ordered, fraction)) <= allowed_error(ordered, fraction)


def expected_value(values: Sequence[float], agg: Aggregation) -> float:
    """count, sum, avg, min and max of histogram observations."""
    return {
        Aggregation.COUNT: float(len(values)),
        Aggregation.SUM: math.fsum(values),
        Aggregation.AVG: math.fsum(values) / len(values),
        Aggregation.MIN: min(values),
        Aggregation.MAX: max(values),
    }[agg]


def assert_histogram_answer(actual: float | None, values: Sequence[float], agg: Aggregation, where: object) -> None:
    if agg in QUANTILES:
        assert within_bound(actual, values, QUANTILES[agg]), (where, agg, actual)
    else:
        assert actual == pytest.approx(expected_value(values, agg)), (where, agg)


def roll_up(session: Session) -> None:
    rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)


def view_row(session: Session, name: str, hour: datetime) -> dict[str, Any]:
    (row,) = session.execute(
        text("SELECT * FROM system_metrics_service_summary WHERE metric_name = :name AND hour = :hour"),
        {"name": name, "hour": hour},
    ).mappings()
    return dict(row)


def spread_rates(
    rows: Sequence[tuple[datetime | None, datetime, float]], *, first: datetime, step: Step, count: int
) -> list[float | None]:
    """The reference ``rate``: each increment (start, end, amount) spread over (start, end] in proportion to its overlap
    with each bucket, a point (no start) in the bucket of its end; per bucket divided by the step's seconds."""
    increases: dict[int, float] = defaultdict(float)
    for start, end, amount in rows:
        if start is None or start == end:
            index = (align_down(end, step) - first) // step.delta
            if 0 <= index < count:
                increases[index] += amount
            continue
        for index in range(count):
            bucket = first + step.delta * index
            overlap = (min(end, bucket + step.delta) - max(start, bucket)).total_seconds()
            if overlap > 0:
                increases[index] += amount * overlap / (end - start).total_seconds()
    return [increases[index] / step.seconds if index in increases else None for index in range(count)]


ALL = (Aggregation.COUNT, Aggregation.SUM, Aggregation.AVG, Aggregation.MIN, Aggregation.MAX, *QUANTILES)


class TestOneHistogramRow:
    """Values 1..100 recorded as one histogram row (as a delta export, or one cumulative export turned increment)."""

    VALUES = [float(value) for value in range(1, 101)]

    @pytest.fixture()
    def name(self, session: Session) -> str:
        name = unique("latency")
        histogram_row(
            session, name=name, at=HOUR0 + timedelta(minutes=10), start=HOUR0 + timedelta(minutes=9), values=self.VALUES
        )
        return name

    @pytest.mark.parametrize("step", [Step.ONE_MINUTE, Step.ONE_HOUR, Step.ONE_DAY])
    def test_raw_series_answer_the_recorded_values(self, session: Session, name: str, step: Step) -> None:
        """count 100, sum 5050, avg 50.5, min 1, max 100, p95 within the sketch's bound of 95.05, at every step."""
        for agg in ALL:
            result = series(session, name, start=HOUR0, end=HOUR0 + timedelta(hours=1), step=step, agg=agg, source="raw")
            answered = [value for value in points(result) if value is not None]
            assert len(answered) == 1, (step, agg)
            assert_histogram_answer(answered[0], self.VALUES, agg, step)

    @pytest.mark.parametrize("step", [Step.ONE_HOUR, Step.ONE_DAY])
    def test_rollups_answer_the_same(self, session: Session, name: str, step: Step) -> None:
        """Once rolled up, the hourly and daily rows give the same count, sum, extremes, and percentiles in the bound."""
        roll_up(session)
        start = align_down(HOUR0, step)
        for agg in ALL:
            result = series(session, name, start=start, end=start + step.delta, step=step, agg=agg, source="rollup")
            assert result.source == "rollup"
            assert_histogram_answer(points(result)[0], self.VALUES, agg, step)

    @pytest.mark.parametrize("rolled_up", [False, True])
    def test_the_view_answers_the_recorded_values(self, session: Session, name: str, rolled_up: bool) -> None:
        """The service summary view: one row, 100 observations, avg 50.5, p95 in the bound (raw tail or rollups)."""
        if rolled_up:
            roll_up(session)
        row = view_row(session, name, HOUR0)
        assert (row["samples"], row["observations"], row["min_value"], row["max_value"]) == (1, 100, 1.0, 100.0)
        assert row["avg_value"] == pytest.approx(50.5) and row["value_sum"] == pytest.approx(5050.0)
        for agg, fraction in QUANTILES.items():
            assert within_bound(row[agg.value], self.VALUES, fraction), agg

    def test_an_alert_rule_sees_the_recorded_values(self, session: Session, name: str) -> None:
        """A metric rule's evaluated count, avg and p95 over its window are those of the recorded values."""
        at = HOUR0 + timedelta(minutes=12)
        for agg in (Aggregation.COUNT, Aggregation.AVG, Aggregation.MAX, Aggregation.P95, Aggregation.P99):
            condition = parse_condition({"metric": name, "aggregation": agg.value, "threshold": 0, "window_minutes": 5})
            [observation] = observe(session, condition, license_id=None, at=[at])[at]
            assert observation.points == 1
            assert_histogram_answer(observation.value, self.VALUES, agg, "alert")


class TestTwoHalfHourRows:
    """1..50 over the first half hour and 51..100 over the second: an hour's percentiles merge both."""

    VALUES = [float(value) for value in range(1, 101)]

    @pytest.fixture()
    def name(self, session: Session) -> str:
        name = unique("latency")
        histogram_row(session, name=name, at=HOUR0 + timedelta(minutes=30), start=HOUR0, values=self.VALUES[:50])
        histogram_row(
            session,
            name=name,
            at=HOUR0 + timedelta(minutes=59, seconds=59),
            start=HOUR0 + timedelta(minutes=30),
            values=self.VALUES[50:],
        )
        return name

    @pytest.mark.parametrize(
        ("step", "source"), [(Step.ONE_HOUR, "raw"), (Step.ONE_HOUR, "rollup"), (Step.ONE_DAY, "raw"), (Step.ONE_DAY, "rollup")]
    )
    def test_the_hour_and_day_merge_both_rows(self, session: Session, name: str, step: Step, source: str) -> None:
        """count 100, avg 50.5, p50 about 50.5 and p95 about 95.05 (not the mean of the two rows' percentiles)."""
        roll_up(session)
        start = align_down(HOUR0, step)
        for agg in ALL:
            result = series(session, name, start=start, end=start + step.delta, step=step, agg=agg, source=source)
            assert_histogram_answer(points(result)[0], self.VALUES, agg, (step, source))

    def test_minute_buckets_hold_each_row(self, session: Session, name: str) -> None:
        """At 1m the row of 1..50 is its own bucket: its p95 is that of 1..50."""
        result = series(
            session,
            name,
            start=HOUR0 + timedelta(minutes=30),
            end=HOUR0 + timedelta(minutes=31),
            step=Step.ONE_MINUTE,
            agg=Aggregation.P95,
        )
        assert within_bound(points(result)[0], self.VALUES[:50], 0.95)

    def test_the_view_and_an_alert_merge_both_rows(self, session: Session, name: str) -> None:
        """The view's hour and a 60-minute rule window see 100 values."""
        row = view_row(session, name, HOUR0)
        assert row["observations"] == 100 and within_bound(row["p95"], self.VALUES, 0.95)
        roll_up(session)
        row = view_row(session, name, HOUR0)
        assert (
            row["observations"] == 100
            and within_bound(row["p95"], self.VALUES, 0.95)
            and within_bound(row["p50"], self.VALUES, 0.5)
        )
        at = HOUR0 + timedelta(hours=1)
        condition = parse_condition({"metric": name, "aggregation": "p95", "threshold": 0, "window_minutes": 60})
        [observation] = observe(session, condition, license_id=None, at=[at])[at]
        assert within_bound(observation.value, self.VALUES, 0.95) and observation.points == 2


class TestEmptyRows:
    def test_a_histogram_row_without_observations_counts_nothing_and_rolls_up(self, session: Session) -> None:
        """A delta histogram of an interval with no observation (count 0): count 0, no average or percentile, no extreme,
        at every step and once rolled up (hour and day)."""
        name = unique("latency")
        add_metric(
            session,
            at=HOUR0 + timedelta(minutes=5),
            metric_name=name,
            metric_type=MetricType.HISTOGRAM,
            value=0.0,
            sample_count=0,
            start_time=HOUR0,
            sketch_keys=[],
            sketch_counts=[],
        )
        roll_up(session)
        for step, source in ((Step.ONE_MINUTE, "raw"), (Step.ONE_HOUR, "rollup"), (Step.ONE_DAY, "rollup")):
            start = align_down(HOUR0 + timedelta(minutes=5), step)
            answers = {
                agg: points(series(session, name, start=start, end=start + step.delta, step=step, agg=agg, source=source))[0]
                for agg in (Aggregation.COUNT, Aggregation.AVG, Aggregation.P95, Aggregation.MIN)
            }
            assert answers == {Aggregation.COUNT: 0.0, Aggregation.AVG: None, Aggregation.P95: None, Aggregation.MIN: None}, step


class TestPerLicenseSummary:
    def test_a_license_summary_merges_its_rows_distributions(self, session: Session) -> None:
        """The services summary of one license (computed from its raw rows) merges two histogram rows as the view does."""
        license_id = add_license(session, name=unique("acme")).license_id
        name = unique("latency")
        values = [float(value) for value in range(1, 101)]
        histogram_row(
            session, name=name, at=HOUR0 + timedelta(minutes=30), start=HOUR0, values=values[:50], license_id=license_id
        )
        histogram_row(
            session,
            name=name,
            at=HOUR0 + timedelta(minutes=50),
            start=HOUR0 + timedelta(minutes=30),
            values=values[50:],
            license_id=license_id,
        )
        query = summary_queries.SummaryQuery(HOUR0, HOUR0 + timedelta(hours=1), {"metric_name": name}, limit=10)
        (row,) = summary_queries.services_for_license(session, query, license_id=license_id)
        assert (row["samples"], row["observations"], row["min_value"], row["max_value"]) == (2, 100, 1.0, 100.0)
        assert row["avg_value"] == pytest.approx(50.5) and row["value_sum"] == pytest.approx(5050.0)
        for agg, fraction in QUANTILES.items():
            assert within_bound(row[agg.value], values, fraction), agg


class TestRate:
    def test_a_steady_rate_stays_steady_at_a_step_shorter_than_the_sampling_interval(self, session: Session) -> None:
        """0.306/s sampled every 2 minutes (increments of 36.72): every 1m bucket reads 0.306, none is null, the first
        included (its increment began before the range); 5m and 1h read the same."""
        name = unique("requests")
        rows = []
        for index in range(-3, 40):
            end = HOUR0 + timedelta(seconds=17 + 120 * index)
            rows.append((end - timedelta(seconds=120), end, 0.306 * 120))
            counter_row(session, name=name, at=end, start=end - timedelta(seconds=120), increment=0.306 * 120)
        for step, count in ((Step.ONE_MINUTE, 60), (Step.FIVE_MINUTES, 12), (Step.ONE_HOUR, 1)):
            result = series(session, name, start=HOUR0, end=HOUR0 + timedelta(hours=1), step=step, agg=Aggregation.RATE)
            assert points(result) == [pytest.approx(value) for value in spread_rates(rows, first=HOUR0, step=step, count=count)]
            assert all(value == pytest.approx(0.306) for value in points(result)[:-1]), step
        # the last minute holds the first 17 s of an increment the range does not fully contain (it ends at 60:17)

    def test_a_counter_reset_counts_the_value_after_it(self, session: Session) -> None:
        """10 per minute, a restart at 2:30, 5 by 3:00 (counted from the restart), then 10 per minute: per minute
        10, 10, 5 (the restart's half-minute), 10, 10; the total over 5 minutes is every increment."""
        name = unique("requests")
        restart = HOUR0 + timedelta(minutes=2, seconds=30)
        rows = [
            (HOUR0 - timedelta(minutes=1), HOUR0, 10.0),
            (HOUR0, HOUR0 + timedelta(minutes=1), 10.0),
            (HOUR0 + timedelta(minutes=1), HOUR0 + timedelta(minutes=2), 10.0),
            (restart, HOUR0 + timedelta(minutes=3), 5.0),
            (HOUR0 + timedelta(minutes=3), HOUR0 + timedelta(minutes=4), 10.0),
            (HOUR0 + timedelta(minutes=4), HOUR0 + timedelta(minutes=5), 10.0),
        ]
        for start, end, amount in rows:
            counter_row(session, name=name, at=end, start=start, increment=amount)
        result = series(session, name, start=HOUR0, end=HOUR0 + timedelta(minutes=5), step=Step.ONE_MINUTE, agg=Aggregation.RATE)
        assert points(result) == [pytest.approx(value / 60) for value in (10, 10, 5, 10, 10)]
        total = series(session, name, start=HOUR0, end=HOUR0 + timedelta(minutes=5), step=Step.FIVE_MINUTES, agg=Aggregation.SUM)
        assert points(total) == [pytest.approx(10 + 10 + 5 + 10 + 10)]
        assert points(
            series(session, name, start=HOUR0, end=HOUR0 + timedelta(minutes=5), step=Step.FIVE_MINUTES, agg=Aggregation.COUNT)
        ) == [5.0]

    def test_the_current_bucket_divides_by_the_seconds_elapsed_in_it(self, session: Session) -> None:
        """now 20 s into a minute, 10 counted in it: 0.5/s (not 10/60), and the answer names the partial bucket;
        the minute before, complete, divides by 60."""
        name = unique("requests")
        bucket = HOUR0 + timedelta(minutes=30)
        now = bucket + timedelta(seconds=20)
        counter_row(session, name=name, at=bucket - timedelta(seconds=1), start=bucket - timedelta(seconds=31), increment=30.0)
        counter_row(session, name=name, at=bucket + timedelta(seconds=10), start=bucket, increment=10.0)
        result = series(
            session,
            name,
            start=bucket - timedelta(minutes=1),
            end=bucket + timedelta(minutes=1),
            step=Step.ONE_MINUTE,
            agg=Aggregation.RATE,
            now=now,
        )
        assert points(result) == [pytest.approx(30 / 60), pytest.approx(10 / 20)]
        assert result.current_bucket == CurrentBucket(bucket_start=bucket, elapsed_s=20.0)
        past = series(
            session, name, start=bucket - timedelta(minutes=1), end=bucket, step=Step.ONE_MINUTE, agg=Aggregation.RATE, now=now
        )
        assert past.current_bucket is None

    def test_a_histogram_rate_counts_observations_per_second(self, session: Session) -> None:
        """100 observations over (9 min, 10 min] is 100/60 per second in that minute; an alert's 5-minute window has 100/300."""
        name = unique("latency")
        histogram_row(
            session,
            name=name,
            at=HOUR0 + timedelta(minutes=10),
            start=HOUR0 + timedelta(minutes=9),
            values=[float(v) for v in range(1, 101)],
        )
        result = series(
            session,
            name,
            start=HOUR0 + timedelta(minutes=9),
            end=HOUR0 + timedelta(minutes=10),
            step=Step.ONE_MINUTE,
            agg=Aggregation.RATE,
        )
        assert points(result) == [pytest.approx(100 / 60)]
        at = HOUR0 + timedelta(minutes=12)
        condition = parse_condition({"metric": name, "aggregation": "rate", "threshold": 0, "window_minutes": 5})
        [observation] = observe(session, condition, license_id=None, at=[at])[at]
        assert observation.value == pytest.approx(100 / 300)


class TestCurrentBucketOverHttp:
    def test_the_answer_names_the_partial_bucket(self, client: TestClient, committed_engine: Engine) -> None:
        """A range ending in the future: current_bucket is the minute holding now, partial, with its elapsed seconds."""
        tenant: Tenant = make_tenant(committed_engine)
        name = unique("requests")
        now = datetime.now(UTC)
        with session_factory(committed_engine).begin() as session:
            counter_row(
                session,
                name=name,
                at=now - timedelta(minutes=3),
                start=now - timedelta(minutes=4),
                increment=60.0,
                license_id=tenant.license_id,
            )
        params = {
            "metric_name": name,
            "from": (now - timedelta(minutes=5)).isoformat(),
            "to": (now + timedelta(minutes=1)).isoformat(),
            "step": "1m",
            "agg": "rate",
        }
        response = client.get("/api/v1/metrics/series", params=params, headers={"Authorization": f"Bearer {tenant.read_key}"})
        assert response.status_code == 200, response.text
        body = response.json()
        current = body["current_bucket"]
        assert current["partial"] is True and 0 < current["elapsed_s"] <= 60
        assert datetime.fromisoformat(current["bucket_start"]) in [
            datetime.fromisoformat(stamp) for stamp, _ in body["series"][0]["points"]
        ]
        assert math.fsum(value * 60 for _, value in body["series"][0]["points"] if value is not None) == pytest.approx(60.0)
        past = client.get(
            "/api/v1/metrics/series",
            params={**params, "to": (now - timedelta(minutes=2)).isoformat()},
            headers={"Authorization": f"Bearer {tenant.read_key}"},
        ).json()
        assert past["current_bucket"] is None


class TestSeriesOverHttp:
    def test_every_aggregation_of_a_histogram_row_over_http(self, client: TestClient, committed_engine: Engine) -> None:
        """GET /api/v1/metrics/series on values 1..100 stored as one histogram row: count, sum, avg, min, max and the
        percentiles at 1m, 1h and 1d from raw rows, and at 1h and 1d from the rollups once refreshed."""
        tenant: Tenant = make_tenant(committed_engine)
        name = unique("latency")
        values = [float(value) for value in range(1, 101)]
        hour = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
        with session_factory(committed_engine).begin() as session:
            histogram_row(
                session,
                name=name,
                at=hour + timedelta(minutes=10),
                start=hour + timedelta(minutes=9),
                values=values,
                license_id=tenant.license_id,
            )
        headers = {"Authorization": f"Bearer {tenant.read_key}"}

        def answer(step: Step, agg: Aggregation, source: str) -> float | None:
            start = align_down(hour, step)
            params = {
                "metric_name": name,
                "from": start.isoformat(),
                "to": (start + max(step.delta, timedelta(hours=1))).isoformat(),
                "step": step.value,
                "agg": agg.value,
                "source": source,
            }
            response = client.get("/api/v1/metrics/series", params=params, headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["source"] == source
            answered = [value for _, value in body["series"][0]["points"] if value is not None]
            assert len(answered) == 1, (step, agg, source)
            return answered[0]

        for step in (Step.ONE_MINUTE, Step.ONE_HOUR, Step.ONE_DAY):
            for agg in ALL:
                assert_histogram_answer(answer(step, agg, "raw"), values, agg, (step, "raw"))
        with session_factory(committed_engine).begin() as session:
            roll_up(session)
        for step in (Step.ONE_HOUR, Step.ONE_DAY):
            for agg in ALL:
                assert_histogram_answer(answer(step, agg, "rollup"), values, agg, (step, "rollup"))
