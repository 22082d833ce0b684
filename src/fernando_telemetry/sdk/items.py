"""Recording arguments to wire items: the checked, JSON-ready dicts of the ingest API. Standard library only.

Every function here raises ``InvalidItem`` for an argument the server would refuse for sure; the client turns
that into a dropped, counted item, so callers never see it. Checks are cheap type and vocabulary checks; the
server stays the judge of the rest (lengths, time windows) and answers those per item.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, overload

from fernando_telemetry.sdk.ids import since_epoch, uuid7
from fernando_telemetry.sdk.tracecontext import is_span_id, is_trace_id

__all__ = [
    "BUSINESS_METRIC_FIELDS",
    "EVENT_FIELDS",
    "EVENT_SOURCES",
    "EVENT_TYPES",
    "METRIC_CATEGORIES",
    "METRIC_FIELDS",
    "METRIC_TYPES",
    "PERIOD_TYPES",
    "SPAN_FIELDS",
    "SPAN_KINDS",
    "SPAN_STATUSES",
    "InvalidItem",
    "business_metric_item",
    "event_item",
    "iso_timestamp",
    "iso_timestamp_after",
    "metric_item",
    "span_item",
]

EVENT_TYPES = frozenset(
    {"user_action", "system_event", "api_event", "error_event", "performance_event", "security_event", "business_event"}
)
EVENT_SOURCES = frozenset({"web", "api", "mobile", "desktop", "batch_job", "scheduler", "webhook", "sdk", "otlp", "system"})
METRIC_TYPES = frozenset({"counter", "gauge", "histogram", "timer", "distribution"})
METRIC_CATEGORIES = frozenset(
    {"revenue", "user_engagement", "retention", "acquisition", "conversion", "usage", "performance", "cost", "other"}
)
PERIOD_TYPES = frozenset({"hourly", "daily", "weekly", "monthly"})
SPAN_KINDS = frozenset({"internal", "server", "client", "producer", "consumer"})
SPAN_STATUSES = frozenset({"unset", "ok", "error"})

EVENT_FIELDS = frozenset(
    {
        "event_id", "event_type", "event_name", "category", "source", "user_id", "license_id", "session_id", "payload",
        "duration_ms", "ip_address", "user_agent", "trace_id", "span_id", "environment", "app_version", "event_timestamp",
    }
)  # fmt: skip
METRIC_FIELDS = frozenset(
    {
        "metric_name", "metric_type", "value", "unit", "service_name", "host_name", "instance_id", "labels",
        "sample_count", "p50", "p90", "p95", "p99", "user_id", "license_id", "timestamp", "start_time", "temporality",
        "buckets", "samples", "min_value", "max_value",
    }
)  # fmt: skip
TEMPORALITIES = frozenset({"cumulative", "delta"})
BUSINESS_METRIC_FIELDS = frozenset(
    {
        "metric_name", "metric_category", "metric_value", "currency", "period_start", "period_end", "period_type",
        "license_id", "dimensions", "target_value", "previous_value",
    }
)  # fmt: skip
SPAN_FIELDS = frozenset(
    {
        "trace_id", "span_id", "parent_span_id", "operation_name", "service_name", "span_kind", "start_time", "end_time",
        "duration_ms", "status", "status_message", "status_code", "http_method", "http_route", "error_type",
        "error_message", "host_name", "user_id", "license_id", "attributes", "span_events", "resource", "environment",
    }
)  # fmt: skip

_MAX_EVENT_NAME_CHARS = 200


class InvalidItem(ValueError):
    """An argument that makes the item unsendable; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


def iso_timestamp(moment: datetime) -> str:
    """``moment`` as ISO 8601 UTC with a ``Z`` and microseconds (a naive datetime is taken as UTC)."""
    delta = since_epoch(moment)
    return _utc_text(delta.days * 86_400 + delta.seconds, delta.microseconds)


