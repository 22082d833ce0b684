"""``python -m fernando_telemetry``: the same CLI as the ``fernando-telemetry`` command."""

from fernando_telemetry.console import main

main()
