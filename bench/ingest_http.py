"""Ingest rate through the real server: HTTP batches, OTLP spans and metrics vs raw COPY of the same rows, and the naive ORM path.

It starts ``fernando_telemetry serve`` (the code of this checkout's ``src/``) on this machine and measures, side
by side in one run, rows/s of (a) raw COPY of the rows the server would write, into the same ``telemetry_events``
(the limit), (b) the native ``POST /api/v1/events`` path with concurrent clients, each batch acked after commit,
(c) OTLP protobuf spans through ``POST /v1/traces``, (d) the naive original design, one ORM object added and
committed per event, (e) OTLP protobuf metric data points through ``POST /v1/metrics`` as OpenTelemetry SDKs
export them (cumulative counters and explicit-bucket histograms per label set, gauges; each stream exported again
and again with growing totals) and (f) ``POST /api/v1/events`` where every event names a user never seen before
(the first-sight registration of a user per event; a version that rejects unknown users is reported as such).
Prints each rate and the ratios (b)/(a), (c)/(a), (e)/(a), (b)/(d) and (f)/(b), then the cost of the SDK's
``TelemetryMiddleware`` on a minimal FastAPI app.

    .venv/bin/python bench/ingest_http.py [--events 200000] [--clients 8] [--batch 500] [--database-url URL]
    .venv/bin/python bench/ingest_http.py --only metrics      # (a) and (e) alone
    .venv/bin/python bench/ingest_http.py --only users        # (b) and (f) alone
    .venv/bin/python bench/ingest_http.py --only middleware   # the middleware's cost alone

The events are those of ``ingest_copy.py`` (same event types, names, payloads, sources, user agents).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import dataclasses
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import psycopg

# the workload of the COPY bench, so both benches load the same kind of events
from ingest_copy import (
    EVENT_NAMES,
    EVENT_TYPES,
    SOURCES,
    USER_AGENTS,
    _app_version,
    _duration_ms,
    _payload,
    _weighted,
    uuid7_text,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fernando_telemetry.composition.wiring import dump_json
from fernando_telemetry.core.enums import EventSource, EventType
from fernando_telemetry.core.ids import uuid7_factory
from fernando_telemetry.core.ingest import events
from fernando_telemetry.core.ingest.common import DecodeContext, decode_items
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.database import libpq_url, make_engine, session_factory
from fernando_telemetry.storage.embedded import EmbeddedPostgres
from fernando_telemetry.storage.models import TelemetryEvent

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PYTHON = sys.executable
LICENSE_PLAN = "pro"
# rows of each path are told apart by their environment (and all carry the bench license)
ENV_COPY, ENV_HTTP, ENV_OTLP, ENV_ORM, ENV_MIDDLEWARE = "bench-copy", "bench-http", "bench-otlp", "bench-orm", "bench-middleware"
ENV_METRICS, ENV_NEW_USERS = "bench-metrics", "bench-new-users"
PATHS = ("a", "b", "c", "d", "e", "f")
ONLY = {"metrics": ("a", "e"), "users": ("b", "f")}  # --only: the paths each value runs
COPY_STATEMENT = f"COPY telemetry_events ({', '.join(events.COLUMNS)}) FROM STDIN"

# -- the workload ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Users:
    ids: list[str]
    activity: list[float]
    ips: list[str]


def make_users(rng: random.Random, count: int) -> Users:
    """The platform's users: a few very active, a long tail (as in ingest_copy.py)."""
    activity = [1 / (rank + 1) ** 0.6 for rank in range(count)]
    rng.shuffle(activity)
    ips = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(count)]
    return Users([str(100_000 + index) for index in range(count)], activity, ips)


