"""OTLP metric data points to ``system_metrics`` rows (``core.ingest.metrics.compose``), one row per data point.

gauge -> gauge; monotonic sum -> counter (an increment); non-monotonic sum -> gauge when cumulative (a level),
counter with signed increments when delta; histogram and exponential histogram -> histogram (mean, percentiles
and the sketch of the interval's values); summary -> distribution. Delta points are increments as they are;
cumulative ones carry a ``CumulativePoint`` that the writer turns into the increment since the stream's last point.
Imports only the standard library, ``opentelemetry.proto`` and ``fernando_telemetry.core``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    DataPointFlags,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    SummaryDataPoint,
)

from fernando_telemetry.core.enums import MetricType
from fernando_telemetry.core.ingest.common import DecodeContext, ItemError, bounded, in_window, json_object
from fernando_telemetry.core.ingest.metrics import compose
from fernando_telemetry.core.ingest.rows import MetricRow
from fernando_telemetry.core.metric_points import (
    MAX_SAMPLE_COUNT,
    PERCENTILES,
    CumulativePoint,
    Histogram,
    Increment,
    histogram_increment,
)
from fernando_telemetry.core.otlp.attribution import license_of, user_of
from fernando_telemetry.core.otlp.batch import DecodedBatch
from fernando_telemetry.core.otlp.resources import ResourceFields, resource_fields
from fernando_telemetry.core.otlp.values import attribute_dict, clipped, unix_nano_datetime

__all__ = ["PERCENTILES", "metric_row", "metric_rows_from_request", "summary_percentiles"]

_QUANTILE_TOLERANCE = 1e-6
_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA

PointPb2 = NumberDataPoint | HistogramDataPoint | ExponentialHistogramDataPoint | SummaryDataPoint
_Measure = tuple[str, Increment | None, CumulativePoint | None]


def metric_rows_from_request(pb2_request: ExportMetricsServiceRequest, context: DecodeContext) -> DecodedBatch:
    """Decode every data point of an export request; points that cannot be stored become rejections.

    Points with nothing to store (flagged "no recorded value", or a delta histogram or summary of zero values)
    are skipped and counted in ``skipped_count``, not rejected.
    """
    batch = DecodedBatch("data point")
    index = 0
    for pb2_resource_metrics in pb2_request.resource_metrics:
        resource = resource_fields(pb2_resource_metrics.resource)
        for pb2_scope_metrics in pb2_resource_metrics.scope_metrics:
            for pb2_metric in pb2_scope_metrics.metrics:
                for pb2_point in _data_points(pb2_metric):
                    batch.add(index, metric_row, pb2_metric, pb2_point, resource, context)
                    index += 1
    return batch


def metric_row(pb2_metric: Metric, pb2_point: PointPb2, resource: ResourceFields, context: DecodeContext) -> MetricRow | None:
    """One data point as a row, None when it has nothing to store; raises ``ItemError`` naming the field at fault."""
    metric_name = clipped(pb2_metric.name.strip(), 200)
    if metric_name is None:
        raise ItemError("name", "is required: a metric needs a non-empty name")
    if pb2_point.flags & DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK:
        return None
    _check_bucket_counts(pb2_metric, pb2_point, context)
    time = in_window(_point_time(pb2_point, context.now), "time_unix_nano", context)
    measure = _measure(pb2_metric, pb2_point, time)
    if measure is None:
        return None
    metric_type, increment, point = measure
    labels = attribute_dict(pb2_point.attributes)
    return compose(
        metric_name=metric_name,
        metric_type=metric_type,
        unit=clipped(pb2_metric.unit, 32),
        service_name=resource.service_name,
        host_name=resource.host_name,
        instance_id=resource.instance_id,
        labels=json_object({"labels": labels}, "labels", context),
        user_id=user_of(labels, resource.attributes),
        license_id=license_of(context, labels, resource.attributes),
        time=time,
        increment=increment,
        point=point,
    )


def _check_bucket_counts(pb2_metric: Metric, pb2_point: PointPb2, context: DecodeContext) -> None:
    """Refuse a histogram point with more buckets than the bounds allow, by length alone, before any bucket is read.

    The work of a point (its buckets, their sketch, the stream state kept for it) grows with its bucket count,
    which a few bytes of gzip can make millions: it is bounded here, not by the body size.
    """
    bounds = context.bounds
    # the point's class follows the metric's kind (a histogram's points are HistogramDataPoints, ...)
    if isinstance(pb2_point, HistogramDataPoint):
        sent = len(pb2_point.explicit_bounds)
        if sent > bounds.max_histogram_bounds:
            raise ItemError(
                "explicit_bounds",
                f"has {sent} bounds; at most {bounds.max_histogram_bounds} are accepted per histogram point",
            )
        if len(pb2_point.bucket_counts) > bounds.max_histogram_bounds + 1:
            raise ItemError(
                "bucket_counts",
                f"has {len(pb2_point.bucket_counts)} counts; at most {bounds.max_histogram_bounds + 1} are accepted",
            )
    elif isinstance(pb2_point, ExponentialHistogramDataPoint):
        for side in ("positive", "negative"):
            sent = len(getattr(pb2_point, side).bucket_counts)
            if sent > bounds.max_exponential_buckets:
                raise ItemError(
                    f"{side}.bucket_counts",
                    f"has {sent} buckets; at most {bounds.max_exponential_buckets} per side are accepted "
                    "(the OpenTelemetry SDKs' default max_size is 160)",
                )


def summary_percentiles(quantile_values: Iterable[tuple[float, float]]) -> tuple[float | None, ...]:
    """p50/p90/p95/p99 from a summary's (quantile, value) pairs: a percentile the summary does not carry is None."""
    pairs = list(quantile_values)
    return tuple(
        next((value for q, value in pairs if abs(q - wanted) <= _QUANTILE_TOLERANCE and math.isfinite(value)), None)
        for wanted in PERCENTILES
    )


