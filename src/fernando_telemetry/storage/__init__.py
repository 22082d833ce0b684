"""Persistence: models, connections, the embedded cluster, SQL that returns plain values. Imports only core."""

from fernando_telemetry.storage import (
    bulk,
    database,
    embedded,
    event_queries,
    kpi_queries,
    lookups,
    metric_queries,
    metric_rollups,
    models,
    partitions,
    retention,
    rollups,
    summary_queries,
    trace_queries,
    writer,
)

__all__ = [
    "bulk",
    "database",
    "embedded",
    "event_queries",
    "kpi_queries",
    "lookups",
    "metric_queries",
    "metric_rollups",
    "models",
    "partitions",
    "retention",
    "rollups",
    "summary_queries",
    "trace_queries",
    "writer",
]
