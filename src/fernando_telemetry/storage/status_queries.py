"""What ``status`` reads from the catalog: the database, the migration revision, every table and partition
with the planner's row estimate and its size, and exact or sampled row counts when asked.

Catalog reads only (``pg_class``, ``pg_inherits``, sizes), so they stay fast at any row count; counting
rows is a separate call the service makes where an estimate is missing. Imports only core.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = [
    "DatabaseFigures",
    "RelationFigures",
    "alembic_revision",
    "columnar_rows",
    "count_rows",
    "database_figures",
    "relations",
    "sample_rows",
    "table_exists",
]


@dataclass(frozen=True)
class DatabaseFigures:
    name: str
    server_version: str
    size_bytes: int
    block_size: int


@dataclass(frozen=True)
class RelationFigures:
    """A table or a partition of the current schema, as the catalog knows it now."""

    name: str
    parent: str | None
    """The partitioned table this is a partition of; None for a table."""
    partitioned: bool
    """A partitioned table (no storage of its own; its figures are its partitions')."""
    lower_bound: datetime | None
    """A range partition's lower bound; None for tables and a default partition."""
    reltuples: float
    """The planner's row count at the last VACUUM or ANALYZE; -1 when never analyzed."""
    relpages: int
    """Heap pages at that time."""
    heap_bytes: int
    """Heap size now."""
    total_bytes: int
    """Heap, indexes and TOAST now."""
    access_method: str = "heap"
    """How its rows are stored: ``heap``, or ``columnar`` (cold storage); empty for a partitioned table."""


def database_figures(session: Session) -> DatabaseFigures:
    row = session.execute(
        text(
            """
            SELECT current_database(), current_setting('server_version'),
                   pg_database_size(current_database()), current_setting('block_size')::int
            """
        )
    ).one()
    return DatabaseFigures(name=row[0], server_version=row[1], size_bytes=int(row[2]), block_size=int(row[3]))


def table_exists(session: Session, *, name: str) -> bool:
    """Whether the current schema has a table of that name (older revisions lack the newer tables)."""
    return bool(session.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}).scalar_one())


def alembic_revision(session: Session) -> str | None:
    """The migration revision recorded in the database; None before the first migration."""
    if not table_exists(session, name="alembic_version"):
        return None
    return session.execute(text("SELECT version_num FROM alembic_version LIMIT 1")).scalar_one_or_none()


def relations(session: Session) -> list[RelationFigures]:
    """Every ordinary and partitioned table of the current schema and every partition of them, by name."""
    rows = session.execute(
        text(
            """
            SELECT c.relname,
                   parent.relname,
                   c.relkind = 'p',
                   CASE WHEN c.relispartition THEN
                        ((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1])::timestamptz
                   END,
                   c.reltuples,
                   c.relpages,
                   CASE WHEN c.relkind = 'p' THEN 0 ELSE pg_relation_size(c.oid) END,
                   CASE WHEN c.relkind = 'p' THEN 0 ELSE pg_total_relation_size(c.oid) END,
                   coalesce(am.amname, '')
              FROM pg_class c
              LEFT JOIN pg_am am ON am.oid = c.relam
              LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND c.relispartition
              LEFT JOIN pg_class parent ON parent.oid = i.inhparent
             WHERE c.relnamespace = CAST(current_schema() AS regnamespace)
               AND c.relkind IN ('r', 'p')
             ORDER BY c.relname
            """
        )
    )
    return [
        RelationFigures(
            name=row[0],
            parent=row[1],
            partitioned=bool(row[2]),
            lower_bound=row[3],
            reltuples=float(row[4]),
            relpages=int(row[5]),
            heap_bytes=int(row[6]),
            total_bytes=int(row[7]),
            access_method=str(row[8]),
        )
        for row in rows
    ]


def count_rows(session: Session, *, relation: str) -> int:
    """``count(*)`` of one table or partition: exact, and as slow as a scan of it."""
    return int(session.execute(text(f"SELECT count(*) FROM {_quoted(relation)}")).scalar_one())


def columnar_rows(session: Session, *, relation: str) -> int:
    """Rows of a columnar table from its stripes' metadata: exact (columnar rows are never deleted in place) and
    read without a scan. Columnar tables have no sample scan."""
    return int(
        session.execute(
            text("SELECT coalesce(sum(row_count), 0) FROM columnar.stripe WHERE relation = CAST(:relation AS regclass)"),
            {"relation": _quoted(relation)},
        ).scalar_one()
    )


def sample_rows(session: Session, *, relation: str, percent: float) -> int:
    """Rows of a block sample of ``percent`` % of the relation's pages, scaled up: an estimate that reads
    only that share of the heap."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    sampled = session.execute(
        text(f"SELECT count(*) FROM {_quoted(relation)} TABLESAMPLE SYSTEM ({float(percent)})")
    ).scalar_one()
    return round(int(sampled) * 100.0 / percent)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
