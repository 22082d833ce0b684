"""Archives of dropped partitions: list them, and restore one into its table (or a new one)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.services import partitions
from fernando_telemetry.storage import archive as archive_store
from fernando_telemetry.storage.archive import RestoredArchive
from fernando_telemetry.storage.models import PartitionArchive

__all__ = ["RestoredArchive", "list_archives", "restore"]

_IDENTIFIER = r"^[a-z_][a-z0-9_]{0,62}$"


def list_archives(session: Session, *, table: str | None = None) -> list[PartitionArchive]:
    query = select(PartitionArchive).order_by(PartitionArchive.table_name, PartitionArchive.range_start)
    if table is not None:
        query = query.where(PartitionArchive.table_name == table)
    return list(session.scalars(query))


def restore(
    session: Session, path: Path, *, into: str | None, now: datetime, on_rows: Callable[[int], None] | None = None
) -> RestoredArchive:
    """Load the archive at ``path`` back. Into its own table, its day's partition is made first (retention
    drops it again at its next run unless retention is lengthened); ``into`` names a new plain table instead."""
    if into is not None and not re.match(_IDENTIFIER, into):
        raise InvalidInput(f"--into {into!r} is not a plain table name (lower-case letters, digits, underscores)")
    manifest, _ = archive_store.read_manifest(path)
    if into is None:
        start = datetime.fromisoformat(manifest["range_start"])
        end = datetime.fromisoformat(manifest["range_end"])
        # daily partitions: [start, end) covers start's day (end is the next midnight)
        last_day = (end - timedelta(microseconds=1)).date()
        partitions.ensure_for_days(
            session, first_day=start.date(), last_day=max(start.date(), last_day), tables=(manifest["table"],)
        )
    return archive_store.restore_archive(session, path, into=into, now=now, on_rows=on_rows)
