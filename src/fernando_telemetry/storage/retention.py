"""Retention in SQL: a call of ``cleanup_old_telemetry_data`` and its per-table report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["TableCleanup", "cleanup_old_telemetry_data"]


@dataclass(frozen=True)
class TableCleanup:
    """What retention removed from one table: whole partitions dropped, and rows deleted at the boundary."""

    table_name: str
    cutoff: datetime
    partitions_dropped: int
    rows_dropped: int
    rows_deleted: int

    @property
    def rows_removed(self) -> int:
        return self.rows_dropped + self.rows_deleted


def cleanup_old_telemetry_data(
    session: Session,
    *,
    events_retention_days: int,
    metrics_retention_days: int,
    traces_retention_days: int,
    as_of: datetime,
) -> list[TableCleanup]:
    rows = session.execute(
        text(
            "SELECT table_name, cutoff, partitions_dropped, rows_dropped, rows_deleted "
            "FROM cleanup_old_telemetry_data(:events, :metrics, :traces, :as_of)"
        ),
        {
            "events": events_retention_days,
            "metrics": metrics_retention_days,
            "traces": traces_retention_days,
            "as_of": as_of,
        },
    ).all()
    return [TableCleanup(*row) for row in rows]
