"""PostgreSQL stopped and started again (a fast shutdown, and a crash: SIGKILL of the postmaster) under a running
server and SDK clients: the API answers 503 with Retry-After while the database is down, never a 500; it comes
back by itself; the clients retry; nothing acknowledged is lost."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from fernando_telemetry.services import schema
from fernando_telemetry.storage.database import make_engine
from fernando_telemetry.storage.embedded import EmbeddedPostgres
from reliability.harness import Figures, IngestLoad, ServeProcess, median, stored_event_ids, wait_for
from reliability.prober import PROBE_ENVIRONMENT, Answer, Prober
from tests.ingest_fixtures import make_tenant

ROUTES = ("ingest", "read", "readyz", "otlp")


@dataclass
class Outage:
    mode: str
    down_s: float
    answers_while_down: dict[str, list[Answer]]
    start_s: float
    api_recovery_s: float
    sdk_recovery_s: float


def take_down(cluster: EmbeddedPostgres, mode: str) -> None:
    """``fast``: pg_ctl stop -m fast (clients are disconnected, a checkpoint is written). ``crash``: SIGKILL of the
    postmaster; its backends exit when they notice, and the next start runs crash recovery."""
    if mode == "fast":
        cluster.stop()
        return
    postmaster = psutil.Process(cluster.pid)
    children = postmaster.children(recursive=True)
    postmaster.kill()
    postmaster.wait(30)
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"backends of the killed postmaster still run: {alive}"


class TestPostgresRestart:
    def test_api_answers_503_while_down_and_recovers_by_itself(
        self, own_cluster: EmbeddedPostgres, tmp_path: Path, figures: Figures, long_form: bool
    ) -> None:
        """While PostgreSQL is down every answer of ingest, reads and /readyz is a 503 with Retry-After; after it
        is back the server answers 200 again without a restart, and the SDK clients' retries lose nothing."""
        modes = ["fast", "crash"] * (3 if long_form else 1)
        down_s = 5.0 if long_form else 2.5
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
            environment="reliability-pg-restart",
            user_id=tenant.user_id,
            clients=3,
            rate_per_client=300.0,
        )
        prober = Prober(server.base_url, tenant)
        outages: list[Outage] = []
        load.start()
        prober.start()
        try:
            wait_for(lambda: load.acked_count > 0, timeout_s=30, what="a first acknowledgement")
            for mode in modes:
                time.sleep(1.5)
                take_down(own_cluster, mode)
                down_from = time.monotonic()
                time.sleep(down_s)
                down_to = time.monotonic()
                own_cluster.start()
                up_at = time.monotonic()
                wait_for(
                    lambda moment=up_at: prober.first_ok_after(moment, "ingest") is not None,
                    timeout_s=60,
                    what="an ingest 200 after the restart",
                )
                wait_for(
                    lambda moment=up_at: load.first_ack_since(moment) is not None,
                    timeout_s=60,
                    what="an SDK ack after the restart",
                )
                api_ok, sdk_ok = prober.first_ok_after(up_at, "ingest"), load.first_ack_since(up_at)
                assert api_ok is not None and sdk_ok is not None
                while_down = prober.between(down_from, down_to)
                outages.append(
                    Outage(
                        mode,
                        down_to - down_from,
                        {route: [a for a in while_down if a.route == route] for route in ROUTES},
                        up_at - down_to,
                        api_ok - up_at,
                        sdk_ok - up_at,
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
            "load: 3 SDK TelemetryClients, 300 events/s each; prober: one thread per route (ingest 1 event, GET /api/v1/events, /readyz, OTLP/JSON 1 span), every 50 ms"
        )
        figures.table(
            [
                "outage",
                "mode",
                "down s",
                "answers while down (ingest/read/readyz/otlp)",
                "all 503 + Retry-After",
                "pg start s",
                "API recovery s",
                "SDK recovery s",
            ],
            [
                (
                    number + 1,
                    o.mode,
                    o.down_s,
                    "/".join(str(len(o.answers_while_down[r])) for r in ROUTES),
                    all(a.status == 503 and a.retry_after for answers in o.answers_while_down.values() for a in answers),
                    o.start_s,
                    o.api_recovery_s,
                    o.sdk_recovery_s,
                )
                for number, o in enumerate(outages)
            ],
        )
        figures.line(
            f"recovery (database back to the first ingest 200): median {median([o.api_recovery_s for o in outages]):.2f} s, "
            f"max {max(o.api_recovery_s for o in outages):.2f} s"
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

        for number, outage in enumerate(outages, start=1):
            for route, answers in outage.answers_while_down.items():
                assert len(answers) >= 3, f"outage {number}: the prober barely asked {route} while the database was down"
                wrong = [a for a in answers if a.status != 503 or not a.retry_after]
                assert not wrong, f"outage {number} ({outage.mode}): {route} answered {wrong[:3]} while the database was down"
        server_errors = [a for a in prober.answers if a.status is None or (a.status >= 500 and a.status != 503)]
        assert not server_errors, f"answers other than 503 from the server: {server_errors[:5]}"
        assert not probe_acked - set(probe_stored)
        assert tally.lost == [] and tally.duplicates == 0
        assert tally.failed == 0 and tally.dropped == 0 and tally.rejected == 0
        assert tally.acked_total == len(tally.acked) == tally.recorded
