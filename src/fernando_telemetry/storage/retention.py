"""Retention in SQL: a call of ``cleanup_old_telemetry_data`` and its per-table report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from fernando_telemetry.storage.models import RetentionSetting

__all__ = ["TableCleanup", "cleanup_old_telemetry_data", "record_archive_policy"]


@dataclass(frozen=True)
class TableCleanup:
    """What retention removed from one table: whole partitions dropped, and rows deleted at the boundary."""

    table_name: str
    cutoff: datetime
    partitions_dropped: int
    rows_dropped: int
    rows_deleted: int
    partitions_kept: int = 0
    """Expired partitions kept because archiving is required and they have no archive yet."""

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
            "SELECT table_name, cutoff, partitions_dropped, rows_dropped, rows_deleted, partitions_kept "
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


def record_archive_policy(session: Session, *, archive_before_drop: bool, now: datetime) -> None:
    """Write whether partitions must be archived before they are dropped, for ``cleanup_old_telemetry_data``
    called from SQL by anyone (it keeps unarchived expired partitions while this is true)."""
    statement = insert(RetentionSetting).values(settings_id=True, archive_before_drop=archive_before_drop, updated_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[RetentionSetting.settings_id],
            set_={"archive_before_drop": statement.excluded.archive_before_drop, "updated_at": statement.excluded.updated_at},
            where=RetentionSetting.archive_before_drop.is_distinct_from(statement.excluded.archive_before_drop),
        )
    )
