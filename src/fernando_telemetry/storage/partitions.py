"""Daily partition upkeep in SQL: ``ensure_daily_partitions`` (created by the first revision) per table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.core.partitioning import PARTITIONED_TABLES

__all__ = ["PartitionInfo", "ensure_daily_partitions", "list_partitions"]


@dataclass(frozen=True)
class PartitionInfo:
    table: str
    name: str
    lower_bound: str
    upper_bound: str


def ensure_daily_partitions(session: Session, *, table: str, first_day: date, last_day: date) -> int:
    """Create the missing daily partitions of ``table`` for ``[first_day, last_day]``; return how many."""
    if table not in PARTITIONED_TABLES:
        raise ValueError(f"{table!r} is not partitioned; expected one of {sorted(PARTITIONED_TABLES)}")
    created = session.execute(
        text("SELECT ensure_daily_partitions(CAST(:table AS regclass), :first_day, :last_day)"),
        {"table": table, "first_day": first_day, "last_day": last_day},
    ).scalar_one()
    return int(created)


def list_partitions(session: Session, *, table: str) -> list[PartitionInfo]:
    """The partitions of ``table`` in bound order, with their bounds as PostgreSQL prints them."""
    rows = session.execute(
        text(
            """
            SELECT c.relname,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1] AS lower_bound,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1] AS upper_bound
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = CAST(:table AS regclass)
             ORDER BY 2
            """
        ),
        {"table": table},
    ).all()
    return [PartitionInfo(table=table, name=row[0], lower_bound=row[1], upper_bound=row[2]) for row in rows]
