"""Rollups behind the analytics views: hourly and daily aggregates of events, metric samples and spans,
and the refresh bookkeeping (a watermark per raw table, and the buckets waiting to be recomputed).

Written and read with SQL only (``storage.rollups``); the grain columns are nullable (no license, no
host), so a row is identified by a ``UNIQUE NULLS NOT DISTINCT`` constraint rather than a primary key.
Percentile sketches are stored as ``*_sketch_keys`` / ``*_sketch_counts`` (see ``core.sketch``). Imports
only core.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Double, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.storage.models.base import Base

__all__ = [
    "EventRollupDaily",
    "EventRollupHourly",
    "MetricRollupDaily",
    "MetricRollupHourly",
    "RollupDirtyBucket",
    "RollupFailure",
    "RollupState",
    "SpanRollupDaily",
    "SpanRollupHourly",
]


def _keys_column() -> Mapped[list[int]]:
    return mapped_column(ARRAY(Integer), nullable=False, server_default=text("'{}'::integer[]"))


def _counts_column() -> Mapped[list[int]]:
    return mapped_column(ARRAY(BigInteger), nullable=False, server_default=text("'{}'::bigint[]"))


class _Bucket:
    """The bucket start (a UTC hour or a UTC midnight) and the license every rollup row carries."""

    bucket_start: Mapped[datetime] = mapped_column(sort_order=-1)

    @declared_attr
    def license_id(cls) -> Mapped[int]:
        return mapped_column(
            BigInteger,
            ForeignKey("licenses.license_id", ondelete="CASCADE"),
            nullable=False,
            server_default=text(str(PLATFORM_LICENSE_ID)),
        )


class _EventColumns(_Bucket):
    """Per bucket, event type and license: counts, exact distinct users and sessions, errors, durations."""

    event_type: Mapped[str] = mapped_column(String(25))
    events: Mapped[int] = mapped_column(BigInteger)
    unique_users: Mapped[int] = mapped_column(BigInteger)
    unique_sessions: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    duration_count: Mapped[int] = mapped_column(BigInteger)
    duration_sum: Mapped[float | None] = mapped_column(Double)
    duration_min: Mapped[float | None] = mapped_column(Double)
    duration_max: Mapped[float | None] = mapped_column(Double)
    duration_p50: Mapped[float | None] = mapped_column(Double)
    duration_p90: Mapped[float | None] = mapped_column(Double)
    duration_p95: Mapped[float | None] = mapped_column(Double)
    duration_p99: Mapped[float | None] = mapped_column(Double)
    duration_sketch_keys: Mapped[list[int]] = _keys_column()
    duration_sketch_counts: Mapped[list[int]] = _counts_column()


class EventRollupHourly(_EventColumns, Base):
    """``telemetry_events`` per UTC hour; percentiles exact (``percentile_cont`` at refresh time)."""

    __tablename__ = "telemetry_events_hourly"
    __table_args__ = (
        # serves: the hourly summary view over a time range; the refresh's delete of one hour
        UniqueConstraint(
            "bucket_start",
            "event_type",
            "license_id",
            name="uq_telemetry_events_hourly_grain",
            postgresql_nulls_not_distinct=True,
        ),
    )
    __mapper_args__ = {"primary_key": ["bucket_start", "event_type", "license_id"]}


class EventRollupDaily(_EventColumns, Base):
    """``telemetry_events`` per UTC day: sums of the hours, distinct counts recounted from the day's raw rows,
    percentiles from the merged hourly sketches."""

    __tablename__ = "telemetry_events_daily"
    __table_args__ = (
        UniqueConstraint(
            "bucket_start", "event_type", "license_id", name="uq_telemetry_events_daily_grain", postgresql_nulls_not_distinct=True
        ),
    )
    __mapper_args__ = {"primary_key": ["bucket_start", "event_type", "license_id"]}


class _MetricColumns(_Bucket):
    """Per bucket, service, metric, host and license: samples (rows), observations (``sample_count``), the
    ``sum`` (``value_sum``: increments of counters, values of gauges, ``value * sample_count`` of histogram-like
    rows), ``weighted_sum`` (``value * sample_count``, for ``avg``), extremes and percentiles (NULL without an
    observation) and the merged sketch of the rows' values."""

    service_name: Mapped[str | None] = mapped_column(String(100))
    metric_name: Mapped[str] = mapped_column(String(200))
    host_name: Mapped[str | None] = mapped_column(String(255))
    samples: Mapped[int] = mapped_column(BigInteger)
    value_sum: Mapped[float] = mapped_column(Double)
    observations: Mapped[int] = mapped_column(BigInteger)
    weighted_sum: Mapped[float] = mapped_column(Double)
    value_min: Mapped[float | None] = mapped_column(Double)
    value_max: Mapped[float | None] = mapped_column(Double)
    value_p50: Mapped[float | None] = mapped_column(Double)
    value_p90: Mapped[float | None] = mapped_column(Double)
    value_p95: Mapped[float | None] = mapped_column(Double)
    value_p99: Mapped[float | None] = mapped_column(Double)
    value_sketch_keys: Mapped[list[int]] = _keys_column()
    value_sketch_counts: Mapped[list[int]] = _counts_column()


