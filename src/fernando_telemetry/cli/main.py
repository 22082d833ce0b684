"""The ``fernando-telemetry`` command: subcommands, and the one place expected errors become one line + exit 1."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click
import typer
from alembic.util import CommandError as AlembicCommandError
from rich.markup import escape
from sqlalchemy.exc import DBAPIError, OperationalError

from fernando_telemetry import __version__
from fernando_telemetry.cli import alerts, archive, channels, db, jobs, keys, kpis, partitions, retention, rollups, rules
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
app.add_typer(archive.app, name="archive")
app.add_typer(channels.app, name="channels")
app.add_typer(db.app, name="db")
app.add_typer(keys.licenses_app, name="licenses")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(kpis.app, name="kpis")
app.add_typer(partitions.app, name="partitions")
app.add_typer(retention.app, name="retention")
app.add_typer(rollups.app, name="rollups")
app.add_typer(rules.app, name="rules")
app.command("generate")(generate)
app.command("demo")(demo)
app.add_typer(jobs.app, name="jobs")
app.command("status")(status)


@app.command()
def serve(
    host: str | None = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port to bind (default 8000)."),
    database_url: str | None = typer.Option(
        None, "--database-url", envvar="DATABASE_URL", help="PostgreSQL URL; default: a private embedded PostgreSQL 18."
    ),
    otlp_grpc_port: int | None = typer.Option(
        None,
        "--otlp-grpc-port",
        min=0,
        max=65535,
        help="Port of the OTLP/gRPC receiver on the same host (default 4317; 0 turns it off).",
    ),  # fmt: skip
) -> None:
    """Run the HTTP API with its scheduler, and OTLP/gRPC on port 4317; starts the embedded PostgreSQL unless DATABASE_URL is set.

    Example: fernando-telemetry serve --host 0.0.0.0 --port 8000 --otlp-grpc-port 4317
    """
    from fernando_telemetry.composition.server import serve as run_server

    settings = load_settings(host=host, port=port, database_url=database_url, otlp_grpc_port=otlp_grpc_port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_server(settings, note=note)


@app.command()
def version() -> None:
    """Print the version.

    Example: fernando-telemetry version
    """
    console.print(__version__)


def main() -> None:
    """Run the command; an expected failure is one line on stderr and a non-zero exit code, never a traceback."""
    try:
        exit_code = app(prog_name="fernando-telemetry", standalone_mode=False)  # also under python -m
    except _USAGE_ERRORS as exc:  # an unknown option or command, a missing argument, a value out of its range
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group without its subcommand: its help is printed already
            sys.exit(2)
        context = getattr(exc, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        _fail(exc.format_message() + hint, exit_code=getattr(exc, "exit_code", 2))
    except _ABORTS:
        _fail("aborted", exit_code=1)
    except FernandoTelemetryError as exc:
        _fail(exc.message)
    except OperationalError as exc:
        _fail(f"cannot reach the database: {_first_line(exc.orig or exc)}")
    except DBAPIError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _SCHEMA_MISSING:
            _fail(f"the database lacks part of the schema ({_first_line(exc.orig)}): run 'fernando-telemetry db upgrade'")
        if sqlstate == "42501":
            _fail(f"the database refused: {_first_line(exc.orig)}")
        raise
    except AlembicCommandError as exc:  # an unknown revision for db upgrade/downgrade
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    if isinstance(exit_code, int) and exit_code != 0:
        sys.exit(exit_code)


# older typer releases raise click's exceptions, newer ones those of the click they vendor: catch both
# (both kinds have format_message; the annotation is a string, so an older typer without the class imports fine)
_USAGE_ERRORS: tuple[type[click.ClickException | typer.exceptions.TyperException], ...] = tuple(
    {click.ClickException, getattr(typer, "TyperException", click.ClickException)}
)
_ABORTS: tuple[type[BaseException], ...] = tuple({click.exceptions.Abort, typer.Abort})

_SCHEMA_MISSING = {"42P01", "42883", "42703", "42704"}
"""SQLSTATEs of an undefined table, function, column or object: a database not migrated to this code's head."""


def _first_line(exc: object) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _fail(message: str, *, exit_code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {escape(' '.join(message.split()))}", soft_wrap=True)
    sys.exit(exit_code)
