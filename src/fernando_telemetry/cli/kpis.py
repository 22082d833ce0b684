"""``fernando-telemetry kpis``: compute business KPIs now, or backfill a range of days, one period per transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fernando_telemetry.cli.common import DatabaseUrlOption, console, day_range, err_console, note
from fernando_telemetry.composition import runtime
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.kpi_periods import KPI_PERIOD_TYPES, kpi_period_type
from fernando_telemetry.services import kpis
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.database import session_factory

app = typer.Typer(
    help="Business KPIs from the events. Example: fernando-telemetry kpis compute --period daily --from 2026-11-01 --to 2026-11-30",
    no_args_is_help=True,
)


@app.command()
def compute(
    period: str | None = typer.Option(None, "--period", help="daily, weekly or monthly (default: all three)."),
    first_day: str | None = typer.Option(None, "--from", help="First day (YYYY-MM-DD, UTC) of a backfill."),
    last_day: str | None = typer.Option(None, "--to", help="Last day (YYYY-MM-DD, UTC, included) of a backfill."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Recompute KPIs: every period touching --from..--to, or without them the previous and current period (what the job does).

    Each period is one transaction, so an interrupted backfill keeps the periods it finished; a rerun replaces values.

    Example: fernando-telemetry kpis compute --period daily --from 2026-11-01 --to 2026-11-30
    """
    period_types = [kpi_period_type(period)] if period is not None else list(KPI_PERIOD_TYPES)
    start, end = day_range(first_day, last_day, without="the previous and current period") or (None, None)
    settings = load_settings(database_url=database_url)
    # one clock for the whole backfill: every period's values carry the same computed_at, as before
    now = datetime.now(UTC)
    caller = Caller.for_cli(clock=lambda: now)
    if start is not None and end is not None:
        periods = kpis.backfill_periods(
            period_types=period_types,
            first_day=start,
            last_day=end,
            now=now,
            events_retention_days=settings.events_retention_days,
        )
    else:
        periods = kpis.recent_periods_due(
            now=now, events_retention_days=settings.events_retention_days, period_types=period_types
        )
    oldest_day = kpis.oldest_computable_day(now=now, events_retention_days=settings.events_retention_days)
    rows = 0
    with runtime.database_engine(settings, note=note) as engine:
        sessions = session_factory(engine)
        with Progress(
            TextColumn("{task.description:>18}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err_console
        ) as progress_bar:
            task = progress_bar.add_task("kpis", total=len(periods))
            for each in periods:
                progress_bar.update(task, description=f"{each.period_type} {each.label}")
                rows += kpis.recompute_period(sessions, caller=caller, period=each, oldest_day=oldest_day)
                progress_bar.advance(task)
    span = f"{periods[0].label}..{periods[-1].label}" if periods else "nothing to do"
    console.print(f"computed {len(periods)} period{'s' if len(periods) != 1 else ''} ({span}): {rows} KPI values written")
