"""TelemetryMiddleware in a real FastAPI app: route templates, W3C trace context in and out, excluded paths,
no secrets captured, the request.state user convention, errors; the client's fast path against the sink path;
and end to end through uvicorn to a receiver."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from fernando_telemetry.sdk import (
    ClientStats,
    InMemoryExporter,
    RecordingSink,
    TelemetryClient,
    TelemetryMiddleware,
    TelemetrySink,
    parse_traceparent,
)
from tests.sdk.conftest import fast_exporter
from tests.sdk.receiver import Receiver, wait_until

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


def build_app(sink: Any, **middleware_options: Any) -> FastAPI:
    """A small FastAPI app: a templated route, a route that sets request.state, failures, a mount, a health check."""
    app = FastAPI()

    def current_user(request: Request) -> str:
        request.state.user_id = "u-42"
        request.state.license_id = 7
        return "u-42"

    @app.get("/users/{user_id}")
    def get_user(user_id: str) -> dict[str, str]:
        return {"user_id": user_id}

    @app.get("/me")
    def me(user: str = Depends(current_user)) -> dict[str, str]:
        return {"user": user}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/unavailable")
    def unavailable() -> JSONResponse:
        return JSONResponse({"error": "down"}, status_code=503)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/work")
    def work() -> dict[str, bool]:
        if isinstance(sink, TelemetryClient):
            with sink.span("load-cart"):
                sink.track_event("cart_loaded")
        return {"ok": True}

    v2 = FastAPI()

    @v2.get("/items/{item_id}")
    def get_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    app.mount("/v2", v2)
    app.add_middleware(
        TelemetryMiddleware,
        **({"client": sink} if isinstance(sink, TelemetryClient) else {"sink": sink}),
        service_name="web",
        **middleware_options,
    )
    return app


def call(app: FastAPI, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> httpx.Response:
    """One request through httpx's ASGI transport; the app (middleware included) has finished when it returns."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.request(method, path, headers=headers)

    return asyncio.run(go())


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


