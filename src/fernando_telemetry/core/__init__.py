"""Pure domain code: enums, value types, errors, time arithmetic. Imports no framework."""

from fernando_telemetry.core import (
    containment,
    cursor,
    enums,
    errors,
    ids,
    ingest,
    keys,
    kpi_periods,
    otlp,
    partitioning,
    ratelimit,
    series,
    sketch,
    synthetic,
    time_range,
    trace_tree,
)

__all__ = [
    "containment",
    "cursor",
    "enums",
    "errors",
    "ids",
    "ingest",
    "keys",
    "kpi_periods",
    "otlp",
    "partitioning",
    "ratelimit",
    "series",
    "sketch",
    "synthetic",
    "time_range",
    "trace_tree",
]
