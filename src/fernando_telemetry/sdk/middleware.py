"""``TelemetryMiddleware``: pure ASGI middleware that records one ``api_event`` and one server span per HTTP request.

Imports the standard library and ``fernando_telemetry.sdk`` only (no Starlette at runtime). It continues an
incoming W3C ``traceparent``, answers with its own, names requests by route template, and captures no request
body, no query string and no header but ``User-Agent``. It only queues: no I/O on the request path. With a
``TelemetryClient`` the request path only takes a snapshot of the request; the client's worker names it and
builds its span and event (``_request_span_item``, ``_request_event_item``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from fernando_telemetry.sdk.client import TelemetryClient
from fernando_telemetry.sdk.ids import uuid7
from fernando_telemetry.sdk.items import iso_timestamp
from fernando_telemetry.sdk.recordings import RequestRecording
from fernando_telemetry.sdk.sink import TelemetrySink
from fernando_telemetry.sdk.span import Span, SpanSnapshot, span_wire_item, start_span, use_span
from fernando_telemetry.sdk.tracecontext import parse_traceparent

__all__ = ["DEFAULT_EXCLUDED_PATHS", "EVENT_NAME", "TelemetryMiddleware", "route_template", "user_from_state"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
UserCapture = Callable[[Scope], "tuple[str | int | None, int | None]"]

DEFAULT_EXCLUDED_PATHS = ("/healthz", "/readyz", "/metrics")
EVENT_NAME = "http_request"
"""The ``event_name`` of the ``api_event`` recorded per request."""
_MAX_USER_AGENT_CHARS = 1024
_TRACEPARENT = b"traceparent"


def user_from_state(scope: Scope) -> tuple[str | int | None, int | None]:
    """The convention: the app sets ``request.state.user_id`` and ``request.state.license_id`` (``scope["state"]``)."""
    state = scope.get("state")
    if state is None:
        return None, None
    if type(state) is dict or isinstance(state, Mapping):  # Starlette's: a dict, which request.state writes into
        return state.get("user_id"), state.get("license_id")
    return getattr(state, "user_id", None), getattr(state, "license_id", None)


def route_template(scope: Scope, entry_root_path: str = "") -> str | None:
    """The template of the route that served the request (``/users/{user_id}``), or None when none matched.

    Starlette and FastAPI leave the matched route in ``scope["route"]``. Under a ``Mount`` that route's path is
    relative to the mount, so the mount prefix (what ``root_path`` grew by) is put in front, with any path
    parameter values in it put back as ``{name}``. The raw request path is never used.
    """
    return _template(scope.get("route"), scope.get("root_path") or "", scope.get("path_params"), entry_root_path)


def _template(route: Any, root_path: str, path_params: Mapping[str, Any] | None, entry_root_path: str) -> str | None:
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    prefix = root_path[len(entry_root_path) :] if root_path.startswith(entry_root_path) else ""
    if prefix:
        values = {str(value): name for name, value in (path_params or {}).items() if isinstance(value, str | int)}
        prefix = "/".join(f"{{{values[part]}}}" if part in values else part for part in prefix.split("/"))
    if getattr(route, "routes", None) is not None:
        # The route is itself a mount (static files, a sub-app without routes): its own path is already in prefix.
        return (prefix or path).rstrip("/") + "/{path}"
    return (prefix.rstrip("/") + path) or "/"


class TelemetryMiddleware:
    """Per HTTP request: an ``api_event`` named ``http_request`` and a ``server`` span, sent to a sink.

    Args:
        app: the ASGI app to wrap.
        client: a ``TelemetryClient`` (sends to a remote server). Give this or ``sink``.
        sink: any ``TelemetrySink`` (for example the server's in-process one). Give this or ``client``.
        service_name: the ``service_name`` of the spans.
        excluded_paths: request paths (exact match) that record nothing.
        capture_user: True reads ``user_id`` and ``license_id`` from ``request.state`` after the app ran
            (see ``user_from_state``); False records no user; a callable ``(scope) -> (user_id, license_id)``
            reads them some other way.
        environment: the ``environment`` of the spans.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        client: TelemetrySink | None = None,
        sink: TelemetrySink | None = None,
        service_name: str,
        excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
        capture_user: bool | UserCapture = True,
        environment: str | None = None,
    ) -> None:
        chosen_sink = client if client is not None else sink
        if chosen_sink is None or (client is not None and sink is not None):
            raise TypeError("TelemetryMiddleware needs exactly one of client= or sink=")
        if not isinstance(service_name, str) or not service_name:
            raise ValueError("service_name must be a non-empty string")
        self.app = app
        self._sink: TelemetrySink = chosen_sink
        # A TelemetryClient takes the request's snapshot and builds the items on its worker; any other sink is
        # handed the finished items through the TelemetrySink protocol.
        self._client = self._sink if isinstance(self._sink, TelemetryClient) else None
        self._service_name = service_name
        self._environment = environment
        self._excluded_paths = frozenset(excluded_paths)
        if capture_user is True:
            self._capture_user: UserCapture | None = user_from_state
        elif capture_user is False:
            self._capture_user = None
        else:
            self._capture_user = capture_user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("path") in self._excluded_paths:
            await self.app(scope, receive, send)
            return
        try:
            span, user_agent = self._start(scope)
            traceparent = f"00-{span.trace_id}-{span.span_id}-01".encode("ascii")  # format_traceparent, sans SpanContext
            entry_root_path = scope.get("root_path") or ""
        except Exception:  # telemetry must never cost the request
            await self.app(scope, receive, send)
            return
        status_code: int | None = None

        async def send_with_traceparent(message: Message) -> None:
            nonlocal status_code
            if message.get("type") == "http.response.start":
                status_code = message.get("status")
                headers = message.get("headers") or []
                if type(headers) is not list:
                    headers = list(headers)  # any iterable: read it once
                for name, _ in headers:
                    if name.lower() == _TRACEPARENT:
                        break  # the app answers with its own
                else:
                    message = {**message, "headers": [*headers, (_TRACEPARENT, traceparent)]}
            await send(message)

        try:
            with use_span(span):
                await self.app(scope, receive, send_with_traceparent)
        except Exception as exc:
            span.record_exception(exc)
            if status_code is None:
                status_code = 500  # what the server error handler above us answers
            raise
        finally:
            self._finish(scope, span, status_code, user_agent, entry_root_path)

    def _start(self, scope: Scope) -> tuple[Span, str | None]:
        traceparent: bytes | None = None
        user_agent: str | None = None
        for name, value in scope.get("headers") or ():
            lowered = name.lower()
            if lowered == b"traceparent":
                traceparent = value
            elif lowered == b"user-agent":
                user_agent = value.decode("latin-1")[:_MAX_USER_AGENT_CHARS]
        method = str(scope.get("method") or "GET")
        span = start_span(
            f"{method} unmatched",
            service_name=self._service_name,
            environment=self._environment,
            kind="server",
            parent=None if traceparent is None else parse_traceparent(traceparent),  # None: a new trace
            start_time=datetime.now(UTC),
        )
        span.http_method = method
        return span, user_agent

    def _finish(self, scope: Scope, span: Span, status_code: int | None, user_agent: str | None, entry_root_path: str) -> None:
        try:
            span.end()
            client = self._client
            if client is not None:
                # Only what must be read now: the span as it ended, the user the app set, where the route lives.
                user = self._raw_user(scope)
                request = RequestSnapshot(
                    span=span.snapshot(),
                    status_code=status_code,
                    user_agent=user_agent,
                    user=user,
                    route=scope.get("route"),
                    root_path=scope.get("root_path") or "",
                    path_params=scope.get("path_params"),
                    entry_root_path=entry_root_path,
                    known=[],
                )
                client._record_request(request, _request_span_item, _request_event_item)
                return
            route = route_template(scope, entry_root_path)
            method = span.http_method or "GET"
            span.operation_name = f"{method} {route or 'unmatched'}"
            span.http_route = route
            span.status_code = _valid_status(status_code)
            if _is_server_error(status_code):
                span.status = "error"
            user_id, license_id = _normalized_user(self._raw_user(scope))
            span.user_id = user_id
            span.license_id = license_id
            self._sink.record_span(span.to_item())
            self._sink.track_event(
                EVENT_NAME,
                event_type="api_event",
                source="api",
                payload=_request_payload(method, route, status_code, span.error_type),
                duration_ms=span.duration_ms,
                user_id=user_id,
                license_id=license_id,
                trace_id=span.trace_id,
                span_id=span.span_id,
                user_agent=user_agent,
            )
        except Exception:  # noqa: S110  (a failing sink must not fail the request)
            pass

    def _raw_user(self, scope: Scope) -> Any:
        if self._capture_user is None:
            return None
        try:
            return self._capture_user(scope)
        except Exception:
            return None