def _iso(timestamp_s: float) -> str:
    return datetime.fromtimestamp(timestamp_s, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_items(rng: random.Random, count: int, *, now: datetime, users: Users, environment: str) -> list[dict[str, Any]]:
    """``count`` events of the last hour in time order, as the JSON items of ``POST /api/v1/events``.

    90% carry the user_id of an existing user; event_id is a UUID v7 of event_timestamp (as the SDK sends).
    No license_id: the key's license is every row's."""
    end_s = now.timestamp() - 5.0
    stamps = sorted(end_s - rng.random() * 3_600.0 for _ in range(count))
    event_types = _weighted(rng, EVENT_TYPES, count)
    sources = _weighted(rng, SOURCES, count)
    actors = rng.choices(range(len(users.ids)), weights=users.activity, k=count)
    name_tables = {t: (list(names), [w for w, _ in names.values()]) for t, names in EVENT_NAMES.items()}
    sessions: dict[tuple[int, int], str] = {}
    items: list[dict[str, Any]] = []
    for index, timestamp_s in enumerate(stamps):
        event_type = event_types[index]
        source = "batch_job" if event_type == "system_event" else sources[index]
        names, weights = name_tables[event_type]
        event_name = rng.choices(names, weights)[0]
        if rng.random() < 0.9:
            actor = actors[index]
            user_id, plan, ip = users.ids[actor], LICENSE_PLAN, users.ips[actor]
        else:
            actor = -1 - rng.randrange(5_000)  # an anonymous visitor
            user_id, plan, ip = None, "free", f"203.0.{-actor % 250}.{-actor % 199 + 1}"
        session_key = (actor, int(timestamp_s // 1_800))
        session_id = sessions.get(session_key)
        if session_id is None:
            session_id = sessions[session_key] = f"{rng.getrandbits(128):032x}"
        user_agent = rng.choice(USER_AGENTS[source])
        item: dict[str, Any] = {
            "event_id": uuid7_text(int(timestamp_s * 1000), rng),
            "event_type": event_type,
            "event_name": event_name,
            "category": EVENT_NAMES[event_type][event_name][1],
            "source": source,
            "session_id": session_id,
            "payload": _payload(rng, event_type, event_name, plan),
            "ip_address": ip,
            "user_agent": user_agent,
            "environment": environment,
            "app_version": _app_version(rng, source, user_agent),
            "event_timestamp": _iso(timestamp_s),
        }
        if user_id is not None:
            item["user_id"] = user_id
        duration = _duration_ms(rng, event_type)
        if duration != "\\N":
            item["duration_ms"] = float(duration)
        if event_type in ("api_event", "error_event", "performance_event") and rng.random() < 0.8 or rng.random() < 0.1:
            item["trace_id"], item["span_id"] = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}"
        items.append(item)
    return items


def http_bodies(items: Sequence[dict[str, Any]], batch: int) -> list[bytes]:
    """Pre-serialised request bodies of ``batch`` events each."""
    return [orjson.dumps({"events": items[start : start + batch]}) for start in range(0, len(items), batch)]


def copy_rows(items: Sequence[dict[str, Any]], *, license_id: int, now: datetime) -> list[tuple[Any, ...]]:
    """The rows the server would COPY for these items: decoded by the server's own decoder."""
    context = DecodeContext(
        now=now,
        earliest=now - timedelta(days=90),
        latest=now + timedelta(hours=1),
        license_id=license_id,
        is_admin=False,
        new_id=uuid7_factory(),
        dump_json=dump_json,
    )
    rows, _, rejections = decode_items(items, events.decode, context)
    if rejections:
        raise SystemExit(f"the generated events do not decode: {rejections[:3]}")
    return rows


def orm_fields(item: dict[str, Any], license_id: int) -> dict[str, Any]:
    """The ``TelemetryEvent`` constructor arguments of one item, as a naive handler would pass them."""
    return {
        "event_id": uuid.UUID(item["event_id"]),
        "event_type": EventType(item["event_type"]),
        "event_name": item["event_name"],
        "category": item.get("category"),
        "source": EventSource(item["source"]),
        "user_id": item.get("user_id"),
        "license_id": license_id,
        "session_id": item.get("session_id"),
        "payload": item["payload"],
        "duration_ms": item.get("duration_ms"),
        "ip_address": item.get("ip_address"),
        "user_agent": item.get("user_agent"),
        "trace_id": item.get("trace_id"),
        "span_id": item.get("span_id"),
        "environment": item["environment"],
        "app_version": item.get("app_version"),
        "event_timestamp": datetime.fromisoformat(item["event_timestamp"]),
    }


# OTLP: three services, each with a server framework scope and a client library scope
OTLP_SERVICES = (  # name, version, weight, host names, (server scope, client scope), client kind
    (
        "web-api",
        "2.14.3",
        0.6,
        ("web-1", "web-2", "web-3"),
        (("opentelemetry.instrumentation.fastapi", "0.54b1"), ("opentelemetry.instrumentation.sqlalchemy", "0.54b1")),
        "db",
    ),
    (
        "billing",
        "1.9.0",
        0.25,
        ("billing-1",),
        (("opentelemetry.instrumentation.flask", "0.54b1"), ("opentelemetry.instrumentation.httpx", "0.54b1")),
        "http",
    ),
    (
        "search",
        "0.31.2",
        0.15,
        ("search-1", "search-2"),
        (("opentelemetry.instrumentation.django", "0.54b1"), ("opentelemetry.instrumentation.psycopg", "0.54b1")),
        "db",
    ),
)
OTLP_ROUTES = (
    ("GET", "/api/v1/projects", "/api/v1/projects"),
    ("GET", "/api/v1/projects/{project_id}", "/api/v1/projects/{}"),
    ("PUT", "/api/v1/projects/{project_id}", "/api/v1/projects/{}"),
    ("GET", "/api/v1/reports/{report_id}", "/api/v1/reports/{}"),
    ("GET", "/api/v1/users/me", "/api/v1/users/me"),
    ("GET", "/api/v1/search", "/api/v1/search"),
    ("POST", "/api/v1/exports", "/api/v1/exports"),
    ("POST", "/api/v1/webhooks", "/api/v1/webhooks"),
    ("GET", "/api/v1/billing/usage", "/api/v1/billing/usage"),
)
DB_QUERIES = (
    ("SELECT", "projects", "SELECT id, name, owner_id FROM projects WHERE id = $1"),
    ("SELECT", "reports", "SELECT * FROM reports WHERE project_id = $1 ORDER BY created_at DESC LIMIT 50"),
    ("UPDATE", "projects", "UPDATE projects SET name = $1, updated_at = now() WHERE id = $2"),
    ("INSERT", "exports", "INSERT INTO exports (project_id, format, requested_by) VALUES ($1, $2, $3)"),
)


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def _attributes(values: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=_value(value)) for key, value in values.items()]


def otlp_requests(
    rng: random.Random,
    spans: int,
    per_request: int,
    *,
    now: datetime,
    users: Users,
    environment: str,
) -> tuple[list[bytes], list[int]]:
    """``ExportTraceServiceRequest`` messages of ``per_request`` spans each, serialised: traces of one server
    span (http.route, http.request.method, http.response.status_code, enduser.id on 90%...) and 0-3 client
    spans (database queries or outgoing HTTP), grouped by resource (service) and scope, the last hour."""
    end_ns = int((now.timestamp() - 5.0) * 1e9)
    resources = []
    for name, version, _, hosts, _, _ in OTLP_SERVICES:
        resources.append(
            [
                Resource(
                    attributes=_attributes(
                        {
                            "service.name": name,
                            "service.version": version,
                            "service.namespace": "fernando",
                            "service.instance.id": str(uuid.UUID(int=rng.getrandbits(128))),
                            "host.name": host,
                            "deployment.environment.name": environment,
                            "telemetry.sdk.name": "opentelemetry",
                            "telemetry.sdk.language": "python",
                            "telemetry.sdk.version": "1.45.2",
                            "process.runtime.name": "cpython",
                            "process.runtime.version": "3.12.7",
                            "process.pid": rng.randint(100, 60_000),
                        }
                    )
                )
                for host in hosts
            ]
        )
    weights = [service[2] for service in OTLP_SERVICES]
    bodies: list[bytes] = []
    sizes: list[int] = []
    remaining = spans
    while remaining > 0:
        target = min(per_request, remaining)
        # (service, host) -> [server spans, client spans]
        groups: dict[tuple[int, int], tuple[list[Span], list[Span]]] = {}
        count = 0
        while count < target:
            service = rng.choices(range(len(OTLP_SERVICES)), weights)[0]
            host = rng.randrange(len(resources[service]))
            server_spans, client_spans = groups.setdefault((service, host), ([], []))
            trace_id, root_id = rng.randbytes(16), rng.randbytes(8)
            start = end_ns - int(rng.random() * 3_600e9)
            duration = int(rng.lognormvariate(3.8, 0.9) * 1e6)
            method, route, path = rng.choice(OTLP_ROUTES)
            status_code = rng.choices((200, 201, 204, 400, 401, 404, 429, 500, 503), (70, 8, 5, 5, 3, 5, 2, 1.5, 0.5))[0]
            attributes: dict[str, Any] = {
                "http.request.method": method,
                "http.route": route,
                "http.response.status_code": status_code,
                "url.path": path.replace("{}", str(rng.randint(1, 50_000))),
                "url.scheme": "https",
                "server.address": "api.fernando.example",
                "server.port": 443,
                "network.protocol.version": "1.1",
                "client.address": f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                "user_agent.original": rng.choice(USER_AGENTS["web"] + USER_AGENTS["mobile"]),
            }
            if rng.random() < 0.9:
                attributes["enduser.id"] = users.ids[rng.choices(range(len(users.ids)), users.activity)[0]]
            root = Span(
                trace_id=trace_id,
                span_id=root_id,
                name=f"{method} {route}",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=start,
                end_time_unix_nano=start + duration,
                attributes=_attributes(attributes),
            )
            if status_code >= 500:
                root.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="upstream did not answer in time"))
                root.events.add(
                    time_unix_nano=start + duration - 1_000,
                    name="exception",
                    attributes=_attributes(
                        {
                            "exception.type": "TimeoutError",
                            "exception.message": "upstream did not answer within 30s",
                            "exception.stacktrace": 'Traceback (most recent call last):\n  File "app/api.py", line 88, in handler\n'
                            "TimeoutError: upstream did not answer within 30s",
                        }
                    ),
                )
            server_spans.append(root)
            count += 1
            offset = start + duration // 10
            for _ in range(min(rng.choices((0, 1, 2, 3), (20, 40, 25, 15))[0], target - count)):
                child_duration = max(1, int(duration * rng.uniform(0.05, 0.3)))
                if OTLP_SERVICES[service][5] == "db":
                    operation, table, query = rng.choice(DB_QUERIES)
                    child = Span(
                        trace_id=trace_id,
                        span_id=rng.randbytes(8),
                        parent_span_id=root_id,
                        name=f"{operation} {table}",
                        kind=Span.SPAN_KIND_CLIENT,
                        start_time_unix_nano=offset,
                        end_time_unix_nano=offset + child_duration,
                        attributes=_attributes(
                            {
                                "db.system.name": "postgresql",
                                "db.namespace": "fernando",
                                "db.operation.name": operation,
                                "db.collection.name": table,
                                "db.query.text": query,
                                "server.address": "db-1",
                                "server.port": 5432,
                            }
                        ),
                    )
                else:
                    child = Span(
                        trace_id=trace_id,
                        span_id=rng.randbytes(8),
                        parent_span_id=root_id,
                        name="POST",
                        kind=Span.SPAN_KIND_CLIENT,
                        start_time_unix_nano=offset,
                        end_time_unix_nano=offset + child_duration,
                        attributes=_attributes(
                            {
                                "http.request.method": "POST",
                                "url.full": "https://api.stripe.com/v1/charges",
                                "server.address": "api.stripe.com",
                                "server.port": 443,
                                "http.response.status_code": 200,
                            }
                        ),
                    )
                client_spans.append(child)
                offset += child_duration
                count += 1
        request = ExportTraceServiceRequest()
        for (service, host), (server_spans, client_spans) in groups.items():
            server_scope, client_scope = OTLP_SERVICES[service][4]
            scopes = [ScopeSpans(scope=InstrumentationScope(name=server_scope[0], version=server_scope[1]), spans=server_spans)]
            if client_spans:
                scopes.append(
                    ScopeSpans(scope=InstrumentationScope(name=client_scope[0], version=client_scope[1]), spans=client_spans)
                )
            request.resource_spans.append(ResourceSpans(resource=resources[service][host], scope_spans=scopes))
        bodies.append(request.SerializeToString())
        sizes.append(count)
        remaining -= count
    return bodies, sizes


# OTLP metrics (e): what the OpenTelemetry SDK of each service instance exports every METRIC_INTERVAL_S, cumulative
SDK_DEFAULT_BOUNDS = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0)
"""The SDK's default explicit bucket boundaries (ExplicitBucketHistogramAggregation)."""
METRIC_INTERVAL_S = 10
METRIC_LABEL_SETS = 60  # (method, route, status) label sets per instance: a counter and a histogram stream each
METRIC_GAUGE_POINTS = 5  # per instance and export: cpu, memory, threads, connections used and idle
METRIC_ROTATION = 3  # an instance comes back every (clients x this) requests, so no two requests in flight share one
STATUS_WEIGHTS = ((200, 70.0), (201, 8.0), (204, 5.0), (400, 5.0), (401, 3.0), (404, 5.0), (429, 2.0), (500, 1.5), (503, 0.5))
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
SYSTEM_SCOPE = InstrumentationScope(name="opentelemetry.instrumentation.system_metrics", version="0.54b1")


@dataclass
class _Stream:
    """One label set of one instance, as the SDK's cumulative aggregations hold it: totals since the process started."""

    attributes: list[KeyValue]
    weight: float
    slow: bool
    count: int = 0
    total_ms: float = 0.0
    body_bytes: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(SDK_DEFAULT_BOUNDS) + 1))
    minimum: float = math.inf
    maximum: float = -math.inf

    def record(self, rng: random.Random) -> None:
        value = rng.lognormvariate(4.6 if self.slow else 3.8, 0.9)  # ms, as the spans of (c)
        self.count += 1
        self.total_ms += value
        self.body_bytes += int(rng.lognormvariate(7.5, 1.0))
        self.buckets[bisect.bisect_left(SDK_DEFAULT_BOUNDS, value)] += 1  # bucket i: (bounds[i-1], bounds[i]]
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)


@dataclass
class _Instance:
    """One service instance (one SDK, one Resource) and its streams."""

    resource: Resource
    scope: InstrumentationScope
    start_ns: int
    requests_per_s: float
    streams: list[_Stream]
    memory: int
    threads: int


