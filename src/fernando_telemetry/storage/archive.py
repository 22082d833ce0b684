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
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.core.errors import InvalidInput, NotFound

__all__ = [
    "ArchivedPartition",
    "ARCHIVED_TABLES",
    "ExpiredPartition",
    "RecordedArchive",
    "RestoredArchive",
    "archive_partition",
    "expired_partitions",
    "file_sha256",
    "read_manifest",
    "recorded_archive",
    "recreate_partition",
    "relation_exists",
    "restore_archive",
]

BATCH_ROWS = 50_000
MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = "fernando-telemetry-partition-archive/1"
ARCHIVED_TABLES: dict[str, str] = {"telemetry_events": "event_timestamp", "system_metrics": "timestamp", "traces": "start_time"}
"""The tables whose partitions are archived, and the time column each is partitioned by."""

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


def _archived_value(partition: ExpiredPartition, name: str) -> sql.Composable:
    """What the archive holds of a column: its value, but a span's resource resolved from ``telemetry_resources``, so
    the file stands alone (restored anywhere, its spans carry their resource inline in ``resource``)."""
    if partition.table_name == "traces" and name == "resource":
        row = sql.Identifier(partition.partition_name)
        return sql.SQL(
            "COALESCE((SELECT r.attributes FROM telemetry_resources AS r WHERE r.resource_id = {row}.resource_id "
            "AND r.license_id = {row}.license_id), {row}.resource)"
        ).format(row=row)
    return sql.Identifier(name)


