"""Scheduler jobs (rollup refresh, retention, KPIs) killed mid-way: run in their own process, killed with SIGKILL at
a chosen SQL statement or commit (or their connection ended by ``pg_terminate_backend``), then run again. The
second run completes the work, and every table then equals what one uninterrupted run leaves on the same data."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from fernando_telemetry.composition import jobs
from fernando_telemetry.composition.wiring import dump_json
from fernando_telemetry.services import schema, synthetic
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import libpq_url, make_engine, session_factory, sqlalchemy_url
from reliability.harness import LONG, Figures, wait_for
from reliability.jobrunner import APPLICATION_NAME, FAILED, KILLED, run_in_process
from tests.ingest_fixtures import make_tenant

# tables that log runs rather than hold results: a killed run and its rerun are two entries by design
BOOKKEEPING_TABLES = {"job_runs", "audit_log", "alembic_version"}

DAYS = 6
# settings of the job processes: retention short enough to drop partitions and trim a boundary one of DAYS days of data
JOB_ENV = {
    "FERNANDO_TELEMETRY_EVENTS_RETENTION_DAYS": "4",
    "FERNANDO_TELEMETRY_METRICS_RETENTION_DAYS": "5",
    "FERNANDO_TELEMETRY_TRACES_RETENTION_DAYS": "3",
    "FERNANDO_TELEMETRY_ROLLUP_HOURLY_RETENTION_DAYS": "2",
    "FERNANDO_TELEMETRY_ROLLUP_DAILY_RETENTION_DAYS": "5",
    "FERNANDO_TELEMETRY_IDEMPOTENCY_WINDOW_HOURS": "24",
    "FERNANDO_TELEMETRY_ROLLUP_SAFETY_LAG_S": "0",
    "FERNANDO_TELEMETRY_ROLLUP_BATCH_HOURS": "24",
}


@dataclass(frozen=True)
class Dataset:
    """A template database holding DAYS days of synthetic telemetry, and the instant the jobs take as ``now``."""

    template: str
    job_now: datetime


class Copies:
    """Databases made from a template (``CREATE DATABASE ... TEMPLATE``), all dropped at the end."""

    def __init__(self, server_url: str) -> None:
        self._server_url = server_url
        self._made: list[str] = []

    def make(self, template: str) -> str:
        name = f"ft_rel_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self._server_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
        self._made.append(name)
        return _url_of(self._server_url, name)

    def drop_all(self) -> None:
        with psycopg.connect(self._server_url, autocommit=True) as connection:
            for name in self._made:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _url_of(server_url: str, database: str) -> str:
    return sqlalchemy_url(server_url).set(database=database).set(drivername="postgresql").render_as_string(hide_password=False)


def _database_name(url: str) -> str:
    database = sqlalchemy_url(url).database
    assert database is not None
    return database


@pytest.fixture(scope="module")
def copies(server_url: str) -> Iterator[Copies]:
    made = Copies(server_url)
    yield made
    made.drop_all()


@pytest.fixture(scope="module")
def dataset(database_factory: Callable[[], str], copies: Copies) -> Dataset:
    """DAYS days of events, spans and metric samples for 300 users on 5 licenses, 200 stored ingest answers of the
    last 48 hours; rollups never refreshed. ``job_now`` is after every row's ``created_at``."""
    url = database_factory()
    engine = make_engine(url, pool_size=1)
    try:
        schema.upgrade(engine)
        tenant_key_id = _tenant_key_id(engine)
        data_now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        scale = 4 if LONG else 1
        with session_factory(engine).begin() as session:
            synthetic.generate(
                session,
                now=data_now,
                days=DAYS,
                events_count=10_000 * scale,
                spans_count=4_000 * scale,
                metrics_count=4_000 * scale,
                users=300,
                license_id=None,
                seed=11,
                dump_json=dump_json,
            )
        with psycopg.connect(libpq_url(url)) as connection:
            for number in range(200):
                connection.execute(
                    "INSERT INTO ingest_batches (api_key_id, endpoint, idempotency_key, response, created_at) "
                    "VALUES (%s, 'events', %s, '{}'::jsonb, %s)",
                    (tenant_key_id, f"key-{number}", data_now - timedelta(hours=48 * number / 200)),
                )
        job_now = datetime.now(UTC) + timedelta(seconds=1)
    finally:
        engine.dispose()
    return Dataset(_database_name(url), job_now)


