"""``fernando-telemetry retention``: drop expired telemetry now (archiving it first when asked), and per-license overrides."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from fernando_telemetry.cli.common import DatabaseUrlOption, console, err_console, note
from fernando_telemetry.composition import runtime
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.services import retention, rollups
from fernando_telemetry.services.retention import ArchivedPartition
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.database import session_factory

app = typer.Typer(help="Data retention. Example: fernando-telemetry retention run", no_args_is_help=True)


@app.command("run")
def run_retention(
    events_days: int | None = typer.Option(
        None, "--events-days", min=1, help="Keep this many days of events (default from settings: 90)."
    ),
    metrics_days: int | None = typer.Option(
        None, "--metrics-days", min=1, help="Keep this many days of system metrics (default 180)."
    ),
    traces_days: int | None = typer.Option(None, "--traces-days", min=1, help="Keep this many days of spans (default 30)."),
    archive_dir: Path | None = typer.Option(
        None,
        "--archive-dir",
        help="Write each partition to Parquet here before dropping it (default: FERNANDO_TELEMETRY_ARCHIVE_DIR; unset: no archive).",
    ),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Drop whole partitions older than each cutoff and delete older rows in the boundary partition; raw rows
    not rolled up yet are kept. Then delete rollup rows past their own, longer retention.

    Example: fernando-telemetry retention run --traces-days 14
    """
    settings = load_settings(
        database_url=database_url,
        events_retention_days=events_days,
        metrics_retention_days=metrics_days,
        traces_retention_days=traces_days,
        archive_dir=archive_dir,
    )
    archived_count = 0
    now = Caller.for_cli().now()
    with runtime.database_engine(settings, note=note) as engine:
        with (
            Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console) as progress_bar,
            session_factory(engine).begin() as session,  # committed before the bar goes
        ):
            doing = "archiving and dropping expired partitions" if settings.archive_dir else "dropping expired partitions"
            task = progress_bar.add_task(doing, total=None)

            def archived(one: ArchivedPartition) -> None:
                nonlocal archived_count
                archived_count += 1
                note(f"archived {one.partition_name}: {one.rows} rows -> {one.path}")
                progress_bar.update(task, description=f"{doing}: {archived_count} archived, the last {one.partition_name}")

            cleanups = retention.run(
                session,
                now=now,
                events_retention_days=settings.events_retention_days,
                metrics_retention_days=settings.metrics_retention_days,
                traces_retention_days=settings.traces_retention_days,
                archive_dir=settings.archive_dir,
                on_archived=archived,
            )
            progress_bar.update(task, description="deleting expired rollup rows")
            rollup_cleanups = rollups.expire(
                session,
                now=now,
                hourly_retention_days=settings.rollup_hourly_retention_days,
                daily_retention_days=settings.rollup_daily_retention_days,
            )
            progress_bar.update(task, description="committing")
    table = Table("table", "cutoff", "partitions dropped", "rows in them", "boundary rows deleted", "kept (not archived)")
    for cleanup in cleanups:
        table.add_row(
            cleanup.table_name,
            cleanup.cutoff.isoformat(timespec="seconds"),
            str(cleanup.partitions_dropped),
            str(cleanup.rows_dropped),
            str(cleanup.rows_deleted),
            str(cleanup.partitions_kept),
        )
    for rollup_cleanup in rollup_cleanups:
        cutoff = rollup_cleanup.cutoff.isoformat(timespec="seconds") if rollup_cleanup.cutoff else "-"
        table.add_row(rollup_cleanup.table_name, cutoff, "-", "-", str(rollup_cleanup.rows_deleted), "-")
    console.print(table)


overrides_app = typer.Typer(
    help="Per-license retention overrides. Example: fernando-telemetry retention overrides set --license-id 3 --kind traces --days 90",
    no_args_is_help=True,
)
app.add_typer(overrides_app, name="overrides")


@overrides_app.command("set")
def set_override(
    license_id: int = typer.Option(..., "--license-id", help="The license."),
    kind: str = typer.Option(..., "--kind", help="events, metrics or traces."),
    days: int = typer.Option(..., "--days", help="Keep this license's raw rows of that kind this many days."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Keep one license's raw rows of one kind longer or shorter than the global default.

    Example: fernando-telemetry retention overrides set --license-id 3 --kind traces --days 90
    """
    with runtime.database_engine(load_settings(database_url=database_url), note=note) as engine:
        retention.put_override(
            session_factory(engine), caller=Caller.for_cli(), license_id=license_id, data_kind=kind, retention_days=days
        )
    console.print(f"license {license_id}: {kind} kept {days} days")


@overrides_app.command("list")
def list_overrides(
    license_id: int | None = typer.Option(None, "--license-id", help="Only this license."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """List the overrides; licenses without one follow the global defaults.

    Example: fernando-telemetry retention overrides list
    """
    with runtime.database_engine(load_settings(database_url=database_url), note=note) as engine:
        found = retention.read_overrides(session_factory(engine), caller=Caller.for_cli(), license_id=license_id)
    table = Table("license", "kind", "days")
    for license_, kind, days in found:
        table.add_row(str(license_), kind, str(days))
    console.print(table)


@overrides_app.command("clear")
def clear_override(
    license_id: int = typer.Option(..., "--license-id", help="The license."),
    kind: str | None = typer.Option(None, "--kind", help="Only this kind (default: all of the license's overrides)."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Return a license to the global defaults.

    Example: fernando-telemetry retention overrides clear --license-id 3 --kind traces
    """
    with runtime.database_engine(load_settings(database_url=database_url), note=note) as engine:
        removed = retention.remove_override(
            session_factory(engine), caller=Caller.for_cli(), license_id=license_id, data_kind=kind
        )
    console.print(f"removed {removed} override(s) of license {license_id}")
