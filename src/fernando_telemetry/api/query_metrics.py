"""Metric routes: ``GET /api/v1/metrics/series`` (one point per step) and ``GET /api/v1/metrics/names``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from fernando_telemetry.api.deps import ReadCaller
from fernando_telemetry.api.query_params import check_names, integer, prefixed
from fernando_telemetry.core import containment, time_range
from fernando_telemetry.core import series as series_math
from fernando_telemetry.services import metric_series

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["query"])

_LABELS_PREFIX = "labels."
_SERIES_PARAMETERS = {
    "metric_name",
    "service_name",
    "host_name",
    "from",
    "to",
    "step",
    "agg",
    "group_by",
    "license_id",
    "source",
}
_NAMES_PARAMETERS = {"from", "to", "service_name", "license_id"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed or out-of-range parameter, an unknown parameter, or too many points or series"},
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key lacks the read scope, or asks for another license"},
}


class SeriesOut(BaseModel):
    group: dict[str, str | None] = Field(description="The group_by value of this line; {} without group_by")
    points: list[tuple[datetime, float | None]] = Field(description="[bucket start, value or null], one per step")


class CurrentBucketOut(BaseModel):
    bucket_start: datetime = Field(description="Start of the bucket that holds the request's `now`")
    elapsed_s: float = Field(description="Seconds of that bucket elapsed by now: what its `rate` divides by")
    partial: bool = Field(True, description="Always true: the bucket has not ended, its values cover what arrived so far")


class SeriesAnswer(BaseModel):
    metric_name: str
    step: str
    agg: str
    source: str = Field(description="Where the points came from: raw (samples) or rollup")
    series: list[SeriesOut]
    current_bucket: CurrentBucketOut | None = Field(
        None,
        description="The point of every line at this bucket start is partial (the bucket has not ended); its rate "
        "divides by elapsed_s, not by the step. null when the range holds no unfinished bucket.",
    )


class MetricNameOut(BaseModel):
    metric_name: str
    metric_types: list[str]
    units: list[str]
    service_names: list[str]
    samples: int
    last_seen_at: datetime


class MetricNamesAnswer(BaseModel):
    metrics: list[MetricNameOut]


@router.get(
    "/metrics/series",
    response_model=SeriesAnswer,
    responses=_ERRORS,
    summary="One metric over time, one point per step",
    description=(
        "Buckets are aligned to the step in UTC from `from` aligned down (default: the hour before `to`, which "
        "defaults to now); every point aggregates its whole bucket and an empty bucket is null. `step` is 1m, 5m, "
        f"1h or 1d (default: the smallest giving at most {series_math.AUTO_STEP_POINTS} points; at most "
        f"{series_math.MAX_POINTS:,} points). `agg`: avg (default: sum of value x sample_count over the observations), "
        "min, max, sum (counter increments, gauge values, histogram value x sample_count), count (observations: "
        "the sum of sample_count), rate (per-second increase: counter increments and histogram observations, each "
        "spread over its interval (start_time, timestamp], at most an hour back; a gauge's rises between samples), "
        "p50, p90, p95, p99 (of the merged per-row distributions). The bucket holding now is partial: "
        "`current_bucket` names it, and its rate divides by the seconds elapsed in it. `labels.<key>=<value>` "
        "filters by label (repeatable, ANDed; JSON values as for payload filters). `group_by`: host_name, "
        "service_name or labels.<key>."
    ),
)
def get_series(
    request: Request,
    caller: ReadCaller,
    metric_name: str | None = Query(None, description="Required: the metric to read", examples=["cpu_usage"]),
    service_name: str | None = Query(None),
    host_name: str | None = Query(None),
    from_: str | None = Query(None, alias="from", description="ISO 8601 instant", examples=["2026-11-28T00:00:00Z"]),
    to: str | None = Query(None, description="ISO 8601 instant, exclusive"),
    step: str | None = Query(None, description="1m, 5m, 1h or 1d"),
    agg: str | None = Query(None, description="avg, min, max, sum, count, rate, p50, p90, p95, p99"),
    group_by: str | None = Query(None, description="host_name, service_name or labels.<key>"),
    license_id: str | None = Query(None, description="Admin keys: only this license's samples"),
    source: str = Query("auto", description="auto (default), or force raw"),
) -> SeriesAnswer:
    check_names(request, allowed=_SERIES_PARAMETERS, prefixes=(_LABELS_PREFIX,))
    series_request = metric_series.SeriesRequest(
        metric_name=metric_name or "",
        service_name=service_name,
        host_name=host_name,
        labels=containment.conditions(_LABELS_PREFIX, prefixed(request, _LABELS_PREFIX)),
        start=time_range.parse_instant(from_, parameter="from"),
        end=time_range.parse_instant(to, parameter="to"),
        step=series_math.parse_step(step),
        aggregation=series_math.parse_aggregation(agg),
        group_by=series_math.parse_group_by(group_by),
        license_id=integer(license_id, parameter="license_id", minimum=1),
    )
    result = metric_series.read_series(request.app.state.sessions, caller=caller, request=series_request, source=source)
    return SeriesAnswer(
        metric_name=result.metric_name,
        step=result.step.value,
        agg=result.aggregation.value,
        source=result.source,
        series=[SeriesOut(group=line.group, points=line.points) for line in result.series],
        current_bucket=None
        if result.current_bucket is None
        else CurrentBucketOut(bucket_start=result.current_bucket.bucket_start, elapsed_s=result.current_bucket.elapsed_s),
    )


@router.get(
    "/metrics/names",
    response_model=MetricNamesAnswer,
    responses=_ERRORS,
    summary="The metrics with samples in a range: types, units, services, last sample",
)
def get_metric_names(
    request: Request,
    caller: ReadCaller,
    from_: str | None = Query(None, alias="from", description="ISO 8601 instant (default: 7 days before `to`)"),
    to: str | None = Query(None, description="ISO 8601 instant, exclusive (default: now)"),
    service_name: str | None = Query(None),
    license_id: str | None = Query(None, description="Admin keys: only this license's metrics"),
) -> MetricNamesAnswer:
    check_names(request, allowed=_NAMES_PARAMETERS)
    start = time_range.parse_instant(from_, parameter="from")
    end = time_range.parse_instant(to, parameter="to")
    parsed_license = integer(license_id, parameter="license_id", minimum=1)
    found = metric_series.list_names(
        request.app.state.sessions, caller=caller, start=start, end=end, service_name=service_name, license_id=parsed_license
    )
    return MetricNamesAnswer(metrics=[MetricNameOut.model_validate(name, from_attributes=True) for name in found])
