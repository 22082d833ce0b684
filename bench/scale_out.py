"""What a Citus cluster costs and gives on one machine: a single PostgreSQL 15 node vs a coordinator + 2 workers.

Both run the same PostgreSQL 15 binaries with the same settings (the cluster's nodes add Citus), on this machine, at
free ports, in temporary directories removed at the end. For each, in one run and interleaved round by round:

1. ``serve`` (one process): HTTP ingest rate of events (``POST /api/v1/events``) and of spans (OTLP protobuf
   ``POST /v1/traces``, and the same kind of spans as native JSON, ``POST /api/v1/spans``), the rows and load
   generator of ``bench/ingest_http.py``, the same requests to both targets;
2. the key queries through the HTTP API, with an admin key and with a license key: one trace by id, the first page
   of events, the 7-day hourly events summary, a 24 h metric series at 1 m and at 1 h steps; and an alert
   evaluation pass over N rules (``alert_evaluation.evaluate_due``, what the scheduler's job runs); p50/p95 of each;
3. ingest of events with 1, 2 and 3 ``serve`` processes (the clients spread over them).

A query or pass that fails on one target is reported as such, not timed; the answer sizes printed beside each query
show whether both targets answered with the same rows. Prints rates, p50/p95, the ratios cluster/single, and the overhead: microseconds per row (1/rate cluster - 1/rate
single) and milliseconds per query (p50 cluster - p50 single).

    .venv/bin/python bench/scale_out.py [--events 100000 --spans 100000 --clients 4 --batch 500 --rounds 3]
    .venv/bin/python bench/scale_out.py --quick     # small counts, a couple of minutes (CI)
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from ingest_http import (
    Clients,
    Process,
    Slice,
    check_events,
    check_traces,
    child_env,
    event_items,
    free_port,
    http_bodies,
    make_users,
    otlp_requests,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import Engine, text

from fernando_telemetry.core.keys import KEY_PREFIX
from fernando_telemetry.services import alert_evaluation, keys, schema
from fernando_telemetry.storage.database import libpq_url, make_engine, session_factory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.citus_cluster: the cluster the tests use, so the bench measures the same nodes

from tests.citus_cluster import CITUS_BIN_DIR, NODE_SETTINGS, CitusCluster, start_node  # noqa: E402

PYTHON = sys.executable
ENVIRONMENT = "bench-scale"
SERIES_METRIC, SERIES_SERVICE = "http.latency", "api"
PLAIN_SETTINGS = {name: value for name, value in NODE_SETTINGS.items() if "citus" not in name and "citus" not in value}
"""The cluster nodes' settings without Citus: the single node runs with these."""
TARGETS = ("single", "cluster")


# -- the two databases ------------------------------------------------------------------------------


@dataclass
class Target:
    """One database (single node or cluster), its keys, and the servers running on it."""

    name: str
    url: str
    license_id: int = 0
    license_key: str = ""
    admin_key: str = ""
    servers: list[Process] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)


@contextmanager
def single_node(root: Path) -> Iterator[str]:
    node = start_node(root / "single", database="bench", settings=PLAIN_SETTINGS)
    try:
        yield node.url
    finally:
        node.stop()


@contextmanager
def citus_cluster(root: Path) -> Iterator[str]:
    cluster = CitusCluster(workers=2, root_dir=root / "cluster")
    try:
        cluster.start()
        yield cluster.create_database("bench")
    finally:
        cluster.stop()


def new_token() -> str:
    import secrets

    return KEY_PREFIX + secrets.token_hex(24)


def prepare(target: Target, user_ids: Sequence[str]) -> None:
    """Migrate (and distribute, on Citus), a license with its users, a license key (ingest, read) and an admin key."""
    engine = make_engine(target.url, pool_size=1)
    try:
        schema.upgrade(engine)
        sequential_partition_functions(engine)
        with session_factory(engine).begin() as session:
            target.license_id = keys.create_license(session, name="bench scale_out")
            target.license_key = keys.create_key(
                session, license_id=target.license_id, scopes=["ingest", "read"], new_token=new_token
            ).token
            target.admin_key = keys.create_key(session, license_id=None, scopes=[], admin=True, new_token=new_token).token
    finally:
        engine.dispose()
    with psycopg.connect(libpq_url(target.url)) as connection:
        with connection.cursor().copy("COPY users (user_id, email, license_id) FROM STDIN") as copy:
            for user_id in user_ids:
                copy.write_row((user_id, f"user{user_id}@example.com", target.license_id))


