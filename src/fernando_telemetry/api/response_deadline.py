"""A bound on the wait for a response: a pure ASGI middleware that answers ``503`` with ``Retry-After`` when a route
has not started its response within ``timeout_s`` of the request (or of the last chunk of its body), whatever the
server waits for (in practice a database that hangs); time the route spends waiting for the client's body is not
counted (``BodyDeadline`` bounds that with a 408).

A frozen PostgreSQL keeps its connections open and its kernel still acknowledges TCP: keepalives never fire, and
``statement_timeout``/``lock_timeout`` are enforced by the server that is frozen, so a query on such a connection
waits until the database wakes up, and libpq has no client-side query timeout. Rather than let every client time out
(no answer, no Retry-After), the request is answered here; the route keeps running on its worker thread (a blocking
call cannot be interrupted) and its late answer is dropped. A route that was not acknowledged (no 2xx) may still
complete: ingest retries are idempotent for items that carry their id. Imports nothing of the project but google.rpc.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from google.rpc import code_pb2, status_pb2

__all__ = ["ResponseDeadline"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RETRY_AFTER_S = 2
_OTLP_PREFIX = "/v1/"


class ResponseDeadline:
    """Answers 503 + Retry-After when a request's response has not started within ``timeout_s`` (0: no bound);
    ``timeouts_by_path`` gives routes, and the paths under them, a bound of their own (user SQL and backtests, bounded
    by their own statement and wall-time limits)."""

    def __init__(self, app: ASGIApp, *, timeout_s: float = 8.0, timeouts_by_path: Mapping[str, float] | None = None) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.timeouts_by_path = dict(timeouts_by_path or {})
        # the routes still running after their answer was given: kept so the event loop does not lose them
        self._late: set[asyncio.Task[None]] = set()

    def _timeout_for(self, path: str) -> float:
        # a route's own bound applies to the path and everything under it (``/ui/rules`` covers ``/ui/rules/7``)
        for prefix, timeout_s in self.timeouts_by_path.items():
            if path == prefix or path.startswith(prefix + "/"):
                return timeout_s
        return self.timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        timeout_s = self._timeout_for(scope.get("path", "")) if scope["type"] == "http" else 0
        if timeout_s <= 0:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        # the bound runs from the request's arrival or from the last chunk of its body, and never while the route
        # waits for more of a body (a slow or stalled upload is the client's wait, bounded by BodyDeadline's 408):
        # it measures the server's wait only
        state: dict[str, Any] = {
            "started": False,
            "answered": False,
            "last_input_at": loop.time(),
            "awaiting_body": False,
            "body_complete": False,
        }

        async def noted_receive() -> Message:
            state["awaiting_body"] = not state["body_complete"]
            try:
                message = await receive()
            finally:
                state["awaiting_body"] = False
            if message["type"] == "http.request":
                state["last_input_at"] = loop.time()
                state["body_complete"] = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            if state["answered"]:
                return  # the 503 below already answered: the route's late response goes nowhere
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        route = asyncio.ensure_future(self.app(scope, noted_receive, guarded_send))
        while True:
            left_s = state["last_input_at"] + timeout_s - loop.time()
            if left_s > 0:
                await asyncio.wait({route}, timeout=left_s)
            if route.done() or state["started"]:
                await route  # finished, or streaming its response already: the bound is on the wait, not the transfer
                return
            if state["awaiting_body"]:
                state["last_input_at"] = loop.time()  # the client owes the next chunk: the bound starts again after it
            elif state["last_input_at"] + timeout_s <= loop.time():
                break
        state["answered"] = True
        self._late.add(route)
        route.add_done_callback(self._finished_late)
        logger.warning(
            "%s %s: no response within %gs (is the database hung?); answered 503, the route finishes on its own",
            scope["method"],
            scope["path"],
            timeout_s,
        )
        await _send_unavailable(send, scope, timeout_s)

    def _finished_late(self, route: asyncio.Task[None]) -> None:
        self._late.discard(route)
        if not route.cancelled() and route.exception() is not None:
            logger.info("a route answered late failed: %s: %s", type(route.exception()).__name__, route.exception())


async def _send_unavailable(send: Send, scope: Scope, timeout_s: float) -> None:
    message = f"no response within {timeout_s:g} s (the database may be hung or overloaded); retry after Retry-After"
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    if scope["path"].startswith(_OTLP_PREFIX):
        # OTLP/HTTP answers failures with a google.rpc.Status in the request's encoding
        pb2_status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message)
        if headers.get(b"content-type", b"").split(b";")[0].strip() == b"application/x-protobuf":
            body, media = pb2_status.SerializeToString(), b"application/x-protobuf"
        else:
            body, media = json.dumps({"code": code_pb2.UNAVAILABLE, "message": message}).encode(), b"application/json"
    else:
        body = json.dumps({"error": {"code": "response_timeout", "message": message, "details": []}}).encode()
        media = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", media),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_S).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
