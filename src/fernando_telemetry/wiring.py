"""Public home of ``build`` for host apps that run the writer in-process: ``from fernando_telemetry.wiring import build``.

The code lives in ``composition.wiring``; this module only re-exports it, so host apps keep their import.
"""

from __future__ import annotations

from fernando_telemetry.composition.wiring import Wiring, build, dump_json

__all__ = ["Wiring", "build", "dump_json"]
