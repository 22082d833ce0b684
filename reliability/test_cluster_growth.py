"""Growing a Citus cluster under load: a coordinator and two workers, one ``serve`` process, SDK clients sending events
and spans over HTTP; a third worker is added and ``citus_rebalance_start()`` moves shards to it while ingest goes on.
Afterwards shards live on the new worker, every acknowledged item is stored exactly once, and the query API's totals
match what the database holds, for an admin key and for a license key (row-level security on the workers).

The Citus tier only (``TEST_CITUS=1``); the cluster is this module's own (``tests/citus_cluster.py``), with
``wal_level = logical`` so shard moves follow writes by logical replication. Imports the harness and psycopg/httpx.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from fernando_telemetry.services import schema
from fernando_telemetry.storage.database import make_engine
from reliability.harness import Figures, IngestLoad, LoadTally, ServeProcess, wait_for
from tests.citus_cluster import CITUS_BIN_DIR, CitusCluster, _citus_installed
from tests.ingest_fixtures import Tenant, admin_key, make_tenant

ON_CITUS = os.environ.get("TEST_CITUS") == "1"

pytestmark = [
    pytest.mark.skipif(not ON_CITUS, reason="the Citus tier: runs with TEST_CITUS=1"),
    pytest.mark.skipif(
        ON_CITUS and not ((CITUS_BIN_DIR / "postgres").exists() and _citus_installed()),
        reason=f"citus.so is absent from the PostgreSQL at {CITUS_BIN_DIR} (set CITUS_PG_BIN_DIR)",
    ),
]

DATABASE = "ft_growth"
TRANSFER_MODE = "force_logical"
"""How the rebalancer copies shards. ``auto`` refuses: the rollup tables have no primary key or replica identity.
``force_logical`` copies each shard while writes go on and replays them by logical replication (an UPDATE or DELETE
on a rollup shard being moved fails, and the rollup job retries next tick); ``block_writes`` makes writes to the
shard group being moved wait until its copy is done. See docs/SCALING.md."""


@dataclass
class Growth:
    cluster: CitusCluster
    url: str
    tenant: Tenant
    admin_key: str
    server: ServeProcess


@pytest.fixture(scope="module")
def growth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Growth]:
    """A coordinator and two workers, the schema distributed, one tenant, an admin key and one ``serve``."""
    cluster = CitusCluster(workers=2)
    server: ServeProcess | None = None
    try:
        cluster.start()
        url = cluster.create_database(DATABASE)
        engine = make_engine(url, pool_size=1)
        try:
            schema.upgrade(engine)
            _sequential_partition_functions(url)
            tenant = make_tenant(engine)
            admin = admin_key(engine)
        finally:
            engine.dispose()
        server = ServeProcess(url, tmp_path_factory.mktemp("growth-server"))
        server.start()
        yield Growth(cluster, url, tenant, admin, server)
    finally:
        if server is not None:
            server.stop()
        cluster.stop()


def _sequential_partition_functions(url: str) -> None:
    """The partition functions with one connection per worker, as the citus branch's pending ``storage.citus``
    change sets them (a no-op once it does): creating and attaching a partition of a distributed table that has a
    foreign key to a reference table fails in a transaction that already ran a parallel multi-shard statement."""
    with psycopg.connect(url, autocommit=True) as connection:
        for (signature,) in connection.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
            "AND p.proname IN ('ensure_daily_partitions', 'cleanup_old_telemetry_data', 'cleanup_old_rollups')"
        ).fetchall():
            connection.execute(f"ALTER FUNCTION {signature} SET citus.multi_shard_modify_mode = 'sequential'")


def _placements(url: str) -> dict[int, int]:
    """Shard placements of distributed tables per worker port (reference tables left out: they are on every node)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT nodeport, count(*) FROM citus_shards WHERE citus_table_type = 'distributed' GROUP BY nodeport"
        ).fetchall()
    return {int(port): int(count) for port, count in rows}