def _normalized_user(user: Any) -> tuple[str | None, int | None]:
    """What a user capture returned, as the ``user_id`` and ``license_id`` to record (None for anything unusable)."""
    try:
        user_id, license_id = user
    except (TypeError, ValueError):
        return None, None
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id:
        user_id = None
    if isinstance(license_id, bool) or not isinstance(license_id, int) or license_id < 1:
        license_id = None
    return user_id, license_id


def _request_payload(method: str, route: str | None, status_code: Any, error_type: str | None) -> dict[str, Any]:
    """The request event's payload. A failed request (``status_code`` 500..599, which an unhandled exception
    answers) counts as an error in ``telemetry_events_hourly_summary``; an exception also names its type as
    ``error``."""
    payload: dict[str, Any] = {"method": method, "route": route, "status_code": status_code}
    if error_type:
        payload["error"] = error_type
    return payload


def _valid_status(status_code: Any) -> int | None:
    return status_code if isinstance(status_code, int) and 100 <= status_code <= 599 else None


def _is_server_error(status_code: Any) -> bool:
    return isinstance(status_code, int) and status_code >= 500


# -- the client's worker: a request snapshot to its span and its event --------------------------------------
# Both functions take the client's ``RequestRecording`` of a ``RequestSnapshot`` and give what the sink path above
# records.


