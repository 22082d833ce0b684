"""What each recording method of ``TelemetryClient`` queues: its arguments, named, and the worker's function that
turns them into a checked wire item (``sdk.items``). Standard library and ``fernando_telemetry.sdk`` only.

A ``NamedTuple`` per method: as cheap to build on the host's thread as the tuple it replaces, and read by name.
Each one's fields are the keyword parameters of its item function, so the worker passes them on as they are
(``tests/sdk/test_recordings.py`` holds them to that).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from fernando_telemetry.sdk.items import business_metric_item, event_item, metric_item, span_item

__all__ = [
    "BusinessMetricRecording",
    "EventRecording",
    "MetricRecording",
    "RequestRecording",
    "SpanRecording",
    "business_metric_wire_item",
    "event_wire_item",
    "metric_wire_item",
    "span_recording_wire_item",
]


class EventRecording(NamedTuple):
    """``track_event``'s arguments; ``now`` is the client's clock when no ``timestamp`` was given."""

    event_name: Any
    now: datetime | None
    event_type: Any
    user_id: Any
    session_id: Any
    payload: Any
    """A copy of the caller's mapping, taken when recorded."""
    duration_ms: Any
    category: Any
    source: Any
    license_id: Any
    trace_id: Any
    span_id: Any
    ip_address: Any
    user_agent: Any
    app_version: Any
    environment: Any
    event_id: Any
    timestamp: Any


class MetricRecording(NamedTuple):
    """``record_metric``'s arguments; ``now`` is the client's clock when no ``timestamp`` was given."""

    metric_name: Any
    value: Any
    now: datetime | None
    metric_type: Any
    unit: Any
    labels: Any
    service_name: Any
    host_name: Any
    instance_id: Any
    sample_count: Any
    p50: Any
    p90: Any
    p95: Any
    p99: Any
    user_id: Any
    timestamp: Any
    temporality: Any
    start_time: Any
    buckets: Any
    samples: Any


class BusinessMetricRecording(NamedTuple):
    """``record_business_metric``'s arguments."""

    metric_name: Any
    metric_value: Any
    metric_category: Any
    period_type: Any
    period_start: Any
    period_end: Any
    currency: Any
    dimensions: Any
    target_value: Any
    previous_value: Any


class SpanRecording(NamedTuple):
    """``record_span``'s span item (copied) and the client's service name and environment to fill in."""

    span: Any
    service_name: str
    environment: str | None


class RequestRecording(NamedTuple):
    """``TelemetryMiddleware``'s finished request (its own snapshot, ``request``), the client's clock when it was
    recorded and the client's environment: what the middleware's builders make its span and its event from."""

    request: Any
    now: datetime
    environment: str | None


# The worker's side. Module functions, not methods of the client: a queued item must never keep its client alive.


def event_wire_item(recording: EventRecording) -> dict[str, Any]:
    return event_item(**recording._asdict())


def metric_wire_item(recording: MetricRecording) -> dict[str, Any]:
    return metric_item(**recording._asdict())


def business_metric_wire_item(recording: BusinessMetricRecording) -> dict[str, Any]:
    return business_metric_item(**recording._asdict())


def span_recording_wire_item(recording: SpanRecording) -> dict[str, Any]:
    return span_item(**recording._asdict())
