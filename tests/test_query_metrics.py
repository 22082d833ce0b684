"""Metric series and the metric catalogue: aggregations against hand-computed values, UTC buckets,
gap filling, counter rates across resets, filters, grouping, limits, point sources and tenant scoping.

The service is tested on the shared database inside a rolled-back transaction; the HTTP routes on the
committed-writes database through the real app, with samples sent through the ingest API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from fernando_telemetry.core import containment
from fernando_telemetry.core.enums import MetricType
from fernando_telemetry.core.errors import Forbidden, InvalidInput
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.core.series import Aggregation, Buckets, GroupBy, Step
from fernando_telemetry.services import metric_series
from fernando_telemetry.services.metric_series import SeriesRequest, SeriesResult
from fernando_telemetry.storage.metric_queries import BucketValue, MetricSelection
from fernando_telemetry.storage.models import SystemMetric
from tests.helpers import add_license, add_metric
from tests.ingest_fixtures import Tenant, admin_key, make_tenant

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
# a fixed hour in the past, inside the shared database's partitions
T0 = (NOW - timedelta(days=2)).replace(minute=0)
ADMIN = Principal(api_key_id=0, license_id=None, scopes=frozenset({"admin"}))


def reader(license_id: int) -> Principal:
    return Principal(api_key_id=0, license_id=license_id, scopes=frozenset({"read"}))


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def query(session: Session, principal: Principal = ADMIN, *, source: str = "auto", **fields: Any) -> SeriesResult:
    fields.setdefault("metric_name", "m")
    fields.setdefault("start", T0)
    fields.setdefault("end", T0 + timedelta(minutes=5))
    fields.setdefault("step", Step.ONE_MINUTE)
    return metric_series.series(session, principal=principal, request=SeriesRequest(**fields), now=NOW, source=source)


def values(result: SeriesResult, index: int = 0) -> list[float | None]:
    return [value for _, value in result.series[index].points]


def groups(result: SeriesResult) -> list[dict[str, str | None]]:
    return [line.group for line in result.series]


def sample(session: Session, **fields: Any) -> SystemMetric:
    """A sample of the metric "m" unless named otherwise."""
    fields.setdefault("metric_name", "m")
    return add_metric(session, **fields)


def labels(*pairs: tuple[str, str]) -> list[containment.Condition]:
    return containment.conditions("labels.", [(f"labels.{key}", value) for key, value in pairs])


class TestAggregations:
    @pytest.fixture()
    def ten_samples(self, session: Session) -> None:
        """Values 1..10 in minute 0; nothing in minute 1."""
        for value in range(1, 11):
            sample(session, at=at(seconds=value * 5), metric_name="m", value=float(value))

    @pytest.mark.usefixtures("ten_samples")
    @pytest.mark.parametrize(
        ("aggregation", "expected"),
        [
            (Aggregation.AVG, 5.5),
            (Aggregation.MIN, 1.0),
            (Aggregation.MAX, 10.0),
            (Aggregation.SUM, 55.0),
            (Aggregation.COUNT, 10.0),
            (Aggregation.P50, 5.5),
            (Aggregation.P90, 9.1),
            (Aggregation.P95, 9.55),
            (Aggregation.P99, 9.91),
        ],
    )
    def test_each_aggregation_matches_its_hand_computed_value(
        self, session: Session, aggregation: Aggregation, expected: float
    ) -> None:
        """Over 1..10: avg 5.5, min 1, max 10, sum 55, count 10, and interpolated percentiles (p90 = 9.1, ...)."""
        result = query(session, aggregation=aggregation, end=at(2))
        assert values(result)[0] == pytest.approx(expected) and values(result)[1] is None
        assert result.aggregation is aggregation

    def test_histogram_rows_weigh_by_their_sample_count(self, session: Session) -> None:
        """A row of 3 observations averaging 20 and a plain sample of 10: count 4, sum 70, avg 17.5; min/max of the values."""
        sample(session, at=at(seconds=1), metric_type=MetricType.HISTOGRAM, value=20.0, sample_count=3)
        sample(session, at=at(seconds=2), metric_type=MetricType.HISTOGRAM, value=10.0, sample_count=1)
        expected = {
            Aggregation.COUNT: 4.0,
            Aggregation.SUM: 70.0,
            Aggregation.AVG: 17.5,
            Aggregation.MIN: 10.0,
            Aggregation.MAX: 20.0,
        }
        for aggregation, value in expected.items():
            assert values(query(session, aggregation=aggregation, end=at(1))) == [pytest.approx(value)]


class TestBucketsAndGaps:
    def test_empty_buckets_are_present_as_none(self, session: Session) -> None:
        """Samples in minutes 0 and 3 of five give values there and None in 1, 2 and 4."""
        sample(session, at=at(0, 10), value=1.0)
        sample(session, at=at(3, 59.999), value=3.0)
        result = query(session)
        assert result.series[0].points == [(at(0), 1.0), (at(1), None), (at(2), None), (at(3), 3.0), (at(4), None)]

    def test_buckets_start_at_from_aligned_down_and_each_aggregates_its_whole_bucket(self, session: Session) -> None:
        """From 00:02 to 00:07 at 5m gives buckets 00:00 and 00:05; samples before from and after to in those buckets count."""
        sample(session, at=at(0, 30), value=1.0)
        sample(session, at=at(4, 59), value=3.0)
        sample(session, at=at(9, 59), value=5.0)
        sample(session, at=at(10), value=100.0)
        sample(session, at=at(-0.01), value=100.0)
        result = query(session, start=at(2), end=at(7), step=Step.FIVE_MINUTES)
        assert result.series[0].points == [(at(0), 2.0), (at(5), 5.0)]
        assert result.buckets == Buckets(first=at(0), step=Step.FIVE_MINUTES, count=2)

    def test_daily_buckets_are_utc_days(self, session: Session) -> None:
        """1d buckets start at UTC midnight: 23:59 and 00:01 UTC fall in different days."""
        midnight = (NOW - timedelta(days=3)).replace(hour=0, minute=0)
        sample(session, at=midnight - timedelta(minutes=1), value=1.0)
        sample(session, at=midnight + timedelta(minutes=1), value=2.0)
        result = query(session, start=midnight - timedelta(hours=12), end=midnight + timedelta(hours=12), step=Step.ONE_DAY)
        assert result.series[0].points == [(midnight - timedelta(days=1), 1.0), (midnight, 2.0)]

    def test_no_samples_without_group_by_is_one_line_of_nones(self, session: Session) -> None:
        """A metric with no samples still has a line, every point None, so a chart shows the gap."""
        result = query(session, metric_name="absent-" + uuid.uuid4().hex)
        assert groups(result) == [{}] and values(result) == [None] * 5

    def test_no_samples_with_group_by_is_no_series(self, session: Session) -> None:
        """With group_by there is no group to show."""
        assert query(session, metric_name="absent", group_by=GroupBy(column="host_name")).series == []

    def test_without_a_step_the_smallest_fitting_one_is_chosen(self, session: Session) -> None:
        """Two days without a step are read at 5m (576 points); an hour at 1m."""
        assert query(session, step=None, start=T0, end=T0 + timedelta(days=2)).step is Step.FIVE_MINUTES
        assert query(session, step=None, start=T0, end=T0 + timedelta(hours=1)).step is Step.ONE_MINUTE

    def test_without_from_and_to_the_last_hour_is_read(self, session: Session) -> None:
        """The default range is the hour before now, at one-minute steps."""
        sample(session, at=NOW - timedelta(minutes=30), value=7.0)
        result = metric_series.series(session, principal=ADMIN, request=SeriesRequest(metric_name="m"), now=NOW)
        assert result.step is Step.ONE_MINUTE and len(result.series[0].points) == 60
        assert [value for _, value in result.series[0].points if value is not None] == [7.0]

    def test_too_many_points_is_a_400_naming_a_step_that_fits(self, session: Session) -> None:
        """Eight days at 1m (11,520 points) is refused and 5m suggested."""
        with pytest.raises(InvalidInput, match="step=1m gives 11,520 points .* use step=5m"):
            query(session, start=T0 - timedelta(days=8), end=T0, step=Step.ONE_MINUTE)

    def test_missing_metric_name_is_a_400(self, session: Session) -> None:
        """metric_name is required."""
        with pytest.raises(InvalidInput, match="metric_name is required"):
            query(session, metric_name="")


class TestRate:
    def test_rate_is_the_increments_per_second_each_spread_over_its_interval(self, session: Session) -> None:
        """Increments 60 over (0 s, 30 s], 60 over (30 s, 90 s], 30 over (90 s, 120 s]: minute 0 gets 60 + 30, minute 1
        30 + 30; spread in proportion to each interval's overlap with the minute."""
        for start, end, increment in [(0, 30, 60), (30, 90, 60), (90, 120, 30)]:
            sample(
                session, at=at(seconds=end), start_time=at(seconds=start), metric_type=MetricType.COUNTER, value=float(increment)
            )
        result = query(session, aggregation=Aggregation.RATE, end=at(3))
        assert values(result) == [pytest.approx(90 / 60), pytest.approx(60 / 60), None]

    def test_an_increment_without_start_time_is_charged_at_its_timestamp(self, session: Session) -> None:
        """No start_time: the whole increment falls in the bucket of its timestamp."""
        sample(session, at=at(seconds=70), metric_type=MetricType.COUNTER, value=12.0)
        assert values(query(session, aggregation=Aggregation.RATE, end=at(2))) == [None, pytest.approx(0.2)]

    def test_an_interval_that_began_before_the_range_adds_only_its_overlap(self, session: Session) -> None:
        """An increment of 120 over (-60 s, 60 s]: the range from 0 s gets its second half, 60 in minute 0."""
        sample(session, at=at(seconds=60), start_time=at(seconds=-60), metric_type=MetricType.COUNTER, value=120.0)
        assert values(query(session, aggregation=Aggregation.RATE, end=at(2))) == [pytest.approx(1.0), None]

    def test_a_histogram_rate_is_observations_per_second(self, session: Session) -> None:
        """A histogram row of 30 observations over (0, 60 s] is 0.5 observations per second."""
        sample(session, at=at(seconds=60), start_time=at(0), metric_type=MetricType.HISTOGRAM, value=3.0, sample_count=30)
        assert values(query(session, aggregation=Aggregation.RATE, end=at(1))) == [pytest.approx(0.5)]

    def test_a_gauge_rate_is_its_rise_between_samples_spread_over_the_time_between(self, session: Session) -> None:
        """Gauge 10 at -20 s, 40 at 10 s, 20 at 40 s: the rise of 30 over 30 s gives 10 s of it (10) to minute 0, the fall adds
        nothing; a lone sample has no rate."""
        for seconds, value in [(-20, 10.0), (10, 40.0), (40, 20.0)]:
            sample(session, at=at(seconds=seconds), value=value)
        assert values(query(session, aggregation=Aggregation.RATE, end=at(1))) == [pytest.approx(10 / 60)]
        sample(session, at=at(seconds=10), metric_name="lone", value=40.0)
        assert values(query(session, metric_name="lone", aggregation=Aggregation.RATE, end=at(1))) == [None]

    def test_each_series_is_its_own_and_a_group_sums_them(self, session: Session) -> None:
        """Two hosts' increments add up in one group and split by host."""
        for seconds in (20, 40, 60):
            sample(
                session,
                at=at(seconds=seconds),
                start_time=at(seconds=seconds - 20),
                metric_type=MetricType.COUNTER,
                value=40.0,
                host_name="a",
                labels={"dc": "x"},
            )
            sample(
                session,
                at=at(seconds=seconds),
                start_time=at(seconds=seconds - 20),
                metric_type=MetricType.COUNTER,
                value=20.0,
                host_name="b",
                labels={"dc": "x"},
            )
        together = query(session, aggregation=Aggregation.RATE, end=at(1))
        assert values(together) == [pytest.approx((120 + 60) / 60)]
        by_host = query(session, aggregation=Aggregation.RATE, end=at(1), group_by=GroupBy(column="host_name"))
        assert [(line.group, line.points[0][1]) for line in by_host.series] == [
            ({"host_name": "a"}, pytest.approx(2.0)),
            ({"host_name": "b"}, pytest.approx(1.0)),
        ]
        by_label = query(session, aggregation=Aggregation.RATE, end=at(1), group_by=GroupBy(label="dc"))
        assert [(line.group, line.points[0][1]) for line in by_label.series] == [({"labels.dc": "x"}, pytest.approx(3.0))]


