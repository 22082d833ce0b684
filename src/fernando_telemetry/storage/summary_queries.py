"""Hourly summaries: the rows of the three analytics views, and the same figures for one license from the raw tables.

``telemetry_events_hourly_summary``'s rows are computed here as the view does, from the hourly tables and, for
the pending hours the caller passes in (read first: on Citus they live on the coordinator, out of reach of a
query routed to one worker), from raw rows; it has a ``license_id`` column.
``system_metrics_service_summary`` and ``traces_service_summary`` have no license column, so one license's figures are
computed here from ``system_metrics`` / ``traces`` with the views' own aggregates, restricted to the
license and to a range on the time column (which prunes partitions); metric rows are aggregated by
``metric_aggregates`` as everywhere. Every query returns rows in the views' column order and is ordered by hour,
then the grouping columns. Imports only core and ``metric_aggregates``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.storage.metric_aggregates import parts_query, quantiles_sql, row_terms

__all__ = [
    "EVENT_COLUMNS",
    "SERVICE_COLUMNS",
    "TRACE_COLUMNS",
    "SummaryQuery",
    "events_hourly",
    "services_for_license",
    "services_hourly",
    "traces_for_license",
    "traces_hourly",
]

EVENT_COLUMNS = (
    "hour",
    "event_type",
    "license_id",
    "events",
    "unique_users",
    "unique_sessions",
    "avg_duration_ms",
    "p95_duration_ms",
    "errors",
    "server_span_errors",
)
SERVICE_COLUMNS = (
    "hour",
    "service_name",
    "metric_name",
    "samples",
    "avg_value",
    "min_value",
    "max_value",
    "p50",
    "p90",
    "p95",
    "p99",
    "observations",
    "value_sum",
)
TRACE_COLUMNS = (
    "hour",
    "service_name",
    "operation_name",
    "spans",
    "errors",
    "error_rate",
    "p50_duration_ms",
    "p95_duration_ms",
    "p99_duration_ms",
)


@dataclass(frozen=True)
class SummaryQuery:
    """Hours ``[start, end)`` (both on the hour), equality filters on the grouping columns, and a page."""

    start: datetime
    end: datetime
    equals: Mapping[str, str | int]
    limit: int
    offset: int = 0


def _run(session: Session, sql: str, query: SummaryQuery, allowed: tuple[str, ...], **params: Any) -> list[dict[str, Any]]:
    # filter names are checked against the grouping columns: only fixed names ever reach the SQL text
    unknown = set(query.equals) - set(allowed)
    if unknown:
        raise ValueError(f"cannot filter this summary by {sorted(unknown)}")
    conditions = "".join(f" AND {name} = :eq_{name}" for name in sorted(query.equals))
    bound = {f"eq_{name}": value for name, value in query.equals.items()}
    statement = text(sql.format(conditions=conditions))
    values = {"start": query.start, "end": query.end, "limit": query.limit, "offset": query.offset, **bound, **params}
    return [dict(row._mapping) for row in session.execute(statement, values)]


# The rows of telemetry_events_hourly_summary, with the pending hours given as parameters (read beforehand by
# the caller: rollup_state and rollup_dirty_buckets are coordinator tables on Citus, which a query routed to one
# shard cannot read): rolled-up hours from the hourly tables, pending hours from raw rows, failed server spans
# beside the events. Every branch has the license column in third place and the range on its time column.
_EVENTS = """
SELECT u.hour, u.event_type, u.license_id,
       sum(u.events)::bigint AS events,
       sum(u.unique_users)::bigint AS unique_users,
       sum(u.unique_sessions)::bigint AS unique_sessions,
       max(u.avg_duration_ms) AS avg_duration_ms,
       max(u.p95_duration_ms) AS p95_duration_ms,
       sum(u.errors)::bigint AS errors,
       sum(u.server_span_errors)::bigint AS server_span_errors
  FROM (SELECT r.bucket_start AS hour, r.event_type, r.license_id, r.events, r.unique_users, r.unique_sessions,
               r.duration_sum / NULLIF(r.duration_count, 0) AS avg_duration_ms, r.duration_p95 AS p95_duration_ms,
               r.errors, 0::bigint AS server_span_errors
          FROM telemetry_events_hourly r
         WHERE r.bucket_start >= :start AND r.bucket_start < :end
           AND r.bucket_start <> ALL(CAST(:pending AS timestamptz[])) {license_r}
        UNION ALL
        SELECT date_trunc('hour', e.event_timestamp, 'UTC'), e.event_type::varchar(25), e.license_id, count(*),
               count(DISTINCT e.user_id), count(DISTINCT e.session_id), avg(e.duration_ms),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms),
               count(*) FILTER (WHERE telemetry_event_is_error(e.event_type, e.payload)), 0::bigint
          FROM telemetry_events e
         WHERE e.event_timestamp >= :start AND e.event_timestamp < :end
           AND date_trunc('hour', e.event_timestamp, 'UTC') = ANY(CAST(:pending AS timestamptz[])) {license_e}
         GROUP BY 1, 2, 3
        UNION ALL
        SELECT t.bucket_start, 'api_event'::varchar(25), t.license_id, 0::bigint, 0::bigint, 0::bigint,
               NULL::double precision, NULL::double precision, 0::bigint, t.server_errors
          FROM traces_hourly t
         WHERE t.bucket_start >= :start AND t.bucket_start < :end AND t.server_errors > 0
           AND t.bucket_start <> ALL(CAST(:pending_spans AS timestamptz[])) {license_t}
        UNION ALL
        SELECT date_trunc('hour', s.start_time, 'UTC'), 'api_event'::varchar(25), s.license_id, 0::bigint, 0::bigint,
               0::bigint, NULL::double precision, NULL::double precision, 0::bigint, count(*)
          FROM traces s
         WHERE s.start_time >= :start AND s.start_time < :end AND s.span_kind = 'server' AND s.status = 'error'
           AND date_trunc('hour', s.start_time, 'UTC') = ANY(CAST(:pending_spans AS timestamptz[])) {license_s}
         GROUP BY 1, 2, 3
       ) u
 WHERE TRUE {{conditions}}
 GROUP BY u.hour, u.event_type, u.license_id
 ORDER BY u.hour, u.event_type, u.license_id NULLS FIRST
 LIMIT :limit OFFSET :offset
