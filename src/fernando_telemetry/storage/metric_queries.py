"""Metric reads from raw ``system_metrics`` rows: one aggregate per step bucket and group, and the
catalogue of metric names. Returns plain values. ``license_id=None`` reads every license (admin).

Imports only core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, case, cast, func, literal, null, or_, select
from sqlalchemy.orm import Session

from fernando_telemetry.core.containment import Condition
from fernando_telemetry.core.series import Aggregation, Buckets, GroupBy
from fernando_telemetry.storage.models import SystemMetric

__all__ = ["BucketValue", "MetricName", "MetricSelection", "bucket_values", "metric_names"]

_TABLE = SystemMetric.__table__
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# what tells one counter apart from another: a reset or a gap is judged within one of these
_SERIES_IDENTITY = ("metric_name", "service_name", "host_name", "instance_id", "labels", "license_id")


@dataclass(frozen=True, slots=True)
class MetricSelection:
    """The samples of one metric, narrowed by service, host, label containment and license."""

    metric_name: str
    service_name: str | None = None
    host_name: str | None = None
    labels: Sequence[Condition] = ()
    license_id: int | None = None


@dataclass(frozen=True, slots=True)
class BucketValue:
    group: str | None
    bucket_start: datetime
    value: float | None


@dataclass(frozen=True, slots=True)
class MetricName:
    metric_name: str
    metric_types: list[str]
    units: list[str]
    service_names: list[str]
    samples: int
    last_seen_at: datetime


def bucket_values(
    session: Session, *, selection: MetricSelection, aggregation: Aggregation, buckets: Buckets, group_by: GroupBy | None
) -> list[BucketValue]:
    """One value per (group, bucket) that has samples, aggregated over the whole bucket."""
    if aggregation is Aggregation.RATE:
        return _rate_values(session, selection=selection, buckets=buckets, group_by=group_by)
    bucket = _bucket(_TABLE.c.timestamp, buckets)
    group = _group(group_by)
    statement = (
        select(group.label("group_value"), bucket.label("bucket_start"), _aggregate(aggregation).label("value"))
        .where(*_conditions(selection, start=buckets.first, end=buckets.end))
        .group_by(*_grouping(group_by, group), bucket)
    )
    return [BucketValue(row.group_value, row.bucket_start, _float(row.value)) for row in session.execute(statement)]


def metric_names(
    session: Session, *, start: datetime, end: datetime, license_id: int | None, service_name: str | None
) -> list[MetricName]:
    """Every metric with samples in ``[start, end)``: its types, units, services, sample count and last sample."""
    conditions: list[ColumnElement[bool]] = [_TABLE.c.timestamp >= start, _TABLE.c.timestamp < end]
    if license_id is not None:
        conditions.append(_TABLE.c.license_id == license_id)
    if service_name is not None:
        conditions.append(_TABLE.c.service_name == service_name)
    statement = (
        select(
            _TABLE.c.metric_name,
            func.array_agg(_TABLE.c.metric_type.distinct()).label("metric_types"),
            func.array_remove(func.array_agg(_TABLE.c.unit.distinct()), None).label("units"),
            func.array_remove(func.array_agg(_TABLE.c.service_name.distinct()), None).label("service_names"),
            func.count().label("samples"),
            func.max(_TABLE.c.timestamp).label("last_seen_at"),
        )
        .where(*conditions)
        .group_by(_TABLE.c.metric_name)
        .order_by(_TABLE.c.metric_name)
    )
    return [
        MetricName(
            metric_name=row.metric_name,
            metric_types=sorted(str(value) for value in row.metric_types),
            units=sorted(row.units),
            service_names=sorted(row.service_names),
            samples=row.samples,
            last_seen_at=row.last_seen_at,
        )
        for row in session.execute(statement)
    ]


def _conditions(selection: MetricSelection, *, start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        _TABLE.c.metric_name == selection.metric_name,
        _TABLE.c.timestamp >= start,
        _TABLE.c.timestamp < end,
    ]
    if selection.license_id is not None:
        conditions.append(_TABLE.c.license_id == selection.license_id)
    if selection.service_name is not None:
        conditions.append(_TABLE.c.service_name == selection.service_name)
    if selection.host_name is not None:
        conditions.append(_TABLE.c.host_name == selection.host_name)
    for alternatives in selection.labels:
        conditions.append(or_(*(_TABLE.c.labels.contains(document) for document in alternatives)))
    return conditions


def _bucket(timestamp: Any, buckets: Buckets) -> ColumnElement[datetime]:
    # date_bin from the Unix epoch: the same UTC-aligned buckets as core.series.align_down
    return func.date_bin(buckets.step.delta, timestamp, literal(_EPOCH))


def _group(group_by: GroupBy | None) -> ColumnElement[Any]:
    if group_by is None:
        return null()
    if group_by.column is not None:
        return _TABLE.c[group_by.column]
    return _TABLE.c.labels[group_by.label].astext


def _grouping(group_by: GroupBy | None, group: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    # PostgreSQL refuses a constant (the NULL of "no grouping") in GROUP BY
    return [] if group_by is None else [group]


def _aggregate(aggregation: Aggregation) -> ColumnElement[Any]:
    value, weight = _TABLE.c.value, _TABLE.c.sample_count
    if aggregation.quantile is not None:
        return func.percentile_cont(aggregation.quantile).within_group(value)
    match aggregation:
        case Aggregation.MIN:
            return func.min(value)
        case Aggregation.MAX:
            return func.max(value)
        case Aggregation.SUM:
            return func.sum(value * weight)
        case Aggregation.COUNT:
            return cast(func.sum(weight), Float)
        case Aggregation.AVG:
            return func.sum(value * weight) / func.nullif(func.sum(weight), 0)
    raise ValueError(f"no raw aggregate for {aggregation}")


def _rate_values(
    session: Session, *, selection: MetricSelection, buckets: Buckets, group_by: GroupBy | None
) -> list[BucketValue]:
    # one step before the first bucket too, so the first bucket's first sample has a predecessor
    identity = [_TABLE.c[name] for name in _SERIES_IDENTITY]
    delta = _TABLE.c.value - func.lag(_TABLE.c.value).over(
        partition_by=identity, order_by=(_TABLE.c.timestamp, _TABLE.c.metric_id)
    )
    samples = (
        select(
            _group(group_by).label("group_value"),
            _TABLE.c.timestamp.label("timestamp"),
            delta.label("delta"),
        )
        .where(*_conditions(selection, start=buckets.first - buckets.step.delta, end=buckets.end))
        .subquery("samples")
    )
    bucket = _bucket(samples.c.timestamp, buckets)
    group = null() if group_by is None else samples.c.group_value
    # None when no sample of the bucket has a predecessor: the rate is unknown, not zero
    increase = case((samples.c.delta > 0, samples.c.delta), (samples.c.delta.is_not(None), 0.0))
    statement = (
        select(
            group.label("group_value"),
            bucket.label("bucket_start"),
            (func.sum(increase) / float(buckets.step.seconds)).label("value"),
        )
        .where(samples.c.timestamp >= buckets.first)
        .group_by(*_grouping(group_by, samples.c.group_value), bucket)
    )
    return [BucketValue(row.group_value, row.bucket_start, _float(row.value)) for row in session.execute(statement)]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
