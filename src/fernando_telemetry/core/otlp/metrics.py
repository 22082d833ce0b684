"""OTLP metric data points to ``system_metrics`` rows, in the column order of ``core.ingest.metrics.COLUMNS``.

One row per data point: gauge -> gauge; sum -> counter (monotonic) or gauge; histogram and exponential
histogram -> histogram with the mean as value and interpolated percentiles; summary -> distribution.
Imports only the standard library, ``opentelemetry.proto`` and ``fernando_telemetry.core``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    DataPointFlags,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    SummaryDataPoint,
)

from fernando_telemetry.core.enums import MetricType
from fernando_telemetry.core.ingest.common import DecodeContext, ItemError, in_window, json_object
from fernando_telemetry.core.otlp.attribution import license_of, user_of
from fernando_telemetry.core.otlp.batch import DecodedBatch
from fernando_telemetry.core.otlp.percentiles import Bucket, bucket_mean, explicit_buckets, exponential_buckets, quantile
from fernando_telemetry.core.otlp.resources import ResourceFields, resource_fields
from fernando_telemetry.core.otlp.values import attribute_dict, clipped, unix_nano_datetime

__all__ = ["PERCENTILES", "metric_row", "metric_rows_from_request", "summary_percentiles"]

PERCENTILES = (0.5, 0.9, 0.95, 0.99)
"""The quantiles stored as p50, p90, p95, p99."""

_MAX_SAMPLE_COUNT = 2**31 - 1  # the column is a PostgreSQL integer
_QUANTILE_TOLERANCE = 1e-6

PointPb2 = NumberDataPoint | HistogramDataPoint | ExponentialHistogramDataPoint | SummaryDataPoint


@dataclass(frozen=True, slots=True)
class _Sample:
    """What a data point contributes beyond the shared columns."""

    metric_type: str
    value: float
    sample_count: int = 1
    percentiles: tuple[float | None, ...] = (None, None, None, None)


def metric_rows_from_request(pb2_request: ExportMetricsServiceRequest, context: DecodeContext) -> DecodedBatch:
    """Decode every data point of an export request; points that cannot be stored become rejections.

    Points with nothing to store (flagged "no recorded value", or a histogram or summary of zero values)
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


def metric_row(
    pb2_metric: Metric, pb2_point: PointPb2, resource: ResourceFields, context: DecodeContext
) -> tuple[Any, ...] | None:
    """One data point as a row, None when it has nothing to store; raises ``ItemError`` naming the field at fault."""
    metric_name = clipped(pb2_metric.name.strip(), 200)
    if metric_name is None:
        raise ItemError("name", "is required: a metric needs a non-empty name")
    if pb2_point.flags & DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK:
        return None
    sample = _sample(pb2_metric, pb2_point)
    if sample is None:
        return None
    labels = attribute_dict(pb2_point.attributes)
    p50, p90, p95, p99 = sample.percentiles
    return (
        metric_name,
        sample.metric_type,
        sample.value,
        clipped(pb2_metric.unit, 32),
        resource.service_name,
        resource.host_name,
        resource.instance_id,
        json_object({"labels": labels}, "labels", context),
        sample.sample_count,
        p50,
        p90,
        p95,
        p99,
        user_of(labels, resource.attributes),
        license_of(context, labels, resource.attributes),
        in_window(_point_time(pb2_point, context.now), "time_unix_nano", context),
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


def _sample(pb2_metric: Metric, pb2_point: PointPb2) -> _Sample | None:
    kind = pb2_metric.WhichOneof("data")
    if kind == "gauge":
        return _Sample(MetricType.GAUGE.value, _number(pb2_point))
    if kind == "sum":
        metric_type = MetricType.COUNTER if pb2_metric.sum.is_monotonic else MetricType.GAUGE
        return _Sample(metric_type.value, _number(pb2_point))
    if kind == "histogram":
        return _histogram(pb2_point, _explicit(pb2_point))
    if kind == "exponential_histogram":
        return _histogram(pb2_point, _exponential(pb2_point))
    return _summary(pb2_point)


def _number(pb2_point: NumberDataPoint) -> float:
    kind = pb2_point.WhichOneof("value")
    if kind is None:
        raise ItemError("value", "a number data point needs as_double or as_int")
    value = float(getattr(pb2_point, kind))
    if not math.isfinite(value):
        raise ItemError(kind, "must be a finite number (not NaN or infinity)")
    return value


def _explicit(pb2_point: HistogramDataPoint) -> list[Bucket]:
    try:
        return explicit_buckets(
            list(pb2_point.explicit_bounds),
            list(pb2_point.bucket_counts),
            minimum=_optional(pb2_point, "min"),
            maximum=_optional(pb2_point, "max"),
        )
    except ValueError as exc:
        raise ItemError("bucket_counts", str(exc)) from None


def _exponential(pb2_point: ExponentialHistogramDataPoint) -> list[Bucket]:
    if not -10 <= pb2_point.scale <= 20:
        raise ItemError("scale", f"must be between -10 and 20, got {pb2_point.scale}")
    return exponential_buckets(
        pb2_point.scale,
        zero_count=pb2_point.zero_count,
        positive_offset=pb2_point.positive.offset,
        positive_counts=list(pb2_point.positive.bucket_counts),
        negative_offset=pb2_point.negative.offset,
        negative_counts=list(pb2_point.negative.bucket_counts),
        minimum=_optional(pb2_point, "min"),
        maximum=_optional(pb2_point, "max"),
    )


def _histogram(pb2_point: HistogramDataPoint | ExponentialHistogramDataPoint, buckets: list[Bucket]) -> _Sample | None:
    """The mean (sum / count, or the bucket-midpoint estimate without a sum) and the interpolated percentiles."""
    if pb2_point.count == 0:
        return None
    mean = _mean(pb2_point) if pb2_point.HasField("sum") else bucket_mean(buckets)
    if mean is None:
        raise ItemError("sum", "a histogram without a sum needs bucket counts to estimate its mean")
    return _Sample(
        MetricType.HISTOGRAM.value,
        mean,
        min(pb2_point.count, _MAX_SAMPLE_COUNT),
        tuple(quantile(buckets, q) for q in PERCENTILES),
    )


def _summary(pb2_point: SummaryDataPoint) -> _Sample | None:
    if pb2_point.count == 0:
        return None
    return _Sample(
        MetricType.DISTRIBUTION.value,
        _mean(pb2_point),
        min(pb2_point.count, _MAX_SAMPLE_COUNT),
        summary_percentiles((pb2_value.quantile, pb2_value.value) for pb2_value in pb2_point.quantile_values),
    )


def _mean(pb2_point: HistogramDataPoint | ExponentialHistogramDataPoint | SummaryDataPoint) -> float:
    if not math.isfinite(pb2_point.sum):
        raise ItemError("sum", "must be a finite number (not NaN or infinity)")
    return pb2_point.sum / pb2_point.count


def _optional(pb2_point: HistogramDataPoint | ExponentialHistogramDataPoint, field: str) -> float | None:
    """An optional double (min, max) when present and finite."""
    if not pb2_point.HasField(field):
        return None
    value = getattr(pb2_point, field)
    return value if math.isfinite(value) else None


def _point_time(pb2_point: PointPb2, now: datetime) -> datetime:
    """The point's time, else its start time, else now."""
    unix_nano = pb2_point.time_unix_nano or pb2_point.start_time_unix_nano
    return unix_nano_datetime(unix_nano) if unix_nano else now
