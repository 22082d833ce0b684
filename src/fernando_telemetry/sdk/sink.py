"""``TelemetrySink``: what the middleware records into, and ``RecordingSink``, an in-memory one for tests.

Standard library only. ``TelemetryClient`` is a sink that sends to a server; the server provides one that
writes to its own database in-process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = ["RecordingSink", "TelemetrySink"]


@runtime_checkable
class TelemetrySink(Protocol):
    """Receives events and finished spans. Both methods must return at once and never raise."""

    def track_event(
        self,
        event_name: str,
        *,
        event_type: str = "user_action",
        user_id: str | int | None = None,
        session_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        duration_ms: float | None = None,
        category: str | None = None,
        source: str = "sdk",
        license_id: int | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        app_version: str | None = None,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Record one event (the fields of a ``POST /api/v1/events`` item)."""
        ...

    def record_span(self, span: Mapping[str, Any]) -> None:
        """Record one finished span, given as a ``POST /api/v1/spans`` item."""
        ...


class RecordingSink:
    """Keeps what it is given: ``events`` (the keyword arguments, with ``event_name``) and ``spans`` (the items)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.spans: list[dict[str, Any]] = []

    def track_event(self, event_name: str, **fields: Any) -> None:
        event = {"event_name": event_name, **{key: value for key, value in fields.items() if value is not None}}
        with self._lock:
            self.events.append(event)

    def record_span(self, span: Mapping[str, Any]) -> None:
        with self._lock:
            self.spans.append(dict(span))

    def clear(self) -> None:
        with self._lock:
            self.events.clear()
            self.spans.clear()
