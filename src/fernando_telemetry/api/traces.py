"""Trace routes: ``GET /api/v1/traces`` (search), ``/traces/{trace_id}`` (the span tree),
``/services`` (RED figures per service) and ``/services/dependencies`` (caller -> callee edges).

Parses the query string, calls one ``services.traces`` function, and shapes the answer. A trace's tree
is written to JSON without recursion (see ``MAX_NESTING``). Imports services and core.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pydantic_core
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from fernando_telemetry.api.deps import ReadCaller
from fernando_telemetry.api.query_params import check_names, integer, prefixed
from fernando_telemetry.core import containment, time_range
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.core.trace_tree import TraceNode, TraceSummary
from fernando_telemetry.services import traces

__all__ = ["MAX_NESTING", "router"]

router = APIRouter(prefix="/api/v1", tags=["traces"])

MAX_NESTING = 100
"""Levels of ``children`` nested in a trace's JSON. Many JSON readers stop near 500 levels (Python's
``json`` among them); below this depth a node's descendants are listed flat, in display order, each
with its true ``depth`` and ``parent_span_id``, and the node says ``descendants_flattened``."""

_ATTR_PREFIX = "attr."
_WINDOW_PARAMS = {"from", "to", "license_id"}
_SEARCH_PARAMS = _WINDOW_PARAMS | {
    "service",
    "operation",
    "status",
    "http_status",
    "min_duration_ms",
    "max_duration_ms",
    "limit",
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed or out-of-range parameter, or an unknown parameter"},
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key lacks the read scope, or asks for another license"},
}
_FROM = Query(
    None,
    alias="from",
    description="ISO 8601 instant, inclusive (default: an hour before `to`)",
    examples=["2026-11-28T09:00:00Z"],
)
_TO = Query(None, description="ISO 8601 instant, exclusive (default: now); at most 7 days after `from`")
_LICENSE = Query(None, description="Admin keys: only this license's spans")


class TraceSummaryOut(BaseModel):
    trace_id: str
    root_service: str = Field(description="Service of the root span: the earliest span without a parent, else the earliest span")
    root_operation: str
    start_time: datetime = Field(description="Earliest span start")
    end_time: datetime = Field(description="Latest span end")
    duration_ms: float = Field(description="end_time - start_time")
    span_count: int
    services: list[str] = Field(description="Distinct services of the trace's spans, sorted")
    error: bool = Field(description="Some span has status error")


class TraceSearchOut(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime
    limit: int
    partial: bool = Field(
        description=f"With a duration filter: only the newest {traces.DURATION_SCAN_TRACES} matching traces were measured "
        "and fewer than `limit` passed"
    )
    traces: list[TraceSummaryOut] = Field(description="Newest first")


class SpanNodeOut(BaseModel):
    span_id: str
    parent_span_id: str | None
    depth: int = Field(description="0 at the top level")
    orphan: bool = Field(
        description="The span names a parent that is not in the trace (it never arrived); shown at the top level"
    )
    self_time_ms: float = Field(description="duration_ms minus the union of the children's intervals clipped to this span")
    service_name: str
    operation_name: str
    span_kind: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    status: str
    status_message: str | None
    status_code: int | None
    http_method: str | None
    http_route: str | None
    error_type: str | None
    error_message: str | None
    host_name: str | None
    user_id: str | None
    license_id: int | None
    environment: str | None
    attributes: dict[str, Any]
    span_events: list[Any]
    resource: dict[str, Any]
    descendants_flattened: bool = Field(
        default=False, description=f"At depth {MAX_NESTING - 1}: `children` lists all descendants flat, in display order"
    )
    children: list[SpanNodeOut] = Field(description="By start time")


class TraceDetailOut(TraceSummaryOut):
    orphan_count: int
    max_depth: int
    truncated: bool = Field(
        description=f"Over {traces.MAX_TRACE_SPANS} spans: the tree holds the earliest ones; the summary counts them all"
    )
    roots: list[SpanNodeOut] = Field(description="Top-level spans (roots and orphans) by start time, children nested")


class ServiceOut(BaseModel):
    service_name: str
    basis: str = Field(
        description="`entry`: requests are server and consumer spans; `all`: the service has none, all its spans count"
    )
    requests: int
    errors: int
    request_rate_per_s: float = Field(description="requests / rate_seconds")
    rate_seconds: float = Field(description="Seconds of the range that have passed: up to `to`, or now when `to` is later")
    error_rate: float
    p50_duration_ms: float | None
    p95_duration_ms: float | None
    p99_duration_ms: float | None


class ServicesOut(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime
    services: list[ServiceOut] = Field(description="By service name")


class DependencyOut(BaseModel):
    caller: str
    callee: str
    calls: int = Field(description="Spans of callee whose parent span is in caller")
    errors: int = Field(description="Of those, spans with status error")
    error_rate: float
    p95_duration_ms: float = Field(description="p95 of the callee spans' duration")


class DependenciesOut(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime
    edges: list[DependencyOut] = Field(description="By caller, then callee")


def _number(text: str | None, *, parameter: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInput(
            f"{parameter}: {text[:40]!r} is not a number", details=[{"field": parameter, "reason": "not a number"}]
        )
    return value


def _summary_fields(summary: TraceSummary) -> dict[str, Any]:
    return {
        "trace_id": summary.trace_id,
        "root_service": summary.root_service,
        "root_operation": summary.root_operation,
        "start_time": summary.start_time,
        "end_time": summary.end_time,
        "duration_ms": summary.duration_ms,
        "span_count": summary.span_count,
        "services": list(summary.services),
        "error": summary.error,
    }


def _node_fields(node: TraceNode) -> dict[str, Any]:
    span = node.span
    return {
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "depth": node.depth,
        "orphan": node.orphan,
        "self_time_ms": node.self_time_ms,
        "service_name": span.service_name,
        "operation_name": span.operation_name,
        "span_kind": span.span_kind,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "duration_ms": span.duration_ms,
        "status": span.status,
        "status_message": span.status_message,
        "status_code": span.status_code,
        "http_method": span.http_method,
        "http_route": span.http_route,
        "error_type": span.error_type,
        "error_message": span.error_message,
        "host_name": span.host_name,
        "user_id": span.user_id,
        "license_id": span.license_id,
        "environment": span.environment,
        "attributes": span.attributes,
        "span_events": span.span_events,
        "resource": span.resource,
    }


def _descendants(node: TraceNode) -> Iterator[TraceNode]:
    stack = list(reversed(node.children))
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _json(fields: dict[str, Any]) -> str:
    return pydantic_core.to_json(fields).decode()


def render_detail(detail: traces.TraceDetail) -> bytes:
    """The trace as JSON: its summary, then ``roots`` with nested ``children``; built with an explicit
    stack, so the depth of a trace never meets Python's recursion limit."""
    head = {
        **_summary_fields(detail.summary),
        "orphan_count": detail.tree.orphan_count,
        "max_depth": detail.tree.max_depth,
        "truncated": detail.truncated,
        "roots": [],
    }
    pieces = [_json(head)[:-2]]  # '..."roots":[' : the nodes follow, then the closing ']}'
    stack: list[TraceNode | str] = ["]}"]
    for index, root in enumerate(reversed(detail.tree.roots)):
        if index:
            stack.append(",")
        stack.append(root)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            pieces.append(item)
            continue
        fields = _node_fields(item)
        if not item.children:
            pieces.append(_json({**fields, "children": []}))
        elif item.depth >= MAX_NESTING - 1:
            flat = ",".join(_json({**_node_fields(node), "children": []}) for node in _descendants(item))
            pieces.append(_json({**fields, "descendants_flattened": True, "children": []})[:-2] + flat + "]}")
        else:
            pieces.append(_json({**fields, "children": []})[:-2])
            stack.append("]}")
            for index, child in enumerate(reversed(item.children)):
                if index:
                    stack.append(",")
                stack.append(child)
    return "".join(pieces).encode()


