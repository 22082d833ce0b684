"""Soak: sustained ingest at half the measured maximum for a long while, the scheduler busy, memory watched.

It starts the real server (``python -m fernando_telemetry serve``, a subprocess) with its scheduler running every
job often (rollups every 10 s, KPIs every 30 s, retention and partition upkeep every 60 s, host metrics every 5 s),
measures the maximum ingest rate briefly (``--measure-s`` of closed-loop batches from ``--clients`` clients) unless
``--rate`` is given, then holds half of it for ``--duration`` seconds with paced batches, and prints acked/s,
p50/p99 ack latency, the server's RSS at start and end (psutil), its growth over the second half, errors, the
scheduler's runs and failures, and acked vs stored rows.

    .venv/bin/python bench/soak.py [--duration 600] [--rate EVENTS_PER_S] [--clients 4] [--batch 500] [--database-url URL]
    .venv/bin/python bench/soak.py --duration 60          # the CI form

Memory must not grow without bound: the run is flagged ``GROWING`` when the server's RSS rose by more than
``--growth-limit-mb`` (default 16 MB) or 5% over the second half of the soak, after the start-up and the
measurement have warmed every cache and pool. Exit code 1 on errors or a GROWING flag.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import psycopg

# the workload and process helpers of the HTTP ingest bench, so both send the same kind of events
from ingest_http import Process, cli, database, event_items, free_port, make_users

from fernando_telemetry.storage.database import libpq_url

PYTHON = sys.executable
ENVIRONMENT = "bench-soak"
LICENSE_PLAN = "pro"
BUSY_SCHEDULER = {
    "FERNANDO_TELEMETRY_ROLLUP_REFRESH_INTERVAL_S": "10",
    "FERNANDO_TELEMETRY_KPI_INTERVAL_S": "30",
    "FERNANDO_TELEMETRY_RETENTION_INTERVAL_S": "60",
    "FERNANDO_TELEMETRY_PARTITION_UPKEEP_INTERVAL_S": "60",
    "FERNANDO_TELEMETRY_HOST_METRICS_INTERVAL_S": "5",
}
MB = 1024 * 1024


@dataclass
class Totals:
    """What the clients saw; updated under ``lock`` by every client thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked_rows: int = 0
    requests: int = 0
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    late_sends: int = 0

    def record(self, latency_s: float, rows: int, problem: str | None) -> None:
        with self.lock:
            self.requests += 1
            self.latencies_s.append(latency_s)
            if problem is None:
                self.acked_rows += rows
            else:
                self.errors[problem] = self.errors.get(problem, 0) + 1


class Bodies:
    """Request bodies of ``batch`` events made from a pool of realistic items, each with a fresh event_id and a
    timestamp of now: the rows land in the current hour, where the rollups and KPIs work."""

    def __init__(self, pool: list[dict[str, Any]], batch: int) -> None:
        self._pool = pool
        self._batch = batch
        self._next = 0
        self._lock = threading.Lock()

    def next(self) -> bytes:
        with self._lock:
            start = self._next
            self._next = (self._next + self._batch) % len(self._pool)
        stamp = datetime.now(UTC).isoformat()
        items = []
        for offset in range(self._batch):
            item = dict(self._pool[(start + offset) % len(self._pool)])
            item["event_id"] = str(uuid.uuid4())
            item["event_timestamp"] = stamp
            items.append(item)
        return orjson.dumps({"events": items})


def send(http: httpx.Client, url: str, body: bytes, batch: int, totals: Totals) -> None:
    started = time.perf_counter()
    problem = None
    try:
        response = http.post(url, content=body)
        if response.status_code != 200:
            problem = f"HTTP {response.status_code} {response.text[:80]}"
        else:
            answer = response.json()
            if answer.get("accepted") != batch or answer.get("rejected"):
                problem = f"accepted {answer.get('accepted')} of {batch}"
    except httpx.HTTPError as exc:
        problem = type(exc).__name__
    totals.record(time.perf_counter() - started, batch, problem)


