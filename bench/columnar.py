"""Cold storage: the same day of spans and events in heap and in columnar, side by side in one run.

It loads N synthetic spans and N events (default 1,000,000 each, the project's generator, COPY) into one old day,
copies that day's rows one day earlier, and converts the earlier day with the columnar job's own code
(``services.cold_storage.convert``: rows ordered by ``ROW_ORDER``, ``COLUMNAR_OPTIONS``). Then it prints, per
table: bytes per row of each partition (``pg_total_relation_size`` / rows, and the data alone without indexes),
the conversion's time (the partition's lock is held that long), and p50/p95 of key queries on the hot (heap) and
the cold (columnar) day, interleaved: a trace by id, the first page of events of a day, p95 duration per service
over a day, hourly counts of a day. Ratios are cold / hot.

    .venv/bin/python bench/columnar.py [--rows 1000000] [--rounds 20] [--database-url URL] [--keep]
                                       [--compression zstd] [--compression-level 9] [--chunk-rows 10000]
                                       [--stripe-rows 150000] [--no-order]

It needs a server with the ``citus_columnar`` extension (default: the machine's PostgreSQL 15 at
``postgresql://postgres@127.0.0.1:5432/postgres``); it works in a fresh database ``bench_columnar_<hex>``,
dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.composition.wiring import dump_json
from fernando_telemetry.core.ingest import events as event_columns
from fernando_telemetry.core.ingest import spans as span_columns
from fernando_telemetry.core.partitioning import partition_for_day
from fernando_telemetry.core.synthetic import Window, event_rows, span_rows
from fernando_telemetry.services import cold_storage, partitions, schema, synthetic
from fernando_telemetry.storage import columnar
from fernando_telemetry.storage.bulk import copy_rows
from fernando_telemetry.storage.database import make_engine, session_factory

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
GOAL_BYTES_PER_ROW = 60

QUERIES: dict[str, dict[str, str]] = {
    "traces": {
        "trace by id": "SELECT * FROM traces WHERE trace_id = :trace_id AND start_time >= :day AND start_time < :next_day",
        "p95 per service": (
            "SELECT service_name, percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM traces "
            "WHERE start_time >= :day AND start_time < :next_day GROUP BY service_name"
        ),
        "hourly counts": (
            "SELECT date_trunc('hour', start_time), count(*) FROM traces "
            "WHERE start_time >= :day AND start_time < :next_day GROUP BY 1"
        ),
    },
    "telemetry_events": {
        "events first page": (
            "SELECT * FROM telemetry_events WHERE event_timestamp >= :day AND event_timestamp < :next_day "
            "ORDER BY event_timestamp DESC, event_id DESC LIMIT 50"
        ),
        "hourly counts": (
            "SELECT date_trunc('hour', event_timestamp), event_type, count(*) FROM telemetry_events "
            "WHERE event_timestamp >= :day AND event_timestamp < :next_day GROUP BY 1, 2"
        ),
    },
}
"""The key queries, each bound to one day (pruned to one partition); the trace id is drawn from that day."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="spans and events each (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds of every query (default 20)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="a maintenance database on a server with citus_columnar")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--compression", default=columnar.COLUMNAR_OPTIONS["columnar.compression"])
    parser.add_argument("--compression-level", default=columnar.COLUMNAR_OPTIONS["columnar.compression_level"])
    parser.add_argument("--chunk-rows", default=columnar.COLUMNAR_OPTIONS["columnar.chunk_group_row_limit"])
    parser.add_argument("--stripe-rows", default=columnar.COLUMNAR_OPTIONS["columnar.stripe_row_limit"])
    parser.add_argument("--no-order", action="store_true", help="convert in the heap's order (no ROW_ORDER)")
    args = parser.parse_args(argv)

    columnar.COLUMNAR_OPTIONS.update(
        {
            "columnar.compression": args.compression,
            "columnar.compression_level": str(args.compression_level),
            "columnar.chunk_group_row_limit": str(args.chunk_rows),
            "columnar.stripe_row_limit": str(args.stripe_rows),
        }
    )
    if args.no_order:
        for table in columnar.ROW_ORDER:
            columnar.ROW_ORDER[table] = ("ctid",)  # the heap's own order

    name = f"bench_columnar_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'citus_columnar'").fetchone() is None:
            print("this server has no citus_columnar extension: nothing to compare", file=sys.stderr)
            return 2
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = args.database_url.rsplit("/", 1)[0] + "/" + name
    try:
        return run(url, args)
    finally:
        if not args.keep:
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        else:
            print(f"kept database {name}")


