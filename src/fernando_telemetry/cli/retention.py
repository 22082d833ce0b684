"""``fernando-telemetry retention``: drop expired telemetry now."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table

from fernando_telemetry import runtime
from fernando_telemetry.cli.common import DatabaseUrlOption, console, note
from fernando_telemetry.services import retention, rollups
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.database import session_factory

app = typer.Typer(help="Data retention. Example: fernando-telemetry retention run", no_args_is_help=True)


@app.command("run")
def run_retention(
    events_days: int | None = typer.Option(None, "--events-days", min=1, help="Keep this many days of events (default from settings: 90)."),
    metrics_days: int | None = typer.Option(None, "--metrics-days", min=1, help="Keep this many days of system metrics (default 180)."),
    traces_days: int | None = typer.Option(None, "--traces-days", min=1, help="Keep this many days of spans (default 30)."),
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
    )
    with runtime.database_engine(settings, note=note) as engine:
        with session_factory(engine).begin() as session:
            cleanups = retention.run(
                session,
                now=datetime.now(UTC),
                events_retention_days=settings.events_retention_days,
                metrics_retention_days=settings.metrics_retention_days,
                traces_retention_days=settings.traces_retention_days,
            )
            rollup_cleanups = rollups.expire(
                session,
                now=datetime.now(UTC),
                hourly_retention_days=settings.rollup_hourly_retention_days,
                daily_retention_days=settings.rollup_daily_retention_days,
            )
    table = Table("table", "cutoff", "partitions dropped", "rows in them", "boundary rows deleted")
    for cleanup in cleanups:
        table.add_row(
            cleanup.table_name,
            cleanup.cutoff.isoformat(timespec="seconds"),
            str(cleanup.partitions_dropped),
            str(cleanup.rows_dropped),
            str(cleanup.rows_deleted),
        )
    for rollup_cleanup in rollup_cleanups:
        cutoff = rollup_cleanup.cutoff.isoformat(timespec="seconds") if rollup_cleanup.cutoff else "-"
        table.add_row(rollup_cleanup.table_name, cutoff, "-", "-", str(rollup_cleanup.rows_deleted))
    console.print(table)
