"""Console output shared by the commands: one console for results, one for notes and errors."""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ["console", "err_console", "note"]

# Piped output (scripts, CI logs) is not wrapped at 80 columns, so names in tables stay whole.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)


def note(message: str) -> None:
    err_console.print(f"[dim]{message}[/dim]")