class TestFiltersAndGroups:
    @pytest.fixture()
    def samples(self, session: Session) -> None:
        rows = [
            ("m", "api", "web-1", {"region": "eu", "shard": 3}, 1.0),
            ("m", "api", "web-2", {"region": "us", "shard": "3"}, 2.0),
            ("m", "worker", "web-1", {"region": "eu"}, 4.0),
            ("m", None, None, {}, 8.0),
            ("other", "api", "web-1", {"region": "eu"}, 16.0),
        ]
        for metric_name, service_name, host_name, row_labels, value in rows:
            sample(
                session,
                at=at(seconds=5),
                metric_name=metric_name,
                service_name=service_name,
                host_name=host_name,
                labels=row_labels,
                value=value,
            )

    @pytest.mark.usefixtures("samples")
    @pytest.mark.parametrize(
        ("filters", "expected_sum"),
        [
            ({}, 15.0),
            ({"service_name": "api"}, 3.0),
            ({"host_name": "web-1"}, 5.0),
            ({"service_name": "api", "host_name": "web-1"}, 1.0),
            ({"labels": labels(("region", "eu"))}, 5.0),
            ({"labels": labels(("shard", "3"))}, 3.0),
            ({"labels": labels(("region", "eu"), ("shard", "3"))}, 1.0),
            ({"labels": labels(("region", "mars"))}, None),
            ({"metric_name": "other"}, 16.0),
        ],
    )
    def test_filters_narrow_the_samples(self, session: Session, filters: dict[str, Any], expected_sum: float | None) -> None:
        """metric_name, service_name, host_name and label containment (a number label matching 3 or "3") all narrow."""
        assert values(query(session, aggregation=Aggregation.SUM, end=at(1), **filters)) == [expected_sum]

    @pytest.mark.usefixtures("samples")
    def test_group_by_a_column_orders_groups_by_value_with_missing_last(self, session: Session) -> None:
        """One line per host, by name; samples without a host form the None group, last."""
        result = query(session, aggregation=Aggregation.SUM, end=at(1), group_by=GroupBy(column="host_name"))
        assert [(line.group, line.points) for line in result.series] == [
            ({"host_name": "web-1"}, [(at(0), 5.0)]),
            ({"host_name": "web-2"}, [(at(0), 2.0)]),
            ({"host_name": None}, [(at(0), 8.0)]),
        ]
        assert groups(query(session, end=at(1), group_by=GroupBy(column="service_name"))) == [
            {"service_name": "api"},
            {"service_name": "worker"},
            {"service_name": None},
        ]

    @pytest.mark.usefixtures("samples")
    def test_group_by_a_label_uses_its_text(self, session: Session) -> None:
        """Label values group as text (3 and "3" together); rows without the label are the None group."""
        by_shard = query(session, aggregation=Aggregation.COUNT, end=at(1), group_by=GroupBy(label="shard"))
        assert [(line.group, line.points[0][1]) for line in by_shard.series] == [
            ({"labels.shard": "3"}, 2.0),
            ({"labels.shard": None}, 2.0),
        ]

    def test_more_than_the_allowed_series_is_a_400(self, session: Session) -> None:
        """Grouping into 501 series is refused with advice."""
        session.execute(
            insert(SystemMetric),
            [
                {
                    "metric_name": "wide",
                    "metric_type": "gauge",
                    "value": 1.0,
                    "host_name": f"h{index}",
                    "timestamp": at(seconds=1),
                }
                for index in range(metric_series.MAX_SERIES + 1)
            ],
        )
        with pytest.raises(InvalidInput, match="gives 501 series, more than the 500 allowed"):
            query(session, metric_name="wide", end=at(1), group_by=GroupBy(column="host_name"))
        assert (
            len(query(session, metric_name="wide", end=at(1), group_by=GroupBy(column="host_name"), host_name="h1").series) == 1
        )

    def test_more_than_the_allowed_points_over_all_series_is_a_400(self, session: Session) -> None:
        """46 series of 11,000 points (506,000) are over the 500,000 limit."""
        session.execute(
            insert(SystemMetric),
            [
                {
                    "metric_name": "many",
                    "metric_type": "gauge",
                    "value": 1.0,
                    "host_name": f"h{index}",
                    "timestamp": at(seconds=1),
                }
                for index in range(46)
            ],
        )
        with pytest.raises(InvalidInput, match="46 series of 11,000 points are more than the 500,000"):
            query(session, metric_name="many", start=at(), end=at(11_000), group_by=GroupBy(column="host_name"))


