"""Use cases, called through their module: ``retention.run(session, now=..., ...)``.

Services take the session first and the rest keyword-only, receive ``now`` as an argument, and never
commit: the caller owns the transaction. Imports storage, notify and core.
"""

from fernando_telemetry.services import (
    alert_evaluation,
    alert_notifications,
    alerts,
    event_search,
    health,
    host_metrics,
    ingest,
    job_runs,
    keys,
    kpis,
    metric_series,
    notification_channels,
    partitions,
    platform,
    retention,
    rollups,
    schema,
    secret_box,
    silences,
    status,
    summaries,
    synthetic,
    tenancy,
    traces,
)

__all__ = [
    "alert_evaluation",
    "alert_notifications",
    "alerts",
    "event_search",
    "health",
    "host_metrics",
    "ingest",
    "job_runs",
    "keys",
    "kpis",
    "metric_series",
    "notification_channels",
    "partitions",
    "platform",
    "retention",
    "rollups",
    "schema",
    "secret_box",
    "silences",
    "status",
    "summaries",
    "synthetic",
    "tenancy",
    "traces",
]