def _rebalance(url: str) -> tuple[float, str, int]:
    """``citus_rebalance_start(shard_transfer_mode => TRANSFER_MODE)`` then poll ``citus_rebalance_status()`` until the job ends: seconds, end state,
    shard moves the job ran."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as connection:
        job = connection.execute(
            "SELECT citus_rebalance_start(shard_transfer_mode => %s::citus.shard_transfer_mode)", (TRANSFER_MODE,)
        ).fetchone()
        assert job is not None and job[0] is not None, "the rebalancer planned no move onto the new worker"
        while True:
            row = connection.execute("SELECT state::text, details FROM citus_rebalance_status()").fetchone()
            assert row is not None
            state, details = row
            if state in ("finished", "failed", "cancelled"):
                break
            assert time.monotonic() - started < 600, f"the rebalance did not end in 600 s: {state} {details}"
            time.sleep(0.5)
        tasks = connection.execute(
            "SELECT count(*) FROM pg_dist_background_task WHERE job_id = %s AND status = 'done'", (job[0],)
        ).fetchone()
        errors = connection.execute(
            "SELECT string_agg(message, ' | ') FROM pg_dist_background_task WHERE job_id = %s AND message <> ''", (job[0],)
        ).fetchone()
    assert state == "finished", f"rebalance {state}: {errors[0] if errors else ''}"
    return time.monotonic() - started, state, int(tasks[0]) if tasks else 0


def _api_event_total(base_url: str, headers: dict[str, str], params: dict[str, str]) -> int:
    """Events the search API returns, every page read."""
    total = 0
    cursor: str | None = None
    with httpx.Client(timeout=60.0) as client:
        while True:
            query: dict[str, Any] = {**params, "limit": "1000", **({"cursor": cursor} if cursor else {})}
            answer = client.get(f"{base_url}/api/v1/events", params=query, headers=headers)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            total += len(page["events"])
            cursor = page.get("next_cursor")
            if not cursor:
                return total


def _api_span_total(base_url: str, headers: dict[str, str], params: dict[str, str]) -> int:
    """Spans of ``GET /api/v1/summaries/traces``, summed over its rows and pages."""
    total = 0
    offset: int | None = 0
    with httpx.Client(timeout=60.0) as client:
        while offset is not None:
            answer = client.get(f"{base_url}/api/v1/summaries/traces", params={**params, "offset": str(offset)}, headers=headers)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            total += sum(int(row["spans"]) for row in page["rows"])
            offset = page.get("next_offset")
    return total


def _api_totals(growth: Growth, key: str, *, license_param: bool) -> dict[str, int]:
    """Events (search, every page) and spans (traces summary) of the last hour through the API with ``key``."""
    window = {
        "from": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    }
    if license_param:
        window["license_id"] = str(growth.tenant.license_id)
    headers = {"Authorization": f"Bearer {key}"}
    return {
        "events": _api_event_total(growth.server.base_url, headers, window),
        "spans": _api_span_total(growth.server.base_url, headers, window),
    }


def _assert_exactly_once(tally: LoadTally, what: str) -> None:
    assert tally.lost == [], f"{len(tally.lost)} acknowledged {what} are not in the database: {tally.lost[:5]}"
    assert tally.duplicates == 0, f"a {what[:-1]} id is stored more than once"
    assert tally.partial_batches == 0 and tally.rejected == 0, f"the server refused {what} of a valid batch"
    assert tally.failed == 0 and tally.dropped == 0
    assert tally.acked_total == len(tally.acked) == tally.recorded


class TestClusterGrowth:
    def test_a_third_worker_takes_shards_while_events_and_spans_are_ingested(
        self, growth: Growth, figures: Figures, long_form: bool
    ) -> None:
        """Two SDK clients of events and two of spans send through ``serve`` while a worker is added and the
        rebalancer moves shards onto it: the new worker holds shards, every acknowledged id is stored once, and the
        events search and the traces summary of the API count exactly the stored rows, for a license key and for
        an admin key naming the license."""
        run = uuid.uuid4().hex[:6]
        rate = 150.0 if long_form else 100.0
        loads = {
            kind: IngestLoad(
                growth.server.base_url,
                growth.tenant.ingest_key,
                environment=f"growth-{kind}-{run}",
                user_id=growth.tenant.user_id,
                clients=2,
                rate_per_client=rate,
                kind=kind,
            )
            for kind in ("events", "spans")
        }
        before = _placements(growth.url)
        for load in loads.values():
            load.start()
        try:
            wait_for(lambda: all(load.acked_count > 0 for load in loads.values()), timeout_s=60, what="a first ack")
            time.sleep(6.0 if long_form else 2.0)
            acked_before = {kind: load.acked_count for kind, load in loads.items()}
            added_at = time.monotonic()
            worker = growth.cluster.add_worker()
            add_s = time.monotonic() - added_at
            rebalance_s, _, moves = _rebalance(growth.url)
            moment = time.monotonic()
            wait_for(
                lambda: all(load.first_ack_since(moment) is not None for load in loads.values()),
                timeout_s=60,
                what="acks after the rebalance",
            )
            time.sleep(6.0 if long_form else 3.0)
            acked_during = {kind: load.acked_count - acked_before[kind] for kind, load in loads.items()}
        finally:
            for load in loads.values():
                load.stop()
        tallies = {kind: load.tally(growth.url) for kind, load in loads.items()}
        after = _placements(growth.url)

        api = _api_totals(growth, growth.admin_key, license_param=True)

        new_port = worker.port_in_use
        figures.line(
            f"coordinator + 2 workers -> + worker on port {new_port}; 2 SDK clients of events and 2 of spans at "
            f"{rate:.0f} items/s each through one serve"
        )
        figures.table(
            ["figure", "value"],
            [
                ("add_worker s", add_s),
                (f"citus_rebalance_start({TRANSFER_MODE}) to finished s", rebalance_s),
                ("shard moves (background tasks done)", moves),
                ("placements before, per worker", " ".join(f"{p}:{n}" for p, n in sorted(before.items()))),
                ("placements after, per worker", " ".join(f"{p}:{n}" for p, n in sorted(after.items()))),
                ("events acked from add_worker to 3 s after", acked_during["events"]),
                ("spans acked from add_worker to 3 s after", acked_during["spans"]),
            ],
        )
        figures.table(
            ["figure", "events", "spans"],
            [(name, value, dict(tallies["spans"].figures())[name]) for name, value in tallies["events"].figures()],
        )
        figures.table(["API total (admin key, license_id)", "events", "spans"], [("", api["events"], api["spans"])])

        assert after.get(new_port, 0) > 0, f"no shard moved to the new worker: {after}"
        assert sum(after.values()) == sum(before.values()), "shards were lost or doubled by the moves"
        assert acked_during["events"] > 0 and acked_during["spans"] > 0
        for kind, tally in tallies.items():
            _assert_exactly_once(tally, kind)
        for kind, total in api.items():
            assert total == tallies[kind].stored_rows, f"{kind} through the API with an admin key: {total}"

    def test_a_license_key_reads_the_totals_an_admin_key_reads(self, growth: Growth, figures: Figures) -> None:
        """After the growth, the events search and the traces summary answer a license key with the same totals as
        an admin key naming that license, and as the database holds."""
        with psycopg.connect(growth.url) as connection:
            stored = connection.execute(
                "SELECT (SELECT count(*) FROM telemetry_events WHERE license_id = %(l)s), "
                "(SELECT count(*) FROM traces WHERE license_id = %(l)s)",
                {"l": growth.tenant.license_id},
            ).fetchone()
        assert stored is not None and stored[0] > 0 and stored[1] > 0, "run after the growth test: nothing stored"
        by_admin = _api_totals(growth, growth.admin_key, license_param=True)
        by_license = _api_totals(growth, growth.tenant.read_key, license_param=False)
        figures.table(
            ["totals", "events", "spans"],
            [
                ("database", stored[0], stored[1]),
                ("API, admin key with license_id", by_admin["events"], by_admin["spans"]),
                ("API, license key", by_license["events"], by_license["spans"]),
            ],
        )
        assert by_admin == {"events": stored[0], "spans": stored[1]}
        assert by_license == by_admin