def _tenant_key_id(engine: Any) -> int:
    make_tenant(engine)
    with engine.connect() as connection:
        from sqlalchemy import text

        return int(connection.execute(text("SELECT max(api_key_id) FROM api_keys")).scalar_one())


def run_job(url: str, job: str, now: datetime, *, kill_at: int = 0, terminate_at: int = 0) -> tuple[int, dict[str, Any]]:
    """The job in its own process; its exit code and its result (empty when it was killed)."""
    return run_in_process(url, job, now, env=JOB_ENV, kill_at=kill_at, terminate_at=terminate_at)


def wait_until_backends_gone(url: str) -> float:
    """A killed client's backend ends when it reads the closed socket; the next run must not meet its locks."""

    def gone() -> bool:
        with psycopg.connect(libpq_url(url), autocommit=True) as connection:
            return connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
                (APPLICATION_NAME,),
            ).fetchone() == (0,)

    return wait_for(gone, timeout_s=60, interval_s=0.05, what="the killed job's backend to end")


@dataclass(frozen=True)
class Snapshot:
    """Per table (a partitioned table with all its partitions; partitions not apart): the row count and an md5
    of its rows sorted, identity columns and columns that default to the clock left out; and each partitioned
    table's list of partitions."""

    url: str
    tables: dict[str, tuple[int, str]]
    columns: dict[str, list[str]]

    def count(self, table: str) -> int:
        return self.tables[table][0]


def snapshot(url: str) -> Snapshot:
    tables: dict[str, tuple[int, str]] = {}
    kept: dict[str, list[str]] = {}
    with psycopg.connect(libpq_url(url)) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"
            )
        ]
        for table in names:
            if table in BOOKKEEPING_TABLES:
                continue
            columns = kept[table] = [
                row[0]
                for row in connection.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
                    "AND is_identity = 'NO' AND coalesce(column_default, '') NOT SIMILAR TO "
                    "'%%(nextval|now\\(\\)|clock_timestamp|CURRENT_TIMESTAMP|statement_timestamp)%%' ORDER BY ordinal_position",
                    (table,),
                )
            ]
            row_text = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns))
            count, digest = connection.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(md5(string_agg(r, E'\\n' ORDER BY r)), '') FROM (SELECT {} AS r FROM {}) s"
                ).format(row_text, sql.Identifier(table))
            ).fetchone()
            tables[table] = (count, digest)
        for parent, children in connection.execute(
            "SELECT p.relname, string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = 'public' GROUP BY p.relname"
        ):
            tables[f"partitions of {parent}"] = (len(children.split(",")), children)
    return Snapshot(url, tables, kept)


@dataclass(frozen=True)
class Comparison:
    differences: list[str]
    """Tables whose rows differ beyond floating-point rounding."""
    rounding: list[str]
    """Tables equal once ``double precision`` values are compared with a relative tolerance of 1e-9."""


def compare(expected: Snapshot, actual: Snapshot) -> Comparison:
    """Equal digests, or else rows equal but for the last bits of floating-point sums: PostgreSQL adds a
    group's doubles in the order it reads them, and a killed transaction leaves the heap in another order."""
    differences, rounding = [], []
    for table in sorted(set(expected.tables) | set(actual.tables)):
        if expected.tables.get(table) == actual.tables.get(table):
            continue
        if table.startswith("partitions of ") or table not in expected.columns or table not in actual.columns:
            differences.append(f"{table}: {expected.tables.get(table)} uninterrupted, {actual.tables.get(table)} after the kill")
            continue
        problem = _rows_differ(expected, actual, table)
        (differences if problem else rounding).append(f"{table}: {problem}" if problem else table)
    return Comparison(differences, rounding)


