"""The closed vocabularies of the schema, as ``StrEnum``s shared by storage, services and the API."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AlertStatus",
    "EventSource",
    "EventType",
    "MetricCategory",
    "MetricType",
    "PeriodType",
    "Severity",
    "SeverityLevel",
    "SpanKind",
    "SpanStatus",
]


class EventType(StrEnum):
    USER_ACTION = "user_action"
    SYSTEM_EVENT = "system_event"
    API_EVENT = "api_event"
    ERROR_EVENT = "error_event"
    PERFORMANCE_EVENT = "performance_event"
    SECURITY_EVENT = "security_event"
    BUSINESS_EVENT = "business_event"


class EventSource(StrEnum):
    WEB = "web"
    API = "api"
    MOBILE = "mobile"
    DESKTOP = "desktop"
    BATCH_JOB = "batch_job"
    SCHEDULER = "scheduler"
    WEBHOOK = "webhook"
    SDK = "sdk"
    OTLP = "otlp"
    SYSTEM = "system"


class MetricType(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    TIMER = "timer"
    DISTRIBUTION = "distribution"


class MetricCategory(StrEnum):
    REVENUE = "revenue"
    USER_ENGAGEMENT = "user_engagement"
    RETENTION = "retention"
    ACQUISITION = "acquisition"
    CONVERSION = "conversion"
    USAGE = "usage"
    PERFORMANCE = "performance"
    COST = "cost"
    OTHER = "other"


class PeriodType(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


SeverityLevel = Severity
"""The seed's name for ``Severity`` (``SeverityLevel.WARNING is Severity.WARNING``)."""


class AlertStatus(StrEnum):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    SUPPRESSED = "suppressed"


class SpanKind(StrEnum):
    UNSPECIFIED = "unspecified"
    INTERNAL = "internal"
    SERVER = "server"
    CLIENT = "client"
    PRODUCER = "producer"
    CONSUMER = "consumer"


class SpanStatus(StrEnum):
    UNSET = "unset"
    OK = "ok"
    ERROR = "error"
