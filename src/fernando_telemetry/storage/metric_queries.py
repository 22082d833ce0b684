"""Metric reads from raw ``system_metrics`` rows: the parts of each step bucket and group (every aggregation
but ``rate``), the increases of each bucket (``rate``), and the catalogue of metric names. Returns plain values.
``license_id=None`` reads every license (admin).

Imports only core, the models and ``metric_aggregates``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.orm import Session

from fernando_telemetry.core.containment import Condition
from fernando_telemetry.core.metric_aggregation import MetricPart, combine
from fernando_telemetry.core.series import Aggregation, Buckets, GroupBy
from fernando_telemetry.storage.metric_aggregates import RATE_LOOKBACK, increments_query, part_of, parts_query, row_terms
from fernando_telemetry.storage.models import SystemMetric

__all__ = [
    "BucketValue",
    "MetricName",
    "MetricSelection",
    "bucket_increases",
    "bucket_parts",
    "bucket_values",
    "metric_names",
]

_TABLE = SystemMetric.__table__
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    """One value per (group, bucket) that has samples, aggregated over the whole bucket (not ``rate``: see
    ``bucket_increases``)."""
    return [
        BucketValue(group, bucket_start, combine([part], aggregation))
        for (group, bucket_start), part in bucket_parts(
            session, selection=selection, buckets=buckets, group_by=group_by, quantiles=aggregation.quantile is not None
        ).items()
    ]


def bucket_parts(
    session: Session, *, selection: MetricSelection, buckets: Buckets, group_by: GroupBy | None, quantiles: bool = True
) -> dict[tuple[str | None, datetime], MetricPart]:
    """The part of each (group, bucket) with samples: what ``core.metric_aggregation.combine`` reads."""
    params: dict[str, Any] = {"start": buckets.first, "end": buckets.end, "step": buckets.step.delta, "epoch": _EPOCH}
    where = _where(selection, params)
    rows = f"""
        SELECT {_group_sql(group_by, params)} AS grp, date_bin(:step, m."timestamp", :epoch) AS bucket_start,
               {row_terms("m")}
          FROM system_metrics m
         WHERE {where} AND m."timestamp" >= :start AND m."timestamp" < :end"""
    statement = parts_query(rows, ("grp", "bucket_start"), quantiles=quantiles)
    return {(row.grp, row.bucket_start): part_of(row) for row in session.execute(text(statement), params)}


def bucket_increases(
    session: Session, *, selection: MetricSelection, buckets: Buckets, group_by: GroupBy | None
) -> list[BucketValue]:
    """Per (group, bucket), the increase of the metric in the bucket (``rate`` before dividing by seconds):
    each increment of ``metric_aggregates.increments_query`` spread over its interval ``(s, t]`` in proportion
    to the interval's overlap with the bucket (all of it in the bucket of ``t`` when ``s = t``). Increments
    whose interval begins before the first bucket add only their overlapping part; buckets no increment
    overlaps are absent."""
    params: dict[str, Any] = {
        "read_start": buckets.first - RATE_LOOKBACK,
        "read_end": buckets.end + RATE_LOOKBACK,
        "first": buckets.first,
        "end": buckets.end,
        "step": buckets.step.delta,
        "epoch": _EPOCH,
        "rate_lookback": RATE_LOOKBACK,
    }
    where = _where(selection, params)
    source = f"""(SELECT * FROM system_metrics m WHERE {where}
                     AND m."timestamp" >= :read_start AND m."timestamp" < :read_end) m"""
    increments = increments_query("m", source=source, columns=[f"{_group_sql(group_by, params)} AS grp"])
    statement = f"""
        WITH i AS ({increments})
        SELECT i.grp, b.bucket_start,
               sum(CASE WHEN i.s = i.t THEN i.amount
                        ELSE i.amount * extract(epoch FROM least(i.t, b.bucket_start + :step) - greatest(i.s, b.bucket_start))
                             / extract(epoch FROM i.t - i.s) END) AS increase
          FROM i
         CROSS JOIN LATERAL generate_series(date_bin(:step, i.s, :epoch), date_bin(:step, i.t, :epoch), :step) AS b(bucket_start)
         WHERE b.bucket_start >= :first AND b.bucket_start < :end
           AND (i.s = i.t OR least(i.t, b.bucket_start + :step) > greatest(i.s, b.bucket_start))
         GROUP BY i.grp, b.bucket_start"""
    return [BucketValue(row.grp, row.bucket_start, _float(row.increase)) for row in session.execute(text(statement), params)]


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


def _where(selection: MetricSelection, params: dict[str, Any]) -> str:
    """The selection as SQL over ``system_metrics m``, its values bound into ``params``."""
    params["metric_name"] = selection.metric_name
    clauses = ["m.metric_name = :metric_name"]
    for column in ("license_id", "service_name", "host_name"):
        value = getattr(selection, column)
        if value is not None:
            params[column] = value
            clauses.append(f"m.{column} = :{column}")
    for index, alternatives in enumerate(selection.labels):
        names = []
        for alternative, document in enumerate(alternatives):
            name = f"label_{index}_{alternative}"
            params[name] = json.dumps(document)
            names.append(f"m.labels @> CAST(:{name} AS jsonb)")
        clauses.append(f"({' OR '.join(names)})")
    return " AND ".join(clauses)


def _group_sql(group_by: GroupBy | None, params: dict[str, Any]) -> str:
    if group_by is None:
        return "CAST(NULL AS text)"
    if group_by.column is not None:
        if group_by.column not in ("host_name", "service_name"):
            raise ValueError(f"cannot group by {group_by.column!r}")
        return f"CAST(m.{group_by.column} AS text)"
    params["group_label"] = group_by.label
    return "(m.labels ->> :group_label)"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