@router.get(
    "/traces",
    response_model=TraceSearchOut,
    responses=_ERRORS,
    summary="Search traces, newest first",
    description=(
        "Traces with a span that started in `[from, to)` (default: the last hour; at most 7 days) and matches every "
        "span filter given: `service`, `operation`, `status=error`, `http_status`, and attribute filters "
        "`attr.<key>=<value>` (repeatable; a value that is JSON other than a string, such as `200` or `true`, matches "
        "that JSON value or the same text as a string). All span filters must hold on one span. "
        "`min_duration_ms` / `max_duration_ms` bound the whole trace's duration (latest end - earliest start). "
        "Each result summarises the whole trace, all its spans whatever their time."
    ),
    response_model_by_alias=True,
)
def search_traces(
    request: Request,
    caller: ReadCaller,
    from_: str | None = _FROM,
    to: str | None = _TO,
    service: str | None = Query(None, description="A span of this service", examples=["checkout"]),
    operation: str | None = Query(None, description="A span of this operation", examples=["POST /pay"]),
    status: str | None = Query(None, description="`error`: a span with status error"),
    http_status: str | None = Query(None, description="A span with this HTTP status code", examples=["503"]),
    min_duration_ms: str | None = Query(None, description="Trace duration at least this"),
    max_duration_ms: str | None = Query(None, description="Trace duration at most this"),
    limit: str | None = Query(None, description=f"Traces to return, 1 to {traces.MAX_LIMIT} (default {traces.DEFAULT_LIMIT})"),
    license_id: str | None = _LICENSE,
) -> TraceSearchOut:
    check_names(request, allowed=_SEARCH_PARAMS, prefixes=(_ATTR_PREFIX,))
    filters = traces.TraceFilters(
        start=time_range.parse_instant(from_, parameter="from"),
        end=time_range.parse_instant(to, parameter="to"),
        service_name=service,
        operation_name=operation,
        status=status,
        http_status=integer(http_status, parameter="http_status", minimum=100, maximum=599),
        min_duration_ms=_number(min_duration_ms, parameter="min_duration_ms"),
        max_duration_ms=_number(max_duration_ms, parameter="max_duration_ms"),
        attributes=containment.conditions(_ATTR_PREFIX, prefixed(request, _ATTR_PREFIX)),
        license_id=integer(license_id, parameter="license_id", minimum=1),
        limit=integer(limit, parameter="limit", default=traces.DEFAULT_LIMIT, minimum=1, maximum=traces.MAX_LIMIT),
    )
    found = traces.search_traces(request.app.state.sessions, caller=caller, filters=filters)
    return TraceSearchOut.model_validate(
        {
            "from": found.window.start,
            "to": found.window.end,
            "limit": found.limit,
            "partial": found.partial,
            "traces": [_summary_fields(summary) for summary in found.traces],
        }
    )


