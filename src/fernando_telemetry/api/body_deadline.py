"""Request bodies that stall or stop: a pure ASGI middleware that ends a body whose next chunk does not arrive
within ``idle_timeout_s`` with ``408 Request Timeout`` (connection closed), and turns a client that goes away
mid-body into one log line instead of tracebacks. Imports nothing of the project.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["BodyDeadline"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyDeadline:
    """Bounds the wait for each chunk of a request body; 0 turns the bound off (disconnects are still one line)."""

    def __init__(self, app: ASGIApp, *, idle_timeout_s: float = 30.0) -> None:
        self.app = app
        self.idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = _Exchange()

        async def bounded_receive() -> Message:
            if state.stalled or state.disconnected:
                return {"type": "http.disconnect"}
            if state.body_complete or self.idle_timeout_s <= 0:
                message = await receive()  # after the body, receive() waits for a disconnect: no bound there
            else:
                try:
                    message = await asyncio.wait_for(receive(), self.idle_timeout_s)
                except TimeoutError:
                    state.stalled = True
                    return {"type": "http.disconnect"}
            if message["type"] == "http.request" and not message.get("more_body", False):
                state.body_complete = True
            elif message["type"] == "http.disconnect" and not state.body_complete:
                state.disconnected = True
            return message

        async def guarded_send(message: Message) -> None:
            if state.stalled:
                return  # the 408 below answers instead of whatever the route makes of the missing body
            if message["type"] == "http.response.start":
                state.response_started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception as exc:
            if not (state.stalled or state.disconnected):
                raise
            # the route failed only because its body never came: not the server's error
            logger.debug("request body ended early: %s: %s", type(exc).__name__, exc)
        if state.stalled and not state.response_started:
            logger.warning(
                "%s %s: the request body stalled for %gs; answered 408 and closed",
                scope["method"],
                scope["path"],
                self.idle_timeout_s,
            )
            await _send_timeout(send, self.idle_timeout_s)
        elif state.disconnected:
            client = scope.get("client")
            where = f" from {client[0]}" if client else ""
            logger.info("%s %s%s: the client went away before its body ended", scope["method"], scope["path"], where)


class _Exchange:
    __slots__ = ("body_complete", "disconnected", "response_started", "stalled")

    def __init__(self) -> None:
        self.body_complete = False
        self.disconnected = False
        self.response_started = False
        self.stalled = False


async def _send_timeout(send: Send, idle_timeout_s: float) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "request_timeout",
                "message": f"the request body stopped arriving for {idle_timeout_s:g} s; send it again",
                "details": [],
            }
        }
    ).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 408, "headers": headers})
    await send({"type": "http.response.body", "body": body})
