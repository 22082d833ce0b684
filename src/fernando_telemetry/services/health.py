"""Readiness: does the database answer right now, asked with a bound the caller can rely on.

A database that hangs (its processes stopped, its host frozen) keeps connections open and its kernel still
acknowledges TCP, so neither keepalives nor ``statement_timeout`` (the frozen server enforces it) end a ping. The
ping therefore runs on a thread of its own and the caller waits for it at most ``timeout_s``; one ping at a time is
in flight, so a hung database costs one stuck thread, never one per probe. Imports storage and core.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from sqlalchemy import Engine

from fernando_telemetry.core.errors import DatabaseUnavailable, FernandoTelemetryError
from fernando_telemetry.storage.database import ping

__all__ = ["ReadinessCheck", "check_database"]


def check_database(engine: Engine, *, timeout_ms: int = 2000) -> None:
    """Raise ``DatabaseUnavailable`` unless the database answers within ``timeout_ms`` (blocking, unbounded when
    the database hangs: the server's ``/readyz`` uses ``ReadinessCheck``)."""
    ping(engine, timeout_ms=timeout_ms)


class ReadinessCheck:
    """Pings the database on a thread of its own, one ping at a time; ``pending()`` gives the ping in flight (or a
    new one) as a future that resolves to None or fails with ``DatabaseUnavailable``."""

    def __init__(self, engine: Engine, *, timeout_s: float = 2.0) -> None:
        self.timeout_s = timeout_s
        self._engine = engine
        self._lock = threading.Lock()
        self._pending: Future[None] | None = None
        self._started_s = 0.0

    def pending(self, *, now_s: float) -> tuple[Future[None], float]:
        """The ping in flight, or a new one when the last has answered; with the seconds it has been running."""
        with self._lock:
            if self._pending is None or self._pending.done():
                future: Future[None] = Future()
                threading.Thread(target=self._ping, args=(future,), name="readiness-ping", daemon=True).start()
                self._pending, self._started_s = future, now_s
            return self._pending, now_s - self._started_s

    def _ping(self, future: Future[None]) -> None:
        try:
            ping(self._engine, timeout_ms=int(self.timeout_s * 1000))
        except FernandoTelemetryError as exc:
            future.set_exception(exc)
        except Exception as exc:  # noqa: BLE001  (a pool timeout, a dropped connection: all mean "not ready")
            future.set_exception(DatabaseUnavailable(f"the database does not answer: {type(exc).__name__}: {exc}"))
        else:
            future.set_result(None)

    @staticmethod
    def not_answering(waited_s: float) -> DatabaseUnavailable:
        return DatabaseUnavailable(f"the database has not answered a ping for {waited_s:.1f} s (it may be hung); retry shortly")