@router.get(
    "/traces/{trace_id}",
    response_class=Response,
    responses={
        200: {"model": TraceDetailOut, "description": "The trace: its summary and its span tree"},
        **_ERRORS,
        404: {"description": "No span of this trace is visible to the key"},
    },
    summary="One trace as a span tree, no time range needed",
    description=(
        "All visible spans of the trace, whatever their time. Top-level nodes are the roots (spans without a "
        "parent) and the orphans (spans whose parent never arrived, flagged `orphan`), by start time; children "
        "are nested by start time, each with its `depth` and `self_time_ms`."
    ),
)
def get_trace(request: Request, caller: ReadCaller, trace_id: str, license_id: str | None = _LICENSE) -> Response:
    check_names(request, allowed={"license_id"})
    wanted_license = integer(license_id, parameter="license_id", minimum=1)
    found = traces.get_trace(request.app.state.sessions, caller=caller, trace_id=trace_id, license_id=wanted_license)
    return Response(content=render_detail(found), media_type="application/json")


@router.get(
    "/services",
    response_model=ServicesOut,
    responses=_ERRORS,
    summary="RED figures per service: request rate, error rate, p50/p95/p99 duration",
    description=(
        "Per service, over spans started in `[from, to)` (default: the last hour; at most 7 days). Requests are the "
        "service's server and consumer spans (`basis: entry`); a service with none in the window (a batch job) "
        "counts all its spans (`basis: all`). Percentiles are exact, over the raw spans."
    ),
    response_model_by_alias=True,
)
def list_services(
    request: Request,
    caller: ReadCaller,
    from_: str | None = _FROM,
    to: str | None = _TO,
    service: str | None = Query(None, description="Only this service"),
    license_id: str | None = _LICENSE,
) -> ServicesOut:
    check_names(request, allowed=_WINDOW_PARAMS | {"service"})
    start = time_range.parse_instant(from_, parameter="from")
    end = time_range.parse_instant(to, parameter="to")
    wanted_license = integer(license_id, parameter="license_id", minimum=1)
    health = traces.read_services_health(
        request.app.state.sessions, caller=caller, start=start, end=end, service_name=service, license_id=wanted_license
    )
    return ServicesOut.model_validate(
        {
            "from": health.window.start,
            "to": health.window.end,
            "services": [ServiceOut.model_validate(service_health, from_attributes=True) for service_health in health.services],
        }
    )


@router.get(
    "/services/dependencies",
    response_model=DependenciesOut,
    responses=_ERRORS,
    summary="Caller -> callee edges between services, with calls, errors and p95",
    description=(
        "Each span started in `[from, to)` (default: the last hour; at most 7 days) whose parent span, in the same "
        "trace, belongs to another service is one call from the parent's service to its own. Errors and p95 are "
        "of the callee's spans. Parents are looked for from a day before `from` to an hour after `to`."
    ),
    response_model_by_alias=True,
)
def list_dependencies(
    request: Request,
    caller: ReadCaller,
    from_: str | None = _FROM,
    to: str | None = _TO,
    license_id: str | None = _LICENSE,
) -> DependenciesOut:
    check_names(request, allowed=_WINDOW_PARAMS)
    start = time_range.parse_instant(from_, parameter="from")
    end = time_range.parse_instant(to, parameter="to")
    wanted_license = integer(license_id, parameter="license_id", minimum=1)
    found = traces.read_dependencies(request.app.state.sessions, caller=caller, start=start, end=end, license_id=wanted_license)
    return DependenciesOut.model_validate(
        {
            "from": found.window.start,
            "to": found.window.end,
            "edges": [DependencyOut.model_validate(edge, from_attributes=True) for edge in found.edges],
        }
    )