def sequential_partition_functions(engine: Engine) -> None:
    """On Citus, the partition functions with one connection per worker (what the citus branch's pending
    ``storage.citus`` change sets; a no-op once it does, and on a single node)."""
    with engine.begin() as connection:
        if connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'")).first() is None:
            return
        for (signature,) in connection.execute(
            text(
                "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
                "AND p.proname IN ('ensure_daily_partitions', 'cleanup_old_telemetry_data', 'cleanup_old_rollups')"
            )
        ).all():
            connection.execute(text(f"ALTER FUNCTION {signature} SET citus.multi_shard_modify_mode = 'sequential'"))


def start_servers(target: Target, workdir: Path, count: int) -> None:
    """Start ``serve`` processes on ``target`` until it has ``count``."""
    while len(target.servers) < count:
        number = len(target.servers)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = child_env(
            DATABASE_URL=target.url,
            FERNANDO_TELEMETRY_HOST_METRICS_INTERVAL_S="0",
            FERNANDO_TELEMETRY_DATA_DIR=str(workdir / f"{target.name}-data-{number}"),
        )
        argv = [PYTHON, "-m", "fernando_telemetry", "serve", "--host", "127.0.0.1", "--port", str(port)]
        target.servers.append(
            Process(
                [*argv, "--otlp-grpc-port", "0"],
                env=env,
                log_path=workdir / f"{target.name}-server-{number}.log",
                ready_url=f"{base}/readyz",
                name=f"serve {number} on {target.name}",
            )
        )
        target.bases.append(base)


# -- ingest -----------------------------------------------------------------------------------------