@dataclass(frozen=True)
class MetricsShape:
    """How (e) groups its data points: whole SDK exports of ``per_request`` instances per request, ``fleet`` instances."""

    per_export: int
    per_request: int
    fleet: int

    @classmethod
    def of(cls, points_per_request: int, clients: int) -> MetricsShape:
        per_export = 2 * METRIC_LABEL_SETS + METRIC_GAUGE_POINTS
        per_request = max(1, round(points_per_request / per_export))
        return cls(per_export, per_request, per_request * clients * METRIC_ROTATION)

    @property
    def points(self) -> int:
        """Data points per request."""
        return self.per_export * self.per_request

    @property
    def first_sight_requests(self) -> int:
        """The requests that carry the first export of every instance (every stream's first sight)."""
        return -(-self.fleet // self.per_request)


def metrics_requests(
    rng: random.Random,
    requests: int,
    shape: MetricsShape,
    *,
    now: datetime,
    environment: str,
) -> tuple[list[bytes], list[int], int]:
    """``ExportMetricsServiceRequest`` messages, serialised, and the exports per instance. Each carries the exports
    of ``shape.per_request`` service instances, as a collector batching several SDKs sends them. An instance's export
    is what the OpenTelemetry SDK's periodic reader sends with its default (cumulative) temporality: per label set
    (http.request.method, http.route, http.response.status_code...) a monotonic Sum ``http.server.response.body.bytes``
    and an explicit-bucket Histogram ``http.server.duration`` (ms, the SDK's default bounds, with min and max), and
    five gauges. The instances take turns, so each exports every ``METRIC_INTERVAL_S`` with the same
    ``start_time_unix_nano`` (its process start), a later ``time_unix_nano`` and totals grown by the requests served
    meanwhile (some label sets served none: the same totals again); times end 5 s before ``now``."""
    route_weights = [rng.uniform(0.3, 3.0) for _ in OTLP_ROUTES]
    label_sets = sorted(
        (
            (route_weights[r] * status_weight, r, status)
            for r in range(len(OTLP_ROUTES))
            for status, status_weight in STATUS_WEIGHTS
        ),
        reverse=True,
    )[:METRIC_LABEL_SETS]
    exports = -(-requests * shape.per_request // shape.fleet)
    interval_ns = METRIC_INTERVAL_S * 1_000_000_000
    first_ns = int((now.timestamp() - 5.0) * 1e9) - exports * interval_ns
    weights = [service[2] for service in OTLP_SERVICES]
    instances: list[_Instance] = []
    per_service: collections.Counter[int] = collections.Counter()
    for _ in range(shape.fleet):
        service = rng.choices(range(len(OTLP_SERVICES)), weights)[0]
        per_service[service] += 1
        name, version, _, _, scopes, _ = OTLP_SERVICES[service]
        resource = Resource(
            attributes=_attributes(
                {
                    "service.name": name,
                    "service.version": version,
                    "service.namespace": "fernando",
                    "service.instance.id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "host.name": f"{name}-{per_service[service]}",
                    "deployment.environment.name": environment,
                    "telemetry.sdk.name": "opentelemetry",
                    "telemetry.sdk.language": "python",
                    "telemetry.sdk.version": "1.45.2",
                    "process.runtime.name": "cpython",
                    "process.runtime.version": "3.12.7",
                    "process.pid": rng.randint(100, 60_000),
                }
            )
        )
        streams = []
        for weight, route, status in label_sets:
            method, template, _ = OTLP_ROUTES[route]
            stream = _Stream(
                _attributes(
                    {
                        "http.request.method": method,
                        "http.route": template,
                        "http.response.status_code": status,
                        "url.scheme": "https",
                        "network.protocol.version": "1.1",
                    }
                ),
                weight,
                status >= 500,
            )
            stream.record(rng)  # a label set appears in an export once it has served a request
            streams.append(stream)
        instances.append(
            _Instance(
                resource,
                InstrumentationScope(name=scopes[0][0], version=scopes[0][1]),
                first_ns - int(rng.uniform(60, 6 * 3_600) * 1e9),
                rng.uniform(20.0, 60.0),
                streams,
                rng.randint(150, 400) * 2**20,
                rng.randint(8, 40),
            )
        )
    stream_weights = [stream.weight for stream in instances[0].streams]

    def export(instance: _Instance, time_ns: int) -> ResourceMetrics:
        served = int(instance.requests_per_s * METRIC_INTERVAL_S * rng.uniform(0.7, 1.3))
        for index in rng.choices(range(len(stream_weights)), stream_weights, k=served):
            instance.streams[index].record(rng)
        start = instance.start_ns
        duration = Metric(
            name="http.server.duration",
            unit="ms",
            description="Duration of HTTP server requests.",
            histogram=Histogram(
                aggregation_temporality=CUMULATIVE,
                data_points=[
                    HistogramDataPoint(
                        attributes=s.attributes,
                        start_time_unix_nano=start,
                        time_unix_nano=time_ns,
                        count=s.count,
                        sum=s.total_ms,
                        bucket_counts=s.buckets,
                        explicit_bounds=SDK_DEFAULT_BOUNDS,
                        min=s.minimum,
                        max=s.maximum,
                    )
                    for s in instance.streams
                ],
            ),
        )
        body_bytes = Metric(
            name="http.server.response.body.bytes",
            unit="By",
            description="Bytes of HTTP response bodies sent.",
            sum=Sum(
                aggregation_temporality=CUMULATIVE,
                is_monotonic=True,
                data_points=[
                    NumberDataPoint(
                        attributes=s.attributes, start_time_unix_nano=start, time_unix_nano=time_ns, as_int=s.body_bytes
                    )
                    for s in instance.streams
                ],
            ),
        )
        instance.memory = max(64 * 2**20, instance.memory + rng.randint(-4, 5) * 2**20)
        instance.threads = max(4, instance.threads + rng.randint(-1, 1))
        used = rng.randint(0, 10)
        gauges = [
            Metric(
                name="process.cpu.utilization",
                unit="1",
                gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=time_ns, as_double=round(rng.uniform(0.02, 0.9), 4))]),
            ),
            Metric(
                name="process.memory.usage",
                unit="By",
                gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=time_ns, as_int=instance.memory)]),
            ),
            Metric(
                name="process.thread.count",
                unit="{thread}",
                gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=time_ns, as_int=instance.threads)]),
            ),
            Metric(
                name="db.client.connection.count",
                unit="{connection}",
                gauge=Gauge(
                    data_points=[
                        NumberDataPoint(
                            attributes=_attributes({"db.client.connection.state": "used"}), time_unix_nano=time_ns, as_int=used
                        ),
                        NumberDataPoint(
                            attributes=_attributes({"db.client.connection.state": "idle"}),
                            time_unix_nano=time_ns,
                            as_int=10 - used,
                        ),
                    ]
                ),
            ),
        ]
        return ResourceMetrics(
            resource=instance.resource,
            scope_metrics=[
                ScopeMetrics(scope=instance.scope, metrics=[duration, body_bytes]),
                ScopeMetrics(scope=SYSTEM_SCOPE, metrics=gauges),
            ],
        )

    bodies: list[bytes] = []
    for number in range(requests):
        request = ExportMetricsServiceRequest()
        for slot in range(number * shape.per_request, (number + 1) * shape.per_request):
            index, round_ = slot % shape.fleet, slot // shape.fleet  # instances in turn: times only grow
            request.resource_metrics.append(
                export(instances[index], first_ns + round_ * interval_ns + index * interval_ns // shape.fleet)
            )
        bodies.append(request.SerializeToString())
    return bodies, [shape.points] * requests, exports


def new_user_items(rng: random.Random, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(f): the items with every event naming a user never seen before (a random UUID), anonymous ones included."""
    for item in items:
        item["user_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return items


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Slice:
    """One path's share of one round: rows done, wall time, per-request latencies, errors, CPU by process."""

    rows: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)


@dataclass
class PathResult:
    label: str
    description: str
    slices: list[Slice] = field(default_factory=list)
    warmup_rows: int = 0

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.slices)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.slices)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    @property
    def median_rate(self) -> float:
        return statistics.median(s.rows / s.seconds for s in self.slices)

    @property
    def errors(self) -> list[str]:
        return [e for s in self.slices for e in s.errors]

    def latency_ms(self, quantile: float) -> float | None:
        latencies = sorted(x for s in self.slices for x in s.latencies)
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(quantile * len(latencies)))] * 1000

    def cpu_ms_per_1000(self, role: str) -> float | None:
        if not all(role in s.cpu for s in self.slices) or not self.rows:
            return None
        return sum(s.cpu[role] for s in self.slices) / self.rows * 1e6

    def relative_to(self, other: PathResult) -> tuple[float, float]:
        """Rate vs ``other``: over the whole run, and the median of the per-round ratios."""
        paired = [
            (mine.rows / mine.seconds) / (theirs.rows / theirs.seconds)
            for mine, theirs in zip(self.slices, other.slices, strict=True)
        ]
        return self.rate / other.rate, statistics.median(paired)


class CpuMeter:
    """CPU seconds (user + system) used so far by the bench, the server and PostgreSQL (when it runs here)."""

    def __init__(self, server_pid: int, postmaster_pid: int | None) -> None:
        self._server = psutil.Process(server_pid)
        self._postmaster = psutil.Process(postmaster_pid) if postmaster_pid else None
        self._postgres_seen: dict[int, float] = {}

    def read(self) -> dict[str, float]:
        times = os.times()
        server = self._server.cpu_times()
        reading = {"bench": times.user + times.system, "server": server.user + server.system}
        if self._postmaster is not None:
            for process in [self._postmaster, *self._postmaster.children(recursive=True)]:
                try:
                    cpu = process.cpu_times()
                    self._postgres_seen[process.pid] = cpu.user + cpu.system
                except psutil.Error:
                    pass  # ended since: its last reading stays counted
            reading["postgres"] = sum(self._postgres_seen.values())
        return reading


class Clients:
    """``count`` threads, each with its own keep-alive ``httpx.Client``, sending one slice of requests at a time."""

    def __init__(self, count: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="bench-client")
        self._local = threading.local()
        self._all: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(timeout=120.0)
            with self._lock:
                self._all.append(client)
        return client

    def run(
        self,
        method: str,
        urls: Sequence[str],
        bodies: Sequence[bytes | None],
        sizes: Sequence[int],
        headers: dict[str, str],
        check: Callable[[httpx.Response, int], str | None],
    ) -> Slice:
        """Send every request (``sizes`` rows each), ``count`` at a time; ``check`` says what is wrong with an answer."""

        def one(url: str, body: bytes | None, size: int) -> tuple[float, str | None]:
            started = time.perf_counter()
            try:
                response = self._client().request(method, url, content=body, headers=headers)
                problem = check(response, size)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            return time.perf_counter() - started, problem

        started = time.perf_counter()
        futures = [self._pool.submit(one, url, body, size) for url, body, size in zip(urls, bodies, sizes, strict=True)]
        wait(futures)
        seconds = time.perf_counter() - started
        done = Slice(rows=0, seconds=seconds)
        for future, size in zip(futures, sizes, strict=True):
            latency, problem = future.result()
            done.latencies.append(latency)
            if problem is None:
                done.rows += size
            else:
                done.errors.append(problem)
        return done

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for client in self._all:
            client.close()