class FixedSource:
    """An in-memory point source, as a rollup source would plug in: serves only 1h steps."""

    name = "rollup"

    def serves(
        self,
        session: Session,
        *,
        selection: MetricSelection,
        aggregation: Aggregation,
        buckets: Buckets,
        group_by: GroupBy | None,
    ) -> bool:
        return buckets.step is Step.ONE_HOUR

    def values(
        self,
        session: Session,
        *,
        selection: MetricSelection,
        aggregation: Aggregation,
        buckets: Buckets,
        group_by: GroupBy | None,
        now: datetime,
    ) -> list[BucketValue]:
        return [BucketValue(None, buckets.first, 42.0)]


class TestPointSources:
    def test_minute_steps_come_from_raw_and_rollup_cannot_be_forced_on_them(self, session: Session) -> None:
        """auto answers a minute step from raw rows; source=raw gives the same answer; rollup refuses it (a 400);
        an unknown source is a 400 naming the available ones."""
        sample(session, at=at(seconds=1), value=3.0)
        auto, raw = query(session, end=at(2)), query(session, end=at(2), source="raw")
        assert auto.source == raw.source == "raw" and auto.series == raw.series
        with pytest.raises(InvalidInput, match="source=rollup cannot serve this request"):
            query(session, end=at(2), source="rollup")
        with pytest.raises(InvalidInput, match="source: 'cache' is not available; use one of auto, rollup, raw"):
            query(session, source="cache")

    def test_auto_prefers_the_first_source_that_serves_and_falls_back(self, session: Session) -> None:
        """With a plugged-in source listed first, auto uses it where it serves (1h) and raw elsewhere (1m)."""
        sample(session, at=at(seconds=1), value=3.0)
        sources = (FixedSource(), metric_series.RAW)
        hourly = metric_series.series(
            session,
            principal=ADMIN,
            request=SeriesRequest(metric_name="m", start=T0, end=at(60), step=Step.ONE_HOUR),
            now=NOW,
            sources=sources,
        )
        assert hourly.source == "rollup" and values(hourly) == [42.0]
        minutely = metric_series.series(
            session, principal=ADMIN, request=SeriesRequest(metric_name="m", start=T0, end=at(1)), now=NOW, sources=sources
        )
        assert minutely.source == "raw" and values(minutely) == [3.0]
        with pytest.raises(InvalidInput, match="source=rollup cannot serve this request"):
            metric_series.series(
                session,
                principal=ADMIN,
                request=SeriesRequest(metric_name="m", start=T0, end=at(1)),
                now=NOW,
                source="rollup",
                sources=sources,
            )


