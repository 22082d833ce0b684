"""What the commands share: the consoles, the note printer and the ``--database-url`` option."""

from __future__ import annotations

import sys
from datetime import date

import typer
from rich.console import Console

from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.core.kpi_periods import parse_day

__all__ = ["DatabaseUrlOption", "console", "day_range", "err_console", "note"]

# Piped output (scripts, CI logs) is not wrapped at 80 columns, so names in tables stay whole.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)

DatabaseUrlOption = typer.Option(
    None, "--database-url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded PostgreSQL 18."
)


def note(message: str) -> None:
    """A progress note on stderr, so stdout stays the command's result."""
    err_console.print(f"[dim]{message}[/dim]")


def day_range(first_day: str | None, last_day: str | None, *, without: str) -> tuple[date, date] | None:
    """The days of ``--from``/``--to`` (both or neither; ``without`` says what neither means), checked in order."""
    if (first_day is None) != (last_day is None):
        raise InvalidInput(f"give both --from and --to, or neither ({without})")
    if first_day is None or last_day is None:
        return None
    start, end = parse_day(first_day, "--from"), parse_day(last_day, "--to")
    if end < start:
        raise InvalidInput(f"--to {end} is before --from {start}")
    return start, end
