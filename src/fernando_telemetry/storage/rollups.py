"""Rollup refresh in SQL: the refresh lock and target, marking hours dirty from the watermark, and the
recomputation of hourly rows from raw rows and daily rows from hourly rows. Returns plain values.

An hour is *pending* while it is marked in ``rollup_dirty_buckets`` or holds a raw row written after the
watermark (``created_at > rollup_state.watermark``, found through the BRIN index on ``created_at``);
readers take pending hours from raw rows. Imports only ``metric_aggregates`` and ``storage.results``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.storage.metric_aggregates import parts_query, quantiles_sql, row_terms
from fernando_telemetry.storage.results import rows_affected

__all__ = [
    "SOURCES",
    "RollupCleanup",
    "RollupFailure",
    "Source",
    "SourceStatus",
    "claim_dirty",
    "cleanup_old_rollups",
    "clear_dirty",
    "count_dirty",
    "dirty_days",
    "drop_bucket",
    "failures",
    "forget_failures",
    "lock",
    "mark_dirty",
    "mark_pending",
    "pending_hours",
    "raw_horizon",
    "recompute_days",
    "recompute_hours",
    "record_failure",
    "refresh_target",
    "statuses",
]

LOCK_KEY = "fernando_telemetry.rollups"
"""The advisory lock every refresh step and retention run takes: two never run at once."""


@dataclass(frozen=True)
class Source:
    """A raw table and its two rollup tables."""

    table: str
    time_column: str
    hourly_insert: str
    daily_insert: str

    @property
    def hourly_table(self) -> str:
        return f"{self.table}_hourly"

    @property
    def daily_table(self) -> str:
        return f"{self.table}_daily"


@dataclass(frozen=True)
class SourceStatus:
    table: str
    watermark: datetime | None
    raw_horizon: datetime | None
    refreshed_at: datetime | None
    dirty_hours: int
    dirty_days: int
    oldest_dirty: datetime | None


@dataclass(frozen=True)
class RollupFailure:
    """A bucket whose last recomputation failed: retried once ``failed_at`` is older than the retry delay."""

    table: str
    grain: str
    bucket_start: datetime
    error: str
    failed_at: datetime
    failures: int


@dataclass(frozen=True)
class RollupCleanup:
    """What rollup retention deleted from one rollup table; no cutoff while the raw rows of its hours are all kept."""

    table_name: str
    cutoff: datetime | None
    rows_deleted: int


# Hourly rows from the raw rows of [:start, :end), whole UTC hours. The range is bound as values, so the
# plan reads only its partitions, through their time indexes; exact percentiles (percentile_cont with an
# array of fractions sorts once) and the sketch as sorted keys and counts.
_EVENTS_HOURLY = """
INSERT INTO telemetry_events_hourly (
    bucket_start, event_type, license_id, events, unique_users, unique_sessions, errors,
    duration_count, duration_sum, duration_min, duration_max,
    duration_p50, duration_p90, duration_p95, duration_p99, duration_sketch_keys, duration_sketch_counts)
SELECT g.hour, g.event_type, g.license_id, g.events, g.unique_users, g.unique_sessions, g.errors,
       g.duration_count, g.duration_sum, g.duration_min, g.duration_max,
       g.q[1], g.q[2], g.q[3], g.q[4], coalesce(s.keys, '{}'), coalesce(s.counts, '{}')
  FROM (SELECT date_trunc('hour', e.event_timestamp, 'UTC') AS hour, e.event_type, e.license_id,
               count(*) AS events,
               count(DISTINCT e.user_id) AS unique_users,
               count(DISTINCT e.session_id) AS unique_sessions,
               count(*) FILTER (WHERE telemetry_event_is_error(e.event_type, e.payload)) AS errors,
               count(e.duration_ms) AS duration_count,
               sum(CASE WHEN e.duration_ms > 1e250 THEN 1e250 ELSE e.duration_ms END) AS duration_sum,
               min(e.duration_ms) AS duration_min,
               max(e.duration_ms) AS duration_max,
               percentile_cont(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY e.duration_ms) AS q,
               array_agg(rollup_sketch_key(e.duration_ms)) FILTER (WHERE e.duration_ms IS NOT NULL) AS keys
          FROM telemetry_events e
         WHERE e.event_timestamp >= :start AND e.event_timestamp < :end
         GROUP BY 1, 2, 3
       ) g
 CROSS JOIN LATERAL (
       SELECT array_agg(b.key ORDER BY b.key) AS keys, array_agg(b.count ORDER BY b.key) AS counts
         FROM (SELECT u.key, count(*) AS count FROM unnest(g.keys) AS u(key) GROUP BY u.key) b
       ) s