class TestTenancy:
    def test_a_license_key_sees_only_its_samples(self, session: Session) -> None:
        """Series and names read only the key's license; asking for another is Forbidden; admins see all or one."""
        mine, theirs = add_license(session, "mine"), add_license(session, "theirs")
        sample(session, at=at(seconds=1), value=1.0, license_id=mine.license_id, metric_name="shared")
        sample(session, at=at(seconds=2), value=10.0, license_id=theirs.license_id, metric_name="shared")
        sample(session, at=at(seconds=3), value=100.0, license_id=theirs.license_id, metric_name="theirs_only")
        assert values(query(session, reader(mine.license_id), metric_name="shared", aggregation=Aggregation.SUM, end=at(1))) == [
            1.0
        ]
        assert values(query(session, reader(mine.license_id), metric_name="theirs_only", end=at(1))) == [None]
        assert values(query(session, metric_name="shared", aggregation=Aggregation.SUM, end=at(1))) == [11.0]
        assert values(
            query(session, metric_name="shared", aggregation=Aggregation.SUM, end=at(1), license_id=theirs.license_id)
        ) == [10.0]
        with pytest.raises(Forbidden):
            query(session, reader(mine.license_id), license_id=theirs.license_id)
        visible = metric_series.names(
            session, principal=reader(mine.license_id), start=T0, end=at(1), service_name=None, license_id=None, now=NOW
        )
        assert [name.metric_name for name in visible] == ["shared"]
        with pytest.raises(Forbidden):
            metric_series.names(
                session,
                principal=reader(mine.license_id),
                start=None,
                end=None,
                service_name=None,
                license_id=theirs.license_id,
                now=NOW,
            )


