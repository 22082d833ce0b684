"""SQL over ``traces`` that returns plain values: trace search, one trace's spans, per-service RED
figures and caller -> callee edges. Imports only core.

Every query takes the license to read (None = every license) and puts it in its WHERE clause; the
statements are assembled from fixed fragments, and every value the caller gives is a bound parameter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.core.containment import Condition
from fernando_telemetry.core.trace_tree import SpanRecord, TraceSummary

__all__ = [
    "DependencyEdge",
    "ServiceFigures",
    "SpanMatch",
    "candidate_trace_ids",
    "dependency_edges",
    "service_figures",
    "trace_spans",
    "trace_summaries",
    "RESOURCE_EXPRESSION",
]

RESOURCE_EXPRESSION = "COALESCE(r.attributes, t.resource)"
"""A span's resource: its shared row (``telemetry_resources`` as ``r``, joined on ``resource_id``) or, for rows
written before revision 0017 (or restored from their archives), the copy in ``traces.resource`` (as ``t``)."""
_SPAN_COLUMNS = (
    "t.span_id, t.parent_span_id, t.service_name, t.operation_name, t.start_time, t.end_time, t.duration_ms, t.status, "
    "t.span_kind, t.status_message, t.status_code, t.http_method, t.http_route, t.error_type, t.error_message, "
    "t.host_name, t.user_id, t.license_id, t.environment, t.attributes, t.span_events, "
    f"{RESOURCE_EXPRESSION} AS resource"
)
# the license condition is implied by the key (it hashes the license) and kept as a guard against a hand-written key
_WITH_RESOURCES = (
    "traces AS t LEFT JOIN telemetry_resources AS r ON r.resource_id = t.resource_id AND r.license_id = t.license_id"
)


@dataclass(frozen=True)
class SpanMatch:
    """What one span must satisfy for its trace to be found; all conditions hold on the same span.

    ``attributes`` is a list of alternatives per condition: the span's attributes contain at least one
    document of each tuple (``attributes @> ...``, served by the GIN index).
    """

    service_name: str | None = None
    operation_name: str | None = None
    error: bool = False
    status_code: int | None = None
    attributes: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class ServiceFigures:
    """Counts and duration percentiles of one service's spans in a window, over two span sets:
    its entry spans (server and consumer kinds) and all of its spans. Percentiles are None without spans."""

    service_name: str
    entry_spans: int
    entry_errors: int
    entry_percentiles_ms: tuple[float, float, float] | None
    all_spans: int
    all_errors: int
    all_percentiles_ms: tuple[float, float, float]


@dataclass(frozen=True)
class DependencyEdge:
    """Calls from one service to another: child spans of ``callee`` whose parent span is in ``caller``."""

    caller: str
    callee: str
    calls: int
    errors: int
    p95_duration_ms: float


def _license_clause(license_id: int | None, params: dict[str, Any], *, alias: str = "") -> list[str]:
    if license_id is None:
        return []
    params["license_id"] = license_id
    return [f"{alias}license_id = :license_id"]


def _match_clauses(match: SpanMatch, params: dict[str, Any]) -> list[str]:
    clauses: list[str] = []
    if match.service_name is not None:
        params["service_name"] = match.service_name
        clauses.append("service_name = :service_name")
    if match.operation_name is not None:
        params["operation_name"] = match.operation_name
        clauses.append("operation_name = :operation_name")
    if match.error:
        clauses.append("status = 'error'")
    if match.status_code is not None:
        params["status_code"] = match.status_code
        clauses.append("status_code = :status_code")
    for condition_index, alternatives in enumerate(match.attributes):
        names = []
        for alternative_index, document in enumerate(alternatives):
            name = f"attr_{condition_index}_{alternative_index}"
            params[name] = json.dumps(document)
            names.append(f"attributes @> CAST(:{name} AS jsonb)")
        clauses.append("(" + " OR ".join(names) + ")")
    return clauses


def candidate_trace_ids(
    session: Session,
    *,
    match: SpanMatch,
    license_id: int | None,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[str]:
    """Ids of the traces with a matching span that started in [start, end), newest first.

    A trace ranks by its earliest matching span. The range on ``start_time`` prunes partitions; the
    service and operation conditions lead the (service_name, operation_name, start_time) index.
    """
    params: dict[str, Any] = {"start": start, "end": end, "limit": limit}
    clauses = ["start_time >= :start", "start_time < :end"]
    clauses += _license_clause(license_id, params)
    clauses += _match_clauses(match, params)
    statement = (
        "SELECT trace_id FROM traces WHERE " + " AND ".join(clauses) + " "
        "GROUP BY trace_id ORDER BY min(start_time) DESC, trace_id DESC LIMIT :limit"
    )
    return list(session.scalars(text(statement), params))


def trace_summaries(
    session: Session,
    *,
    trace_ids: Sequence[str],
    license_id: int | None,
    min_duration_ms: float | None = None,
    max_duration_ms: float | None = None,
) -> list[TraceSummary]:
    """One summary per trace, over all of its visible spans whatever their time, newest trace first.

    ``trace_id = ANY(...)`` is answered by the hash index of every partition (a bitmap scan per
    partition), so no time range is needed. The duration bounds, when given, keep only traces within them.
    """
    if not trace_ids:
        return []
    params: dict[str, Any] = {"trace_ids": list(trace_ids)}
    clauses = ["trace_id = ANY(:trace_ids)"] + _license_clause(license_id, params)
    having = []
    if min_duration_ms is not None:
        params["min_duration_ms"] = min_duration_ms
        having.append("duration_ms >= :min_duration_ms")
    if max_duration_ms is not None:
        params["max_duration_ms"] = max_duration_ms
        having.append("duration_ms <= :max_duration_ms")
    statement = f"""
        WITH spans AS MATERIALIZED (
            SELECT trace_id, span_id, parent_span_id, service_name, operation_name, start_time, end_time, status
              FROM traces WHERE {" AND ".join(clauses)}
        ), roots AS (
            SELECT DISTINCT ON (trace_id) trace_id, service_name, operation_name
              FROM spans ORDER BY trace_id, parent_span_id IS NOT NULL, start_time, span_id
        ), totals AS (
            SELECT trace_id, min(start_time) AS start_time, max(end_time) AS end_time, count(*) AS span_count,
                   array_agg(DISTINCT service_name ORDER BY service_name) AS services,
                   bool_or(status = 'error') AS error,
                   EXTRACT(EPOCH FROM max(end_time) - min(start_time))::float8 * 1000 AS duration_ms
              FROM spans GROUP BY trace_id
        )
        SELECT totals.trace_id, roots.service_name, roots.operation_name, totals.start_time, totals.end_time,
               totals.duration_ms, totals.span_count, totals.services, totals.error
          FROM totals JOIN roots USING (trace_id)
         {"WHERE " + " AND ".join(having) if having else ""}
         ORDER BY totals.start_time DESC, totals.trace_id DESC
    """
    return [
        TraceSummary(
            trace_id=row.trace_id,
            root_service=row.service_name,
            root_operation=row.operation_name,
            start_time=row.start_time,
            end_time=row.end_time,
            duration_ms=row.duration_ms,
            span_count=row.span_count,
            services=tuple(row.services),
            error=row.error,
        )
        for row in session.execute(text(statement), params)
    ]


def trace_spans(session: Session, *, trace_id: str, license_id: int | None, limit: int) -> list[SpanRecord]:
    """The visible spans of one trace, earliest first, at most ``limit``; no time range (hash index)."""
    params: dict[str, Any] = {"trace_id": trace_id, "limit": limit}
    clauses = ["t.trace_id = :trace_id"] + _license_clause(license_id, params, alias="t.")
    statement = (
        f"SELECT {_SPAN_COLUMNS} FROM {_WITH_RESOURCES} WHERE "
        + " AND ".join(clauses)
        + " ORDER BY t.start_time, t.span_id LIMIT :limit"
    )
    return [SpanRecord(**row._mapping) for row in session.execute(text(statement), params)]


def service_figures(
    session: Session,
    *,
    license_id: int | None,
    start: datetime,
    end: datetime,
    service_name: str | None = None,
) -> list[ServiceFigures]:
    """Per service, spans started in [start, end): counts, errors and p50/p95/p99 of duration,
    for its entry spans and for all of its spans, in one pass (exact ``percentile_cont`` over raw rows)."""
    params: dict[str, Any] = {"start": start, "end": end}
    clauses = ["start_time >= :start", "start_time < :end"] + _license_clause(license_id, params)
    if service_name is not None:
        params["service_name"] = service_name
        clauses.append("service_name = :service_name")
    statement = f"""
        SELECT service_name,
               count(*) FILTER (WHERE entry) AS entry_spans,
               count(*) FILTER (WHERE entry AND error) AS entry_errors,
               percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)
                   FILTER (WHERE entry) AS entry_percentiles,
               count(*) AS all_spans,
               count(*) FILTER (WHERE error) AS all_errors,
               percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms) AS all_percentiles
          FROM (SELECT service_name, duration_ms, span_kind IN ('server', 'consumer') AS entry, status = 'error' AS error
                  FROM traces WHERE {" AND ".join(clauses)}) AS spans
         GROUP BY service_name
         ORDER BY service_name
    """
    return [
        ServiceFigures(
            service_name=row.service_name,
            entry_spans=row.entry_spans,
            entry_errors=row.entry_errors,
            entry_percentiles_ms=tuple(row.entry_percentiles) if row.entry_percentiles is not None else None,
            all_spans=row.all_spans,
            all_errors=row.all_errors,
            all_percentiles_ms=tuple(row.all_percentiles),
        )
        for row in session.execute(text(statement), params)
    ]


def dependency_edges(
    session: Session,
    *,
    license_id: int | None,
    start: datetime,
    end: datetime,
    parent_lead: timedelta,
    parent_lag: timedelta,
) -> list[DependencyEdge]:
    """Caller -> callee edges from child spans started in [start, end) whose parent span (same trace, same
    license) is in another service: calls, child errors and p95 of the child's duration.

    The parent is found by the primary key (span_id, trace_id, start_time), its start bounded to
    [start - parent_lead, end + parent_lag) so only the partitions around the window are probed.
    """
    params: dict[str, Any] = {
        "start": start,
        "end": end,
        "parent_start": start - parent_lead,
        "parent_end": end + parent_lag,
    }
    clauses = [
        "child.start_time >= :start",
        "child.start_time < :end",
        "child.parent_span_id IS NOT NULL",
        "parent.start_time >= :parent_start",
        "parent.start_time < :parent_end",
        "parent.service_name <> child.service_name",
        # a parent of another license is no call (an admin reading every license included): licenses never link
        "parent.license_id = child.license_id",
    ]
    clauses += _license_clause(license_id, params, alias="child.") + _license_clause(license_id, params, alias="parent.")
    statement = f"""
        SELECT parent.service_name AS caller, child.service_name AS callee,
               count(*) AS calls,
               count(*) FILTER (WHERE child.status = 'error') AS errors,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY child.duration_ms) AS p95_duration_ms
          FROM traces AS child
          JOIN traces AS parent ON parent.span_id = child.parent_span_id AND parent.trace_id = child.trace_id
         WHERE {" AND ".join(clauses)}
         GROUP BY parent.service_name, child.service_name
         ORDER BY parent.service_name, child.service_name
    """
    return [
        DependencyEdge(
            caller=row.caller, callee=row.callee, calls=row.calls, errors=row.errors, p95_duration_ms=row.p95_duration_ms
        )
        for row in session.execute(text(statement), params)
    ]