"""

# Metric rows as every reader aggregates them (metric_aggregates): observations and sums added, extremes from
# the rows' minima and maxima, the rows' sketches merged; percentiles exact when every row is one plain value.
_METRIC_ROWS = f"""
        SELECT date_trunc('hour', m."timestamp", 'UTC') AS hour, m.service_name, m.metric_name, m.host_name, m.license_id,
               {row_terms("m")}
          FROM system_metrics m
         WHERE m."timestamp" >= :start AND m."timestamp" < :end"""

_METRICS_HOURLY = f"""
INSERT INTO system_metrics_hourly (
    bucket_start, service_name, metric_name, host_name, license_id, samples, value_sum, observations, weighted_sum,
    value_min, value_max, value_p50, value_p90, value_p95, value_p99, value_sketch_keys, value_sketch_counts)
SELECT p.hour, p.service_name, p.metric_name, p.host_name, p.license_id, p.samples, p.value_sum, p.observations,
       p.weighted_sum, p.value_min, p.value_max, q.q[1], q.q[2], q.q[3], q.q[4],
       coalesce(p.sketch_keys, '{{}}'), coalesce(p.sketch_counts, '{{}}')
  FROM ({parts_query(_METRIC_ROWS, ("hour", "service_name", "metric_name", "host_name", "license_id"))}) p
 CROSS JOIN LATERAL (SELECT {quantiles_sql("p")} AS q) q
"""

_TRACES_HOURLY = """
INSERT INTO traces_hourly (
    bucket_start, service_name, operation_name, license_id, spans, errors, duration_sum, duration_min, duration_max,
    duration_p50, duration_p90, duration_p95, duration_p99, duration_sketch_keys, duration_sketch_counts,
    server_spans, server_errors)
SELECT g.hour, g.service_name, g.operation_name, g.license_id, g.spans, g.errors, g.duration_sum, g.duration_min,
       g.duration_max, g.q[1], g.q[2], g.q[3], g.q[4], s.keys, s.counts, g.server_spans, g.server_errors
  FROM (SELECT date_trunc('hour', t.start_time, 'UTC') AS hour, t.service_name, t.operation_name, t.license_id,
               count(*) AS spans,
               count(*) FILTER (WHERE t.status = 'error') AS errors,
               count(*) FILTER (WHERE t.span_kind = 'server') AS server_spans,
               count(*) FILTER (WHERE t.span_kind = 'server' AND t.status = 'error') AS server_errors,
               sum(CASE WHEN t.duration_ms > 1e250 THEN 1e250 ELSE t.duration_ms END) AS duration_sum,
               min(t.duration_ms) AS duration_min,
               max(t.duration_ms) AS duration_max,
               percentile_cont(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY t.duration_ms) AS q,
               array_agg(rollup_sketch_key(t.duration_ms)) AS keys
          FROM traces t
         WHERE t.start_time >= :start AND t.start_time < :end
         GROUP BY 1, 2, 3, 4
       ) g
 CROSS JOIN LATERAL (
       SELECT array_agg(b.key ORDER BY b.key) AS keys, array_agg(b.count ORDER BY b.key) AS counts
         FROM (SELECT u.key, count(*) AS count FROM unnest(g.keys) AS u(key) GROUP BY u.key) b
       ) s