class TestNames:
    def test_names_carry_types_units_services_samples_and_last_seen(self, session: Session) -> None:
        """One entry per metric, sorted by name, with its distinct types, units and services."""
        sample(session, at=at(seconds=1), metric_name="latency", metric_type=MetricType.HISTOGRAM, unit="ms", service_name="api")
        sample(session, at=at(seconds=9), metric_name="latency", metric_type=MetricType.TIMER, unit="s", service_name="worker")
        sample(session, at=at(seconds=5), metric_name="latency", metric_type=MetricType.HISTOGRAM, unit=None, service_name=None)
        sample(session, at=at(seconds=2), metric_name="cpu", metric_type=MetricType.GAUGE, unit="percent", service_name="api")
        found = metric_series.names(session, principal=ADMIN, start=T0, end=at(1), service_name=None, license_id=None, now=NOW)
        assert [(n.metric_name, n.metric_types, n.units, n.service_names, n.samples, n.last_seen_at) for n in found] == [
            ("cpu", ["gauge"], ["percent"], ["api"], 1, at(seconds=2)),
            ("latency", ["histogram", "timer"], ["ms", "s"], ["api", "worker"], 3, at(seconds=9)),
        ]

    def test_the_service_filter_and_the_range_narrow_the_list(self, session: Session) -> None:
        """Only metrics of that service, and only samples inside [from, to), count."""
        sample(session, at=at(seconds=1), metric_name="cpu", service_name="api")
        sample(session, at=at(seconds=1), metric_name="queue", service_name="worker")
        sample(session, at=at(minutes=10), metric_name="late", service_name="api")
        found = metric_series.names(session, principal=ADMIN, start=T0, end=at(1), service_name="api", license_id=None, now=NOW)
        assert [name.metric_name for name in found] == ["cpu"]

    def test_the_default_range_is_the_last_seven_days(self, session: Session) -> None:
        """A metric last seen eight days ago is not listed by default."""
        sample(session, at=NOW - timedelta(days=6, hours=23), metric_name="recent-" + T0.isoformat())
        sample(session, at=NOW - timedelta(days=8), metric_name="stale-" + T0.isoformat())
        found = [
            name.metric_name
            for name in metric_series.names(
                session, principal=ADMIN, start=None, end=None, service_name=None, license_id=None, now=NOW
            )
        ]
        assert "recent-" + T0.isoformat() in found and "stale-" + T0.isoformat() not in found


