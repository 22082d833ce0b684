"""Ingest cost of the index layout: COPY the same events into three layouts of ``telemetry_events``.

(a) the shipped table (its own secondary indexes), (b) the same table with no secondary index and
(c) the naive "an index on nearly every column" layout (20 secondary indexes), all with the same
daily partitions, primary key, CHECKs and foreign keys, in a fresh ``bench`` schema so real data is
never touched. Prints rows/s of each and the ratios (a)/(b) and (c)/(b), all from one run.

    .venv/bin/python bench/ingest_copy.py [--rows 1000000] [--database-url URL] [--per-index]

Imports the package only to start the embedded PostgreSQL and to migrate the schema.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fernando_telemetry.services import schema
from fernando_telemetry.storage.database import libpq_url, make_engine
from fernando_telemetry.storage.embedded import EmbeddedPostgres

SHIPPED = "bench.events_shipped"
NO_INDEX = "bench.events_noidx"
NAIVE = "bench.events_naive20"

# created_at is left to its server default, as the ingest writer does.
COPY_COLUMNS = (
    "event_id",
    "event_type",
    "event_name",
    "category",
    "source",
    "user_id",
    "license_id",
    "session_id",
    "payload",
    "duration_ms",
    "ip_address",
    "user_agent",
    "trace_id",
    "span_id",
    "environment",
    "app_version",
    "event_timestamp",
)

# The original design: an index on nearly every column plus composites, exactly 20 besides the PK.
NAIVE_INDEXES = (
    "(event_type)",
    "(event_name)",
    "(category)",
    "(source)",
    "(user_id)",
    "(license_id)",
    "(session_id)",
    "(trace_id)",
    "(environment)",
    "(ip_address)",
    "(event_timestamp)",
    "(created_at)",
    "(duration_ms)",
    "(user_id, event_timestamp)",
    "(license_id, event_timestamp)",
    "(event_type, event_name)",
    "(session_id, event_timestamp)",
    "USING gin (payload)",
    "(user_agent)",
    "(app_version)",
)

# -- the workload ---------------------------------------------------------------------------------

EVENT_TYPES = {  # share of traffic
    "user_action": 0.46,
    "api_event": 0.24,
    "performance_event": 0.10,
    "system_event": 0.07,
    "error_event": 0.05,
    "business_event": 0.04,
    "security_event": 0.04,
}
EVENT_NAMES = {  # name: (weight, category)
    "user_action": {
        "page_view": (40, "navigation"),
        "button_click": (25, "engagement"),
        "form_submit": (8, "engagement"),
        "search": (8, "engagement"),
        "feature_used": (10, "engagement"),
        "file_download": (4, "engagement"),
        "login": (3, "auth"),
        "logout": (2, "auth"),
    },
    "api_event": {
        "api_request": (70, "api"),
        "webhook_delivered": (15, "integrations"),
        "rate_limited": (5, "api"),
        "export_requested": (10, "api"),
    },
    "performance_event": {
        "page_load": (50, "web_vitals"),
        "api_latency": (30, "backend"),
        "db_query_slow": (15, "backend"),
        "render_time": (5, "web_vitals"),
    },
    "system_event": {
        "job_started": (35, "jobs"),
        "job_completed": (35, "jobs"),
        "cache_evicted": (20, "infrastructure"),
        "deploy_finished": (2, "infrastructure"),
        "worker_restarted": (8, "infrastructure"),
    },
    "error_event": {
        "exception_raised": (45, "backend"),
        "http_5xx": (25, "backend"),
        "validation_failed": (20, "frontend"),
        "timeout": (10, "backend"),
    },
    "business_event": {
        "checkout_completed": (35, "billing"),
        "invoice_paid": (25, "billing"),
        "trial_started": (15, "lifecycle"),
        "subscription_started": (12, "lifecycle"),
        "plan_upgraded": (8, "lifecycle"),
        "subscription_cancelled": (5, "lifecycle"),
    },
    "security_event": {
        "login_failed": (50, "auth"),
        "password_changed": (15, "auth"),
        "mfa_enabled": (10, "auth"),
        "permission_denied": (20, "access"),
        "api_key_created": (5, "access"),
    },
}
SOURCES = {"web": 0.50, "api": 0.25, "mobile": 0.20, "batch_job": 0.05}
USER_AGENTS = {
    "web": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    ),
    "mobile": (
        "FernandoApp/3.8.1 (iPhone15,2; iOS 18.1.1; Scale/3.00)",
        "FernandoApp/3.8.0 (Android 14; Pixel 8; okhttp/4.12.0)",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    ),
    "api": ("fernando-telemetry-python/0.1.0 python/3.12.7", "python-httpx/0.27.2", "curl/8.5.0", "Go-http-client/2.0"),
    "batch_job": ("fernando-worker/2.14.3",),
}
APP_VERSIONS = {"web": ("2.14.3", "2.14.2"), "api": ("2.14.3",), "mobile": ("3.8.1",), "batch_job": ("2.14.3",)}


def _app_version(rng: random.Random, source: str, user_agent: str) -> str:
    """The mobile app says its version in its user agent; the web and API versions are the backend's."""
    if user_agent.startswith("FernandoApp/"):
        return user_agent.split("/", 1)[1].split(" ", 1)[0]
    return rng.choice(APP_VERSIONS[source])


