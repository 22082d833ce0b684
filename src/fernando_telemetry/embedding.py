"""Public home of the in-process exporter for host apps: ``from fernando_telemetry.embedding import in_process_client``.

The code lives in ``composition.embedding``; this module only re-exports it, so host apps keep their import.
"""

from __future__ import annotations

from fernando_telemetry.composition.embedding import DatabaseExporter, in_process_client

__all__ = ["DatabaseExporter", "in_process_client"]