def _rows_differ(expected: Snapshot, actual: Snapshot, table: str) -> str | None:
    columns = expected.columns[table]
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(table))
    with psycopg.connect(libpq_url(expected.url)) as one, psycopg.connect(libpq_url(actual.url)) as other:
        mine, theirs = one.execute(query).fetchall(), other.execute(query).fetchall()
    if len(mine) != len(theirs):
        return f"{len(mine)} rows uninterrupted, {len(theirs)} after the kill"

    def key(row: tuple[Any, ...]) -> tuple[str, ...]:
        return tuple(repr(value) for value in row if not isinstance(value, float))

    for left, right in zip(sorted(mine, key=key), sorted(theirs, key=key), strict=True):
        for name, a, b in zip(columns, left, right, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
                    return f"{name} {a!r} vs {b!r} in {left[:3]}"
            elif a != b:
                return f"{name} {a!r} vs {b!r} in {left[:3]}"
    return None


def kill_points(total: int, count: int) -> list[int]:
    """``count`` points spread over 1..total (the first and last included when count allows)."""
    if count >= total:
        return list(range(1, total + 1))
    return sorted({max(1, round(1 + (total - 1) * (i + 0.5) / count)) for i in range(count)})


@dataclass
class Case:
    how: str
    point: int
    first: str
    second: str
    reruns: int
    backend_gone_s: float
    comparison: Comparison

    @property
    def equal(self) -> bool:
        return not self.comparison.differences

    @property
    def verdict(self) -> str:
        if self.comparison.differences:
            return "NO: " + "; ".join(self.comparison.differences)[:80]
        if self.comparison.rounding:
            return "yes, float sums to 1e-9: " + ", ".join(self.comparison.rounding)
        return "yes, identical"


def interrupted_runs(
    template: str, job: str, now: datetime, copies: Copies, *, kills: int, terminations: int
) -> tuple[dict[str, Any], Snapshot, list[Case], float]:
    """The uninterrupted run on one copy, then per chosen point a copy killed there and run again."""
    baseline_url = copies.make(template)
    started = time.monotonic()
    code, baseline = run_job(baseline_url, job, now)
    baseline_s = time.monotonic() - started
    assert code == 0 and baseline["ran"], f"the uninterrupted {job} run failed: {baseline}"
    expected = snapshot(baseline_url)
    total = baseline["points"]
    plan = [("SIGKILL", p) for p in kill_points(total, kills)]
    plan += [("pg_terminate_backend", p) for p in kill_points(total - 1, terminations)]
    cases: list[Case] = []
    for how, point in plan:
        url = copies.make(template)
        code, first = run_job(url, job, now, **({"kill_at": point} if how == "SIGKILL" else {"terminate_at": point}))
        if how == "SIGKILL":
            assert code == KILLED and not first, f"{job}: the run was not killed at point {point} of {total}: {first}"
            first_text = f"killed at {point}/{total}"
        else:
            assert code == FAILED, f"{job}: ending the connection at point {point} did not fail the run: {first}"
            first_text = f"failed at {point}/{total}: {first['error'][:60]}"
        gone_s = wait_until_backends_gone(url)
        reruns = 0
        while True:  # as the scheduler does at its next ticks: until the job ran and has nothing left
            reruns += 1
            code, second = run_job(url, job, now)
            assert code == 0, f"{job}: the run after the kill failed: {second}"
            if second["ran"] and "left" not in second["summary"] or reruns >= 3:
                break
        cases.append(Case(how, point, first_text, second["summary"], reruns, gone_s, compare(expected, snapshot(url))))
    return baseline, expected, cases, baseline_s


def report(
    figures: Figures, job: str, baseline: dict[str, Any], expected: Snapshot, cases: list[Case], baseline_s: float
) -> None:
    figures.line(
        f"job: {job}, each run in its own process (reliability.jobrunner: the job of jobs.default_jobs, as the scheduler runs it)"
    )
    figures.line(f"uninterrupted: {baseline['summary']} ({baseline['points']} statements and commits, {baseline_s:.1f} s)")
    figures.line(
        f"compared: {len(expected.columns)} tables (rows sorted, md5; identity and clock-default columns left out; "
        "where the md5 differs, row by row with doubles to a relative 1e-9) and the partition lists"
    )
    figures.table(
        ["how", "point", "first run", "next run", "runs", "backend gone s", "equal to the uninterrupted run"],
        [(c.how, c.point, c.first, c.second[:60], c.reruns, c.backend_gone_s, c.verdict) for c in cases],
    )
    figures.line(
        f"interrupted runs: {len(cases)}, completed by the next run: {sum(c.reruns == 1 for c in cases)}, "
        f"results equal to the uninterrupted run: {sum(c.equal for c in cases)}"
    )


def _counts(kills_short: int, kills_long: int) -> tuple[int, int]:
    return (kills_long, max(2, kills_long // 3)) if LONG else (kills_short, 1)


class TestJobsKilledMidway:
    def test_rollup_refresh(self, dataset: Dataset, copies: Copies, figures: Figures) -> None:
        """The refresh commits step by step (24 dirty hours per table per step): killed after any statement or
        commit, the next run finishes and the rollups, watermarks and dirty lists equal one uninterrupted run's."""
        kills, terminations = _counts(3, 16)
        baseline, expected, cases, baseline_s = interrupted_runs(
            dataset.template, "rollups", dataset.job_now, copies, kills=kills, terminations=terminations
        )
        report(figures, "rollup refresh", baseline, expected, cases, baseline_s)
        assert expected.count("traces_hourly") > 0 and expected.count("telemetry_events_daily") > 0, (
            "the refresh wrote no rollups"
        )
        assert baseline["summary"].count("left") == 0
        for case in cases:
            assert case.equal, f"{case.how} at {case.point}: {case.comparison.differences}"
            assert case.reruns == 1, f"{case.how} at {case.point}: the next run did not finish the work: {case.second}"

    def test_retention(self, dataset: Dataset, copies: Copies, figures: Figures) -> None:
        """Retention (drop partitions, trim the boundary one, expire stored answers and rollups) killed mid-way
        leaves what one uninterrupted run leaves once it runs again."""
        refreshed = copies.make(dataset.template)
        code, refresh = run_job(refreshed, "rollups", dataset.job_now)
        assert code == 0 and refresh["ran"]
        kills, terminations = _counts(2, 10)
        baseline, expected, cases, baseline_s = interrupted_runs(
            _database_name(refreshed), "retention", dataset.job_now, copies, kills=kills, terminations=terminations
        )
        report(figures, "retention (rollups refreshed first)", baseline, expected, cases, baseline_s)
        before = snapshot(refreshed)
        assert expected.count("partitions of telemetry_events") < before.count("partitions of telemetry_events"), (
            "no partition dropped"
        )
        assert expected.count("ingest_batches") < before.count("ingest_batches"), "no stored answer expired"
        for case in cases:
            assert case.equal, f"{case.how} at {case.point}: {case.comparison.differences}"
            assert case.reruns == 1

    def test_kpi_job(self, dataset: Dataset, copies: Copies, figures: Figures) -> None:
        """The KPI job (previous and current day, week and month) killed mid-way: the next run's KPIs equal one
        uninterrupted run's."""
        kills, terminations = _counts(2, 10)
        baseline, expected, cases, baseline_s = interrupted_runs(
            dataset.template, "kpis", dataset.job_now, copies, kills=kills, terminations=terminations
        )
        report(figures, "KPIs", baseline, expected, cases, baseline_s)
        assert expected.count("business_metrics") > 0, "the KPI job wrote nothing"
        for case in cases:
            assert case.equal, f"{case.how} at {case.point}: {case.comparison.differences}"
            assert case.reruns == 1


def test_settings_names_exist() -> None:
    """The job settings this module sets are real settings (a renamed one would silently fall back to its default)."""
    fields = set(Settings.model_fields)
    for name in JOB_ENV:
        assert name.removeprefix("FERNANDO_TELEMETRY_").lower() in fields, name
    assert {job.name for job in jobs.default_jobs(Settings())} >= {"rollups", "retention", "kpis"}