_METRIC_GRAIN = ("bucket_start", "service_name", "metric_name", "host_name", "license_id")


class MetricRollupHourly(_MetricColumns, Base):
    """``system_metrics`` per UTC hour; percentiles exact."""

    __tablename__ = "system_metrics_hourly"
    __table_args__ = (
        # serves: the service summary view over a time range; the refresh's delete of one hour
        UniqueConstraint(*_METRIC_GRAIN, name="uq_system_metrics_hourly_grain", postgresql_nulls_not_distinct=True),
        # serves: one metric over time (series endpoint at step=1h)
        Index("ix_system_metrics_hourly_metric_name_bucket_start", "metric_name", "bucket_start"),
    )
    __mapper_args__ = {"primary_key": list(_METRIC_GRAIN)}


class MetricRollupDaily(_MetricColumns, Base):
    """``system_metrics`` per UTC day, from the hours; percentiles from the merged sketches."""

    __tablename__ = "system_metrics_daily"
    __table_args__ = (
        UniqueConstraint(*_METRIC_GRAIN, name="uq_system_metrics_daily_grain", postgresql_nulls_not_distinct=True),
        # serves: one metric over time (series endpoint at step=1d)
        Index("ix_system_metrics_daily_metric_name_bucket_start", "metric_name", "bucket_start"),
    )
    __mapper_args__ = {"primary_key": list(_METRIC_GRAIN)}


class _SpanColumns(_Bucket):
    """Per bucket, service, operation and license: spans, errors (status error), durations, and the spans of
    kind ``server`` and those of them with status error (the failed requests of
    ``telemetry_events_hourly_summary.server_span_errors``)."""

    service_name: Mapped[str] = mapped_column(String(100))
    operation_name: Mapped[str] = mapped_column(String(255))
    spans: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    duration_sum: Mapped[float] = mapped_column(Double)
    duration_min: Mapped[float] = mapped_column(Double)
    duration_max: Mapped[float] = mapped_column(Double)
    duration_p50: Mapped[float] = mapped_column(Double)
    duration_p90: Mapped[float] = mapped_column(Double)
    duration_p95: Mapped[float] = mapped_column(Double)
    duration_p99: Mapped[float] = mapped_column(Double)
    duration_sketch_keys: Mapped[list[int]] = _keys_column()
    duration_sketch_counts: Mapped[list[int]] = _counts_column()
    server_spans: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    server_errors: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


_SPAN_GRAIN = ("bucket_start", "service_name", "operation_name", "license_id")


class SpanRollupHourly(_SpanColumns, Base):
    """``traces`` spans per UTC hour; percentiles exact."""

    __tablename__ = "traces_hourly"
    __table_args__ = (
        # serves: the traces service summary view over a time range; the refresh's delete of one hour
        UniqueConstraint(*_SPAN_GRAIN, name="uq_traces_hourly_grain", postgresql_nulls_not_distinct=True),
    )
    __mapper_args__ = {"primary_key": list(_SPAN_GRAIN)}


class SpanRollupDaily(_SpanColumns, Base):
    """``traces`` spans per UTC day, from the hours; percentiles from the merged sketches."""

    __tablename__ = "traces_daily"
    __table_args__ = (UniqueConstraint(*_SPAN_GRAIN, name="uq_traces_daily_grain", postgresql_nulls_not_distinct=True),)
    __mapper_args__ = {"primary_key": list(_SPAN_GRAIN)}


class RollupState(Base):
    """Per raw table: every row with ``created_at <= watermark`` is in the rollups or in ``rollup_dirty_buckets``;
    hours before ``raw_horizon`` were removed from the raw table by retention and are never recomputed."""

    __tablename__ = "rollup_state"

    source_table: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[datetime] = mapped_column(server_default=text("'-infinity'::timestamptz"))
    raw_horizon: Mapped[datetime] = mapped_column(server_default=text("'-infinity'::timestamptz"))
    refreshed_at: Mapped[datetime | None] = mapped_column()


class RollupDirtyBucket(Base):
    """An hour (or a day) of a raw table whose rollup rows must be recomputed; readers take it from raw."""

    __tablename__ = "rollup_dirty_buckets"
    __table_args__ = (CheckConstraint("grain IN ('hour', 'day')", name="grain"),)

    source_table: Mapped[str] = mapped_column(
        String(64), ForeignKey("rollup_state.source_table", ondelete="CASCADE"), primary_key=True
    )
    grain: Mapped[str] = mapped_column(String(8), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)


class RollupFailure(Base):
    """A bucket whose recomputation failed: the error and when; the refresh skips it for an hour, then retries.
    Its dirty mark stays, so readers keep taking it from raw rows."""

    __tablename__ = "rollup_failures"
    __table_args__ = (CheckConstraint("grain IN ('hour', 'day')", name="grain"),)

    source_table: Mapped[str] = mapped_column(
        String(64), ForeignKey("rollup_state.source_table", ondelete="CASCADE"), primary_key=True
    )
    grain: Mapped[str] = mapped_column(String(8), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column()
    failures: Mapped[int] = mapped_column(Integer, server_default=text("1"))
