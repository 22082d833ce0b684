"""``fernando-telemetry db``: schema migrations (upgrade, downgrade, current)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from fernando_telemetry.cli.common import DatabaseUrlOption, console, note
from fernando_telemetry.composition import runtime
from fernando_telemetry.services import partitions, schema
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.database import session_factory

app = typer.Typer(help="Schema migrations. Example: fernando-telemetry db upgrade", no_args_is_help=True)


@app.command()
def upgrade(
    revision: str = typer.Argument("head", help="Target revision."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Apply migrations up to REVISION, then make sure today's partitions exist.

    Example: fernando-telemetry db upgrade
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine:
        schema.upgrade(engine, revision=revision)
        state = schema.current(engine)
        if state.up_to_date:
            with session_factory(engine).begin() as session:
                result = partitions.upkeep(
                    session,
                    now=datetime.now(UTC),
                    days_back=settings.partitions_days_back,
                    days_ahead=settings.partitions_days_ahead,
                )
            note(f"partitions {result.first_day}..{result.last_day} ready ({result.total_created} created)")
        console.print(f"schema at revision {state.current}")


@app.command()
def downgrade(
    revision: str = typer.Argument(..., help="Target revision, or 'base' to remove the whole schema."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Revert migrations down to REVISION.

    Example: fernando-telemetry db downgrade base
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine:
        schema.downgrade(engine, revision=revision)
        console.print(f"schema at revision {schema.current(engine).current or 'base (empty)'}")


@app.command()
def current(database_url: str | None = DatabaseUrlOption) -> None:
    """Print the database's revision and the code's head revision.

    Example: fernando-telemetry db current
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine:
        state = schema.current(engine)
    marker = "up to date" if state.up_to_date else f"behind head {state.head}: run 'fernando-telemetry db upgrade'"
    console.print(f"{state.current or 'base (empty)'} ({marker})")
