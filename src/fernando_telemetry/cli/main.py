"""The ``fernando-telemetry`` command: subcommands, and the one place expected errors become one line + exit 1."""

from __future__ import annotations

import logging
import sys

import typer
from sqlalchemy.exc import OperationalError

from fernando_telemetry import __version__
from fernando_telemetry.cli import alerts, db, jobs, keys, kpis, partitions, retention, rollups
from fernando_telemetry.cli.common import console, err_console, note
from fernando_telemetry.cli.demo import demo
from fernando_telemetry.cli.generate import generate
from fernando_telemetry.cli.status import status
from fernando_telemetry.core.errors import FernandoTelemetryError
from fernando_telemetry.settings import load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    help="Fernando Telemetry: events, metrics, KPIs, traces and alerts in one PostgreSQL database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(alerts.app, name="alerts")
app.add_typer(db.app, name="db")
app.add_typer(keys.licenses_app, name="licenses")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(kpis.app, name="kpis")
app.add_typer(partitions.app, name="partitions")
app.add_typer(retention.app, name="retention")
app.add_typer(rollups.app, name="rollups")
app.command("generate")(generate)
app.command("demo")(demo)
app.add_typer(jobs.app, name="jobs")
app.command("status")(status)


@app.command()
def serve(
    host: str | None = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port to bind (default 8000)."),
    database_url: str | None = typer.Option(None, "--database-url", envvar="DATABASE_URL", help="PostgreSQL URL; default: a private embedded PostgreSQL 18."),
) -> None:
    """Run the HTTP API with its scheduler; starts the embedded PostgreSQL unless DATABASE_URL is set.

    Example: fernando-telemetry serve --host 0.0.0.0 --port 8000
    """
    from fernando_telemetry.server import serve as run_server

    settings = load_settings(host=host, port=port, database_url=database_url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_server(settings, note=note)


@app.command()
def version() -> None:
    """Print the version.

    Example: fernando-telemetry version
    """
    console.print(__version__)


def main() -> None:
    try:
        app()
    except FernandoTelemetryError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", soft_wrap=True)
        sys.exit(1)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        err_console.print(f"[red]error:[/red] cannot reach the database: {reason}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
