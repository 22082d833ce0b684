"""The ``columnar`` table access method (the ``citus_columnar`` extension) in SQL: whether the server has it,
installing it, the storage kind and size of each daily partition, and moving one partition between heap and columnar.

Columnar on this version (Citus 13.2) takes INSERT, COPY, ``ON CONFLICT DO NOTHING`` and btree/hash/GIN/BRIN
indexes, but not UPDATE, DELETE, ``ON CONFLICT DO UPDATE``, row locks, sample scans or AFTER ROW triggers (they
refetch the row by ctid): a columnar partition has its triggers (the foreign-key checks) disabled, which needs a
superuser, and a partition that must lose rows goes back to heap first (``set_access_method(..., HEAP)``).
Imports only core.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fernando_telemetry.core.partitioning import PARTITIONED_TABLES

__all__ = [
    "COLUMNAR",
    "EXTENSION",
    "HEAP",
    "ColumnarSupport",
    "PartitionStorage",
    "columnar_row_count",
    "install",
    "is_distributed",
    "is_lock_timeout",
    "is_not_permitted",
    "lock_partition",
    "partitions",
    "row_count",
    "set_access_method",
    "support",
]

EXTENSION = "citus_columnar"
COLUMNAR = "columnar"
HEAP = "heap"

COLUMNAR_OPTIONS = {
    "columnar.compression": "zstd",
    "columnar.compression_level": "9",
    "columnar.stripe_row_limit": "150000",
    "columnar.chunk_group_row_limit": "10000",
}
"""Session settings a conversion writes its stripes with (``SET LOCAL``): zstd at level 9 (3 is the default) and
Citus's default stripe and chunk-group sizes, chosen by ``bench/columnar.py``."""

ROW_ORDER: dict[str, tuple[str, ...]] = {
    "traces": ("trace_id", "start_time"),
    "telemetry_events": ("event_type", "event_timestamp"),
    "system_metrics": ("service_name", "metric_name", "timestamp"),
}
"""The order rows are written in when a partition turns columnar: equal values together compress better and a
trace's spans share chunk groups. (Citus 13.2 skips chunk groups by their min/max only for a column compared with
its own type's operators, so not for the ``varchar`` ``trace_id`` compared as ``text``.)"""


@dataclass(frozen=True)
class ColumnarSupport:
    """Whether this server can store partitions as columnar, and if not, why."""

    installed: bool
    """The ``columnar`` access method exists in this database."""
    available: bool
    """The extension can be created here (it is in ``pg_available_extensions``)."""
    distributed: bool
    """Citus's distributed part is installed (``pg_dist_partition`` exists)."""

    @property
    def reason(self) -> str:
        if self.installed:
            return "columnar access method installed"
        if self.available:
            return f"extension {EXTENSION} is available but not created yet"
        return f"extension {EXTENSION} is not available on this server (pg_available_extensions)"


@dataclass(frozen=True)
class PartitionStorage:
    """One daily partition of a partitioned table: its bounds, its storage kind and its size now."""

    table: str
    name: str
    lower_bound: datetime | None
    upper_bound: datetime | None
    access_method: str
    total_bytes: int


def support(session: Session) -> ColumnarSupport:
    row = session.execute(
        text(
            """
            SELECT EXISTS (SELECT 1 FROM pg_am WHERE amname = 'columnar' AND amtype = 't'),
                   EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = :extension),
                   to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL
            """
        ),
        {"extension": EXTENSION},
    ).one()
    return ColumnarSupport(installed=bool(row[0]), available=bool(row[1]), distributed=bool(row[2]))


def install(session: Session) -> str | None:
    """``CREATE EXTENSION IF NOT EXISTS citus_columnar`` in a savepoint; None when done, else the server's reason
    (for example a role that may not create extensions)."""
    try:
        with session.begin_nested():
            session.execute(text(f"CREATE EXTENSION IF NOT EXISTS {EXTENSION}"))
    except DBAPIError as error:
        return str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
    return None


def partitions(session: Session, *, table: str) -> list[PartitionStorage]:
    """The partitions of ``table`` in bound order, with their access method and total size (data, indexes, TOAST)."""
    if table not in PARTITIONED_TABLES:
        raise ValueError(f"{table!r} is not partitioned; expected one of {sorted(PARTITIONED_TABLES)}")
    rows = session.execute(
        text(
            """
            SELECT c.relname,
                   ((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1])::timestamptz,
                   ((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1])::timestamptz,
                   coalesce(am.amname, 'heap'),
                   pg_total_relation_size(c.oid)
              FROM pg_inherits i
              JOIN pg_class c ON c.oid = i.inhrelid
              LEFT JOIN pg_am am ON am.oid = c.relam
             WHERE i.inhparent = CAST(:table AS regclass)
             ORDER BY 2 NULLS FIRST
            """
        ),
        {"table": table},
    ).all()
    return [
        PartitionStorage(
            table=table, name=row[0], lower_bound=row[1], upper_bound=row[2], access_method=row[3], total_bytes=int(row[4])
        )
        for row in rows
    ]


