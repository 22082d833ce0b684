"""OTLP metric data points to ``system_metrics`` rows: one row per point, by metric type and temporality.

Cumulative points leave the decoder with their ``CumulativePoint``; ``rows`` completes them as the first point
of a new stream (what the writer does for a stream it has not seen), so every row here is the row stored."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
    Summary,
    SummaryDataPoint,
)

from fernando_telemetry.core.ingest import metrics as native_metrics
from fernando_telemetry.core.ingest.common import IngestBounds, decode_items
from fernando_telemetry.core.metric_points import advance
from fernando_telemetry.core.otlp import metric_rows_from_request
from fernando_telemetry.core.otlp.metrics import summary_percentiles
from tests.core.otlp.support import NOW, NOW_NS, context, key_values, metrics_request, ns

NO_RECORDED_VALUE = 1


def gauge(*points: NumberDataPoint, name: str = "queue.depth", unit: str = "{item}") -> Metric:
    return Metric(name=name, unit=unit, gauge=Gauge(data_points=list(points)))


def point(value: float | int = 3.5, **fields: Any) -> NumberDataPoint:
    attributes = fields.pop("attributes", {})
    number = {"as_int": value} if isinstance(value, int) else {"as_double": value}
    return NumberDataPoint(attributes=key_values(attributes), **{"time_unix_nano": NOW_NS, **number, **fields})


DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def stored(row: tuple[Any, ...]) -> dict[str, Any] | None:
    """The row as stored: a cumulative point completed as its new stream's first point (None: nothing stored)."""
    if isinstance(row, native_metrics.CumulativeMetricRow):
        increment, _ = advance(None, row.point)
        if increment is None:
            return None
        row = native_metrics.completed(row, increment)
    assert isinstance(row, native_metrics.MetricRow)
    return row._asdict()


def rows(*pb2_metrics: Metric, resource: dict[str, Any] | None = None, **context_options: Any) -> list[dict[str, Any]]:
    batch = metric_rows_from_request(metrics_request(*pb2_metrics, resource=resource), context(**context_options))
    assert batch.rejections == []
    return [row for row in map(stored, batch.rows) if row is not None]


def one(pb2_metric: Metric, **options: Any) -> dict[str, Any]:
    (row,) = rows(pb2_metric, **options)
    return row


def rejected(pb2_metric: Metric) -> tuple[str | None, str]:
    batch = metric_rows_from_request(metrics_request(pb2_metric), context())
    assert batch.rows == []
    (only,) = batch.rejections
    return only.field, only.reason


