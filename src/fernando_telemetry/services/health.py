"""Readiness: does the database answer right now."""

from __future__ import annotations

from sqlalchemy import Engine

from fernando_telemetry.storage.database import ping

__all__ = ["check_database"]


def check_database(engine: Engine, *, timeout_ms: int = 2000) -> None:
    """Raise ``DatabaseUnavailable`` unless the database answers within ``timeout_ms``."""
    ping(engine, timeout_ms=timeout_ms)
