"""observe() on real PostgreSQL: each of the four sources, windows, groups, filters, counter rates, tenant
scoping, user strings kept out of the SQL text, partition pruning, and many instants == one at a time."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.core.alert_condition import parse_condition
from fernando_telemetry.services import keys
from fernando_telemetry.storage.alert_queries import Observation, compile_observation, observe
from fernando_telemetry.storage.models import BusinessMetric, SystemMetric, TelemetryEvent, Trace

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
T = TODAY - timedelta(days=2) + timedelta(hours=12)
MINUTE = timedelta(minutes=1)


def license_of(session: Session) -> int:
    return keys.create_license(session, name=f"alerts-{uuid.uuid4().hex[:6]}")


def metric(session: Session, license_id: int | None, at: datetime, value: float, name: str = "cpu_usage", **fields: Any) -> None:
    session.add(
        SystemMetric(
            metric_name=name,
            metric_type=fields.pop("metric_type", "gauge"),
            value=value,
            timestamp=at,
            license_id=license_id,
            **fields,
        )
    )


def event(session: Session, license_id: int, at: datetime, event_type: str = "error_event", **fields: Any) -> None:
    session.add(
        TelemetryEvent(
            event_id=uuid.uuid4(),
            event_type=event_type,
            event_name=fields.pop("event_name", "thing"),
            event_timestamp=at,
            license_id=license_id,
            **fields,
        )
    )


def span(session: Session, license_id: int, at: datetime, duration_ms: float, **fields: Any) -> None:
    session.add(
        Trace(
            trace_id=uuid.uuid4().hex,
            span_id=uuid.uuid4().hex[:16],
            operation_name=fields.pop("operation_name", "GET /"),
            service_name=fields.pop("service_name", "api"),
            start_time=at,
            end_time=at + timedelta(milliseconds=duration_ms),
            duration_ms=duration_ms,
            license_id=license_id,
            **fields,
        )
    )


def values(observations: list[Observation]) -> dict[tuple[tuple[str, str], ...], tuple[float | None, int]]:
    return {tuple(sorted(o.group_key.items())): (o.value, o.points) for o in observations}


class TestSystemMetrics:
    def test_aggregations_over_the_window(self, session: Session) -> None:
        """Samples in (t - 5m, t] give avg/min/max/sum/count/p50; one at exactly t - 5m is outside, one at t inside."""
        license_id = license_of(session)
        metric(session, license_id, T - 5 * MINUTE, 1000.0)  # on the open edge: excluded
        for minutes, value in ((4, 10.0), (3, 20.0), (1, 30.0), (0, 40.0)):
            metric(session, license_id, T - minutes * MINUTE, value)
        metric(session, license_id, T + timedelta(seconds=1), 5000.0)  # after t: excluded
        session.flush()
        expected = {"avg": 25.0, "min": 10.0, "max": 40.0, "sum": 100.0, "count": 4.0, "p50": 25.0, "p90": 37.0}
        for aggregation, value in expected.items():
            condition = parse_condition({"metric": "cpu_usage", "aggregation": aggregation, "threshold": 0})
            [observation] = observe(session, condition, license_id=license_id, at=[T])[T]
            assert observation == Observation({}, pytest.approx(value), 4), aggregation

    def test_sample_count_weights_avg_sum_count(self, session: Session) -> None:
        """A histogram row of n samples weighs n, as in the metric series: its sum is value x n."""
        license_id = license_of(session)
        metric(session, license_id, T - MINUTE, 10.0, sample_count=3, metric_type="histogram")
        metric(session, license_id, T, 20.0, metric_type="histogram")
        session.flush()
        got = {
            aggregation: observe(
                session,
                parse_condition({"metric": "cpu_usage", "aggregation": aggregation, "threshold": 0}),
                license_id=license_id,
                at=[T],
            )[T][0].value
            for aggregation in ("avg", "sum", "count")
        }
        assert got == {"avg": pytest.approx(12.5), "sum": 50.0, "count": 4.0}

    def test_empty_window_is_no_data(self, session: Session) -> None:
        """Without group_by an empty window is one observation with no value and 0 points."""
        license_id = license_of(session)
        condition = parse_condition({"metric": "cpu_usage", "threshold": 80})
        assert observe(session, condition, license_id=license_id, at=[T]) == {T: [Observation({}, None, 0)]}

    def test_group_by_column_and_label_with_filters(self, session: Session) -> None:
        """Groups by host and labels.region; filters on service, a label list and a numeric label comparison."""
        license_id = license_of(session)
        metric(session, license_id, T, 90.0, host_name="a", service_name="api", labels={"region": "eu", "tier": 1})
        metric(session, license_id, T, 70.0, host_name="a", service_name="api", labels={"region": "us", "tier": 2})
        metric(session, license_id, T, 50.0, host_name="b", service_name="api", labels={"tier": 3})
        metric(session, license_id, T, 99.0, host_name="c", service_name="db", labels={"region": "eu", "tier": 1})
        metric(session, license_id, T, 11.0, host_name="d", service_name="api", labels={"region": "ap", "tier": "1"})
        session.flush()
        condition = parse_condition(
            {
                "metric": "cpu_usage",
                "threshold": 80,
                "group_by": ["host_name", "labels.region"],
                "filters": {"service_name": "api", "labels.tier": {"lte": 3}, "host_name": {"ne": "z"}},
            }
        )
        assert values(observe(session, condition, license_id=license_id, at=[T])[T]) == {
            (("host_name", "a"), ("labels.region", "eu")): (90.0, 1),
            (("host_name", "a"), ("labels.region", "us")): (70.0, 1),
            (("host_name", "b"), ("labels.region", "")): (50.0, 1),
        }
        in_regions = parse_condition(
            {"metric": "cpu_usage", "threshold": 0, "aggregation": "sum", "filters": {"labels.region": ["eu", "ap"]}}
        )
        assert observe(session, in_regions, license_id=license_id, at=[T])[T][0].value == 90.0 + 99.0 + 11.0
        not_in = parse_condition(
            {"metric": "cpu_usage", "threshold": 0, "aggregation": "count", "filters": {"host_name": {"not_in": ["a", "c"]}}}
        )
        assert observe(session, not_in, license_id=license_id, at=[T])[T][0].value == 2.0

    def test_counter_rate(self, session: Session) -> None:
        """rate: increments per second, each spread over its interval (start_time, timestamp]; an interval begun
        before the window adds its overlapping part; an increment without start_time counts at its timestamp."""
        license_id = license_of(session)
        # 120 over (-6m, -4m]: half of it inside (t - 5m, t]; then 60 per minute up to t
        metric(
            session,
            license_id,
            T - 4 * MINUTE,
            120.0,
            name="requests_total",
            metric_type="counter",
            host_name="a",
            start_time=T - 6 * MINUTE,
        )
        for minutes in (3, 2, 1, 0):
            metric(
                session,
                license_id,
                T - minutes * MINUTE,
                60.0,
                name="requests_total",
                metric_type="counter",
                host_name="a",
                start_time=T - (minutes + 1) * MINUTE,
            )
        metric(session, license_id, T, 30.0, name="requests_total", metric_type="counter", host_name="b")
        session.flush()
        condition = parse_condition({"metric": "requests_total", "aggregation": "rate", "threshold": 0, "window_minutes": 5})
        [observation] = observe(session, condition, license_id=license_id, at=[T])[T]
        assert observation.value == pytest.approx((60 + 4 * 60 + 30) / 300)
        assert observation.points == 6
        grouped = parse_condition(
            {"metric": "requests_total", "aggregation": "rate", "threshold": 0, "group_by": ["host_name"], "window_minutes": 5}
        )
        assert values(observe(session, grouped, license_id=license_id, at=[T])[T]) == {
            (("host_name", "a"),): (pytest.approx(300 / 300), 5),
            (("host_name", "b"),): (pytest.approx(30 / 300), 1),
        }

    def test_counter_rate_leaves_out_increments_before_the_window(self, session: Session) -> None:
        """An increment whose interval ended before the window adds nothing to it: no data."""
        license_id = license_of(session)
        metric(session, license_id, T - 10 * MINUTE, 500.0, name="c_total", metric_type="counter", start_time=T - 20 * MINUTE)
        session.flush()
        condition = parse_condition({"metric": "c_total", "aggregation": "rate", "threshold": 0})
        assert observe(session, condition, license_id=license_id, at=[T])[T] == [Observation({}, None, 0)]

    def test_sliding_windows_of_a_backtest_spread_like_the_series(self, session: Session) -> None:
        """Many instants at once (a backtest): each window gets the overlapping share of a long increment."""
        license_id = license_of(session)
        metric(session, license_id, T, 600.0, name="long_total", metric_type="counter", start_time=T - 10 * MINUTE)
        session.flush()
        condition = parse_condition({"metric": "long_total", "aggregation": "rate", "threshold": 0, "window_minutes": 5})
        instants = [T - 5 * MINUTE, T, T + 5 * MINUTE]
        answer = observe(session, condition, license_id=license_id, at=instants)
        assert [answer[instant][0].value for instant in instants] == [pytest.approx(1.0), pytest.approx(1.0), None]


class TestTelemetryEvents:
    def test_count_and_rate_of_one_type(self, session: Session) -> None:
        """Errors counted over the window (other types and times left out); rate is per second; no rows is 0."""
        license_id = license_of(session)
        for seconds in (10, 70, 250):
            event(session, license_id, T - timedelta(seconds=seconds))
        event(session, license_id, T - MINUTE, event_type="user_action")
        event(session, license_id, T - 10 * MINUTE)
        session.flush()
        count = parse_condition({"source": "telemetry_events", "filters": {"event_type": "error_event"}, "threshold": 1})
        got = observe(session, count, license_id=license_id, at=[T, T - 30 * MINUTE])
        assert got == {T: [Observation({}, 3.0, 3)], T - 30 * MINUTE: [Observation({}, 0.0, 0)]}
        rate = parse_condition(
            {"source": "telemetry_events", "aggregation": "rate", "filters": {"event_type": "error_event"}, "threshold": 1}
        )
        assert observe(session, rate, license_id=license_id, at=[T])[T][0].value == pytest.approx(3 / 300)

    def test_payload_field_aggregated(self, session: Session) -> None:
        """metric payload.amount: numbers aggregated, strings and missing keys ignored; points count the numbers."""
        license_id = license_of(session)
        for amount in (10, 20, 30):
            event(session, license_id, T - MINUTE, event_type="business_event", payload={"amount": amount, "plan": "pro"})
        event(session, license_id, T - MINUTE, event_type="business_event", payload={"amount": "lots", "plan": "pro"})
        event(session, license_id, T - MINUTE, event_type="business_event", payload={"plan": "pro"})
        event(session, license_id, T - MINUTE, event_type="business_event", payload={"amount": 1000, "plan": "free"})
        session.flush()
        condition = parse_condition(
            {
                "source": "telemetry_events",
                "metric": "payload.amount",
                "aggregation": "max",
                "filters": {"payload.plan": "pro"},
                "threshold": 1,
            }
        )
        assert observe(session, condition, license_id=license_id, at=[T])[T] == [Observation({}, 30.0, 3)]
        grouped = parse_condition(
            {
                "source": "telemetry_events",
                "metric": "payload.amount",
                "aggregation": "sum",
                "group_by": ["event_type"],
                "threshold": 1,
            }
        )
        assert values(observe(session, grouped, license_id=license_id, at=[T])[T]) == {
            (("event_type", "business_event"),): (1060.0, 4)
        }

    def test_duration_ms_percentile_and_group_by_name(self, session: Session) -> None:
        """p50 of duration_ms per event_name."""
        license_id = license_of(session)
        for duration in (10.0, 20.0, 30.0):
            event(session, license_id, T, event_type="performance_event", event_name="page_load", duration_ms=duration)
        event(session, license_id, T, event_type="performance_event", event_name="search", duration_ms=5.0)
        session.flush()
        condition = parse_condition(
            {
                "source": "telemetry_events",
                "metric": "duration_ms",
                "aggregation": "p50",
                "group_by": ["event_name"],
                "threshold": 1,
            }
        )
        assert values(observe(session, condition, license_id=license_id, at=[T])[T]) == {
            (("event_name", "page_load"),): (20.0, 3),
            (("event_name", "search"),): (5.0, 1),
        }


class TestTraces:
    def test_error_rate_per_service(self, session: Session) -> None:
        """error_rate is the share of spans with status error, per service."""
        license_id = license_of(session)
        for status in ("error", "ok", "ok", "unset"):
            span(session, license_id, T - MINUTE, 5.0, status=status, service_name="checkout")
        span(session, license_id, T - MINUTE, 5.0, status="ok", service_name="search")
        session.flush()
        condition = parse_condition(
            {"source": "traces", "aggregation": "error_rate", "group_by": ["service_name"], "threshold": 0.1}
        )
        assert values(observe(session, condition, license_id=license_id, at=[T])[T]) == {
            (("service_name", "checkout"),): (0.25, 4),
            (("service_name", "search"),): (0.0, 1),
        }

    def test_duration_filters(self, session: Session) -> None:
        """p95 of duration for 5xx server spans of one route (attributes key), by operation."""
        license_id = license_of(session)
        for duration in range(1, 101):
            span(
                session,
                license_id,
                T - MINUTE,
                float(duration),
                status_code=500 + duration % 3,
                operation_name="POST /pay",
                attributes={"http.route": "/pay"},
            )
        span(
            session,
            license_id,
            T - MINUTE,
            9999.0,
            status_code=200,
            operation_name="POST /pay",
            attributes={"http.route": "/pay"},
        )
        span(
            session,
            license_id,
            T - MINUTE,
            9999.0,
            status_code=503,
            operation_name="POST /pay",
            attributes={"http.route": "/other"},
        )
        session.flush()
        condition = parse_condition(
            {
                "source": "traces",
                "aggregation": "p95",
                "group_by": ["operation_name"],
                "filters": {"http_status_code": {"gte": 500, "lt": 600}, "attributes.http.route": "/pay"},
                "threshold": 1,
            }
        )
        [observation] = observe(session, condition, license_id=license_id, at=[T])[T]
        assert observation.group_key == {"operation_name": "POST /pay"}
        assert observation.value == pytest.approx(95.05) and observation.points == 100

    def test_count_without_spans_is_zero(self, session: Session) -> None:
        """A span count over an empty window is 0 (not no data)."""
        license_id = license_of(session)
        condition = parse_condition({"source": "traces", "aggregation": "count", "threshold": 1})
        assert observe(session, condition, license_id=license_id, at=[T])[T] == [Observation({}, 0.0, 0)]


class TestBusinessMetrics:
    def test_periods_that_ended_in_the_window(self, session: Session) -> None:
        """The KPI values whose period ended within the window, filtered by a dimension."""
        license_id = license_of(session)
        day = TODAY - timedelta(days=2)
        for offset, value, plan in ((1, "100.5", "pro"), (2, "80.5", "pro"), (1, "7", "free")):
            start = day - timedelta(days=offset)
            session.add(
                BusinessMetric(
                    metric_name="daily_revenue",
                    metric_category="revenue",
                    metric_value=Decimal(value),
                    period_start=start,
                    period_end=start + timedelta(days=1),
                    period_type="daily",
                    license_id=license_id,
                    dimensions={"plan": plan},
                )
            )
        session.flush()
        condition = parse_condition(
            {
                "source": "business_metrics",
                "metric": "daily_revenue",
                "operator": "<",
                "threshold": 90,
                "filters": {"dimensions.plan": "pro"},
            }
        )
        at = day + timedelta(minutes=5)  # yesterday's period (ending at `day`) is inside; the day before is not
        assert observe(session, condition, license_id=license_id, at=[at])[at] == [Observation({}, 100.5, 1)]
        two_days = parse_condition({**condition.to_config(), "window_minutes": 2 * 1440, "aggregation": "min"})
        assert observe(session, two_days, license_id=license_id, at=[at])[at] == [Observation({}, 80.5, 2)]

    def test_platform_wide_values_by_a_null_license_filter(self, session: Session) -> None:
        """A platform-wide rule picks the platform-wide KPI value (license_id null) apart from per-license ones."""
        license_id = license_of(session)
        name = f"kpi_{uuid.uuid4().hex[:8]}"
        end = TODAY - timedelta(days=2)
        for owner, value in ((license_id, "5"), (None, "50")):
            session.add(
                BusinessMetric(
                    metric_name=name,
                    metric_category="usage",
                    metric_value=Decimal(value),
                    period_start=end - timedelta(days=1),
                    period_end=end,
                    period_type="daily",
                    license_id=owner,
                )
            )
        session.flush()
        at = end + timedelta(minutes=1)
        every = parse_condition({"source": "business_metrics", "metric": name, "aggregation": "sum", "threshold": 1})
        assert observe(session, every, license_id=None, at=[at])[at] == [Observation({}, 55.0, 2)]
        overall = parse_condition({**every.to_config(), "filters": {"license_id": None}})
        assert observe(session, overall, license_id=None, at=[at])[at] == [Observation({}, 50.0, 1)]


class TestScoping:
    def test_license_sees_only_its_rows_and_none_sees_all(self, session: Session) -> None:
        """A license's condition counts only its rows; license None (platform-wide) counts every license."""
        first, second = license_of(session), license_of(session)
        name = f"m_{uuid.uuid4().hex[:8]}"
        metric(session, first, T, 1.0, name=name)
        metric(session, second, T, 2.0, name=name)
        metric(session, second, T, 3.0, name=name)
        session.flush()
        condition = parse_condition({"metric": name, "aggregation": "sum", "threshold": 0})
        assert observe(session, condition, license_id=first, at=[T])[T][0].value == 1.0
        assert observe(session, condition, license_id=second, at=[T])[T][0].value == 5.0
        assert observe(session, condition, license_id=None, at=[T])[T][0].value == 6.0
        per_license = parse_condition({"metric": name, "aggregation": "sum", "threshold": 0, "group_by": ["license_id"]})
        assert values(observe(session, per_license, license_id=None, at=[T])[T]) == {
            (("license_id", str(first)),): (1.0, 1),
            (("license_id", str(second)),): (5.0, 2),
        }