def run(url: str, args: argparse.Namespace) -> int:
    engine = make_engine(url, pool_size=2)
    schema.upgrade(engine)
    sessions = session_factory(engine)
    today = datetime.now(UTC).date()
    hot_day, cold_day = today - timedelta(days=4), today - timedelta(days=5)
    rng = random.Random(7)
    started = time.perf_counter()
    with sessions.begin() as session:
        partitions.ensure_for_days(session, first_day=cold_day, last_day=today)
        people = synthetic.prepare_users(session, users=2000, license_id=None, rng=rng)
        hot_start = partition_for_day("traces", hot_day).start_at
        window = Window(hot_start, hot_start + timedelta(days=1))
        spans = copy_rows(
            session,
            table="traces",
            columns=span_columns.COLUMNS,
            rows=span_rows(rng, args.rows, window=window, users=people, dump_json=dump_json),
        )
        events = copy_rows(
            session,
            table="telemetry_events",
            columns=event_columns.COLUMNS,
            rows=event_rows(rng, args.rows, window=window, users=people, dump_json=dump_json),
        )
        for table in ("traces", "telemetry_events"):
            _copy_day_earlier(session, table, hot_day)
    print(
        f"loaded {spans:,} spans and {events:,} events into {hot_day} and copied them to {cold_day} "
        f"in {time.perf_counter() - started:,.0f} s"
    )
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("traces", "telemetry_events"):
            for day in (hot_day, cold_day):
                connection.execute(text(f'VACUUM ANALYZE "{partition_for_day(table, day).name}"'))

    conversion_s: dict[str, float] = {}
    with sessions.begin() as session:
        found = cold_storage.availability(session, install=True)
        assert not isinstance(found, str) and found.installed, found
    for table in ("traces", "telemetry_events"):
        with sessions.begin() as session:
            partition = next(
                p for p in cold_storage.partitions_of(session, table=table) if p.name == partition_for_day(table, cold_day).name
            )
            begun = time.perf_counter()
            cold_storage.convert(session, partition=partition, distributed=False)
        conversion_s[table] = time.perf_counter() - begun

    print()
    print(
        f"columnar settings: {columnar.COLUMNAR_OPTIONS}, row order: {columnar.ROW_ORDER if not args.no_order else 'heap order'}"
    )
    print()
    print(f"{'table':<18}{'storage':<10}{'rows':>11}{'total B/row':>13}{'data B/row':>12}{'index B/row':>13}")
    sizes: dict[tuple[str, str], tuple[float, float]] = {}
    with sessions() as session:
        for table in ("traces", "telemetry_events"):
            for kind, day in (("heap", hot_day), ("columnar", cold_day)):
                name = partition_for_day(table, day).name
                rows, total, data = session.execute(
                    text(
                        f'SELECT (SELECT count(*) FROM "{name}"), pg_total_relation_size(:r), pg_table_size(:r)'  # noqa: S608
                    ),
                    {"r": f'"{name}"'},
                ).one()
                sizes[(table, kind)] = (total / rows, data / rows)
                print(
                    f"{table:<18}{kind:<10}{rows:>11,}{total / rows:>13,.1f}{data / rows:>12,.1f}{(total - data) / rows:>13,.1f}"
                )
        for table in ("traces", "telemetry_events"):
            (hot_total, hot_data), (cold_total, cold_data) = sizes[(table, "heap")], sizes[(table, "columnar")]
            print(
                f"{table}: columnar/heap total {cold_total / hot_total:.3f} ({hot_total / cold_total:.1f}x smaller), "
                f"data {cold_data / hot_data:.3f} ({hot_data / cold_data:.1f}x smaller); goal <= {GOAL_BYTES_PER_ROW} B/row: "
                f"total {'met' if cold_total <= GOAL_BYTES_PER_ROW else 'NOT met'}, "
                f"data {'met' if cold_data <= GOAL_BYTES_PER_ROW else 'NOT met'}"
            )
        for table in ("traces", "telemetry_events"):
            name = partition_for_day(table, cold_day).name
            per_index = session.execute(
                text(
                    "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE i.indrelid = CAST(:r AS regclass) ORDER BY 2 DESC"
                ),
                {"r": f'"{name}"'},
            ).all()
            print(f"{table} columnar indexes, B/row: " + ", ".join(f"{n} {size / args.rows:,.1f}" for n, size in per_index))
        for table, seconds in conversion_s.items():
            print(f"conversion of {table} ({args.rows:,} rows): {seconds:,.1f} s holding the partition's lock")

        print()
        print(
            f"{'query':<30}{'hot p50':>10}{'hot p95':>10}{'cold p50':>10}{'cold p95':>10}{'p50 cold/hot':>14}{'p95 cold/hot':>14}"
        )
        for table, queries in QUERIES.items():
            # the cold day is a copy of the hot one: the same trace ids are on both
            sampled = _trace_ids(session, hot_day, args.rounds) if table == "traces" else []
            ids = {hot_day: sampled, cold_day: sampled} if sampled else {}
            for label, query in queries.items():
                timings = _interleaved(session, query, {"hot": hot_day, "cold": cold_day}, ids, rounds=args.rounds)
                hot, cold = timings["hot"], timings["cold"]
                print(
                    f"{table + ': ' + label:<30}{_ms(_q(hot, 0.5)):>10}{_ms(_q(hot, 0.95)):>10}{_ms(_q(cold, 0.5)):>10}"
                    f"{_ms(_q(cold, 0.95)):>10}{_q(cold, 0.5) / _q(hot, 0.5):>14.2f}{_q(cold, 0.95) / _q(hot, 0.95):>14.2f}"
                )
    engine.dispose()
    return 0


