"""What an alert condition sees: its aggregate per group over the window ending at each of many
instants, in ONE parameterised query, so live evaluation (one instant) and backtest (many) read the
same SQL. Identifiers come only from the whitelists in core.alert_condition (checked against the
tables here too); every user string (metric names, filter values, JSON keys) is a bind parameter.

Imports only core, the models and ``metric_aggregates``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.orm import Session

from fernando_telemetry.core.alert_condition import Condition, Source, source_spec
from fernando_telemetry.core.metric_aggregation import combine
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.core.series import Aggregation
from fernando_telemetry.storage.metric_aggregates import RATE_LOOKBACK, increments_query, part_of, parts_query, row_terms
from fernando_telemetry.storage.models import BusinessMetric, SystemMetric, TelemetryEvent, Trace, metadata

__all__ = ["Observation", "compile_observation", "observe"]

# looked up in the metadata, which holds Tables: a model's __table__ is typed as the wider FromClause
_TABLES: dict[Source, Table] = {
    Source.SYSTEM_METRICS: metadata.tables[SystemMetric.__tablename__],
    Source.TELEMETRY_EVENTS: metadata.tables[TelemetryEvent.__tablename__],
    Source.TRACES: metadata.tables[Trace.__tablename__],
    Source.BUSINESS_METRICS: metadata.tables[BusinessMetric.__tablename__],
}
_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True)
class Observation:
    """The aggregate of one group over one window: its value (None when no rows gave one) and row count."""

    group_key: dict[str, str]
    value: float | None
    points: int


def observe(
    session: Session, condition: Condition, *, license_id: int | None, at: Sequence[datetime]
) -> dict[datetime, list[Observation]]:
    """The condition's aggregate per group over ``(t - window, t]`` for every ``t`` in ``at``.

    Every instant of ``at`` is a key of the answer. Without ``group_by`` each instant holds exactly one
    observation (an empty window gives ``condition.empty_value`` with 0 points); with it, one per group
    that had rows. ``license_id`` None reads every license (platform-wide rules).
    """
    instants = sorted(set(at))
    answer: dict[datetime, list[Observation]] = {instant: [] for instant in instants}
    if not instants:
        return answer
    statement, params = compile_observation(condition, license_id=license_id, instants=instants)
    from_parts = _from_parts(condition)
    for row in session.execute(text(statement), params):
        mapping = row._mapping
        group_key = {name: "" if mapping[f"g{i}"] is None else str(mapping[f"g{i}"]) for i, name in enumerate(condition.group_by)}
        if from_parts:  # metric samples: the same parts and combination as the series API
            value, points = combine([part_of(row)], Aggregation(condition.aggregation)), int(mapping["samples"])
        else:
            value, points = mapping["value"], int(mapping["points"])
        answer[instants[mapping["k"] - 1]].append(
            Observation(group_key=group_key, value=None if value is None else float(value), points=points)
        )
    if not condition.group_by:
        for observations in answer.values():
            if not observations:
                observations.append(Observation(group_key={}, value=condition.empty_value, points=0))
    for observations in answer.values():
        observations.sort(key=lambda observation: sorted(observation.group_key.items()))
    return answer


def compile_observation(
    condition: Condition, *, license_id: int | None, instants: Sequence[datetime]
) -> tuple[str, dict[str, Any]]:
    """The SQL text and bind parameters of ``observe`` (``instants`` sorted, distinct); also used by EXPLAIN tests.
    Metric samples give ``metric_aggregates`` parts per instant and group (``rate``: spread increments), every
    other source a ``value`` and ``points``."""
    spec = source_spec(condition.source)
    table = _TABLES[condition.source]
    window = timedelta(minutes=condition.window_minutes)
    params: dict[str, Any] = {
        "ats": list(instants),
        "window": window,
        "window_s": float(window.total_seconds()),
        "range_start": instants[0] - window,
        "range_end": instants[-1],
    }
    sql = _Sql(table, params)
    time_column = sql.column(spec.time_column)
    where = [
        f"{time_column} > :range_start",
        f"{time_column} <= :range_end",
        *_metric_clauses(condition, sql),
        *_filter_clauses(condition, sql),
    ]
    if license_id is not None:
        params["license_id"] = license_id
        where.append(f"{sql.column('license_id')} = :license_id")
    groups = [f"{_group_expression(name, condition, sql)} AS g{i}" for i, name in enumerate(condition.group_by)]
    group_names = [f"g{i}" for i in range(len(condition.group_by))]

    if condition.source is Source.SYSTEM_METRICS and condition.aggregation == "rate":
        return _rate_statement(sql, where, groups, group_names, time_column), params
    if _from_parts(condition):
        return _parts_statement(condition, sql, where, groups, group_names, time_column), params
    columns = [f"{time_column} AS ts", f"{_value_expression(condition, sql)} AS v", *groups]
    if condition.source is Source.TRACES:
        columns.append(f"{sql.column('status')} = 'error' AS err")
    picked = f"SELECT {', '.join(columns)} FROM {sql.table} WHERE {' AND '.join(where)}"
    value, points = _aggregate(condition)

    selected = ", ".join(["k", *(f"picked.{name}" for name in group_names)])
    statement = f"""
        WITH picked AS ({picked})
        SELECT {selected}, {value} AS value, {points} AS points
          FROM picked {_INSTANTS}
         GROUP BY {", ".join(["k", *group_names])}
    """
    return statement, params


class _Sql:
    """Names and parameters of one statement: columns only from the table, values only as parameters."""

    def __init__(self, table: Table, params: dict[str, Any]) -> None:
        self._table = table
        self.table = f'"{table.name}"'
        self.params = params
        self._count = 0

    def column(self, name: str) -> str:
        if name not in self._table.c:
            raise ValueError(f"{name} is not a column of {self._table.name}")  # whitelist and model disagree
        return f'"{name}"'

    def bind(self, value: Any) -> str:
        self._count += 1
        name = f"p{self._count}"
        self.params[name] = value
        return f":{name}"

    def json_field(self, name: str) -> tuple[str, str]:
        """``labels.region`` -> (quoted document column, bound key)."""
        column, _, key = name.partition(".")
        return self.column(column), self.bind(key)


def _metric_clauses(condition: Condition, sql: _Sql) -> list[str]:
    if condition.source in (Source.SYSTEM_METRICS, Source.BUSINESS_METRICS):
        return [f"{sql.column('metric_name')} = {sql.bind(condition.metric)}"]
    return []


def _value_expression(condition: Condition, sql: _Sql) -> str:
    match condition.source:
        case Source.SYSTEM_METRICS:
            return sql.column("value")
        case Source.BUSINESS_METRICS:
            return f"CAST({sql.column('metric_value')} AS double precision)"
        case Source.TRACES:
            return sql.column("duration_ms")
        case Source.TELEMETRY_EVENTS:
            if condition.metric is None:
                return "CAST(NULL AS double precision)"
            if condition.metric == "duration_ms":
                return sql.column("duration_ms")
            return _json_number(*sql.json_field(condition.metric))
    raise ValueError(condition.source)  # pragma: no cover


def _json_number(document: str, key: str) -> str:
    # a key holding anything but a JSON number counts as absent (never a cast error)
    return f"CASE WHEN jsonb_typeof({document} -> {key}) = 'number' THEN CAST({document} ->> {key} AS double precision) END"


def _from_parts(condition: Condition) -> bool:
    return condition.source is Source.SYSTEM_METRICS and condition.aggregation != "rate"


# each row belongs to the instants t with ts <= t < ts + window; width_bucket finds them by binary search in
# the sorted array, so every row is read once however many instants there are
_INSTANTS = """
         CROSS JOIN (SELECT CAST(:ats AS timestamptz[]) AS ats) AS instants
         CROSS JOIN LATERAL generate_series(
                width_bucket(picked.ts - interval '1 microsecond', instants.ats) + 1,
                width_bucket(picked.ts + :window - interval '1 microsecond', instants.ats)) AS k"""


def _parts_statement(
    condition: Condition, sql: _Sql, where: list[str], groups: list[str], group_names: list[str], time_column: str
) -> str:
    """Metric samples: one ``metric_aggregates`` part per instant and group, combined by ``observe``."""
    picked = f"SELECT {time_column} AS ts, {row_terms('m')}{''.join(f', {group}' for group in groups)} FROM {sql.table} m WHERE {' AND '.join(where)}"
    rows = f"""
        WITH picked AS ({picked})
        SELECT k, picked.*
          FROM picked {_INSTANTS}"""
    return parts_query(rows, ["k", *group_names], quantiles=condition.aggregation.startswith("p"))


def _rate_statement(sql: _Sql, where: list[str], groups: list[str], group_names: list[str], time_column: str) -> str:
    """Metric rate: the increments of ``metric_aggregates.increments_query``, each spread over its interval
    ``(s, t]``; a window gets the part of each interval it overlaps (all of a point ``s = t`` inside it), the sum
    divided by the window's seconds. Rows are read from an increment's reach (``RATE_LOOKBACK``) around the range."""
    sql.params["rate_lookback"] = RATE_LOOKBACK
    sql.params["read_start"] = sql.params["range_start"] - RATE_LOOKBACK
    sql.params["read_end"] = sql.params["range_end"] + RATE_LOOKBACK
    read = [
        f"{time_column} > :read_start"
        if clause == f"{time_column} > :range_start"
        else f"{time_column} <= :read_end"
        if clause == f"{time_column} <= :range_end"
        else clause
        for clause in where
    ]
    source = f"(SELECT * FROM {sql.table} WHERE {' AND '.join(read)}) m"
    increments = increments_query("m", source=source, columns=groups)
    selected = ", ".join(["k", *(f"i.{name}" for name in group_names)])
    return f"""
        WITH i AS ({increments})
        SELECT {selected},
               sum(CASE WHEN i.s = i.t THEN i.amount
                        ELSE i.amount * extract(epoch FROM least(i.t, instants.ats[k]) - greatest(i.s, instants.ats[k] - :window))
                             / extract(epoch FROM i.t - i.s) END) / :window_s AS value,
               count(*) AS points
          FROM i
         CROSS JOIN (SELECT CAST(:ats AS timestamptz[]) AS ats) AS instants
         CROSS JOIN LATERAL generate_series(
                width_bucket(CASE WHEN i.s = i.t THEN i.t - interval '1 microsecond' ELSE i.s END, instants.ats) + 1,
                width_bucket(i.t + :window - interval '1 microsecond', instants.ats)) AS k
         WHERE i.s = i.t OR least(i.t, instants.ats[k]) > greatest(i.s, instants.ats[k] - :window)
         GROUP BY {", ".join(["k", *(f"i.{name}" for name in group_names)])}
    """


def _aggregate(condition: Condition) -> tuple[str, str]:
    """(value, points) over the picked rows ``v`` (value) and ``err`` (span error) of events, spans and KPIs."""
    aggregation = condition.aggregation
    counted_by_value = condition.source is Source.TELEMETRY_EVENTS and aggregation not in ("count", "rate")
    points = "count(v)" if counted_by_value else "count(*)"
    if aggregation in _QUANTILES:
        return f"percentile_cont({_QUANTILES[aggregation]}) WITHIN GROUP (ORDER BY v)", points
    match aggregation:
        case "avg":
            return "avg(v)", points
        case "min":
            return "min(v)", points
        case "max":
            return "max(v)", points
        case "sum":
            return "sum(v)", points
        case "count":
            return "CAST(count(*) AS double precision)", points
        case "rate":
            return "count(*) / :window_s", points
        case "error_rate":
            return "CAST(count(*) FILTER (WHERE err) AS double precision) / count(*)", points
    raise ValueError(f"no aggregate for {aggregation}")  # pragma: no cover


def _group_expression(name: str, condition: Condition, sql: _Sql) -> str:
    spec = source_spec(condition.source)
    if name in spec.fields:
        return f"CAST({sql.column(spec.fields[name].column)} AS text)"
    document, key = sql.json_field(name)
    return f"({document} ->> {key})"


def _filter_clauses(condition: Condition, sql: _Sql) -> list[str]:
    spec = source_spec(condition.source)
    clauses: list[str] = []
    for name, ops in condition.filters.items():
        field = spec.fields.get(name)
        for op, operand in ops.items():
            if field is None:
                clauses.append(_json_clause(name, op, operand, sql))
            else:
                if field.column == "license_id" and operand is None:
                    # license_id null names the platform-wide rows: the platform license's (revision 0018)
                    operand = PLATFORM_LICENSE_ID
                clauses.append(_column_clause(sql.column(field.column), field.kind == "number", op, operand, sql))
    return clauses


def _column_clause(column: str, numeric: bool, op: str, operand: Any, sql: _Sql) -> str:
    scalar_type, array_type = ("double precision", "double precision[]") if numeric else ("text", "text[]")

    def scalar(value: Any) -> str:
        return f"CAST({sql.bind(float(value) if numeric else value)} AS {scalar_type})"

    def array(values: list[Any]) -> str:
        return f"CAST({sql.bind([float(v) if numeric else v for v in values])} AS {array_type})"

    match op:
        case "eq":
            return f"{column} IS NULL" if operand is None else f"{column} = {scalar(operand)}"
        case "ne":
            return f"{column} IS NOT NULL" if operand is None else f"{column} IS DISTINCT FROM {scalar(operand)}"
        case "in":
            return f"{column} = ANY({array(operand)})"
        case "not_in":
            return f"({column} IS NULL OR {column} <> ALL({array(operand)}))"
        case "gt" | "gte" | "lt" | "lte":
            return f"{column} {_COMPARE[op]} {scalar(operand)}"
    raise ValueError(f"unknown filter operator {op}")  # pragma: no cover


_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _json_clause(name: str, op: str, operand: Any, sql: _Sql) -> str:
    column, _, key = name.partition(".")
    document = sql.column(column)

    def contains(value: Any) -> str:
        # containment of {key: value}: the GIN jsonb_path_ops index answers it
        return f"{document} @> CAST({sql.bind(json.dumps({key: value}))} AS jsonb)"

    match op:
        case "eq" if operand is None:
            return f"coalesce({document} -> {sql.bind(key)}, 'null'::jsonb) = 'null'::jsonb"
        case "ne" if operand is None:
            return f"coalesce({document} -> {sql.bind(key)}, 'null'::jsonb) <> 'null'::jsonb"
        case "eq":
            return contains(operand)
        case "ne":
            return f"NOT ({contains(operand)})"
        case "in":
            documents = [json.dumps({key: value}) for value in operand]
            return f"{document} @> ANY(CAST({sql.bind(documents)} AS jsonb[]))"
        case "not_in":
            documents = [json.dumps({key: value}) for value in operand]
            return f"NOT ({document} @> ANY(CAST({sql.bind(documents)} AS jsonb[])))"
        case "gt" | "gte" | "lt" | "lte":
            return f"{_json_number(document, sql.bind(key))} {_COMPARE[op]} CAST({sql.bind(float(operand))} AS double precision)"
    raise ValueError(f"unknown filter operator {op}")  # pragma: no cover