@dataclass
class Rates:
    """Rows and seconds per target over the rounds."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TARGETS, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TARGETS, 0.0))
    errors: list[str] = field(default_factory=list)

    def add(self, name: str, done: Slice) -> None:
        self.rows[name] += done.rows
        self.seconds[name] += done.seconds
        self.errors.extend(f"{name}: {error}" for error in done.errors[:3])

    def rate(self, name: str) -> float:
        return self.rows[name] / self.seconds[name] if self.seconds[name] else float("nan")


def send(
    clients: Clients,
    bases: Sequence[str],
    path: str,
    bodies: Sequence[bytes],
    sizes: Sequence[int],
    headers: dict[str, str],
    check: Callable[[httpx.Response, int], str | None],
) -> Slice:
    """Every body once, ``clients`` at a time, request i to server i mod len(bases)."""
    urls = [f"{bases[index % len(bases)]}{path}" for index in range(len(bodies))]
    return clients.run("POST", urls, bodies, sizes, headers, check)


def interleaved_ingest(
    targets: Sequence[Target],
    clients: Clients,
    path: str,
    bodies: Sequence[bytes],
    sizes: Sequence[int],
    content_type: str,
    check: Callable[[httpx.Response, int], str | None],
    *,
    rounds: int,
    servers: int = 1,
) -> Rates:
    """The same bodies to each target, in ``rounds`` slices, the order of the targets alternating by round."""
    rates = Rates()
    for number in range(rounds):
        part = slice(len(bodies) * number // rounds, len(bodies) * (number + 1) // rounds)
        for target in targets if number % 2 == 0 else list(reversed(targets)):
            headers = {"Authorization": f"Bearer {target.license_key}", "Content-Type": content_type}
            rates.add(target.name, send(clients, target.bases[:servers], path, bodies[part], sizes[part], headers, check))
    return rates


_KINDS = {0: "internal", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def span_json_bodies(otlp_bodies: Sequence[bytes]) -> tuple[list[bytes], list[int]]:
    """The spans of the OTLP requests as ``POST /api/v1/spans`` bodies (same ids, services, names, times, status)."""
    bodies, sizes = [], []
    for otlp_body in otlp_bodies:
        items = []
        for group in ExportTraceServiceRequest.FromString(otlp_body).resource_spans:
            resource = {kv.key: kv.value.string_value for kv in group.resource.attributes}
            for scope in group.scope_spans:
                for span in scope.spans:
                    attributes = {kv.key: kv.value for kv in span.attributes}
                    item: dict[str, Any] = {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "operation_name": span.name,
                        "service_name": resource.get("service.name", "unknown"),
                        "span_kind": _KINDS.get(span.kind, "internal"),
                        "start_time": datetime.fromtimestamp(span.start_time_unix_nano / 1e9, UTC).isoformat(),
                        "end_time": datetime.fromtimestamp(span.end_time_unix_nano / 1e9, UTC).isoformat(),
                        "status": "error" if span.status.code == 2 else "ok",
                        "environment": ENVIRONMENT,
                    }
                    if span.parent_span_id:
                        item["parent_span_id"] = span.parent_span_id.hex()
                    if "http.response.status_code" in attributes:
                        item["status_code"] = attributes["http.response.status_code"].int_value
                    if "enduser.id" in attributes:
                        item["user_id"] = attributes["enduser.id"].string_value
                    items.append(item)
        bodies.append(orjson.dumps({"spans": items}))
        sizes.append(len(items))
    return bodies, sizes


def check_spans(response: httpx.Response, size: int) -> str | None:
    return check_events(response, size)


def metric_bodies(now: datetime, hosts: int) -> list[bytes]:
    """A 24 h series of ``SERIES_METRIC``: one point a minute per host, 1,440 points per request."""
    bodies = []
    start = now.replace(second=0, microsecond=0) - timedelta(hours=24)
    for host in range(hosts):
        rng = random.Random(host)
        points = [
            {
                "metric_name": SERIES_METRIC,
                "metric_type": "gauge",
                "value": round(rng.lognormvariate(3.5, 0.5), 3),
                "service_name": SERIES_SERVICE,
                "host_name": f"host-{host}",
                "timestamp": (start + timedelta(minutes=minute)).isoformat(),
            }
            for minute in range(24 * 60)
        ]
        bodies.append(orjson.dumps({"metrics": points}))
    return bodies


# -- queries ----------------------------------------------------------------------------------------


@dataclass
class Query:
    name: str
    path: str
    params: dict[str, str]


def queries(now: datetime) -> list[Query]:
    day_ago, week_ago = (now - timedelta(hours=24)).isoformat(), (now - timedelta(days=7)).isoformat()
    until = (now + timedelta(minutes=5)).isoformat()
    series = {"metric_name": SERIES_METRIC, "service_name": SERIES_SERVICE, "from": day_ago, "to": until, "agg": "p95"}
    return [
        Query("trace by id", "/api/v1/traces/{trace_id}", {}),
        Query("events, first page", "/api/v1/events", {"limit": "100"}),
        Query("events hourly summary, 7 days", "/api/v1/summaries/events-hourly", {"from": week_ago, "to": until}),
        Query("series 24 h, 1 m steps", "/api/v1/metrics/series", {**series, "step": "1m"}),
        Query("series 24 h, 1 h steps", "/api/v1/metrics/series", {**series, "step": "1h"}),
    ]


def answer_size(query: Query, body: dict[str, Any]) -> int:
    """How much the answer holds (spans, events, summary rows, non-empty points): the same on both targets or the
    timings do not compare."""
    if query.name.startswith("trace"):
        return int(body.get("span_count") or 0)
    if "events" in body:
        return len(body["events"])
    if "rows" in body:
        return len(body["rows"])
    return sum(1 for line in body.get("series", []) for _, value in line["points"] if value is not None)


@dataclass
class Timed:
    """Latencies (seconds) per (query, key kind, target), and the answer sizes seen."""

    latencies: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    sizes: dict[tuple[str, str, str], set[int]] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """The first failed answer of a (query, key kind, target): its calls are not timed, the table says so."""

    def add(self, key: tuple[str, str, str], seconds: float, size: int) -> None:
        self.latencies.setdefault(key, []).append(seconds)
        self.sizes.setdefault(key, set()).add(size)


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def time_queries(targets: Sequence[Target], now: datetime, trace_ids: Sequence[str], repeats: int) -> Timed:
    timed = Timed()
    with httpx.Client(timeout=120.0) as client:
        for number in range(repeats + 2):  # the first two are warm-up
            trace_id = trace_ids[number % len(trace_ids)]
            for query in queries(now):
                for kind in ("admin", "license"):
                    for target in targets if number % 2 == 0 else list(reversed(targets)):
                        key = target.admin_key if kind == "admin" else target.license_key
                        params = dict(query.params)
                        if kind == "admin" and not query.name.startswith("events hourly"):
                            params["license_id"] = str(target.license_id)
                        url = target.bases[0] + query.path.format(trace_id=trace_id)
                        started = time.perf_counter()
                        response = client.get(url, params=params, headers={"Authorization": f"Bearer {key}"})
                        seconds = time.perf_counter() - started
                        if response.status_code not in (200, 404):
                            timed.errors.setdefault((query.name, kind, target.name), f"HTTP {response.status_code}")
                            continue
                        size = answer_size(query, response.json()) if response.status_code == 200 else 0
                        if number >= 2:
                            timed.add((query.name, kind, target.name), seconds, size)
    return timed


def create_rules(target: Target, count: int) -> None:
    """``count`` alert rules of the license, made with the admin key (half on the metric, half on error events), none
    firing."""
    with httpx.Client(timeout=30.0) as client:
        for number in range(count):
            condition: dict[str, Any] = (
                {
                    "source": "system_metrics",
                    "metric": SERIES_METRIC,
                    "aggregation": "p95",
                    "operator": ">",
                    "threshold": 1e9 + number,
                    "window_minutes": 5,
                    "for_minutes": 0,
                }
                if number % 2 == 0
                else {
                    "source": "telemetry_events",
                    "filters": {"event_type": "error_event"},
                    "aggregation": "count",
                    "operator": ">",
                    "threshold": 1e9 + number,
                    "window_minutes": 15,
                    "for_minutes": 0,
                }
            )
            answer = client.post(
                f"{target.bases[0]}/api/v1/alert-rules",
                json={
                    "name": f"bench rule {number}",
                    "condition_config": condition,
                    "severity": "warning",
                    "license_id": target.license_id,
                },
                # the admin key: on Citus a license key's rule creation is refused (see docs/SCALING.md)
                headers={"Authorization": f"Bearer {target.admin_key}"},
            )
            if answer.status_code != 201:
                raise SystemExit(f"alert rule on {target.name}: HTTP {answer.status_code} {answer.text[:300]}")


def time_evaluation(targets: Sequence[Target], repeats: int, rules: int, problems: dict[str, str]) -> dict[str, list[float]]:
    """Seconds of one forced evaluation pass over every rule, ``repeats`` times per target, interleaved; a pass
    with failed rules is noted in ``problems``."""
    engines = {target.name: make_engine(target.url, pool_size=1) for target in targets}
    seconds: dict[str, list[float]] = {target.name: [] for target in targets}
    try:
        for number in range(repeats + 1):
            for target in targets if number % 2 == 0 else list(reversed(targets)):
                started = time.perf_counter()
                with session_factory(engines[target.name]).begin() as session:
                    summary = alert_evaluation.evaluate_due(session, now=datetime.now(UTC), force=True)
                if summary.errors or len(summary.rules) != rules:
                    problems[target.name] = (
                        f"{len(summary.rules)} of {rules} rules evaluated, {len(summary.errors)} failed: "
                        f"{(summary.errors[0].error or '')[:160] if summary.errors else ''}"
                    )
                if number:
                    seconds[target.name].append(time.perf_counter() - started)
    finally:
        for engine in engines.values():
            engine.dispose()
    return seconds


# -- report -----------------------------------------------------------------------------------------


def ratio(cluster: float, single: float) -> str:
    return f"{cluster / single:.2f}" if single > 0 and cluster > 0 else "-"


def report_ingest(title: str, rates: Rates) -> None:
    single, cluster = rates.rate("single"), rates.rate("cluster")
    if single > 0 and cluster > 0:
        overhead = f"overhead {(1 / cluster - 1 / single) * 1e6:+.1f} µs/row"
    else:
        overhead = "overhead - (a target stored nothing)"
    print(
        f"  {title:<28} single {single:>9,.0f} rows/s   cluster {cluster:>9,.0f} rows/s   "
        f"cluster/single {ratio(cluster, single)}   {overhead}"
    )
    for error in rates.errors[:5]:
        print(f"    error: {error[:300]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events of the one-server ingest (default 100,000)")
    parser.add_argument("--spans", type=int, default=100_000, help="spans of the one-server ingest (default 100,000)")
    parser.add_argument(
        "--server-events",
        type=int,
        default=40_000,
        help="events per configuration of the 1, 2 and 3 server ingest (default 40,000)",
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (default 4)")
    parser.add_argument("--batch", type=int, default=500, help="events or spans per request (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of each ingest (default 3)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls of each query per key and target")
    parser.add_argument("--rules", type=int, default=50, help="alert rules of the evaluation pass (default 50)")
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="small counts: a couple of minutes, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.spans, args.server_events = 10_000, 10_000, 6_000
        args.rounds, args.repeats, args.rules, args.users = 2, 10, 10, 200
    started_at = time.monotonic()
    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    users = make_users(rng, args.users)
    print(f"scale_out: {' '.join(sys.argv[1:]) or '(defaults)'}; PostgreSQL at {CITUS_BIN_DIR}", flush=True)

    # every request prepared before any timing; the same bodies go to both targets
    event_bodies = http_bodies(event_items(rng, args.events, now=now, users=users, environment=ENVIRONMENT), args.batch)
    event_sizes = [len(orjson.loads(body)["events"]) for body in event_bodies]
    span_bodies, span_sizes = otlp_requests(rng, args.spans, args.batch, now=now, users=users, environment=ENVIRONMENT)
    # the same spans again as native JSON, under other span ids (the OTLP path stores them first)
    json_span_bodies, json_span_sizes = span_json_bodies(
        otlp_requests(random.Random(args.seed + 1), args.spans, args.batch, now=now, users=users, environment=ENVIRONMENT)[0]
    )
    # traces to read back: those of the JSON spans (stored on both targets whatever the OTLP path does)
    trace_ids = sorted({item["trace_id"] for item in orjson.loads(json_span_bodies[0])["spans"]})[:20]
    server_bodies = {
        servers: http_bodies(event_items(rng, args.server_events, now=now, users=users, environment=ENVIRONMENT), args.batch)
        for servers in (1, 2, 3)
    }

    root = Path(tempfile.mkdtemp(prefix="ft-bench-scale-"))
    workdir = root / "run"
    workdir.mkdir()
    clients = Clients(args.clients)
    with ExitStack() as stack:
        targets = [
            Target("single", stack.enter_context(single_node(root))),
            Target("cluster", stack.enter_context(citus_cluster(root))),
        ]
        stack.callback(lambda: [server.stop() for target in targets for server in target.servers])
        for target in targets:
            prepare(target, users.ids)
            start_servers(target, workdir, 1)
        print(
            f"set up in {time.monotonic() - started_at:.0f} s: single node and coordinator + 2 workers, one serve each",
            flush=True,
        )

        # 1. ingest through one server
        events = interleaved_ingest(
            targets, clients, "/api/v1/events", event_bodies, event_sizes, "application/json", check_events, rounds=args.rounds
        )
        spans = interleaved_ingest(
            targets, clients, "/v1/traces", span_bodies, span_sizes, "application/x-protobuf", check_traces, rounds=args.rounds
        )
        json_spans = interleaved_ingest(
            targets,
            clients,
            "/api/v1/spans",
            json_span_bodies,
            json_span_sizes,
            "application/json",
            check_events,
            rounds=args.rounds,
        )
        series = metric_bodies(now, hosts=2)
        for target in targets:
            headers = {"Authorization": f"Bearer {target.license_key}", "Content-Type": "application/json"}
            for body in series:
                answer = httpx.post(f"{target.bases[0]}/api/v1/system-metrics", content=body, headers=headers, timeout=120)
                if answer.status_code != 200 or answer.json().get("rejected"):
                    raise SystemExit(f"metrics on {target.name}: HTTP {answer.status_code} {answer.text[:300]}")

        # 2. queries and the evaluation pass
        timed = time_queries(targets, now, trace_ids, args.repeats)
        for target in targets:
            create_rules(target, args.rules)
        evaluation_problems: dict[str, str] = {}
        evaluation = time_evaluation(targets, args.repeats, args.rules, evaluation_problems)

        # 3. ingest through 1, 2 and 3 servers
        by_servers: dict[int, Rates] = {}
        for servers, bodies in server_bodies.items():
            for target in targets:
                start_servers(target, workdir, servers)
            sizes = [len(orjson.loads(body)["events"]) for body in bodies]
            by_servers[servers] = interleaved_ingest(
                targets,
                clients,
                "/api/v1/events",
                bodies,
                sizes,
                "application/json",
                check_events,
                rounds=args.rounds,
                servers=servers,
            )
    clients.close()
    shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"ingest through one serve ({args.clients} clients, {args.batch} per request, {args.rounds} interleaved rounds)")
    report_ingest(f"events ({args.events:,})", events)
    report_ingest(f"spans, OTLP ({args.spans:,})", spans)
    report_ingest(f"spans, JSON ({args.spans:,})", json_spans)
    print()
    print(f"queries through the API ({args.repeats} timed calls each; admin key with license_id, except the summary)")
    print(
        f"  {'query':<32}{'key':<9}{'single p50':>11}{'p95':>9}{'cluster p50':>13}{'p95':>9}{'p95 c/s':>9}"
        f"{'overhead ms':>13}  answer sizes single / cluster"
    )
    for query in queries(now):
        for kind in ("admin", "license"):
            failed = [
                f"{name}: {timed.errors[(query.name, kind, name)]}"
                for name in TARGETS
                if (query.name, kind, name) in timed.errors
            ]
            if failed:
                print(f"  {query.name:<32}{kind:<9}  not timed, {'; '.join(failed)} (see the server log)")
                continue
            single = timed.latencies[(query.name, kind, "single")]
            cluster = timed.latencies[(query.name, kind, "cluster")]
            s50, s95, c50, c95 = (quantile(values, q) * 1000 for values in (single, cluster) for q in (0.5, 0.95))
            sizes = f"{sorted(timed.sizes[(query.name, kind, 'single')])} / {sorted(timed.sizes[(query.name, kind, 'cluster')])}"
            print(
                f"  {query.name:<32}{kind:<9}{s50:>11.1f}{s95:>9.1f}{c50:>13.1f}{c95:>9.1f}{ratio(c95, s95):>9}"
                f"{c50 - s50:>+13.1f}  {sizes}"
            )
    s50, s95 = quantile(evaluation["single"], 0.5) * 1000, quantile(evaluation["single"], 0.95) * 1000
    c50, c95 = quantile(evaluation["cluster"], 0.5) * 1000, quantile(evaluation["cluster"], 0.95) * 1000
    print(
        f"  {f'alert evaluation pass, {args.rules} rules':<32}{'-':<9}{s50:>11.1f}{s95:>9.1f}{c50:>13.1f}{c95:>9.1f}"
        f"{ratio(c95, s95):>9}{c50 - s50:>+13.1f}"
    )
    for name, problem in evaluation_problems.items():
        print(f"    evaluation pass on {name}: {problem}")
    print()
    print(f"ingest of events through 1, 2 and 3 serve processes ({args.server_events:,} events each, {args.clients} clients)")
    for servers, rates in by_servers.items():
        report_ingest(f"{servers} serve", rates)
        gains = [f"{name} x{ratio(rates.rate(name), by_servers[1].rate(name))}" for name in TARGETS]
        print(f"  {'':<28} vs 1 serve: {', '.join(gains)}")
    print()
    print(f"total {time.monotonic() - started_at:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