class TestTelemetryMiddleware:
    def test_a_request_records_an_api_event_and_a_server_span(self, sink: RecordingSink) -> None:
        """GET /users/123 records one api_event and one server span, both named by the route template."""
        response = call(build_app(sink), "/users/zq-8675309", headers={"User-Agent": "probe/1.0"})
        assert response.status_code == 200
        (event,) = sink.events
        (span,) = sink.spans
        assert event["event_name"] == "http_request"
        assert event["event_type"] == "api_event"
        assert event["source"] == "api"
        assert event["payload"] == {"method": "GET", "route": "/users/{user_id}", "status_code": 200}
        assert event["user_agent"] == "probe/1.0"
        assert event["duration_ms"] >= 0
        assert (event["trace_id"], event["span_id"]) == (span["trace_id"], span["span_id"])
        assert span["span_kind"] == "server"
        assert span["operation_name"] == "GET /users/{user_id}"
        assert (span["http_method"], span["http_route"], span["status_code"]) == ("GET", "/users/{user_id}", 200)
        assert span["service_name"] == "web"
        assert span["status"] == "unset"
        assert "zq-8675309" not in json.dumps([sink.events, sink.spans])

    def test_an_unmatched_path_is_recorded_without_the_raw_path(self, sink: RecordingSink) -> None:
        """A 404 for a path no route matches is named "GET unmatched", and the raw path appears nowhere."""
        response = call(build_app(sink), "/wp-admin/secret-probe-8841")
        assert response.status_code == 404
        (span,) = sink.spans
        assert span["operation_name"] == "GET unmatched"
        assert "http_route" not in span
        assert sink.events[0]["payload"]["route"] is None
        assert "wp-admin" not in json.dumps([sink.events, sink.spans])

    def test_a_mounted_app_is_named_by_its_full_template(self, sink: RecordingSink) -> None:
        """A route of a mounted sub-app is named with the mount prefix in front of its template."""
        call(build_app(sink), "/v2/items/5")
        assert sink.spans[0]["http_route"] == "/v2/items/{item_id}"

    def test_an_incoming_traceparent_is_continued_and_returned(self, sink: RecordingSink) -> None:
        """With a valid traceparent the server span joins that trace as a child, and the response names the server span."""
        response = call(build_app(sink), "/users/1", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"})
        (span,) = sink.spans
        assert (span["trace_id"], span["parent_span_id"]) == (TRACE_ID, PARENT_SPAN_ID)
        returned = parse_traceparent(response.headers["traceparent"])
        assert returned is not None
        assert (returned.trace_id, returned.span_id) == (TRACE_ID, span["span_id"])

    def test_an_invalid_traceparent_starts_a_new_trace(self, sink: RecordingSink) -> None:
        """A malformed traceparent is ignored: a new trace without parent, still returned in the response."""
        response = call(build_app(sink), "/users/1", headers={"traceparent": f"00-{TRACE_ID.upper()}-{PARENT_SPAN_ID}-01"})
        (span,) = sink.spans
        assert span["trace_id"] != TRACE_ID.lower()
        assert "parent_span_id" not in span
        assert response.headers["traceparent"] == f"00-{span['trace_id']}-{span['span_id']}-01"

    def test_excluded_paths_record_nothing(self, sink: RecordingSink) -> None:
        """/healthz (a default exclusion) and a configured path record no event and no span."""
        app = build_app(sink, excluded_paths=("/healthz", "/users/1"))
        assert call(app, "/healthz").status_code == 200
        response = call(app, "/users/1")
        assert response.status_code == 200
        assert "traceparent" not in response.headers
        assert sink.events == [] and sink.spans == []

    def test_no_secret_header_query_or_body_is_captured(self, sink: RecordingSink) -> None:
        """Authorization, Cookie, X-API-Key, the query string and the body never reach the sink; User-Agent does."""
        headers = {
            "Authorization": "Bearer secret-token",
            "Cookie": "session=secret-cookie",
            "X-API-Key": "secret-key",
            "User-Agent": "agent/2.0",
        }
        call(build_app(sink), "/users/1?token=secret-query", headers=headers)
        recorded = json.dumps([sink.events, sink.spans])
        assert "secret" not in recorded
        assert "token" not in recorded
        assert "agent/2.0" in recorded

    def test_user_and_license_come_from_request_state(self, sink: RecordingSink) -> None:
        """user_id and license_id the app put in request.state are on the event and the span."""
        call(build_app(sink), "/me")
        (event,) = sink.events
        (span,) = sink.spans
        assert (event["user_id"], event["license_id"]) == ("u-42", 7)
        assert (span["user_id"], span["license_id"]) == ("u-42", 7)

    def test_user_capture_can_be_turned_off_or_replaced(self) -> None:
        """capture_user=False records no user; a callable reads the user its own way."""
        off = RecordingSink()
        call(build_app(off, capture_user=False), "/me")
        assert "user_id" not in off.events[0] and "user_id" not in off.spans[0]
        custom = RecordingSink()
        call(build_app(custom, capture_user=lambda scope: (scope["path_params"].get("user_id"), None)), "/users/77")
        assert custom.events[0]["user_id"] == "77"

    def test_an_unhandled_exception_marks_the_span_failed(self, sink: RecordingSink) -> None:
        """An exception in the endpoint gives a 500, a span with status error and the exception, and propagates."""
        response = call(build_app(sink), "/boom")
        assert response.status_code == 500
        (span,) = sink.spans
        assert span["status"] == "error"
        assert span["status_code"] == 500
        assert span["error_type"] == "RuntimeError"
        assert span["error_message"] == "kaboom"
        assert span["span_events"][0]["name"] == "exception"
        assert sink.events[0]["payload"]["status_code"] == 500
        assert sink.events[0]["payload"]["error"] == "RuntimeError"

    def test_a_5xx_answer_marks_the_span_failed(self, sink: RecordingSink) -> None:
        """A handled 503 is an error span; a 404 is not."""
        app = build_app(sink)
        call(app, "/unavailable")
        call(app, "/users/1", method="DELETE")  # 405: a client error leaves the status unset
        assert [(span["status_code"], span["status"]) for span in sink.spans] == [(503, "error"), (405, "unset")]

    def test_a_failing_sink_does_not_fail_the_request(self) -> None:
        """A sink that raises costs the telemetry, not the response."""

        class BrokenSink(RecordingSink):
            def record_span(self, span: Any) -> None:
                raise OSError("disk full")

        assert call(build_app(BrokenSink()), "/users/1").status_code == 200

    def test_the_client_and_the_recording_sink_are_sinks(self, make_client: Callable[..., TelemetryClient]) -> None:
        """TelemetryClient and RecordingSink both satisfy the TelemetrySink protocol; the middleware needs exactly one."""
        assert isinstance(make_client(), TelemetrySink)
        assert isinstance(RecordingSink(), TelemetrySink)
        with pytest.raises(TypeError):
            TelemetryMiddleware(FastAPI(), service_name="web")


# Requests that exercise every field the middleware records: a user agent and an incoming trace, the user from
# request.state, an unhandled exception, a handled 5xx, a mounted app, no matching route, a method not allowed.
REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/users/zq-1", {"User-Agent": "probe/1.0", "traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"}),
    ("GET", "/me", {}),
    ("GET", "/boom", {}),
    ("GET", "/unavailable", {}),
    ("GET", "/v2/items/5", {}),
    ("GET", "/no/such/route", {}),
    ("DELETE", "/users/1", {}),
]
# Fields that differ between any two runs: fresh ids, clocks, measured durations.
VOLATILE_SPAN_FIELDS = {"span_id", "start_time", "end_time", "duration_ms", "span_events"}
VOLATILE_EVENT_FIELDS = {"event_id", "event_timestamp", "duration_ms", "trace_id", "span_id", "environment"}


