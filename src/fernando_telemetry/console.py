"""The ``fernando-telemetry`` console script: the CLI, or a clear message when only the SDK is installed."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    try:
        from fernando_telemetry.cli.main import main as cli_main
    except ImportError as exc:
        missing = exc.name or str(exc)
        sys.stderr.write(
            f"error: the fernando-telemetry command needs the server extras ({missing} is not installed): "
            "pip install 'fernando-telemetry[server]'\n"
        )
        sys.exit(1)
    cli_main()
