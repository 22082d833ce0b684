"""``fernando-telemetry rollups``: refresh the hourly and daily rollups now (all that changed, or a range of
days recomputed from raw rows), and show how far they are."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fernando_telemetry.cli.common import DatabaseUrlOption, console, day_range, err_console, note
from fernando_telemetry.composition import runtime
from fernando_telemetry.services import rollups
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.database import session_factory

app = typer.Typer(
    help="Hourly and daily rollups behind the views. Example: fernando-telemetry rollups refresh", no_args_is_help=True
)


@app.command()
def refresh(
    first_day: str | None = typer.Option(None, "--from", help="First day (YYYY-MM-DD, UTC) to recompute from raw rows."),
    last_day: str | None = typer.Option(None, "--to", help="Last day (YYYY-MM-DD, UTC, included) to recompute."),
    safety_lag_s: float | None = typer.Option(
        None, "--safety-lag-s", min=0, help="Stop this many seconds behind now (default 120)."
    ),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Bring the rollups up to date: every hour that changed since the last refresh, and with --from/--to every
    hour of those days as well (after fixing raw rows by hand, say). One transaction per batch of hours, so an
    interrupted refresh keeps what it finished; it waits while the scheduler's refresh holds the lock.

    Example: fernando-telemetry rollups refresh --from 2026-11-01 --to 2026-11-30
    """
    start, end = day_range(first_day, last_day, without="what changed since the last refresh") or (None, None)
    settings = load_settings(database_url=database_url, rollup_safety_lag_s=safety_lag_s)
    now = datetime.now(UTC)
    hours = days = 0
    with runtime.database_engine(settings, note=note) as engine:
        sessions = session_factory(engine)
        if start is not None and end is not None:
            with sessions.begin() as session:
                rollups.rebuild(session, first_day=start, last_day=end)
        with Progress(
            TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console
        ) as progress_bar:
            task = progress_bar.add_task("rollups", total=None)
            while True:
                with sessions.begin() as session:
                    step = rollups.refresh_step(
                        session,
                        now=now,
                        safety_lag_s=settings.rollup_safety_lag_s,
                        max_hours=settings.rollup_batch_hours,
                        wait=True,
                    )
                hours, days = hours + step.hours_recomputed, days + step.days_recomputed
                progress_bar.update(task, completed=hours + days, total=hours + days + step.hours_remaining + step.days_remaining)
                if step.done:
                    break
    console.print(f"recomputed {hours} hourly and {days} daily buckets; watermark {step.watermark:%Y-%m-%d %H:%M:%S}Z")


@app.command()
def status(database_url: str | None = DatabaseUrlOption) -> None:
    """Per raw table: the watermark, the last refresh, the raw horizon and the buckets waiting; then the
    buckets whose recomputation failed, with the error.

    Example: fernando-telemetry rollups status
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine:
        with session_factory(engine)() as session:
            found = rollups.status(session)
            failed = rollups.failures(session)
    table = Table("table", "watermark", "refreshed", "raw horizon", "dirty hours", "dirty days", "oldest dirty")
    for each in found:
        table.add_row(
            each.table,
            _moment(each.watermark),
            _moment(each.refreshed_at),
            _moment(each.raw_horizon),
            str(each.dirty_hours),
            str(each.dirty_days),
            _moment(each.oldest_dirty) if each.oldest_dirty else "-",
        )
    console.print(table)
    if failed:
        failures = Table("table", "grain", "bucket", "failed at", "failures", "error", title="Failing buckets")
        for failure in failed:
            failures.add_row(
                failure.table,
                failure.grain,
                _moment(failure.bucket_start),
                _moment(failure.failed_at),
                str(failure.failures),
                failure.error,
            )
        console.print(failures)


def _moment(value: datetime | None) -> str:
    return "never" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
