"""Archives of dropped partitions: list them, and restore one into its table (or a new one).

A restore trusts nothing in the archive's directory: the manifest must name an archive this database recorded
when it wrote it (``partition_archives``), agree with that record (table, partition, range, rows, checksum),
the file must have the recorded checksum, and its rows must be the recorded ones (count, time range, rows per
license). The target is the archive's own telemetry table, whose partition is made for the recorded day only,
or a new plain table created by the restore. Each restore is written to the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import InvalidInput, field_problem
from fernando_telemetry.services import audit
from fernando_telemetry.storage import archive as archive_store
from fernando_telemetry.storage.archive import RestoredArchive
from fernando_telemetry.storage.models import PartitionArchive, metadata

__all__ = ["RestoredArchive", "list_archives", "restore", "restore_archive"]

_IDENTIFIER = r"^[a-z_][a-z0-9_]{0,62}$"
_RESERVED_PREFIXES = ("pg_", "sql_", "archive_restore_stage")


def list_archives(session: Session, *, table: str | None = None) -> list[PartitionArchive]:
    query = select(PartitionArchive).order_by(PartitionArchive.table_name, PartitionArchive.range_start)
    if table is not None:
        query = query.where(PartitionArchive.table_name == table)
    return list(session.scalars(query))


def _check_into(session: Session, into: str) -> None:
    if not re.match(_IDENTIFIER, into):
        raise InvalidInput(
            f"into: {into!r} is not a plain table name (lower-case letters, digits, underscores)",
            details=[field_problem("into", "not a plain table name")],
        )
    if into in metadata.tables or into.startswith(_RESERVED_PREFIXES):
        raise InvalidInput(
            f"into: {into!r} is a table of Fernando Telemetry: restore into a new table of your own",
            details=[field_problem("into", "a table of Fernando Telemetry")],
        )
    if archive_store.relation_exists(session, into):
        raise InvalidInput(
            f"into: {into!r} exists already: the restore creates a new table, name one that does not exist",
            details=[field_problem("into", "exists already")],
        )


def restore(
    session: Session,
    path: Path,
    *,
    into: str | None,
    now: datetime,
    actor: str = "cli",
    operator: str | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> RestoredArchive:
    """Load the archive at ``path`` back. Into its own table, its recorded day's partition is made first (retention
    drops it again at its next run unless retention is lengthened); ``into`` names a new plain table instead.

    ``actor`` and ``operator`` (the account that ran the command) go into the audit entry."""
    if into is not None:
        _check_into(session, into)
    manifest, parquet_path = archive_store.read_manifest(path)
    recorded = archive_store.recorded_archive(session, table=manifest["table"], partition=manifest["partition"])
    if recorded is None:
        raise InvalidInput(
            f"no archive of {manifest['table']} partition {manifest['partition']} is recorded in this database: "
            "an archive is restored only into the database that wrote it"
        )
    differences = [
        field
        for field, value in (
            ("range_start", datetime.fromisoformat(manifest["range_start"]) != recorded.range_start),
            ("range_end", datetime.fromisoformat(manifest["range_end"]) != recorded.range_end),
            ("rows", manifest["rows"] != recorded.row_count),
            ("sha256", manifest["sha256"] != recorded.sha256),
        )
        if value
    ]
    if differences:
        raise InvalidInput(
            f"the manifest of {parquet_path} differs from what was recorded when it was archived ({', '.join(differences)}): "
            "the archive was changed"
        )
    if archive_store.file_sha256(parquet_path) != recorded.sha256:
        raise InvalidInput(
            f"{parquet_path} does not match the checksum recorded when it was archived: the file changed or is damaged"
        )
    if into is None:
        archive_store.recreate_partition(session, recorded)  # only the recorded range
    restored = archive_store.restore_archive(
        session, parquet_path, manifest=manifest, recorded=recorded, into=into, now=now, on_rows=on_rows
    )
    audit.record(
        session,
        actor=actor,
        action="archive.restore",
        target_type="partition_archive",
        target_id=recorded.archive_id,
        license_id=None,
        now=now,
        details={
            "table": recorded.table_name,
            "partition": recorded.partition_name,
            "into": restored.table_name,
            "file": str(parquet_path),
            "sha256": recorded.sha256,
            "rows_in_file": restored.rows_in_file,
            "rows_inserted": restored.rows_inserted,
            "license_rows": recorded.license_rows,
            "operator": operator,
        },
    )
    return restored


def restore_archive(
    sessions: sessionmaker[Session],
    path: Path,
    *,
    caller: Caller,
    into: str | None,
    operator: str | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> RestoredArchive:
    """The use case behind ``archive restore``: the rows and the audit entry (the caller's actor, the ``operator``
    account) in one transaction."""
    with sessions.begin() as session:
        return restore(session, path, into=into, now=caller.now(), actor=caller.actor, operator=operator, on_rows=on_rows)
