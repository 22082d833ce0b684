"""Small builders shared by tests: rows with sensible defaults, inserted through the ORM.

A row naming a user but no license belongs to the platform license, and registers its user there first, as
ingest does; a row naming a license is inserted as it is (the tests of the foreign keys rely on that)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fernando_telemetry.core.enums import EventType, MetricType
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.storage.lookups import register_users
from fernando_telemetry.storage.models import License, SystemMetric, TelemetryEvent, Trace, User

__all__ = ["add_event", "add_license", "add_metric", "add_span", "add_user"]


def add_license(session: Session, name: str = "Acme") -> License:
    license_ = License(name=name)
    session.add(license_)
    session.flush()
    return license_


def add_user(session: Session, user_id: str, *, license_id: int, email: str | None = None) -> User:
    user = User(user_id=user_id, license_id=license_id, email=email)
    session.add(user)
    session.flush()
    return user


def _register_named_user(session: Session, fields: dict[str, Any], *, at: datetime) -> None:
    user_id = fields.get("user_id")
    if user_id is not None and fields.get("license_id") is None:
        register_users(session, [(PLATFORM_LICENSE_ID, user_id)], seen_at=at)


def add_event(session: Session, *, at: datetime, **fields: Any) -> TelemetryEvent:
    _register_named_user(session, fields, at=at)
    event = TelemetryEvent(
        event_id=fields.pop("event_id", uuid.uuid4()),
        event_type=fields.pop("event_type", EventType.USER_ACTION),
        event_name=fields.pop("event_name", "page_view"),
        event_timestamp=at,
        **fields,
    )
    session.add(event)
    session.flush()
    return event


def add_metric(session: Session, *, at: datetime, **fields: Any) -> SystemMetric:
    _register_named_user(session, fields, at=at)
    metric = SystemMetric(
        metric_name=fields.pop("metric_name", "cpu_usage"),
        metric_type=fields.pop("metric_type", MetricType.GAUGE),
        value=fields.pop("value", 42.0),
        timestamp=at,
        **fields,
    )
    session.add(metric)
    session.flush()
    return metric


def add_span(session: Session, *, at: datetime, duration_ms: float = 10.0, **fields: Any) -> Trace:
    from datetime import timedelta

    _register_named_user(session, fields, at=at)
    span = Trace(
        trace_id=fields.pop("trace_id", uuid.uuid4().hex),
        span_id=fields.pop("span_id", uuid.uuid4().hex[:16]),
        operation_name=fields.pop("operation_name", "GET /"),
        service_name=fields.pop("service_name", "web"),
        start_time=at,
        end_time=at + timedelta(milliseconds=duration_ms),
        duration_ms=duration_ms,
        **fields,
    )
    session.add(span)
    session.flush()
    return span