"""


def events_hourly(
    session: Session,
    query: SummaryQuery,
    *,
    license_id: int | None,
    pending: Collection[datetime],
    pending_spans: Collection[datetime],
) -> list[dict[str, Any]]:
    """The rows ``telemetry_events_hourly_summary`` holds for ``query`` (``license_id`` None: every license's), given
    the pending hours of ``telemetry_events`` and of ``traces`` that meet the range (``rollups.pending_hours``)."""
    scope = {alias: "AND {alias}.license_id = :license_id" if license_id is not None else "" for alias in "rets"}
    sql = _EVENTS.format(**{f"license_{alias}": condition.format(alias=alias) for alias, condition in scope.items()})
    by_license = {"license_id": license_id} if license_id is not None else {}
    return _run(
        session,
        sql,
        query,
        ("event_type",),
        pending=sorted(pending),
        pending_spans=sorted(pending_spans),
        **by_license,
    )


_SERVICES_VIEW = f"""
SELECT {", ".join(SERVICE_COLUMNS)}
  FROM system_metrics_service_summary
 WHERE hour >= :start AND hour < :end {{conditions}}
 ORDER BY hour, service_name, metric_name
 LIMIT :limit OFFSET :offset
"""

# the aggregates of system_metrics_service_summary, over one license's samples: the parts of metric_aggregates
_SERVICE_ROWS = f"""
        SELECT date_trunc('hour', m."timestamp", 'UTC') AS hour, m.service_name, m.metric_name, {row_terms("m")}
          FROM system_metrics m
         WHERE m.license_id = :license_id AND m."timestamp" >= :start AND m."timestamp" < :end {{conditions}}"""
_SERVICES_RAW = f"""
SELECT p.hour, p.service_name, p.metric_name, p.samples,
       p.weighted_sum / NULLIF(p.observations, 0)::double precision AS avg_value,
       p.value_min AS min_value, p.value_max AS max_value,
       q.q[1] AS p50, q.q[2] AS p90, q.q[3] AS p95, q.q[4] AS p99, p.observations, p.value_sum
  FROM ({parts_query(_SERVICE_ROWS, ("hour", "service_name", "metric_name"))}) p
 CROSS JOIN LATERAL (SELECT {quantiles_sql("p")} AS q) q
 ORDER BY p.hour, p.service_name, p.metric_name
 LIMIT :limit OFFSET :offset
"""
# _run fills {conditions} with str.format: every other brace (array literals) is doubled
_SERVICES_RAW = _SERVICES_RAW.replace("{", "{{").replace("}", "}}").replace("{{conditions}}", "{conditions}")


def services_hourly(session: Session, query: SummaryQuery) -> list[dict[str, Any]]:
    """Rows of ``system_metrics_service_summary`` (every license's samples together)."""
    return _run(session, _SERVICES_VIEW, query, ("service_name", "metric_name"))


def services_for_license(session: Session, query: SummaryQuery, *, license_id: int) -> list[dict[str, Any]]:
    """The rows ``system_metrics_service_summary`` would have over ``license_id``'s samples only."""
    return _run(session, _SERVICES_RAW, query, ("service_name", "metric_name"), license_id=license_id)


_TRACES_VIEW = f"""
SELECT {", ".join(TRACE_COLUMNS)}
  FROM traces_service_summary
 WHERE hour >= :start AND hour < :end {{conditions}}
 ORDER BY hour, service_name, operation_name
 LIMIT :limit OFFSET :offset
"""

# the aggregates of traces_service_summary, over one license's spans
_TRACES_RAW = """
SELECT date_trunc('hour', start_time, 'UTC') AS hour,
       service_name,
       operation_name,
       count(*) AS spans,
       count(*) FILTER (WHERE status = 'error') AS errors,
       (count(*) FILTER (WHERE status = 'error'))::double precision / count(*) AS error_rate,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99_duration_ms
  FROM traces
 WHERE license_id = :license_id AND start_time >= :start AND start_time < :end {conditions}
 GROUP BY 1, 2, 3
 ORDER BY hour, service_name, operation_name
 LIMIT :limit OFFSET :offset
"""


def traces_hourly(session: Session, query: SummaryQuery) -> list[dict[str, Any]]:
    """Rows of ``traces_service_summary`` (every license's spans together)."""
    return _run(session, _TRACES_VIEW, query, ("service_name", "operation_name"))


def traces_for_license(session: Session, query: SummaryQuery, *, license_id: int) -> list[dict[str, Any]]:
    """The rows ``traces_service_summary`` would have over ``license_id``'s spans only."""
    return _run(session, _TRACES_RAW, query, ("service_name", "operation_name"), license_id=license_id)
