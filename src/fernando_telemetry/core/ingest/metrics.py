"""``system_metrics`` items of ``POST /api/v1/system-metrics``, and the row every metric decoder builds.

A decoded row is a ``MetricRow`` stored as it is, or a ``CumulativeMetricRow``: a point of a cumulative stream,
whose increment the writer computes from the stream's state (``storage.metric_streams``) and puts in with
``completed``; its ``stream_key`` is hashed at decode so the writer's thread does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fernando_telemetry.core.enums import MetricType
from fernando_telemetry.core.ingest.common import (
    DecodeContext,
    IngestBounds,
    ItemError,
    bounded,
    check_fields,
    enum_value,
    finite_number,
    in_window,
    integer,
    json_object,
    license_ref,
    optional_text,
    required_text,
    timestamp,
    user_ref,
)
from fernando_telemetry.core.ingest.rows import CumulativeMetricRow, MetricRow
from fernando_telemetry.core.ingest.rows import metric_stream_key as stream_key
from fernando_telemetry.core.metric_points import (
    MAX_SAMPLE_COUNT,
    CumulativePoint,
    Histogram,
    Increment,
    histogram_increment,
    samples_increment,
)

__all__ = [
    "COLUMNS",
    "DISTRIBUTION_TYPES",
    "FIELDS",
    "MAX_SAMPLES",
    "CumulativeMetricRow",
    "MetricRow",
    "completed",
    "compose",
    "decode",
    "stream_key",
]

COLUMNS = MetricRow._fields
"""The COPY columns, in row order."""
FIELDS = frozenset(COLUMNS) - {"sketch_keys", "sketch_counts", "cumulative_value"} | {
    "temporality",
    "buckets",
    "samples",
}
DISTRIBUTION_TYPES = frozenset({MetricType.HISTOGRAM.value, MetricType.TIMER.value, MetricType.DISTRIBUTION.value})
MAX_SAMPLES = IngestBounds().max_samples
"""Raw values one item may carry in ``samples`` by default (setting ``ingest_max_samples``)."""


def compose(
    *,
    metric_name: str,
    metric_type: str,
    unit: str | None,
    service_name: str | None,
    host_name: str | None,
    instance_id: str | None,
    labels: str,
    user_id: str | None,
    license_id: int,
    time: datetime,
    increment: Increment | None,
    point: CumulativePoint | None = None,
) -> MetricRow:
    """A decoded row: ``increment`` stored as it is, or (``point`` given) a placeholder the stream state completes."""
    measure = increment or Increment(0.0)
    p50, p90, p95, p99 = measure.percentiles
    row = MetricRow(
        metric_name=metric_name,
        metric_type=metric_type,
        value=measure.value,
        unit=unit,
        service_name=service_name,
        host_name=host_name,
        instance_id=instance_id,
        labels=labels,
        sample_count=measure.sample_count,
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        user_id=user_id,
        license_id=license_id,
        timestamp=time,
        start_time=measure.start_time,
        sketch_keys=measure.sketch_keys,
        sketch_counts=measure.sketch_counts,
        min_value=measure.minimum,
        max_value=measure.maximum,
        cumulative_value=measure.cumulative_value,
    )
    return row if point is None else CumulativeMetricRow.of(row, point)


def completed(row: MetricRow, increment: Increment) -> MetricRow:
    """The COPY row of a cumulative point with its increment filled in."""
    p50, p90, p95, p99 = increment.percentiles
    # MetricRow._make: the stored row is a plain MetricRow (``_replace`` on the subclass would keep its type)
    return MetricRow._make(row)._replace(
        value=increment.value,
        sample_count=increment.sample_count,
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        start_time=increment.start_time,
        sketch_keys=increment.sketch_keys,
        sketch_counts=increment.sketch_counts,
        min_value=increment.minimum,
        max_value=increment.maximum,
        cumulative_value=increment.cumulative_value,
    )


def decode(item: Mapping[str, Any], context: DecodeContext) -> MetricRow:
    check_fields(item, FIELDS)
    metric_type = enum_value(item, "metric_type", MetricType, MetricType.GAUGE)
    time = in_window(timestamp(item, "timestamp", default=context.now), "timestamp", context)
    start_time = timestamp(item, "start_time") if item.get("start_time") is not None else None
    if start_time is not None and start_time > time:
        raise ItemError("start_time", f"{start_time.isoformat()} is after the timestamp {time.isoformat()}")
    increment, point = _measure(item, metric_type, time, start_time, context.bounds)
    return compose(
        metric_name=required_text(item, "metric_name", 200),
        metric_type=metric_type,
        unit=optional_text(item, "unit", 32),
        service_name=optional_text(item, "service_name", 100),
        host_name=optional_text(item, "host_name", 255),
        instance_id=optional_text(item, "instance_id", 255),
        labels=json_object(item, "labels", context),
        user_id=user_ref(item),
        license_id=license_ref(item, context),
        time=time,
        increment=increment,
        point=point,
    )


def _measure(
    item: Mapping[str, Any], metric_type: str, time: datetime, start_time: datetime | None, bounds: IngestBounds
) -> tuple[Increment | None, CumulativePoint | None]:
    temporality = item.get("temporality")
    if temporality is not None and temporality not in ("cumulative", "delta"):
        raise ItemError("temporality", "must be 'cumulative' or 'delta'")
    if metric_type == MetricType.GAUGE.value:
        for field in ("temporality", "start_time", "buckets", "samples"):
            if item.get(field) is not None:
                raise ItemError(field, "applies to counters and histograms, not to a gauge (a level has no interval)")
        return _plain(item, None), None
    if metric_type == MetricType.COUNTER.value:
        for field in ("buckets", "samples"):
            if item.get(field) is not None:
                raise ItemError(field, "applies to histogram, timer and distribution items, not to a counter")
        value = finite_number(item, "value", required=True)
        assert value is not None
        if temporality == "delta":
            return _plain(item, start_time), None
        return None, CumulativePoint("number", time, start_time, value=value)
    if item.get("buckets") is not None and item.get("samples") is not None:
        raise ItemError("samples", "send either buckets or samples, not both")
    if item.get("samples") is not None:
        if temporality == "cumulative":
            raise ItemError("temporality", "samples are the values of one interval: 'delta' (the default), or send buckets")
        return _samples(item, start_time, bounds.max_samples), None
    if item.get("buckets") is not None:
        return _buckets(item, time, start_time, bounds.max_histogram_bounds, cumulative=temporality == "cumulative")
    if temporality == "cumulative":
        raise ItemError("temporality", "a cumulative histogram needs its buckets (the running counts)")
    return _plain(item, start_time), None


def _plain(item: Mapping[str, Any], start_time: datetime | None) -> Increment:
    """An item as sent: value, sample_count, percentiles and extremes."""
    value = finite_number(item, "value", required=True)
    assert value is not None
    minimum, maximum = _extremes(item)
    return Increment(
        value,
        start_time=start_time,
        sample_count=integer(item, "sample_count", minimum=1, maximum=MAX_SAMPLE_COUNT, default=1) or 1,
        percentiles=tuple(finite_number(item, field) for field in ("p50", "p90", "p95", "p99")),
        minimum=minimum,
        maximum=maximum,
    )


def _extremes(item: Mapping[str, Any]) -> tuple[float | None, float | None]:
    minimum, maximum = finite_number(item, "min_value"), finite_number(item, "max_value")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ItemError("min_value", f"{minimum:g} is greater than max_value {maximum:g}")
    return minimum, maximum


def _computed_only(item: Mapping[str, Any], source: str, fields: tuple[str, ...]) -> None:
    for field in fields:
        if item.get(field) is not None:
            raise ItemError(field, f"is computed from the {source}; omit it")


def _samples(item: Mapping[str, Any], start_time: datetime | None, max_samples: int) -> Increment:
    _computed_only(item, "samples", ("value", "sample_count", "p50", "p90", "p95", "p99", "min_value", "max_value"))
    samples = item["samples"]
    if not isinstance(samples, list) or not samples:
        raise ItemError("samples", "must be a non-empty array of numbers")
    if len(samples) > max_samples:
        raise ItemError("samples", f"holds {len(samples)} values; at most {max_samples} (send buckets for more)")
    values = []
    for value in samples:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ItemError("samples", f"must hold finite numbers only, got {value!r:.40}")
        values.append(bounded(value, "samples"))
    increment = samples_increment(values, start_time=start_time)
    assert increment is not None
    return increment


def _buckets(
    item: Mapping[str, Any], time: datetime, start_time: datetime | None, max_bounds: int, *, cumulative: bool
) -> tuple[Increment | None, CumulativePoint | None]:
    _computed_only(item, "buckets", ("sample_count", "p50", "p90", "p95", "p99"))
    buckets = item["buckets"]
    if not isinstance(buckets, dict) or set(buckets) != {"bounds", "counts"}:
        raise ItemError("buckets", 'must be {"bounds": [b1, ..., bn], "counts": [c0, ..., cn]} (one more count than bounds)')
    bounds, counts = buckets["bounds"], buckets["counts"]
    if not isinstance(bounds, list) or not isinstance(counts, list):
        raise ItemError("buckets", "counts must be an array one longer than the bounds array")
    if len(bounds) > max_bounds:  # checked before any bucket is read
        raise ItemError("buckets", f"has {len(bounds)} bounds; at most {max_bounds} are accepted ({max_bounds + 1} counts)")
    if len(counts) != len(bounds) + 1:
        raise ItemError("buckets", "counts must be an array one longer than the bounds array")
    if any(isinstance(b, bool) or not isinstance(b, int | float) for b in bounds):
        raise ItemError("buckets", "bounds must be finite numbers")
    bounds = [bounded(b, "buckets") for b in bounds]
    if any(later <= earlier for earlier, later in zip(bounds, bounds[1:], strict=False)):
        raise ItemError("buckets", "bounds must be strictly increasing")
    if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counts):
        raise ItemError("buckets", "counts must be non-negative integers")
    histogram = Histogram(tuple(counts), bounds=tuple(bounds))
    count = histogram.total
    if count > MAX_SAMPLE_COUNT:
        raise ItemError("buckets", f"counts add up to {count}; a point holds at most {MAX_SAMPLE_COUNT} values")
    minimum, maximum = _extremes(item)
    mean = finite_number(item, "value")
    total = None if mean is None else mean * count
    if cumulative:
        point = CumulativePoint(
            "histogram", time, start_time, histogram=histogram, count=count, total=total, minimum=minimum, maximum=maximum
        )
        return None, point
    if count == 0:
        raise ItemError("buckets", "counts add up to 0: an interval without values has nothing to store")
    increment = histogram_increment(
        histogram, count=count, total=total, start_time=start_time, minimum=minimum, maximum=maximum, exact=True
    )
    if increment is None:
        raise ItemError("buckets", "without value, min_value or max_value the buckets alone give no mean; send value (the mean)")
    return increment, None
