"""The high-volume tables, each range-partitioned by day on its time column: events, metric samples, spans.

Primary keys include the partition column, as PostgreSQL requires. Every secondary index answers a
query named beside it and listed with its plan in docs/SCHEMA.md.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Sequence,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fernando_telemetry.core.enums import EventSource, EventType, MetricType, SpanKind, SpanStatus
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.storage.models.base import Base, created_at_column, jsonb_column, vocabulary

if TYPE_CHECKING:
    from fernando_telemetry.storage.models.platform import License, User

__all__ = ["SPAN_ID_DEFAULT", "TRACE_ID_DEFAULT", "SystemMetric", "TelemetryEvent", "Trace"]

TRACE_ID_DEFAULT = "replace(gen_random_uuid()::text, '-', '')"
"""32 random hex digits: ``traces.trace_id``'s database default (revision 0013)."""
SPAN_ID_DEFAULT = "substr(replace(gen_random_uuid()::text, '-', ''), 1, 16)"
"""16 random hex digits: ``traces.span_id``'s database default (revision 0013)."""


def _user_fk(table: str) -> ForeignKeyConstraint:
    """(license_id, user_id) -> users; a deleted user leaves its rows with no user id (on a Citus cluster this key
    is not enforced: ``storage.citus``)."""
    return ForeignKeyConstraint(
        ["license_id", "user_id"],
        ["users.license_id", "users.user_id"],
        name=f"fk_{table}_user_id_users",
        ondelete="SET NULL (user_id)",
    )


def _user_relationship(back_populates: str, model: str) -> Any:
    # the license_id column belongs to the license relationship: the user one only reads it
    return relationship(
        back_populates=back_populates,
        lazy="raise",
        primaryjoin=f"and_(User.license_id == foreign({model}.license_id), User.user_id == foreign({model}.user_id))",
        overlaps="license",
    )


def _license_fk() -> Any:
    """The owning license: NOT NULL, the platform license when a row names none, and the last column of the
    primary key, so that a key never spans licenses and Citus can distribute by it."""
    return mapped_column(ForeignKey("licenses.license_id"), nullable=False, server_default=text(str(PLATFORM_LICENSE_ID)))


class TelemetryEvent(Base):
    """One product or system event, attributed to a user, a license, a session and a source."""

    __tablename__ = "telemetry_events"
    __table_args__ = (
        # serves: events in a time range (all types), e.g. the hourly summary of the last day
        Index("ix_telemetry_events_event_timestamp_brin", "event_timestamp", postgresql_using="brin"),
        # serves: rows written since the rollup watermark (rollup refresh, the views' raw tail)
        Index(
            "ix_telemetry_events_created_at_brin",
            "created_at",
            postgresql_using="brin",
            postgresql_with={"pages_per_range": "16", "autosummarize": "on"},
        ),
        # serves: events of one type, newest first (dashboard, GET /api/v1/events?event_type=). Time indexes
        # are ascending: rows arrive in time order and append at each key's right edge (fuller pages than
        # DESC, about 25% smaller in bench/ingest_copy.py); a backward scan gives newest first.
        Index("ix_telemetry_events_event_type_event_timestamp", "event_type", "event_timestamp"),
        # serves: one user's activity timeline, newest first
        Index(
            "ix_telemetry_events_user_id_event_timestamp",
            "user_id",
            "event_timestamp",
            postgresql_where=text("user_id IS NOT NULL"),
        ),
        # serves: payload containment filters (payload @> '{"plan": "pro"}')
        Index(
            "ix_telemetry_events_payload_gin",
            "payload",
            postgresql_using="gin",
            postgresql_ops={"payload": "jsonb_path_ops"},
        ),
        PrimaryKeyConstraint("event_id", "event_timestamp", "license_id", name="pk_telemetry_events"),
        _user_fk("telemetry_events"),
        {"postgresql_partition_by": "RANGE (event_timestamp)"},
    )

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), server_default=text("gen_random_uuid()"))
    event_type: Mapped[EventType] = mapped_column(vocabulary(EventType, "event_type"))
    event_name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[EventSource] = mapped_column(vocabulary(EventSource, "source"), server_default=text("'api'"))
    user_id: Mapped[str | None] = mapped_column(String(128))
    license_id: Mapped[int] = _license_fk()
    session_id: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = jsonb_column()
    duration_ms: Mapped[float | None] = mapped_column(Double)
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(1024))
    trace_id: Mapped[str | None] = mapped_column(String(32))
    span_id: Mapped[str | None] = mapped_column(String(16))
    environment: Mapped[str | None] = mapped_column(String(32))
    app_version: Mapped[str | None] = mapped_column(String(64))
    event_timestamp: Mapped[datetime] = mapped_column(server_default=func.now())
    created_at: Mapped[datetime] = created_at_column()

    user: Mapped[User | None] = _user_relationship("events", "TelemetryEvent")
    license: Mapped[License] = relationship(back_populates="events", lazy="raise")