PAGES = (
    "/",
    "/dashboard",
    "/projects",
    "/projects/{id}",
    "/projects/{id}/settings",
    "/reports",
    "/reports/{id}",
    "/billing",
    "/billing/invoices",
    "/settings/profile",
    "/settings/team",
    "/search",
    "/docs/getting-started",
    "/integrations",
    "/notifications",
    "/pricing",
    "/signup",
    "/login",
)
API_PATHS = (
    "/api/v1/projects",
    "/api/v1/projects/{id}",
    "/api/v1/reports/{id}",
    "/api/v1/users/me",
    "/api/v1/search",
    "/api/v1/exports",
    "/api/v1/webhooks",
    "/api/v1/billing/usage",
)
PLANS = ("free", "starter", "pro", "enterprise")
ERRORS = (
    ("TimeoutError", "upstream did not answer within 30s"),
    ("ValueError", "invalid project id"),
    ("IntegrityError", "duplicate key value violates unique constraint"),
    ("KeyError", "missing field 'name'"),
    ("ConnectionResetError", "connection reset by peer"),
)


@dataclass(frozen=True)
class Workload:
    """The rows, pre-rendered as COPY text batches, and what they reference."""

    batches: list[bytes]
    batch_rows: list[int]
    first_at: datetime
    last_at: datetime
    user_ids: list[str]
    user_licenses: list[int]
    license_count: int
    attributed_rows: int

    @property
    def rows(self) -> int:
        return sum(self.batch_rows)

    def first_rows(self, rows: int) -> Workload:
        """The leading batches holding about ``rows`` rows (at least one batch)."""
        count, total = 0, 0
        while count < len(self.batches) and (count == 0 or total < rows):
            total += self.batch_rows[count]
            count += 1
        return Workload(
            self.batches[:count],
            self.batch_rows[:count],
            self.first_at,
            self.last_at,
            self.user_ids,
            self.user_licenses,
            self.license_count,
            self.attributed_rows,
        )


