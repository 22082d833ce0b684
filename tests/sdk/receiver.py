"""A real HTTP receiver for the SDK tests: a threaded HTTP/1.1 server on 127.0.0.1 that records every request
and answers as the test scripts it (status, headers, body, or hold the request until released)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ReceivedRequest", "Receiver", "Reply", "wait_until"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body=None`` on a 2xx is the server's usual answer: every item accepted."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    hold: bool = False
    """Keep the connection open without answering until ``Receiver.release()`` (or close)."""


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    raw_body: bytes
    json: Any
    received_at: float
    """``time.monotonic()`` when the request was read."""

    @property
    def items(self) -> list[dict[str, Any]]:
        """The one list of the body (``events``, ``metrics`` or ``spans``)."""
        (items,) = self.json.values()
        return items


class Receiver:
    """Start with ``Receiver()``; ``url`` is its base URL; ``close()`` stops it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._requests: list[ReceivedRequest] = []
        self._released = threading.Event()
        self.holding = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, client_address: None  # a client that gave up is not an error
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order; after them, the usual 200."""
        with self._lock:
            self._script.extend(replies)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def items(self, path: str | None = None) -> list[dict[str, Any]]:
        """Every item received (on ``path``), in arrival order."""
        return [item for request in self.requests if path is None or request.path == path for item in request.items]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[ReceivedRequest]:
        """Wait until at least ``count`` requests arrived; fail the test if they do not."""
        wait_until(lambda: len(self.requests) >= count, timeout_s, f"{count} requests")
        return self.requests

    def release(self) -> None:
        """Let every held request (and any later one scripted to hold) answer."""
        self._released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def _record(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            return self._script.popleft() if self._script else Reply()


def wait_until(condition: Any, timeout_s: float = 10.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.01)


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            text = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
            try:
                document = json.loads(text)
            except ValueError:
                document = None
            request = ReceivedRequest("POST", self.path, headers, raw, document, time.monotonic())
            reply = receiver._record(request)
            if reply.hold:
                with receiver._lock:
                    receiver.holding += 1
                receiver._released.wait()
                with receiver._lock:
                    receiver.holding -= 1
            body = reply.body
            if body is None and 200 <= reply.status < 300 and isinstance(document, dict):
                body = {"accepted": len(request.items), "rejected": []}
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