"""


_DAY_FILTER = """h.bucket_start >= :first AND h.bucket_start < :last
           AND date_trunc('day', h.bucket_start, 'UTC') = ANY(CAST(:days AS timestamptz[]))"""
"""The hourly rows of the days ``:days`` (``:first`` and ``:last`` bound them, so only their partitions are read)."""


def _day_sketches(hourly_table: str, prefix: str, keys: str) -> str:
    """The sketches of each group's hourly rows over each day merged: buckets in key order with their counts added."""
    return f"""
       SELECT b.day, {keys.replace("h.", "b.")}, array_agg(b.key ORDER BY b.key) AS keys, array_agg(b.count ORDER BY b.key) AS counts
         FROM (SELECT date_trunc('day', h.bucket_start, 'UTC') AS day, {keys}, u.key, sum(u.count)::bigint AS count
                 FROM {hourly_table} h
                CROSS JOIN LATERAL unnest(h.{prefix}_sketch_keys, h.{prefix}_sketch_counts) AS u(key, count)
                WHERE {_DAY_FILTER}
                GROUP BY 1, {", ".join(str(n) for n in range(2, keys.count(",") + 3))}, u.key) b
        GROUP BY b.day, {keys.replace("h.", "b.")}"""


def _same(columns: str, nullable: tuple[str, ...] = ()) -> str:
    """Join conditions of the day and group columns between ``g`` and ``s``."""
    names = ["day", *(column.strip().removeprefix("h.") for column in columns.split(","))]
    return " AND ".join(
        f"s.{name} IS NOT DISTINCT FROM g.{name}" if name in nullable else f"s.{name} = g.{name}" for name in names
    )


# Daily rows from the days' hourly rows: counts and sums added, extremes of extremes, sketches merged and their
# quantiles stored. Distinct users and sessions cannot be added up over hours, so they are counted again from the
# day's raw rows (once per day: a day is rolled up when it has ended). Every part groups by the license, the
# distribution column on Citus, so each runs on the shards.
_EVENT_KEYS = "h.event_type, h.license_id"
_EVENTS_DAILY = f"""
INSERT INTO telemetry_events_daily (
    bucket_start, event_type, license_id, events, unique_users, unique_sessions, errors,
    duration_count, duration_sum, duration_min, duration_max,
    duration_p50, duration_p90, duration_p95, duration_p99, duration_sketch_keys, duration_sketch_counts)
SELECT x.day, x.event_type, x.license_id, x.events, x.unique_users, x.unique_sessions, x.errors, x.duration_count,
       x.duration_sum, x.duration_min, x.duration_max, x.q[1], x.q[2], x.q[3], x.q[4], x.keys, x.counts
  FROM (SELECT g.day, g.event_type, g.license_id, g.events, coalesce(dc.unique_users, 0) AS unique_users,
               coalesce(dc.unique_sessions, 0) AS unique_sessions, g.errors, g.duration_count, g.duration_sum,
               g.duration_min, g.duration_max, coalesce(s.keys, '{{}}') AS keys, coalesce(s.counts, '{{}}') AS counts,
               rollup_sketch_quantiles(s.keys, s.counts, '{{0.5,0.9,0.95,0.99}}', g.duration_min, g.duration_max) AS q
          FROM (SELECT date_trunc('day', h.bucket_start, 'UTC') AS day, {_EVENT_KEYS},
                       sum(h.events)::bigint AS events, sum(h.errors)::bigint AS errors,
                       sum(h.duration_count)::bigint AS duration_count, sum(h.duration_sum) AS duration_sum,
                       min(h.duration_min) AS duration_min, max(h.duration_max) AS duration_max
                  FROM telemetry_events_hourly h
                 WHERE {_DAY_FILTER}
                 GROUP BY 1, 2, 3) g
          LEFT JOIN ({_day_sketches("telemetry_events_hourly", "duration", _EVENT_KEYS)}) s
            ON {_same(_EVENT_KEYS)}
          LEFT JOIN (SELECT date_trunc('day', e.event_timestamp, 'UTC') AS day, e.event_type, e.license_id,
                            count(DISTINCT e.user_id) AS unique_users, count(DISTINCT e.session_id) AS unique_sessions
                       FROM telemetry_events e
                      WHERE e.event_timestamp >= :first AND e.event_timestamp < :last
                        AND date_trunc('day', e.event_timestamp, 'UTC') = ANY(CAST(:days AS timestamptz[]))
                      GROUP BY 1, 2, 3) dc
            ON dc.day = g.day AND dc.event_type = g.event_type AND dc.license_id = g.license_id
       ) x
"""