def _stable(item: dict[str, Any], volatile: set[str]) -> dict[str, Any]:
    stable = {key: value for key, value in item.items() if key not in volatile}
    if "span_events" in item:  # the exception event: its name and what it says, not its time or stack
        stable["span_events"] = [
            (event["name"], event["attributes"]["exception.type"], event["attributes"]["exception.message"])
            for event in item["span_events"]
        ]
    if stable.get("trace_id") != TRACE_ID:
        stable.pop("trace_id", None)
    return stable


class TestMiddlewareThroughAClient:
    def test_the_client_sends_what_a_sink_records(self, make_client: Callable[..., TelemetryClient]) -> None:
        """For every kind of request, the span and event a TelemetryClient sends (built on its worker from the
        request's snapshot) are those the middleware hands a plain sink, field for field."""
        sink = RecordingSink()
        exporter = InMemoryExporter()
        client = make_client(exporter=exporter, environment="client-env", flush_interval_s=60)
        for target in (sink, client):
            app = build_app(target, environment="mw-env")
            for method, path, headers in REQUESTS:
                call(app, path, headers=headers, method=method)
        assert client.flush(timeout_s=5)
        spans, events = exporter.items("spans"), exporter.items("events")
        assert len(spans) == len(events) == len(sink.spans) == len(sink.events) == len(REQUESTS)
        assert [_stable(span, VOLATILE_SPAN_FIELDS) for span in spans] == [
            _stable(span, VOLATILE_SPAN_FIELDS) for span in sink.spans
        ]
        assert [_stable(event, VOLATILE_EVENT_FIELDS) for event in events] == [
            _stable({"event_id": None, "event_timestamp": None, "environment": None, **event}, VOLATILE_EVENT_FIELDS)
            for event in sink.events
        ]
        for span, event in zip(spans, events, strict=True):
            assert (event["trace_id"], event["span_id"], event["duration_ms"]) == (
                span["trace_id"],
                span["span_id"],
                span["duration_ms"],
            )
            assert (span["environment"], event["environment"]) == ("mw-env", "client-env")
        assert spans[0]["trace_id"] == TRACE_ID and spans[0]["parent_span_id"] == PARENT_SPAN_ID
        assert [span["status"] for span in spans] == ["unset", "unset", "error", "error", "unset", "unset", "unset"]
        assert client.stats == ClientStats(sent=2 * len(REQUESTS))

    def test_a_span_without_its_own_environment_takes_the_clients(self, make_client: Callable[..., TelemetryClient]) -> None:
        """With no environment on the middleware, the server span carries the client's, as the event does."""
        exporter = InMemoryExporter()
        client = make_client(exporter=exporter, environment="client-env", flush_interval_s=60)
        call(build_app(client), "/users/1")
        assert client.flush(timeout_s=5)
        assert exporter.items("spans")[0]["environment"] == exporter.items("events")[0]["environment"] == "client-env"

    def test_a_full_queue_drops_a_requests_items_one_by_one(self, make_client: Callable[..., TelemetryClient]) -> None:
        """A request is two items in the bounded queue: with room for three, three requests keep the newest three
        items (the second request's event, the third's span and event) and count three dropped."""
        exporter = InMemoryExporter()
        client = make_client(exporter=exporter, max_queue_items=3, flush_interval_s=3600)
        app = build_app(client)
        for user_id in ("1", "2", "3"):
            call(app, f"/users/{user_id}", headers={"User-Agent": f"agent-{user_id}"})
        assert client.stats.queued == 3
        assert client.flush(timeout_s=5)
        assert [event["user_agent"] for event in exporter.items("events")] == ["agent-2", "agent-3"]
        assert len(exporter.items("spans")) == 1
        assert client.stats == ClientStats(sent=3, dropped=3)

    def test_requests_are_sent_in_full_batches_of_each_kind(
        self, receiver: Receiver, make_client: Callable[..., TelemetryClient]
    ) -> None:
        """Ten requests with max_batch_items=10: the tenth span wakes the worker, and the twenty items go as one
        batch of ten spans and one of ten events, not as four half batches of the interleaved queue."""
        client = make_client(exporter=fast_exporter(receiver.url), max_batch_items=10, flush_interval_s=3600)
        app = build_app(client)
        for item_id in range(10):
            call(app, f"/v2/items/{item_id}")
        requests = receiver.wait_for(2)
        assert sorted((request.path, len(request.items)) for request in requests) == [
            ("/api/v1/events", 10),
            ("/api/v1/spans", 10),
        ]
        assert client.flush(timeout_s=5)
        assert len(receiver.requests) == 2