system_metrics_id_seq = Sequence("system_metrics_metric_id_seq", metadata=Base.metadata)


class SystemMetric(Base):
    """One metric sample of a service / host / instance; summary types carry their percentiles."""

    __tablename__ = "system_metrics"
    __table_args__ = (
        # serves: one metric of one service over time (series endpoint, service summary)
        Index(
            "ix_system_metrics_service_name_metric_name_timestamp",
            "service_name",
            "metric_name",
            "timestamp",
        ),
        # serves: all samples in a time range (hourly rollups, retention boundary delete)
        Index("ix_system_metrics_timestamp_brin", "timestamp", postgresql_using="brin"),
        # serves: rows written since the rollup watermark (rollup refresh, the views' raw tail)
        Index(
            "ix_system_metrics_created_at_brin",
            "created_at",
            postgresql_using="brin",
            postgresql_with={"pages_per_range": "16", "autosummarize": "on"},
        ),
        # serves: label filters (labels @> '{"region": "eu"}')
        Index(
            "ix_system_metrics_labels_gin",
            "labels",
            postgresql_using="gin",
            postgresql_ops={"labels": "jsonb_path_ops"},
        ),
        _user_fk("system_metrics"),
        PrimaryKeyConstraint("metric_id", "timestamp", "license_id", name="pk_system_metrics"),
        {"postgresql_partition_by": "RANGE (timestamp)"},
    )

    metric_id: Mapped[int] = mapped_column(BigInteger, system_metrics_id_seq, server_default=system_metrics_id_seq.next_value())
    metric_name: Mapped[str] = mapped_column(String(200))
    metric_type: Mapped[MetricType] = mapped_column(vocabulary(MetricType, "metric_type"))
    value: Mapped[float] = mapped_column(Double)
    unit: Mapped[str | None] = mapped_column(String(32))
    service_name: Mapped[str | None] = mapped_column(String(100))
    host_name: Mapped[str | None] = mapped_column(String(255))
    instance_id: Mapped[str | None] = mapped_column(String(255))
    labels: Mapped[dict[str, Any]] = jsonb_column()
    sample_count: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    p50: Mapped[float | None] = mapped_column(Double)
    p90: Mapped[float | None] = mapped_column(Double)
    p95: Mapped[float | None] = mapped_column(Double)
    p99: Mapped[float | None] = mapped_column(Double)
    # the interval (start_time, timestamp] a counter increment or a histogram's values cover; NULL for gauges
    start_time: Mapped[datetime | None]
    # the values' distribution as the mergeable sketch of core.sketch (histograms, raw samples); NULL: one value
    sketch_keys: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))
    sketch_counts: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    min_value: Mapped[float | None] = mapped_column(Double)
    max_value: Mapped[float | None] = mapped_column(Double)
    # a cumulative counter's running total as sent, beside its increment in value; NULL for delta counters
    cumulative_value: Mapped[float | None] = mapped_column(Double)
    user_id: Mapped[str | None] = mapped_column(String(128))
    license_id: Mapped[int] = _license_fk()
    timestamp: Mapped[datetime] = mapped_column(server_default=func.now())
    created_at: Mapped[datetime] = created_at_column()

    user: Mapped[User | None] = _user_relationship("system_metrics", "SystemMetric")
    license: Mapped[License] = relationship(back_populates="system_metrics", lazy="raise")