class TestCommonColumns:
    def test_a_gauge_point_fills_every_column_like_the_native_decoder(self) -> None:
        """A gauge point's row equals the native API's row for the same sample."""
        pb2_metric = gauge(point(0.75, attributes={"queue": "mail"}), name="queue.fill", unit="1")
        native_item = {
            "metric_name": "queue.fill",
            "metric_type": "gauge",
            "value": 0.75,
            "unit": "1",
            "service_name": "checkout",
            "host_name": "web-1",
            "labels": {"queue": "mail"},
            "timestamp": NOW.isoformat(),
        }
        native_rows, _, native_rejections = decode_items([native_item], native_metrics.decode, context())
        assert native_rejections == []
        assert metric_rows_from_request(metrics_request(pb2_metric), context()).rows == native_rows

    def test_resource_names_service_host_and_instance(self) -> None:
        """service.name, host.name and service.instance.id fill service_name, host_name, instance_id."""
        row = one(gauge(point()), resource={"service.name": "api", "host.name": "h1", "service.instance.id": "pod-7"})
        assert (row["service_name"], row["host_name"], row["instance_id"]) == ("api", "h1", "pod-7")

    def test_labels_are_the_point_attributes_only(self) -> None:
        """labels hold the data point's attributes, not the resource's."""
        row = one(gauge(point(attributes={"route": "/x", "code": 200})), resource={"service.name": "api", "region": "eu"})
        assert json.loads(row["labels"]) == {"route": "/x", "code": 200}

    def test_name_and_unit(self) -> None:
        """metric.name is metric_name and metric.unit is unit; an empty unit is NULL."""
        assert (one(gauge(point(), name="http.server.duration", unit="ms")))["unit"] == "ms"
        assert one(gauge(point(), unit=""))["unit"] is None

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"time_unix_nano": ns(NOW - timedelta(minutes=5))}, NOW - timedelta(minutes=5)),
            ({"time_unix_nano": 0, "start_time_unix_nano": ns(NOW - timedelta(minutes=9))}, NOW - timedelta(minutes=9)),
            ({"time_unix_nano": 0}, NOW),
        ],
    )
    def test_time_is_the_point_time_then_its_start_then_now(self, fields: dict[str, Any], expected: Any) -> None:
        """The sample time is time_unix_nano, else start_time_unix_nano, else now."""
        assert one(gauge(point(**fields)))["timestamp"] == expected

    def test_a_point_outside_the_window_is_rejected(self) -> None:
        """A point older than the accepted window is rejected naming time_unix_nano."""
        field, reason = rejected(gauge(point(time_unix_nano=ns(NOW - timedelta(days=40)))))
        assert field == "time_unix_nano"
        assert "older than the accepted window" in reason

    def test_user_and_admin_license_come_from_the_labels_then_the_resource(self) -> None:
        """enduser.id and (for admin keys) fernando.license_id are read from the point, then the resource."""
        row = one(gauge(point(attributes={"enduser.id": "u-9"})), resource={"fernando.license_id": 3}, is_admin=True)
        assert (row["user_id"], row["license_id"]) == ("u-9", 3)
        assert one(gauge(point()))["license_id"] == 7

    def test_a_metric_without_a_name_rejects_its_points(self) -> None:
        """Every point of a nameless metric is rejected."""
        batch = metric_rows_from_request(metrics_request(gauge(point(), point(), name="")), context())
        assert [(rejection.index, rejection.field) for rejection in batch.rejections] == [(0, "name"), (1, "name")]


