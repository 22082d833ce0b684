"""Daily range partitions as pure values: which days a window covers, and what each is named.

The partitioned tables and their time columns are fixed here so storage and services agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

__all__ = ["PARTITIONED_TABLES", "DayPartition", "days_to_cover", "partition_for_day"]

# table name -> the timestamptz column it is range-partitioned by
PARTITIONED_TABLES: dict[str, str] = {
    "telemetry_events": "event_timestamp",
    "system_metrics": "timestamp",
    "traces": "start_time",
}


@dataclass(frozen=True)
class DayPartition:
    """One UTC day of one partitioned table: ``[start_at, end_at)``."""

    table: str
    day: date

    @property
    def name(self) -> str:
        return f"{self.table}_p{self.day:%Y%m%d}"

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.day, time.min, tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        return self.start_at + timedelta(days=1)


def partition_for_day(table: str, day: date) -> DayPartition:
    if table not in PARTITIONED_TABLES:
        raise ValueError(f"{table!r} is not a partitioned table; expected one of {sorted(PARTITIONED_TABLES)}")
    return DayPartition(table=table, day=day)


def days_to_cover(*, now: datetime, days_back: int, days_ahead: int) -> tuple[date, date]:
    """The inclusive first and last UTC day that upkeep keeps partitions for around ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(UTC).date()
    return today - timedelta(days=days_back), today + timedelta(days=days_ahead)