def check_events(response: httpx.Response, size: int) -> str | None:
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    answer = response.json()
    if answer.get("accepted") != size or answer.get("rejected"):
        return f"accepted {answer.get('accepted')} of {size}: {str(answer.get('rejected'))[:200]}"
    return None


def check_traces(response: httpx.Response, size: int) -> str | None:
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    answer = ExportTraceServiceResponse.FromString(response.content)
    if answer.partial_success.rejected_spans:
        return f"rejected {answer.partial_success.rejected_spans} of {size}: {answer.partial_success.error_message[:200]}"
    return None


def check_metrics(response: httpx.Response, size: int) -> str | None:
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    answer = ExportMetricsServiceResponse.FromString(response.content)
    if answer.partial_success.rejected_data_points:
        return f"rejected {answer.partial_success.rejected_data_points} of {size}: {answer.partial_success.error_message[:200]}"
    return None


class Acceptance:
    """(f): the items ``POST /api/v1/events`` accepted and rejected, over every answer (thread-safe). An answer whose
    only rejections name an unknown user is no error here: a version that refuses unknown users is reported as such."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = self.accepted = self.rejected = 0
        self.reasons: collections.Counter[str] = collections.Counter()

    def check(self, response: httpx.Response, size: int) -> str | None:
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        answer = response.json()
        accepted, rejected = int(answer.get("accepted") or 0), answer.get("rejected") or []
        with self._lock:
            self.sent += size
            self.accepted += accepted
            self.rejected += len(rejected)
            for rejection in rejected:  # the reason without the user id it names
                reason = re.sub(r"'[^']*'", "'...'", str(rejection.get("reason")))
                self.reasons[f"{rejection.get('field')}: {reason}"] += 1
        if accepted + len(rejected) != size or any(r.get("field") != "user_id" for r in rejected):
            return f"accepted {accepted} of {size}: {str(rejected)[:200]}"
        return None


def check_ok(response: httpx.Response, size: int) -> str | None:
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


def copy_slice(conn: psycopg.Connection, rows: Sequence[tuple[Any, ...]], copy_batch: int) -> Slice:
    """(a): COPY ``copy_batch`` rows per statement with write_row, one transaction each, one connection."""
    started = time.perf_counter()
    for start in range(0, len(rows), copy_batch):
        with conn.cursor().copy(COPY_STATEMENT) as copy:
            for row in rows[start : start + copy_batch]:
                copy.write_row(row)
        conn.commit()
    return Slice(rows=len(rows), seconds=time.perf_counter() - started)


def orm_slice(pool: ThreadPoolExecutor, sessions: Any, fields: Sequence[dict[str, Any]]) -> Slice:
    """(d): per event, a session, one ``TelemetryEvent`` added and committed (as a naive handler does)."""

    def one(kwargs: dict[str, Any]) -> str | None:
        try:
            with sessions() as session:
                session.add(TelemetryEvent(**kwargs))
                session.commit()
        except Exception as exc:  # counted, not raised: the bench reports errors
            return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return None

    started = time.perf_counter()
    futures = [pool.submit(one, kwargs) for kwargs in fields]
    wait(futures)
    done = Slice(rows=0, seconds=time.perf_counter() - started)
    for future in futures:
        problem = future.result()
        if problem is None:
            done.rows += 1
        else:
            done.errors.append(problem)
    return done


def split(sequence: Sequence[Any], parts: int) -> list[Sequence[Any]]:
    """``parts`` contiguous slices of nearly equal length."""
    return [sequence[len(sequence) * part // parts : len(sequence) * (part + 1) // parts] for part in range(parts)]


# -- processes: database, server, CLI, the middleware demo app ------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def database(url: str | None) -> Iterator[tuple[str, str, int | None]]:
    """The given server, or a durable embedded PostgreSQL 18 in a temporary directory removed afterwards."""
    if url:
        yield url, "the server at --database-url / DATABASE_URL", None
        return
    root = Path(tempfile.mkdtemp(prefix="ft-bench-http-"))
    cluster = EmbeddedPostgres(root, port=0, database="bench", durable=True)
    try:
        started = cluster.start()
        yield started, "embedded PostgreSQL in a temporary directory (durable: fsync on, default settings)", cluster.pid
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def child_env(**extra: str) -> dict[str, str]:
    """A subprocess's environment: this one's with this checkout's ``src/`` first on PYTHONPATH, so the server, the
    CLI and the demo apps run the code of the tree the bench lives in, not another copy the venv may have installed."""
    path = [str(SRC), *(part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path)), **extra}


def code_version() -> str:
    """Where the measured code lives and its commit (and whether ``src/`` has uncommitted changes)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h", "--", "src"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{SRC} (not a git checkout)"
    return f"{SRC} as of commit {commit} (the last that changed src/)" + (" with uncommitted changes" if dirty else "")


