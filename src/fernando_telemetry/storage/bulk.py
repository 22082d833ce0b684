"""Bulk loading by COPY inside the caller's transaction (generators, backfills). Imports only ``storage.database``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from psycopg import sql
from sqlalchemy.orm import Session

from fernando_telemetry.storage.database import driver_connection

__all__ = ["copy_rows"]


def copy_rows(
    session: Session,
    *,
    table: str,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    progress: Callable[[int], None] = lambda rows_done: None,
    report_every: int = 10_000,
) -> int:
    """COPY ``rows`` into ``table`` on the session's connection; returns how many rows were written."""
    connection = driver_connection(session)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    )
    written = 0
    with connection.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
            if written % report_every == 0:
                progress(report_every)
    progress(written % report_every)
    return written