def uuid7_text(timestamp_ms: int, rng: random.Random) -> str:
    """A UUID v7 (RFC 9562): 48-bit Unix milliseconds, version 7, variant 10, 74 random bits."""
    rand = rng.getrandbits(74)
    value = (timestamp_ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _copy_text(value: str) -> str:
    """A value escaped for COPY's text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _weighted(rng: random.Random, table: dict[str, float], k: int) -> list[str]:
    return rng.choices(list(table), weights=list(table.values()), k=k)


def _ipv4(rng: random.Random) -> str:
    return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _payload(rng: random.Random, event_type: str, event_name: str, plan: str) -> dict[str, object]:
    if event_type == "user_action":
        payload: dict[str, object] = {"page": rng.choice(PAGES), "plan": plan}
        if event_name == "button_click":
            payload["element"] = rng.choice(("save", "share", "export", "new-project", "invite", "upgrade"))
        elif event_name == "search":
            payload["results"] = rng.randint(0, 200)
        return payload
    if event_type == "api_event":
        status_code = rng.choices((200, 201, 204, 400, 401, 404, 429, 500), (70, 8, 5, 5, 3, 5, 2, 2))[0]
        method = rng.choices(("GET", "POST", "PUT", "DELETE"), (70, 20, 7, 3))[0]
        return {"method": method, "path": rng.choice(API_PATHS), "status_code": status_code, "plan": plan}
    if event_type == "performance_event":
        return {"page": rng.choice(PAGES), "metric": rng.choice(("lcp", "fcp", "ttfb", "inp")), "plan": plan}
    if event_type == "system_event":
        return {
            "job": rng.choice(("nightly_export", "rollup_refresh", "email_digest", "cleanup")),
            "host": f"worker-{rng.randint(1, 8)}",
            "status": rng.choices(("ok", "retry", "failed"), (90, 7, 3))[0],
        }
    if event_type == "error_event":
        error, message = rng.choice(ERRORS)
        return {"error": error, "message": message, "status_code": 500, "path": rng.choice(API_PATHS)}
    if event_type == "business_event":
        amount = round(rng.choice((9.0, 29.0, 49.0, 99.0, 499.0)) * rng.choice((1, 1, 1, 12)), 2)
        return {
            "plan": rng.choice(PLANS[1:]),
            "amount": amount,
            "currency": rng.choice(("EUR", "USD", "GBP")),
            "order_id": f"ord_{rng.getrandbits(48):012x}",
        }
    return {
        "method": rng.choice(("password", "sso", "api_key")),
        "reason": rng.choice(("bad_password", "expired", "mfa")),
        "plan": plan,
    }


def _duration_ms(rng: random.Random, event_type: str) -> str:
    if event_type in ("api_event", "performance_event"):
        return f"{rng.lognormvariate(4.2, 0.9):.3f}"  # median ~67 ms, long tail
    if event_type == "error_event":
        return f"{rng.lognormvariate(6.0, 1.2):.3f}"
    if event_type == "system_event" and rng.random() < 0.5:
        return f"{rng.lognormvariate(8.0, 1.5):.3f}"
    return "\\N"


def generate(
    *,
    rows: int,
    batch_rows: int,
    users: int,
    licenses: int,
    days: float,
    now: datetime,
    seed: int,
    progress: Progress,
) -> Workload:
    """Realistic events over the ``days`` before ``now``, in time order, as COPY text batches."""
    rng = random.Random(seed)
    task = progress.add_task("generating events", total=rows)

    # the platform: users (ids as the platform's own strings) on licenses of uneven size
    user_ids = [str(100_000 + index) for index in range(users)]
    license_weights = [1 / (rank + 1) ** 0.8 for rank in range(licenses)]
    user_licenses = rng.choices(range(1, licenses + 1), weights=license_weights, k=users)
    license_plans = {license_id: rng.choice(PLANS) for license_id in range(1, licenses + 1)}
    user_ips = [_ipv4(rng) for _ in range(users)]
    user_activity = [1 / (rank + 1) ** 0.6 for rank in range(users)]  # a few very active users, a long tail
    rng.shuffle(user_activity)

    # timestamps over the window, with a day/night swing, sorted: the SDKs send events as they happen
    start = now - timedelta(days=days)
    span_s = days * 86_400.0
    start_s = start.timestamp()
    timestamps: list[float] = []
    while len(timestamps) < rows:
        candidate = start_s + rng.random() * span_s
        hour = (candidate % 86_400) / 3_600
        if rng.random() < 0.55 + 0.45 * max(0.0, 1 - abs(hour - 14) / 10):
            timestamps.append(candidate)
    timestamps.sort()

    event_types = _weighted(rng, EVENT_TYPES, rows)
    sources = _weighted(rng, SOURCES, rows)
    attributed = [rng.random() < 0.9 for _ in range(rows)]
    actors = rng.choices(range(users), weights=user_activity, k=rows)
    name_tables = {t: (list(names), [w for w, _ in names.values()]) for t, names in EVENT_NAMES.items()}
    sessions: dict[tuple[int, int], str] = {}

    batches: list[bytes] = []
    sizes: list[int] = []
    lines: list[str] = []
    attributed_rows = 0
    for index in range(rows):
        timestamp_s = timestamps[index]
        event_type = event_types[index]
        source = "batch_job" if event_type == "system_event" else sources[index]
        names, weights = name_tables[event_type]
        event_name = rng.choices(names, weights)[0]
        category = EVENT_NAMES[event_type][event_name][1]
        if attributed[index]:
            actor = actors[index]
            user_id, license_id = user_ids[actor], str(user_licenses[actor])
            plan, ip = license_plans[user_licenses[actor]], user_ips[actor]
            attributed_rows += 1
        else:
            actor = -1 - rng.randrange(5_000)  # an anonymous visitor
            user_id, license_id, plan, ip = "\\N", "\\N", "free", f"203.0.{-actor % 250}.{-actor % 199 + 1}"
        # a session is one actor's activity within a 30-minute window
        session_key = (actor, int(timestamp_s // 1_800))
        session_id = sessions.get(session_key)
        if session_id is None:
            session_id = sessions[session_key] = f"{rng.getrandbits(128):032x}"
        if event_type in ("api_event", "error_event", "performance_event") and rng.random() < 0.8 or rng.random() < 0.1:
            trace_id, span_id = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}"
        else:
            trace_id, span_id = "\\N", "\\N"
        timestamp = datetime.fromtimestamp(timestamp_s, UTC)
        payload = json.dumps(_payload(rng, event_type, event_name, plan), separators=(",", ":"))
        user_agent = rng.choice(USER_AGENTS[source])
        lines.append(
            "\t".join(
                (
                    uuid7_text(int(timestamp_s * 1000), rng),
                    event_type,
                    event_name,
                    category,
                    source,
                    user_id,
                    license_id,
                    session_id,
                    _copy_text(payload),
                    _duration_ms(rng, event_type),
                    ip,
                    user_agent,
                    trace_id,
                    span_id,
                    "production",
                    _app_version(rng, source, user_agent),
                    timestamp.isoformat(),
                )
            )
        )
        if len(lines) == batch_rows or index == rows - 1:
            batches.append(("\n".join(lines) + "\n").encode())
            sizes.append(len(lines))
            lines = []
            progress.update(task, completed=index + 1)
    progress.remove_task(task)
    return Workload(
        batches=batches,
        batch_rows=sizes,
        first_at=datetime.fromtimestamp(timestamps[0], UTC),
        last_at=datetime.fromtimestamp(timestamps[-1], UTC),
        user_ids=user_ids,
        user_licenses=user_licenses,
        license_count=licenses,
        attributed_rows=attributed_rows,
    )


# -- the schema -----------------------------------------------------------------------------------


def _index_shapes(conn: psycopg.Connection, table: str) -> list[str]:
    """Each secondary index of ``table`` without its name and table, e.g. ``USING brin (event_timestamp)``."""
    definitions = conn.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass AND NOT indisprimary",
        (table,),
    ).fetchall()
    return sorted(re.sub(r"^CREATE (UNIQUE )?INDEX \S+ ON (ONLY )?\S+ ", r"\1", d) for (d,) in definitions)


def _create_partitioned(conn: psycopg.Connection, table: str, *, like: str, workload: Workload) -> None:
    """``table`` as the shipped table's columns, defaults, CHECKs, PK and FKs (to bench.users/licenses),
    partitioned by day over the workload's days, with autovacuum off so loads do not race it."""
    name = table.split(".")[1]
    conn.execute(f"CREATE TABLE {table} (LIKE public.telemetry_events {like}) PARTITION BY RANGE (event_timestamp)")
    if "INCLUDING INDEXES" not in like and "INCLUDING ALL" not in like:
        conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{name} PRIMARY KEY (event_id, event_timestamp)")
    for (definition,) in conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.telemetry_events'::regclass "
        "AND contype = 'f' ORDER BY conname"
    ).fetchall():
        definition = re.sub(r"REFERENCES (public\.)?(users|licenses)\(", r"REFERENCES bench.\2(", definition)
        conn.execute(f"ALTER TABLE {table} ADD {definition}")
    conn.execute(
        "SELECT public.ensure_daily_partitions(%s::regclass, %s, %s)",
        (table, workload.first_at.date(), workload.last_at.date()),
    )
    for (partition,) in conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass", (table,)
    ).fetchall():
        conn.execute(f"ALTER TABLE {partition} SET (autovacuum_enabled = false)")


