"""Metric series parts in SQL: rows of the hourly or daily metric rollups, and the same aggregates
computed from raw samples for hours the rollups do not hold (pending, or cut by the range). Plain values.

Both read rows through ``metric_aggregates``, so a rollup row and the raw rows it replaces give the same part.
Imports only core and ``metric_aggregates``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.core.metric_aggregation import MetricPart
from fernando_telemetry.storage.metric_aggregates import part_of, parts_query, row_terms

__all__ = ["GROUP_COLUMNS", "BucketPart", "MetricFilter", "raw_parts", "rollup_parts"]

HOUR = timedelta(hours=1)
GROUP_COLUMNS = ("host_name", "service_name")
"""Columns of the rollup grain a series can be grouped by."""


@dataclass(frozen=True)
class MetricFilter:
    """Which samples: one metric, optionally one service, one host, one license (None = no condition)."""

    metric_name: str
    service_name: str | None = None
    host_name: str | None = None
    license_id: int | None = None


@dataclass(frozen=True)
class BucketPart:
    """The ``MetricPart`` of one bucket (an hour or a day) and group."""

    bucket_start: datetime
    group: str | None
    part: MetricPart


def _conditions(prefix: str, metric_filter: MetricFilter) -> tuple[str, dict[str, Any]]:
    conditions = [f"{prefix}metric_name = :metric_name"]
    params: dict[str, Any] = {"metric_name": metric_filter.metric_name}
    for column in ("service_name", "host_name", "license_id"):
        value = getattr(metric_filter, column)
        if value is not None:
            conditions.append(f"{prefix}{column} = :{column}")
            params[column] = value
    return " AND ".join(conditions), params


def _group_expression(prefix: str, group_column: str | None) -> str:
    if group_column is None:
        return "NULL::text"
    if group_column not in GROUP_COLUMNS:
        raise ValueError(f"cannot group metric rollups by {group_column!r}; expected one of {GROUP_COLUMNS}")
    return f"{prefix}{group_column}"


def _bucket_part(row: Any) -> BucketPart:
    return BucketPart(bucket_start=row.bucket_start, group=row.grp, part=part_of(row))


def rollup_parts(
    session: Session, *, grain: str, buckets: Sequence[datetime], metric_filter: MetricFilter, group_column: str | None
) -> list[BucketPart]:
    """The rows of ``system_metrics_hourly`` (``grain="hourly"``) or ``_daily`` for ``buckets``, one per grain row."""
    if grain not in ("hourly", "daily"):
        raise ValueError(f"grain must be hourly or daily, got {grain!r}")
    if not buckets:
        return []
    conditions, params = _conditions("r.", metric_filter)
    rows = session.execute(
        text(
            f"""
            SELECT r.bucket_start, {_group_expression("r.", group_column)} AS grp, r.samples, r.observations,
                   r.value_sum, r.weighted_sum, r.value_min, r.value_max,
                   ARRAY[r.value_p50, r.value_p90, r.value_p95, r.value_p99] AS exact,
                   r.value_sketch_keys AS sketch_keys, r.value_sketch_counts AS sketch_counts
              FROM system_metrics_{grain} r
             WHERE {conditions} AND r.bucket_start = ANY(CAST(:buckets AS timestamptz[]))
            """  # noqa: S608 - grain and group column are checked above
        ),
        {**params, "buckets": list(buckets)},
    )
    return [_bucket_part(row) for row in rows]


def raw_parts(
    session: Session,
    *,
    hours: Sequence[datetime],
    start: datetime,
    end: datetime,
    metric_filter: MetricFilter,
    group_column: str | None,
) -> list[BucketPart]:
    """Per hour of ``hours`` and group, the samples in that hour and in ``[start, end)``, aggregated from raw
    rows as the hourly rollup would (one part per hour and group, so its quantiles are exact). Consecutive
    hours are read with one range, bound as values so the plan reads only their partitions."""
    conditions, params = _conditions("m.", metric_filter)
    rows = f"""
        SELECT date_trunc('hour', m."timestamp", 'UTC') AS bucket_start, {_group_expression("m.", group_column)} AS grp,
               {row_terms("m")}
          FROM system_metrics m
         WHERE {conditions} AND m."timestamp" >= :start AND m."timestamp" < :end"""
    statement = text(parts_query(rows, ("bucket_start", "grp")))
    parts: list[BucketPart] = []
    for run_start, run_end in _runs(hours):
        bounds = {"start": max(run_start, start), "end": min(run_end, end)}
        parts += [_bucket_part(row) for row in session.execute(statement, {**params, **bounds})]
    return parts


def _runs(hours: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive hour starts as ``[first, last + 1 hour)`` ranges."""
    runs: list[tuple[datetime, datetime]] = []
    for hour in sorted(set(hours)):
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + HOUR)
        else:
            runs.append((hour, hour + HOUR))
    return runs