def closed_loop(url: str, headers: dict[str, str], bodies: Bodies, *, clients: int, batch: int, seconds: float) -> Totals:
    """Every client sends its next batch as soon as the last one is acked, for ``seconds``."""
    totals = Totals()
    deadline = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(headers=headers, timeout=120.0) as http:
            while time.monotonic() < deadline:
                send(http, url, bodies.next(), batch, totals)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals


def paced(
    url: str, headers: dict[str, str], bodies: Bodies, *, clients: int, batch: int, rate: float, seconds: float, on_tick: Any
) -> Totals:
    """Batches due every ``batch / rate`` seconds (open loop: a slow answer does not delay the schedule), sent by
    ``clients`` threads; a batch sent more than one interval late is counted ``late``."""
    totals = Totals()
    interval_s = batch / rate
    started = time.monotonic()
    deadline = started + seconds
    schedule = {"next": 0}
    schedule_lock = threading.Lock()

    def client() -> None:
        with httpx.Client(headers=headers, timeout=120.0) as http:
            while True:
                with schedule_lock:
                    number = schedule["next"]
                    schedule["next"] += 1
                due = started + number * interval_s
                if due >= deadline:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -interval_s:
                    with totals.lock:
                        totals.late_sends += 1
                send(http, url, bodies.next(), batch, totals)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        on_tick(time.monotonic() - started, totals)
        for thread in threads:
            thread.join(timeout=0.5)
    return totals


@dataclass
class Sample:
    at_s: float
    rss_bytes: int
    acked_rows: int
    errors: int


