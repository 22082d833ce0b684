"""The server killed with SIGKILL (and, apart, stopped with SIGTERM), again and again, while several SDK clients keep
sending: every item the server acknowledged with a 2xx is in the database exactly once, and the clients' retries
deliver the rest."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from reliability.conftest import TenantDatabase
from reliability.harness import Figures, IngestLoad, ServeProcess, median, wait_for


class TestServerKilled:
    @pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
    def test_every_acknowledged_item_is_stored_exactly_once(
        self, how: str, tenant_database: TenantDatabase, tmp_path: Path, figures: Figures, long_form: bool
    ) -> None:
        """kill -9 of ``fernando-telemetry serve`` during sustained ingest from 4 SDK clients loses nothing it
        acknowledged and stores nothing twice, although clients retry batches whose answer the kill swallowed; a
        graceful stop (SIGTERM) and start does the same."""
        rounds = (12 if long_form else 3) if how == "SIGKILL" else (6 if long_form else 2)
        rng = random.Random(7)
        server = ServeProcess(tenant_database.url, tmp_path)
        first_start_s = server.start()
        load = IngestLoad(
            server.base_url,
            tenant_database.tenant.ingest_key,
            environment="reliability-kill",
            user_id=tenant_database.tenant.user_id,
            clients=4,
            rate_per_client=300.0,
        )
        load.start()
        restarts: list[tuple[int, float, float, int, float, float]] = []
        try:
            wait_for(lambda: load.acked_count > 0, timeout_s=30, what="a first acknowledgement")
            for number in range(rounds):
                time.sleep(rng.uniform(1.0, 3.0))
                acked_before = load.acked_count
                killed_at = time.monotonic()
                server.kill() if how == "SIGKILL" else server.stop()
                stop_s = time.monotonic() - killed_at
                ready_s = stop_s + server.start()
                wait_for(
                    lambda moment=killed_at + ready_s: load.first_ack_since(moment) is not None,
                    timeout_s=60,
                    what="an ack after the restart",
                )
                first_ack = load.first_ack_since(killed_at + ready_s)
                assert first_ack is not None
                restarts.append(
                    (number + 1, stop_s, ready_s - stop_s, acked_before, first_ack - killed_at, first_ack - (killed_at + ready_s))
                )
            time.sleep(1.0)
        finally:
            load.stop()
            server.stop()
        tally = load.tally(tenant_database.url)

        action = "killed with SIGKILL" if how == "SIGKILL" else "stopped with SIGTERM (graceful) and started again"
        figures.line(f"server: fernando-telemetry serve, {action} {rounds} times at random moments 1-3 s apart")
        figures.line(
            "load: 4 SDK TelemetryClients (HttpExporter, batches of up to 200, 0.2 s flush), 300 events/s each, client-chosen event_id"
        )
        figures.line(f"first start to ready: {first_start_s:.2f} s")
        figures.table(
            [how, "stopped in s", "start to ready s", "acked before", "signal to next ack s", "ready to next ack s"], restarts
        )
        figures.line(
            f"recovery (signal to the next ack): median {median([r[4] for r in restarts]):.2f} s, "
            f"max {max(r[4] for r in restarts):.2f} s"
        )
        figures.table(["figure", "value"], tally.figures())

        assert tally.lost == [], f"{len(tally.lost)} acknowledged items are not in the database: {tally.lost[:5]}"
        assert tally.duplicates == 0, "an item id is stored more than once"
        assert tally.partial_batches == 0 and tally.rejected == 0, "the server refused items of a valid batch"
        # the clients retried through every restart: nothing given up, nothing pushed out of a queue
        assert tally.failed == 0 and tally.dropped == 0
        assert tally.acked_total == len(tally.acked) == tally.recorded
        if how == "SIGKILL":
            assert tally.retries > 0, "no batch was ever retried: the kills did not hit ingest in flight"
