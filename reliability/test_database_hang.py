"""PostgreSQL that hangs rather than goes down: every process of the cluster SIGSTOPped (the postmaster and all its
children) for a while under a running server, SDK clients and a prober, then SIGCONTinued. Connections stay open and
the kernel still acknowledges TCP, so nothing fails fast: only the server's own bounds can answer. Every probe must
get an answer within the client's timeout and never a 500; ``/healthz`` stays 200 while ``/readyz`` says 503; after
SIGCONT the server answers 200 again by itself, and no acknowledged item is lost or duplicated."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from fernando_telemetry.services import schema
from fernando_telemetry.storage.database import make_engine
from fernando_telemetry.storage.embedded import EmbeddedPostgres
from reliability.harness import Figures, IngestLoad, ServeProcess, median, percentile, stored_event_ids, wait_for
from reliability.prober import PROBE_ENVIRONMENT, Answer, Prober
from tests.ingest_fixtures import make_tenant

ROUTES = ("healthz", "readyz", "read", "ingest", "otlp")
CLIENT_TIMEOUT_S = 10.0
"""The prober's HTTP timeout: the bound within which every probe must be answered."""
READY_BOUND_S = 3.0
"""A ``/readyz`` asked this long before SIGCONT must have said 503 (the server's check gives up after 2 s)."""


@dataclass
class Hang:
    frozen_at: float
    thawed_at: float
    processes: int
    answers: dict[str, list[Answer]]
    recovery_s: dict[str, float]
    sdk_recovery_s: float


def cluster_processes(cluster: EmbeddedPostgres) -> list[psutil.Process]:
    """The postmaster and every process under it (backends, checkpointer, walwriter, autovacuum...)."""
    postmaster = psutil.Process(cluster.pid)
    return [postmaster, *postmaster.children(recursive=True)]


def freeze(cluster: EmbeddedPostgres, seconds: float) -> tuple[int, float, float]:
    """SIGSTOP every process of the cluster for ``seconds``, then SIGCONT them (always, even when interrupted).

    Returns the number of processes frozen, the monotonic time when the last of them was stopped and the time just
    before the first was continued: the window in which the whole cluster was frozen (listing and signalling the
    processes takes a while on a busy machine, and a probe answered before the last SIGSTOP is no evidence).
    Children forked meanwhile cannot exist: the postmaster is stopped first."""
    processes = cluster_processes(cluster)
    stopped: list[psutil.Process] = []
    frozen_at = thawed_at = time.monotonic()
    try:
        for process in processes:
            try:
                process.send_signal(signal.SIGSTOP)
                stopped.append(process)
            except psutil.NoSuchProcess:
                pass
        frozen_at = time.monotonic()
        time.sleep(seconds)
    finally:
        thawed_at = time.monotonic()
        for process in stopped:
            try:
                process.send_signal(signal.SIGCONT)
            except psutil.NoSuchProcess:
                pass
    return len(stopped), frozen_at, thawed_at


def _latency_cell(answers: list[Answer]) -> str:
    latencies = [a.latency_s for a in answers]
    if not latencies:
        return "-"
    return f"{percentile(latencies, 0.5):.2f}/{percentile(latencies, 0.99):.2f}/{max(latencies):.2f}"


