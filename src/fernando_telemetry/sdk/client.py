"""``TelemetryClient``: the SDK's facade. Records events, metrics, KPIs and spans without ever hurting the host.

Imports the standard library and ``fernando_telemetry.sdk`` only. Every recording method takes the moment,
copies the caller's mappings and queues its arguments (a ``sdk.recordings`` tuple); the background worker checks
them and builds the wire item (see ``processor``), so a request pays for neither. A bad argument becomes a dropped, counted item, never
an exception. The worker sends the queue in batches; ``atexit`` flushes live clients.
"""

from __future__ import annotations

import atexit
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from fernando_telemetry.sdk.exporter import Exporter, ItemKind
from fernando_telemetry.sdk.http_exporter import HttpExporter
from fernando_telemetry.sdk.ids import new_span_id, new_trace_id
from fernando_telemetry.sdk.items import SPAN_KINDS, InvalidItem
from fernando_telemetry.sdk.processor import BatchProcessor, Build
from fernando_telemetry.sdk.recordings import (
    BusinessMetricRecording,
    EventRecording,
    MetricRecording,
    RequestRecording,
    SpanRecording,
    business_metric_wire_item,
    event_wire_item,
    metric_wire_item,
    span_recording_wire_item,
)
from fernando_telemetry.sdk.span import Span, SpanScope, current_span, span_wire_item, start_span
from fernando_telemetry.sdk.stats import ClientStats
from fernando_telemetry.sdk.tracecontext import SpanContext

__all__ = ["DEFAULT_SERVICE_NAME", "TelemetryClient"]

