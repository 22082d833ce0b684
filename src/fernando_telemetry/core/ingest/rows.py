"""The row of each telemetry table, declared once: a ``NamedTuple`` per table whose fields are the columns the
ingest path writes, in COPY column order: the migrated table's columns, in order, without those the database fills
(ids, ``created_at``); ``tests/test_schema_columns.py`` holds them to that.

Decoders build these by keyword, the writer COPYs them as the tuples they are. Pure: imports only core.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from fernando_telemetry.core.metric_points import CumulativePoint

__all__ = ["CumulativeMetricRow", "EventRow", "KpiRow", "MetricRow", "SpanRow", "metric_stream_key"]


class EventRow(NamedTuple):
    """A ``telemetry_events`` row."""

    event_id: uuid.UUID
    event_type: str
    event_name: str
    category: str | None
    source: str
    user_id: str | None
    license_id: int
    session_id: str | None
    payload: str
    """JSON text."""
    duration_ms: float | None
    ip_address: str | None
    user_agent: str | None
    trace_id: str | None
    span_id: str | None
    environment: str | None
    app_version: str | None
    event_timestamp: datetime


class MetricRow(NamedTuple):
    """A ``system_metrics`` row, as stored."""

    metric_name: str
    metric_type: str
    value: float
    unit: str | None
    service_name: str | None
    host_name: str | None
    instance_id: str | None
    labels: str
    """JSON text."""
    sample_count: int
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    user_id: str | None
    license_id: int
    timestamp: datetime
    start_time: datetime | None
    sketch_keys: list[int] | None
    sketch_counts: list[int] | None
    min_value: float | None
    max_value: float | None
    cumulative_value: float | None


class CumulativeMetricRow(MetricRow):
    """A decoded point of a cumulative stream: a placeholder ``MetricRow`` (its measure fields not yet known) that
    also carries the ``point`` and its stream's ``stream_key``; the writer's hook (``storage.metric_streams``)
    computes the increment from the stream's state and stores ``MetricRow`` values in its place.

    The two are attributes, not fields, so the row stays the COPY columns for every code that takes it as a tuple.
    Made with ``of``, which hashes the key at decode so the writer's thread does not.
    """

    point: CumulativePoint
    stream_key: str

    @classmethod
    def of(cls, row: MetricRow, point: CumulativePoint) -> CumulativeMetricRow:
        cumulative = cls._make(row)
        cumulative.point = point
        cumulative.stream_key = metric_stream_key(row, point)
        return cumulative

    def _replace(self, **changes: Any) -> CumulativeMetricRow:
        """The row with ``changes``, still carrying its point (and the key of its stream as changed)."""
        return CumulativeMetricRow.of(MetricRow._make(self)._replace(**changes), self.point)


def metric_stream_key(row: MetricRow, point: CumulativePoint) -> str:
    """The identity of a row's cumulative stream, as a stable hash: license, metric, kind, service, host, instance,
    labels, and the stream's start time when the sender gave one."""
    identity = [
        row.license_id,
        row.metric_name,
        row.metric_type,
        row.service_name,
        row.host_name,
        row.instance_id,
        row.labels,
        point.kind,
        point.start_time.isoformat() if point.start_time is not None else None,
    ]
    return hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode()).hexdigest()


class SpanRow(NamedTuple):
    """A ``traces`` row: one span. Decoders leave ``resource_id`` None; the writer's hook (``storage.resources``)
    stores a span's resource once and puts its key there."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    operation_name: str
    service_name: str
    span_kind: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    status: str
    status_message: str | None
    status_code: int | None
    http_method: str | None
    http_route: str | None
    error_type: str | None
    error_message: str | None
    host_name: str | None
    user_id: str | None
    license_id: int
    attributes: str
    """JSON text."""
    span_events: str
    """JSON text (an array)."""
    resource: str
    """JSON text."""
    environment: str | None
    resource_id: uuid.UUID | None = None


class KpiRow(NamedTuple):
    """A ``business_metrics`` row: one KPI value for a period."""

    metric_name: str
    metric_category: str
    metric_value: Decimal
    currency: str | None
    period_start: datetime
    period_end: datetime
    period_type: str
    license_id: int
    dimensions: str
    """JSON text."""
    target_value: Decimal | None
    previous_value: Decimal | None
    source: str
