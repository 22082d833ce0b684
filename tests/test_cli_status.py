"""``fernando-telemetry status`` against real PostgreSQL: the database, the revision, tables and partitions with
rows (estimated, counted or sampled) and bytes, the rollups' lag and the last job runs, as tables and as JSON."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from fernando_telemetry.cli import main
from fernando_telemetry.composition.wiring import dump_json
from fernando_telemetry.services import partitions, rollups, schema, synthetic
from fernando_telemetry.services import status as status_service
from fernando_telemetry.storage.database import libpq_url, make_engine, session_factory

EVENTS, SPANS, METRICS = 3_000, 2_000, 1_500


def _run(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """The command run in-process through ``main`` (the console script's function), its output captured."""
    out, err = io.StringIO(), io.StringIO()
    saved_url, saved_argv = os.environ.get("DATABASE_URL"), sys.argv
    os.environ["DATABASE_URL"], sys.argv = database_url, ["fernando-telemetry", *args]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved_argv
        if saved_url is None:
            del os.environ["DATABASE_URL"]
        else:
            os.environ["DATABASE_URL"] = saved_url
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def _real(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "fernando_telemetry", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _status_json(database_url: str, *extra: str) -> dict[str, Any]:
    result = _run("status", "--json", *extra, database_url=database_url)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _exact_count(database_url: str, table: str) -> int:
    with psycopg.connect(libpq_url(database_url)) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture(scope="module")
def loaded_url(database_factory: Callable[[], str]) -> str:
    """A migrated database with three days of synthetic telemetry, one rollup refresh and one job run recorded,
    never analyzed (so every relation lacks an estimate)."""
    url = database_factory()
    engine = make_engine(url, pool_size=1)
    now = datetime.now(UTC)
    try:
        schema.upgrade(engine)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            partitions.upkeep(session, now=now, days_back=2, days_ahead=14)
            synthetic.generate(
                session, now=now, days=3, events_count=EVENTS, spans_count=SPANS, metrics_count=METRICS, users=50,
                license_id=None, seed=7, dump_json=dump_json,
            )  # fmt: skip
            # autovacuum must not analyze them before the tests read "never analyzed": off, in the loading transaction
            loaded = session.execute(
                text(
                    "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent IN ('telemetry_events'::regclass, 'traces'::regclass, 'system_metrics'::regclass)"
                )
            ).scalars()
            for partition in loaded:
                session.execute(text(f"ALTER TABLE {partition} SET (autovacuum_enabled = off)"))
        with sessions.begin() as session:
            rollups.refresh_step(session, now=now, safety_lag_s=0, max_hours=1000, max_days=100)
    finally:
        engine.dispose()
    assert _run("jobs", "run", "partition_upkeep", database_url=url).returncode == 0
    return url


class TestJson:
    def test_database_and_revision(self, loaded_url: str) -> None:
        """The URL as given (no password there), the server's version, a size, the revision at head; the real
        command's stdout is the JSON document alone."""
        result = _real("status", "--json", database_url=loaded_url)
        assert result.returncode == 0, result.stderr
        found = json.loads(result.stdout)
        database = found["database"]
        assert database["url"] == loaded_url
        assert database["revision"] == schema.head() == database["head"]
        assert database["up_to_date"] is True
        with psycopg.connect(libpq_url(loaded_url)) as connection:
            version = connection.execute("SHOW server_version").fetchone()
        assert version is not None and database["server_version"] == version[0]
        assert database["size_bytes"] > 1_000_000

    def test_partitioned_tables_have_their_partitions_counted_and_dated(self, loaded_url: str) -> None:
        """Each partitioned table: every partition listed with its day, oldest and newest day, rows summed."""
        found = _status_json(loaded_url)
        tables = {table["name"]: table for table in found["tables"]}
        today = datetime.now(UTC).date()
        with psycopg.connect(libpq_url(loaded_url)) as connection:
            partition_count = connection.execute(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'telemetry_events'::regclass"
            ).fetchone()
        assert partition_count is not None
        events = tables["telemetry_events"]
        assert events["partitioned"] is True
        assert events["partition_count"] == len(events["partitions"]) == partition_count[0]
        assert events["oldest_day"] == str(today - timedelta(days=3))
        assert events["newest_day"] == str(today + timedelta(days=14))  # the job run ensured 14 days ahead
        assert events["rows"] == EVENTS == sum(part["rows"] for part in events["partitions"])
        assert events["total_bytes"] == sum(part["total_bytes"] for part in events["partitions"]) > 0
        assert tables["traces"]["rows"] == SPANS and tables["system_metrics"]["rows"] == METRICS
        # never analyzed and small: counted, so exact
        assert events["rows_exact"] is True
        first = events["partitions"][0]
        assert first["name"] == f"telemetry_events_p{today - timedelta(days=3):%Y%m%d}" and first["day"] == str(
            today - timedelta(days=3)
        )
        assert tables["users"]["partitioned"] is False and tables["users"]["rows"] == 50

    def test_rollup_lag_and_job_runs(self, loaded_url: str) -> None:
        """Rollups: a watermark per raw table and its lag; jobs: every scheduled job, the one run recorded."""
        found = _status_json(loaded_url)
        lags = {lag["table"]: lag for lag in found["rollups"]}
        assert set(lags) == {"telemetry_events", "system_metrics", "traces"}
        for lag in lags.values():
            assert lag["watermark"] is not None and 0 <= lag["lag_s"] < 3600
        jobs = {job["name"]: job for job in found["jobs"]}
        assert {"partition_upkeep", "retention", "rollups", "kpis"} <= set(jobs)
        upkeep = jobs["partition_upkeep"]
        assert (upkeep["outcome"], upkeep["runs"], upkeep["failures"], upkeep["running"]) == ("ok", 1, 0, False)
        assert upkeep["summary"].startswith("partition upkeep") and upkeep["interval_s"] == 3600
        assert (jobs["retention"]["outcome"], jobs["retention"]["runs"], jobs["retention"]["last_started_at"]) == (None, 0, None)


class TestEstimates:
    def test_analyzed_tables_report_estimates_and_exact_counts_on_request(self, database_factory: Callable[[], str]) -> None:
        """After ANALYZE, rows come from pg_class (marked ~ / rows_exact false); --exact counts them again."""
        url = database_factory()
        engine = make_engine(url, pool_size=1)
        now = datetime.now(UTC)
        try:
            schema.upgrade(engine)
            with session_factory(engine).begin() as session:
                synthetic.generate(
                    session, now=now, days=2, events_count=1_000, spans_count=0, metrics_count=0, users=10,
                    license_id=None, seed=3, dump_json=dump_json,
                )  # fmt: skip
            with engine.connect() as connection:
                connection.execute(text("COMMIT"))
                connection.execute(text("ANALYZE telemetry_events"))
        finally:
            engine.dispose()
        estimated = {table["name"]: table for table in _status_json(url)["tables"]}["telemetry_events"]
        assert estimated["rows_exact"] is False
        assert estimated["rows"] == 1_000  # ANALYZE of a small table sees every row
        printed = _run("status", database_url=url)
        assert printed.returncode == 0, printed.stderr
        assert "~1,000" in next(line for line in printed.stdout.splitlines() if "│ telemetry_events " in line)
        counted = {table["name"]: table for table in _status_json(url, "--exact")["tables"]}["telemetry_events"]
        assert counted["rows_exact"] is True and counted["rows"] == 1_000

    def test_a_big_relation_without_statistics_is_sampled(self, loaded_url: str) -> None:
        """Above the counting limit an unanalyzed relation is sampled: an estimate, which for a relation of
        fewer pages than a sample reads is every row."""
        engine = make_engine(loaded_url, pool_size=1)
        try:
            with session_factory(engine)() as session:
                found = status_service.report(session, now=datetime.now(UTC), count_below_bytes=0)
        finally:
            engine.dispose()
        traces = next(table for table in found.tables if table.name == "traces")
        assert traces.rows_exact is False
        assert traces.rows == SPANS == _exact_count(loaded_url, "traces")


class TestPrinted:
    def test_tables_for_people(self, loaded_url: str) -> None:
        """Rich tables: the database, tables, non-empty partitions (empty ones summarised), rollups, jobs."""
        result = _run("status", database_url=loaded_url)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        for title in ("Database", "Tables", "Partitions", "Rollups", "Jobs"):
            assert title in out
        assert f"{schema.head()} (head, up to date)" in out
        assert "empty partitions not shown" in out
        today = datetime.now(UTC).date()
        assert f"telemetry_events_p{today - timedelta(days=1):%Y%m%d}" in out
        assert f"telemetry_events_p{today + timedelta(days=7):%Y%m%d}" not in out  # empty, hidden
        all_parts = _run("status", "--all-partitions", database_url=loaded_url)
        assert f"telemetry_events_p{today + timedelta(days=7):%Y%m%d}" in all_parts.stdout
        upkeep_line = next(line for line in out.splitlines() if "partition_upkeep" in line)
        assert "ok" in upkeep_line and "3600 s" in upkeep_line

    def test_the_password_is_never_printed(self, loaded_url: str) -> None:
        """A URL with a password is shown without it (the local server trusts the connection either way)."""
        with_password = loaded_url.replace("postgres@", "postgres:s3cr3t-word@", 1)
        assert with_password != loaded_url
        result = _run("status", database_url=with_password)
        assert result.returncode == 0, result.stderr
        assert "s3cr3t-word" not in result.stdout + result.stderr
        assert _status_json(with_password)["database"]["url"] == loaded_url


class TestOtherStates:
    def test_an_empty_database_says_to_migrate(self, database_factory: Callable[[], str]) -> None:
        """Never migrated: no revision, a line saying to run db upgrade, no tables, exit 0."""
        url = database_factory()
        result = _run("status", database_url=url)
        assert result.returncode == 0, result.stderr
        assert "run 'fernando-telemetry db upgrade'" in result.stdout
        found = _status_json(url)
        assert found["database"]["revision"] is None and found["tables"] == [] and found["rollups"] == []
        assert all(job["runs"] == 0 for job in found["jobs"])

    def test_an_older_revision_is_reported_behind(self, database_factory: Callable[[], str]) -> None:
        """At revision 0003 (no job_runs yet) the report works and says the database is behind head."""
        url = database_factory()
        engine = make_engine(url, pool_size=1)
        try:
            schema.upgrade(engine, revision="0003")
        finally:
            engine.dispose()
        found = _status_json(url)
        assert found["database"]["revision"] == "0003" and found["database"]["up_to_date"] is False
        assert "job_runs" not in {table["name"] for table in found["tables"]}
        assert {lag["table"] for lag in found["rollups"]} == {"telemetry_events", "system_metrics", "traces"}
        printed = _run("status", database_url=url)
        assert f"0003, head is {schema.head()}: run 'fernando-telemetry db upgrade'" in printed.stdout

    def test_no_database_is_one_line(self) -> None:
        """Nothing listening: one line on stderr, exit 1, no traceback."""
        result = _real("status", database_url="postgresql://postgres@127.0.0.1:9/x")
        assert result.returncode == 1
        assert "cannot reach the database" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
