"""Partition upkeep: keep daily partitions ready around ``now`` and create them on demand for any day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from fernando_telemetry.core.partitioning import PARTITIONED_TABLES, days_to_cover
from fernando_telemetry.storage import partitions as partition_store

__all__ = ["UpkeepResult", "ensure_for_days", "upkeep"]


@dataclass(frozen=True)
class UpkeepResult:
    first_day: date
    last_day: date
    created: dict[str, int]

    @property
    def total_created(self) -> int:
        return sum(self.created.values())


def upkeep(session: Session, *, now: datetime, days_back: int, days_ahead: int) -> UpkeepResult:
    """Ensure every partitioned table has its daily partitions from ``days_back`` before to ``days_ahead`` after today."""
    first_day, last_day = days_to_cover(now=now, days_back=days_back, days_ahead=days_ahead)
    return ensure_for_days(session, first_day=first_day, last_day=last_day)


def ensure_for_days(session: Session, *, first_day: date, last_day: date, tables: tuple[str, ...] | None = None) -> UpkeepResult:
    """Create any missing partition for ``[first_day, last_day]`` (idempotent; safe beside writers)."""
    created = {
        table: partition_store.ensure_daily_partitions(session, table=table, first_day=first_day, last_day=last_day)
        for table in (tables or tuple(PARTITIONED_TABLES))
    }
    return UpkeepResult(first_day=first_day, last_day=last_day, created=created)
