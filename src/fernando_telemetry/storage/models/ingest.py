"""``ingest_batches``: the stored answer of each batch sent with an ``Idempotency-Key``, for retries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fernando_telemetry.storage.models.base import Base, created_at_column, jsonb_column

__all__ = ["IngestBatch"]


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