class TestSqlSafety:
    HOSTILE = "x'); DROP TABLE system_metrics; --"

    def test_user_strings_are_parameters(self, session: Session) -> None:
        """Metric names, JSON keys and values appear only as bind parameters, never in the SQL text."""
        condition = parse_condition(
            {
                "metric": self.HOSTILE,
                "threshold": 1,
                "filters": {f"labels.{self.HOSTILE}": self.HOSTILE, "service_name": [self.HOSTILE]},
                "group_by": [f"labels.{self.HOSTILE}"],
            }
        )
        statement, params = compile_observation(condition, license_id=1, instants=[T])
        assert "DROP" not in statement and self.HOSTILE not in statement
        assert self.HOSTILE in json.dumps(params, default=str)

    def test_hostile_key_matches_literally(self, session: Session) -> None:
        """A label key full of quotes is matched as that exact key."""
        license_id = license_of(session)
        metric(session, license_id, T, 42.0, labels={self.HOSTILE: "v"})
        metric(session, license_id, T, 1.0, labels={"x": "v"})
        session.flush()
        condition = parse_condition(
            {
                "metric": "cpu_usage",
                "threshold": 1,
                "filters": {f"labels.{self.HOSTILE}": "v"},
                "group_by": [f"labels.{self.HOSTILE}"],
            }
        )
        assert values(observe(session, condition, license_id=license_id, at=[T])[T]) == {
            ((f"labels.{self.HOSTILE}", "v"),): (42.0, 1)
        }


