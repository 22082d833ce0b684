"""What the fault tests share: the real server as a subprocess that can be killed and started again, SDK clients
that remember which items the server acknowledged, the count of what the database holds, and the figures each
test prints (to the terminal summary and to ``reliability/results/<test>.txt``)."""

from __future__ import annotations

import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from fernando_telemetry.sdk import ExportResult, HttpExporter, TelemetryClient
from fernando_telemetry.storage.database import libpq_url

__all__ = [
    "LONG",
    "PYTHON",
    "RESULTS_DIR",
    "ROOT",
    "AckRecorder",
    "Figures",
    "IngestLoad",
    "LoadTally",
    "ServeProcess",
    "free_port",
    "median",
    "percentile",
    "stored_event_ids",
    "stored_span_ids",
    "wait_for",
]

LONG = os.environ.get("FERNANDO_TELEMETRY_RELIABILITY_LONG", "").strip().lower() in ("1", "true", "yes")
"""The long form (more rounds, longer runs): ``FERNANDO_TELEMETRY_RELIABILITY_LONG=1``."""

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PYTHON = sys.executable

# every Figures block of this run, in order, for the terminal summary
REPORTED: list[tuple[str, list[str]]] = []


class Figures:
    """The lines a test prints: collected as it runs, written to ``results/<name>.txt`` and shown at the end of
    the run whatever pytest's capture mode (``-s`` not needed)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        self.lines.append(text)
        print(text, flush=True)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cells = [[_cell(value) for value in row] for row in [header, *rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        for row in cells:
            self.line(
                "  ".join(
                    value.rjust(width) if i else value.ljust(width)
                    for i, (value, width) in enumerate(zip(row, widths, strict=True))
                )
            )

    def finish(self, outcome: str) -> None:
        header = f"{self.name} ({'long' if LONG else 'short'} form, {datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z): {outcome}"
        RESULTS_DIR.mkdir(exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)
        (RESULTS_DIR / f"{safe}.txt").write_text("\n".join([header, *self.lines]) + "\n")
        REPORTED.append((header, list(self.lines)))


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def percentile(values: Sequence[float], quantile: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Any, *, timeout_s: float, interval_s: float = 0.05, what: str = "the condition") -> float:
    """Poll ``condition()`` until it is true; the seconds it took. AssertionError after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(interval_s)
    return time.monotonic() - started


# -- the server -----------------------------------------------------------------------------------


class ServeProcess:
    """``python -m fernando_telemetry serve`` on a fixed port against ``database_url``: started, killed with
    SIGKILL and started again as often as a test likes. Output goes to ``workdir/serve.log`` (appended)."""

    def __init__(
        self, database_url: str, workdir: Path, *, env: Mapping[str, str] | None = None, port: int | None = None
    ) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "serve.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FERNANDO_TELEMETRY_DATABASE_URL")},
            "DATABASE_URL": database_url,
            "FERNANDO_TELEMETRY_DATA_DIR": str(workdir / "data"),
            "FERNANDO_TELEMETRY_HOST_METRICS_INTERVAL_S": "0",
            **(env or {}),
        }
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self, *, timeout_s: float = 90.0) -> float:
        """Start it and wait until ``/readyz`` answers 200; the seconds that took."""
        assert self.popen is None or self.popen.poll() is not None, "already running"
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"\n==== start {self.starts + 1} at {datetime.now(UTC).isoformat()}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "fernando_telemetry",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--otlp-grpc-port",
                    "0",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        with httpx.Client(timeout=2.0) as probe:
            while True:
                if self.popen.poll() is not None:
                    raise AssertionError(f"serve exited with {self.popen.returncode}:\n{self.log_tail()}")
                try:
                    if probe.get(f"{self.base_url}/readyz").status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                if time.monotonic() - started > timeout_s:
                    self.kill()
                    raise AssertionError(f"serve did not become ready in {timeout_s:.0f} s:\n{self.log_tail()}")
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as a crash or the OOM killer would do it."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(30)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_count(self, needle: str) -> int:
        try:
            return self.log_path.read_text(errors="replace").count(needle)
        except OSError:
            return 0


# -- SDK clients that remember what was acknowledged ----------------------------------------------