def cli(url: str, *args: str) -> str:
    """Run ``python -m fernando_telemetry ARGS`` against ``url``; its last stdout line."""
    done = subprocess.run(
        [PYTHON, "-m", "fernando_telemetry", *args],
        cwd=ROOT,
        env=child_env(DATABASE_URL=url),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"fernando_telemetry {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1].strip()


class Process:
    """A subprocess started here (stdout and stderr to a log file), waited for over HTTP, stopped by SIGTERM."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log_path: Path, ready_url: str, name: str) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if self.popen.poll() is not None:
                raise SystemExit(f"{name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"{name} did not answer {ready_url} in 120 s:\n{self.log_tail()}")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_server(url: str, workdir: Path) -> tuple[Process, str]:
    port = free_port()
    env = child_env(DATABASE_URL=url, FERNANDO_TELEMETRY_HOST_METRICS_INTERVAL_S="0")
    base = f"http://127.0.0.1:{port}"
    server = Process(
        [PYTHON, "-m", "fernando_telemetry", "serve", "--host", "127.0.0.1", "--port", str(port), "--otlp-grpc-port", "0"],
        env=env,
        log_path=workdir / "server.log",
        ready_url=f"{base}/readyz",
        name="the server",
    )
    return server, base


def demo_app(variant: str, port: int, endpoint: str, key: str) -> None:
    """The middleware bench's app (run in a subprocess): one route; ``plain`` without the middleware,
    ``memory`` with it and a TelemetryClient exporting to memory, ``server`` with it and a TelemetryClient
    sending to the bench server. Prints the client's counters as JSON when it stops."""
    from contextlib import asynccontextmanager

    import uvicorn
    from fastapi import FastAPI

    client = None
    if variant != "plain":
        from fernando_telemetry.sdk import InMemoryExporter, TelemetryClient, TelemetryMiddleware

        exporter = InMemoryExporter() if variant == "memory" else None
        client = TelemetryClient(endpoint, key, service_name="bench-demo", environment=ENV_MIDDLEWARE, exporter=exporter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        if client is not None:
            client.shutdown(30.0)
            print(json.dumps(dataclasses.asdict(client.stats)), flush=True)

    app = FastAPI(lifespan=lifespan)

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id, "name": f"item {item_id}", "price": 9.99, "in_stock": True}

    if client is not None:
        app.add_middleware(TelemetryMiddleware, client=client, service_name="bench-demo", environment=ENV_MIDDLEWARE)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")


@dataclass
class MiddlewareResult:
    variant: str
    description: str
    process: Process
    url: str
    sequential: list[Slice] = field(default_factory=list)
    concurrent: list[Slice] = field(default_factory=list)
    stats: dict[str, int] | None = None

    def rate(self, which: str) -> float:
        slices = getattr(self, which)
        return sum(s.rows for s in slices) / sum(s.seconds for s in slices)

    def sequential_p50_us(self) -> float:
        return statistics.median(x for s in self.sequential for x in s.latencies) * 1e6

    def app_cpu_us(self) -> float:
        slices = self.sequential + self.concurrent
        return sum(s.cpu["app"] for s in slices) / sum(s.rows for s in slices) * 1e6

    def client_cpu_us(self) -> float:
        return sum(s.cpu["bench"] for s in self.concurrent) / sum(s.rows for s in self.concurrent) * 1e6

    def relative_to(self, other: MiddlewareResult, which: str) -> tuple[float, float]:
        paired = [
            (m.rows / m.seconds) / (t.rows / t.seconds) for m, t in zip(getattr(self, which), getattr(other, which), strict=True)
        ]
        return self.rate(which) / other.rate(which), statistics.median(paired)


def middleware_bench(
    *,
    base: str,
    key: str,
    workdir: Path,
    rounds: int,
    sequential: int,
    concurrent: int,
    clients: Clients,
    progress: Progress,
) -> list[MiddlewareResult] | None:
    try:
        from fernando_telemetry.sdk import TelemetryMiddleware  # noqa: F401
    except ImportError:
        return None
    variants = [
        ("plain", "no middleware"),
        ("memory", "TelemetryMiddleware, TelemetryClient exporting to memory (InMemoryExporter)"),
        ("server", "TelemetryMiddleware, TelemetryClient sending to the bench server (HttpExporter)"),
    ]
    results: list[MiddlewareResult] = []
    try:
        for variant, description in variants:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process = Process(
                [
                    PYTHON,
                    str(Path(__file__).resolve()),
                    "--demo-app",
                    variant,
                    "--demo-port",
                    str(port),
                    "--demo-endpoint",
                    base,
                    "--demo-key",
                    key,
                ],
                env=child_env(),
                log_path=workdir / f"demo-{variant}.log",
                ready_url=f"{url}/items/0",
                name=f"the demo app ({variant})",
            )
            results.append(MiddlewareResult(variant, description, process, url))
        task = progress.add_task("middleware", total=rounds * len(results))
        with httpx.Client(timeout=60.0) as sequential_client:
            for number in range(rounds):
                shift = number % len(results)
                for result in results[shift:] + results[:shift]:
                    app = psutil.Process(result.process.pid)
                    ids = [random.randrange(1, 100_000) for _ in range(sequential + concurrent)]
                    before = app.cpu_times()
                    started = time.perf_counter()
                    done = Slice(rows=0, seconds=0.0)
                    for item_id in ids[:sequential]:
                        requested = time.perf_counter()
                        response = sequential_client.get(f"{result.url}/items/{item_id}")
                        done.latencies.append(time.perf_counter() - requested)
                        if response.status_code == 200:
                            done.rows += 1
                        else:
                            done.errors.append(f"HTTP {response.status_code}")
                    done.seconds = time.perf_counter() - started
                    after = app.cpu_times()
                    done.cpu["app"] = after.user + after.system - before.user - before.system
                    result.sequential.append(done)
                    before = app.cpu_times()
                    urls = [f"{result.url}/items/{item_id}" for item_id in ids[sequential:]]
                    bench_before = os.times()
                    many = clients.run("GET", urls, [None] * len(urls), [1] * len(urls), {}, check_ok)
                    bench_after = os.times()
                    after = app.cpu_times()
                    many.cpu["app"] = after.user + after.system - before.user - before.system
                    many.cpu["bench"] = bench_after.user + bench_after.system - bench_before.user - bench_before.system
                    result.concurrent.append(many)
                    if result.variant == "server":
                        # its client sends what is left within its flush interval (2 s): let the bench server
                        # ingest it now rather than during the next variant's requests
                        time.sleep(2.5)
                    progress.advance(task)
        progress.remove_task(task)
    finally:
        for result in results:
            result.process.stop()
            lines = [line for line in result.process.log_path.read_text(errors="replace").splitlines() if line.startswith("{")]
            if lines:
                result.stats = json.loads(lines[-1])
    return results


# -- where the server's time goes -----------------------------------------------------------------


def _frame(frame: str) -> str:
    """``func (file.py:12)`` -> ``func (file.py)``."""
    name, _, location = frame.rpartition(" (")
    return f"{name} ({location.rsplit(':', 1)[0]})" if name else frame


# the server's own frames that only say "the server is running"
_SCAFFOLDING = (
    "fernando_telemetry/cli/",
    "fernando_telemetry/console.py",
    "fernando_telemetry/composition/server.py",
    "fernando_telemetry/__main__.py",
)
PROFILE_RATE_HZ = 250


@dataclass
class Profile:
    samples: int
    seconds: float
    threads: list[tuple[str, int]]
    self_time: list[tuple[str, int]]
    inclusive: list[tuple[str, int]]
    slice: Slice


def profile_server(server_pid: int, workdir: Path, run: Callable[[], Slice], top: int = 15) -> Profile | str:
    """py-spy on the server while ``run`` sends an extra slice of (b): only the thread holding the GIL is sampled
    (``--gil``), so the samples are the server's Python CPU time, and their count says how busy the GIL was."""
    pyspy = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")
    if pyspy is None:
        return "py-spy not installed (.venv/bin/pip install py-spy)"
    output = workdir / "server-profile.txt"
    spy = subprocess.Popen(
        [
            pyspy,
            "record",
            "--pid",
            str(server_pid),
            "--rate",
            str(PROFILE_RATE_HZ),
            "--gil",
            "--nonblocking",
            "--threads",
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)
    started = time.perf_counter()
    done = run()
    seconds = time.perf_counter() - started  # the idle second before gives (nearly) no samples
    spy.send_signal(signal.SIGINT)
    _, errors = spy.communicate(timeout=60)
    if not output.exists():
        return f"py-spy wrote no profile: {errors.decode(errors='replace').strip()[-300:]}"
    threads: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in output.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread (") else "?"
        thread = "AnyIO worker thread" if thread.startswith("AnyIO worker thread") else thread
        functions = [_frame(f) for f in frames[1:]]
        samples += count
        threads[thread] += count
        if functions:
            self_time[functions[-1]] += count
        for function in {f for f in functions if "fernando_telemetry/" in f and not any(s in f for s in _SCAFFOLDING)}:
            inclusive[function] += count
    return Profile(samples, seconds, threads.most_common(), self_time.most_common(top), inclusive.most_common(top), done)


# -- the run --------------------------------------------------------------------------------------


def settle(conn: psycopg.Connection, notes: list[str]) -> None:
    """CHECKPOINT, so every run starts with no dirty pages (needs superuser or pg_checkpoint)."""
    conn.autocommit = True
    try:
        conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        if "CHECKPOINT not allowed for this role, skipped" not in notes:
            notes.append("CHECKPOINT not allowed for this role, skipped")
    finally:
        conn.autocommit = False


def stored(conn: psycopg.Connection, table: str, key: str, license_id: int, environment: str) -> tuple[int, int, int]:
    """Rows of one path: count, distinct keys, and the number of transactions that wrote them (distinct xmin)."""
    row = conn.execute(
        f"SELECT count(*), count(DISTINCT {key}), count(DISTINCT xmin::text) FROM {table} "  # noqa: S608 (constants)
        "WHERE license_id = %s AND environment = %s",
        (license_id, environment),
    ).fetchone()
    conn.commit()
    return row


def delete_license(conn: psycopg.Connection, license_id: int) -> list[str]:
    """Delete the bench license and every row naming it: the big tables first, then every other table with a
    ``license_id`` column, whatever this version's schema holds (users keyed by ``user_id`` or by ``(license_id,
    user_id)``, the users registered on first sight, per-stream metric state, rollups, audit entries...), in as many
    passes as their foreign keys need. Returns what could not be deleted."""
    conn.rollback()
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'license_id' "
            "AND NOT a.attisdropped WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') "
            "AND NOT c.relispartition AND c.relname <> 'licenses'"
        )
    ]
    first = [table for table in ("telemetry_events", "traces", "system_metrics") if table in tables]
    pending = first + sorted(set(tables) - set(first))
    problems: dict[str, str] = {}
    for _ in range(len(pending) + 1):
        problems = {}
        for table in pending:
            try:
                with conn.transaction():  # a savepoint: a table still referenced waits for the next pass
                    conn.execute(sql.SQL("DELETE FROM {} WHERE license_id = %s").format(sql.Identifier(table)), (license_id,))
            except psycopg.Error as exc:
                problems[table] = str(exc).splitlines()[0][:200]
        if not problems or len(problems) == len(pending):
            break
        pending = list(problems)
    try:
        with conn.transaction():
            conn.execute("DELETE FROM licenses WHERE license_id = %s", (license_id,))
    except psycopg.Error as exc:
        problems["licenses"] = str(exc).splitlines()[0][:200]
    conn.commit()
    return [f"{table}: {problem}" for table, problem in problems.items()]


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _fmt_cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def report(
    *,
    args: argparse.Namespace,
    version: str,
    where: str,
    settings: Any,
    paths: dict[str, PathResult],
    otlp_note: str | None,
    sanity: list[str],
    attributed: float,
    first_at: str,
    last_at: str,
    notes: list[str],
    profile: Profile | str | None,
    middleware: list[MiddlewareResult] | str | None,
    shape: MetricsShape,
    metric_warm: int,
    metrics_info: dict[str, Any],
    metrics_note: str | None,
    acceptance: Acceptance,
) -> None:
    order = [label for label in PATHS if label in paths]
    # (f) on a version that refuses unknown users: no rate, the rejections instead
    refused = "f" in paths and acceptance.rejected > 0
    refusal = f"rejected by this version: {acceptance.rejected:,} of {acceptance.sent:,} items"
    print(
        "ingest_http: rows/s through the real server vs raw COPY of the same rows: events, OTLP spans and metrics, "
        "events of new users, and the naive ORM path"
    )
    print(f"database: PostgreSQL {version.split()[0]}, {where}")
    print(
        f"server: python -m fernando_telemetry serve (one uvicorn process), group-commit writer up to "
        f"{settings.writer_max_batch_rows:,} rows per transaction, {settings.writer_linger_ms:g} ms linger; host metrics off"
    )
    print(f"code: {code_version()}")
    print(
        f"events: {first_at.replace('T', ' ')} .. {last_at.replace('T', ' ')} UTC (the last hour); {args.users:,} users on one license, "
        f"{attributed:.1%} of events with a user_id; event_id UUID v7 of event_timestamp; the mix of ingest_copy.py"
    )
    if "e" in paths:
        print(
            f"metrics (e): {shape.fleet} service instances (OpenTelemetry SDKs of {', '.join(metrics_info['services'])}), "
            f"{shape.per_request} instances' exports per request, {shape.per_export} data points per export: for each of "
            f"{METRIC_LABEL_SETS} label sets (method, route, status) a cumulative monotonic Sum (http.server.response.body.bytes) "
            f"and a cumulative explicit-bucket Histogram (http.server.duration, ms, the SDK's default 15 bounds, min/max), "
            f"and {METRIC_GAUGE_POINTS} gauge points; each instance exports every {METRIC_INTERVAL_S} s of data time, "
            f"{metrics_info['exports']} times in all: same start_time_unix_nano, later time_unix_nano, grown totals "
            "(a label set that served nothing meanwhile repeats its totals)"
        )
    if "f" in paths:
        print(
            f"new users (f): events as those of (b), but every one (anonymous ones too) names a user id never seen before "
            f"(a random UUID): {args.batch} first sightings per request"
        )
    warmups = f"{args.warmup} requests or COPY batches per path" + (", 100 ORM events" if "d" in paths else "")
    if "e" in paths:
        warmups += (
            f"; (e) {metric_warm} requests: the first export of every instance, so its timed requests only repeat known streams"
        )
    print(
        f"method: {args.rounds} rounds, each doing a slice of {', '.join(f'({p})' for p in order)} in turn, the order "
        "rotating per round; rate = rows / wall time of the slice (requests acked after commit); bodies, COPY rows and "
        f"ORM arguments prepared before timing; CHECKPOINT before; warm-up (untimed): {warmups}"
        + (f"; notes: {', '.join(notes)}" if notes else "")
    )
    print()
    print(f"{'path':<58}{'rows':>9}  {'seconds':>7}  {'rows/s':>8}  {'median':>8}  {'p50 ms':>6}  {'p99 ms':>6}  {'errors':>6}")
    for label in order:
        one = paths[label]
        if label == "f" and refused:
            print(f"{f'({label}) ' + one.description:<58}{refusal}")
            continue
        print(
            f"{f'({label}) ' + one.description:<58}{one.rows:>9,}  {one.seconds:>7.1f}  {one.rate:>8,.0f}  "
            f"{one.median_rate:>8,.0f}  {_fmt_ms(one.latency_ms(0.5)):>6}  {_fmt_ms(one.latency_ms(0.99)):>6}  {len(one.errors):>6}"
        )
    if otlp_note:
        print(f"(c) {otlp_note}")
    if metrics_note:
        print(f"(e) {metrics_note}")
    if refused:
        for reason, count in acceptance.reasons.most_common(3):
            print(f"(f) rejected x{count:,}: {reason}")
    print(
        "rows: events, spans (c) or data points (e); median: of the per-round rates; p50/p99: per request (HTTP) from send to ack"
    )
    print()
    for top, bottom, target, meaning in (
        ("b", "a", 0.5, "HTTP ingest vs raw COPY of the same rows"),
        ("c", "a", None, "OTLP spans vs raw COPY of events"),
        ("e", "a", None, "OTLP metric data points vs raw COPY of events"),
        ("b", "d", 20.0, "HTTP ingest vs one ORM object committed per event"),
        ("f", "b", None, "HTTP ingest, every event naming a new user, vs (b) (known users)"),
    ):
        if top not in paths or bottom not in paths:
            continue
        if top == "f" and refused:
            print(f"({top})/({bottom}) = n/a    (f) {refusal}: the first-sight registration of users is not there to measure")
            continue
        overall, paired = paths[top].relative_to(paths[bottom])
        goal = "" if target is None else f"; target >= {target:g}: {'met' if overall >= target else 'NOT met'}"
        print(
            f"({top})/({bottom}) = {overall:.2f}   {meaning} (median of the {len(paths[top].slices)} per-round ratios: {paired:.2f}{goal})"
        )
    print()
    print("CPU ms per 1,000 rows, by process (user + system):")
    print(f"{'path':<6}{'bench':>8}{'server':>8}{'postgres':>10}")
    for label in order:
        one = paths[label]
        print(
            f"({label})  {_fmt_cpu(one.cpu_ms_per_1000('bench')):>8}{_fmt_cpu(one.cpu_ms_per_1000('server')):>8}"
            f"{_fmt_cpu(one.cpu_ms_per_1000('postgres')):>10}"
        )
    print("bench: this process (the HTTP clients, or the COPY / ORM loop); postgres: every PostgreSQL process (embedded only)")
    print()
    print("server side (rows of each path, by environment and the bench license):")
    for line in sanity:
        print(f"  {line}")
    errors = [f"({label}) {error}" for label in order for error in paths[label].errors]
    for error in collections.Counter(errors).most_common(5):
        print(f"  error x{error[1]}: {error[0]}")
    if isinstance(profile, str):
        print()
        print(f"profile: {profile}")
    elif profile is not None:
        print()
        print(
            f"where the server's time goes during (b): py-spy --gil (only the thread holding the GIL is sampled) at "
            f"{PROFILE_RATE_HZ} Hz over an extra slice of {profile.slice.rows:,} events "
            f"({profile.slice.rows / profile.slice.seconds:,.0f} events/s under the profiler, untimed above)"
        )
        print(
            f"  GIL held {profile.samples / (PROFILE_RATE_HZ * profile.seconds):.0%} of the time ({profile.samples:,} samples "
            f"in {profile.seconds:.1f} s); shares below are of the samples"
        )
        print("  by thread: " + ", ".join(f"{name} {count / profile.samples:.0%}" for name, count in profile.threads[:6]))
        print("  self time (the Python function on top of the stack; C calls such as orjson.loads count in their caller):")
        for name, count in profile.self_time:
            print(f"    {count / profile.samples:6.1%}  {name}")
        print("  inclusive time of the server's own functions (anywhere on the stack):")
        for name, count in profile.inclusive:
            print(f"    {count / profile.samples:6.1%}  {name}")
    print()
    report_middleware(args=args, middleware=middleware)


def report_middleware(*, args: argparse.Namespace, middleware: list[MiddlewareResult] | str | None) -> None:
    if middleware is None or isinstance(middleware, str):
        print(f"middleware: {middleware or 'not available'}")
        return
    plain = middleware[0]
    print(
        f"middleware: GET /items/{{item_id}} of a minimal FastAPI app under uvicorn (one process each, all three running), "
        f"{args.rounds} rounds, the variants in rotating order; per round and variant {args.mw_sequential:,} sequential "
        f"requests (one httpx client) then {args.mw_concurrent:,} over {args.clients} concurrent clients"
    )
    print(f"{'variant':<84}{'seq req/s':>10}{'seq p50 us':>11}{'conc req/s':>11}{'app CPU us/req':>15}{'client CPU us/req':>18}")
    for result in middleware:
        print(
            f"{result.variant + ': ' + result.description:<84}{result.rate('sequential'):>10,.0f}"
            f"{result.sequential_p50_us():>11,.0f}{result.rate('concurrent'):>11,.0f}{result.app_cpu_us():>15,.0f}"
            f"{result.client_cpu_us():>18,.0f}"
        )
    print(
        "app CPU: the app's process (with the TelemetryClient's export thread), all its requests; "
        "client CPU: this process (httpx) during the concurrent requests"
    )
    for result in middleware[1:]:
        seq, seq_median = result.relative_to(plain, "sequential")
        conc, conc_median = result.relative_to(plain, "concurrent")
        worst = 1 - min(seq, conc)
        print(
            f"{result.variant}/plain: sequential {seq:.2f} (median {seq_median:.2f}), concurrent {conc:.2f} "
            f"(median {conc_median:.2f}); overhead {worst:.0%} (target < 10%: {'met' if worst < 0.10 else 'NOT met'}); "
            f"app CPU +{result.app_cpu_us() - plain.app_cpu_us():,.0f} us per request "
            f"(+{result.app_cpu_us() / plain.app_cpu_us() - 1:.0%})"
        )
    print(
        "app-bound capacity (1 / app CPU per request), vs plain: "
        + ", ".join(f"{r.variant} {plain.app_cpu_us() / r.app_cpu_us():.2f}" for r in middleware[1:])
    )
    for result in middleware[1:]:
        if result.stats is not None:
            stats = result.stats
            print(
                f"{result.variant} client at shutdown: sent {stats.get('sent', 0):,}, rejected {stats.get('rejected', 0):,}, "
                f"failed {stats.get('failed', 0):,}, dropped {stats.get('dropped', 0):,}, retries {stats.get('retries', 0):,}"
            )
    requests = [sum(s.rows for s in r.sequential + r.concurrent) for r in middleware]
    print(
        f"requests answered 200 per variant: {', '.join(f'{r.variant} {n:,}' for r, n in zip(middleware, requests, strict=True))}"
    )


def middleware_sanity(conn: psycopg.Connection, middleware: list[MiddlewareResult], license_id: int) -> str:
    """Items the ``server`` variant's client says it sent against the events and spans the server stored."""
    sent = sum(r.stats.get("sent", 0) for r in middleware if r.variant == "server" and r.stats)
    count = conn.execute(
        "SELECT (SELECT count(*) FROM telemetry_events WHERE license_id = %s AND environment = %s)"
        " + (SELECT count(*) FROM traces WHERE license_id = %s AND environment = %s)",
        (license_id, ENV_MIDDLEWARE, license_id, ENV_MIDDLEWARE),
    ).fetchone()[0]
    conn.commit()
    return f"middleware (server sink): items sent by its client {sent:,}, stored (events + spans) {count:,}  {'ok' if sent == count else 'MISMATCH'}"


def new_users_sanity(conn: psycopg.Connection, license_id: int, *, created: int, accepted: int) -> str:
    """(f): the users of the bench license beyond those the bench created, against the (f) events accepted (each names
    a user of its own)."""
    users = conn.execute("SELECT count(*) FROM users WHERE license_id = %s", (license_id,)).fetchone()[0]
    conn.commit()
    registered = users - created
    return (
        f"(f) users of the bench license {users:,}: {created:,} created by the bench + {registered:,} registered on first "
        f"sight; expected one per (f) event accepted ({accepted:,})  {'ok' if registered == accepted else 'MISMATCH'}"
    )


def metrics_sanity(conn: psycopg.Connection, license_id: int, acked: int, services: Sequence[str]) -> list[str]:
    """(e): the ``system_metrics`` rows of the bench license's instances by metric type (and how many carry a sketch,
    where the column exists) against the data points acked; printed side by side, not compared."""
    has_sketch = conn.execute(
        "SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'system_metrics' AND column_name = 'sketch_keys')"
    ).fetchone()[0]
    by_type = conn.execute(
        f"SELECT metric_type::text, count(*), {'count(sketch_keys)' if has_sketch else '0'} FROM system_metrics "  # noqa: S608
        "WHERE license_id = %s AND service_name = ANY(%s) GROUP BY 1 ORDER BY 1",
        (license_id, list(services)),
    ).fetchall()
    conn.commit()
    total = sum(count for _, count, _ in by_type)
    detail = ", ".join(
        f"{kind} {count:,}" + (f" ({sketched:,} with a sketch)" if sketched else "") for kind, count, sketched in by_type
    )
    return [
        f"(e) {'system_metrics':<16} acked {acked:>9,}  stored {total:>9,}  data points; rows by type: {detail or 'none'}",
        "    (e) not compared: where every point is stored as sent, stored = acked; where cumulative points are stored as "
        "increments over the stream's previous point, a point that adds nothing (the same totals again) may store no row "
        "and a stream's first point may only set its state, so stored may be below acked",
    ]


def main_middleware(args: argparse.Namespace) -> int:
    """``--only middleware``: the server (for the ``server`` variant's sink), a license and a key, then the middleware bench."""
    columns = (TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    workdir = Path(tempfile.mkdtemp(prefix="ft-bench-http-run-"))
    middleware: list[MiddlewareResult] | None = None
    sanity: str | None = None
    with (
        Progress(*columns, console=Console(stderr=True), transient=True) as progress,
        database(args.database_url) as (url, where, _postmaster_pid),
    ):
        server, base = start_server(url, workdir)
        clients = Clients(args.clients)
        conn = psycopg.connect(libpq_url(url), options="-c timezone=UTC", application_name="ft-bench-middleware")
        license_id: int | None = None
        try:
            license_id = int(cli(url, "licenses", "create", "--name", "bench ingest_http", "--plan", LICENSE_PLAN))
            key = cli(url, "keys", "create", "--license-id", str(license_id), "--scope", "ingest", "--name", "bench ingest_http")
            version = conn.execute("SHOW server_version").fetchone()[0]
            conn.commit()
            middleware = middleware_bench(
                base=base,
                key=key,
                workdir=workdir,
                rounds=args.rounds,
                sequential=args.mw_sequential,
                concurrent=args.mw_concurrent,
                clients=clients,
                progress=progress,
            )
            if middleware is not None:
                sanity = middleware_sanity(conn, middleware, license_id)
        finally:
            clients.close()
            server.stop()
            if args.database_url and license_id is not None and not args.keep:
                for problem in delete_license(conn, license_id):
                    print(f"cleanup: could not delete the bench rows of {problem}", file=sys.stderr)
            conn.close()
    shutil.rmtree(workdir, ignore_errors=True)
    print("ingest_http --only middleware: the cost of the SDK's TelemetryMiddleware on a minimal FastAPI app")
    print(f"database: PostgreSQL {version.split()[0]}, {where}")
    print("server: python -m fernando_telemetry serve (one uvicorn process; the sink of the server variant); host metrics off")
    if sanity is not None:
        print(sanity)
    print()
    report_middleware(args=args, middleware=middleware)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        default=200_000,
        help="events of (a), (b) and (f), spans of (c), data points of (e) (default 200,000)",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients of (b), (c), (e), (f); threads of (d)")
    parser.add_argument(
        "--batch",
        type=int,
        default=500,
        help="events per request of (b) and (f), spans per request of (c), data points per request of (e) "
        f"(rounded to whole SDK exports of {2 * METRIC_LABEL_SETS + METRIC_GAUGE_POINTS} points)",
    )
    parser.add_argument(
        "--copy-batch",
        type=int,
        default=None,
        help="rows per COPY and commit of (a) (default clients x batch: the group the writer forms "
        "when every client has a request queued)",
    )
    parser.add_argument("--orm-events", type=int, default=5_000, help="events of (d) (default 5,000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--warmup",
        type=int,
        default=16,
        help="untimed requests (or COPY batches) per path first; (e) at least the first export of every stream",
    )
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--mw-sequential", type=int, default=1_000, help="sequential requests per middleware round and variant")
    parser.add_argument("--mw-concurrent", type=int, default=3_000, help="concurrent requests per middleware round and variant")
    parser.add_argument("--no-middleware", action="store_true", help="skip the middleware bench")
    parser.add_argument(
        "--only",
        choices=("middleware", *ONLY),
        help="run only this part: 'middleware' starts the server (the sink of the 'server' variant) and "
        "runs only the middleware bench; 'metrics' runs (a) and (e), 'users' (b) and (f), no middleware",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then profile the server with py-spy during an extra slice of (b) and print its top functions",
    )
    parser.add_argument("--profile-events", type=int, default=100_000, help="events of the --profile slice")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="an existing server (default: $DATABASE_URL, else an embedded PostgreSQL 18); the bench's "
        "license, key, users (those registered on first sight too) and rows are deleted at the end "
        "unless --keep",
    )
    parser.add_argument("--keep", action="store_true", help="leave the bench's rows in a --database-url database")
    parser.add_argument("--demo-app", choices=("plain", "memory", "server"), help=argparse.SUPPRESS)
    parser.add_argument("--demo-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--demo-endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--demo-key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.demo_app:
        demo_app(args.demo_app, args.demo_port, args.demo_endpoint, args.demo_key)
        return 0
    if args.only == "middleware":
        return main_middleware(args)
    selected = set(ONLY.get(args.only, PATHS))
    if args.only:
        args.no_middleware = True
    copy_batch = args.copy_batch or args.clients * args.batch
    rng = random.Random(args.seed)
    notes: list[str] = []
    settings = load_settings()
    columns = (TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    workdir = Path(tempfile.mkdtemp(prefix="ft-bench-http-run-"))
    shape = MetricsShape.of(args.batch, args.clients)
    metrics_info: dict[str, Any] = {}
    acceptance = Acceptance()
    with (
        Progress(*columns, console=Console(stderr=True), transient=True) as progress,
        database(args.database_url) as (url, where, postmaster_pid),
    ):
        server, base = start_server(url, workdir)
        clients = Clients(args.clients)
        orm_pool = ThreadPoolExecutor(max_workers=args.clients, thread_name_prefix="bench-orm")
        engine = make_engine(url, pool_size=args.clients, application_name="ft-bench-orm")
        conn = psycopg.connect(libpq_url(url), options="-c timezone=UTC", application_name="ft-bench-copy")
        license_id: int | None = None
        try:
            license_id = int(cli(url, "licenses", "create", "--name", "bench ingest_http", "--plan", LICENSE_PLAN))
            key = cli(
                url,
                "keys",
                "create",
                "--license-id",
                str(license_id),
                "--scope",
                "ingest",
                "--scope",
                "read",
                "--name",
                "bench ingest_http",
            )
            users = make_users(rng, args.users)
            with conn.cursor().copy("COPY users (user_id, email, license_id) FROM STDIN") as copy:
                for user_id in users.ids:
                    copy.write_row((user_id, f"user{user_id}@example.com", license_id))
            conn.commit()
            version = conn.execute("SHOW server_version").fetchone()[0]
            conn.commit()

            # the workload, all prepared before any timing (in the same order and from the same seed as before (e)
            # and (f) existed, so (a) to (d) load what they always did; (e) and (f) draw from their own seeds)
            task = progress.add_task("preparing requests and rows", total=6)
            now = datetime.now(UTC)
            warm = args.warmup * args.batch
            profile_events = args.profile_events if args.profile and "b" in selected else 0
            bodies: list[bytes] = []
            body_sizes: list[int] = []
            described: list[dict[str, Any]] = []
            if selected & {"b", "f"}:
                http_items = event_items(rng, warm + args.events + profile_events, now=now, users=users, environment=ENV_HTTP)
                described = http_items
                bodies = http_bodies(http_items, args.batch)
                body_sizes = [len(http_items[s : s + args.batch]) for s in range(0, len(http_items), args.batch)]
            progress.advance(task)
            rows: list[tuple[Any, ...]] = []
            if "a" in selected:
                copy_items = event_items(rng, args.warmup * copy_batch + args.events, now=now, users=users, environment=ENV_COPY)
                described = described or copy_items
                rows = copy_rows(copy_items, license_id=license_id, now=now)
            attributed = sum("user_id" in item for item in described) / max(len(described), 1)
            first_at, last_at = (
                (described[0]["event_timestamp"][:16], described[-1]["event_timestamp"][:16]) if described else ("", "")
            )
            del described
            progress.advance(task)
            otlp_bodies: list[bytes] = []
            otlp_sizes: list[int] = []
            if "c" in selected:
                otlp_bodies, otlp_sizes = otlp_requests(
                    rng, warm + args.events, args.batch, now=now, users=users, environment=ENV_OTLP
                )
            progress.advance(task)
            orm_args: list[dict[str, Any]] = []
            if "d" in selected:
                orm_items = event_items(rng, 100 + args.orm_events, now=now, users=users, environment=ENV_ORM)
                orm_args = [orm_fields(item, license_id) for item in orm_items]
                del orm_items
            progress.advance(task)
            metric_bodies: list[bytes] = []
            metric_sizes: list[int] = []
            metric_warm = max(args.warmup, shape.first_sight_requests)
            metric_timed = max(args.rounds, args.events // shape.points)
            if "e" in selected:
                metric_bodies, metric_sizes, exports = metrics_requests(
                    random.Random(args.seed + 5), metric_warm + metric_timed, shape, now=now, environment=ENV_METRICS
                )
                metrics_info = {"exports": exports, "services": sorted({service[0] for service in OTLP_SERVICES})}
            progress.advance(task)
            new_user_bodies: list[bytes] = []
            new_user_sizes: list[int] = []
            if "f" in selected:
                fresh_rng = random.Random(args.seed + 6)
                fresh_items = new_user_items(
                    fresh_rng, event_items(fresh_rng, warm + args.events, now=now, users=users, environment=ENV_NEW_USERS)
                )
                new_user_bodies = http_bodies(fresh_items, args.batch)
                new_user_sizes = [len(fresh_items[s : s + args.batch]) for s in range(0, len(fresh_items), args.batch)]
                del fresh_items
            progress.remove_task(task)

            auth = {"Authorization": f"Bearer {key}"}
            json_headers = {**auth, "Content-Type": "application/json"}
            otlp_headers = {**auth, "Content-Type": "application/x-protobuf"}
            events_url, traces_url, metrics_url = f"{base}/api/v1/events", f"{base}/v1/traces", f"{base}/v1/metrics"

            def send_events(part: Sequence[bytes], sizes: Sequence[int]) -> Slice:
                return clients.run("POST", [events_url] * len(part), part, sizes, json_headers, check_events)

            def send_spans(part: Sequence[bytes], sizes: Sequence[int]) -> Slice:
                return clients.run("POST", [traces_url] * len(part), part, sizes, otlp_headers, check_traces)

            def send_metrics(part: Sequence[bytes], sizes: Sequence[int]) -> Slice:
                return clients.run("POST", [metrics_url] * len(part), part, sizes, otlp_headers, check_metrics)

            def send_new_users(part: Sequence[bytes], sizes: Sequence[int]) -> Slice:
                before = acceptance.accepted
                done = clients.run("POST", [events_url] * len(part), part, sizes, json_headers, acceptance.check)
                done.rows = acceptance.accepted - before  # the items stored, whatever the answers' rejections
                return done

            # are the OTLP routes there yet?
            otlp_note = metrics_note = None
            if "c" in selected:
                probe = httpx.post(
                    traces_url, content=ExportTraceServiceRequest().SerializeToString(), headers=otlp_headers, timeout=30
                )
                if probe.status_code != 200:
                    otlp_note = f"POST /v1/traces: not available (an empty request answered HTTP {probe.status_code}), skipped"
            if "e" in selected:
                probe = httpx.post(
                    metrics_url, content=ExportMetricsServiceRequest().SerializeToString(), headers=otlp_headers, timeout=30
                )
                if probe.status_code != 200:
                    metrics_note = (
                        f"POST /v1/metrics: not available (an empty request answered HTTP {probe.status_code}), skipped"
                    )
                    selected.discard("e")
            if otlp_note is not None:
                selected.discard("c")

            # warm-up: connections, caches (users, partitions), threads; counted in the sanity check, not in rates.
            # (e)'s warm-up carries the first export of every instance: its timed requests only repeat known streams
            warm_requests = args.warmup
            warmers: dict[str, Callable[[], Slice]] = {
                "b": lambda: send_events(bodies[:warm_requests], body_sizes[:warm_requests]),
                "a": lambda: copy_slice(conn, rows[: args.warmup * copy_batch], copy_batch),
                "d": lambda: orm_slice(orm_pool, session_factory(engine), orm_args[:100]),
                "c": lambda: send_spans(otlp_bodies[:warm_requests], otlp_sizes[:warm_requests]),
                "e": lambda: send_metrics(metric_bodies[:metric_warm], metric_sizes[:metric_warm]),
                "f": lambda: send_new_users(new_user_bodies[:warm_requests], new_user_sizes[:warm_requests]),
            }
            warm_slices = {label: warmer() for label, warmer in warmers.items() if label in selected}
            timed_bodies = bodies[warm_requests : warm_requests + args.events // args.batch]
            timed_sizes = body_sizes[warm_requests : warm_requests + len(timed_bodies)]
            profile_bodies = bodies[warm_requests + len(timed_bodies) :]
            profile_sizes = body_sizes[warm_requests + len(timed_bodies) :]

            descriptions = {
                "a": f"COPY, 1 connection, {copy_batch:,} rows per COPY + commit",
                "b": f"POST /api/v1/events, {args.clients} clients x {args.batch} events",
                "c": f"POST /v1/traces protobuf, {args.clients} clients x {args.batch} spans",
                "d": f"ORM add + commit per event, {args.clients} threads",
                "e": f"POST /v1/metrics protobuf, {args.clients} clients x {shape.points} points",
                "f": f"POST /api/v1/events, {args.clients} x {args.batch}, all new users",
            }
            paths = {label: PathResult(label, descriptions[label]) for label in PATHS if label in selected}
            for label, done in warm_slices.items():
                paths[label].warmup_rows = done.rows
            parts = {
                "a": split(rows[args.warmup * copy_batch :], args.rounds),
                "b": list(zip(split(timed_bodies, args.rounds), split(timed_sizes, args.rounds), strict=True)),
                "c": list(
                    zip(
                        split(otlp_bodies[warm_requests:], args.rounds),
                        split(otlp_sizes[warm_requests:], args.rounds),
                        strict=True,
                    )
                ),
                "d": split(orm_args[100:], args.rounds),
                "e": list(
                    zip(
                        split(metric_bodies[metric_warm:], args.rounds),
                        split(metric_sizes[metric_warm:], args.rounds),
                        strict=True,
                    )
                ),
                "f": list(
                    zip(
                        split(new_user_bodies[warm_requests:], args.rounds),
                        split(new_user_sizes[warm_requests:], args.rounds),
                        strict=True,
                    )
                ),
            }
            sessions = session_factory(engine)
            runners: dict[str, Callable[[Any], Slice]] = {
                "a": lambda part: copy_slice(conn, part, copy_batch),
                "b": lambda part: send_events(*part),
                "c": lambda part: send_spans(*part),
                "d": lambda part: orm_slice(orm_pool, sessions, part),
                "e": lambda part: send_metrics(*part),
                "f": lambda part: send_new_users(*part),
            }
            meter = CpuMeter(server.pid, postmaster_pid)
            settle(conn, notes)
            order = list(paths)
            task = progress.add_task("rounds", total=args.rounds * len(order))
            for number in range(args.rounds):
                shift = number % len(order)
                for label in order[shift:] + order[:shift]:
                    before = meter.read()
                    done = runners[label](parts[label][number])
                    after = meter.read()
                    done.cpu = {role: after[role] - before[role] for role in after}
                    paths[label].slices.append(done)
                    progress.advance(task)
            progress.remove_task(task)

            profile: Profile | str | None = None
            if args.profile and profile_bodies:
                profile = profile_server(server.pid, workdir, lambda: send_events(profile_bodies, profile_sizes))

            # nothing lost, nothing twice: rows stored == rows acked, one row per event_id / span
            sanity: list[str] = []
            acked = {label: one.warmup_rows + one.rows for label, one in paths.items()}
            if isinstance(profile, Profile):
                acked["b"] += profile.slice.rows
            for label, table, key_sql, environment in (
                ("a", "telemetry_events", "event_id", ENV_COPY),
                ("b", "telemetry_events", "event_id", ENV_HTTP),
                ("c", "traces", "(trace_id, span_id)", ENV_OTLP),
                ("d", "telemetry_events", "event_id", ENV_ORM),
                ("f", "telemetry_events", "event_id", ENV_NEW_USERS),
            ):
                if label not in paths:
                    continue
                count, distinct, transactions = stored(conn, table, key_sql, license_id, environment)
                verdict = "ok" if count == distinct == acked[label] else "MISMATCH"
                sanity.append(
                    f"({label}) {table:<16} acked {acked[label]:>9,}  stored {count:>9,}  distinct {key_sql.strip('()')}: "
                    f"{distinct:>9,}  {verdict}; {transactions:,} transactions, {count / max(transactions, 1):,.0f} rows each"
                )
            if "f" in paths:
                sanity.append(new_users_sanity(conn, license_id, created=args.users, accepted=acceptance.accepted))
            if "e" in paths:
                sanity.extend(metrics_sanity(conn, license_id, acked["e"], metrics_info["services"]))

            middleware: list[MiddlewareResult] | str | None = "skipped (--no-middleware)"
            if args.only:
                middleware = f"skipped (--only {args.only})"
            elif not args.no_middleware:
                middleware = middleware_bench(
                    base=base,
                    key=key,
                    workdir=workdir,
                    rounds=args.rounds,
                    sequential=args.mw_sequential,
                    concurrent=args.mw_concurrent,
                    clients=clients,
                    progress=progress,
                )
                if middleware is not None:
                    sanity.append(middleware_sanity(conn, middleware, license_id))
        finally:
            clients.close()
            orm_pool.shutdown(wait=True)
            engine.dispose()
            server.stop()
            if args.database_url and license_id is not None and not args.keep:
                for problem in delete_license(conn, license_id):
                    print(f"cleanup: could not delete the bench rows of {problem}", file=sys.stderr)
            conn.close()
    shutil.rmtree(workdir, ignore_errors=True)
    report(
        args=args,
        version=version,
        where=where,
        settings=settings,
        paths=paths,
        otlp_note=otlp_note,
        sanity=sanity,
        attributed=attributed,
        first_at=first_at,
        last_at=last_at,
        notes=notes,
        profile=profile,
        middleware=middleware,
        shape=shape,
        metric_warm=metric_warm,
        metrics_info=metrics_info,
        metrics_note=metrics_note,
        acceptance=acceptance,
    )
    return 0


def _run_own_code() -> None:
    """Re-run this script with this checkout's ``src/`` first on PYTHONPATH when another copy of the package was
    imported (the venv's editable install of another tree, say): the bench decodes its COPY rows with the same code
    the server runs."""
    imported = Path(sys.modules["fernando_telemetry"].__file__).resolve()
    if SRC.is_dir() and not imported.is_relative_to(SRC.resolve()) and not os.environ.get("FT_BENCH_REEXEC"):
        os.execve(PYTHON, [PYTHON, str(Path(__file__).resolve()), *sys.argv[1:]], child_env(FT_BENCH_REEXEC="1"))


if __name__ == "__main__":
    _run_own_code()
    sys.exit(main())
