"""Traces: the search form and its results, and one trace as a waterfall of nested spans with their timings,
errors and attributes. Imports services and core.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fernando_telemetry.core.trace_tree import TraceNode
from fernando_telemetry.services import traces
from fernando_telemetry.services.traces import TraceFilters
from fernando_telemetry.web import charts
from fernando_telemetry.web.page import Page, PageRequest

__all__ = ["MAX_WATERFALL_SPANS", "build", "build_detail"]

MAX_WATERFALL_SPANS = 2000
"""A trace shows its first this-many spans (in display order) in the waterfall and the span table."""
_MS = timedelta(milliseconds=1)


def build(request: PageRequest) -> Page:
    window = request.window(default_range="1h", max_span=traces.MAX_RANGE)
    status = request.choice("status", ("any", "error"), "any")
    limit = int(request.choice("limit", ("20", "50", "100", "200"), "50"))
    filters = TraceFilters(
        start=window.start,
        end=window.end,
        service_name=request.text("service"),
        operation_name=request.text("operation"),
        status="error" if status == "error" else None,
        min_duration_ms=request.number("min_duration_ms"),
        max_duration_ms=request.number("max_duration_ms"),
        limit=limit,
    )
    found = traces.search(request.session, principal=request.principal, filters=filters, now=request.now)
    chart = charts.scatter_points(
        "Traces found: duration by start time",
        x=[summary.start_time for summary in found.traces],
        y=[summary.duration_ms for summary in found.traces],
        text=[f"{summary.root_service} · {summary.root_operation}" for summary in found.traces],
        errors=[summary.error for summary in found.traces],
        y_title="ms",
    )
    return Page(
        title="Traces",
        template="traces/page.html",
        context={"window": window, "found": found, "status": status, "limit": limit},
        charts={"trace-durations": chart},
        fragments={"traces-results": "traces/_results.html"},
    )


def build_detail(request: PageRequest, trace_id: str) -> Page:
    detail = traces.detail(request.session, principal=request.principal, trace_id=trace_id)
    tree = detail.tree
    trace_start = tree.summary.start_time
    nodes: list[TraceNode] = []
    for node in tree.walk():
        if len(nodes) >= MAX_WATERFALL_SPANS:
            break
        nodes.append(node)
    rows: list[dict[str, Any]] = []
    for node in nodes:
        span = node.span
        rows.append(
            {
                "node": node,
                "span": span,
                "offset_ms": (span.start_time - trace_start) / _MS,
                "error": span.is_error,
                "attributes": dict(span.attributes),
                "resource": dict(span.resource),
                "events": list(span.span_events),
            }
        )
    chart = charts.waterfall(
        "Waterfall",
        labels=[f"{row['span'].service_name} · {row['span'].operation_name}"[:80] for row in rows],
        offsets_ms=[row["offset_ms"] for row in rows],
        durations_ms=[row["span"].duration_ms for row in rows],
        depths=[row["node"].depth for row in rows],
        services=[row["span"].service_name for row in rows],
        errors=[row["error"] for row in rows],
        hover=[_hover(row) for row in rows],
    )
    return Page(
        title=f"Trace {tree.summary.trace_id}",
        template="traces/detail.html",
        context={
            "detail": detail,
            "summary": detail.summary,
            "rows": rows,
            "shown": len(rows),
            "total_in_tree": sum(1 for _ in tree.walk()),
        },
        charts={"trace-waterfall": chart},
        refresh=False,
    )


def _hover(row: dict[str, Any]) -> str:
    span = row["span"]
    parts = [
        f"<b>{charts.plain(span.service_name)}</b> · {charts.plain(span.operation_name)}",
        f"start +{row['offset_ms']:.1f} ms, duration {span.duration_ms:.1f} ms, self {row['node'].self_time_ms:.1f} ms",
        f"kind {span.span_kind}, status {span.status}" + (f" ({span.status_code})" if span.status_code else ""),
    ]
    if span.error_message or span.error_type:
        parts.append("error: " + charts.plain(f"{span.error_type or ''} {span.error_message or ''}"[:200]))
    return "<br>".join(parts)