class AckRecorder:
    """An ``Exporter`` around the SDK's own ``HttpExporter``: it passes every batch on unchanged and remembers
    the ids of the items of each batch the server acknowledged with a 2xx (``ExportResult.sent``)."""

    def __init__(self, inner: HttpExporter, *, id_field: str = "event_id") -> None:
        self._inner = inner
        self._id_field = id_field
        self._lock = threading.Lock()
        self.acked: list[str] = []
        self.failed: list[str] = []
        self.partial_batches = 0
        self.batches = 0
        self.ack_times: list[float] = []

    def export(self, kind: str, items: Sequence[Mapping[str, Any]]) -> ExportResult:
        result = self._inner.export(kind, items)
        ids = [str(item.get(self._id_field)) for item in items]
        with self._lock:
            self.batches += 1
            if result.sent == len(items):
                self.acked.extend(ids)
                self.ack_times.append(time.monotonic())
            elif result.sent == 0:
                self.failed.extend(ids)
            else:  # some items rejected one by one: which ones is in the answer, not in the result
                self.partial_batches += 1
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def last_ack_at(self) -> float:
        with self._lock:
            return self.ack_times[-1] if self.ack_times else 0.0

    def first_ack_since(self, moment: float) -> float | None:
        with self._lock:
            later = [t for t in self.ack_times if t >= moment]
        return min(later) if later else None


@dataclass
class LoadTally:
    """What became of the items of an ``IngestLoad``, from the clients' side and from the database."""

    recorded: int
    acked: set[str]
    acked_total: int
    stored_rows: int
    stored: dict[str, int]
    failed: int
    dropped: int
    rejected: int
    retries: int
    partial_batches: int

    @property
    def duplicates(self) -> int:
        """Rows beyond the first of an id."""
        return sum(count - 1 for count in self.stored.values() if count > 1)

    @property
    def lost(self) -> list[str]:
        """Acknowledged ids the database does not hold."""
        return sorted(i for i in self.acked if i not in self.stored)

    @property
    def stored_not_acked(self) -> int:
        """Committed by the server, but the client never learned it (its retries ran out): not a loss."""
        return sum(1 for i in self.stored if i not in self.acked)

    def with_stored(self, stored: dict[str, int]) -> LoadTally:
        self.stored = stored
        self.stored_rows = sum(stored.values())
        return self

    def figures(self) -> list[tuple[str, Any]]:
        return [
            ("items recorded (sent to the SDK)", self.recorded),
            ("acknowledged (2xx)", self.acked_total),
            ("acknowledged, distinct ids", len(self.acked)),
            ("stored rows", self.stored_rows),
            ("stored, distinct ids", len(self.stored)),
            ("duplicates (rows beyond one per id)", self.duplicates),
            ("lost (acknowledged, not stored)", len(self.lost)),
            ("stored, not acknowledged", self.stored_not_acked),
            ("SDK failed (batch given up)", self.failed),
            ("SDK dropped (queue full)", self.dropped),
            ("SDK rejected (per item)", self.rejected),
            ("SDK retries", self.retries),
        ]


@dataclass
class _LoadClient:
    client: TelemetryClient
    recorder: AckRecorder
    recorded: int = 0