def percentile_ms(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000 if ordered else float("nan")


def slope_mb_per_min(samples: list[Sample]) -> float:
    if len(samples) < 3:
        return 0.0
    xs = [s.at_s / 60 for s in samples]
    ys = [s.rss_bytes / MB for s in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / denominator if denominator else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of sustained ingest (default 600; CI: 60)")
    parser.add_argument("--rate", type=float, default=None, help="events/s to hold (default: half the measured maximum)")
    parser.add_argument("--measure-s", type=float, default=10.0, help="seconds of the closed-loop maximum measurement")
    parser.add_argument("--clients", type=int, default=4, help="HTTP clients (threads), for both phases")
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--sample-s", type=float, default=2.0, help="seconds between two readings of the server's memory")
    parser.add_argument("--report-s", type=float, default=None, help="seconds between two progress lines (default duration/10)")
    parser.add_argument("--growth-limit-mb", type=float, default=16.0, help="RSS growth over the second half flagged GROWING")
    parser.add_argument("--default-scheduler", action="store_true", help="the scheduler's default intervals instead of busy ones")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="an existing PostgreSQL (default: a durable embedded PostgreSQL 18 in a temporary directory)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file as JSON")
    args = parser.parse_args(argv)
    report_s = args.report_s or max(5.0, args.duration / 10)
    workdir = Path(tempfile.mkdtemp(prefix="ft-bench-soak-"))
    scheduler_env = {} if args.default_scheduler else BUSY_SCHEDULER

    print("soak: sustained HTTP ingest at half the measured maximum, the scheduler running, the server's memory watched")
    with database(args.database_url) as (url, where, _postmaster_pid):
        env = {**os.environ, "DATABASE_URL": url, "FERNANDO_TELEMETRY_DATA_DIR": str(workdir / "data"), **scheduler_env}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = Process(
            [PYTHON, "-m", "fernando_telemetry", "serve", "--host", "127.0.0.1", "--port", str(port), "--otlp-grpc-port", "0"],
            env=env,
            log_path=workdir / "server.log",
            ready_url=f"{base}/readyz",
            name="the server",
        )
        try:
            license_id = int(cli(url, "licenses", "create", "--name", "bench soak", "--plan", LICENSE_PLAN))
            key = cli(url, "keys", "create", "--license-id", str(license_id), "--scope", "ingest", "--name", "bench soak")
            rng = random.Random(5)
            users = make_users(rng, 1_000)
            with psycopg.connect(libpq_url(url)) as connection:
                with connection.cursor().copy("COPY users (user_id, email, license_id) FROM STDIN") as copy:
                    for user_id in users.ids:
                        copy.write_row((user_id, f"user{user_id}@example.com", license_id))
                version = connection.execute("SHOW server_version").fetchone()[0]
            bodies = Bodies(event_items(rng, 20_000, now=datetime.now(UTC), users=users, environment=ENVIRONMENT), args.batch)
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            events_url = f"{base}/api/v1/events"
            scheduler_text = (
                "default intervals"
                if args.default_scheduler
                else ", ".join(
                    f"{name.removeprefix('FERNANDO_TELEMETRY_').lower()}={value}" for name, value in BUSY_SCHEDULER.items()
                )
            )
            print(f"database: PostgreSQL {version}, {where}")
            print(f"server: python -m fernando_telemetry serve (one uvicorn process); scheduler: {scheduler_text}")
            print(
                f"clients: {args.clients} threads, {args.batch} events per POST /api/v1/events, a fresh event_id and now as timestamp"
            )

            warm = closed_loop(events_url, headers, bodies, clients=args.clients, batch=args.batch, seconds=2.0)
            acked_before = warm.acked_rows
            if args.rate:
                rate, measured = args.rate, None
                print(f"rate: {rate:,.0f} events/s (--rate)")
            else:
                measured_totals = closed_loop(
                    events_url, headers, bodies, clients=args.clients, batch=args.batch, seconds=args.measure_s
                )
                measured = measured_totals.acked_rows / args.measure_s
                acked_before += measured_totals.acked_rows
                rate = measured / 2
                print(
                    f"maximum: {measured:,.0f} events/s acked over {args.measure_s:.0f} s closed loop "
                    f"(p50 {percentile_ms(measured_totals.latencies_s, 0.5):.0f} ms, errors {sum(measured_totals.errors.values())}); "
                    f"holding half: {rate:,.0f} events/s"
                )

            server_process = psutil.Process(server.pid)
            samples: list[Sample] = []
            last = {"sample": -1e9, "report": 0.0, "acked": 0}
            log_mark = server.log_path.stat().st_size
            print(f"{'time s':>7} {'acked/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'RSS MB':>7} {'errors':>6}")

            def on_tick(elapsed_s: float, totals: Totals) -> None:
                if elapsed_s - last["sample"] >= args.sample_s:
                    last["sample"] = elapsed_s
                    with totals.lock:
                        samples.append(
                            Sample(elapsed_s, server_process.memory_info().rss, totals.acked_rows, sum(totals.errors.values()))
                        )
                if elapsed_s - last["report"] >= report_s:
                    with totals.lock:
                        recent = totals.latencies_s[-200:]
                        acked, errors = totals.acked_rows, sum(totals.errors.values())
                    rate_now = (acked - last["acked"]) / (elapsed_s - last["report"])
                    last["report"], last["acked"] = elapsed_s, acked
                    print(
                        f"{elapsed_s:7.0f} {rate_now:9,.0f} {percentile_ms(recent, 0.5):7.0f} {percentile_ms(recent, 0.99):7.0f} "
                        f"{samples[-1].rss_bytes / MB:7.1f} {errors:6d}",
                        flush=True,
                    )

            started = time.monotonic()
            totals = paced(
                events_url,
                headers,
                bodies,
                clients=args.clients,
                batch=args.batch,
                rate=rate,
                seconds=args.duration,
                on_tick=on_tick,
            )
            elapsed = time.monotonic() - started
            samples.append(Sample(elapsed, server_process.memory_info().rss, totals.acked_rows, sum(totals.errors.values())))
            log = server.log_path.read_text(errors="replace")[log_mark:]
            with psycopg.connect(libpq_url(url)) as connection:
                stored, distinct = connection.execute(
                    "SELECT count(*), count(DISTINCT event_id) FROM telemetry_events WHERE environment = %s", (ENVIRONMENT,)
                ).fetchone()
        finally:
            server.stop()

    figures = summarise(args, rate, measured, elapsed, totals, samples, log, stored, distinct, acked_before + totals.acked_rows)
    print_figures(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if not figures["errors"] and not figures["growing"] and figures["stored_ok"] else 1


def summarise(
    args: argparse.Namespace,
    rate: float,
    measured: float | None,
    elapsed: float,
    totals: Totals,
    samples: list[Sample],
    log: str,
    stored: int,
    distinct: int,
    acked_all: int,
) -> dict[str, Any]:
    rss_start, rss_end = samples[0].rss_bytes, samples[-1].rss_bytes
    half = [s for s in samples if s.at_s >= elapsed / 2]
    rss_half = half[0].rss_bytes if half else rss_start
    second_half_growth = rss_end - rss_half
    limit = max(args.growth_limit_mb * MB, 0.05 * rss_half)
    jobs = {
        name: log.count(f"fernando_telemetry.composition.scheduler: {name}")
        for name in ("rollups", "kpis", "retention", "partition upkeep", "host metrics")
    }
    return {
        "duration_s": round(elapsed, 1),
        "target_rate": round(rate, 1),
        "measured_max_rate": round(measured, 1) if measured else None,
        "acked_rows": totals.acked_rows,
        "acked_per_s": round(totals.acked_rows / elapsed, 1),
        "requests": totals.requests,
        "p50_ms": round(percentile_ms(totals.latencies_s, 0.5), 1),
        "p99_ms": round(percentile_ms(totals.latencies_s, 0.99), 1),
        "max_ms": round(max(totals.latencies_s, default=0) * 1000, 1),
        "late_sends": totals.late_sends,
        "errors": sum(totals.errors.values()),
        "error_kinds": totals.errors,
        "rss_start_mb": round(rss_start / MB, 1),
        "rss_half_mb": round(rss_half / MB, 1),
        "rss_end_mb": round(rss_end / MB, 1),
        "rss_max_mb": round(max(s.rss_bytes for s in samples) / MB, 1),
        "growth_mb": round((rss_end - rss_start) / MB, 1),
        "second_half_growth_mb": round(second_half_growth / MB, 1),
        "second_half_slope_mb_per_min": round(slope_mb_per_min(half), 2),
        "growth_limit_mb": round(limit / MB, 1),
        "growing": second_half_growth > limit,
        "scheduler_runs": jobs,
        "scheduler_failures": log.count("failed; it runs again at its next interval"),
        "server_tracebacks": log.count("Traceback (most recent call last)"),
        "acked_all_phases": acked_all,
        "stored_rows": stored,
        "stored_distinct": distinct,
        "stored_ok": stored == distinct and (stored == acked_all or (stored > acked_all and bool(totals.errors))),
        "samples": [asdict(s) for s in samples],
    }


def print_figures(f: dict[str, Any]) -> None:
    print()
    print(
        f"held {f['target_rate']:,.0f} events/s for {f['duration_s']:.0f} s"
        + (f" (half of the measured maximum {f['measured_max_rate']:,.0f})" if f["measured_max_rate"] else "")
    )
    print(
        f"acked: {f['acked_rows']:,} rows in {f['requests']:,} requests, {f['acked_per_s']:,.0f} acked/s; "
        f"ack latency p50 {f['p50_ms']:.0f} ms, p99 {f['p99_ms']:.0f} ms, max {f['max_ms']:.0f} ms; "
        f"batches sent more than one interval late: {f['late_sends']}"
    )
    print(
        f"errors: {f['errors']}"
        + (f" {f['error_kinds']}" if f["errors"] else "")
        + f"; server tracebacks in its log: {f['server_tracebacks']}; scheduler job failures: {f['scheduler_failures']}"
    )
    print("scheduler runs during the soak: " + ", ".join(f"{name} {count}" for name, count in f["scheduler_runs"].items()))
    print(
        f"server RSS: start {f['rss_start_mb']:.1f} MB, half-way {f['rss_half_mb']:.1f} MB, end {f['rss_end_mb']:.1f} MB, "
        f"max {f['rss_max_mb']:.1f} MB; growth {f['growth_mb']:+.1f} MB, over the second half {f['second_half_growth_mb']:+.1f} MB "
        f"(slope {f['second_half_slope_mb_per_min']:+.2f} MB/min; limit {f['growth_limit_mb']:.1f} MB): "
        + ("GROWING" if f["growing"] else "bounded")
    )
    print(
        f"stored: {f['stored_rows']:,} rows, {f['stored_distinct']:,} distinct event_id; acked in every phase (warm-up and "
        f"measurement included) {f['acked_all_phases']:,}: {'ok' if f['stored_ok'] else 'NO'}"
    )


if __name__ == "__main__":
    sys.exit(main())