def prepare_schema(conn: psycopg.Connection, workload: Workload) -> dict[str, int]:
    """A fresh ``bench`` schema with the platform tables filled and the three event tables empty."""
    conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
    conn.execute("CREATE SCHEMA bench")
    # copies of the platform tables, so the FK checks probe the same structures without touching real rows
    conn.execute("CREATE TABLE bench.licenses (LIKE public.licenses INCLUDING ALL)")
    conn.execute("CREATE TABLE bench.users (LIKE public.users INCLUDING ALL)")
    with conn.cursor().copy("COPY bench.licenses (license_id, name, plan) FROM STDIN") as copy:
        for license_id in range(1, workload.license_count + 1):
            copy.write_row((license_id, f"Customer {license_id}", PLANS[license_id % len(PLANS)]))
    with conn.cursor().copy("COPY bench.users (user_id, email, license_id) FROM STDIN") as copy:
        for user_id, license_id in zip(workload.user_ids, workload.user_licenses, strict=True):
            copy.write_row((user_id, f"user{user_id}@example.com", license_id))
    conn.execute("ALTER TABLE bench.users ADD FOREIGN KEY (license_id) REFERENCES bench.licenses (license_id)")

    _create_partitioned(conn, NO_INDEX, like="INCLUDING DEFAULTS INCLUDING CONSTRAINTS", workload=workload)
    _create_partitioned(conn, SHIPPED, like="INCLUDING ALL", workload=workload)
    _create_partitioned(conn, NAIVE, like="INCLUDING DEFAULTS INCLUDING CONSTRAINTS", workload=workload)
    for number, shape in enumerate(NAIVE_INDEXES, start=1):
        conn.execute(f"CREATE INDEX naive20_{number:02d} ON {NAIVE} {shape}")
    conn.commit()
    _outside_transaction(conn, "VACUUM ANALYZE bench.users, bench.licenses")

    if _index_shapes(conn, SHIPPED) != _index_shapes(conn, "public.telemetry_events"):
        raise SystemExit(
            f"{SHIPPED} does not have the indexes of public.telemetry_events:\n"
            f"  {_index_shapes(conn, SHIPPED)}\n  {_index_shapes(conn, 'public.telemetry_events')}"
        )
    return {table: len(_index_shapes(conn, table)) for table in (NO_INDEX, SHIPPED, NAIVE)}


