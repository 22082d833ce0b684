"""Cumulative metric streams: their state in ``metric_streams``, and the writer hook that turns points into increments.

``prepare`` is the ``system_metrics`` ``TableSpec.prepare`` hook: rows without a cumulative point pass as they
are (no lookup); the others lock their streams' rows (in key order, so writers sharing the database never
deadlock and see each other's last point), get their increments from ``core.metric_points.advance``, and
update the state in the same transaction as the rows. Imports only core.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import delete
from sqlalchemy.orm import Session

from fernando_telemetry.core.ingest.metrics import COLUMNS, STREAM, completed, stream_key
from fernando_telemetry.core.metric_points import CumulativePoint, Histogram, StreamState, advance
from fernando_telemetry.storage.models import MetricStream

__all__ = ["expire", "prepare"]

_STATE = (
    "last_time, last_value, last_count, last_sum, last_bounds, last_counts, last_scale, last_offset, "
    "last_zero_count, last_negative_offset, last_negative_counts"
)

_LOCK = f"""
INSERT INTO metric_streams AS s
    (stream_key, license_id, metric_name, kind, service_name, host_name, instance_id, labels, stream_start, last_seen)
SELECT k.*, now()
FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::jsonb[],
            %s::timestamptz[]) AS k
ORDER BY 1
ON CONFLICT (stream_key) DO UPDATE SET last_seen = now()
RETURNING stream_key, {_STATE}
"""

_SAVE = """
UPDATE metric_streams SET last_time = %s, last_value = %s, last_count = %s, last_sum = %s, last_bounds = %s,
    last_counts = %s, last_scale = %s, last_offset = %s, last_zero_count = %s, last_negative_offset = %s,
    last_negative_counts = %s
WHERE stream_key = %s
"""

_LICENSE, _NAME, _SERVICE, _HOST, _INSTANCE, _LABELS = (
    COLUMNS.index(name) for name in ("license_id", "metric_name", "service_name", "host_name", "instance_id", "labels")
)


def prepare(connection: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows to COPY: plain rows as they are, cumulative points as their increments (repeats dropped)."""
    ready: list[tuple[Any, ...]] = []
    streams: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        if row[STREAM] is None:
            ready.append(row[:STREAM])
        else:
            streams[stream_key(row)].append(row)
    if not streams:
        return ready
    keys = sorted(streams)
    states = _lock(connection, keys, [streams[key][0] for key in keys])
    saved = []
    for key in keys:
        state = states.get(key)
        before = state
        # points of one stream in time order: a batch may carry several exports of it
        for row in sorted(streams[key], key=lambda r: r[STREAM].time):
            increment, state = advance(state, row[STREAM])
            if increment is not None:
                ready.append(completed(row, increment))
        if state is not before and state is not None:
            saved.append((*_state_values(state), key))
    if saved:
        with connection.cursor() as cursor:
            cursor.executemany(_SAVE, saved)
    return ready


def expire(session: Session, *, cutoff: datetime) -> int:
    """Forget streams not seen since ``cutoff``; returns how many.

    A stream that sends again after this starts over: its next point is its first (see ``advance``)."""
    result = session.execute(delete(MetricStream).where(MetricStream.last_seen < cutoff))
    return int(result.rowcount or 0)


def _lock(connection: psycopg.Connection[Any], keys: list[str], firsts: list[tuple[Any, ...]]) -> dict[str, StreamState]:
    """Create missing streams, lock all of ``keys`` in order, and return the state of those that have one."""
    points: list[CumulativePoint] = [row[STREAM] for row in firsts]
    arguments = [
        keys,
        [row[_LICENSE] for row in firsts],
        [row[_NAME] for row in firsts],
        [point.kind for point in points],
        [row[_SERVICE] for row in firsts],
        [row[_HOST] for row in firsts],
        [row[_INSTANCE] for row in firsts],
        [row[_LABELS] for row in firsts],
        [point.start_time for point in points],
    ]
    states = {}
    for record in connection.execute(_LOCK, arguments).fetchall():
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


def _state_values(state: StreamState) -> tuple[Any, ...]:
    histogram = state.histogram
    if histogram is None:
        return (state.last_time, state.value, state.count, state.total, None, None, None, None, None, None, None)
    return (
        state.last_time,
        state.value,
        state.count,
        state.total,
        list(histogram.bounds) if histogram.bounds is not None else None,
        list(histogram.counts),
        histogram.scale,
        histogram.offset,
        histogram.zero_count,
        histogram.negative_offset,
        list(histogram.negative_counts),
    )
