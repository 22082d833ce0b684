"""Console output shared by the commands: one consoles for results, one for notes and errors."""

from __future__ import annotations

from rich.console import Console

__all__ = ["console", "err_console", "note"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def note(message: str) -> None:
    err_console.print(f"[dim]{message}[/dim]")
