"""Ingest state: ``ingest_batches`` (the stored answer of each batch sent with an ``Idempotency-Key``, for retries)
and ``metric_streams`` (the last point of each cumulative metric stream)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.storage.models.base import Base, created_at_column, jsonb_column

__all__ = ["IngestBatch", "MetricStream"]


class IngestBatch(Base):
    """One acknowledged batch: a retry with the same key and endpoint gets this answer and writes nothing."""

    __tablename__ = "ingest_batches"
    __table_args__ = (
        # serves: expiry of stored answers older than the deduplication window
        Index("ix_ingest_batches_created_at", "created_at"),
    )

    api_key_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("api_keys.api_key_id", ondelete="CASCADE"), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    response: Mapped[dict[str, Any]] = jsonb_column()
    created_at: Mapped[datetime] = created_at_column()


class MetricStream(Base):
    """The last point of one cumulative metric stream, to turn the next point into an increment.

    A stream is one series of running totals: license, metric, kind, service, host, instance, labels and
    the sender's start time (``stream_key`` hashes them). The writer reads and updates it in the
    transaction that stores the increments (``storage.metric_streams``); retention forgets streams not seen
    for the metrics retention.
    """

    __tablename__ = "metric_streams"

    stream_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    license_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("licenses.license_id", ondelete="CASCADE"),
        primary_key=True,
        server_default=text(str(PLATFORM_LICENSE_ID)),
    )
    metric_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    service_name: Mapped[str | None] = mapped_column(String(100))
    host_name: Mapped[str | None] = mapped_column(String(255))
    instance_id: Mapped[str | None] = mapped_column(String(255))
    labels: Mapped[dict[str, Any]] = jsonb_column()
    stream_start: Mapped[datetime | None]
    last_time: Mapped[datetime | None]
    last_value: Mapped[float | None] = mapped_column(Double)
    last_count: Mapped[int | None] = mapped_column(BigInteger)
    last_sum: Mapped[float | None] = mapped_column(Double)
    last_bounds: Mapped[list[float] | None] = mapped_column(ARRAY(Double))
    last_counts: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    last_scale: Mapped[int | None] = mapped_column(Integer)
    last_offset: Mapped[int | None] = mapped_column(Integer)
    last_zero_count: Mapped[int | None] = mapped_column(BigInteger)
    last_negative_offset: Mapped[int | None] = mapped_column(Integer)
    last_negative_counts: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    last_seen: Mapped[datetime]
