"""``fernando-telemetry partitions``: daily partition upkeep and listing."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table

from fernando_telemetry import runtime
from fernando_telemetry.cli.common import DatabaseUrlOption, console, day_range, note
from fernando_telemetry.core.partitioning import PARTITIONED_TABLES
from fernando_telemetry.services import partitions
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage import partitions as partition_store
from fernando_telemetry.storage.database import session_factory

app = typer.Typer(help="Daily partitions. Example: fernando-telemetry partitions upkeep", no_args_is_help=True)



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
    with runtime.database_engine(settings, note=note) as engine:
        with session_factory(engine).begin() as session:
            if start is not None and end is not None:
                result = partitions.ensure_for_days(session, first_day=start, last_day=end)
            else:
                result = partitions.upkeep(
                    session,
                    now=datetime.now(UTC),
                    days_back=settings.partitions_days_back,
                    days_ahead=settings.partitions_days_ahead,
                )
    for table, created in result.created.items():
        console.print(f"{table}: {created} partitions created for {result.first_day}..{result.last_day}")


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