# --- HTTP ------------------------------------------------------------------------------------------


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture()
def tenant(committed_engine: Engine) -> Tenant:
    return make_tenant(committed_engine)


def _send(client: TestClient, tenant: Tenant, samples: list[dict[str, Any]]) -> None:
    answer = client.post("/api/v1/system-metrics", json={"metrics": samples}, headers=_auth(tenant.ingest_key)).json()
    assert answer == {"accepted": len(samples), "rejected": []}


HOUR = (NOW - timedelta(hours=3)).replace(minute=0)


class TestSeriesApi:
    def test_a_grouped_series_over_http(self, client: TestClient, tenant: Tenant) -> None:
        """Ingested samples come back as one line per host, a point per 5 minutes, gaps null, times in ISO 8601."""
        name = "cpu_" + uuid.uuid4().hex[:8]
        _send(
            client,
            tenant,
            [
                {
                    "metric_name": name,
                    "value": 10.0,
                    "host_name": "web-1",
                    "labels": {"region": "eu"},
                    "timestamp": (HOUR + timedelta(minutes=1)).isoformat(),
                },
                {
                    "metric_name": name,
                    "value": 30.0,
                    "host_name": "web-1",
                    "labels": {"region": "eu"},
                    "timestamp": (HOUR + timedelta(minutes=2)).isoformat(),
                },
                {
                    "metric_name": name,
                    "value": 5.0,
                    "host_name": "web-2",
                    "labels": {"region": "us"},
                    "timestamp": (HOUR + timedelta(minutes=11)).isoformat(),
                },
            ],
        )
        params = {
            "metric_name": name,
            "from": HOUR.isoformat(),
            "to": (HOUR + timedelta(minutes=15)).isoformat(),
            "step": "5m",
            "group_by": "host_name",
        }
        response = client.get("/api/v1/metrics/series", params=params, headers=_auth(tenant.read_key))
        assert response.status_code == 200, response.text
        body = response.json()
        assert {key: body[key] for key in ("metric_name", "step", "agg", "source")} == {
            "metric_name": name,
            "step": "5m",
            "agg": "avg",
            "source": "raw",
        }
        assert [line["group"] for line in body["series"]] == [{"host_name": "web-1"}, {"host_name": "web-2"}]
        assert [value for _, value in body["series"][0]["points"]] == [20.0, None, None]
        assert [value for _, value in body["series"][1]["points"]] == [None, None, 5.0]
        assert [datetime.fromisoformat(stamp) for stamp, _ in body["series"][0]["points"]] == [
            HOUR + timedelta(minutes=m) for m in (0, 5, 10)
        ]
        eu = client.get(
            "/api/v1/metrics/series",
            params={**params, "group_by": "labels.region", "labels.region": "eu", "agg": "max"},
            headers=_auth(tenant.read_key),
        ).json()
        assert [(line["group"], [value for _, value in line["points"]]) for line in eu["series"]] == [
            ({"labels.region": "eu"}, [30.0, None, None])
        ]

    def test_names_over_http(self, client: TestClient, tenant: Tenant) -> None:
        """The catalogue lists what the key's license sent, with types, units and services."""
        name = "queue_" + uuid.uuid4().hex[:8]
        _send(
            client,
            tenant,
            [
                {
                    "metric_name": name,
                    "metric_type": "counter",
                    "value": 1.0,
                    "unit": "items",
                    "service_name": "worker",
                    "timestamp": HOUR.isoformat(),
                }
            ],
        )
        response = client.get("/api/v1/metrics/names", headers=_auth(tenant.read_key))
        assert response.status_code == 200, response.text
        (entry,) = [metric for metric in response.json()["metrics"] if metric["metric_name"] == name]
        assert entry["metric_types"] == ["counter"] and entry["units"] == ["items"] and entry["service_names"] == ["worker"]
        assert entry["samples"] == 1 and datetime.fromisoformat(entry["last_seen_at"]) == HOUR
        only_api = client.get("/api/v1/metrics/names", params={"service_name": "api"}, headers=_auth(tenant.read_key)).json()
        assert name not in [metric["metric_name"] for metric in only_api["metrics"]]

    @pytest.mark.parametrize(
        ("path", "params", "message"),
        [
            ("/api/v1/metrics/series", {}, "metric_name is required"),
            ("/api/v1/metrics/series", {"metric_name": "m", "step": "2m"}, "step: '2m' is not a step; use one of 1m, 5m, 1h, 1d"),
            ("/api/v1/metrics/series", {"metric_name": "m", "agg": "median"}, "agg: 'median' is not an aggregation"),
            ("/api/v1/metrics/series", {"metric_name": "m", "group_by": "user_id"}, "group_by: 'user_id' cannot be grouped by"),
            (
                "/api/v1/metrics/series",
                {"metric_name": "m", "from": "2026-01-01T00:00:00Z", "to": "2026-01-09T00:00:00Z", "step": "1m"},
                "step=1m gives 11,520 points over this range, more than the 11,000 allowed; use step=5m",
            ),
            (
                "/api/v1/metrics/series",
                {"metric_name": "m", "from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
                "must be after from",
            ),
            (
                "/api/v1/metrics/series",
                {"metric_name": "m", "source": "rollup", "step": "1m"},
                "source=rollup cannot serve this request",
            ),
            ("/api/v1/metrics/series", {"metric_name": "m", "source": "cache"}, "source: 'cache' is not available"),
            ("/api/v1/metrics/series", {"metric_name": "m", "lables.region": "eu"}, "unknown query parameter lables.region"),
            ("/api/v1/metrics/series", {"metric_name": "m", "labels.": "eu"}, "name a key after 'labels.'"),
            ("/api/v1/metrics/names", {"from": "last week"}, "from: 'last week' is not an ISO 8601 timestamp"),
            ("/api/v1/metrics/names", {"metric_name": "m"}, "unknown query parameter metric_name"),
            ("/api/v1/metrics/series", {"metric_name": "m\x00"}, "metric_name: NUL characters are not allowed"),
            ("/api/v1/metrics/names", {"service_name": "\x00"}, "service_name: NUL characters are not allowed"),
        ],
    )
    def test_bad_parameters_are_400_with_a_message(
        self, client: TestClient, tenant: Tenant, path: str, params: dict[str, str], message: str
    ) -> None:
        """Each malformed parameter is a 400 in the error body, saying what is wrong and what is accepted."""
        response = client.get(path, params=params, headers=_auth(tenant.read_key))
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]["message"]

    def test_keys_without_the_read_scope_are_refused(self, client: TestClient) -> None:
        """No key is 401 on both routes."""
        assert client.get("/api/v1/metrics/series", params={"metric_name": "m"}).status_code == 401
        assert client.get("/api/v1/metrics/names").status_code == 401