def iso_timestamp_after(moment: datetime, duration_ms: float) -> str:
    """``iso_timestamp`` of ``duration_ms`` after ``moment``, the duration rounded to the microsecond.

    Integer microseconds instead of ``moment + timedelta(...)``: no datetime to build, and no float to split.
    """
    delta = since_epoch(moment)
    total_us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds + round(duration_ms * 1000.0)
    return _utc_text(*divmod(total_us, 1_000_000))


def _utc_text(second: int, microsecond: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` of a Unix second and microsecond. The text of the second is kept: the items
    of a burst share it, and formatting a datetime costs more than the rest of this put together."""
    global _second_text
    cached = _second_text  # one read of the tuple: another thread may replace it meanwhile
    if cached[0] != second:
        cached = _second_text = (second, (_EPOCH_NAIVE + timedelta(seconds=second)).isoformat())
    return f"{cached[1]}.{microsecond:06d}Z"


_EPOCH_NAIVE = datetime(1970, 1, 1)
_second_text: tuple[int | None, str] = (None, "")


def event_item(
    event_name: Any,
    *,
    now: datetime | None,
    event_type: Any = "user_action",
    user_id: Any = None,
    session_id: Any = None,
    payload: Any = None,
    duration_ms: Any = None,
    category: Any = None,
    source: Any = "sdk",
    license_id: Any = None,
    trace_id: Any = None,
    span_id: Any = None,
    ip_address: Any = None,
    user_agent: Any = None,
    app_version: Any = None,
    environment: Any = None,
    event_id: Any = None,
    timestamp: Any = None,
) -> dict[str, Any]:
    """One ``POST /api/v1/events`` item. ``now`` stamps it when no ``timestamp`` is given."""
    # Absent fields are the common case: each check runs only for a value that is there.
    name = _text(event_name, "event_name", required=True)
    if len(name) > _MAX_EVENT_NAME_CHARS:
        raise InvalidItem("event_name", f"at most {_MAX_EVENT_NAME_CHARS} characters")
    at = _datetime(now if timestamp is None else timestamp, "timestamp")
    item: dict[str, Any] = {
        "event_id": uuid7(at) if event_id is None else _uuid_text(event_id, "event_id"),
        "event_type": _choice(event_type, "event_type", EVENT_TYPES),
        "event_name": name,
        "source": _choice(source, "source", EVENT_SOURCES),
        "event_timestamp": iso_timestamp(at),
    }
    if category is not None:
        item["category"] = _text(category, "category")
    if user_id is not None:
        item["user_id"] = _user(user_id, "user_id")
    if license_id is not None:
        item["license_id"] = _positive_int(license_id, "license_id")
    if session_id is not None:
        item["session_id"] = _text(session_id, "session_id")
    if payload is not None:
        item["payload"] = _object(payload, "payload")
    if duration_ms is not None:
        item["duration_ms"] = _number(duration_ms, "duration_ms", minimum=0)
    if ip_address is not None:
        item["ip_address"] = _text(ip_address, "ip_address")
    if user_agent is not None:
        item["user_agent"] = _text(user_agent, "user_agent")
    if trace_id is not None:
        item["trace_id"] = _hex(trace_id, "trace_id", is_trace_id)
    if span_id is not None:
        item["span_id"] = _hex(span_id, "span_id", is_span_id)
    if environment is not None:
        item["environment"] = _text(environment, "environment")
    if app_version is not None:
        item["app_version"] = _text(app_version, "app_version")
    return item


def metric_item(
    metric_name: Any,
    value: Any,
    *,
    now: datetime | None,
    metric_type: Any = "gauge",
    unit: Any = None,
    labels: Any = None,
    service_name: Any = None,
    host_name: Any = None,
    instance_id: Any = None,
    sample_count: Any = None,
    p50: Any = None,
    p90: Any = None,
    p95: Any = None,
    p99: Any = None,
    user_id: Any = None,
    timestamp: Any = None,
    temporality: Any = None,
    start_time: Any = None,
    buckets: Any = None,
    samples: Any = None,
) -> dict[str, Any]:
    """One ``POST /api/v1/system-metrics`` item. ``value`` may be None for a histogram given by buckets or samples."""
    item: dict[str, Any] = {
        "metric_name": _text(metric_name, "metric_name", required=True),
        "metric_type": _choice(metric_type, "metric_type", METRIC_TYPES),
        "timestamp": iso_timestamp(_datetime(now if timestamp is None else timestamp, "timestamp")),
    }
    _put(item, "value", _number(value, "value", required=buckets is None and samples is None))
    if temporality is not None:
        item["temporality"] = _choice(temporality, "temporality", TEMPORALITIES)
    if start_time is not None:
        item["start_time"] = iso_timestamp(_datetime(start_time, "start_time"))
    _put(item, "buckets", _buckets(buckets))
    _put(item, "samples", _samples(samples))
    _put(item, "unit", _text(unit, "unit"))
    _put(item, "labels", _object(labels, "labels"))
    _put(item, "service_name", _text(service_name, "service_name"))
    _put(item, "host_name", _text(host_name, "host_name"))
    _put(item, "instance_id", _text(instance_id, "instance_id"))
    _put(item, "sample_count", _positive_int(sample_count, "sample_count"))
    for field, quantile in (("p50", p50), ("p90", p90), ("p95", p95), ("p99", p99)):
        _put(item, field, _number(quantile, field))
    _put(item, "user_id", _user(user_id, "user_id"))
    return item


def business_metric_item(
    metric_name: Any,
    metric_value: Any,
    *,
    metric_category: Any,
    period_type: Any,
    period_start: Any,
    period_end: Any = None,
    currency: Any = None,
    dimensions: Any = None,
    target_value: Any = None,
    previous_value: Any = None,
) -> dict[str, Any]:
    """One ``POST /api/v1/business-metrics`` item. Decimals travel as strings so no cent is lost."""
    item: dict[str, Any] = {
        "metric_name": _text(metric_name, "metric_name", required=True),
        "metric_category": _choice(metric_category, "metric_category", METRIC_CATEGORIES),
        "metric_value": _decimal(metric_value, "metric_value", required=True),
        "period_type": _choice(period_type, "period_type", PERIOD_TYPES),
        "period_start": _period_bound(period_start, "period_start", required=True),
    }
    _put(item, "period_end", _period_bound(period_end, "period_end"))
    if currency is not None:
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isalpha()):
            raise InvalidItem("currency", "must be an ISO 4217 code such as EUR")
        item["currency"] = currency.upper()
    _put(item, "dimensions", _object(dimensions, "dimensions"))
    _put(item, "target_value", _decimal(target_value, "target_value"))
    _put(item, "previous_value", _decimal(previous_value, "previous_value"))
    return item


def span_item(span: Any, *, service_name: str, environment: str | None) -> dict[str, Any]:
    """A span dict handed to ``record_span``, checked and copied, with the client's service and environment as defaults."""
    if not isinstance(span, Mapping):
        raise InvalidItem("span", "must be a mapping of span fields")
    item = dict(span)
    unknown = [key for key in item if key not in SPAN_FIELDS]
    if unknown:
        raise InvalidItem(str(unknown[0]), "is not a span field")
    _hex(item.get("trace_id"), "trace_id", is_trace_id, required=True)
    _hex(item.get("span_id"), "span_id", is_span_id, required=True)
    _hex(item.get("parent_span_id"), "parent_span_id", is_span_id)
    _text(item.get("operation_name"), "operation_name", required=True)
    if item.get("start_time") is None:
        raise InvalidItem("start_time", "is required")
    if item.get("end_time") is None and item.get("duration_ms") is None:
        raise InvalidItem("end_time", "give end_time or duration_ms")
    item.setdefault("service_name", service_name)
    if environment is not None:
        item.setdefault("environment", environment)
    return item


def _buckets(value: Any) -> dict[str, list[Any]] | None:
    """``{"bounds": [...], "counts": [...]}`` (a mapping), copied; counts one longer than bounds."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"bounds", "counts"}:
        raise InvalidItem("buckets", 'must be {"bounds": [...], "counts": [...]}')
    bounds = [_number(bound, "buckets", required=True) for bound in value["bounds"]]
    counts = [_positive_or_zero(count) for count in value["counts"]]
    if len(counts) != len(bounds) + 1:
        raise InvalidItem("buckets", "counts must be one longer than bounds")
    return {"bounds": bounds, "counts": counts}


def _positive_or_zero(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidItem("buckets", "counts must be non-negative integers")
    return value


def _samples(value: Any) -> list[float | int] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
        raise InvalidItem("samples", "must be a sequence of numbers")
    numbers = [_number(sample, "samples", required=True) for sample in value]
    if not numbers:
        raise InvalidItem("samples", "must not be empty")
    return numbers


def _put(item: dict[str, Any], field: str, value: Any) -> None:
    if value is not None:
        item[field] = value


def _text(value: Any, field: str, *, required: bool = False) -> Any:
    if value is None:
        if required:
            raise InvalidItem(field, "is required")
        return None
    if not isinstance(value, str):
        raise InvalidItem(field, "must be a string")
    if required and not value.strip():
        raise InvalidItem(field, "must not be empty")
    return value


def _choice(value: Any, field: str, allowed: frozenset[str]) -> str:
    if isinstance(value, str):
        lowered = value.lower()  # a StrEnum member is a str, so the server's enums pass as they are
        if lowered in allowed:
            return lowered
    raise InvalidItem(field, f"must be one of {', '.join(sorted(allowed))}")


def _user(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise InvalidItem(field, "must be a non-empty string or an integer")


def _positive_int(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidItem(field, "must be a positive integer")
    return value


@overload
def _number(value: Any, field: str, *, required: Literal[True], minimum: float | None = None) -> float | int: ...
@overload
def _number(value: Any, field: str, *, required: bool = False, minimum: float | None = None) -> float | int | None: ...
def _number(value: Any, field: str, *, required: bool = False, minimum: float | None = None) -> float | int | None:
    if value is None:
        if required:
            raise InvalidItem(field, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidItem(field, "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidItem(field, "must be finite")  # NaN is not JSON: one would spoil the whole batch
    if minimum is not None and value < minimum:
        raise InvalidItem(field, f"must be at least {minimum:g}")
    return value


def _decimal(value: Any, field: str, *, required: bool = False) -> float | int | str | None:
    if value is None:
        if required:
            raise InvalidItem(field, "is required")
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value, field)
    if isinstance(value, Decimal | str):
        try:
            number = Decimal(value)
        except (InvalidOperation, ValueError):
            raise InvalidItem(field, "is not a number") from None
        if not number.is_finite():
            raise InvalidItem(field, "must be finite")
        return str(number)
    raise InvalidItem(field, "must be a number, a Decimal or a numeric string")


def _object(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidItem(field, "must be a mapping")
    return dict(value)  # a copy: the caller may reuse its dict after recording


def _hex(value: Any, field: str, check: Any, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidItem(field, "is required")
        return None
    if not check(value):
        raise InvalidItem(field, "must be a lowercase hex W3C id, not all zeros")
    return value


def _datetime(value: Any, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidItem(field, "must be a datetime")
    return value


def _period_bound(value: Any, field: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidItem(field, "is required")
        return None
    if isinstance(value, datetime):
        return iso_timestamp(value)
    if isinstance(value, date):
        return iso_timestamp(datetime(value.year, value.month, value.day, tzinfo=UTC))
    raise InvalidItem(field, "must be a datetime or a date")


def _uuid_text(value: Any, field: str) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise InvalidItem(field, "must be a UUID")