_METRIC_KEYS = "h.service_name, h.metric_name, h.host_name, h.license_id"
_METRICS_DAILY = f"""
INSERT INTO system_metrics_daily (
    bucket_start, service_name, metric_name, host_name, license_id, samples, value_sum, observations, weighted_sum,
    value_min, value_max, value_p50, value_p90, value_p95, value_p99, value_sketch_keys, value_sketch_counts)
SELECT x.day, x.service_name, x.metric_name, x.host_name, x.license_id, x.samples, x.value_sum, x.observations,
       x.weighted_sum, x.value_min, x.value_max, x.q[1], x.q[2], x.q[3], x.q[4], x.keys, x.counts
  FROM (SELECT g.day, g.service_name, g.metric_name, g.host_name, g.license_id, g.samples, g.value_sum, g.observations,
               g.weighted_sum, g.value_min, g.value_max, coalesce(s.keys, '{{}}') AS keys, coalesce(s.counts, '{{}}') AS counts,
               rollup_sketch_quantiles(s.keys, s.counts, '{{0.5,0.9,0.95,0.99}}', g.value_min, g.value_max) AS q
          FROM (SELECT date_trunc('day', h.bucket_start, 'UTC') AS day, {_METRIC_KEYS},
                       sum(h.samples)::bigint AS samples, sum(h.value_sum) AS value_sum,
                       sum(h.observations)::bigint AS observations, sum(h.weighted_sum) AS weighted_sum,
                       min(h.value_min) AS value_min, max(h.value_max) AS value_max
                  FROM system_metrics_hourly h
                 WHERE {_DAY_FILTER}
                 GROUP BY 1, 2, 3, 4, 5) g
          LEFT JOIN ({_day_sketches("system_metrics_hourly", "value", _METRIC_KEYS)}) s
            ON {_same(_METRIC_KEYS, ("service_name", "host_name"))}
       ) x
"""

_TRACE_KEYS = "h.service_name, h.operation_name, h.license_id"
_TRACES_DAILY = f"""
INSERT INTO traces_daily (
    bucket_start, service_name, operation_name, license_id, spans, errors, duration_sum, duration_min, duration_max,
    duration_p50, duration_p90, duration_p95, duration_p99, duration_sketch_keys, duration_sketch_counts,
    server_spans, server_errors)
SELECT x.day, x.service_name, x.operation_name, x.license_id, x.spans, x.errors, x.duration_sum, x.duration_min,
       x.duration_max, x.q[1], x.q[2], x.q[3], x.q[4], x.keys, x.counts, x.server_spans, x.server_errors
  FROM (SELECT g.day, g.service_name, g.operation_name, g.license_id, g.spans, g.errors, g.duration_sum, g.duration_min,
               g.duration_max, s.keys, s.counts, g.server_spans, g.server_errors,
               rollup_sketch_quantiles(s.keys, s.counts, '{{0.5,0.9,0.95,0.99}}', g.duration_min, g.duration_max) AS q
          FROM (SELECT date_trunc('day', h.bucket_start, 'UTC') AS day, {_TRACE_KEYS},
                       sum(h.spans)::bigint AS spans, sum(h.errors)::bigint AS errors, sum(h.duration_sum) AS duration_sum,
                       sum(h.server_spans)::bigint AS server_spans, sum(h.server_errors)::bigint AS server_errors,
                       min(h.duration_min) AS duration_min, max(h.duration_max) AS duration_max
                  FROM traces_hourly h
                 WHERE {_DAY_FILTER}
                 GROUP BY 1, 2, 3, 4) g
          LEFT JOIN ({_day_sketches("traces_hourly", "duration", _TRACE_KEYS)}) s
            ON {_same(_TRACE_KEYS)}
       ) x
"""

