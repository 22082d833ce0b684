"""The schema as SQLAlchemy 2 typed models; Alembic revisions in ``storage/migrations`` build it.

Imports only core. The high-volume tables are range-partitioned by day (see ``storage.partitions``).
"""

from fernando_telemetry.core.enums import Severity, SeverityLevel
from fernando_telemetry.storage.models.alerting import (
    Alert,
    AlertDelivery,
    AlertEvent,
    AlertNotification,
    AlertRule,
    AlertRuleState,
    NotificationChannel,
    Silence,
)
from fernando_telemetry.storage.models.audit import AuditEntry
from fernando_telemetry.storage.models.base import Base, metadata
from fernando_telemetry.storage.models.business import BusinessMetric
from fernando_telemetry.storage.models.ingest import IngestBatch, MetricStream
from fernando_telemetry.storage.models.jobs import JobRun
from fernando_telemetry.storage.models.lifecycle import PartitionArchive, RetentionOverride, RetentionSetting
from fernando_telemetry.storage.models.platform import ApiKey, License, User
from fernando_telemetry.storage.models.query import QueryScope
from fernando_telemetry.storage.models.resources import TelemetryResource
from fernando_telemetry.storage.models.rollups import (
    EventRollupDaily,
    EventRollupHourly,
    MetricRollupDaily,
    MetricRollupHourly,
    RollupDirtyBucket,
    RollupFailure,
    RollupState,
    SpanRollupDaily,
    SpanRollupHourly,
)
from fernando_telemetry.storage.models.telemetry import SystemMetric, TelemetryEvent, Trace

__all__ = [
    "Alert",
    "AlertDelivery",
    "AlertEvent",
    "AlertNotification",
    "AlertRule",
    "AlertRuleState",
    "ApiKey",
    "AuditEntry",
    "Base",
    "BusinessMetric",
    "EventRollupDaily",
    "EventRollupHourly",
    "IngestBatch",
    "JobRun",
    "License",
    "MetricRollupDaily",
    "MetricRollupHourly",
    "MetricStream",
    "NotificationChannel",
    "PartitionArchive",
    "QueryScope",
    "RetentionOverride",
    "RetentionSetting",
    "RollupDirtyBucket",
    "RollupFailure",
    "RollupState",
    "Silence",
    "Severity",
    "SeverityLevel",
    "SpanRollupDaily",
    "SpanRollupHourly",
    "SystemMetric",
    "TelemetryResource",
    "TelemetryEvent",
    "Trace",
    "User",
    "metadata",
]
