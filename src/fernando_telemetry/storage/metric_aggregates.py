"""The SQL every metric reader shares: what one ``system_metrics`` row contributes (its observations, sum,
extremes, sketch and increment), the parts of a bucket aggregated from such rows, and increments spread over
step buckets. Raw series, the hourly rollup, the raw tail of the rollups and metric alert rules build their
statements from these pieces, so they aggregate alike. Returns SQL text and plain values.

Imports only core.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from fernando_telemetry.core.metric_aggregation import MetricPart

__all__ = [
    "HISTOGRAM_TYPES",
    "RATE_LOOKBACK",
    "SERIES_IDENTITY",
    "increments_query",
    "part_of",
    "parts_query",
    "quantiles_sql",
    "row_terms",
]

HISTOGRAM_TYPES = ("histogram", "timer", "distribution")
"""Metric types whose row is ``sample_count`` values with mean ``value`` (their sum is ``value * sample_count``)."""

SERIES_IDENTITY = ("metric_name", "service_name", "host_name", "instance_id", "labels", "license_id")
"""What tells one series apart from another (a gauge's previous sample is looked for within its series)."""

RATE_LOOKBACK = timedelta(hours=1)
"""How far an increment reaches back for ``rate``: its interval ``(start_time, timestamp]`` is cut to the last
hour before its timestamp, and a gauge's previous sample counts when at most this much older."""

_HISTOGRAM_LIST = ", ".join(f"'{name}'" for name in HISTOGRAM_TYPES)
_FRACTIONS = "'{0.5,0.9,0.95,0.99}'"


def row_terms(alias: str) -> str:
    """The select-list of what one row of ``system_metrics`` (named ``alias``) contributes: ``n`` observations,
    ``total`` (its part of ``sum``), ``weighted`` (``value * sample_count``), ``lo``/``hi`` (its extremes, NULL
    without observation: ``min_value``/``max_value`` when stored, else the estimates of its sketch's first and last
    keys, since a row without exact extremes, such as a cumulative histogram's later increment, is bounded by its
    own distribution, not by its mean; else ``value``), ``v`` and ``plain`` (one observation without sketch: exact percentiles can use ``v``),
    and its sketch as ``keys``/``counts`` (a row without sketch is ``sample_count`` copies of its value)."""
    m = alias
    return f"""{m}.sample_count::bigint AS n,
               CASE WHEN {m}.metric_type IN ({_HISTOGRAM_LIST}) THEN {m}.value * {m}.sample_count ELSE {m}.value END AS total,
               {m}.value * {m}.sample_count AS weighted,
               CASE WHEN {m}.sample_count > 0 THEN
                    coalesce({m}.min_value, CASE WHEN cardinality({m}.sketch_keys) > 0 THEN rollup_sketch_value({m}.sketch_keys[1]) END,
                             {m}.value) END AS lo,
               CASE WHEN {m}.sample_count > 0 THEN
                    coalesce({m}.max_value,
                             CASE WHEN cardinality({m}.sketch_keys) > 0
                                  THEN rollup_sketch_value({m}.sketch_keys[cardinality({m}.sketch_keys)]) END,
                             {m}.value) END AS hi,
               {m}.value AS v,
               ({m}.sketch_keys IS NULL AND {m}.sample_count = 1) AS plain,
               coalesce({m}.sketch_keys, ARRAY[rollup_sketch_key({m}.value)]) AS keys,
               coalesce({m}.sketch_counts, ARRAY[{m}.sample_count::bigint]) AS counts"""


def parts_query(rows: str, keys: Sequence[str], *, quantiles: bool = True) -> str:
    """One part per distinct ``keys`` of the ``rows`` statement (which selects ``keys`` and ``row_terms``):
    ``samples``, ``observations``, ``value_sum``, ``weighted_sum``, ``value_min``, ``value_max``, ``exact``
    (percentile_cont of the values when every row is plain, else NULL) and the merged sketch as ``sketch_keys``/
    ``sketch_counts``. Without ``quantiles`` the percentile columns and sketch are NULL (cheaper)."""
    key_list = ", ".join(f"r.{key}" for key in keys)
    group_key = f"jsonb_build_array({key_list})"
    exact = (
        "CASE WHEN bool_and(r.plain) THEN percentile_cont(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY r.v) END"
        if quantiles
        else "CAST(NULL AS double precision[])"
    )
    parts = f"""
        SELECT {key_list}, {group_key} AS group_key,
               count(*) AS samples,
               coalesce(sum(r.n), 0)::bigint AS observations,
               coalesce(sum(r.total), 0) AS value_sum,
               coalesce(sum(r.weighted), 0) AS weighted_sum,
               min(r.lo) AS value_min,
               max(r.hi) AS value_max,
               {exact} AS exact
          FROM r
         GROUP BY {key_list}"""
    if not quantiles:
        return f"""
        WITH r AS ({rows})
        SELECT a.*, CAST(NULL AS integer[]) AS sketch_keys, CAST(NULL AS bigint[]) AS sketch_counts FROM ({parts}) a"""
    # the merged sketch per group: counts added per key over the group's rows, then one ascending array
    return f"""
        WITH r AS ({rows}),
        a AS ({parts}),
        s AS (SELECT b.group_key, array_agg(b.key ORDER BY b.key) AS sketch_keys, array_agg(b.count ORDER BY b.key) AS sketch_counts
                FROM (SELECT {group_key} AS group_key, u.key, sum(u.count)::bigint AS count
                        FROM r CROSS JOIN LATERAL unnest(r.keys, r.counts) AS u(key, count)
                       WHERE u.count > 0
                       GROUP BY 1, 2) b
               GROUP BY b.group_key)
        SELECT a.*, s.sketch_keys, s.sketch_counts FROM a LEFT JOIN s ON s.group_key = a.group_key"""


def part_of(row: Any) -> MetricPart:
    """The ``MetricPart`` of one row of ``parts_query``."""
    return MetricPart(
        samples=int(row.samples),
        observations=int(row.observations),
        value_sum=float(row.value_sum),
        weighted_sum=float(row.weighted_sum),
        value_min=None if row.value_min is None else float(row.value_min),
        value_max=None if row.value_max is None else float(row.value_max),
        quantiles=None if row.exact is None else tuple(row.exact),
        sketch_keys=list(row.sketch_keys or []),
        sketch_counts=list(row.sketch_counts or []),
    )


def increments_query(alias: str, *, source: str, columns: Sequence[str]) -> str:
    """Increments with the interval they cover, from the rows of ``source`` (a FROM-able relation of
    ``system_metrics`` rows named ``alias``, already filtered), keeping ``columns`` (select expressions with
    aliases). Each result row has ``s`` and ``t`` (the interval ``(s, t]``; ``s = t`` charges it at ``t``) and
    ``amount``: a counter's ``value``; a histogram-like row's ``sample_count`` (the rate of observations); a
    gauge's rise since the previous sample of its series (a fall adds nothing), over the time between them.
    Intervals are cut to ``RATE_LOOKBACK`` before ``t`` (bound as ``:rate_lookback``)."""
    m = alias
    identity = ", ".join(f"{m}.{name}" for name in SERIES_IDENTITY)
    kept = "".join(f", {column}" for column in columns)
    return f"""
        SELECT x.*, least(greatest(x.s0, x.t - CAST(:rate_lookback AS interval)), x.t) AS s
          FROM (SELECT {m}."timestamp" AS t,
                       CASE WHEN {m}.metric_type = 'gauge' THEN lag({m}."timestamp") OVER series
                            ELSE coalesce({m}.start_time, {m}."timestamp") END AS s0,
                       CASE WHEN {m}.metric_type = 'counter' THEN {m}.value
                            WHEN {m}.metric_type IN ({_HISTOGRAM_LIST}) THEN CAST({m}.sample_count AS double precision)
                            ELSE greatest({m}.value - lag({m}.value) OVER series, 0) END AS amount,
                       {m}.metric_type = 'gauge' AS derived{kept}
                  FROM {source}
                WINDOW series AS (PARTITION BY {identity} ORDER BY {m}."timestamp", {m}.metric_id)) x
         WHERE x.s0 IS NOT NULL AND (NOT x.derived OR x.s0 >= x.t - CAST(:rate_lookback AS interval))"""


def quantiles_sql(alias: str) -> str:
    """p50, p90, p95, p99 of a ``parts_query`` row named ``alias`` as one array: the exact percentiles when
    known, else those of its merged sketch (NULLs without observation)."""
    p = alias
    return (
        f"coalesce({p}.exact, rollup_sketch_quantiles(coalesce({p}.sketch_keys, '{{}}'), coalesce({p}.sketch_counts, '{{}}'), "
        f"{_FRACTIONS}, {p}.value_min, {p}.value_max))"
    )
