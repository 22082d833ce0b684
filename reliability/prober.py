"""The fault tests' prober: one thread per route (ingest one event, read events, ``/readyz``, one OTLP/JSON span,
optionally ``/healthz``), each asking every 50 ms and keeping every answer with its latency, so a route that hangs
delays only its own probes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from tests.ingest_fixtures import Tenant

__all__ = ["PROBE_ENVIRONMENT", "Answer", "Prober", "otlp_span"]

PROBE_ENVIRONMENT = "reliability-probe"
"""The ``environment`` of the events the prober ingests (how the test finds them in the database)."""


def otlp_span() -> dict[str, object]:
    """One OTLP/JSON span of a fresh trace, as an OpenTelemetry exporter sends it."""
    now_ns = time.time_ns()
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "reliability-probe"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": uuid.uuid4().hex, "spanId": uuid.uuid4().hex[:16], "name": "probe", "kind": 2,
            "startTimeUnixNano": str(now_ns - 1_000_000), "endTimeUnixNano": str(now_ns),
        }]}],
    }]}  # fmt: skip


@dataclass(frozen=True)
class Answer:
    at: float
    route: str
    status: int | None
    """None: no HTTP answer at all (connection refused or reset, timeout)."""
    retry_after: str | None
    code: str | None
    event_id: str | None = None
    latency_s: float = 0.0


class Prober:
    """Every 50 ms, one request on each of ``routes`` (``ingest``, ``read``, ``readyz``, ``otlp``, ``healthz``), each
    route on its own thread with its own client (timeout ``timeout_s``); every answer kept."""

    def __init__(
        self,
        base_url: str,
        tenant: Tenant,
        *,
        routes: Sequence[str] = ("ingest", "read", "readyz", "otlp"),
        timeout_s: float = 10.0,
    ) -> None:
        self._base_url = base_url
        self._tenant = tenant
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        self._threads = [
            threading.Thread(target=self._run, args=(route,), name=f"probe-{route}", daemon=True) for route in routes
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 20)

    def _run(self, route: str) -> None:
        ingest = {"Authorization": f"Bearer {self._tenant.ingest_key}"}
        read = {"Authorization": f"Bearer {self._tenant.read_key}"}
        with httpx.Client(base_url=self._base_url, timeout=self.timeout_s) as http:
            while not self._stop.is_set():
                if route == "ingest":
                    event_id = str(uuid.uuid4())
                    event = {
                        "event_id": event_id,
                        "event_type": "system_event",
                        "event_name": "probe",
                        "environment": PROBE_ENVIRONMENT,
                        "event_timestamp": datetime.now(UTC).isoformat(),
                    }
                    self._ask(http, route, "POST", "/api/v1/events", headers=ingest, json={"events": [event]}, event_id=event_id)
                elif route == "read":
                    self._ask(http, route, "GET", "/api/v1/events", headers=read, params={"limit": 1})
                elif route == "otlp":
                    self._ask(http, route, "POST", "/v1/traces", headers=ingest, json=otlp_span())
                else:
                    self._ask(http, route, "GET", f"/{route}")
                self._stop.wait(0.05)

    def _ask(
        self, http: httpx.Client, route: str, method: str, path: str, *, event_id: str | None = None, **kwargs: object
    ) -> None:
        at = time.monotonic()
        try:
            response = http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            answer = Answer(at, route, None, None, type(exc).__name__, event_id, time.monotonic() - at)
        else:
            code = None
            if response.status_code >= 400:
                try:
                    body = response.json()
                    code = body["error"]["code"] if "error" in body else f"google.rpc.Code {body['code']}"
                except (ValueError, KeyError, TypeError):
                    code = response.text[:80]
            answer = Answer(
                at, route, response.status_code, response.headers.get("retry-after"), code, event_id, time.monotonic() - at
            )
        with self._lock:
            self.answers.append(answer)

    def between(self, start: float, end: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if start <= a.at <= end]

    def first_ok_after(self, moment: float, route: str) -> float | None:
        with self._lock:
            return next((a.at for a in self.answers if a.at >= moment and a.route == route and a.status == 200), None)