class TestMetricsTenantScoping:
    def test_license_a_sees_nothing_of_license_b(self, client: TestClient, tenant: Tenant, committed_engine: Engine) -> None:
        """B's samples are absent from A's series and names; asking for B's license is 403; B and an admin see them."""
        other = make_tenant(committed_engine)
        name = "secret_" + uuid.uuid4().hex[:8]
        _send(
            client,
            other,
            [{"metric_name": name, "value": 9.0, "host_name": "b-host", "timestamp": (HOUR + timedelta(minutes=1)).isoformat()}],
        )
        params = {"metric_name": name, "from": HOUR.isoformat(), "to": (HOUR + timedelta(hours=1)).isoformat(), "step": "1h"}

        def series(key: str, **extra: str) -> Any:
            return client.get("/api/v1/metrics/series", params={**params, **extra}, headers=_auth(key))

        def listed(key: str) -> list[str]:
            return [metric["metric_name"] for metric in client.get("/api/v1/metrics/names", headers=_auth(key)).json()["metrics"]]

        (line,) = series(tenant.read_key).json()["series"]
        assert line["group"] == {} and [value for _, value in line["points"]] == [None]
        assert series(tenant.read_key, group_by="host_name").json()["series"] == []
        assert name not in listed(tenant.read_key)
        for path in ("/api/v1/metrics/series", "/api/v1/metrics/names"):
            response = client.get(
                path,
                params={**params, "license_id": str(other.license_id)}
                if "series" in path
                else {"license_id": str(other.license_id)},
                headers=_auth(tenant.read_key),
            )
            assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
        assert [value for _, value in series(other.read_key).json()["series"][0]["points"]] == [9.0]
        assert name in listed(other.read_key)
        admin = admin_key(committed_engine)
        assert [value for _, value in series(admin).json()["series"][0]["points"]] == [9.0]
        assert [value for _, value in series(admin, license_id=str(tenant.license_id)).json()["series"][0]["points"]] == [None]
        assert name in listed(admin)
