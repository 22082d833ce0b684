"""``fernando-telemetry jobs``: the scheduled jobs, their last runs, and one run of a job now (recorded like
the scheduler's runs)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table
from sqlalchemy import Engine

from fernando_telemetry.cli.common import DatabaseUrlOption, console, note
from fernando_telemetry.composition import jobs, runtime
from fernando_telemetry.composition.scheduler import run_and_record
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.services import job_runs, schema
from fernando_telemetry.settings import Settings, load_settings
from fernando_telemetry.storage.database import session_factory

__all__ = ["app"]

app = typer.Typer(help="Scheduled jobs. Example: fernando-telemetry jobs run retention", no_args_is_help=True)


@app.command("list")
def list_jobs(database_url: str | None = DatabaseUrlOption) -> None:
    """The jobs the server's scheduler runs, their interval, and the last run of each.

    Example: fernando-telemetry jobs list
    """
    settings = load_settings(database_url=database_url)
    scheduled = jobs.default_jobs(settings)
    with runtime.database_engine(settings, note=note) as engine:
        _require_schema(engine)
        with session_factory(engine)() as session:
            last = {run.job_name: run for run in job_runs.last_runs(session)}
    table = Table("job", "every", "last started", "outcome", "took", "runs", "failures", "summary or error")
    for job in scheduled:
        run = last.get(job.name)
        if run is None:
            table.add_row(job.name, f"{job.interval_s:g} s", "never", "-", "-", "0", "0", "")
            continue
        table.add_row(
            job.name,
            f"{job.interval_s:g} s",
            f"{run.last_started_at:%Y-%m-%d %H:%M:%S}" if run.last_started_at else "never",
            run.last_outcome or "running",
            f"{run.last_duration_ms:,.0f} ms" if run.last_duration_ms is not None else "-",
            str(run.runs),
            str(run.failures),
            run.last_error or run.last_summary or "",
        )
    console.print(table)


@app.command("run")
def run_job(
    name: str = typer.Argument(..., help="The job's name (see jobs list)."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Run one job now, as the scheduler would, and record the run (status and jobs list show it).

    Example: fernando-telemetry jobs run partition_upkeep
    """
    settings = load_settings(database_url=database_url)
    job = _job_named(settings, name)
    with runtime.database_engine(settings, note=note) as engine:
        _require_schema(engine)
        outcome = run_and_record(session_factory(engine), job, clock=lambda: datetime.now(UTC))
    console.print(outcome.summary)


def _job_named(settings: Settings, name: str) -> jobs.Job:
    scheduled = {job.name: job for job in jobs.default_jobs(settings)}
    if name in scheduled:
        return scheduled[name]
    raise InvalidInput(
        f"no job named {name!r} (turned off by its interval setting, or unknown); jobs: {', '.join(sorted(scheduled))}"
    )


def _require_schema(engine: Engine) -> None:
    state = schema.current(engine)
    if not state.up_to_date:
        raise InvalidInput(
            f"the database is at revision {state.current or 'base (empty)'}, not {state.head}: run 'fernando-telemetry db upgrade'"
        )