class TestGaugeAndSum:
    @pytest.mark.parametrize(("value", "expected"), [(3.5, 3.5), (12, 12.0), (-4, -4.0)])
    def test_a_gauge_point_is_one_gauge_row(self, value: float | int, expected: float) -> None:
        """A gauge point, double or integer, is a gauge row with that value and sample_count 1."""
        row = one(gauge(point(value)))
        assert (row["metric_type"], row["value"], row["sample_count"]) == ("gauge", expected, 1)
        assert (row["p50"], row["p90"], row["p95"], row["p99"]) == (None, None, None, None)

    @pytest.mark.parametrize(
        ("is_monotonic", "metric_type"),
        [(True, "counter"), (False, "gauge")],
    )
    def test_a_cumulative_sum_is_a_counter_when_monotonic(self, is_monotonic: bool, metric_type: str) -> None:
        """A cumulative monotonic sum is a counter increment (a new stream's first point: all of it since its start);
        a cumulative up-down sum is a gauge, its value the level as sent."""
        pb2_metric = Metric(
            name="requests",
            sum=Sum(
                data_points=[point(1200, start_time_unix_nano=ns(NOW - timedelta(seconds=60)))],
                is_monotonic=is_monotonic,
                aggregation_temporality=CUMULATIVE,
            ),
        )
        row = one(pb2_metric)
        assert (row["metric_type"], row["value"]) == (metric_type, 1200.0)
        if is_monotonic:
            assert (row["start_time"], row["cumulative_value"]) == (NOW - timedelta(seconds=60), 1200.0)
        else:
            assert (row["start_time"], row["cumulative_value"]) == (None, None)

    @pytest.mark.parametrize("is_monotonic", [True, False])
    def test_a_delta_sum_is_a_counter_increment_signed_when_not_monotonic(self, is_monotonic: bool) -> None:
        """A delta sum is an increment as sent, over (start, time]; an up-down one keeps its sign."""
        pb2_metric = Metric(
            name="queue.changes",
            sum=Sum(
                data_points=[point(-7 if not is_monotonic else 7, start_time_unix_nano=ns(NOW - timedelta(seconds=10)))],
                is_monotonic=is_monotonic,
                aggregation_temporality=DELTA,
            ),
        )
        row = one(pb2_metric)
        assert (row["metric_type"], row["value"]) == ("counter", 7.0 if is_monotonic else -7.0)
        assert (row["start_time"], row["cumulative_value"]) == (NOW - timedelta(seconds=10), None)

    def test_a_cumulative_counter_without_a_start_is_a_baseline(self) -> None:
        """Without a start time the first point of a stream only sets its baseline: an increment of 0, total kept."""
        pb2_metric = Metric(
            name="requests", sum=Sum(data_points=[point(1200)], is_monotonic=True, aggregation_temporality=CUMULATIVE)
        )
        row = one(pb2_metric)
        assert (row["value"], row["start_time"], row["cumulative_value"]) == (0.0, None, 1200.0)

    def test_every_point_is_a_row(self) -> None:
        """Each data point of a metric becomes its own row, in order."""
        assert [row["value"] for row in rows(gauge(point(1.0), point(2.0), point(3.0)))] == [1.0, 2.0, 3.0]

    @pytest.mark.parametrize(
        ("pb2_point", "field"),
        [
            (NumberDataPoint(time_unix_nano=NOW_NS), "value"),
            (NumberDataPoint(time_unix_nano=NOW_NS, as_double=math.nan), "as_double"),
            (NumberDataPoint(time_unix_nano=NOW_NS, as_double=math.inf), "as_double"),
        ],
    )
    def test_a_point_without_a_finite_value_is_rejected(self, pb2_point: NumberDataPoint, field: str) -> None:
        """A number point with no value, NaN or infinity is rejected."""
        assert rejected(gauge(pb2_point))[0] == field

    def test_a_point_flagged_no_recorded_value_is_skipped(self) -> None:
        """A point flagged "no recorded value" is neither stored nor rejected."""
        batch = metric_rows_from_request(metrics_request(gauge(point(flags=NO_RECORDED_VALUE), point(2.0))), context())
        assert ([row[2] for row in batch.rows], batch.rejections, batch.skipped_count) == ([2.0], [], 1)
        assert batch.indexes == [1]


