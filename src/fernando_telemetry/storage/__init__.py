"""Persistence: models, connections, the embedded cluster, SQL that returns plain values. Imports only core."""

from fernando_telemetry.storage import database, embedded, partitions, retention

__all__ = ["database", "embedded", "partitions", "retention"]
