"""Cumulative metric streams: their state in ``metric_streams``, and the writer hook that turns points into increments.

``prepare`` is the ``system_metrics`` ``TableSpec.prepare`` hook: rows without a cumulative point pass as they
are (no lookup); the others lock their streams' rows (in key order, so writers sharing the database never
deadlock and see each other's last point), get their increments from ``core.metric_points.advance``, and
update the state in the same transaction as the rows. Imports only core, the models and ``storage.results``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy import delete
from sqlalchemy.orm import Session

from fernando_telemetry.core.ingest.metrics import CumulativeMetricRow, MetricRow, completed
from fernando_telemetry.core.metric_points import Histogram, StreamState, advance
from fernando_telemetry.storage.models import MetricStream
from fernando_telemetry.storage.results import rows_affected

__all__ = ["expire", "prepare"]

_STATE = (
    "last_time, last_value, last_count, last_sum, last_bounds, last_counts, last_scale, last_offset, "
    "last_zero_count, last_negative_offset, last_negative_counts"
)

# The keys and the new states travel as one JSON document each (orjson, in C) read by ``json_to_recordset``: one
# statement per group either way, without psycopg's per-element array adaptation (in Python, with escaping).
_LOCK = """
INSERT INTO metric_streams AS s
    (stream_key, license_id, metric_name, kind, service_name, host_name, instance_id, labels, stream_start, last_seen)
SELECT k.stream_key, k.license_id, k.metric_name, k.kind, k.service_name, k.host_name, k.instance_id, k.labels::jsonb,
       k.stream_start, now()
FROM json_to_recordset(%s::json) AS k(stream_key text, license_id bigint, metric_name text, kind text, service_name text,
                                      host_name text, instance_id text, labels text, stream_start timestamptz)
ORDER BY 1
ON CONFLICT (stream_key, license_id) DO UPDATE SET last_seen = EXCLUDED.last_seen WHERE false
"""
"""Creates the missing streams and locks them all, in key order. ``WHERE false``: an existing stream is locked but not
written here (PostgreSQL locks every conflicting row of ``DO UPDATE``, updated or not; no function in the ``SET``,
which Citus refuses on a distributed table); ``_SAVE``/``_TOUCH`` write each
stream once, ``last_seen`` with its state."""

_READ = f"SELECT stream_key, {_STATE} FROM metric_streams WHERE stream_key = ANY(%s) AND last_time IS NOT NULL"
"""The state of the locked streams: a statement of its own, so that its snapshot sees what a writer that held one
of them before committed."""

_TOUCH = "UPDATE metric_streams SET last_seen = now() WHERE stream_key = ANY(%s)"
"""Streams whose points were all repeats: seen, state unchanged."""

_SAVE = """
UPDATE metric_streams AS s SET last_time = v.last_time, last_value = v.last_value, last_count = v.last_count,
    last_sum = v.last_sum, last_bounds = v.last_bounds, last_counts = v.last_counts, last_scale = v.last_scale,
    last_offset = v.last_offset, last_zero_count = v.last_zero_count, last_negative_offset = v.last_negative_offset,
    last_negative_counts = v.last_negative_counts, last_seen = now()
FROM json_to_recordset(%s::json) AS v(stream_key text, last_time timestamptz, last_value float8, last_count bigint,
    last_sum float8, last_bounds float8[], last_counts bigint[], last_scale integer, last_offset integer,
    last_zero_count bigint, last_negative_offset integer, last_negative_counts bigint[])
WHERE s.stream_key = v.stream_key
"""


def prepare(connection: psycopg.Connection[Any], rows: list[MetricRow]) -> list[MetricRow]:
    """The rows to COPY: plain rows as they are, cumulative points as their increments (repeats dropped)."""
    ready: list[MetricRow] = []
    streams: dict[str, list[CumulativeMetricRow]] = defaultdict(list)
    for row in rows:
        if isinstance(row, CumulativeMetricRow):
            # the key is computed at decode (``compose``), off the writer's thread
            streams[row.stream_key].append(row)
        else:
            ready.append(row)
    if not streams:
        return ready
    keys = sorted(streams)
    states = _lock(connection, keys, [streams[key][0] for key in keys])
    saved = []
    touched = []
    for key in keys:
        state = states.get(key)
        before = state
        # points of one stream in time order: a batch may carry several exports of it
        for row in sorted(streams[key], key=lambda r: r.point.time):
            increment, state = advance(state, row.point)
            if increment is not None:
                ready.append(completed(row, increment))
        if state is not before and state is not None:
            saved.append(_state_record(key, state))
        else:
            touched.append(key)
    if saved:
        connection.execute(_SAVE, [_document(saved)])
    if touched:
        connection.execute(_TOUCH, [touched])
    return ready


def expire(session: Session, *, cutoff: datetime) -> int:
    """Forget streams not seen since ``cutoff``; returns how many.

    A stream that sends again after this starts over: its next point is its first (see ``advance``)."""
    result = session.execute(delete(MetricStream).where(MetricStream.last_seen < cutoff))
    return rows_affected(result)


def _lock(connection: psycopg.Connection[Any], keys: list[str], firsts: list[CumulativeMetricRow]) -> dict[str, StreamState]:
    """Create missing streams, lock all of ``keys`` in order, and return the state of those that have one."""
    arguments = [
        _document(
            [
                {
                    "stream_key": key,
                    "license_id": row.license_id,
                    "metric_name": row.metric_name,
                    "kind": row.point.kind,
                    "service_name": row.service_name,
                    "host_name": row.host_name,
                    "instance_id": row.instance_id,
                    "labels": row.labels,
                    "stream_start": row.point.start_time,
                }
                for key, row in zip(keys, firsts, strict=True)
            ]
        )
    ]
    connection.execute(_LOCK, arguments)
    states = {}
    for record in connection.execute(_READ, [keys]).fetchall():
        key, last_time, value, count, total, bounds, counts, scale, offset, zero_count, negative_offset, negative_counts = record
        if last_time is None:
            continue
        histogram = None
        if counts is not None:
            histogram = Histogram(
                tuple(counts),
                bounds=tuple(bounds) if bounds is not None else None,
                scale=scale,
                offset=offset or 0,
                zero_count=zero_count or 0,
                negative_offset=negative_offset or 0,
                negative_counts=tuple(negative_counts or ()),
            )
        states[key] = StreamState(last_time, value, count, total, histogram)
    return states


def _state_record(key: str, state: StreamState) -> dict[str, Any]:
    """A stream's new state as the record ``_SAVE`` reads."""
    histogram = state.histogram
    record: dict[str, Any] = {
        "stream_key": key,
        "last_time": state.last_time,
        "last_value": state.value,
        "last_count": state.count,
        "last_sum": state.total,
    }
    if histogram is not None:  # absent fields are NULL
        record["last_bounds"] = histogram.bounds
        record["last_counts"] = histogram.counts
        record["last_scale"] = histogram.scale
        record["last_offset"] = histogram.offset
        record["last_zero_count"] = histogram.zero_count
        record["last_negative_offset"] = histogram.negative_offset
        record["last_negative_counts"] = histogram.negative_counts
    return record


def _document(records: list[dict[str, Any]]) -> str:
    """``records`` as the JSON ``json_to_recordset`` reads: times in ISO 8601 with their offset, doubles exact (the
    shortest text that reads back as the same double; the values are finite, see ``core.ingest.common.bounded``)."""
    return orjson.dumps(records).decode()