class TestHistogram:
    def histogram(self, **fields: Any) -> Metric:
        values = {
            "time_unix_nano": NOW_NS,
            "count": 10,
            "sum": 250.0,
            "explicit_bounds": [10, 20, 50],
            "bucket_counts": [2, 4, 3, 1],
        }
        temporality = fields.pop("temporality", DELTA)
        values.update(fields)
        return Metric(
            name="http.server.request.duration",
            unit="ms",
            histogram=Histogram(data_points=[HistogramDataPoint(**values)], aggregation_temporality=temporality),
        )

    def test_a_histogram_point_is_mean_count_and_interpolated_percentiles(self) -> None:
        """value = sum / count, sample_count = count, p50..p99 interpolated in the buckets."""
        row = one(self.histogram())
        assert (row["metric_type"], row["value"], row["sample_count"]) == ("histogram", 25.0, 10)
        assert (row["p50"], row["p90"], row["p95"], row["p99"]) == pytest.approx((17.5, 50, 50, 50))

    def test_min_and_max_close_the_open_buckets(self) -> None:
        """A point's min and max bound the first and the overflow bucket."""
        row = one(self.histogram(min=2.0, max=80.0))
        assert (row["p50"], row["p90"], row["p95"], row["p99"]) == pytest.approx((17.5, 50, 65, 77))

    def test_without_a_sum_the_mean_is_estimated_from_the_buckets(self) -> None:
        """A histogram without sum takes the bucket-midpoint mean as its value."""
        pb2_metric = self.histogram()
        pb2_metric.histogram.data_points[0].ClearField("sum")
        assert one(pb2_metric)["value"] == pytest.approx(22.5)

    def test_a_histogram_of_nothing_is_skipped(self) -> None:
        """A point with count 0 has no mean and is skipped, not rejected."""
        batch = metric_rows_from_request(metrics_request(self.histogram(count=0, sum=0.0, bucket_counts=[0, 0, 0, 0])), context())
        assert (batch.rows, batch.rejections, batch.skipped_count) == ([], [], 1)

    def test_a_histogram_without_buckets_has_no_percentiles(self) -> None:
        """Count and sum without buckets give the mean and no percentiles."""
        row = one(self.histogram(explicit_bounds=[], bucket_counts=[]))
        assert (row["value"], row["p50"], row["p99"]) == (25.0, None, None)

    @pytest.mark.parametrize(
        ("fields", "field", "reason"),
        [
            ({"bucket_counts": [1, 2]}, "bucket_counts", "with 3 explicit_bounds it must have 4"),
            ({"explicit_bounds": [50, 20, 10]}, "bucket_counts", "strictly increasing"),
            ({"sum": math.nan}, "sum", "finite"),
        ],
    )
    def test_an_inconsistent_histogram_is_rejected(self, fields: dict[str, Any], field: str, reason: str) -> None:
        """Counts not matching the bounds, unordered bounds or a NaN sum reject the point."""
        found_field, found_reason = rejected(self.histogram(**fields))
        assert found_field == field
        assert reason in found_reason

    def test_a_huge_count_is_refused(self) -> None:
        """A count past PostgreSQL's integer is refused (clamping it would make the stored sum wrong)."""
        field, reason = rejected(self.histogram(count=2**40, sum=2.0**41))
        assert field == "count" and "at most 2147483647" in reason


class TestExponentialHistogram:
    def exponential(self, **fields: Any) -> Metric:
        values = {
            "time_unix_nano": NOW_NS,
            "count": 4,
            "sum": 13.0,
            "scale": 0,
            "positive": ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[1, 2, 1]),
        }
        values.update(fields)
        return Metric(
            name="latency",
            exponential_histogram=ExponentialHistogram(
                data_points=[ExponentialHistogramDataPoint(**values)], aggregation_temporality=DELTA
            ),
        )

    def test_an_exponential_point_is_a_histogram_row(self) -> None:
        """value = sum / count, sample_count = count, percentiles interpolated in the base-2**(2**-scale) buckets."""
        row = one(self.exponential())
        assert (row["metric_type"], row["value"], row["sample_count"]) == ("histogram", 3.25, 4)
        assert (row["p50"], row["p90"], row["p95"], row["p99"]) == pytest.approx((3, 6.4, 7.2, 7.84))

    def test_negative_and_zero_buckets_count(self) -> None:
        """Negative, zero and positive buckets all take part in the ranks."""
        row = one(
            self.exponential(
                count=4,
                sum=1.0,
                zero_count=1,
                negative=ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[2]),
                positive=ExponentialHistogramDataPoint.Buckets(offset=1, bucket_counts=[1]),
            )
        )
        assert (row["p50"], row["p90"], row["p95"], row["p99"]) == pytest.approx((-1, 3.2, 3.6, 3.92))

    def test_max_narrows_the_last_bucket(self) -> None:
        """The recorded max bounds the highest bucket."""
        row = one(self.exponential(max=5.0))
        assert (row["p90"], row["p99"]) == pytest.approx((4.6, 4.96))

    @pytest.mark.parametrize("side", ["positive", "negative"])
    def test_a_side_over_the_bucket_limit_is_rejected_naming_it(self, side: str) -> None:
        """More than ``max_exponential_buckets`` counts on either side reject the point before any bucket is read."""
        limit = IngestBounds().max_exponential_buckets
        over = ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[0] * limit + [4])
        field, reason = rejected(self.exponential(**{side: over}))
        assert field == f"{side}.bucket_counts" and reason.startswith(f"has {limit + 1} buckets; at most {limit} per side")
        at_limit = ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[0] * (limit - 1) + [4])
        assert one(self.exponential(**{side: at_limit}))["sample_count"] == 4

    def test_a_scale_outside_the_protocol_range_is_rejected(self) -> None:
        """A scale outside -10..20 is rejected."""
        assert rejected(self.exponential(scale=40)) == ("scale", "must be between -10 and 20, got 40")


