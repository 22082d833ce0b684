"""The uvicorn configuration ``serve`` runs the app with: keep-alive, header size and a header deadline.

Uvicorn's h11 protocol bounds an idle keep-alive connection but not one that never finishes its request
headers (data arriving cancels its keep-alive timer); ``HeaderDeadlineH11Protocol`` closes a connection whose
request line and headers are not complete within ``header_timeout_s`` of the connection (or of the previous
response). Entry-point layer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from fernando_telemetry.settings import Settings

__all__ = ["HeaderDeadlineH11Protocol", "uvicorn_config"]

logger = logging.getLogger(__name__)


class HeaderDeadlineH11Protocol(H11Protocol):
    """H11Protocol that closes a connection the server has been waiting on for ``header_timeout_s``: request
    headers not complete since the connection opened or the previous response ended, or a request body still
    trickling in after its response was sent. The deadline is not reset by data arriving, so a client sending
    a byte now and then gains nothing."""

    header_timeout_s: float = 10.0

    # the narrowing uvicorn's H11Protocol makes too (the event loop hands a stream protocol a Transport)
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._update_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._update_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._update_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _waiting_on_client(self) -> bool:
        no_request_running = self.cycle is None or self.cycle.response_complete
        return no_request_running and self.conn.their_state in (h11.IDLE, h11.SEND_BODY)

    def _update_header_deadline(self) -> None:
        if not self._waiting_on_client():
            self._cancel_header_deadline()
        elif self._header_deadline is None and self.header_timeout_s > 0:
            self._header_deadline = self.loop.call_later(self.header_timeout_s, self._header_deadline_passed)

    def _cancel_header_deadline(self) -> None:
        handle = getattr(self, "_header_deadline", None)
        if handle is not None:
            handle.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if not self._waiting_on_client() or self.transport.is_closing():
            return
        if self.conn.their_state is not h11.IDLE or self.conn.trailing_data[0]:  # part of a request came, never the rest
            client = f"{self.client[0]}:{self.client[1]} " if self.client else ""
            logger.info("%sclosed: request incomplete after %gs", client, self.header_timeout_s)
        self.transport.close()


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn config for ``app`` under ``settings``: host, port, keep-alive and header bounds."""
    protocol = type("BoundedH11Protocol", (HeaderDeadlineH11Protocol,), {"header_timeout_s": settings.http_header_timeout_s})
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "lifespan": "on",
        "http": protocol,
        "timeout_keep_alive": settings.http_keep_alive_timeout_s,
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)
