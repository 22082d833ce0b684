"""Services: request rate, error rate and latency percentiles per service over time, the current RED figures
and the dependency graph. Imports services and core.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from fernando_telemetry.services import summaries, traces
from fernando_telemetry.web import charts
from fernando_telemetry.web.page import Page, PageRequest
from fernando_telemetry.web.pages.common import hour_key, hours_between, summary_rows

__all__ = ["DEPENDENCY_WINDOW", "MAX_LATENCY_LINES", "PERCENTILES", "build"]

PERCENTILES = ("p50", "p95", "p99")
MAX_LATENCY_LINES = 8
"""Latency lines drawn: the busiest operations (of the chosen service, or of all)."""
DEPENDENCY_WINDOW = timedelta(hours=1)
"""The dependency graph and the current figures read the last hour of raw spans (bounded work)."""
_FRAGMENTS = {"services-table": "services/_table.html", "services-edges": "services/_edges.html"}


def build(request: PageRequest) -> Page:
    window = request.window(default_range="24h", max_span=timedelta(days=7))
    service = request.text("service")
    percentile = request.choice("percentile", PERCENTILES, "p95")
    rows, partial = summary_rows(request, summaries.traces, window)

    spans: dict[str, dict[datetime, float]] = defaultdict(lambda: defaultdict(float))
    errors: dict[str, dict[datetime, float]] = defaultdict(lambda: defaultdict(float))
    by_operation: dict[tuple[str, str], dict[datetime, float | None]] = defaultdict(dict)
    operation_spans: dict[tuple[str, str], int] = defaultdict(int)
    all_services: set[str] = set()
    for row in rows:
        name = row["service_name"]
        all_services.add(name)
        if service is not None and name != service:
            continue
        hour = hour_key(row["hour"])
        spans[name][hour] += row["spans"]
        errors[name][hour] += row["errors"]
        key = (name, row["operation_name"])
        by_operation[key][hour] = row[f"{percentile}_duration_ms"]
        operation_spans[key] += row["spans"]

    hours = hours_between(window.start, window.end)
    elapsed = {h: summaries.elapsed_s(h, now=request.now) for h in hours}
    current = [h for h in hours if 0 < elapsed[h] < 3600]
    rate_chart = charts.lines(
        "Requests per second by service (all spans)",
        {name: [(h, spans[name].get(h, 0.0) / elapsed[h] if elapsed[h] else None) for h in hours] for name in sorted(spans)},
        y_title="spans/s",
        # the hour still running is divided by the time elapsed in it, not by 3600 s
        note=f"{current[0]:%H:%M} hour so far: per second over its {elapsed[current[0]] / 60:.0f} min elapsed"
        if current
        else None,
    )
    error_chart = charts.lines(
        "Error rate by service",
        {
            name: [(h, errors[name].get(h, 0.0) / spans[name][h] if spans[name].get(h) else None) for h in hours]
            for name in sorted(spans)
        },
        y_title="share of spans",
        y_format=".1%",
    )
    busiest = sorted(operation_spans, key=lambda key: -operation_spans[key])[:MAX_LATENCY_LINES]
    latency_chart = charts.lines(
        f"{percentile} latency by operation (ms)",
        {f"{name} · {operation}": [(h, by_operation[(name, operation)].get(h)) for h in hours] for name, operation in busiest},
        y_title="ms",
    )

    recent_end = request.now
    health = traces.services_health(
        request.session,
        principal=request.principal,
        now=request.now,
        start=recent_end - DEPENDENCY_WINDOW,
        end=recent_end,
        service_name=service,
    )
    graph = traces.dependencies(
        request.session, principal=request.principal, now=request.now, start=recent_end - DEPENDENCY_WINDOW, end=recent_end
    )
    edges = [edge for edge in graph.edges if service is None or service in (edge.caller, edge.callee)]
    context = {
        "window": window,
        "service": service,
        "services": sorted(all_services | {figure.service_name for figure in health.services}),
        "percentile": percentile,
        "percentiles": PERCENTILES,
        "health": health.services,
        "edges": edges,
        "partial": partial,
    }
    return Page(
        title="Services",
        template="services/page.html",
        context=context,
        charts={
            "service-rate": rate_chart,
            "service-errors": error_chart,
            "service-latency": latency_chart,
            "dependency-graph": charts.sankey(
                "Dependencies, last hour (calls)", [(e.caller, e.callee, e.calls, e.error_rate) for e in edges]
            ),
        },
        fragments=_FRAGMENTS,
    )
