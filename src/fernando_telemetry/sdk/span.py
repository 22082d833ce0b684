"""Spans: one timed operation, the context variable that makes nested spans children, and the scope that
records an exception. Standard library only; a span knows nothing of where it is sent (``on_end`` decides).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from fernando_telemetry.sdk.ids import new_span_id, new_trace_id
from fernando_telemetry.sdk.items import iso_timestamp
from fernando_telemetry.sdk.tracecontext import SpanContext

__all__ = ["Span", "SpanScope", "current_span", "current_span_context", "start_span", "use_span"]

_MAX_MESSAGE_CHARS = 10_000
_MAX_STACKTRACE_CHARS = 8_000

_current: ContextVar[Span | None] = ContextVar("fernando_telemetry_current_span", default=None)


def current_span() -> Span | None:
    """The innermost span open in this thread or task, or None."""
    return _current.get()


def current_span_context() -> SpanContext | None:
    """The trace id and span id of the current span (what events and outgoing headers correlate to), or None."""
    span = _current.get()
    return None if span is None else span.context


class Span:
    """One operation of a trace. Its methods never raise; ``end()`` is idempotent and hands it to ``on_end``."""

    __slots__ = (
        "_end_perf",
        "_ended",
        "_on_end",
        "_start_perf",
        "attributes",
        "context",
        "environment",
        "error_message",
        "error_type",
        "events",
        "http_method",
        "http_route",
        "kind",
        "license_id",
        "operation_name",
        "parent_span_id",
        "service_name",
        "start_time",
        "status",
        "status_code",
        "status_message",
        "user_id",
    )

    def __init__(
        self,
        operation_name: str,
        *,
        context: SpanContext,
        parent_span_id: str | None,
        kind: str,
        service_name: str,
        environment: str | None,
        start_time: datetime,
        attributes: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        on_end: Callable[[Span], None] | None = None,
    ) -> None:
        self.operation_name = operation_name
        self.context = context
        self.parent_span_id = parent_span_id
        self.kind = kind
        self.service_name = service_name
        self.environment = environment
        self.start_time = start_time
        self.attributes: dict[str, Any] = dict(attributes) if attributes else {}
        self.events: list[dict[str, Any]] = []
        self.user_id = user_id
        self.license_id: int | None = None
        self.status = "unset"
        self.status_message: str | None = None
        self.status_code: int | None = None
        self.http_method: str | None = None
        self.http_route: str | None = None
        self.error_type: str | None = None
        self.error_message: str | None = None
        self._on_end = on_end
        self._ended = False
        self._start_perf = time.perf_counter()
        self._end_perf: float | None = None

    @property
    def trace_id(self) -> str:
        return self.context.trace_id

    @property
    def span_id(self) -> str:
        return self.context.span_id

    @property
    def duration_ms(self) -> float:
        """Milliseconds from start to end (or to now while the span is open), on the monotonic clock."""
        end = self._end_perf if self._end_perf is not None else time.perf_counter()
        return (end - self._start_perf) * 1000.0

    @property
    def is_ended(self) -> bool:
        return self._ended

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[str(key)] = value

    def set_status(self, status: str, message: str | None = None) -> None:
        """``"ok"``, ``"error"`` or ``"unset"``; anything else is ignored."""
        if status in ("unset", "ok", "error"):
            self.status = status
            if message is not None:
                self.status_message = str(message)[:_MAX_MESSAGE_CHARS]

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        """A timestamped point inside the span (the OpenTelemetry span event)."""
        try:
            offset = timedelta(milliseconds=self.duration_ms)
            event: dict[str, Any] = {"name": str(name), "timestamp": iso_timestamp(self.start_time + offset)}
            if attributes:
                event["attributes"] = dict(attributes)
            self.events.append(event)
        except Exception:  # noqa: S110  (recording never raises)
            pass

    def record_exception(self, exc: BaseException) -> None:
        """Mark the span failed by ``exc``: status error, error type and message, and an ``exception`` event."""
        try:
            error_type = type(exc).__qualname__
            module = type(exc).__module__
            if module not in ("builtins", "__main__"):
                error_type = f"{module}.{error_type}"
            message = str(exc)[:_MAX_MESSAGE_CHARS]
            stacktrace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-_MAX_STACKTRACE_CHARS:]
            self.status = "error"
            self.error_type = error_type
            self.error_message = message
            self.add_event(
                "exception",
                {"exception.type": error_type, "exception.message": message, "exception.stacktrace": stacktrace},
            )
        except Exception:  # noqa: S110
            pass

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._end_perf = time.perf_counter()
        if self._on_end is not None:
            try:
                self._on_end(self)
            except Exception:  # noqa: S110  (the receiver of the span must not hurt the host)
                pass

    def to_item(self) -> dict[str, Any]:
        """The span as a ``POST /api/v1/spans`` item."""
        duration_ms = self.duration_ms
        item: dict[str, Any] = {
            "trace_id": self.context.trace_id,
            "span_id": self.context.span_id,
            "operation_name": self.operation_name,
            "service_name": self.service_name,
            "span_kind": self.kind,
            "start_time": iso_timestamp(self.start_time),
            "end_time": iso_timestamp(self.start_time + timedelta(milliseconds=duration_ms)),
            "duration_ms": duration_ms,
            "status": self.status,
        }
        optional = {
            "parent_span_id": self.parent_span_id,
            "status_message": self.status_message,
            "status_code": self.status_code,
            "http_method": self.http_method,
            "http_route": self.http_route,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "user_id": self.user_id,
            "license_id": self.license_id,
            "environment": self.environment,
            "attributes": self.attributes or None,
            "span_events": self.events or None,
        }
        item.update((key, value) for key, value in optional.items() if value is not None)
        return item


def start_span(
    operation_name: str,
    *,
    service_name: str,
    environment: str | None = None,
    kind: str = "internal",
    parent: Span | SpanContext | None = None,
    attributes: Mapping[str, Any] | None = None,
    user_id: str | None = None,
    start_time: datetime | None = None,
    on_end: Callable[[Span], None] | None = None,
) -> Span:
    """A new open span: a child of ``parent``, else of the current span, else the root of a new trace."""
    if parent is None:
        parent = _current.get()
    parent_context = parent.context if isinstance(parent, Span) else parent
    if parent_context is None:
        context = SpanContext(new_trace_id(), new_span_id())
        parent_span_id = None
    else:
        context = SpanContext(parent_context.trace_id, new_span_id())
        parent_span_id = parent_context.span_id
    return Span(
        operation_name,
        context=context,
        parent_span_id=parent_span_id,
        kind=kind,
        service_name=service_name,
        environment=environment,
        start_time=start_time if start_time is not None else datetime.now(UTC),
        attributes=attributes,
        user_id=user_id,
        on_end=on_end,
    )


class use_span:  # noqa: N801  (used like a function: ``with use_span(span):``)
    """``with`` block in which ``span`` is the current span; it neither ends the span nor looks at exceptions."""

    __slots__ = ("_previous", "_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: Token[Span | None] | None = None
        self._previous: Span | None = None

    def __enter__(self) -> Span:
        self._previous = _current.get()
        self._token = _current.set(self._span)
        return self._span

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            try:
                _current.reset(self._token)
            except (ValueError, RuntimeError):  # exited in another context than entered (a generator moved across tasks)
                _current.set(self._previous)
            self._token = None


class SpanScope:
    """``with`` block around a span: current inside, exception recorded (and re-raised), ended on exit."""

    __slots__ = ("_activation", "_span")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._activation = use_span(span)

    def __enter__(self) -> Span:
        return self._activation.__enter__()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._activation.__exit__()
        if isinstance(exc, Exception):
            self._span.record_exception(exc)
        self._span.end()

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)
