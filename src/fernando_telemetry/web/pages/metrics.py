"""Metrics: any metric as a chart, with aggregation, step and group-by, and the catalogue of metric names.
Imports services and core.
"""

from __future__ import annotations

from datetime import timedelta

from fernando_telemetry.core import series as series_math
from fernando_telemetry.core.series import Aggregation, Step
from fernando_telemetry.services import metric_series
from fernando_telemetry.services.metric_series import SeriesRequest
from fernando_telemetry.web import charts
from fernando_telemetry.web.page import Page, PageRequest

__all__ = ["CATALOGUE_RANGE", "build"]

CATALOGUE_RANGE = timedelta(hours=24)
"""The metric names offered are those with samples in the last day (a bounded read)."""


def build(request: PageRequest) -> Page:
    window = request.window(default_range="6h", max_span=timedelta(days=31))
    metric_name = request.text("metric")
    catalogue = []
    if metric_name is None or not request.refresh:  # the catalogue only feeds the form
        catalogue = metric_series.names(
            request.session,
            principal=request.principal,
            start=request.now - CATALOGUE_RANGE,
            end=request.now,
            service_name=None,
            license_id=None,
            now=request.now,
        )
    metric_name = metric_name or (catalogue[0].metric_name if catalogue else None)
    aggregation = series_math.parse_aggregation(request.text("agg"), parameter="agg")
    step = series_math.parse_step(request.text("step"), parameter="step")
    group_by = series_math.parse_group_by(request.text("group_by"), parameter="group_by")
    context = {
        "window": window,
        "catalogue": catalogue,
        "metric_name": metric_name,
        "aggregation": aggregation.value,
        "aggregations": [member.value for member in Aggregation],
        "step": step.value if step else "",
        "steps": [member.value for member in Step],
        "group_by": group_by.name if group_by else "",
        "service_name": request.text("service_name") or "",
        "host_name": request.text("host_name") or "",
        "result": None,
    }
    figures = {}
    if metric_name is not None:
        result = metric_series.series(
            request.session,
            principal=request.principal,
            request=SeriesRequest(
                metric_name=metric_name,
                service_name=request.text("service_name"),
                host_name=request.text("host_name"),
                start=window.start,
                end=window.end,
                step=step,
                aggregation=aggregation,
                group_by=group_by,
            ),
            now=request.now,
        )
        context["result"] = result
        lines = {
            (", ".join(f"{key}={value}" for key, value in line.group.items()) or metric_name): line.points
            for line in result.series
        }
        partial = " (last point partial)" if result.current_bucket is not None else ""
        figures["metric-series"] = charts.lines(
            f"{metric_name}: {aggregation.value} per {result.step.value} ({result.source}){partial}",
            lines,
            y_title=aggregation.value,
            height=420,
        )
    return Page(
        title="Metrics",
        template="metrics/page.html",
        context=context,
        charts=figures,
        fragments={"metrics-summary": "metrics/_summary.html"},
    )