def _data_points(pb2_metric: Metric) -> Iterable[PointPb2]:
    kind = pb2_metric.WhichOneof("data")
    return getattr(pb2_metric, kind).data_points if kind else ()


def _start_time(pb2_point: PointPb2) -> datetime | None:
    return unix_nano_datetime(pb2_point.start_time_unix_nano) if pb2_point.start_time_unix_nano else None


def _measure(pb2_metric: Metric, pb2_point: PointPb2, time: datetime) -> _Measure | None:
    """The row's type and either its increment (stored as is) or its cumulative point (None: nothing to store)."""
    kind = pb2_metric.WhichOneof("data")
    start = _start_time(pb2_point)
    # the point's class follows the metric's kind: gauges and sums carry NumberDataPoints, and so on
    if isinstance(pb2_point, NumberDataPoint):
        value = _number(pb2_point)
        if kind == "gauge":
            return MetricType.GAUGE.value, Increment(value), None
        delta = pb2_metric.sum.aggregation_temporality == _DELTA
        if delta:  # an increment (signed when the sum is not monotonic)
            return MetricType.COUNTER.value, Increment(value, start_time=start), None
        if not pb2_metric.sum.is_monotonic:  # a cumulative up-down sum is a level
            return MetricType.GAUGE.value, Increment(value), None
        return MetricType.COUNTER.value, None, CumulativePoint("number", time, start, value=value)
    if isinstance(pb2_point, SummaryDataPoint):
        return _summary(pb2_point, time, start)
    if isinstance(pb2_point, HistogramDataPoint):
        histogram, temporality = _explicit(pb2_point), pb2_metric.histogram.aggregation_temporality
    else:
        histogram, temporality = _exponential(pb2_point), pb2_metric.exponential_histogram.aggregation_temporality
    return _histogram(pb2_point, histogram, time, start, delta=temporality == _DELTA)


def _number(pb2_point: NumberDataPoint) -> float:
    kind = pb2_point.WhichOneof("value")
    if kind is None:
        raise ItemError("value", "a number data point needs as_double or as_int")
    return bounded(getattr(pb2_point, kind), kind)


def _explicit(pb2_point: HistogramDataPoint) -> Histogram:
    for bound in pb2_point.explicit_bounds:
        bounded(bound, "explicit_bounds")
    histogram = Histogram(tuple(pb2_point.bucket_counts), bounds=tuple(pb2_point.explicit_bounds))
    try:
        histogram.buckets()  # checks the shape
    except ValueError as exc:
        raise ItemError("bucket_counts", str(exc)) from None
    return _bounded_total(histogram, "bucket_counts")


