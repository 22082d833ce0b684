"""The schema as SQLAlchemy 2 typed models; Alembic revisions in ``storage/migrations`` build it.

Imports only core. The high-volume tables are range-partitioned by day (see ``storage.partitions``).
"""

from fernando_telemetry.storage.models.alerting import Alert, AlertRule
from fernando_telemetry.storage.models.base import Base, metadata
from fernando_telemetry.storage.models.business import BusinessMetric
from fernando_telemetry.storage.models.ingest import IngestBatch
from fernando_telemetry.storage.models.platform import ApiKey, License, User
from fernando_telemetry.storage.models.rollups import (
    EventRollupDaily,
    EventRollupHourly,
    MetricRollupDaily,
    MetricRollupHourly,
    RollupDirtyBucket,
    RollupState,
    SpanRollupDaily,
    SpanRollupHourly,
)
from fernando_telemetry.storage.models.telemetry import SystemMetric, TelemetryEvent, Trace

__all__ = [
    "Alert",
    "AlertRule",
    "ApiKey",
    "Base",
    "BusinessMetric",
    "EventRollupDaily",
    "EventRollupHourly",
    "IngestBatch",
    "License",
    "MetricRollupDaily",
    "MetricRollupHourly",
    "RollupDirtyBucket",
    "RollupState",
    "SpanRollupDaily",
    "SpanRollupHourly",
    "SystemMetric",
    "TelemetryEvent",
    "Trace",
    "User",
    "metadata",
]