class Trace(Base):
    """One span of a distributed trace (the table keeps the seed's name, ``traces``)."""

    __tablename__ = "traces"
    __table_args__ = (
        # span_id leads: it identifies a span (dedup on retry); trace_id lookups have their own hash index
        PrimaryKeyConstraint("span_id", "trace_id", "start_time", "license_id", name="pk_traces"),
        # serves: a whole trace by its id with no time range (hash: equality only, 4-byte codes, small)
        Index("ix_traces_trace_id_hash", "trace_id", postgresql_using="hash"),
        # serves: rows written since the rollup watermark (rollup refresh, the views' raw tail)
        Index(
            "ix_traces_created_at_brin",
            "created_at",
            postgresql_using="brin",
            postgresql_with={"pages_per_range": "16", "autosummarize": "on"},
        ),
        # serves: spans of one service and operation over time (trace search, service summary)
        Index("ix_traces_service_name_operation_name_start_time", "service_name", "operation_name", "start_time"),
        # serves: attribute filters (attributes @> '{"http.route": "/checkout"}')
        Index(
            "ix_traces_attributes_gin",
            "attributes",
            postgresql_using="gin",
            postgresql_ops={"attributes": "jsonb_path_ops"},
        ),
        _user_fk("traces"),
        {"postgresql_partition_by": "RANGE (start_time)"},
    )

    # the defaults serve plain SQL inserts (random ids of the W3C lengths); the SDK and OTLP always send ids
    trace_id: Mapped[str] = mapped_column(String(32), server_default=text(TRACE_ID_DEFAULT))
    span_id: Mapped[str] = mapped_column(String(16), server_default=text(SPAN_ID_DEFAULT))
    parent_span_id: Mapped[str | None] = mapped_column(String(16))
    operation_name: Mapped[str] = mapped_column(String(255))
    service_name: Mapped[str] = mapped_column(String(100))
    span_kind: Mapped[SpanKind] = mapped_column(vocabulary(SpanKind, "span_kind"), server_default=text("'internal'"))
    start_time: Mapped[datetime] = mapped_column(server_default=func.now())
    end_time: Mapped[datetime]
    duration_ms: Mapped[float] = mapped_column(Double)
    status: Mapped[SpanStatus] = mapped_column(vocabulary(SpanStatus, "status"), server_default=text("'unset'"))
    status_message: Mapped[str | None] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    http_method: Mapped[str | None] = mapped_column(String(16))
    http_route: Mapped[str | None] = mapped_column(String(255))
    error_type: Mapped[str | None] = mapped_column(String(255))
    error_message: Mapped[str | None] = mapped_column(Text)
    host_name: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(128))
    license_id: Mapped[int] = _license_fk()
    attributes: Mapped[dict[str, Any]] = jsonb_column()
    span_events: Mapped[list[Any]] = mapped_column(
        JSONB,
        nullable=False,
        server_default=text("'[]'::jsonb"),
    )
    resource: Mapped[dict[str, Any]] = jsonb_column()
    """The resource inline: rows written before revision 0017, restored from older archives, or written by plain SQL.
    Rows of the ingest paths hold ``{}`` here and point at ``telemetry_resources`` by ``resource_id``."""
    environment: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = created_at_column()
    # no foreign key: each span insert would probe and share-lock its resource row, and deleting a resource
    # would scan every partition (no index on this column); reads join with COALESCE, so a missing row reads as {}
    resource_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))

    user: Mapped[User | None] = _user_relationship("spans", "Trace")
    license: Mapped[License] = relationship(back_populates="spans", lazy="raise")