def _exponential(pb2_point: ExponentialHistogramDataPoint) -> Histogram:
    if not -10 <= pb2_point.scale <= 20:
        raise ItemError("scale", f"must be between -10 and 20, got {pb2_point.scale}")
    histogram = Histogram(
        tuple(pb2_point.positive.bucket_counts),
        scale=pb2_point.scale,
        offset=pb2_point.positive.offset,
        zero_count=pb2_point.zero_count,
        negative_offset=pb2_point.negative.offset,
        negative_counts=tuple(pb2_point.negative.bucket_counts),
    )
    return _bounded_total(histogram, "positive.bucket_counts")


def _bounded_total(histogram: Histogram, field: str) -> Histogram:
    """Bucket counts are uint64 on the wire and need not agree with ``count``: their sum is held to what
    ``count`` may be, so that no stored bucket count (a bigint) or running stream state can overflow."""
    total = histogram.total
    if total > MAX_SAMPLE_COUNT:
        raise ItemError(field, f"add up to {total}; a point may count at most {MAX_SAMPLE_COUNT} values")
    return histogram


def _histogram(
    pb2_point: HistogramDataPoint | ExponentialHistogramDataPoint,
    histogram: Histogram,
    time: datetime,
    start: datetime | None,
    *,
    delta: bool,
) -> _Measure | None:
    """A delta point is its own increment (its min and max are exact); a cumulative one goes to its stream."""
    total = _sum(pb2_point) if pb2_point.HasField("sum") else None
    minimum, maximum = _optional(pb2_point, "min"), _optional(pb2_point, "max")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ItemError("min", f"{minimum:g} is greater than max {maximum:g}")
    _count(pb2_point)
    if not delta:
        point = CumulativePoint(
            "histogram", time, start, histogram=histogram, count=pb2_point.count, total=total, minimum=minimum, maximum=maximum
        )
        return MetricType.HISTOGRAM.value, None, point
    if pb2_point.count == 0:
        return None
    increment = histogram_increment(
        histogram, count=pb2_point.count, total=total, start_time=start, minimum=minimum, maximum=maximum, exact=True
    )
    if increment is None:
        raise ItemError("sum", "a histogram without a sum needs bucket counts to estimate its mean")
    return MetricType.HISTOGRAM.value, increment, None


def _summary(pb2_point: SummaryDataPoint, time: datetime, start: datetime | None) -> _Measure | None:
    """Summaries are cumulative: their count and sum become increments; quantiles are kept as sent."""
    _count(pb2_point)
    for pb2_value in pb2_point.quantile_values:
        if math.isfinite(pb2_value.value):
            bounded(pb2_value.value, "quantile_values")
    point = CumulativePoint(
        "summary",
        time,
        start,
        count=pb2_point.count,
        total=_sum(pb2_point),
        percentiles=summary_percentiles((pb2_value.quantile, pb2_value.value) for pb2_value in pb2_point.quantile_values),
    )
    return MetricType.DISTRIBUTION.value, None, point


def _sum(pb2_point: HistogramDataPoint | ExponentialHistogramDataPoint | SummaryDataPoint) -> float:
    return bounded(pb2_point.sum, "sum")


def _count(pb2_point: HistogramDataPoint | ExponentialHistogramDataPoint | SummaryDataPoint) -> None:
    """A point's count must fit ``sample_count`` (a PostgreSQL integer), so that its mean times the stored count
    is its sum: a larger one is refused rather than clamped."""
    if pb2_point.count > MAX_SAMPLE_COUNT:
        raise ItemError("count", f"is {pb2_point.count}; a point may count at most {MAX_SAMPLE_COUNT} values")


def _optional(pb2_point: HistogramDataPoint | ExponentialHistogramDataPoint, field: Literal["min", "max"]) -> float | None:
    """An optional double (min, max) when present and finite."""
    if not pb2_point.HasField(field):
        return None
    value = getattr(pb2_point, field)
    return bounded(value, field) if math.isfinite(value) else None


def _point_time(pb2_point: PointPb2, now: datetime) -> datetime:
    """The point's time, else its start time, else now."""
    unix_nano = pb2_point.time_unix_nano or pb2_point.start_time_unix_nano
    return unix_nano_datetime(unix_nano) if unix_nano else now