def archive_partition(
    session: Session, partition: ExpiredPartition, *, directory: Path, now: datetime, on_rows: Callable[[int], None] | None = None
) -> ArchivedPartition:
    """Write ``partition`` to Parquet with its manifest (overwriting an earlier archive of it) and record it."""
    columns = _columns(session, partition.table_name)
    schema = pa.schema([(name, _arrow_type(pg_type)) for name, pg_type in columns])
    select_list = sql.SQL(", ").join(
        _archived_value(partition, name)
        if _arrow_type(pg_type) != pa.string()
        else sql.SQL("{}::text").format(_archived_value(partition, name))
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
    license_at = [name for name, _ in columns].index("license_id") if any(name == "license_id" for name, _ in columns) else None
    license_rows: Counter[str] = Counter()
    with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
        for batch in _batches(session, select, BATCH_ROWS):
            arrays = [pa.array([row[i] for row in batch], type=field.type) for i, field in enumerate(schema)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            rows += len(batch)
            if license_at is not None:
                license_rows.update(_license_key(row[license_at]) for row in batch)
            if on_rows is not None:
                on_rows(len(batch))
        if rows == 0:
            writer.write_table(schema.empty_table())
    os.replace(partial, final)
    checksum = _sha256(final)
    file_bytes = final.stat().st_size
    manifest = {
        "format": MANIFEST_FORMAT,
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
            "sha256, path, archived_at, license_rows) VALUES (:table, :partition, :start, :end, :rows, :bytes, :sha, :path, :now, "
            "CAST(:license_rows AS jsonb)) "
            "ON CONFLICT (table_name, partition_name) DO UPDATE SET row_count = EXCLUDED.row_count, "
            "file_bytes = EXCLUDED.file_bytes, sha256 = EXCLUDED.sha256, path = EXCLUDED.path, archived_at = EXCLUDED.archived_at, "
            "license_rows = EXCLUDED.license_rows, range_start = EXCLUDED.range_start, range_end = EXCLUDED.range_end"
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
            "license_rows": json.dumps(dict(license_rows)) if license_at is not None else None,
        },
    )
    return ArchivedPartition(partition.table_name, partition.partition_name, final, rows, file_bytes, checksum)


def _license_key(license_id: object) -> str:
    return "null" if license_id is None else str(license_id)


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _bad(manifest_path: Path, field: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{manifest_path} is not a valid manifest: {field!r} {problem}")


def _manifest_time(manifest_path: Path, manifest: dict[str, Any], field: str) -> datetime:
    value = manifest.get(field)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _bad(manifest_path, field, "must be an ISO 8601 time with its offset")
    return parsed


def _checked_manifest(manifest_path: Path, manifest: object) -> dict[str, Any]:
    """The manifest if every field has its shape, else one ``InvalidInput`` naming the field."""
    if not isinstance(manifest, dict):
        raise InvalidInput(f"{manifest_path} is not a valid manifest: it must be a JSON object")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise _bad(manifest_path, "format", f"must be {MANIFEST_FORMAT!r}")
    table = manifest.get("table")
    if table not in ARCHIVED_TABLES:
        raise _bad(manifest_path, "table", f"must be one of {', '.join(ARCHIVED_TABLES)}")
    partition = manifest.get("partition")
    if not isinstance(partition, str) or not _IDENTIFIER.match(partition):
        raise _bad(manifest_path, "partition", "must be a partition name (lower-case letters, digits, underscores)")
    start = _manifest_time(manifest_path, manifest, "range_start")
    end = _manifest_time(manifest_path, manifest, "range_end")
    if not start < end:
        raise _bad(manifest_path, "range_end", "must be after range_start")
    rows = manifest.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise _bad(manifest_path, "rows", "must be a whole number >= 0")
    columns = manifest.get("columns")
    if not isinstance(columns, list) or not columns:
        raise _bad(manifest_path, "columns", "must be a non-empty list")
    names: list[str] = []
    for column in columns:
        name = column.get("name") if isinstance(column, dict) else None
        if not isinstance(name, str) or not _IDENTIFIER.match(name) or name in names:
            raise _bad(manifest_path, "columns", "must be objects with distinct column names")
        names.append(name)
    if manifest.get("file") != f"{partition}.parquet":
        raise _bad(manifest_path, "file", f"must be {partition + '.parquet'!r}, the file beside the manifest")
    checksum = manifest.get("sha256")
    if not isinstance(checksum, str) or not _SHA256.match(checksum):
        raise _bad(manifest_path, "sha256", "must be 64 lower-case hexadecimal digits")
    return manifest


def read_manifest(path: Path) -> tuple[dict[str, Any], Path]:
    """The manifest of an archive named by its ``.parquet`` or ``.manifest.json`` path, and the Parquet path.

    Every field is checked for its shape; a malformed manifest is one ``InvalidInput`` naming the field."""
    path = Path(path)
    if path.name.endswith(MANIFEST_SUFFIX):
        manifest_path = path
    elif path.suffix == ".parquet":
        manifest_path = path.with_name(path.name[: -len(".parquet")] + MANIFEST_SUFFIX)
    else:
        raise InvalidInput(f"{path} is not an archive: name a .parquet file or its .manifest.json")
    try:
        manifest = _checked_manifest(manifest_path, json.loads(manifest_path.read_bytes()))
    except FileNotFoundError:
        raise NotFound(f"no manifest at {manifest_path}: archives are restored with the manifest written beside them") from None
    except (ValueError, RecursionError) as exc:  # JSON and UTF-8 decoding errors are ValueErrors
        raise InvalidInput(
            f"{manifest_path} is not a valid manifest: {str(exc).splitlines()[0] if str(exc) else 'not JSON'}"
        ) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read the manifest {manifest_path}: {exc.strerror or exc}") from None
    parquet_path = manifest_path.with_name(manifest["file"])
    if not parquet_path.is_file():
        raise NotFound(f"the archive file {parquet_path} named by {manifest_path} is missing")
    return manifest, parquet_path


@dataclass(frozen=True)
class RecordedArchive:
    """What ``partition_archives`` recorded when the archive was written: the reference a restore is checked with."""

    archive_id: int
    table_name: str
    partition_name: str
    range_start: datetime
    range_end: datetime
    row_count: int
    sha256: str
    license_rows: dict[str, int] | None


def recorded_archive(session: Session, *, table: str, partition: str) -> RecordedArchive | None:
    row = session.execute(
        text(
            "SELECT archive_id, table_name, partition_name, range_start, range_end, row_count, sha256, license_rows "
            "FROM partition_archives WHERE table_name = :table AND partition_name = :partition"
        ),
        {"table": table, "partition": partition},
    ).one_or_none()
    return None if row is None else RecordedArchive(*row)


def file_sha256(path: Path) -> str:
    try:
        return _sha256(path)
    except OSError as exc:
        raise InvalidInput(f"cannot read the archive file {path}: {exc.strerror or exc}") from None


def relation_exists(session: Session, name: str) -> bool:
    """A table, view, sequence or any other relation named ``name`` on the search path."""
    return session.execute(text("SELECT to_regclass(quote_ident(:name)) IS NOT NULL"), {"name": name}).scalar_one()


def recreate_partition(session: Session, recorded: RecordedArchive) -> bool:
    """Make the archived partition again, empty, with its recorded bounds, unless it exists; True when made.

    ``CREATE TABLE ... PARTITION OF`` in one statement: on Citus it creates the partition's shards colocated with its
    table's in the transaction's current mode, so it also works after parallel multi-shard statements of the same
    transaction (``ensure_daily_partitions`` creates and attaches in sequential mode, which Citus refuses then)."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('fernando_telemetry.partitions:' || :table, 0))"),
        {"table": recorded.table_name},
    )
    if relation_exists(session, recorded.partition_name):
        return False
    statement = session.execute(
        text(
            "SELECT format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', CAST(:partition AS text), CAST(:table AS text), CAST(:start AS timestamptz), CAST(:end AS timestamptz))"
        ),
        {
            "partition": recorded.partition_name,
            "table": recorded.table_name,
            "start": recorded.range_start,
            "end": recorded.range_end,
        },
    ).scalar_one()
    session.connection().exec_driver_sql(statement)  # bounds are literals: no bind-parameter parsing of their colons
    return True


def restore_archive(
    session: Session,
    parquet_path: Path,
    *,
    manifest: dict[str, Any],
    recorded: RecordedArchive,
    into: str | None = None,
    now: datetime,
    on_rows: Callable[[int], None] | None = None,
) -> RestoredArchive:
    """Load a checked archive back: into its own table (the caller makes the partition) or into ``into``, a
    table created here (``CREATE TABLE`` without ``IF NOT EXISTS``: an existing one is an error).

    The rows are staged first and refused unless they are what ``recorded`` says: the row count, every time
    inside the recorded range, and the rows per license. Rows already present are skipped (``ON CONFLICT DO
    NOTHING``), so a restore into its own table can be repeated."""
    source_table = recorded.table_name
    time_column = ARCHIVED_TABLES[source_table]
    target = into or source_table
    raw = session.connection().connection.driver_connection
    assert raw is not None
    names = [column["name"] for column in manifest["columns"]]
    source_columns = {name for name, _ in _columns(session, source_table)}
    missing = [name for name in names if name not in source_columns]
    if missing:
        raise InvalidInput(f"table {source_table!r} has no column(s) {', '.join(missing)} named by the archive's manifest")
    if time_column not in names:
        raise InvalidInput(f"the archive's manifest lacks the column {time_column!r} of {source_table}")
    stage = "archive_restore_stage"
    column_list = sql.SQL(", ").join(sql.Identifier(name) for name in names)
    try:
        parquet = pq.ParquetFile(parquet_path)
        with raw.cursor() as cursor:
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(stage)))
            cursor.execute(
                sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
                    sql.Identifier(stage), sql.Identifier(source_table)
                )
            )
            rows = 0
            with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(stage), column_list)) as copy:
                for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=names):
                    columns = [column.to_pylist() for column in batch.columns]
                    for row in zip(*columns, strict=True):
                        copy.write_row(row)
                    rows += batch.num_rows
                    if rows > recorded.row_count:
                        raise InvalidInput(
                            f"{parquet_path} holds more than the {recorded.row_count} rows recorded for its partition"
                        )
                    if on_rows is not None:
                        on_rows(batch.num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(
            f"{parquet_path} cannot be read as this archive: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    except psycopg.Error as exc:
        raise InvalidInput(f"the rows of {parquet_path} do not load into {source_table}: {str(exc).splitlines()[0]}") from None
    if file_sha256(parquet_path) != recorded.sha256:  # changed while it was read
        raise InvalidInput(f"{parquet_path} does not match the checksum recorded when it was archived: the file changed")
    _check_staged(session, stage, recorded=recorded, time_column=time_column, parquet_path=parquet_path)
    with raw.cursor() as cursor:
        if into is not None:
            cursor.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(sql.Identifier(into), sql.Identifier(source_table))
            )
        # the rows the INSERT returned, not its row count: on Citus an INSERT ... SELECT through the coordinator
        # reports every row it sent to the shards, also those ON CONFLICT skipped
        cursor.execute(
            sql.SQL(
                "WITH inserted AS (INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING RETURNING 1) "
                "SELECT count(*) FROM inserted"
            ).format(sql.Identifier(target), column_list, column_list, sql.Identifier(stage))
        )
        counted = cursor.fetchone()
        inserted = int(counted[0]) if counted is not None else 0
        cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(stage)))
    if into is None:
        session.execute(
            text("UPDATE partition_archives SET restored_at = :now WHERE archive_id = :id"),
            {"now": now, "id": recorded.archive_id},
        )
    return RestoredArchive(table_name=target, rows_in_file=rows, rows_inserted=max(inserted, 0))


def _check_staged(session: Session, stage: str, *, recorded: RecordedArchive, time_column: str, parquet_path: Path) -> None:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT count(*), min({t}), max({t}), count(*) FILTER (WHERE {t} IS NULL) FROM {s}").format(
                t=sql.Identifier(time_column), s=sql.Identifier(stage)
            )
        )
        count, first, last, undated = cursor.fetchone() or (0, None, None, 0)
        if count != recorded.row_count:
            raise InvalidInput(f"{parquet_path} holds {count} rows, not the {recorded.row_count} recorded when it was archived")
        # with count > 0 and no undated row, min and max are set; the None checks only say so to the type checker
        in_range = first is not None and last is not None and recorded.range_start <= first and last < recorded.range_end
        if undated or (count and not in_range):
            raise InvalidInput(
                f"{parquet_path} holds rows outside its partition's recorded range "
                f"[{recorded.range_start.isoformat()}, {recorded.range_end.isoformat()})"
            )
        if recorded.license_rows is None:
            return  # archived before rows per license were recorded: the recorded checksum vouches for the file
        cursor.execute(sql.SQL("SELECT license_id, count(*) FROM {} GROUP BY license_id").format(sql.Identifier(stage)))
        found = {_license_key(license_id): rows for license_id, rows in cursor.fetchall()}
    expected = {str(key): int(value) for key, value in recorded.license_rows.items()}
    if found != expected:
        raise InvalidInput(f"{parquet_path} holds rows of other licenses than those recorded when it was archived")
