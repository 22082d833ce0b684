"""Query speed at tens of millions of rows: rollups behind the views vs raw rows, traces by id, event search, series.

It generates (or reuses) synthetic telemetry with the project's generator, refreshes the rollups, then times
side by side in one run: the hourly events summary over 7 days from ``telemetry_events_hourly_summary`` vs the
same aggregate over raw rows; a daily p95 over 30 days from the daily rollups' sketches vs ``percentile_cont``
on raw rows, with the sketch's relative error; one trace by id with no time range; the first page of an events
search; a 24-hour metric series at 1-minute steps. Then the HTTP ingest rate with the rollup job on and off
(``bench/ingest_http.py`` run twice). Prints each time, the ratios and the percentile error.

    .venv/bin/python bench/query.py [--events 10000000 --spans 10000000 --metrics 10000000 --days 30]
                                    [--database-url URL] [--reuse] [--fresh] [--rebuild-rollups] [--ingest-busy]
    .venv/bin/python bench/query.py --only ingest --ingest-busy --ingest-runs 3   # the ingest part alone

With no ``--database-url`` (nor ``DATABASE_URL``) the data lives in a durable embedded PostgreSQL 18 under
``~/.cache/fernando-telemetry-bench`` kept between runs, so a second run skips the load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
from alembic.config import Config
from alembic.script import ScriptDirectory
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.composition.wiring import dump_json
from fernando_telemetry.core import containment
from fernando_telemetry.core.ingest import events as event_columns
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.core.series import Aggregation, Step
from fernando_telemetry.core.synthetic import SyntheticUser, Window, event_rows
from fernando_telemetry.services import event_search, metric_series, rollups, schema, synthetic, traces
from fernando_telemetry.storage import rollups as rollup_store
from fernando_telemetry.storage.bulk import copy_rows
from fernando_telemetry.storage.database import libpq_url, make_engine, session_factory
from fernando_telemetry.storage.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_DIR = Path.home() / ".cache" / "fernando-telemetry-bench"
DATABASE = "bench"
RAW_TABLES = ("telemetry_events", "traces", "system_metrics")
ROLLUP_TABLES = tuple(f"{table}_{grain}" for table in RAW_TABLES for grain in ("hourly", "daily"))
ROLLUPS_REVISION = "0003"
"""The revision that adds the rollups: it and later ones can be re-run on loaded data (their downgrade keeps
the raw tables); a change to an earlier one needs ``--fresh``."""
ROLLUP_CODE = Path(rollup_store.__file__)
"""The SQL that computes rollup rows: when it changed since the rollups were computed, they are rebuilt."""
TAIL_ENVIRONMENT = "bench-query-tail"
SERIES_METRIC, SERIES_SERVICE = "http.latency", "api"
P95_METRIC = "http.latency"
ADMIN = Principal(api_key_id=0, license_id=None, scopes=frozenset({"admin", "read"}))

# -- timing -----------------------------------------------------------------------------------------


@dataclass
class Timings:
    """The wall times of one variant over the rounds (seconds), and what its last call returned."""

    label: str
    seconds: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    def quantile_ms(self, fraction: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)] * 1000

    def ratio_to(self, fast: Timings) -> tuple[float, float]:
        """How many times slower than ``fast``: ratio of the medians, and the median of the per-round ratios."""
        paired = [slow / quick for slow, quick in zip(self.seconds, fast.seconds, strict=True)]
        return self.median_ms / fast.median_ms, statistics.median(paired)


def interleaved(
    variants: dict[str, tuple[str, Callable[[], Any]]],
    *,
    rounds: int,
    calls: int = 1,
    progress: Progress,
    description: str,
) -> dict[str, Timings]:
    """Each variant once untimed (warm-up), then ``rounds`` rounds running every variant ``calls`` times in
    turn, the order rotating by one variant per round."""
    task = progress.add_task(description, total=len(variants) * (rounds * calls + 1))
    timings = {key: Timings(label) for key, (label, _) in variants.items()}
    for key, (_, run) in variants.items():
        timings[key].result = run()
        progress.advance(task)
    order = list(variants)
    for number in range(rounds):
        shift = number % len(order)
        for key in order[shift:] + order[:shift]:
            run = variants[key][1]
            for _ in range(calls):
                started = time.perf_counter()
                timings[key].result = run()
                timings[key].seconds.append(time.perf_counter() - started)
                progress.advance(task)
    progress.remove_task(task)
    return timings


def ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


# -- the database and its dataset ---------------------------------------------------------------------


@dataclass
class Where:
    url: str
    description: str
    state_path: Path
    postmaster_pid: int | None


@contextmanager
def database(args: argparse.Namespace) -> Iterator[Where]:
    """The given server, or the persistent embedded PostgreSQL 18 under ``--cluster-dir`` (started if needed,
    stopped afterwards if started here)."""
    if args.database_url:
        if args.fresh:
            raise SystemExit("--fresh drops the bench database: only with the embedded cluster, not with --database-url")
        digest = hashlib.sha256(args.database_url.encode()).hexdigest()[:12]
        yield Where(
            args.database_url, "the server at --database-url / DATABASE_URL", DEFAULT_DIR / f"dataset-{digest}.json", None
        )
        return
    cluster = EmbeddedPostgres(args.cluster_dir, port=0, database=DATABASE, durable=True)
    url = cluster.start()
    try:
        state_path = Path(args.cluster_dir) / "dataset.json"
        if args.fresh:
            admin_url = url.rsplit("/", 1)[0] + "/postgres"
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
                admin.execute(f"CREATE DATABASE {DATABASE}")
            state_path.unlink(missing_ok=True)
        yield Where(
            url,
            f"embedded PostgreSQL in {args.cluster_dir} (kept between runs; durable: fsync on, default settings)",
            state_path,
            cluster.pid,
        )
    finally:
        cluster.stop()


def fingerprints() -> dict[str, str]:
    """A digest of each migration revision's file and of the rollup SQL, to tell whether the schema or the
    rollups of a reused dataset are those of the code being measured."""
    config = Config()
    config.set_main_option("script_location", schema.SCRIPT_LOCATION)
    script = ScriptDirectory.from_config(config)
    found = {
        f"revision {revision.revision}": hashlib.sha256(Path(revision.path).read_bytes()).hexdigest()[:16]
        for revision in script.walk_revisions()
    }
    found["rollup SQL"] = hashlib.sha256(ROLLUP_CODE.read_bytes()).hexdigest()[:16]
    return found


@dataclass
class Setup:
    """How the dataset and the rollups came to be in this run."""

    loaded: bool = False
    load_seconds: float = 0.0
    load_parts: dict[str, float] = field(default_factory=dict)
    remigrated: str | None = None
    remigrate_seconds: float = 0.0
    rebuilt: str | None = None
    refresh_seconds: float = 0.0
    hours_recomputed: int = 0
    days_recomputed: int = 0
    vacuum_seconds: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)


def count_rows(conn: psycopg.Connection) -> dict[str, int]:
    return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in RAW_TABLES}


def load(engine: Engine, args: argparse.Namespace, progress: Progress, setup: Setup) -> None:
    """The project's generator (``services.synthetic.generate``, as ``fernando-telemetry generate`` runs it):
    COPY in one transaction, timed per table from its progress reports."""
    wanted = {"events": args.events, "spans": args.spans, "metrics": args.metrics}
    tasks = {kind: progress.add_task(f"generate {kind}", total=count) for kind, count in wanted.items()}
    marks: dict[str, float] = {}
    started = time.perf_counter()

    def advance(kind: str, rows: int) -> None:
        marks.setdefault(kind, time.perf_counter())
        marks[f"{kind} end"] = time.perf_counter()
        progress.advance(tasks[kind], rows)

    with session_factory(engine).begin() as session:
        synthetic.generate(
            session,
            now=datetime.now(UTC),
            days=args.days,
            events_count=args.events,
            spans_count=args.spans,
            metrics_count=args.metrics,
            users=args.users,
            license_id=None,
            seed=args.seed,
            dump_json=dump_json,
            progress=advance,
        )
        before_commit = time.perf_counter()
    setup.loaded = True
    setup.load_seconds = time.perf_counter() - started
    previous = started
    for kind in wanted:
        end = marks.get(f"{kind} end", previous)
        setup.load_parts[kind] = end - previous
        previous = end
    setup.load_parts["commit"] = setup.load_seconds - (before_commit - started)
    for task in tasks.values():
        progress.remove_task(task)


def remigrate_rollups(engine: Engine, setup: Setup, changed: list[str]) -> None:
    """Re-run the rollups revision and the later ones on the loaded data: the rollups start empty."""
    earliest = min(name.split()[1] for name in changed)
    if earliest < ROLLUPS_REVISION:
        raise SystemExit(
            f"revision {earliest} changed since the data was loaded and its downgrade would drop raw data: "
            "rerun with --fresh (embedded cluster) or load a fresh database"
        )
    started = time.perf_counter()
    down_to = f"{int(earliest) - 1:04d}"
    schema.downgrade(engine, revision=down_to)
    schema.upgrade(engine)
    setup.remigrate_seconds = time.perf_counter() - started
    setup.remigrated = (
        f"{', '.join(sorted(changed))} changed since the data was loaded: downgraded to {down_to} and upgraded again"
    )


def refresh_all(sessions: sessionmaker[Session], progress: Progress, setup: Setup) -> None:
    """Every dirty hour and ended day, one transaction per step as ``fernando-telemetry rollups refresh`` does;
    safety lag 0 s: the load has committed and nothing else writes."""
    task = progress.add_task("rollups refresh", total=None)
    started = time.perf_counter()
    now = datetime.now(UTC)
    while True:
        with sessions.begin() as session:
            step = rollups.refresh_step(session, now=now, safety_lag_s=0.0, max_hours=24, wait=True)
        setup.hours_recomputed += step.hours_recomputed
        setup.days_recomputed += step.days_recomputed
        done = setup.hours_recomputed + setup.days_recomputed
        progress.update(task, completed=done, total=done + step.hours_remaining + step.days_remaining)
        if step.done:
            break
    setup.refresh_seconds = time.perf_counter() - started
    progress.remove_task(task)


def prepare(engine: Engine, conn: psycopg.Connection, where: Where, args: argparse.Namespace, progress: Progress) -> Setup:
    """Load the data (or check the reused data), bring the schema and the rollups up to date, VACUUM ANALYZE."""
    setup = Setup()
    schema.upgrade(engine)
    sessions = session_factory(engine)
    current = fingerprints()
    state = json.loads(where.state_path.read_text()) if where.state_path.exists() else {}
    counts = count_rows(conn)
    wanted = {"telemetry_events": args.events, "traces": args.spans, "system_metrics": args.metrics}
    if not any(counts.values()):
        load(engine, args, progress, setup)
        counts = count_rows(conn)
        state = {
            "requested": {
                "events": args.events,
                "spans": args.spans,
                "metrics": args.metrics,
                "days": args.days,
                "users": args.users,
                "seed": args.seed,
            },
            "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_seconds": round(setup.load_seconds, 1),
            "load_parts": {kind: round(seconds, 1) for kind, seconds in setup.load_parts.items()},
            "fingerprints": current,
        }
    else:
        requested = state.get("requested", {})
        same = (
            requested.get("days") == args.days
            and requested.get("events") == args.events
            and requested.get("spans") == args.spans
            and requested.get("metrics") == args.metrics
        )
        if not args.reuse and not same:
            found = ", ".join(f"{table} {count:,}" for table, count in counts.items())
            raise SystemExit(
                f"the database already holds telemetry ({found}), not what was asked "
                f"({', '.join(f'{table} {count:,}' for table, count in wanted.items())}, {args.days} days): "
                "rerun with --reuse to measure it as it is, or --fresh to drop it and load anew (embedded cluster only)"
            )
        known = state.get("fingerprints", {})
        changed = [
            name for name, digest in current.items() if name.startswith("revision") and known and known.get(name) != digest
        ]
        if changed:
            remigrate_rollups(engine, setup, changed)
        elif args.rebuild_rollups or (known and known.get("rollup SQL") != current["rollup SQL"]):
            reason = "--rebuild-rollups" if args.rebuild_rollups else "the rollup SQL changed since they were computed"
            first_day, last_day = conn.execute(
                "SELECT min(event_timestamp)::date, max(event_timestamp)::date FROM telemetry_events"
            ).fetchone()
            with sessions.begin() as session:
                marked = rollups.rebuild(session, first_day=first_day, last_day=last_day)
            setup.rebuilt = f"{reason}: every hour of {first_day} .. {last_day} marked dirty ({marked:,} table-hours)"
        state["fingerprints"] = current
    refresh_all(sessions, progress, setup)
    started = time.perf_counter()
    conn.execute(f"VACUUM (ANALYZE) {', '.join(RAW_TABLES + ROLLUP_TABLES)}")
    setup.vacuum_seconds = time.perf_counter() - started
    state["counts"] = counts
    where.state_path.parent.mkdir(parents=True, exist_ok=True)
    where.state_path.write_text(json.dumps(state, indent=2) + "\n")
    setup.state = state
    return setup


@dataclass(frozen=True)
class Dataset:
    counts: dict[str, int]
    first_hour: datetime
    last_hour: datetime
    partitions: dict[str, int]
    sizes_gb: dict[str, tuple[float, float]]
    licenses: int
    users: int
    busiest_license: int

    @property
    def end(self) -> datetime:
        """The hour after the last one with data: what the bench calls "now"."""
        return self.last_hour + timedelta(hours=1)


def describe(conn: psycopg.Connection, counts: dict[str, int]) -> Dataset:
    first_hour, last_hour = conn.execute("SELECT min(bucket_start), max(bucket_start) FROM telemetry_events_hourly").fetchone()
    if last_hour is None:
        raise SystemExit("no rolled-up hours of telemetry_events: the refresh did not run")
    partitions, sizes = {}, {}
    for table in RAW_TABLES:
        partitions[table] = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", (table,)).fetchone()[
            0
        ]
        heap, index = conn.execute(
            "SELECT coalesce(sum(pg_table_size(relid)), 0), coalesce(sum(pg_indexes_size(relid)), 0) "
            "FROM pg_partition_tree(%s::regclass)",
            (table,),
        ).fetchone()
        sizes[table] = (heap / 2**30, index / 2**30)
    licenses, users = conn.execute(
        "SELECT count(DISTINCT license_id), count(*) FROM users WHERE user_id LIKE 'synthetic-u%'"
    ).fetchone()
    busiest = conn.execute(
        "SELECT license_id FROM telemetry_events_daily WHERE license_id IS NOT NULL GROUP BY 1 ORDER BY sum(events) DESC LIMIT 1"
    ).fetchone()
    if busiest is None:  # no ended day yet (a dataset of less than a day)
        busiest = conn.execute("SELECT license_id FROM users WHERE license_id IS NOT NULL LIMIT 1").fetchone()
    return Dataset(counts, first_hour, last_hour, partitions, sizes, licenses, users, busiest[0])


# -- 1. the hourly events summary ------------------------------------------------------------------------

# events > 0: the view also has a row for an hour with failed server spans and no api_event (server_span_errors)
VIEW_SQL = """
SELECT hour, event_type, license_id, events, unique_users, p95_duration_ms
  FROM telemetry_events_hourly_summary
 WHERE hour >= %(start)s AND hour < %(end)s AND events > 0
 ORDER BY 1, 2, 3"""

RAW_SUMMARY_SQL = """
SELECT date_trunc('hour', event_timestamp, 'UTC') AS hour, event_type, license_id, count(*) AS events,
       count(DISTINCT user_id) AS unique_users,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
  FROM telemetry_events
 WHERE event_timestamp >= %(start)s AND event_timestamp < %(end)s
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3"""


def same_rows(left: Sequence[tuple[Any, ...]], right: Sequence[tuple[Any, ...]]) -> tuple[bool, str]:
    """Equal row by row: keys and counts exactly, floats to 1e-9 relative."""
    if len(left) != len(right):
        return False, f"{len(left):,} rows vs {len(right):,}"
    for one, other in zip(left, right, strict=True):
        for a, b in zip(one, other, strict=True):
            if isinstance(a, float) or isinstance(b, float):
                if (a is None) != (b is None) or (a is not None and not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)):
                    return False, f"first difference: {one} vs {other}"
            elif str(a) != str(b):
                return False, f"first difference: {one} vs {other}"
    return True, f"{len(left):,} rows equal"


@dataclass
class SummaryResult:
    start: datetime
    end: datetime
    timings: dict[str, Timings]
    answers: str
    tail: Timings | None = None
    tail_rows: int = 0
    tail_answers: str = ""


def summary_bench(
    conn: psycopg.Connection, engine: Engine, data: Dataset, args: argparse.Namespace, progress: Progress
) -> SummaryResult:
    params = {"start": data.end - timedelta(days=7), "end": data.end}
    timings = interleaved(
        {
            "view": ("view telemetry_events_hourly_summary", lambda: conn.execute(VIEW_SQL, params).fetchall()),
            "raw": (
                "raw rows: count, count(DISTINCT user_id), percentile_cont(0.95)",
                lambda: conn.execute(RAW_SUMMARY_SQL, params).fetchall(),
            ),
        },
        rounds=args.rounds,
        progress=progress,
        description="1. events summary, 7 days",
    )
    equal, answers = same_rows(timings["view"].result, timings["raw"].result)
    result = SummaryResult(params["start"], params["end"], timings, ("view == raw: " if equal else "MISMATCH: ") + answers)

    # the tail: fresh rows in the last hour make it pending, so the view reads that hour from raw rows
    users = [
        SyntheticUser(user_id, license_id)
        for user_id, license_id in conn.execute(
            "SELECT user_id, license_id FROM users WHERE user_id LIKE 'synthetic-u%' ORDER BY user_id"
        ).fetchall()
    ]
    rows = (
        row._replace(environment=TAIL_ENVIRONMENT)
        for row in event_rows(
            random.Random(args.seed), args.tail_events, window=Window(data.last_hour, data.end), users=users, dump_json=dump_json
        )
    )
    with session_factory(engine).begin() as session:
        result.tail_rows = copy_rows(session, table="telemetry_events", columns=event_columns.COLUMNS, rows=rows)
    try:
        tail = interleaved(
            {
                "tail": (
                    f"view, last hour pending ({result.tail_rows:,} fresh rows)",
                    lambda: conn.execute(VIEW_SQL, params).fetchall(),
                )
            },
            rounds=args.rounds,
            progress=progress,
            description="1. events summary with a tail",
        )["tail"]
        result.tail = tail
        equal, answers = same_rows(tail.result, conn.execute(RAW_SUMMARY_SQL, params).fetchall())
        result.tail_answers = ("view == raw: " if equal else "MISMATCH: ") + answers
    finally:
        conn.execute(
            "DELETE FROM telemetry_events WHERE environment = %s AND event_timestamp >= %s",
            (TAIL_ENVIRONMENT, data.last_hour),
        )
    return result


# -- 2. a daily p95 over 30 days -------------------------------------------------------------------------

ROLLUP_P95_SQL = """
SELECT day, (rollup_sketch_quantiles(array_agg(key ORDER BY key), array_agg(count ORDER BY key),
                                     '{{0.95}}', min(lowest), max(highest)))[1] AS p95
  FROM (SELECT r.bucket_start AS day, u.key, sum(u.count)::bigint AS count,
               min(r.{prefix}_min) AS lowest, max(r.{prefix}_max) AS highest
          FROM {table} r
         CROSS JOIN LATERAL unnest(r.{prefix}_sketch_keys, r.{prefix}_sketch_counts) AS u(key, count)
         WHERE r.bucket_start >= %(start)s AND r.bucket_start < %(end)s {condition}
         GROUP BY 1, 2) AS buckets
 GROUP BY day ORDER BY day"""

RAW_P95_SQL = """
SELECT date_trunc('day', {time_column}, 'UTC') AS day, percentile_cont(0.95) WITHIN GROUP (ORDER BY {column}) AS p95
  FROM {table}
 WHERE {time_column} >= %(start)s AND {time_column} < %(end)s {condition}
 GROUP BY 1 ORDER BY 1"""

P95_CASES = (  # key, what, daily table, sketch prefix, raw table, time column, value column, condition
    ("spans", "traces.duration_ms, every span", "traces_daily", "duration", "traces", "start_time", "duration_ms", ""),
    (
        "metric",
        f"system_metrics.value of {P95_METRIC}, every host",
        "system_metrics_daily",
        "value",
        "system_metrics",
        '"timestamp"',
        "value",
        f"AND {{alias}}metric_name = '{P95_METRIC}'",
    ),
)


@dataclass
class P95Result:
    key: str
    what: str
    days: int
    timings: dict[str, Timings]
    errors: list[float]

    @property
    def max_error(self) -> float:
        return max(self.errors)

    @property
    def median_error(self) -> float:
        return statistics.median(self.errors)


def p95_bench(conn: psycopg.Connection, data: Dataset, args: argparse.Namespace, progress: Progress) -> list[P95Result]:
    last_day = data.last_hour.replace(hour=0)  # the day of the last data: not ended when it was generated
    params = {"start": last_day - timedelta(days=args.days), "end": last_day}
    results = []
    for key, what, daily, prefix, raw, time_column, column, condition in P95_CASES:
        rollup_sql = ROLLUP_P95_SQL.format(prefix=prefix, table=daily, condition=condition.format(alias="r."))
        raw_sql = RAW_P95_SQL.format(time_column=time_column, column=column, table=raw, condition=condition.format(alias=""))
        timings = interleaved(
            {
                "rollup": (
                    f"{daily}: sketches merged per day, rollup_sketch_quantiles",
                    lambda sql=rollup_sql: conn.execute(sql, params).fetchall(),
                ),
                "raw": (f"{raw}: percentile_cont(0.95) per day", lambda sql=raw_sql: conn.execute(sql, params).fetchall()),
            },
            rounds=args.rounds,
            progress=progress,
            description=f"2. daily p95, {key}",
        )
        sketch = dict(timings["rollup"].result)
        exact = dict(timings["raw"].result)
        if sorted(sketch) != sorted(exact):
            raise SystemExit(f"p95 of {key}: days differ between rollups ({len(sketch)}) and raw rows ({len(exact)})")
        errors = [abs(sketch[day] - exact[day]) / abs(exact[day]) for day in exact]
        results.append(P95Result(key, what, len(exact), timings, errors))
    return results


# -- 3. a trace by id --------------------------------------------------------------------------------------

TRACE_SQL = "SELECT * FROM traces WHERE trace_id = %s ORDER BY start_time, span_id"


@dataclass
class TraceResult:
    sql: Timings
    service: Timings
    spans_per_trace: float
    planning_ms: float
    execution_ms: float
    index_scans: int


def trace_bench(
    conn: psycopg.Connection,
    sessions: sessionmaker[Session],
    data: Dataset,
    args: argparse.Namespace,
    progress: Progress,
) -> TraceResult:
    needed = 2 * args.trace_ids + 20
    percent = min(100.0, 100.0 * needed * 20 / max(data.counts["traces"], 1))  # ~4 spans per trace: ~5x the traces needed
    sample = [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT trace_id FROM traces TABLESAMPLE BERNOULLI (%s) REPEATABLE (%s) ORDER BY 1", (percent, args.seed)
        ).fetchall()
    ]
    random.Random(args.seed).shuffle(sample)
    if len(sample) < needed:
        raise SystemExit(f"only {len(sample)} traces sampled, {needed} needed: lower --trace-ids")
    warm, by_sql, by_service = sample[:20], sample[20 : 20 + args.trace_ids], sample[20 + args.trace_ids : needed]

    def service(trace_id: str) -> int:
        with sessions() as session:
            return traces.detail(session, principal=ADMIN, trace_id=trace_id).summary.span_count

    for trace_id in warm:
        conn.execute(TRACE_SQL, (trace_id,)).fetchall()
        service(trace_id)
    sql_timings = Timings("SQL: " + TRACE_SQL.replace("%s", "$1"))
    service_timings = Timings("service: traces.detail (admin key: every license), span tree built")
    spans = 0
    task = progress.add_task("3. trace by id", total=2 * len(by_sql))
    for number, (one, other) in enumerate(zip(by_sql, by_service, strict=True)):
        steps = [("sql", one), ("service", other)]
        for kind, trace_id in steps if number % 2 == 0 else steps[::-1]:
            started = time.perf_counter()
            if kind == "sql":
                spans += len(conn.execute(TRACE_SQL, (trace_id,)).fetchall())
                sql_timings.seconds.append(time.perf_counter() - started)
            else:
                spans += service(trace_id)
                service_timings.seconds.append(time.perf_counter() - started)
            progress.advance(task)
    progress.remove_task(task)
    plans = [
        conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + TRACE_SQL, (trace_id,)).fetchone()[0][0] for trace_id in by_sql[:20]
    ]
    scans = _count_nodes(plans[0]["Plan"], "Index Scan") + _count_nodes(plans[0]["Plan"], "Bitmap Index Scan")
    return TraceResult(
        sql_timings,
        service_timings,
        spans / (2 * len(by_sql)),
        statistics.median(plan["Planning Time"] for plan in plans),
        statistics.median(plan["Execution Time"] for plan in plans),
        scans,
    )


def _count_nodes(node: dict[str, Any], kind: str) -> int:
    return (node["Node Type"] == kind) + sum(_count_nodes(child, kind) for child in node.get("Plans", []))


# -- 4. the first page of an events search -------------------------------------------------------------------


@dataclass
class SearchVariant:
    label: str
    short: str
    timings: Timings
    rows: int


def search_bench(
    sessions: sessionmaker[Session],
    data: Dataset,
    args: argparse.Namespace,
    progress: Progress,
) -> list[SearchVariant]:
    licensed = Principal(api_key_id=0, license_id=data.busiest_license, scopes=frozenset({"read"}))
    variants = {
        "admin, no filter": ("admin key, no filter", ADMIN, event_search.EventFilters()),
        "license, no filter": (f"license {data.busiest_license} key, no filter", licensed, event_search.EventFilters()),
        "license, event_type": (
            f"license {data.busiest_license} key, event_type=error_event",
            licensed,
            event_search.EventFilters(equals={"event_type": "error_event"}),
        ),
        "license, payload": (
            f"license {data.busiest_license} key, payload.error=CardDeclined",
            licensed,
            event_search.EventFilters(payload=containment.conditions("payload.", [("payload.error", "CardDeclined")])),
        ),
    }

    def page(principal: Principal, filters: event_search.EventFilters) -> int:
        with sessions() as session:
            return len(event_search.search(session, principal=principal, filters=filters, now=data.end).events)

    timings = interleaved(
        {key: (label, lambda p=principal, f=filters: page(p, f)) for key, (label, principal, filters) in variants.items()},
        rounds=args.rounds,
        calls=args.search_calls,
        progress=progress,
        description="4. events search, first page",
    )
    return [SearchVariant(variants[key][0], key, one, one.result) for key, one in timings.items()]


# -- 5. a 24-hour metric series ---------------------------------------------------------------------------------


@dataclass
class SeriesResult:
    timings: dict[str, Timings]
    rollup_source: str
    differences: dict[str, float]
    points: int


def series_bench(sessions: sessionmaker[Session], data: Dataset, args: argparse.Namespace, progress: Progress) -> SeriesResult:
    start, end = data.end - timedelta(hours=24), data.end
    rollup_source = next((source.name for source in metric_series.SOURCES if source.name != "raw"), None)

    def service(step: Step, agg: Aggregation, source: str = "raw") -> dict[datetime, float | None]:
        request = metric_series.SeriesRequest(
            metric_name=SERIES_METRIC,
            service_name=SERIES_SERVICE,
            start=start,
            end=end,
            step=step,
            aggregation=agg,
        )
        with sessions() as session:
            found = metric_series.series(session, principal=ADMIN, request=request, now=end, source=source)
        return dict(found.series[0].points)

    def from_rollups(agg: Aggregation) -> dict[datetime, float | None]:
        if rollup_source is not None:
            return service(Step.ONE_HOUR, agg, rollup_source)
        with sessions() as session:
            found = rollups.metric_points(
                session,
                metric_name=SERIES_METRIC,
                service_name=SERIES_SERVICE,
                host_name=None,
                labels={},
                license_id=None,
                start=start,
                end=end,
                step=Step.ONE_HOUR,
                agg=agg,
                group_by=None,
            )
        return found.get(None, {})

    via = f"metric_series.series(source={rollup_source!r})" if rollup_source else "services.rollups.metric_points"
    variants: dict[str, tuple[str, Callable[[], Any]]] = {
        "1m avg": ("step 1m, avg: metric_series.series (raw rows)", lambda: service(Step.ONE_MINUTE, Aggregation.AVG)),
        "1m p95": ("step 1m, p95: metric_series.series (raw rows)", lambda: service(Step.ONE_MINUTE, Aggregation.P95)),
        "1h avg raw": ("step 1h, avg: metric_series.series (raw rows)", lambda: service(Step.ONE_HOUR, Aggregation.AVG)),
        "1h avg rollup": (f"step 1h, avg: {via} (rollups)", lambda: from_rollups(Aggregation.AVG)),
        "1h p95 raw": ("step 1h, p95: metric_series.series (raw rows)", lambda: service(Step.ONE_HOUR, Aggregation.P95)),
        "1h p95 rollup": (f"step 1h, p95: {via} (rollups)", lambda: from_rollups(Aggregation.P95)),
    }
    timings = interleaved(
        variants, rounds=args.rounds, calls=args.series_calls, progress=progress, description="5. metric series, 24 h"
    )
    differences = {}
    for agg in ("avg", "p95"):
        raw, rolled = timings[f"1h {agg} raw"].result, timings[f"1h {agg} rollup"].result
        worst = 0.0
        for bucket, value in raw.items():
            other = rolled.get(bucket)
            if value is None or other is None:
                worst = worst if value is other else math.inf
            else:
                worst = max(worst, abs(value - other) / abs(value))
        differences[agg] = worst
    points = sum(value is not None for value in timings["1m avg"].result.values())
    return SeriesResult(timings, via, differences, points)


# -- the ingest rate with the rollup job on and off -------------------------------------------------------------

INGEST_VARIANTS = {
    "on": (
        "rollup job on, default interval (60 s) and safety lag (120 s)",
        {"FERNANDO_TELEMETRY_ROLLUP_REFRESH_INTERVAL_S": "60", "FERNANDO_TELEMETRY_ROLLUP_SAFETY_LAG_S": "120"},
    ),
    "off": (
        "rollup job off (FERNANDO_TELEMETRY_ROLLUP_REFRESH_INTERVAL_S=0)",
        {"FERNANDO_TELEMETRY_ROLLUP_REFRESH_INTERVAL_S": "0"},
    ),
    "busy": (
        "rollup job every 5 s, safety lag 0 s (refreshes during the rounds)",
        {"FERNANDO_TELEMETRY_ROLLUP_REFRESH_INTERVAL_S": "5", "FERNANDO_TELEMETRY_ROLLUP_SAFETY_LAG_S": "0"},
    ),
}
_PATH_LINE = re.compile(r"^\((a|b)\) .*?\s{2,}([\d,]+)\s+([\d.]+)\s+([\d,]+)\s+([\d,]+)")


@dataclass
class IngestRun:
    variant: str
    copy_rate: float
    http_rate: float
    http_median: float
    seconds: float
    lines: list[str]

    @property
    def relative(self) -> float:
        return self.http_rate / self.copy_rate


def ingest_bench(args: argparse.Namespace, progress: Progress) -> list[IngestRun]:
    """``bench/ingest_http.py --no-middleware`` once per variant and run, the order mirrored on the second
    pass (on, off, off, on...), each on its own fresh embedded database."""
    names = ["on", "off"] + (["busy"] if args.ingest_busy else [])
    order: list[str] = []
    for number in range(args.ingest_runs):
        order += names if number % 2 == 0 else names[::-1]
    task = progress.add_task("ingest_http.py runs", total=len(order))
    runs = []
    for variant in order:
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"} | INGEST_VARIANTS[variant][1]
        started = time.perf_counter()
        done = subprocess.run(
            [PYTHON, str(ROOT / "bench" / "ingest_http.py"), "--no-middleware", "--events", str(args.ingest_events)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"bench/ingest_http.py ({variant}) failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        rates: dict[str, tuple[float, float]] = {}
        lines = []
        for line in done.stdout.splitlines():
            match = _PATH_LINE.match(line)
            if match:
                rates[match[1]] = (float(match[4].replace(",", "")), float(match[5].replace(",", "")))
                lines.append(line)
            elif line.startswith("(b)/(a)"):
                lines.append(line)
        if set(rates) != {"a", "b"}:
            raise SystemExit(f"cannot read the rates of bench/ingest_http.py ({variant}):\n{done.stdout}")
        runs.append(IngestRun(variant, rates["a"][0], rates["b"][0], rates["b"][1], seconds, lines))
        progress.advance(task)
    progress.remove_task(task)
    return runs


# -- the report -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queries:
    """Everything measured on the dataset."""

    version: str
    where: Where
    settings: dict[str, str]
    setup: Setup
    data: Dataset
    summary: SummaryResult
    p95: list[P95Result]
    trace: TraceResult
    search: list[SearchVariant]
    series: SeriesResult


def report_queries(args: argparse.Namespace, queries: Queries) -> None:
    version, where, settings, setup, data = queries.version, queries.where, queries.settings, queries.setup, queries.data
    summary, p95, trace, search, series = queries.summary, queries.p95, queries.trace, queries.search, queries.series
    print(f"database: PostgreSQL {version.split()[0]}, {where.description}")
    print(
        f"settings: {', '.join(f'{name} {value}' for name, value in settings.items())}; "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB RAM, {psutil.cpu_count()} cores (shared)"
    )
    print(
        f"data: {data.counts['telemetry_events']:,} events, {data.counts['traces']:,} spans, "
        f"{data.counts['system_metrics']:,} metric samples, {data.first_hour:%Y-%m-%d %H:00} .. {data.last_hour:%Y-%m-%d %H:59} UTC; "
        f"{data.users:,} users on {data.licenses} licenses (services.synthetic.generate, seed {setup.state.get('requested', {}).get('seed', '?')})"
    )
    print(
        "tables: "
        + "; ".join(
            f"{table} {data.partitions[table]} daily partitions, heap {heap:.1f} GB, indexes {index:.1f} GB"
            for table, (heap, index) in data.sizes_gb.items()
        )
    )
    if setup.loaded:
        parts = ", ".join(f"{kind} {seconds:,.0f} s" for kind, seconds in setup.load_parts.items())
        total_rows = sum(data.counts.values())
        print(
            f"load: generated and COPYed in this run in {setup.load_seconds:,.0f} s ({parts}), "
            f"{total_rows / setup.load_seconds:,.0f} rows/s, one transaction"
        )
    else:
        loaded = setup.state.get("loaded_at", "before this run (not by this bench)")
        took = setup.state.get("load_seconds")
        print(
            f"load: reused, loaded {loaded}"
            + (
                f" in {took:,.0f} s ({', '.join(f'{k} {v:,.0f} s' for k, v in setup.state.get('load_parts', {}).items())})"
                if took
                else ""
            )
        )
    if setup.remigrated:
        print(f"schema: {setup.remigrated} ({setup.remigrate_seconds:,.1f} s)")
    if setup.rebuilt:
        print(f"rollups: {setup.rebuilt}")
    print(
        f"rollups refresh: {setup.refresh_seconds:,.1f} s, {setup.hours_recomputed:,} hourly and {setup.days_recomputed:,} daily "
        "buckets recomputed (over the 3 raw tables; refresh_step until done, one transaction per step, safety lag 0 s)"
    )
    print(f"VACUUM (ANALYZE) of the raw and rollup tables: {setup.vacuum_seconds:,.1f} s")
    print(
        f"method: every query runs once untimed (warm cache: shared_buffers holds little, the OS page cache the rest), "
        f"then {args.rounds} rounds running the variants in turn, the order rotating per round; median of the rounds; "
        "SQL through one psycopg connection (autocommit), services in a fresh session per call as the routes do; "
        f'"now" = {data.end:%Y-%m-%d %H:%M} UTC, the hour after the last data'
    )

    print()
    view, raw = summary.timings["view"], summary.timings["raw"]
    overall, paired = raw.ratio_to(view)
    print(
        f"1. hourly events summary, 7 days ({summary.start:%Y-%m-%d %H:%M} .. {summary.end:%Y-%m-%d %H:%M} UTC), by hour, event_type, license"
    )
    print(f"{'variant':<72}{'median ms':>11}{'min ms':>10}{'max ms':>10}")
    for label, one in (("(a)", view), ("(b)", raw)) + ((("(c)", summary.tail),) if summary.tail else ()):
        print(
            f"{label + ' ' + one.label:<72}{ms(one.median_ms):>11}{ms(min(one.seconds) * 1000):>10}{ms(max(one.seconds) * 1000):>10}"
        )
    print(
        f"(b)/(a) = {overall:,.0f}   raw vs view (median of the {args.rounds} per-round ratios: {paired:,.0f}; target >= 100: {verdict(overall >= 100)})"
    )
    if summary.tail:
        print(
            f"(b)/(c) = {raw.median_ms / summary.tail.median_ms:,.0f}   raw vs view with the last hour read from raw rows "
            "((c) timed after (a) and (b), with the fresh rows in place)"
        )
    print(f"answers: (a) {summary.answers}; (c) {summary.tail_answers}")

    print()
    print(f"2. daily p95 over {p95[0].days} days (the {p95[0].days} ended days before the last one), one value per UTC day")
    print(f"{'variant':<72}{'median ms':>11}{'min ms':>10}{'max ms':>10}")
    for one in p95:
        for kind in ("rollup", "raw"):
            timing = one.timings[kind]
            print(
                f"{'(' + one.key + ') ' + timing.label:<72}{ms(timing.median_ms):>11}"
                f"{ms(min(timing.seconds) * 1000):>10}{ms(max(timing.seconds) * 1000):>10}"
            )
    for one in p95:
        overall, paired = one.timings["raw"].ratio_to(one.timings["rollup"])
        print(
            f"{one.key}: raw/rollups = {overall:,.0f} (median of per-round ratios: {paired:,.0f}); sketch p95 vs exact over "
            f"{len(one.errors)} days: max error {one.max_error:.3%}, median {one.median_error:.3%} (bound 1%: {verdict(one.max_error <= 0.01)}) "
            f"[{one.what}]"
        )

    print()
    print(
        f"3. one trace by id, no time range: {len(trace.sql.seconds)} random trace ids per variant (sampled over all days), "
        f"{trace.spans_per_trace:.1f} spans per trace; ids of the two variants interleaved"
    )
    print(f"{'variant':<72}{'median ms':>11}{'p95 ms':>10}{'max ms':>10}")
    for one in (trace.sql, trace.service):
        print(f"{one.label:<72}{ms(one.median_ms):>11}{ms(one.quantile_ms(0.95)):>10}{ms(max(one.seconds) * 1000):>10}")
    print(
        f"EXPLAIN ANALYZE of the SQL (20 ids): planning {trace.planning_ms:.2f} ms, execution {trace.execution_ms:.2f} ms "
        f"(median); {trace.index_scans} index scans, one per partition (hash index on trace_id)"
    )
    median, p95_ms = trace.service.median_ms, trace.service.quantile_ms(0.95)
    print(
        f"service: median {ms(median)} ms (target < 5 ms: {verdict(median < 5)}), p95 {ms(p95_ms)} ms ({verdict(p95_ms < 5)}); "
        "the route adds authentication and JSON"
    )

    print()
    print(
        f"4. events search, first page (limit {event_search.DEFAULT_LIMIT}, the default 24 h before now), "
        f"services.event_search.search; {args.search_calls} calls per variant and round"
    )
    print(f"{'variant':<72}{'median ms':>11}{'p95 ms':>10}{'rows':>7}")
    for one in search:
        print(f"{one.label:<72}{ms(one.timings.median_ms):>11}{ms(one.timings.quantile_ms(0.95)):>10}{one.rows:>7}")

    print()
    print(
        f"5. metric series, 24 h of {SERIES_METRIC} of service {SERIES_SERVICE} ({series.points:,} one-minute points with data), "
        f"{args.series_calls} calls per variant and round"
    )
    print(f"{'variant':<72}{'median ms':>11}{'p95 ms':>10}")
    for one in series.timings.values():
        print(f"{one.label:<72}{ms(one.median_ms):>11}{ms(one.quantile_ms(0.95)):>10}")
    for agg in ("avg", "p95"):
        raw_timing, rollup_timing = series.timings[f"1h {agg} raw"], series.timings[f"1h {agg} rollup"]
        print(
            f"step 1h {agg}: raw/rollups = {raw_timing.median_ms / rollup_timing.median_ms:.1f}; "
            f"largest relative difference between the two answers {series.differences[agg]:.4%}"
        )
    if not any(source.name != "raw" for source in metric_series.SOURCES):
        print(
            "(metric_series.SOURCES has no rollup source yet: the rollup rows call services.rollups.metric_points directly; "
            "a 1m step can only come from raw rows)"
        )


def ingest_ratios(ingest: list[IngestRun], name: str) -> tuple[float, float] | None:
    """A variant against ``off``: the ratio of the median (b) rates and of the median (b)/(a) ratios."""
    runs, base = [r for r in ingest if r.variant == name], [r for r in ingest if r.variant == "off"]
    if not runs or not base:
        return None
    return (
        statistics.median(r.http_rate for r in runs) / statistics.median(r.http_rate for r in base),
        statistics.median(r.relative for r in runs) / statistics.median(r.relative for r in base),
    )


def report_ingest(args: argparse.Namespace, ingest: list[IngestRun]) -> None:
    print(
        f"ingest: bench/ingest_http.py --no-middleware --events {args.ingest_events:,} per run (each on its own fresh "
        "embedded database; the server's rollup job set by environment), runs in this order"
    )
    print(f"{'run':<4}{'variant':<68}{'(a) COPY/s':>11}{'(b) HTTP/s':>11}{'(b) median':>11}{'(b)/(a)':>8}")
    for number, run in enumerate(ingest, start=1):
        print(
            f"{number:<4}{INGEST_VARIANTS[run.variant][0]:<68}{run.copy_rate:>11,.0f}{run.http_rate:>11,.0f}"
            f"{run.http_median:>11,.0f}{run.relative:>8.2f}"
        )
    for name in ("on", "busy"):
        ratios = ingest_ratios(ingest, name)
        if ratios is not None:
            print(
                f"{name}/off: (b) rate {ratios[0]:.2f}, (b)/(a) {ratios[1]:.2f}   (medians of the runs; {INGEST_VARIANTS[name][0]} vs off)"
            )


def report_summary(queries: Queries | None, ingest: list[IngestRun] | None, total_seconds: float) -> None:
    print()
    print("summary")
    if queries is not None:
        summary, p95, trace, search, series = queries.summary, queries.p95, queries.trace, queries.search, queries.series
        view, raw = summary.timings["view"], summary.timings["raw"]
        print(
            f"  1. events summary, 7 days: raw/view = {raw.ratio_to(view)[0]:,.0f}x (target >= 100x: {verdict(raw.ratio_to(view)[0] >= 100)})"
            + (f"; with the last hour pending {raw.median_ms / summary.tail.median_ms:,.0f}x" if summary.tail else "")
        )
        for one in p95:
            print(
                f"  2. daily p95, {one.days} days, {one.key}: raw/rollups = {one.timings['raw'].ratio_to(one.timings['rollup'])[0]:,.0f}x; "
                f"error max {one.max_error:.3%}, median {one.median_error:.3%} (bound 1%: {verdict(one.max_error <= 0.01)})"
            )
        median, p95_ms = trace.service.median_ms, trace.service.quantile_ms(0.95)
        print(
            f"  3. trace by id: SQL median {ms(trace.sql.median_ms)} ms; service median {ms(median)} ms (target < 5 ms: "
            f"{verdict(median < 5)}), p95 {ms(p95_ms)} ms ({verdict(p95_ms < 5)})"
        )
        print("  4. events first page: " + ", ".join(f"{one.short} {ms(one.timings.median_ms)} ms" for one in search))
        print(
            f"  5. series 24 h at 1m: avg {ms(series.timings['1m avg'].median_ms)} ms, p95 {ms(series.timings['1m p95'].median_ms)} ms"
        )
    if ingest:
        for name in ("on", "busy"):
            ratios = ingest_ratios(ingest, name)
            if ratios is not None:
                print(f"  ingest with the rollup job {name} / off: (b) rate {ratios[0]:.2f}, (b)/(a) {ratios[1]:.2f}")
    print(f"  bench wall time: {total_seconds / 60:,.1f} min")


# -- the run ------------------------------------------------------------------------------------------------------


def measure_queries(args: argparse.Namespace, progress: Progress) -> Queries:
    with database(args) as where:
        engine = make_engine(where.url, pool_size=2, application_name="ft-bench-query")
        conn = psycopg.connect(
            libpq_url(where.url), autocommit=True, options="-c timezone=UTC", application_name="ft-bench-query-sql"
        )
        try:
            version = conn.execute("SHOW server_version").fetchone()[0]
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("shared_buffers", "work_mem", "max_parallel_workers_per_gather", "jit")
            }
            setup = prepare(engine, conn, where, args, progress)
            data = describe(conn, setup.state["counts"])
            sessions = session_factory(engine)
            return Queries(
                version=version,
                where=where,
                settings=settings,
                setup=setup,
                data=data,
                summary=summary_bench(conn, engine, data, args, progress),
                p95=p95_bench(conn, data, args, progress),
                trace=trace_bench(conn, sessions, data, args, progress),
                search=search_bench(sessions, data, args, progress),
                series=series_bench(sessions, data, args, progress),
            )
        finally:
            conn.close()
            engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--metrics", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30, help="the data spans the last DAYS days; the p95 covers as many days")
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="an existing server (default: $DATABASE_URL, else the persistent embedded PostgreSQL 18)",
    )
    parser.add_argument(
        "--cluster-dir", type=Path, default=DEFAULT_DIR, help=f"the embedded cluster's directory (default {DEFAULT_DIR})"
    )
    parser.add_argument("--reuse", action="store_true", help="measure the telemetry already in the database, whatever its size")
    parser.add_argument("--fresh", action="store_true", help="drop the embedded bench database first and load anew")
    parser.add_argument(
        "--rebuild-rollups", action="store_true", help="recompute every rollup from raw rows (timed as the refresh)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trace-ids", type=int, default=200, help="random trace ids per variant")
    parser.add_argument("--search-calls", type=int, default=10, help="calls per search variant and round")
    parser.add_argument("--series-calls", type=int, default=3, help="calls per series variant and round")
    parser.add_argument("--tail-events", type=int, default=1_000, help="fresh events that make the last hour pending in 1.(c)")
    parser.add_argument("--ingest-events", type=int, default=200_000, help="--events of each bench/ingest_http.py run")
    parser.add_argument(
        "--ingest-runs",
        type=int,
        default=2,
        help="runs per ingest variant, in mirrored order: on, off, off, on (0: skip the ingest part)",
    )
    parser.add_argument("--ingest-busy", action="store_true", help="add an ingest variant with the rollup job every 5 s, lag 0 s")
    parser.add_argument("--only", choices=("queries", "ingest"), help="run only this part")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    columns = (TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    queries: Queries | None = None
    ingest: list[IngestRun] | None = None
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        if args.only != "ingest":
            queries = measure_queries(args, progress)
        if args.only != "queries" and args.ingest_runs > 0:
            ingest = ingest_bench(args, progress)
    if queries is not None:
        print("query: rollups behind the views vs raw rows, trace by id, event search and metric series at scale")
        report_queries(args, queries)
    if ingest is not None:
        if queries is not None:
            print()
        report_ingest(args, ingest)
    report_summary(queries, ingest, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