class TestSummary:
    def summary(self, quantiles: list[tuple[float, float]], **fields: Any) -> Metric:
        values = [SummaryDataPoint.ValueAtQuantile(quantile=q, value=v) for q, v in quantiles]
        data_point = SummaryDataPoint(
            time_unix_nano=NOW_NS,
            start_time_unix_nano=ns(NOW - timedelta(seconds=60)),
            count=20,
            sum=300.0,
            quantile_values=values,
            **fields,
        )
        return Metric(name="rpc.duration", summary=Summary(data_points=[data_point]))

    def test_a_summary_point_is_a_distribution(self) -> None:
        """A summary is a distribution: value = sum / count, sample_count = count, percentiles as the summary gives them."""
        row = one(self.summary([(0.0, 1.0), (0.5, 12.0), (0.9, 30.0), (0.95, 41.0), (0.99, 70.0), (1.0, 90.0)]))
        assert (row["metric_type"], row["value"], row["sample_count"]) == ("distribution", 15.0, 20)
        assert (row["p50"], row["p90"], row["p95"], row["p99"]) == (12.0, 30.0, 41.0, 70.0)

    @pytest.mark.parametrize(
        ("quantiles", "expected"),
        [
            ([(0.5, 12.0)], (12.0, None, None, None)),
            ([(0.25, 5.0), (0.75, 20.0)], (None, None, None, None)),
            ([(0.9000000001, 30.0), (0.99, math.nan)], (None, 30.0, None, None)),
            ([], (None, None, None, None)),
        ],
    )
    def test_only_the_quantiles_the_summary_carries_are_kept(self, quantiles: list[tuple[float, float]], expected: tuple) -> None:
        """A percentile the summary does not carry (within 1e-6), or carries as NaN, is NULL; none is invented."""
        assert summary_percentiles(quantiles) == expected

    def test_an_empty_summary_stores_nothing(self) -> None:
        """A summary point of zero values goes to its stream (it is cumulative) but stores no row."""
        pb2_metric = self.summary([])
        pb2_metric.summary.data_points[0].count = 0
        batch = metric_rows_from_request(metrics_request(pb2_metric), context())
        assert (len(batch.rows), batch.rejections) == (1, [])
        assert rows(pb2_metric) == []


class TestPartialSuccess:
    def test_one_bad_point_is_rejected_and_counted(self) -> None:
        """A bad point among good ones is rejected alone; the message names data point and reason."""
        batch = metric_rows_from_request(
            metrics_request(gauge(point(1.0), NumberDataPoint(time_unix_nano=NOW_NS), point(3.0))), context()
        )
        assert (len(batch.rows), batch.rejections_count, batch.indexes) == (2, 1, [0, 2])
        assert batch.message == "rejected 1 of 3 data points: data point 1: value: a number data point needs as_double or as_int"

    def test_positions_count_points_across_metrics(self) -> None:
        """Rejection indexes count data points across all metrics of the request."""
        batch = metric_rows_from_request(metrics_request(gauge(point(), point()), gauge(point(math.nan))), context())
        assert [rejection.index for rejection in batch.rejections] == [2]