@pytest.fixture
def served(receiver: Receiver, make_client: Callable[..., TelemetryClient]) -> Iterator[tuple[str, TelemetryClient]]:
    """The app served by uvicorn on a free port, its middleware sending through a client to the receiver."""
    client = make_client(exporter=fast_exporter(receiver.url), service_name="web", flush_interval_s=60)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_app(client), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = 200
        while not server.started and deadline:
            thread.join(0.05)
            deadline -= 1
        assert server.started
        yield f"http://127.0.0.1:{port}", client
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


class TestMiddlewareEndToEnd:
    def test_a_served_request_reaches_the_telemetry_server_correlated(
        self, served: tuple[str, TelemetryClient], receiver: Receiver
    ) -> None:
        """Through uvicorn and a TelemetryClient: the request's event, its server span, and the span and event the
        endpoint recorded all arrive, in one trace, with the endpoint's span a child of the server span."""
        url, client = served
        response = httpx.get(f"{url}/work", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"})
        assert response.status_code == 200
        # uvicorn delivers the response before the middleware, after it, records: wait for all four items.
        wait_until(lambda: client.flush(timeout_s=1) and client.stats.sent == 4, 10, "two spans and two events")
        spans = {span["operation_name"]: span for span in receiver.items("/api/v1/spans")}
        events = {event["event_name"]: event for event in receiver.items("/api/v1/events")}
        server_span, inner_span = spans["GET /work"], spans["load-cart"]
        assert server_span["trace_id"] == inner_span["trace_id"] == TRACE_ID
        assert server_span["parent_span_id"] == PARENT_SPAN_ID
        assert inner_span["parent_span_id"] == server_span["span_id"]
        assert events["cart_loaded"]["span_id"] == inner_span["span_id"]
        assert events["http_request"]["span_id"] == server_span["span_id"]
        assert response.headers["traceparent"] == f"00-{TRACE_ID}-{server_span['span_id']}-01"