def _scanned_relations(session: Session, condition_config: dict[str, Any], instants: list[datetime]) -> set[str]:
    statement, params = compile_observation(parse_condition(condition_config), license_id=1, instants=instants)
    plan = session.execute(text("EXPLAIN (FORMAT JSON) " + statement), params).scalar_one()
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node:
            found.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


@pytest.mark.single_node(
    reason="reads partition names from the plan; on Citus the plan is a distributed scan whose tasks name shards"
)
@pytest.mark.parametrize(
    ("config", "table"),
    [
        ({"metric": "cpu_usage", "threshold": 1}, "system_metrics"),
        ({"metric": "c", "aggregation": "rate", "threshold": 1}, "system_metrics"),
        ({"source": "telemetry_events", "threshold": 1}, "telemetry_events"),
        ({"source": "traces", "aggregation": "error_rate", "threshold": 1}, "traces"),
    ],
)
def test_partitions_are_pruned(session: Session, config: dict[str, Any], table: str) -> None:
    """An evaluation reads only the daily partitions its windows touch (the time range is on the partition key)."""
    one_day = _scanned_relations(session, config, [T])
    assert one_day == {f"{table}_p{T:%Y%m%d}"}
    across_midnight = _scanned_relations(session, config, [TODAY + timedelta(minutes=2), TODAY + timedelta(hours=3)])
    assert across_midnight == {f"{table}_p{TODAY - timedelta(days=1):%Y%m%d}", f"{table}_p{TODAY:%Y%m%d}"}