@dataclass
class IngestLoad:
    """``clients`` threads, each with its own ``TelemetryClient`` (an ``HttpExporter`` wrapped in an ``AckRecorder``),
    recording ``rate_per_client`` events (``kind="events"``) or spans (``kind="spans"``) a second with client-chosen
    ids until ``stop()``."""

    endpoint: str
    api_key: str
    environment: str
    user_id: str | None = None
    clients: int = 4
    rate_per_client: float = 250.0
    max_batch_items: int = 200
    flush_interval_s: float = 0.2
    timeout_s: float = 5.0
    max_retry_elapsed_s: float = 180.0
    kind: str = "events"
    _clients: list[_LoadClient] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        for number in range(self.clients):
            recorder = AckRecorder(
                HttpExporter(
                    self.endpoint,
                    self.api_key,
                    timeout_s=self.timeout_s,
                    max_retry_elapsed_s=self.max_retry_elapsed_s,
                    initial_backoff_s=0.1,
                    max_backoff_s=1.0,
                ),
                id_field="span_id" if self.kind == "spans" else "event_id",
            )
            client = TelemetryClient(
                self.endpoint,
                self.api_key,
                service_name=f"reliability-{number}",
                environment=self.environment,
                max_queue_items=1_000_000,
                max_batch_items=self.max_batch_items,
                flush_interval_s=self.flush_interval_s,
                timeout_s=self.timeout_s,
                exporter=recorder,
            )
            self._clients.append(_LoadClient(client, recorder))
        for number, load_client in enumerate(self._clients):
            thread = threading.Thread(target=self._produce, args=(number, load_client), name=f"load-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _produce(self, number: int, load_client: _LoadClient) -> None:
        rng = random.Random(number)
        tick_s = 0.02
        per_tick = self.rate_per_client * tick_s
        owed = 0.0
        next_tick = time.monotonic()
        while not self._stop.is_set():
            owed += per_tick
            while owed >= 1.0:
                owed -= 1.0
                if self.kind == "spans":
                    self._record_span(rng, number, load_client)
                    continue
                load_client.client.track_event(
                    "reliability_probe",
                    event_type="user_action",
                    user_id=self.user_id if rng.random() < 0.5 else None,
                    session_id=f"s-{number}",
                    payload={"client": number, "n": load_client.recorded},
                    event_id=str(uuid.uuid4()),
                )
                load_client.recorded += 1
            next_tick += tick_s
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def _record_span(self, rng: random.Random, number: int, load_client: _LoadClient) -> None:
        span: dict[str, Any] = {
            "trace_id": f"{rng.getrandbits(128):032x}",
            "span_id": f"{rng.getrandbits(64):016x}",
            "operation_name": "GET /reliability/probe",
            "span_kind": "server",
            "start_time": datetime.now(UTC).isoformat(),
            "duration_ms": 1.0 + rng.random() * 50.0,
            "attributes": {"client": number, "n": load_client.recorded},
        }
        if self.user_id is not None and rng.random() < 0.5:
            span["user_id"] = self.user_id
        load_client.client.record_span(span)
        load_client.recorded += 1

    @property
    def acked_count(self) -> int:
        return sum(len(c.recorder.acked) for c in self._clients)

    def last_ack_at(self) -> float:
        return max((c.recorder.last_ack_at() for c in self._clients), default=0.0)

    def first_ack_since(self, moment: float) -> float | None:
        times = [t for c in self._clients if (t := c.recorder.first_ack_since(moment)) is not None]
        return min(times) if times else None

    def stop(self, *, flush_timeout_s: float = 200.0) -> None:
        """Stop recording, then let every client send what it holds (retrying as long as it may) and shut down."""
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        deadline = time.monotonic() + flush_timeout_s
        for load_client in self._clients:
            load_client.client.flush(max(1.0, deadline - time.monotonic()))
        for load_client in self._clients:
            load_client.client.shutdown(max(1.0, deadline - time.monotonic()))

    def tally(self, database_url: str) -> LoadTally:
        stats = [c.client.stats for c in self._clients]
        acked = [i for c in self._clients for i in c.recorder.acked]
        return LoadTally(
            recorded=sum(c.recorded for c in self._clients),
            acked=set(acked),
            acked_total=len(acked),
            stored_rows=0,
            stored={},
            failed=sum(s.failed for s in stats),
            dropped=sum(s.dropped for s in stats),
            rejected=sum(s.rejected for s in stats),
            retries=sum(s.retries for s in stats),
            partial_batches=sum(c.recorder.partial_batches for c in self._clients),
        ).with_stored((stored_span_ids if self.kind == "spans" else stored_event_ids)(database_url, self.environment))


def stored_event_ids(database_url: str, environment: str) -> dict[str, int]:
    """``event_id -> rows`` of ``telemetry_events`` with this environment."""
    with psycopg.connect(libpq_url(database_url)) as connection:
        rows = connection.execute(
            "SELECT event_id::text, count(*) FROM telemetry_events WHERE environment = %s GROUP BY event_id", (environment,)
        ).fetchall()
    return {event_id: count for event_id, count in rows}


def stored_span_ids(database_url: str, environment: str) -> dict[str, int]:
    """``span_id -> rows`` of ``traces`` with this environment."""
    with psycopg.connect(libpq_url(database_url)) as connection:
        rows = connection.execute(
            "SELECT span_id, count(*) FROM traces WHERE environment = %s GROUP BY span_id", (environment,)
        ).fetchall()
    return {span_id: count for span_id, count in rows}


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
