"""Parquet archives of daily partitions: write one before it is dropped, and load one back.

An archive is ``<dir>/<table>/<partition>.parquet`` (zstd) plus ``<partition>.manifest.json`` (table,
partition, time range, rows, columns and their PostgreSQL types, SHA-256 of the Parquet file, schema
revision) and a ``partition_archives`` row. Rows are streamed with a server-side cursor into Parquet row
groups, so a partition of any size is archived in bounded memory. Numbers, booleans and timestamps keep
their types; every other column (text, uuid, jsonb, arrays, numeric) is stored as its PostgreSQL text form,
which loads back exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.core.errors import InvalidInput, NotFound

__all__ = [
    "ArchivedPartition",
    "ExpiredPartition",
    "RestoredArchive",
    "archive_partition",
    "expired_partitions",
    "read_manifest",
    "restore_archive",
]

BATCH_ROWS = 50_000
MANIFEST_SUFFIX = ".manifest.json"

_ARROW_TYPES: dict[str, pa.DataType] = {
    "smallint": pa.int64(),
    "integer": pa.int64(),
    "bigint": pa.int64(),
    "double precision": pa.float64(),
    "real": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}


@dataclass(frozen=True)
class ExpiredPartition:
    table_name: str
    partition_name: str
    range_start: datetime
    range_end: datetime


@dataclass(frozen=True)
class ArchivedPartition:
    table_name: str
    partition_name: str
    path: Path
    rows: int
    file_bytes: int
    sha256: str


@dataclass(frozen=True)
class RestoredArchive:
    table_name: str
    rows_in_file: int
    rows_inserted: int


def expired_partitions(session: Session, *, table: str, cutoff: datetime) -> list[ExpiredPartition]:
    """The daily partitions of ``table`` whose upper bound is at or before ``cutoff``, oldest first."""
    rows = session.execute(
        text(
            "SELECT c.relname, "
            "(regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz, "
            "(regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:table)"
        ),
        {"table": table},
    ).all()
    found = [ExpiredPartition(table, name, start, end) for name, start, end in rows if end is not None and end <= cutoff]
    return sorted(found, key=lambda partition: partition.range_start)


def _columns(session: Session, table: str) -> list[tuple[str, str]]:
    rows = session.execute(
        text(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(:table) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        ),
        {"table": table},
    ).all()
    if not rows:
        raise NotFound(f"table {table!r} does not exist")
    return [(name, pg_type) for name, pg_type in rows]


def _arrow_type(pg_type: str) -> pa.DataType:
    if pg_type.startswith("timestamp") and "with time zone" in pg_type:
        return _ARROW_TYPES["timestamp with time zone"]
    return _ARROW_TYPES.get(pg_type, pa.string())


def _schema_revision(session: Session) -> str | None:
    return session.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _batches(session: Session, select: str, size: int) -> Iterator[list[tuple[Any, ...]]]:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor(name=f"archive_{os.getpid()}_{id(select)}") as cursor:
        cursor.itersize = size
        cursor.execute(select)
        while rows := cursor.fetchmany(size):
            yield rows


def archive_partition(
    session: Session, partition: ExpiredPartition, *, directory: Path, now: datetime, on_rows: Callable[[int], None] | None = None
) -> ArchivedPartition:
    """Write ``partition`` to Parquet with its manifest (overwriting an earlier archive of it) and record it."""
    columns = _columns(session, partition.table_name)
    schema = pa.schema([(name, _arrow_type(pg_type)) for name, pg_type in columns])
    select_list = sql.SQL(", ").join(
        sql.Identifier(name) if _arrow_type(pg_type) != pa.string() else sql.SQL("{}::text").format(sql.Identifier(name))
        for name, pg_type in columns
    )
    raw = session.connection().connection.driver_connection
    assert raw is not None
    select = sql.SQL("SELECT {} FROM {}").format(select_list, sql.Identifier(partition.partition_name)).as_string(raw)

    target_dir = directory / partition.table_name
    target_dir.mkdir(parents=True, exist_ok=True)
    final = target_dir / f"{partition.partition_name}.parquet"
    partial = final.with_suffix(".parquet.partial")
    rows = 0
    with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
        for batch in _batches(session, select, BATCH_ROWS):
            arrays = [pa.array([row[i] for row in batch], type=field.type) for i, field in enumerate(schema)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            rows += len(batch)
            if on_rows is not None:
                on_rows(len(batch))
        if rows == 0:
            writer.write_table(schema.empty_table())
    os.replace(partial, final)
    checksum = _sha256(final)
    file_bytes = final.stat().st_size
    manifest = {
        "format": "fernando-telemetry-partition-archive/1",
        "table": partition.table_name,
        "partition": partition.partition_name,
        "range_start": partition.range_start.isoformat(),
        "range_end": partition.range_end.isoformat(),
        "rows": rows,
        "columns": [{"name": name, "postgres_type": pg_type} for name, pg_type in columns],
        "file": final.name,
        "compression": "zstd",
        "sha256": checksum,
        "file_bytes": file_bytes,
        "schema_revision": _schema_revision(session),
        "archived_at": now.isoformat(),
    }
    manifest_path = target_dir / f"{partition.partition_name}{MANIFEST_SUFFIX}"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    session.execute(
        text(
            "INSERT INTO partition_archives (table_name, partition_name, range_start, range_end, row_count, file_bytes, "
            "sha256, path, archived_at) VALUES (:table, :partition, :start, :end, :rows, :bytes, :sha, :path, :now) "
            "ON CONFLICT (table_name, partition_name) DO UPDATE SET row_count = EXCLUDED.row_count, "
            "file_bytes = EXCLUDED.file_bytes, sha256 = EXCLUDED.sha256, path = EXCLUDED.path, archived_at = EXCLUDED.archived_at"
        ),
        {
            "table": partition.table_name,
            "partition": partition.partition_name,
            "start": partition.range_start,
            "end": partition.range_end,
            "rows": rows,
            "bytes": file_bytes,
            "sha": checksum,
            "path": str(final),
            "now": now,
        },
    )
    return ArchivedPartition(partition.table_name, partition.partition_name, final, rows, file_bytes, checksum)


def read_manifest(path: Path) -> tuple[dict[str, Any], Path]:
    """The manifest of an archive named by its ``.parquet`` or ``.manifest.json`` path, and the Parquet path."""
    path = Path(path)
    if path.name.endswith(MANIFEST_SUFFIX):
        manifest_path = path
    elif path.suffix == ".parquet":
        manifest_path = path.with_name(path.name[: -len(".parquet")] + MANIFEST_SUFFIX)
    else:
        raise InvalidInput(f"{path} is not an archive: name a .parquet file or its .manifest.json")
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise NotFound(f"no manifest at {manifest_path}: archives are restored with the manifest written beside them") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{manifest_path} is not a valid manifest: {exc}") from None
    parquet_path = manifest_path.with_name(str(manifest.get("file", "")))
    if not parquet_path.is_file():
        raise NotFound(f"the archive file {parquet_path} named by {manifest_path} is missing")
    return manifest, parquet_path


def restore_archive(
    session: Session, path: Path, *, into: str | None = None, now: datetime, on_rows: Callable[[int], None] | None = None
) -> RestoredArchive:
    """Load an archive back: into its own table (the caller makes the partition) or into ``into``.

    Rows already present are skipped (``ON CONFLICT DO NOTHING``), so a restore can be repeated. The file's
    checksum must match its manifest."""
    manifest, parquet_path = read_manifest(path)
    if _sha256(parquet_path) != manifest.get("sha256"):
        raise InvalidInput(f"{parquet_path} does not match the checksum in its manifest: the file changed or is damaged")
    source_table = str(manifest["table"])
    target = into or source_table
    raw = session.connection().connection.driver_connection
    assert raw is not None
    if into is not None:
        with raw.cursor() as cursor:
            cursor.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)").format(sql.Identifier(into), sql.Identifier(source_table))
            )
    names = [column["name"] for column in manifest["columns"]]
    target_columns = {name for name, _ in _columns(session, target)}
    missing = [name for name in names if name not in target_columns]
    if missing:
        raise InvalidInput(f"table {target!r} has no column(s) {', '.join(missing)} of the archive: restore into a new table with --into")
    stage = "archive_restore_stage"
    column_list = sql.SQL(", ").join(sql.Identifier(name) for name in names)
    with raw.cursor() as cursor:
        cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(stage)))
        cursor.execute(
            sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
                sql.Identifier(stage), sql.Identifier(target)
            )
        )
        rows = 0
        with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(stage), column_list)) as copy:
            for batch in pq.ParquetFile(parquet_path).iter_batches(batch_size=BATCH_ROWS, columns=names):
                columns = [column.to_pylist() for column in batch.columns]
                for row in zip(*columns, strict=True):
                    copy.write_row(row)
                rows += batch.num_rows
                if on_rows is not None:
                    on_rows(batch.num_rows)
        cursor.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                sql.Identifier(target), column_list, column_list, sql.Identifier(stage)
            )
        )
        inserted = cursor.rowcount
        cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(stage)))
    if into is None:
        session.execute(
            text("UPDATE partition_archives SET restored_at = :now WHERE table_name = :table AND partition_name = :partition"),
            {"now": now, "table": source_table, "partition": manifest["partition"]},
        )
    return RestoredArchive(table_name=target, rows_in_file=rows, rows_inserted=max(inserted, 0))