class RequestSnapshot(NamedTuple):
    """What ``_finish`` takes on the request path, for the client's worker to build the span and event from."""

    span: SpanSnapshot
    """The span as it ended."""
    status_code: Any
    user_agent: str | None
    user: Any
    """What the user capture returned, not yet checked."""
    route: Any
    root_path: str
    path_params: Any
    entry_root_path: str
    known: list[tuple[str | None, str | None, int | None]]
    """The worker's: the route template and user, worked out once for the span and the event."""


def _route_and_user(request: RequestSnapshot) -> tuple[str | None, str | None, int | None]:
    """The route template, user_id and license_id of a request snapshot; worked out by the first builder to ask."""
    known = request.known
    if not known:
        template = _template(request.route, request.root_path, request.path_params, request.entry_root_path)
        known.append((template, *_normalized_user(request.user)))
    return known[0]


def _request_span_item(entry: RequestRecording) -> dict[str, Any]:
    request = entry.request
    template, user_id, license_id = _route_and_user(request)
    status_code = request.status_code
    snapshot: SpanSnapshot = request.span
    return span_wire_item(
        snapshot._replace(
            operation_name=f"{snapshot.http_method or 'GET'} {template or 'unmatched'}",
            status="error" if _is_server_error(status_code) else snapshot.status,
            status_code=_valid_status(status_code),
            http_route=template,
            user_id=user_id,
            license_id=license_id,
            environment=snapshot.environment if snapshot.environment is not None else entry.environment,
        )
    )


def _request_event_item(entry: RequestRecording) -> dict[str, Any]:
    request, now, environment = entry.request, entry.now, entry.environment
    template, user_id, license_id = _route_and_user(request)
    snapshot: SpanSnapshot = request.span
    item: dict[str, Any] = {
        "event_id": uuid7(now),
        "event_type": "api_event",
        "event_name": EVENT_NAME,
        "source": "api",
        "event_timestamp": iso_timestamp(now),
    }
    if user_id is not None:
        item["user_id"] = user_id
    if license_id is not None:
        item["license_id"] = license_id
    item["payload"] = _request_payload(snapshot.http_method or "GET", template, request.status_code, snapshot.error_type)
    item["duration_ms"] = snapshot.duration_ms
    if request.user_agent is not None:
        item["user_agent"] = request.user_agent
    item["trace_id"] = snapshot.trace_id
    item["span_id"] = snapshot.span_id
    if environment is not None:
        item["environment"] = environment
    return item
