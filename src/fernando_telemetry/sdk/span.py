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
from typing import Any, NamedTuple

from fernando_telemetry.sdk.ids import new_span_id, new_trace_and_span_id
from fernando_telemetry.sdk.items import iso_timestamp, iso_timestamp_after
from fernando_telemetry.sdk.tracecontext import SpanContext

__all__ = [
    "Span",
    "SpanScope",
    "SpanSnapshot",
    "current_span",
    "current_span_context",
    "span_wire_item",
    "start_span",
    "use_span",
]

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
        "_context",
        "_end_perf",
        "_ended",
        "_on_end",
        "_span_id",
        "_start_perf",
        "_trace_id",
        "attributes",
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
    # declared once here: __init__ knows the context, _setup (the fast path of start_span) makes it lazily
    _context: SpanContext | None

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
        self._setup(
            operation_name,
            context.trace_id,
            context.span_id,
            parent_span_id,
            kind,
            service_name,
            environment,
            start_time,
            attributes,
            user_id,
            on_end,
        )
        self._context = context

    def _setup(
        self,
        operation_name: str,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None,
        kind: str,
        service_name: str,
        environment: str | None,
        start_time: datetime,
        attributes: Mapping[str, Any] | None,
        user_id: str | None,
        on_end: Callable[[Span], None] | None,
    ) -> None:
        self.operation_name = operation_name
        self._trace_id = trace_id
        self._span_id = span_id
        self._context = None  # made when asked for: most spans never are
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
    def context(self) -> SpanContext:
        """The span's trace id and span id, as a child or a ``traceparent`` header needs them."""
        context = self._context
        if context is None:
            context = self._context = SpanContext(self._trace_id, self._span_id)
        return context

    @property
    def trace_id(self) -> str:
        return self._trace_id

    @property
    def span_id(self) -> str:
        return self._span_id

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
        return span_wire_item(self.snapshot())

    def snapshot(self) -> SpanSnapshot:
        """The span's fields now, for ``span_wire_item`` (which can then run later, on another thread).

        Cheap on purpose: the recording thread takes it and the export worker formats it. Attributes and events
        are the span's own dict and list, as ``to_item`` has always shared them.
        """
        return SpanSnapshot(
            trace_id=self._trace_id,
            span_id=self._span_id,
            operation_name=self.operation_name,
            service_name=self.service_name,
            kind=self.kind,
            start_time=self.start_time,
            duration_ms=self.duration_ms,
            status=self.status,
            parent_span_id=self.parent_span_id,
            status_message=self.status_message,
            status_code=self.status_code,
            http_method=self.http_method,
            http_route=self.http_route,
            error_type=self.error_type,
            error_message=self.error_message,
            user_id=self.user_id,
            license_id=self.license_id,
            environment=self.environment,
            attributes=self.attributes or None,
            events=self.events or None,
        )


class SpanSnapshot(NamedTuple):
    """What ``Span.snapshot`` returns: the span's fields when it was taken, for ``span_wire_item``."""

    trace_id: str
    span_id: str
    operation_name: str
    service_name: str
    kind: str
    start_time: datetime
    duration_ms: float
    status: str
    parent_span_id: str | None
    status_message: str | None
    status_code: int | None
    http_method: str | None
    http_route: str | None
    error_type: str | None
    error_message: str | None
    user_id: str | None
    license_id: int | None
    environment: str | None
    attributes: dict[str, Any] | None
    events: list[dict[str, Any]] | None


def span_wire_item(snapshot: SpanSnapshot) -> dict[str, Any]:
    """A ``Span.snapshot`` as a ``POST /api/v1/spans`` item; the optional fields only when set."""
    start_time, duration_ms = snapshot.start_time, snapshot.duration_ms
    item: dict[str, Any] = {
        "trace_id": snapshot.trace_id,
        "span_id": snapshot.span_id,
        "operation_name": snapshot.operation_name,
        "service_name": snapshot.service_name,
        "span_kind": snapshot.kind,
        "start_time": iso_timestamp(start_time),
        "end_time": iso_timestamp_after(start_time, duration_ms),
        "duration_ms": duration_ms,
        "status": snapshot.status,
    }
    # Written out rather than looped: this runs for every span the worker sends.
    if snapshot.parent_span_id is not None:
        item["parent_span_id"] = snapshot.parent_span_id
    if snapshot.status_message is not None:
        item["status_message"] = snapshot.status_message
    if snapshot.status_code is not None:
        item["status_code"] = snapshot.status_code
    if snapshot.http_method is not None:
        item["http_method"] = snapshot.http_method
    if snapshot.http_route is not None:
        item["http_route"] = snapshot.http_route
    if snapshot.error_type is not None:
        item["error_type"] = snapshot.error_type
    if snapshot.error_message is not None:
        item["error_message"] = snapshot.error_message
    if snapshot.user_id is not None:
        item["user_id"] = snapshot.user_id
    if snapshot.license_id is not None:
        item["license_id"] = snapshot.license_id
    if snapshot.environment is not None:
        item["environment"] = snapshot.environment
    if snapshot.attributes is not None:
        item["attributes"] = snapshot.attributes
    if snapshot.events is not None:
        item["span_events"] = snapshot.events
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
    if parent is None:
        trace_id, span_id = new_trace_and_span_id()
        parent_span_id = None
    elif isinstance(parent, Span):
        trace_id, span_id, parent_span_id = parent._trace_id, new_span_id(), parent._span_id
    else:
        trace_id, span_id, parent_span_id = parent.trace_id, new_span_id(), parent.span_id
    span = Span.__new__(Span)
    span._setup(
        operation_name,
        trace_id,
        span_id,
        parent_span_id,
        kind,
        service_name,
        environment,
        start_time if start_time is not None else datetime.now(UTC),
        attributes,
        user_id,
        on_end,
    )
    return span


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
