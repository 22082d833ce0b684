"""Three ``fernando-telemetry serve`` processes on one database, the scheduler on in each with intervals of a few
seconds: each shared job runs once per interval across the three (never twice, never overlapping, never not at
all), SDK clients spread over the three lose nothing and store nothing twice while one server is killed with SIGKILL
and started again, and an alert rule that fires notifies its webhook once although three dispatchers run.

Imports the harness, the suite's fixtures (the webhook ``Receiver`` of tests/notify_fixtures.py), psycopg, httpx and
``libpq_url``; the servers are real ``serve`` processes."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from fernando_telemetry.storage.database import libpq_url
from reliability.conftest import TenantDatabase
from reliability.harness import Figures, IngestLoad, LoadTally, ServeProcess, wait_for
from tests.notify_fixtures import Receiver

SERVERS = 3

JOB_INTERVALS_S = {
    "partition_upkeep": 2.0,
    "retention": 3.0,
    "kpis": 3.0,
    "rollups": 2.0,
    "alert_evaluation": 2.0,
    "notification_dispatch": 1.0,
}
"""Every job but host metrics (per host by design, off in the harness), a few seconds apart, as bench/soak.py does."""

PER_SERVER_JOBS = {"notification_dispatch"}
"""Jobs that run in every server by design: the dispatchers share the outbox through ``FOR UPDATE SKIP LOCKED``, so
each notification is sent once however many run (the alert test checks that)."""

_SETTING_OF_JOB = {
    "partition_upkeep": "FERNANDO_TELEMETRY_PARTITION_UPKEEP_INTERVAL_S",
    "retention": "FERNANDO_TELEMETRY_RETENTION_INTERVAL_S",
    "kpis": "FERNANDO_TELEMETRY_KPI_INTERVAL_S",
    "rollups": "FERNANDO_TELEMETRY_ROLLUP_REFRESH_INTERVAL_S",
    "alert_evaluation": "FERNANDO_TELEMETRY_ALERT_EVALUATION_INTERVAL_S",
    "notification_dispatch": "FERNANDO_TELEMETRY_NOTIFICATION_DISPATCH_INTERVAL_S",
}


def _server_env(secret_key: str) -> dict[str, str]:
    return {
        **{_SETTING_OF_JOB[job]: str(interval) for job, interval in JOB_INTERVALS_S.items()},
        # every server must open the channel secrets another server sealed: one key for all (docs/OPERATIONS.md)
        "FERNANDO_TELEMETRY_SECRET_KEY": secret_key,
        "FERNANDO_TELEMETRY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    }


@pytest.fixture()
def servers(tenant_database: TenantDatabase, tmp_path: Path) -> Iterator[list[ServeProcess]]:
    """Three servers on the tenant database, each with its own data directory and log, started at once."""
    env = _server_env(secrets.token_urlsafe(32))
    started = [ServeProcess(tenant_database.url, _workdir(tmp_path, n), env=env) for n in range(SERVERS)]
    errors: list[BaseException] = []

    def start(server: ServeProcess) -> None:
        try:
            server.start()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(server,)) for server in started]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        if errors:
            raise errors[0]
        yield started
    finally:
        for server in started:
            server.stop()


def _workdir(root: Path, number: int) -> Path:
    path = root / f"server-{number}"
    path.mkdir()
    return path


# -- job runs, watched in job_runs ---------------------------------------------------------------


@dataclass
class JobRunWatch:
    """Polls ``job_runs`` (one row per job: its last start and last end) every 20 ms and keeps every finished run
    it sees, as ``(job, started_at, finished_at, outcome)``; the ``runs`` counters give the exact count of ends."""

    url: str
    seen: set[tuple[str, datetime, datetime, str]] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def counters(self) -> dict[str, int]:
        with psycopg.connect(self.url) as connection:
            return dict(connection.execute("SELECT job_name, runs FROM job_runs").fetchall())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            while not self._stop.is_set():
                for job, started, finished, outcome in connection.execute(
                    "SELECT job_name, last_started_at, last_finished_at, last_outcome FROM job_runs"
                ).fetchall():
                    if finished is not None and started is not None and finished >= started:
                        self.seen.add((job, started, finished, outcome))
                self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def _libpq(url: str) -> str:
    return libpq_url(url)


class TestManyServers:
    def test_each_job_runs_once_per_interval_across_three_servers(
        self, servers: list[ServeProcess], tenant_database: TenantDatabase, figures: Figures, long_form: bool
    ) -> None:
        """Over a window of many intervals, the ends a job records across the three servers number at most
        window / interval + 1, its runs never overlap, and it ran at least once: the database, not each server's
        own timer, decides who runs a tick."""
        window_s = 60.0 if long_form else 14.0
        watch = JobRunWatch(_libpq(tenant_database.url))
        watch.start()
        try:
            time.sleep(1.0)  # past the start-up partition upkeep of every server (it runs before /readyz, unclaimed)
            before, opened, opened_at = watch.counters(), time.monotonic(), datetime.now(UTC)
            time.sleep(window_s)
            after, window_s, closed_at = watch.counters(), time.monotonic() - opened, datetime.now(UTC)
        finally:
            watch.stop()

        rows = []
        problems = []
        for job, interval_s in JOB_INTERVALS_S.items():
            ends = after.get(job, 0) - before.get(job, 0)
            ok_runs = sorted(
                (s, f) for (name, s, f, outcome) in watch.seen if name == job and outcome == "ok" and opened_at <= s <= closed_at
            )
            overlaps = sum(1 for (_, end), (start, _) in zip(ok_runs, ok_runs[1:], strict=False) if start < end)
            bound = int(window_s / interval_s) + 1
            per_server = job in PER_SERVER_JOBS
            rows.append((job, interval_s, ends, len(ok_runs), f"<= {bound * (SERVERS if per_server else 1)}", overlaps))
            if ends < 1:
                problems.append(f"{job} never ran in {window_s:.0f} s")
            if not per_server and ends > bound:
                problems.append(f"{job} ended {ends} runs in {window_s:.1f} s at {interval_s} s intervals (at most {bound})")
            if not per_server and overlaps:
                problems.append(f"{job}: {overlaps} runs overlapped another")
        figures.line(f"{SERVERS} servers, scheduler on, window {window_s:.1f} s; host metrics off (per host by design)")
        figures.line("notification_dispatch runs in every server by design (shared outbox, FOR UPDATE SKIP LOCKED)")
        figures.table(
            ["job", "interval s", "runs ended (job_runs.runs)", "ok runs seen by the poller", "bound", "overlaps"], rows
        )
        assert problems == []

    def test_every_acknowledged_item_is_stored_once_while_one_of_three_is_killed(
        self, servers: list[ServeProcess], tenant_database: TenantDatabase, figures: Figures, long_form: bool
    ) -> None:
        """SDK clients each sending to one of the three servers; one server at a time is killed with SIGKILL and
        started again. Every id acknowledged by any server is stored exactly once."""
        rounds = 6 if long_form else 2
        run = uuid.uuid4().hex[:6]
        loads = [
            IngestLoad(
                server.base_url,
                tenant_database.tenant.ingest_key,
                environment=f"reliability-many-{run}-{number}",
                user_id=tenant_database.tenant.user_id,
                clients=2,
                rate_per_client=150.0,
            )
            for number, server in enumerate(servers)
        ]
        for load in loads:
            load.start()
        restarts = []
        try:
            wait_for(lambda: all(load.acked_count > 0 for load in loads), timeout_s=30, what="a first ack from each server")
            for number in range(rounds):
                time.sleep(1.5)
                victim = number % SERVERS
                killed_at = time.monotonic()
                servers[victim].kill()
                time.sleep(0.5)  # its clients now retry against a closed port
                ready_s = servers[victim].start()
                moment = time.monotonic()
                wait_for(
                    lambda load=loads[victim], moment=moment: load.first_ack_since(moment) is not None,
                    timeout_s=60,
                    what="an ack from the restarted server",
                )
                restarts.append(
                    (number + 1, f"server {victim}", ready_s, (loads[victim].first_ack_since(moment) or 0) - killed_at)
                )
            time.sleep(1.0)
        finally:
            for load in loads:
                load.stop()
        tallies = [load.tally(tenant_database.url) for load in loads]

        figures.line(
            f"{SERVERS} servers; 2 SDK clients per server at 150 events/s each; one server SIGKILLed and restarted per round"
        )
        figures.table(["round", "killed", "start to ready s", "kill to next ack s"], restarts)
        figures.table(
            ["figure", *[f"server {n}" for n in range(SERVERS)]],
            [(name, *[dict(t.figures())[name] for t in tallies]) for name, _ in tallies[0].figures()],
        )
        for tally in tallies:
            _assert_exactly_once(tally)

    def test_a_firing_rule_notifies_its_webhook_once_with_three_dispatchers(
        self, servers: list[ServeProcess], tenant_database: TenantDatabase, figures: Figures, long_form: bool
    ) -> None:
        """A channel made through one server, a rule through another, the metric over the threshold ingested through
        the third: the receiver gets one firing notification, and no more over several further evaluation passes."""
        key = {"Authorization": f"Bearer {tenant_database.tenant.ingest_key}"}
        metric = f"many_servers_{uuid.uuid4().hex[:8]}"
        quiet_s = 30.0 if long_form else 12.0
        with Receiver() as receiver, httpx.Client(timeout=10.0) as client:
            channel = client.post(
                f"{servers[0].base_url}/api/v1/notification-channels",
                json={"name": "hook", "type": "webhook", "url": receiver.url + "/alerts"},
                headers=key,
            )
            assert channel.status_code == 201, channel.text
            rule = client.post(
                f"{servers[1].base_url}/api/v1/alert-rules",
                json={
                    "name": f"over 80 {metric}",
                    "condition_config": {
                        "source": "system_metrics",
                        "metric": metric,
                        "aggregation": "max",
                        "operator": ">",
                        "threshold": 80,
                        "window_minutes": 5,
                        "for_minutes": 0,
                    },
                    "severity": "critical",
                    "notification_channels": ["hook"],
                    "evaluation_interval_seconds": 10,
                },
                headers=key,
            )
            assert rule.status_code == 201, rule.text
            ingested = client.post(
                f"{servers[2].base_url}/api/v1/system-metrics",
                json={"metrics": [{"metric_name": metric, "value": 95.0, "host_name": "h1"}]},
                headers=key,
            )
            assert ingested.status_code in (200, 201, 202), ingested.text
            first_s = wait_for(lambda: len(receiver.requests) > 0, timeout_s=60, what="the firing notification")
            time.sleep(quiet_s)  # several evaluation passes and dispatch runs of all three servers
            received = list(receiver.requests)

        with psycopg.connect(_libpq(tenant_database.url)) as connection:
            alerts = connection.execute("SELECT count(*) FROM alerts WHERE rule_id = %s", (rule.json()["rule_id"],)).fetchone()
        bodies = [json.loads(r.body) for r in received]
        figures.line(f"{SERVERS} servers: channel made on server 0, rule on server 1, metric ingested on server 2")
        figures.table(
            ["figure", "value"],
            [
                ("ingest to first notification s", first_s),
                ("quiet period after it s", quiet_s),
                ("notifications received", len(received)),
                ("alerts raised", alerts[0] if alerts else 0),
            ],
        )
        assert len(received) == 1, f"{len(received)} notifications: {bodies}"
        assert metric in json.dumps(bodies[0])
        assert bodies[0]["status"] == "firing", bodies[0]
        assert alerts is not None and alerts[0] == 1


def _assert_exactly_once(tally: LoadTally) -> None:
    assert tally.lost == [], f"{len(tally.lost)} acknowledged items are not in the database: {tally.lost[:5]}"
    assert tally.duplicates == 0, "an item id is stored more than once"
    assert tally.partial_batches == 0 and tally.rejected == 0, "the server refused items of a valid batch"
    assert tally.failed == 0 and tally.dropped == 0
    assert tally.acked_total == len(tally.acked) == tally.recorded