def is_distributed(session: Session, *, relation: str) -> bool:
    """Whether Citus distributes ``relation`` (a row in ``pg_dist_partition``); false without Citus."""
    has_catalog = session.execute(text("SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL")).scalar_one()
    if not has_catalog:
        return False
    return bool(
        session.execute(
            text("SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = CAST(:relation AS regclass))"),
            {"relation": _quoted(relation)},
        ).scalar_one()
    )


def lock_partition(session: Session, *, relation: str, lock_timeout_ms: int) -> None:
    """Take ``ACCESS EXCLUSIVE`` on one partition, waiting at most ``lock_timeout_ms`` (then the server raises
    ``lock_not_available``, see ``is_lock_timeout``); the timeout stays for the rest of the transaction."""
    session.execute(text("SELECT set_config('lock_timeout', :value, true)"), {"value": f"{int(lock_timeout_ms)}ms"})
    session.execute(text(f"LOCK TABLE {_quoted(relation)} IN ACCESS EXCLUSIVE MODE"))


def is_not_permitted(error: DBAPIError) -> bool:
    """The role may not do it (``insufficient_privilege``): disabling foreign-key triggers needs a superuser."""
    return getattr(error.orig, "sqlstate", None) == "42501"


def is_lock_timeout(error: DBAPIError) -> bool:
    """The lock was not granted in time (``lock_not_available``), or the partition was dropped meanwhile
    (``undefined_table``, retention got there first): either way, leave it for the next run."""
    return getattr(error.orig, "sqlstate", None) in ("55P03", "42P01")


def row_count(session: Session, *, relation: str) -> int:
    return int(session.execute(text(f"SELECT count(*) FROM {_quoted(relation)}")).scalar_one())


def columnar_row_count(session: Session, *, relation: str) -> int:
    """Rows of a columnar relation from its stripe metadata (exact: columnar rows are never deleted), no scan."""
    return int(
        session.execute(
            text("SELECT coalesce(sum(row_count), 0) FROM columnar.stripe WHERE relation = CAST(:relation AS regclass)"),
            {"relation": _quoted(relation)},
        ).scalar_one()
    )


def set_access_method(session: Session, *, table: str, relation: str, method: str, distributed: bool) -> None:
    """Rewrite one partition of ``table`` with ``method`` (``heap`` or ``columnar``) in the caller's transaction.

    To columnar, rows are written in ``ROW_ORDER`` with ``COLUMNAR_OPTIONS``: copied aside in that order, the
    partition emptied, its access method changed, and the rows written back. On a Citus coordinator where the
    relation is distributed, Citus's ``alter_table_set_access_method`` does the rewrite on every shard instead."""
    if method not in (HEAP, COLUMNAR):
        raise ValueError(f"access method must be {HEAP!r} or {COLUMNAR!r}, got {method!r}")
    if method == COLUMNAR:
        for name, value in COLUMNAR_OPTIONS.items():
            session.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})
    if distributed:
        session.execute(
            text("SELECT alter_table_set_access_method(CAST(:relation AS regclass), :method)"),
            {"relation": _quoted(relation), "method": method},
        )
        return
    quoted = _quoted(relation)
    if method == HEAP:
        session.execute(text(f"ALTER TABLE {quoted} SET ACCESS METHOD heap, ENABLE TRIGGER ALL"))
        return
    order = ", ".join(_quoted(column) for column in ROW_ORDER[table])
    session.execute(text("DROP TABLE IF EXISTS pg_temp.columnar_rows"))
    session.execute(
        text(f"CREATE TEMPORARY TABLE columnar_rows ON COMMIT DROP AS SELECT * FROM {quoted} ORDER BY {order}")  # noqa: S608 catalog names
    )
    session.execute(text(f"TRUNCATE {quoted}"))
    # AFTER ROW triggers (here: the foreign-key checks) refetch each new row by its ctid, which columnar cannot
    # do ("columnar_fetch_row_version not implemented"): with them on, no row could be inserted in a cold partition.
    # One statement, so everything it changes is done under its ACCESS EXCLUSIVE lock.
    session.execute(text(f"ALTER TABLE {quoted} SET ACCESS METHOD columnar, DISABLE TRIGGER ALL"))
    session.execute(text(f"INSERT INTO {quoted} SELECT * FROM pg_temp.columnar_rows"))  # noqa: S608 catalog names
    session.execute(text("DROP TABLE pg_temp.columnar_rows"))
    # the rows went in one by one, and so did their index entries: rebuilt, the indexes are packed again
    session.execute(text(f"REINDEX TABLE {quoted}"))
    session.execute(text(f"ANALYZE {quoted}"))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
