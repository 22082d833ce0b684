"""``fernando-telemetry partitions``: daily partition upkeep and listing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from fernando_telemetry.cli.common import DatabaseUrlOption, console, day_range, err_console, note
from fernando_telemetry.composition import runtime
from fernando_telemetry.core.partitioning import PARTITIONED_TABLES, days_to_cover
from fernando_telemetry.services import partitions
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage import partitions as partition_store
from fernando_telemetry.storage.database import session_factory

app = typer.Typer(help="Daily partitions. Example: fernando-telemetry partitions upkeep", no_args_is_help=True)

UPKEEP_CHUNK_DAYS = 31
"""Days made per statement; a longer range shows a progress bar, one step per chunk."""


@app.command()
def upkeep(
    first_day: str | None = typer.Option(None, "--from", help="First day (YYYY-MM-DD) to create on demand."),
    last_day: str | None = typer.Option(None, "--to", help="Last day (YYYY-MM-DD) to create on demand."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Create missing daily partitions: around today by default, or for --from..--to.

    Example: fernando-telemetry partitions upkeep --from 2026-01-01 --to 2026-01-31
    """
    settings = load_settings(database_url=database_url)
    start, end = day_range(first_day, last_day, without="the days around today") or (None, None)
    if start is None or end is None:
        start, end = days_to_cover(
            now=datetime.now(UTC), days_back=settings.partitions_days_back, days_ahead=settings.partitions_days_ahead
        )
    created = dict.fromkeys(PARTITIONED_TABLES, 0)
    chunks = [(day, min(day + timedelta(days=UPKEEP_CHUNK_DAYS - 1), end)) for day in _every(start, end, UPKEEP_CHUNK_DAYS)]
    with runtime.database_engine(settings, note=note) as engine:
        with session_factory(engine).begin() as session:
            with Progress(
                TextColumn("{task.description:>16}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                console=err_console, disable=len(chunks) == 1,  # a bar only when there are many days to make
            ) as progress_bar:  # fmt: skip
                task = progress_bar.add_task("partition days", total=(end - start).days + 1)
                for chunk_start, chunk_end in chunks:
                    result = partitions.ensure_for_days(session, first_day=chunk_start, last_day=chunk_end)
                    for table, count in result.created.items():
                        created[table] += count
                    progress_bar.advance(task, (chunk_end - chunk_start).days + 1)
    for table, count in created.items():
        console.print(f"{table}: {count} partitions created for {start}..{end}")


def _every(start: date, end: date, step_days: int) -> list[date]:
    return [start + timedelta(days=offset) for offset in range(0, (end - start).days + 1, step_days)]


@app.command("list")
def list_partitions(database_url: str | None = DatabaseUrlOption) -> None:
    """List the daily partitions of every partitioned table.

    Example: fernando-telemetry partitions list
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine:
        with session_factory(engine)() as session:
            found = {table: partition_store.list_partitions(session, table=table) for table in PARTITIONED_TABLES}
    table_view = Table("table", "partitions", "first", "last")
    for table, parts in found.items():
        table_view.add_row(table, str(len(parts)), parts[0].name if parts else "-", parts[-1].name if parts else "-")
    console.print(table_view)
