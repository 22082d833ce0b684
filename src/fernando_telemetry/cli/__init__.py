"""The ``fernando-telemetry`` command and its subcommands (entry points: they build settings and commit)."""

from fernando_telemetry.cli.main import app, main

__all__ = ["app", "main"]
