"""``fernando-telemetry generate``: realistic synthetic telemetry, loaded by COPY with a progress bar."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fernando_telemetry.cli.common import DatabaseUrlOption, console, err_console, note
from fernando_telemetry.composition import runtime
from fernando_telemetry.composition.wiring import dump_json
from fernando_telemetry.services import synthetic
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.database import session_factory


def generate(
    events: int = typer.Option(100_000, "--events", min=0, help="Events to load."),
    spans: int = typer.Option(100_000, "--spans", min=0, help="Spans to load (whole traces of about 4 spans)."),
    metrics: int = typer.Option(100_000, "--metrics", min=0, help="Metric samples to load."),
    days: int = typer.Option(7, "--days", min=1, max=365, help="Spread over this many days up to now."),
    users: int = typer.Option(2_000, "--users", min=1, help="Platform users (created when missing)."),
    license_id: int | None = typer.Option(
        None, "--license-id", help="Put every user in this license (default: 5 demo licenses)."
    ),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same data."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Load realistic, internally consistent telemetry: users with sessions, traces across services, metrics.

    Example: fernando-telemetry generate --events 1000000 --spans 500000 --metrics 500000 --days 30
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine:
        with Progress(
            TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err_console
        ) as progress_bar:
            tasks = {
                "events": progress_bar.add_task("events", total=events),
                "spans": progress_bar.add_task("spans", total=spans),
                "metrics": progress_bar.add_task("metrics", total=metrics),
            }
            with session_factory(engine).begin() as session:
                result = synthetic.generate(
                    session,
                    now=datetime.now(UTC),
                    days=days,
                    events_count=events,
                    spans_count=spans,
                    metrics_count=metrics,
                    users=users,
                    license_id=license_id,
                    seed=seed,
                    dump_json=dump_json,
                    progress=lambda kind, rows: progress_bar.advance(tasks[kind], rows),
                )
    console.print(
        f"loaded {result.events:,} events, {result.spans:,} spans and {result.metrics:,} metric samples "
        f"for {result.users:,} users, {result.first_day} to {result.last_day}"
    )