class TestPostgresHang:
    def test_every_probe_is_answered_and_the_server_recovers_by_itself(
        self, own_cluster: EmbeddedPostgres, tmp_path: Path, figures: Figures, long_form: bool
    ) -> None:
        """While every PostgreSQL process is stopped, each probe is answered within the client's timeout (never a
        500, never a hung connection), /healthz says 200 and /readyz 503; after SIGCONT every route answers 200
        again without a restart, and what the SDK clients and the prober were acknowledged is stored once."""
        hangs_s = [30.0, 6.0] if long_form else [6.0]
        engine = make_engine(own_cluster.url, pool_size=1)
        try:
            schema.upgrade(engine)
            tenant = make_tenant(engine)
        finally:
            engine.dispose()
        server = ServeProcess(own_cluster.url, tmp_path)
        server.start()
        load = IngestLoad(
            server.base_url,
            tenant.ingest_key,
            environment="reliability-pg-hang",
            user_id=tenant.user_id,
            clients=3,
            rate_per_client=300.0,
        )
        prober = Prober(server.base_url, tenant, routes=ROUTES, timeout_s=CLIENT_TIMEOUT_S)
        hangs: list[Hang] = []
        load.start()
        prober.start()
        try:
            wait_for(lambda: load.acked_count > 0, timeout_s=30, what="a first acknowledgement")
            for hang_s in hangs_s:
                time.sleep(2.0)
                processes, frozen_at, thawed_at = freeze(own_cluster, hang_s)
                for route in ROUTES:
                    wait_for(
                        lambda moment=thawed_at, route=route: prober.first_ok_after(moment, route) is not None,
                        timeout_s=60,
                        what=f"a {route} 200 after SIGCONT",
                    )
                wait_for(lambda moment=thawed_at: load.first_ack_since(moment) is not None, timeout_s=60, what="an SDK ack")
                # answers still in flight at SIGCONT are kept: a probe asked during the hang may be answered after it
                time.sleep(CLIENT_TIMEOUT_S)
                # every probe in flight while frozen: asked during the hang, or asked before it and still waiting
                during = [a for a in prober.between(frozen_at - CLIENT_TIMEOUT_S, thawed_at) if a.at + a.latency_s >= frozen_at]
                recovery = {route: prober.first_ok_after(thawed_at, route) or float("nan") for route in ROUTES}
                sdk_ok = load.first_ack_since(thawed_at) or float("nan")
                hangs.append(
                    Hang(
                        frozen_at,
                        thawed_at,
                        processes,
                        {route: [a for a in during if a.route == route] for route in ROUTES},
                        {route: at - thawed_at for route, at in recovery.items()},
                        sdk_ok - thawed_at,
                    )
                )
            time.sleep(1.0)
        finally:
            prober.stop()
            load.stop()
            server.stop()
        tally = load.tally(own_cluster.url)
        probe_stored = stored_event_ids(own_cluster.url, PROBE_ENVIRONMENT)
        probe_acked = {a.event_id for a in prober.answers if a.route == "ingest" and a.status == 200}
        statuses: dict[tuple[str, int | None, str | None], int] = {}
        for answer in prober.answers:
            key = (answer.route, answer.status, answer.code)
            statuses[key] = statuses.get(key, 0) + 1

        figures.line("database: embedded PostgreSQL 18 of this test (durable); server: fernando-telemetry serve on it")
        figures.line(
            "load: 3 SDK TelemetryClients, 300 events/s each; prober: one thread per route (/healthz, /readyz, "
            f"GET /api/v1/events, ingest 1 event, OTLP/JSON 1 span), every 50 ms, client timeout {CLIENT_TIMEOUT_S:.0f} s"
        )
        figures.table(
            ["hang", "frozen s", "processes", *(f"{r} answers" for r in ROUTES), "SDK recovery s"],
            [
                (n + 1, h.thawed_at - h.frozen_at, h.processes, *(len(h.answers[r]) for r in ROUTES), h.sdk_recovery_s)
                for n, h in enumerate(hangs)
            ],
        )
        figures.line("probes in flight while frozen: latency p50/p99/max in s, and statuses; recovery: SIGCONT to first 200")
        figures.table(
            ["hang", "route", "latency s", "statuses", "recovery s"],
            [
                (
                    n + 1,
                    route,
                    _latency_cell(h.answers[route]),
                    " ".join(
                        f"{status}x{count}"
                        for status, count in sorted(
                            {
                                a.status: sum(1 for b in h.answers[route] if b.status == a.status) for a in h.answers[route]
                            }.items(),
                            key=str,
                        )
                    ),
                    h.recovery_s[route],
                )
                for n, h in enumerate(hangs)
                for route in ROUTES
            ],
        )
        figures.line(
            f"recovery (SIGCONT to the first ingest 200): median {median([h.recovery_s['ingest'] for h in hangs]):.2f} s, "
            f"max {max(h.recovery_s['ingest'] for h in hangs):.2f} s; slowest probe of the run: "
            f"{max(a.latency_s for a in prober.answers):.2f} s"
        )
        figures.line("every answer of the prober, by route, status and error code:")
        figures.table(["route", "status", "code", "answers"], [(*key, count) for key, count in sorted(statuses.items(), key=str)])
        figures.table(
            ["figure", "value"],
            [
                *tally.figures(),
                ("prober events acknowledged", len(probe_acked)),
                ("prober events acknowledged, not stored", len(probe_acked - set(probe_stored))),
            ],
        )

        unanswered = [a for a in prober.answers if a.status is None]
        assert not unanswered, f"probes without an answer within {CLIENT_TIMEOUT_S:.0f} s: {unanswered[:5]}"
        server_errors = [a for a in prober.answers if a.status >= 500 and a.status != 503]  # type: ignore[operator]
        assert not server_errors, f"answers other than 503 from the server: {server_errors[:5]}"
        for number, hang in enumerate(hangs, start=1):
            for route, answers in hang.answers.items():
                assert answers, f"hang {number}: no {route} probe was in flight while the database was frozen"
            assert all(a.status == 200 for a in hang.answers["healthz"]), f"hang {number}: /healthz {hang.answers['healthz'][:3]}"
            assert len(hang.answers["healthz"]) >= 3, f"hang {number}: /healthz barely answered while frozen"
            # a /readyz asked well before SIGCONT must have given up on the frozen database: 503, not a late 200
            # (a /readyz asked just before the last SIGSTOP waits up to the check's 2 s, holding the prober's thread, so
            # on a busy machine none may be asked inside that window: the 503s answered while frozen are what must exist)
            settled = [a for a in hang.answers["readyz"] if hang.frozen_at <= a.at <= hang.thawed_at - READY_BOUND_S]
            refused = [a for a in hang.answers["readyz"] if a.status == 503 and a.at + a.latency_s <= hang.thawed_at]
            assert refused, f"hang {number}: /readyz never answered 503 while the database was frozen"
            wrong = [a for a in settled if a.status != 503]
            assert not wrong, f"hang {number}: /readyz answered {wrong[:3]} while the database was frozen"
        unavailable = [a for a in prober.answers if a.status == 503 and not a.retry_after]
        assert not unavailable, f"503 without Retry-After: {unavailable[:3]}"
        assert not probe_acked - set(probe_stored)
        assert tally.lost == [] and tally.duplicates == 0
        assert tally.failed == 0 and tally.dropped == 0 and tally.rejected == 0
        assert tally.acked_total == len(tally.acked) == tally.recorded
