"""Trace use cases: search traces, read one as a span tree, per-service RED figures, service dependencies.

Routes call the use cases (``search_traces``, ``get_trace``, ``read_services_health``, ``read_dependencies``) with the
request's ``Caller``; they open the read session and call ``search(session, principal=..., filters=..., now=...)`` and its siblings. The license read comes from
``tenancy.visible_license``, so a key only ever sees its own license's spans. Validates what the caller
asks and raises ``InvalidInput`` naming the parameter. Imports storage, core and
``services.tenancy``; never commits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core import time_range
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.containment import Condition
from fernando_telemetry.core.errors import InvalidInput, NotFound, field_problem
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.core.time_range import TimeRange
from fernando_telemetry.core.trace_tree import TraceSummary, TraceTree, build_tree
from fernando_telemetry.services.tenancy import principal_of, visible_license
from fernando_telemetry.storage import trace_queries
from fernando_telemetry.storage.trace_queries import SpanMatch

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_RANGE",
    "DURATION_SCAN_TRACES",
    "Dependencies",
    "DependencyEdge",
    "MAX_LIMIT",
    "MAX_RANGE",
    "MAX_TRACE_SPANS",
    "PARENT_LAG",
    "PARENT_LEAD",
    "ServiceHealth",
    "ServicesHealth",
    "TraceDetail",
    "TraceFilters",
    "TraceSearch",
    "dependencies",
    "detail",
    "get_trace",
    "parse_trace_id",
    "read_dependencies",
    "read_services_health",
    "search",
    "search_traces",
    "services_health",
]

DEFAULT_RANGE = timedelta(hours=1)
"""What a read without ``from`` covers: the hour before ``to`` (which defaults to now)."""
MAX_RANGE = timedelta(days=7)
"""The longest range one read may cover (search, services and dependencies aggregate raw spans)."""
DEFAULT_LIMIT = 20
MAX_LIMIT = 200
MAX_TRACE_SPANS = 10_000
"""A trace with more spans is returned with its earliest ``MAX_TRACE_SPANS`` spans and ``truncated``."""
DURATION_SCAN_TRACES = 5_000
"""With a duration filter, at most this many of the newest matching traces are measured."""
_DURATION_BATCH_TRACES = 500
PARENT_LEAD = timedelta(days=1)
"""Dependencies: a parent span may start this long before the window of its children (a long caller) ..."""
PARENT_LAG = timedelta(hours=1)
"""... or this long after its child (clock skew between hosts); parents outside are not looked for."""
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class TraceFilters:
    """What a trace search asks for; None means "not given".

    Span filters (service, operation, status, HTTP status, attributes) must all hold on one span of a
    trace; the duration bounds apply to the whole trace.
    """

    start: datetime | None = None
    end: datetime | None = None
    service_name: str | None = None
    operation_name: str | None = None
    status: str | None = None
    http_status: int | None = None
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    attributes: Sequence[Condition] = ()
    license_id: int | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class TraceSearch:
    """Traces found, newest first; ``partial`` when a duration filter stopped at ``DURATION_SCAN_TRACES``
    candidates without filling the page."""

    window: TimeRange
    limit: int
    traces: list[TraceSummary]
    partial: bool


@dataclass(frozen=True)
class TraceDetail:
    """One trace as a tree; when over ``MAX_TRACE_SPANS`` spans the tree holds the earliest ones and
    ``summary`` still describes the whole trace."""

    tree: TraceTree
    summary: TraceSummary
    truncated: bool


@dataclass(frozen=True)
class ServiceHealth:
    """RED figures of one service in a window.

    ``basis`` says which spans count as requests: ``entry`` (server and consumer spans, what the service
    answered) or, for a service that has none in the window (a batch job, a cron), ``all`` of its spans.
    """

    service_name: str
    basis: str
    requests: int
    errors: int
    request_rate_per_s: float
    rate_seconds: float
    """what the rate divides by: the seconds of the window that have passed (up to now)"""
    error_rate: float
    p50_duration_ms: float | None
    p95_duration_ms: float | None
    p99_duration_ms: float | None


@dataclass(frozen=True)
class ServicesHealth:
    window: TimeRange
    services: list[ServiceHealth]


@dataclass(frozen=True)
class DependencyEdge:
    """``caller`` -> ``callee``: calls, errors of the callee's spans, their error rate and p95 duration."""

    caller: str
    callee: str
    calls: int
    errors: int
    error_rate: float
    p95_duration_ms: float


