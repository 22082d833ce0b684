"""The SDK's copies of the server's closed vocabularies (``EventType``, ``EventSource``) as ``StrEnum``s.

Imports only the standard library: the SDK never imports the server. ``tests/sdk/test_packaging.py`` checks
that the members equal ``fernando_telemetry.core.enums``'s, so the copies cannot drift.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventSource", "EventType"]


class EventType(StrEnum):
    """What an event is; ``track_event(event_type=EventType.API_EVENT)`` equals passing ``"api_event"``."""

    USER_ACTION = "user_action"
    SYSTEM_EVENT = "system_event"
    API_EVENT = "api_event"
    ERROR_EVENT = "error_event"
    PERFORMANCE_EVENT = "performance_event"
    SECURITY_EVENT = "security_event"
    BUSINESS_EVENT = "business_event"


class EventSource(StrEnum):
    """Where an event came from (the ``source`` argument)."""

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
