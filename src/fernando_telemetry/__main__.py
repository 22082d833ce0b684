"""``python -m fernando_telemetry``: the same CLI as the ``fernando-telemetry`` command."""

from fernando_telemetry.cli.main import main

main()
