"""``fernando-telemetry archive``: list the Parquet archives of dropped partitions and restore one."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fernando_telemetry.cli.common import DatabaseUrlOption, console, note
from fernando_telemetry.composition import runtime
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.services import archives
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.archive import read_manifest
from fernando_telemetry.storage.database import session_factory

app = typer.Typer(help="Archives of expired partitions. Example: fernando-telemetry archive list", no_args_is_help=True)


@app.command("list")
def list_archives(
    table: str | None = typer.Option(None, "--table", help="Only this table (telemetry_events, system_metrics, traces)."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """List archived partitions: table, day, rows, size, file, and whether it was restored.

    Example: fernando-telemetry archive list --table traces
    """
    with runtime.database_engine(load_settings(database_url=database_url), note=note) as engine:
        with session_factory(engine)() as session:
            found = archives.list_archives(session, table=table)
    out = Table("table", "partition", "day", "rows", "bytes", "file", "restored")
    for entry in found:
        out.add_row(
            entry.table_name,
            entry.partition_name,
            f"{entry.range_start:%Y-%m-%d}",
            str(entry.row_count),
            str(entry.file_bytes),
            entry.path,
            f"{entry.restored_at:%Y-%m-%d %H:%M}" if entry.restored_at else "",
        )
    console.print(out)


@app.command("restore")
def restore(
    path: Path = typer.Argument(..., help="The archive: its .parquet file or its .manifest.json."),
    into: str | None = typer.Option(
        None, "--into", help="Load into this new plain table (created; an existing table is refused) instead of the original one."
    ),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Load an archive back, checked against what this database recorded when it was written (checksum, rows,
    time range, rows per license); rows already present are skipped, so it can be repeated. Each restore is audited.

    Into the original table, the recorded day's partition is made again; retention drops it at its next run unless
    retention is lengthened, so --into a table of its own is the way to keep restored rows around.

    Example: fernando-telemetry archive restore /var/lib/ft-archive/traces/traces_p20260101.parquet --into traces_jan1
    """
    manifest, _ = read_manifest(path)
    with runtime.database_engine(load_settings(database_url=database_url), note=note) as engine:
        with Progress(
            TextColumn("restoring {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(str(manifest["partition"]), total=int(manifest["rows"]))
            restored = archives.restore_archive(
                session_factory(engine),
                path,
                caller=Caller.for_cli(),
                into=into,
                operator=_operator(),
                on_rows=lambda rows: progress.advance(task, rows),
            )
    console.print(f"restored {restored.rows_inserted} of {restored.rows_in_file} rows into {restored.table_name}")


def _operator() -> str | None:
    """The operating-system account running the command, for the audit entry."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container without an /etc/passwd entry)
        return None
