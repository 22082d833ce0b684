"""What the commands share: the consoles, the note printer and the ``--database-url`` option."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

__all__ = ["DatabaseUrlOption", "console", "err_console", "note"]

# Piped output (scripts, CI logs) is not wrapped at 80 columns, so names in tables stay whole.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)

DatabaseUrlOption = typer.Option(
    None, "--database-url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded PostgreSQL 18."
)


def note(message: str) -> None:
    """A progress note on stderr, so stdout stays the command's result."""
    err_console.print(f"[dim]{message}[/dim]")