DEFAULT_SERVICE_NAME = "unknown_service"
"""The ``service_name`` of spans when the client is given none (the server requires one on every span)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TelemetryClient:
    """Records telemetry and sends it to a Fernando Telemetry server in the background.

    Args:
        endpoint: the server's base URL, e.g. ``https://telemetry.example.com``.
        api_key: an ingest key, sent as ``Authorization: Bearer <api_key>``.
        service_name: the default ``service_name`` of metrics and spans.
        environment: set on every event and span (``production``, ``staging``...).
        max_queue_items: items held while waiting to be sent; when full the oldest is dropped and counted.
        max_batch_items: items per request; a full batch wakes the worker at once.
        flush_interval_s: the worker sends what is queued at least this often.
        timeout_s: per HTTP request; also the default wait of ``flush()`` and ``shutdown()``.
        max_retry_elapsed_s: how long one batch is retried before it is dropped (and counted ``failed``).
        exporter: where batches go; default an ``HttpExporter`` for ``endpoint``. Tests pass ``InMemoryExporter()``.
        clock: returns the current aware UTC datetime; stamps events, metrics and span starts.
    """

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        *,
        service_name: str | None = None,
        environment: str | None = None,
        max_queue_items: int = 10_000,
        max_batch_items: int = 500,
        flush_interval_s: float = 2.0,
        timeout_s: float = 10.0,
        max_retry_elapsed_s: float = 60.0,
        exporter: Exporter | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        _require(isinstance(max_queue_items, int) and max_queue_items >= 1, "max_queue_items must be a positive integer")
        _require(isinstance(max_batch_items, int) and max_batch_items >= 1, "max_batch_items must be a positive integer")
        _require(flush_interval_s > 0, "flush_interval_s must be positive")
        _require(timeout_s > 0, "timeout_s must be positive")
        _require(max_retry_elapsed_s >= 0, "max_retry_elapsed_s must not be negative")
        _require(service_name is None or isinstance(service_name, str), "service_name must be a string")
        _require(environment is None or isinstance(environment, str), "environment must be a string")
        if exporter is None:
            _require(
                isinstance(endpoint, str) and endpoint.startswith(("http://", "https://")),
                "endpoint must be an http:// or https:// URL",
            )
            exporter = HttpExporter(endpoint, api_key, timeout_s=timeout_s, max_retry_elapsed_s=max_retry_elapsed_s)
        self._service_name = service_name
        self._environment = environment
        self._timeout_s = timeout_s
        self._clock = clock or _utc_now
        self._processor = BatchProcessor(
            exporter,
            max_queue_items=max_queue_items,
            max_batch_items=min(max_batch_items, max_queue_items),
            flush_interval_s=flush_interval_s,
        )
        # Collected with the client: the worker drains and exits. It holds the processor, never the client.
        weakref.finalize(self, self._processor.stop_soon).atexit = False
        _live_clients.add(self)

    # -- recording ----------------------------------------------------------------------------------

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
        """Record one event. Without ``trace_id``/``span_id`` it joins the current span, if any."""
        try:
            if trace_id is None and span_id is None:
                span = current_span()
                if span is not None:
                    trace_id, span_id = span.trace_id, span.span_id
            recording = EventRecording(
                event_name=event_name,
                now=self._clock() if timestamp is None else None,
                event_type=event_type,
                user_id=user_id,
                session_id=session_id,
                payload=_copied(payload),
                duration_ms=duration_ms,
                category=category,
                source=source,
                license_id=license_id,
                trace_id=trace_id,
                span_id=span_id,
                ip_address=ip_address,
                user_agent=user_agent,
                app_version=app_version,
                environment=self._environment,
                event_id=event_id,
                timestamp=timestamp,
            )
            self._processor.enqueue(ItemKind.EVENTS, recording, event_wire_item)
        except Exception:
            self._drop()

    def record_metric(
        self,
        metric_name: str,
        value: float | None = None,
        *,
        metric_type: str = "gauge",
        unit: str | None = None,
        labels: Mapping[str, Any] | None = None,
        service_name: str | None = None,
        host_name: str | None = None,
        instance_id: str | None = None,
        sample_count: int | None = None,
        p50: float | None = None,
        p90: float | None = None,
        p95: float | None = None,
        p99: float | None = None,
        user_id: str | int | None = None,
        timestamp: datetime | None = None,
        temporality: str | None = None,
        start_time: datetime | None = None,
        buckets: Mapping[str, Sequence[float]] | None = None,
        samples: Sequence[float] | None = None,
    ) -> None:
        """Record one system metric sample (counter, gauge, histogram, timer or distribution).

        A counter's ``value`` is a running total (``temporality="cumulative"``, the default) or the increase since
        ``start_time`` (``"delta"``); a histogram, timer or distribution may carry its values' ``buckets``
        (``{"bounds": [...], "counts": [...]}``) or the raw ``samples`` instead of a mean ``value``.
        """
        try:
            recording = MetricRecording(
                metric_name=metric_name,
                value=value,
                now=self._clock() if timestamp is None else None,
                metric_type=metric_type,
                unit=unit,
                labels=_copied(labels),
                service_name=self._service_name if service_name is None else service_name,
                host_name=host_name,
                instance_id=instance_id,
                sample_count=sample_count,
                p50=p50,
                p90=p90,
                p95=p95,
                p99=p99,
                user_id=user_id,
                timestamp=timestamp,
                temporality=temporality,
                start_time=start_time,
                buckets=_copied(buckets),
                samples=None if samples is None else list(samples),
            )
            self._processor.enqueue(ItemKind.SYSTEM_METRICS, recording, metric_wire_item)
        except Exception:
            self._drop()

    def record_business_metric(
        self,
        metric_name: str,
        metric_value: float | Decimal | str,
        *,
        metric_category: str,
        period_type: str,
        period_start: datetime | date,
        period_end: datetime | date | None = None,
        currency: str | None = None,
        dimensions: Mapping[str, Any] | None = None,
        target_value: float | Decimal | str | None = None,
        previous_value: float | Decimal | str | None = None,
    ) -> None:
        """Record one KPI value for a period. The server keeps one value per metric, period and dimensions."""
        try:
            recording = BusinessMetricRecording(
                metric_name=metric_name,
                metric_value=metric_value,
                metric_category=metric_category,
                period_type=period_type,
                period_start=period_start,
                period_end=period_end,
                currency=currency,
                dimensions=_copied(dimensions),
                target_value=target_value,
                previous_value=previous_value,
            )
            self._processor.enqueue(ItemKind.BUSINESS_METRICS, recording, business_metric_wire_item)
        except Exception:
            self._drop()

    def span(
        self,
        operation_name: str,
        *,
        kind: str = "internal",
        attributes: Mapping[str, Any] | None = None,
        user_id: str | int | None = None,
        parent: Span | SpanContext | None = None,
    ) -> SpanScope:
        """A ``with`` block timed as one span, a child of ``parent`` or of the current span.

        An exception leaving the block marks the span ``error`` (type, message and an ``exception`` event) and
        propagates unchanged. Bad arguments give a span that is never sent (counted dropped).
        """
        try:
            if not isinstance(operation_name, str) or not operation_name.strip():
                raise InvalidItem("operation_name", "must be a non-empty string")
            if kind not in SPAN_KINDS:
                raise InvalidItem("kind", f"must be one of {', '.join(sorted(SPAN_KINDS))}")
            if attributes is not None and not isinstance(attributes, Mapping):
                raise InvalidItem("attributes", "must be a mapping")
            if parent is not None and not isinstance(parent, Span | SpanContext):
                raise InvalidItem("parent", "must be a Span or a SpanContext")
            if user_id is not None:
                if isinstance(user_id, int) and not isinstance(user_id, bool):
                    user_id = str(user_id)
                elif not isinstance(user_id, str) or not user_id:
                    raise InvalidItem("user_id", "must be a non-empty string or an integer")
            span = start_span(
                operation_name,
                service_name=self._service_name or DEFAULT_SERVICE_NAME,
                environment=self._environment,
                kind=kind,
                parent=parent,
                attributes=attributes,
                user_id=user_id,
                start_time=self._clock(),
                on_end=self._end_span,
            )
        except Exception:
            self._drop()
            span = _unsent_span()
        return SpanScope(span)

    def record_span(self, span: Mapping[str, Any]) -> None:
        """Record a finished span given as a ``POST /api/v1/spans`` item (the ``TelemetrySink`` method).

        The mapping is copied now; the worker checks it and fills the client's service name and environment.
        """
        try:
            recording = SpanRecording(_copied(span), self._service_name or DEFAULT_SERVICE_NAME, self._environment)
            self._processor.enqueue(ItemKind.SPANS, recording, span_recording_wire_item)
        except Exception:
            self._drop()

    # -- lifecycle ----------------------------------------------------------------------------------

    @property
    def stats(self) -> ClientStats:
        """A snapshot of the counters: queued, sent, rejected, failed, dropped, retries."""
        return self._processor.stats

    def flush(self, timeout_s: float | None = None) -> bool:
        """Send everything queued now; True when it all has an outcome (sent, rejected or failed) in time.

        Waits at most ``timeout_s`` (default: the client's ``timeout_s``). Safe to call any number of times.
        """
        try:
            return self._processor.flush(self._timeout_s if timeout_s is None else timeout_s)
        except Exception:
            return False

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Send what is queued (waiting at most ``timeout_s``, default the client's ``timeout_s``) and stop.

        Idempotent; afterwards every recording is a no-op counted as dropped. Called at interpreter exit.
        """
        try:
            self._processor.shutdown(self._timeout_s if timeout_s is None else timeout_s)
        except Exception:  # noqa: S110
            pass

    def __enter__(self) -> TelemetryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def _record_request(self, request: Any, build_span: Build, build_event: Build) -> None:
        """``TelemetryMiddleware``'s way in: one finished request, queued as its span and its event (two items).

        ``request`` is what the middleware took on the request path; the worker builds each item from its
        ``RequestRecording`` with the middleware's ``build_span`` and ``build_event``.
        """
        try:
            entry = RequestRecording(request, self._clock(), self._environment)
            self._processor.enqueue_pair((ItemKind.SPANS, entry, build_span), (ItemKind.EVENTS, entry, build_event))
        except Exception:
            self._drop()

    def _end_span(self, span: Span) -> None:
        try:
            self._processor.enqueue(ItemKind.SPANS, span.snapshot(), span_wire_item)
        except Exception:
            self._drop()

    def _drop(self) -> None:
        try:
            self._processor.count_dropped()
        except Exception:  # noqa: S110
            pass


def _copied(value: Any) -> Any:
    """A mapping copied now, so the caller may reuse it after recording; anything else as it is, for the worker to refuse."""
    if value is None:
        return None
    if type(value) is dict:
        return value.copy()
    return dict(value) if isinstance(value, Mapping) else value


def _require(condition: bool, message: str) -> None:
    """Configuration errors fail at construction, where the host can see them; recording never raises."""
    if not condition:
        raise ValueError(message)


def _unsent_span() -> Span:
    return Span(
        "invalid",
        context=SpanContext(new_trace_id(), new_span_id()),
        parent_span_id=None,
        kind="internal",
        service_name=DEFAULT_SERVICE_NAME,
        environment=None,
        start_time=_EPOCH,
    )


_live_clients: weakref.WeakSet[TelemetryClient] = weakref.WeakSet()


def _shutdown_live_clients() -> None:
    """At interpreter exit: stop every live client at once, then give them a shared deadline to drain."""
    try:
        clients = list(_live_clients)
        workers = [(client, client._processor.stop_soon()) for client in clients]
        deadline = time.monotonic() + max((client._timeout_s for client in clients), default=0.0)
        for client, worker in workers:
            client.shutdown(max(0.0, deadline - time.monotonic()) if worker is not None else 0.0)
    except Exception:  # noqa: S110  (nothing may fail the host's exit)
        pass


atexit.register(_shutdown_live_clients)