SOURCES: dict[str, Source] = {
    "telemetry_events": Source("telemetry_events", "event_timestamp", _EVENTS_HOURLY, _EVENTS_DAILY),
    "system_metrics": Source("system_metrics", "timestamp", _METRICS_HOURLY, _METRICS_DAILY),
    "traces": Source("traces", "start_time", _TRACES_HOURLY, _TRACES_DAILY),
}


def _source(table: str) -> Source:
    try:
        return SOURCES[table]
    except KeyError:
        raise ValueError(f"{table!r} has no rollups; expected one of {sorted(SOURCES)}") from None


def lock(session: Session, *, wait: bool) -> bool:
    """Take the rollup lock for the rest of the transaction; without ``wait``, False if another holds it."""
    if wait:
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": LOCK_KEY})
        return True
    return bool(
        session.execute(text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": LOCK_KEY}).scalar_one()
    )


# The oldest start of a transaction of this database, other than this one, that has written and not ended.
_OLDEST_WRITER = """
SELECT min(a.xact_start) FROM pg_stat_activity a
 WHERE a.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND a.pid <> pg_backend_pid() AND a.backend_xid IS NOT NULL"""

_NOT_CITUS_CONNECTION = "a.application_name NOT LIKE 'citus\\_internal%'"

# On Citus a writer on the coordinator writes only to shards on the workers, so its own backend has no
# transaction id: every coordinator backend that runs a distributed transaction counts instead (Citus assigns
# one at its first command sent to a node), with the start of its transaction there. The rows' created_at is
# that start: Citus evaluates now() on the coordinator for INSERT ... VALUES and COPY; an INSERT ... SELECT
# pushed down to the workers takes the worker's transaction start, which the coordinator's precedes (nodes whose
# clocks differ by more than the safety lag could break that). Citus's own connections (between nodes, or back
# to this node) are left out: their initiator is counted.
_OLDEST_DISTRIBUTED_WRITER = f"""
SELECT min(a.xact_start)
  FROM get_all_active_transactions() t
  JOIN pg_stat_activity a ON a.pid = t.process_id
 WHERE t.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND NOT t.worker_query AND t.transaction_number <> 0 AND a.pid <> pg_backend_pid()
   AND a.backend_type = 'client backend' AND {_NOT_CITUS_CONNECTION}"""


def _on_citus(session: Session) -> bool:
    return bool(session.execute(text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")).scalar_one())


def refresh_target(session: Session, *, now: datetime, safety_lag_s: float) -> datetime:
    """Up to where a refresh may advance the watermark: ``safety_lag_s`` before ``now`` (or the database's
    clock, if earlier), and never up to the start of a transaction of this database that has written and not
    ended, since its rows carry that start as ``created_at`` and are not visible yet. On Citus, every
    transaction the coordinator runs across the cluster counts as writing (its writes are on the workers)."""
    if _on_citus(session):
        writers = f"least(({_OLDEST_WRITER} AND {_NOT_CITUS_CONNECTION}), ({_OLDEST_DISTRIBUTED_WRITER}))"
    else:
        writers = f"({_OLDEST_WRITER})"
    return session.execute(
        text(
            f"""
            SELECT least(least(CAST(:now AS timestamptz), clock_timestamp()) - make_interval(secs => :lag),
                         {writers} - interval '1 microsecond')
            """  # noqa: S608 - fixed SQL only
        ),
        {"now": now, "lag": safety_lag_s},
    ).scalar_one()


def mark_pending(session: Session, *, table: str, until: datetime, now: datetime) -> int:
    """Mark dirty the hours of rows written after the watermark and up to ``until``, then move the
    watermark to ``until``; returns how many hours were newly marked."""
    source = _source(table)
    marked = rows_affected(
        session.execute(
            text(
                f"""
            WITH state AS (SELECT watermark FROM rollup_state WHERE source_table = :table FOR UPDATE)
            INSERT INTO rollup_dirty_buckets (source_table, grain, bucket_start)
            SELECT DISTINCT :table, 'hour', date_trunc('hour', raw."{source.time_column}", 'UTC')
              FROM {source.table} raw, state
             WHERE raw.created_at > state.watermark AND raw.created_at <= :until
            ON CONFLICT DO NOTHING
            """  # noqa: S608 - table and column names come from SOURCES
            ),
            {"table": table, "until": until},
        )
    )
    session.execute(
        text("UPDATE rollup_state SET watermark = greatest(watermark, :until), refreshed_at = :now WHERE source_table = :table"),
        {"table": table, "until": until, "now": now},
    )
    return marked


_NOT_FAILED = """
               AND NOT EXISTS (SELECT 1 FROM rollup_failures f
                                WHERE f.source_table = d.source_table AND f.grain = d.grain
                                  AND f.bucket_start = d.bucket_start AND f.failed_at > :retry_before)"""
"""Leaves out buckets whose recomputation failed after ``:retry_before`` (they wait for their retry)."""


def claim_dirty(
    session: Session,
    *,
    table: str,
    grain: str,
    limit: int,
    ended_by: datetime | None = None,
    retry_before: datetime | None = None,
) -> list[datetime]:
    """The oldest ``limit`` dirty buckets of a grain, locked until the transaction ends. For days, only
    those that ended by ``ended_by`` and have no dirty hour left (their hourly rows are current). With
    ``retry_before``, buckets that failed after it are left out."""
    condition = _NOT_FAILED if retry_before is not None else ""
    if grain == "day":
        condition += """
               AND d.bucket_start + interval '1 day' <= :ended_by
               AND NOT EXISTS (SELECT 1 FROM rollup_dirty_buckets h
                                WHERE h.source_table = d.source_table AND h.grain = 'hour'
                                  AND h.bucket_start >= d.bucket_start AND h.bucket_start < d.bucket_start + interval '1 day')"""
    rows = session.execute(
        text(
            f"""
            SELECT d.bucket_start FROM rollup_dirty_buckets d
             WHERE d.source_table = :table AND d.grain = :grain {condition}
             ORDER BY d.bucket_start
             LIMIT :limit
               FOR UPDATE
            """
        ),
        {"table": table, "grain": grain, "limit": limit, "ended_by": ended_by, "retry_before": retry_before},
    )
    return list(rows.scalars())


def count_dirty(
    session: Session, *, table: str, grain: str, ended_by: datetime | None = None, retry_before: datetime | None = None
) -> int:
    """Dirty buckets of a grain (days: ended by ``ended_by``), without those that failed after ``retry_before``."""
    condition = "AND d.bucket_start + interval '1 day' <= :ended_by" if grain == "day" and ended_by is not None else ""
    if retry_before is not None:
        condition += _NOT_FAILED
    return int(
        session.execute(
            text(f"SELECT count(*) FROM rollup_dirty_buckets d WHERE d.source_table = :table AND d.grain = :grain {condition}"),
            {"table": table, "grain": grain, "ended_by": ended_by, "retry_before": retry_before},
        ).scalar_one()
    )


def record_failure(session: Session, *, table: str, grain: str, bucket_start: datetime, error: str, now: datetime) -> int:
    """Record that recomputing one bucket failed with ``error`` (its first line, at most 500 characters); returns
    how many times it has failed."""
    return session.execute(
        text(
            """
            INSERT INTO rollup_failures (source_table, grain, bucket_start, error, failed_at)
            VALUES (:table, :grain, :bucket, :error, :now)
            ON CONFLICT (source_table, grain, bucket_start)
            DO UPDATE SET error = excluded.error, failed_at = excluded.failed_at, failures = rollup_failures.failures + 1
            RETURNING failures
            """
        ),
        {
            "table": table,
            "grain": grain,
            "bucket": bucket_start,
            "error": error.strip().splitlines()[0][:500] if error.strip() else "failed",
            "now": now,
        },
    ).scalar_one()


def drop_bucket(session: Session, *, table: str, grain: str, bucket_start: datetime) -> None:
    """Delete the rollup rows of one bucket (given up after repeated failures: readers take it from raw rows)."""
    source = _source(table)
    rollup_table = source.hourly_table if grain == "hour" else source.daily_table
    session.execute(text(f"DELETE FROM {rollup_table} WHERE bucket_start = :bucket"), {"bucket": bucket_start})  # noqa: S608


def forget_failures(session: Session, *, table: str, grain: str, buckets: Sequence[datetime]) -> None:
    """Drop the failure records of buckets that have now been recomputed."""
    if buckets:
        session.execute(
            text(
                "DELETE FROM rollup_failures WHERE source_table = :table AND grain = :grain "
                "AND bucket_start = ANY(CAST(:buckets AS timestamptz[]))"
            ),
            {"table": table, "grain": grain, "buckets": list(buckets)},
        )


def failures(session: Session) -> list[RollupFailure]:
    """Every recorded failing bucket, oldest bucket first."""
    rows = session.execute(
        text(
            "SELECT source_table, grain, bucket_start, error, failed_at, failures FROM rollup_failures "
            "ORDER BY bucket_start, source_table, grain"
        )
    )
    return [RollupFailure(*row) for row in rows]


def mark_dirty(session: Session, *, table: str, grain: str, buckets: Sequence[datetime]) -> None:
    if buckets:
        session.execute(
            text(
                """
                INSERT INTO rollup_dirty_buckets (source_table, grain, bucket_start)
                SELECT :table, :grain, b FROM unnest(CAST(:buckets AS timestamptz[])) AS b
                ON CONFLICT DO NOTHING
                """
            ),
            {"table": table, "grain": grain, "buckets": list(buckets)},
        )


def clear_dirty(session: Session, *, table: str, grain: str, buckets: Sequence[datetime]) -> None:
    if buckets:
        session.execute(
            text(
                "DELETE FROM rollup_dirty_buckets WHERE source_table = :table AND grain = :grain "
                "AND bucket_start = ANY(CAST(:buckets AS timestamptz[]))"
            ),
            {"table": table, "grain": grain, "buckets": list(buckets)},
        )


def raw_horizon(session: Session, *, table: str) -> datetime | None:
    """Where the raw table's retention has cut: hours before it are no longer (wholly) in raw rows; None
    until retention first runs."""
    return session.execute(
        text("SELECT nullif(raw_horizon, '-infinity') FROM rollup_state WHERE source_table = :table"), {"table": table}
    ).scalar_one()


def recompute_hours(session: Session, *, table: str, hours: Sequence[datetime]) -> int:
    """Replace the hourly rows of ``hours`` by a fresh aggregation of their raw rows; returns rows written."""
    if not hours:
        return 0
    source = _source(table)
    written = 0
    for start, end in _runs(hours, step=timedelta(hours=1)):
        range_params = {"start": start, "end": end}
        session.execute(
            text(f"DELETE FROM {source.hourly_table} WHERE bucket_start >= :start AND bucket_start < :end"),  # noqa: S608
            range_params,
        )
        written += rows_affected(session.execute(text(source.hourly_insert), range_params))
    return written


def _runs(starts: Sequence[datetime], *, step: timedelta) -> list[tuple[datetime, datetime]]:
    """Consecutive bucket starts as ``[first, last + step)`` ranges."""
    runs: list[tuple[datetime, datetime]] = []
    for start in sorted(set(starts)):
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], start + step)
        else:
            runs.append((start, start + step))
    return runs


def recompute_days(session: Session, *, table: str, days: Sequence[datetime]) -> int:
    """Replace the daily rows of ``days`` (UTC midnights) from their hourly rows; returns rows written."""
    if not days:
        return 0
    source = _source(table)
    session.execute(
        text(f"DELETE FROM {source.daily_table} WHERE bucket_start = ANY(CAST(:days AS timestamptz[]))"),  # noqa: S608
        {"days": list(days)},
    )
    bounds = {"days": list(days), "first": min(days), "last": max(days) + timedelta(days=1)}
    return rows_affected(session.execute(text(source.daily_insert), bounds))


def pending_hours(session: Session, *, table: str, start: datetime, end: datetime) -> set[datetime]:
    """The pending hours (dirty, failed, or holding rows written after the watermark) that meet ``[start, end)``."""
    source = _source(table)
    rows = session.execute(
        text(
            f"""
            SELECT d.bucket_start FROM rollup_dirty_buckets d
             WHERE d.source_table = :table AND d.grain = 'hour'
               AND d.bucket_start > CAST(:start AS timestamptz) - interval '1 hour' AND d.bucket_start < :end
            UNION
            SELECT f.bucket_start FROM rollup_failures f
             WHERE f.source_table = :table AND f.grain = 'hour'
               AND f.bucket_start > CAST(:start AS timestamptz) - interval '1 hour' AND f.bucket_start < :end
            UNION
            SELECT date_trunc('hour', raw."{source.time_column}", 'UTC') FROM {source.table} raw
             WHERE raw."{source.time_column}" >= :start AND raw."{source.time_column}" < :end
               AND raw.created_at > (SELECT watermark FROM rollup_state WHERE source_table = :table)
            """  # noqa: S608 - table and column names come from SOURCES
        ),
        {"table": table, "start": start, "end": end},
    )
    return set(rows.scalars())


def dirty_days(session: Session, *, table: str, start: datetime, end: datetime) -> set[datetime]:
    """Days marked dirty (their daily rows are missing or stale) that meet ``[start, end)``."""
    rows = session.execute(
        text(
            """
            SELECT bucket_start FROM rollup_dirty_buckets
             WHERE source_table = :table AND grain = 'day'
               AND bucket_start > CAST(:start AS timestamptz) - interval '1 day' AND bucket_start < :end
            """
        ),
        {"table": table, "start": start, "end": end},
    )
    return set(rows.scalars())


def statuses(session: Session) -> list[SourceStatus]:
    rows = session.execute(
        text(
            """
            SELECT s.source_table, nullif(s.watermark, '-infinity'), nullif(s.raw_horizon, '-infinity'), s.refreshed_at,
                   count(d.*) FILTER (WHERE d.grain = 'hour'), count(d.*) FILTER (WHERE d.grain = 'day'),
                   min(d.bucket_start)
              FROM rollup_state s LEFT JOIN rollup_dirty_buckets d ON d.source_table = s.source_table
             GROUP BY s.source_table ORDER BY s.source_table
            """
        )
    )
    return [SourceStatus(*row) for row in rows]


def cleanup_old_rollups(
    session: Session, *, hourly_retention_days: int, daily_retention_days: int, as_of: datetime
) -> list[RollupCleanup]:
    rows = session.execute(
        text("SELECT table_name, nullif(cutoff, '-infinity'), rows_deleted FROM cleanup_old_rollups(:hourly, :daily, :as_of)"),
        {"hourly": hourly_retention_days, "daily": daily_retention_days, "as_of": as_of},
    )
    return [RollupCleanup(*row) for row in rows]
