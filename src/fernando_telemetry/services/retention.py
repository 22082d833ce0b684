"""Retention: drop expired daily partitions and trim the boundary one, per table."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.storage import retention as retention_store
from fernando_telemetry.storage.models import IngestBatch
from fernando_telemetry.storage.retention import TableCleanup

__all__ = ["TableCleanup", "expire_idempotency_keys", "run"]


def run(
    session: Session,
    *,
    now: datetime,
    events_retention_days: int,
    metrics_retention_days: int,
    traces_retention_days: int,
) -> list[TableCleanup]:
    for name, days in (
        ("events_retention_days", events_retention_days),
        ("metrics_retention_days", metrics_retention_days),
        ("traces_retention_days", traces_retention_days),
    ):
        if days < 1:
            raise InvalidInput(f"{name} must be at least 1 day, got {days}")
    return retention_store.cleanup_old_telemetry_data(
        session,
        events_retention_days=events_retention_days,
        metrics_retention_days=metrics_retention_days,
        traces_retention_days=traces_retention_days,
        as_of=now,
    )


def expire_idempotency_keys(session: Session, *, now: datetime, window_hours: int) -> int:
    """Forget the stored answers of batches older than the deduplication window; returns how many."""
    result = session.execute(delete(IngestBatch).where(IngestBatch.created_at < now - timedelta(hours=window_hours)))
    return int(result.rowcount or 0)