def _copy_day_earlier(session: Session, table: str, day: Any) -> None:
    """Insert every row of ``table``'s partition of ``day`` again one day earlier (its time columns moved)."""
    moved = {"traces": ("start_time", "end_time"), "telemetry_events": ("event_timestamp",)}[table]
    names = (
        session.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped "
                "ORDER BY attnum"
            ),
            {"t": table},
        )
        .scalars()
        .all()
    )
    select_list = ", ".join(f"\"{n}\" - interval '1 day'" if n in moved else f'"{n}"' for n in names)
    columns = ", ".join(f'"{n}"' for n in names)
    source = partition_for_day(table, day).name
    session.execute(text(f'INSERT INTO {table} ({columns}) SELECT {select_list} FROM "{source}"'))  # noqa: S608


def _trace_ids(session: Session, day: Any, count: int) -> list[str]:
    name = partition_for_day("traces", day).name
    return list(
        session.execute(text(f'SELECT trace_id FROM "{name}" TABLESAMPLE SYSTEM (1) LIMIT :n'), {"n": count + 1}).scalars()
    )  # noqa: S608


def _interleaved(
    session: Session, query: str, days: dict[str, Any], trace_ids: dict[Any, list[str]], *, rounds: int
) -> dict[str, list[float]]:
    """Each variant once untimed, then ``rounds`` rounds alternating which goes first; seconds per call."""
    timings: dict[str, list[float]] = {key: [] for key in days}

    def call(key: str, number: int) -> float:
        day = days[key]
        start = partition_for_day("traces", day).start_at
        params: dict[str, Any] = {"day": start, "next_day": start + timedelta(days=1)}
        if ":trace_id" in query:
            ids = trace_ids[day]
            params["trace_id"] = ids[number % len(ids)]
        begun = time.perf_counter()
        rows = session.execute(text(query), params).all()
        elapsed = time.perf_counter() - begun
        if not rows:
            raise SystemExit(f"{query!r} found nothing on {day}: the bench data is wrong")
        return elapsed

    for key in days:
        call(key, len(trace_ids.get(days[key], [])) - 1 if trace_ids else 0)
    order = list(days)
    for number in range(rounds):
        for key in order if number % 2 == 0 else order[::-1]:
            timings[key].append(call(key, number))
    return timings


def _q(values: list[float], fraction: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def _ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
