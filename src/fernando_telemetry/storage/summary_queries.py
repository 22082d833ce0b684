"""Hourly summaries: reads of the three analytics views, and the same figures for one license from the raw tables.

``telemetry_events_hourly_summary`` has a ``license_id`` column and is always read through the view.
``system_metrics_service_summary`` and ``traces_service_summary`` have none, so one license's figures are
computed here from ``system_metrics`` / ``traces`` with the views' own aggregates, restricted to the
license and to a range on the time column (which prunes partitions); metric rows are aggregated by
``metric_aggregates`` as everywhere. Every query returns rows in the views' column order and is ordered by hour,
then the grouping columns. Imports only core and ``metric_aggregates``.
"""

from __future__ import annotations

from collections.abc import Mapping
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


_EVENTS_VIEW = f"""
SELECT {", ".join(EVENT_COLUMNS)}
  FROM telemetry_events_hourly_summary
 WHERE hour >= :start AND hour < :end {{conditions}}
 ORDER BY hour, event_type, license_id NULLS FIRST
 LIMIT :limit OFFSET :offset
"""


def events_hourly(session: Session, query: SummaryQuery, *, license_id: int | None) -> list[dict[str, Any]]:
    """Rows of ``telemetry_events_hourly_summary``; ``license_id`` None reads every license (and unattributed events)."""
    equals: dict[str, str | int] = dict(query.equals)
    if license_id is not None:
        equals["license_id"] = license_id
    return _run(
        session,
        _EVENTS_VIEW,
        SummaryQuery(query.start, query.end, equals, query.limit, query.offset),
        ("event_type", "license_id"),
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
