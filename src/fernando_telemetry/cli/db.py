"""``fernando-telemetry db``: schema migrations (upgrade, downgrade, current)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from fernando_telemetry import runtime
from fernando_telemetry.cli.output import console, note
from fernando_telemetry.services import partitions, schema
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.database import make_engine, session_factory

app = typer.Typer(help="Schema migrations. Example: fernando-telemetry db upgrade", no_args_is_help=True)

DatabaseUrlOption = typer.Option(None, "--database-url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded cluster.")


@app.command()
def upgrade(
    revision: str = typer.Argument("head", help="Target revision."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Apply migrations up to REVISION, then make sure today's partitions exist.

    Example: fernando-telemetry db upgrade
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_url(settings, note=note) as url:
        engine = make_engine(url, pool_size=1)
        try:
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
        finally:
            engine.dispose()


@app.command()
def downgrade(
    revision: str = typer.Argument(..., help="Target revision, or 'base' to remove the whole schema."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Revert migrations down to REVISION.

    Example: fernando-telemetry db downgrade base
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_url(settings, note=note) as url:
        engine = make_engine(url, pool_size=1)
        try:
            schema.downgrade(engine, revision=revision)
            console.print(f"schema at revision {schema.current(engine).current or 'base (empty)'}")
        finally:
            engine.dispose()


@app.command()
def current(database_url: str | None = DatabaseUrlOption) -> None:
    """Print the database's revision and the code's head revision.

    Example: fernando-telemetry db current
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_url(settings, note=note) as url:
        engine = make_engine(url, pool_size=1)
        try:
            state = schema.current(engine)
        finally:
            engine.dispose()
    marker = "up to date" if state.up_to_date else f"behind head {state.head}: run 'fernando-telemetry db upgrade'"
    console.print(f"{state.current or 'base (empty)'} ({marker})")