# -- loading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One table's load: the time of each batch's COPY + commit, then the (untimed) VACUUM and sizes."""

    table: str
    batch_rows: list[int]
    batch_seconds: list[float]
    vacuum_seconds: float
    heap_mb: float
    index_mb: float

    @property
    def rows(self) -> int:
        return sum(self.batch_rows)

    @property
    def seconds(self) -> float:
        return sum(self.batch_seconds)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    def relative_to(self, baseline: Load) -> tuple[float, float]:
        """Throughput vs ``baseline``: over the whole load, and the median of the per-batch ratios."""
        paired = [theirs / mine for mine, theirs in zip(self.batch_seconds, baseline.batch_seconds, strict=True)]
        return self.rows_per_s / baseline.rows_per_s, statistics.median(paired)


def _outside_transaction(conn: psycopg.Connection, statement: str) -> None:
    """Run ``statement`` on its own (VACUUM, CHECKPOINT); the connection must be idle."""
    conn.autocommit = True
    try:
        conn.execute(statement)
    finally:
        conn.autocommit = False


def settle(conn: psycopg.Connection, notes: list[str]) -> None:
    """Flush dirty pages so what follows starts from the same state (needs superuser or pg_checkpoint)."""
    try:
        _outside_transaction(conn, "CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        note = "CHECKPOINT not allowed for this role, skipped"
        if note not in notes:
            notes.append(note)


def load_interleaved(
    conn: psycopg.Connection,
    tables: list[str],
    workload: Workload,
    *,
    progress: Progress,
    notes: list[str],
) -> dict[str, Load]:
    """COPY each batch into every table in turn, the order rotating by one table per batch, one
    transaction per COPY; only COPY + commit is timed. Interleaving spreads the noise of a shared
    machine, and the server's own checkpoints, evenly over the tables."""
    statements = {table: f"COPY {table} ({', '.join(COPY_COLUMNS)}) FROM STDIN" for table in tables}
    batch_seconds: dict[str, list[float]] = {table: [] for table in tables}
    settle(conn, notes)
    task = progress.add_task(f"COPY into {len(tables)} tables in turn", total=workload.rows * len(tables))
    for number, (batch, rows) in enumerate(zip(workload.batches, workload.batch_rows, strict=True)):
        shift = number % len(tables)
        for table in tables[shift:] + tables[:shift]:
            started = time.perf_counter()
            with conn.cursor().copy(statements[table]) as copy:
                copy.write(batch)
            conn.commit()
            batch_seconds[table].append(time.perf_counter() - started)
            progress.advance(task, rows)
    progress.remove_task(task)
    loads: dict[str, Load] = {}
    for table in tables:
        started = time.perf_counter()
        _outside_transaction(conn, f"VACUUM ANALYZE {table}")
        vacuum_seconds = time.perf_counter() - started
        heap_bytes, index_bytes = conn.execute(
            "SELECT coalesce(sum(pg_table_size(relid)), 0), coalesce(sum(pg_indexes_size(relid)), 0) "
            "FROM pg_partition_tree(%s::regclass)",
            (table,),
        ).fetchone()
        conn.commit()
        loads[table] = Load(
            table, workload.batch_rows, batch_seconds[table], vacuum_seconds, heap_bytes / 2**20, index_bytes / 2**20
        )
    settle(conn, notes)
    return loads


def per_index(
    conn: psycopg.Connection,
    sample: Workload,
    *,
    progress: Progress,
    notes: list[str],
) -> list[tuple[str, Load]]:
    """Load ``sample`` into (b) alone, (b) plus each shipped index alone and (b) plus all of them, interleaved."""
    shapes = _index_shapes(conn, "public.telemetry_events")
    variants = [("(b) no secondary index", []), *((shape, [shape]) for shape in shapes), ("all shipped indexes = (a)", shapes)]
    tables = []
    for number, (_, indexes) in enumerate(variants):
        table = f"bench.events_variant_{number}"
        _create_partitioned(conn, table, like="INCLUDING DEFAULTS INCLUDING CONSTRAINTS", workload=sample)
        for shape in indexes:
            conn.execute(f"CREATE INDEX ON {table} {shape}")
        tables.append(table)
    conn.commit()
    loads = load_interleaved(conn, tables, sample, progress=progress, notes=notes)
    for table in tables:
        conn.execute(f"DROP TABLE {table}")
    conn.commit()
    return [(name, loads[table]) for (name, _), table in zip(variants, tables, strict=True)]


# -- the run --------------------------------------------------------------------------------------


@contextmanager
def database(url: str | None) -> Iterator[tuple[str, str]]:
    """The given server, or a durable embedded PostgreSQL 18 in a temporary directory removed afterwards."""
    if url:
        yield url, "the server at --database-url / DATABASE_URL"
        return
    root = Path(tempfile.mkdtemp(prefix="ft-bench-"))
    cluster = EmbeddedPostgres(root, port=0, database="bench", durable=True)
    try:
        yield cluster.start(), "embedded PostgreSQL in a temporary directory (durable: fsync on, default settings)"
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def report(
    *,
    workload: Workload,
    args: argparse.Namespace,
    version: str,
    where: str,
    partitions: int,
    index_counts: dict[str, int],
    loads: dict[str, Load],
    single: list[tuple[str, Load]],
    notes: list[str],
) -> None:
    b, a, c = loads[NO_INDEX], loads[SHIPPED], loads[NAIVE]
    print("ingest_copy: COPY the same events into three layouts of telemetry_events")
    print(f"database: PostgreSQL {version.split()[0]}, {where}")
    print(
        f"rows: {workload.rows:,} per table in {len(workload.batches)} COPY statements of {args.batch_rows:,} rows "
        "(text format, one transaction each), one connection"
    )
    print(
        f"events: {workload.first_at:%Y-%m-%d %H:%M} .. {workload.last_at:%Y-%m-%d %H:%M} UTC in time order "
        f"({partitions} daily partitions); {args.users:,} users, {workload.attributed_rows / workload.rows:.1%} of "
        f"events with a user_id; {args.licenses} licenses"
    )
    print("event_id: UUID v7 made from event_timestamp (time-ordered, as the SDK sends them)")
    print(
        "tables: same columns, CHECKs, daily partitions, PK (event_id, event_timestamp) and FKs to users/licenses "
        "(copies in schema bench)"
    )
    print(
        "method: each batch is COPYed into (b), (a), (c) in turn, the order rotating per batch; timed: COPY + commit; "
        "autovacuum off on the bench tables, CHECKPOINT before, VACUUM ANALYZE after (timed apart)"
        + (f"; notes: {', '.join(notes)}" if notes else "")
    )
    print()
    print(f"{'table':<26}{'indexes':>7}  {'seconds':>8}  {'rows/s':>9}  {'heap MB':>8}  {'index MB':>8}  {'vacuum s':>8}")
    for label, one in (("(b)", b), ("(a)", a), ("(c)", c)):
        print(
            f"{label + ' ' + one.table:<26}{index_counts[one.table]:>7}  {one.seconds:>8.1f}  {one.rows_per_s:>9,.0f}  "
            f"{one.heap_mb:>8,.0f}  {one.index_mb:>8,.0f}  {one.vacuum_seconds:>8.1f}"
        )
    print("indexes: secondary indexes of the partitioned table, besides the PK; index MB includes the PK")
    print()
    for label, one, meaning in (
        ("(a)/(b)", a, "shipped layout vs no secondary index"),
        ("(c)/(b)", c, "20-index layout vs no secondary index"),
    ):
        overall, paired = one.relative_to(b)
        print(f"{label} = {overall:.2f}   {meaning} (median of the {len(b.batch_seconds)} per-batch ratios: {paired:.2f})")
    overall, paired = a.relative_to(c)
    print(f"(a)/(c) = {overall:.2f}   shipped layout vs 20-index layout (median of per-batch ratios: {paired:.2f})")
    if single:
        baseline = single[0][1]
        print()
        print(
            f"per index: {baseline.rows:,} rows into (b) plus the index(es) named, all variants interleaved per batch; "
            "throughput vs (b), and the extra time per row"
        )
        print(f"{'index':<72}{'rows/s':>9}  {'ratio':>5}  {'median':>6}  {'us/row':>7}")
        for name, one in single:
            overall, paired = one.relative_to(baseline)
            extra_us = (one.seconds - baseline.seconds) / one.rows * 1e6
            print(f"{name:<72}{one.rows_per_s:>9,.0f}  {overall:>5.2f}  {paired:>6.2f}  {extra_us:>+7.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="events to load into each table (default 1,000,000)")
    parser.add_argument("--batch-rows", type=int, default=50_000, help="rows per COPY statement and transaction")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--licenses", type=int, default=50)
    parser.add_argument("--days", type=float, default=3.0, help="the events span the last DAYS days")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="an existing server (default: $DATABASE_URL, else an embedded PostgreSQL 18)",
    )
    parser.add_argument(
        "--per-index", action="store_true", help="then load a sample into (b) plus each shipped index alone, to price each index"
    )
    parser.add_argument("--per-index-rows", type=int, default=500_000, help="rows of the --per-index sample")
    parser.add_argument("--keep", action="store_true", help="leave the bench schema in the database afterwards")
    args = parser.parse_args(argv)

    now = datetime.now(UTC).replace(microsecond=0)
    columns = (TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    notes: list[str] = []
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        workload = generate(
            rows=args.rows,
            batch_rows=args.batch_rows,
            users=args.users,
            licenses=args.licenses,
            days=args.days,
            now=now,
            seed=args.seed,
            progress=progress,
        )
        with database(args.database_url) as (url, where):
            engine = make_engine(url)
            schema.upgrade(engine)
            engine.dispose()
            with psycopg.connect(libpq_url(url), application_name="ft-bench-ingest-copy") as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
                index_counts = prepare_schema(conn, workload)
                conn.commit()
                loads = load_interleaved(conn, [NO_INDEX, SHIPPED, NAIVE], workload, progress=progress, notes=notes)
                partitions = conn.execute(
                    "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", (SHIPPED,)
                ).fetchone()[0]
                conn.commit()
                single = (
                    per_index(conn, workload.first_rows(args.per_index_rows), progress=progress, notes=notes)
                    if args.per_index
                    else []
                )
                if not args.keep:
                    conn.execute("DROP SCHEMA bench CASCADE")
                    conn.commit()
    report(
        workload=workload,
        args=args,
        version=version,
        where=where,
        partitions=partitions,
        index_counts=index_counts,
        loads=loads,
        single=single,
        notes=notes,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