@dataclass(frozen=True)
class Dependencies:
    window: TimeRange
    edges: list[DependencyEdge]


def _window(start: datetime | None, end: datetime | None, now: datetime) -> TimeRange:
    return time_range.resolve(start=start, end=end, now=now, default_span=DEFAULT_RANGE, max_span=MAX_RANGE)


def parse_trace_id(text: str) -> str:
    """A trace id as stored: 32 hexadecimal characters, lowercased."""
    lowered = text.strip().lower()
    if len(lowered) != 32 or not set(lowered) <= _HEX:
        raise InvalidInput(
            f"trace_id: {text[:60]!r} is not 32 hexadecimal characters such as 4bf92f3577b34da6a3ce929d0e0e4736",
            details=[field_problem("trace_id", "not 32 hexadecimal characters")],
        )
    return lowered


def _invalid(parameter: str, message: str, reason: str) -> InvalidInput:
    return InvalidInput(f"{parameter} {message}", details=[field_problem(parameter, reason)])


def _check(filters: TraceFilters) -> None:
    if not 1 <= filters.limit <= MAX_LIMIT:
        raise _invalid("limit", f"must be between 1 and {MAX_LIMIT}, got {filters.limit}", f"not in 1..{MAX_LIMIT}")
    if filters.status is not None and filters.status != "error":
        raise _invalid("status", f"can only be 'error' (traces with an error span), got {filters.status[:40]!r}", "unknown value")
    if filters.http_status is not None and not 100 <= filters.http_status <= 599:
        raise _invalid("http_status", f"must be between 100 and 599, got {filters.http_status}", "not in 100..599")
    for name, value in (("min_duration_ms", filters.min_duration_ms), ("max_duration_ms", filters.max_duration_ms)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise _invalid(name, f"must be a number of milliseconds >= 0, got {value}", "not a duration")
    low, high = filters.min_duration_ms, filters.max_duration_ms
    if low is not None and high is not None and low > high:
        raise _invalid("min_duration_ms", f"({low}) is above max_duration_ms ({high})", "above max_duration_ms")


def search(session: Session, *, principal: Principal, filters: TraceFilters, now: datetime) -> TraceSearch:
    """Traces with a span that started in the window and matches every span filter, newest first.

    First the candidate trace ids from the matching spans of the window (partition pruning on
    ``start_time``), limited; then the summaries of those traces over all of their spans (hash index on
    ``trace_id``). A duration filter measures candidates in batches until the page is full.
    """
    _check(filters)
    license_id = visible_license(principal, filters.license_id)
    window = _window(filters.start, filters.end, now)
    match = SpanMatch(
        service_name=filters.service_name,
        operation_name=filters.operation_name,
        error=filters.status == "error",
        status_code=filters.http_status,
        attributes=tuple(filters.attributes),
    )
    limit = filters.limit
    low, high = filters.min_duration_ms, filters.max_duration_ms
    if low is None and high is None:
        trace_ids = trace_queries.candidate_trace_ids(
            session, match=match, license_id=license_id, start=window.start, end=window.end, limit=limit
        )
        found = trace_queries.trace_summaries(session, trace_ids=trace_ids, license_id=license_id)
        return TraceSearch(window=window, limit=limit, traces=found, partial=False)

    # the duration is the whole trace's, known only once all its spans are read
    trace_ids = trace_queries.candidate_trace_ids(
        session, match=match, license_id=license_id, start=window.start, end=window.end, limit=DURATION_SCAN_TRACES + 1
    )
    partial = len(trace_ids) > DURATION_SCAN_TRACES
    trace_ids = trace_ids[:DURATION_SCAN_TRACES]
    found = []
    for offset in range(0, len(trace_ids), _DURATION_BATCH_TRACES):
        found += trace_queries.trace_summaries(
            session,
            trace_ids=trace_ids[offset : offset + _DURATION_BATCH_TRACES],
            license_id=license_id,
            min_duration_ms=low,
            max_duration_ms=high,
        )
        if len(found) >= limit:
            partial = False
            break
    found.sort(key=lambda summary: (summary.start_time, summary.trace_id), reverse=True)
    return TraceSearch(window=window, limit=limit, traces=found[:limit], partial=partial)


def detail(session: Session, *, principal: Principal, trace_id: str, license_id: int | None = None) -> TraceDetail:
    """One trace's visible spans as a tree, whatever their time; ``NotFound`` when none is visible."""
    wanted = parse_trace_id(trace_id)
    visible = visible_license(principal, license_id)
    spans = trace_queries.trace_spans(session, trace_id=wanted, license_id=visible, limit=MAX_TRACE_SPANS + 1)
    if not spans:
        raise NotFound(f"no trace {wanted}")
    truncated = len(spans) > MAX_TRACE_SPANS
    tree = build_tree(wanted, spans[:MAX_TRACE_SPANS])
    summary = tree.summary
    if truncated:
        summary = trace_queries.trace_summaries(session, trace_ids=[wanted], license_id=visible)[0]
    return TraceDetail(tree=tree, summary=summary, truncated=truncated)


def services_health(
    session: Session,
    *,
    principal: Principal,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    service_name: str | None = None,
    license_id: int | None = None,
) -> ServicesHealth:
    """Rate, error rate and p50/p95/p99 duration of each service's requests in the window (see ``ServiceHealth``)."""
    visible = visible_license(principal, license_id)
    window = _window(start, end, now)
    # a window reaching past now is measured over the part that has passed
    seconds = max(0.0, (min(window.end, now) - window.start).total_seconds())
    figures = trace_queries.service_figures(
        session, license_id=visible, start=window.start, end=window.end, service_name=service_name
    )
    services = []
    for figure in figures:
        if figure.entry_spans:
            basis, requests, errors, percentiles = "entry", figure.entry_spans, figure.entry_errors, figure.entry_percentiles_ms
        else:
            basis, requests, errors, percentiles = "all", figure.all_spans, figure.all_errors, figure.all_percentiles_ms
        p50, p95, p99 = percentiles if percentiles is not None else (None, None, None)
        services.append(
            ServiceHealth(
                service_name=figure.service_name,
                basis=basis,
                requests=requests,
                errors=errors,
                request_rate_per_s=requests / seconds if seconds > 0 else 0.0,
                rate_seconds=seconds,
                error_rate=errors / requests,
                p50_duration_ms=p50,
                p95_duration_ms=p95,
                p99_duration_ms=p99,
            )
        )
    return ServicesHealth(window=window, services=services)


def dependencies(
    session: Session,
    *,
    principal: Principal,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    license_id: int | None = None,
) -> Dependencies:
    """Caller -> callee edges of the window: a span started in it whose parent span (same trace, same
    license) is in another service is one call from the parent's service to the span's."""
    visible = visible_license(principal, license_id)
    window = _window(start, end, now)
    edges = trace_queries.dependency_edges(
        session, license_id=visible, start=window.start, end=window.end, parent_lead=PARENT_LEAD, parent_lag=PARENT_LAG
    )
    return Dependencies(
        window=window,
        edges=[
            DependencyEdge(
                caller=edge.caller,
                callee=edge.callee,
                calls=edge.calls,
                errors=edge.errors,
                error_rate=edge.errors / edge.calls,
                p95_duration_ms=edge.p95_duration_ms,
            )
            for edge in edges
        ],
    )


def search_traces(sessions: sessionmaker[Session], *, caller: Caller, filters: TraceFilters) -> TraceSearch:
    """The use case behind ``GET /api/v1/traces``: one read transaction, the caller's license and clock."""
    with sessions() as session:
        return search(session, principal=principal_of(caller), filters=filters, now=caller.now())


def get_trace(sessions: sessionmaker[Session], *, caller: Caller, trace_id: str, license_id: int | None = None) -> TraceDetail:
    """The use case behind ``GET /api/v1/traces/{trace_id}``."""
    with sessions() as session:
        return detail(session, principal=principal_of(caller), trace_id=trace_id, license_id=license_id)


def read_services_health(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    start: datetime | None = None,
    end: datetime | None = None,
    service_name: str | None = None,
    license_id: int | None = None,
) -> ServicesHealth:
    """The use case behind ``GET /api/v1/services``."""
    with sessions() as session:
        return services_health(
            session,
            principal=principal_of(caller),
            now=caller.now(),
            start=start,
            end=end,
            service_name=service_name,
            license_id=license_id,
        )


def read_dependencies(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    start: datetime | None = None,
    end: datetime | None = None,
    license_id: int | None = None,
) -> Dependencies:
    """The use case behind ``GET /api/v1/services/dependencies``."""
    with sessions() as session:
        return dependencies(
            session, principal=principal_of(caller), now=caller.now(), start=start, end=end, license_id=license_id
        )
