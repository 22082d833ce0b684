"""ASGI apps served by uvicorn on a background thread each, on a socket bound before anything else starts.

Binding first turns a taken port into one clear error before the database starts; serving on a thread
leaves the main thread to wait for Ctrl-C or SIGTERM and to stop everything in order.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from typing import Any

import uvicorn

from fernando_telemetry.core.errors import InvalidInput

__all__ = ["ServerThread", "bind", "connect_host"]

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port); ``InvalidInput`` when that cannot be had."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        return socket.create_server(address[:2], family=family)
    except socket.gaierror as exc:
        raise InvalidInput(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise InvalidInput(
                f"port {port} on {host} is already in use: stop what uses it or pick another with --port"
            ) from None
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def connect_host(host: str) -> str:
    """The address a local client uses to reach a server bound to ``host`` (a wildcard means loopback)."""
    return _WILDCARDS.get(host, host)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class ServerThread:
    """One app under uvicorn on its own thread; ``start`` returns once it accepts connections, ``stop`` once it is gone."""

    def __init__(self, app: Any, *, sock: socket.socket, name: str, log_level: str = "warning") -> None:
        self.name = name
        self._socket = sock
        host, port = sock.getsockname()[:2]
        self.port = int(port)
        self.url = f"http://{_url_host(connect_host(host))}:{self.port}"
        config = uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5, access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"demo-http-{name}", daemon=True)
        self._failure: BaseException | None = None

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # SystemExit from a failed lifespan start, or anything else: start() reports it
            self._failure = exc

    def start(self, timeout_s: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.name} server did not start: {self._failure!r}")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