def test_many_instants_equal_one_at_a_time(session: Session) -> None:
    """observe over 40 instants in one query answers exactly what 40 single-instant queries answer."""
    rng = random.Random(5)
    license_id = license_of(session)
    start = T - timedelta(hours=1)
    for _ in range(300):
        at = start + timedelta(seconds=rng.randrange(0, 3600))
        metric(session, license_id, at, rng.uniform(0, 100), host_name=rng.choice("abc"))
        metric(
            session,
            license_id,
            at,
            float(rng.randrange(0, 1000)),
            name="hits_total",
            metric_type="counter",
            host_name=rng.choice("ab"),
        )
        event(session, license_id, at, event_type=rng.choice(["error_event", "user_action"]), payload={"n": rng.randrange(10)})
        span(
            session,
            license_id,
            at,
            rng.uniform(1, 500),
            status=rng.choice(["ok", "error", "unset"]),
            service_name=rng.choice(["a", "b"]),
        )
    session.flush()
    instants = [start + timedelta(seconds=90 * k) for k in range(40)]
    configs = [
        {"metric": "cpu_usage", "aggregation": "p90", "group_by": ["host_name"], "threshold": 1},
        {"metric": "hits_total", "aggregation": "rate", "group_by": ["host_name"], "threshold": 1, "window_minutes": 3},
        {"source": "telemetry_events", "metric": "payload.n", "aggregation": "avg", "threshold": 1, "window_minutes": 7},
        {"source": "telemetry_events", "aggregation": "count", "group_by": ["event_type"], "threshold": 1},
        {"source": "traces", "aggregation": "error_rate", "group_by": ["service_name"], "threshold": 1, "window_minutes": 2},
    ]
    for config in configs:
        condition = parse_condition(config)
        together = observe(session, condition, license_id=license_id, at=instants)
        assert sum(len(observations) for observations in together.values()) > len(instants) // 2
        for instant in instants:
            assert together[instant] == observe(session, condition, license_id=license_id, at=[instant])[instant], (
                config,
                instant,
            )
