"""Hourly summary routes over the analytics views: ``GET /api/v1/summaries/events-hourly``, ``/summaries/services``
and ``/summaries/traces``, each filtered, paged by offset, and scoped to the key's license."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from fernando_telemetry.api.deps import ReadCaller
from fernando_telemetry.api.query_params import check_names, integer
from fernando_telemetry.core import time_range
from fernando_telemetry.services import summaries

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/summaries", tags=["query"])

_COMMON = {"from", "to", "license_id", "limit", "offset"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed or out-of-range parameter, an unknown parameter, or a range over 31 days"},
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key lacks the read scope, or asks for another license"},
}
_RANGE_DOC = (
    "Every hour bucket overlapping `[from, to)` (from rounded down, to up to the hour; default: the 24 hours before "
    "`to`, which defaults to now; at most 31 days), ordered by hour then group. Offset pages: pass `next_offset` back "
    "as `offset` with the same parameters."
)
_FROM = Query(None, alias="from", description="ISO 8601 instant", examples=["2026-11-28T00:00:00Z"])
_TO = Query(None, description="ISO 8601 instant, exclusive")
_LICENSE = Query(None, description="Admin keys: only this license's rows")
_LIMIT = Query(None, description=f"Rows per page, 1 to {summaries.MAX_LIMIT} (default {summaries.DEFAULT_LIMIT})")
_OFFSET = Query(None, description="Rows to skip: next_offset of the previous page")


_ELAPSED_DOC = (
    "Seconds of the hour elapsed when the summary was read: 3600 for an hour that has ended, now - hour for the "
    "current one; the per-second rate divides by it, so the current hour's rate is not diluted by its future"
)


class _Page(BaseModel):
    from_: datetime = Field(alias="from", serialization_alias="from", description="Start of the first hour read")
    to: datetime = Field(description="End of the last hour read")
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null on the last page")

    model_config = {"populate_by_name": True}


class EventHourOut(BaseModel):
    hour: datetime
    event_type: str
    license_id: int | None
    events: int
    unique_users: int
    unique_sessions: int
    avg_duration_ms: float | None
    p95_duration_ms: float | None
    errors: int = Field(
        description="Failed events: error_event events, events whose payload has an `error` or `exception` that is not "
        "null or false, and events whose payload `status_code` is 500..599 (a failed request recorded by the SDK middleware)"
    )
    server_span_errors: int = Field(
        description="Spans of kind server with status error in the hour and license (OTLP or SDK), on the `api_event` row; "
        "a failed request recorded by the middleware is in both `errors` and here, so do not add the two"
    )
    elapsed_s: float = Field(description=_ELAPSED_DOC)
    events_per_s: float | None = Field(description="events / elapsed_s (null for an hour that has not started)")


class EventHoursOut(_Page):
    rows: list[EventHourOut]


class ServiceHourOut(BaseModel):
    hour: datetime
    service_name: str | None
    metric_name: str
    samples: int = Field(description="Rows")
    avg_value: float | None = Field(description="Mean of the observations: sum of value x sample_count / observations")
    min_value: float | None
    max_value: float | None
    p50: float | None = Field(description="Percentiles of the hour's merged per-row distributions")
    p90: float | None
    p95: float | None
    p99: float | None
    observations: int = Field(description="Sum of sample_count")
    value_sum: float = Field(
        description="The `sum` aggregation: counter increments, gauge values, histogram value x sample_count"
    )


class ServiceHoursOut(_Page):
    rows: list[ServiceHourOut]


class TraceHourOut(BaseModel):
    hour: datetime
    service_name: str
    operation_name: str
    spans: int
    errors: int
    error_rate: float
    p50_duration_ms: float | None
    p95_duration_ms: float | None
    p99_duration_ms: float | None
    elapsed_s: float = Field(description=_ELAPSED_DOC)
    spans_per_s: float | None = Field(description="spans / elapsed_s (null for an hour that has not started)")


class TraceHoursOut(_Page):
    rows: list[TraceHourOut]


def _filters(
    request: Request,
    *,
    equals: dict[str, str | None],
    from_: str | None,
    to: str | None,
    license_id: str | None,
    limit: str | None,
    offset: str | None,
) -> summaries.SummaryFilters:
    check_names(request, allowed={*_COMMON, *equals})
    return summaries.SummaryFilters(
        start=time_range.parse_instant(from_, parameter="from"),
        end=time_range.parse_instant(to, parameter="to"),
        equals={name: value for name, value in equals.items() if value is not None},
        license_id=integer(license_id, parameter="license_id", minimum=1),
        limit=integer(limit, parameter="limit", default=summaries.DEFAULT_LIMIT, minimum=1, maximum=summaries.MAX_LIMIT),
        offset=integer(offset, parameter="offset", default=0, minimum=0),
    )


@router.get(
    "/events-hourly",
    response_model=EventHoursOut,
    response_model_by_alias=True,
    responses=_ERRORS,
    summary="Events per hour, type and license",
    description="Rows of the `telemetry_events_hourly_summary` view. " + _RANGE_DOC,
)
def events_hourly(
    request: Request,
    caller: ReadCaller,
    from_: str | None = _FROM,
    to: str | None = _TO,
    event_type: str | None = Query(None, examples=["error_event"]),
    license_id: str | None = _LICENSE,
    limit: str | None = _LIMIT,
    offset: str | None = _OFFSET,
) -> EventHoursOut:
    filters = _filters(
        request, equals={"event_type": event_type}, from_=from_, to=to, license_id=license_id, limit=limit, offset=offset
    )
    page = summaries.read_events_hourly(request.app.state.sessions, caller=caller, filters=filters)
    return EventHoursOut(
        from_=page.start, to=page.end, rows=[EventHourOut(**row) for row in page.rows], next_offset=page.next_offset
    )


@router.get(
    "/services",
    response_model=ServiceHoursOut,
    response_model_by_alias=True,
    responses=_ERRORS,
    summary="Metric samples per hour, service and metric",
    description=(
        "The columns of the `system_metrics_service_summary` view. That view has no license column: an admin key "
        "without `license_id` reads the view (every license's samples together); a license key, or an admin key with "
        "`license_id`, gets the same figures computed from that license's samples only. " + _RANGE_DOC
    ),
)
def services_hourly(
    request: Request,
    caller: ReadCaller,
    from_: str | None = _FROM,
    to: str | None = _TO,
    service_name: str | None = Query(None, examples=["checkout"]),
    metric_name: str | None = Query(None, examples=["http.server.duration"]),
    license_id: str | None = _LICENSE,
    limit: str | None = _LIMIT,
    offset: str | None = _OFFSET,
) -> ServiceHoursOut:
    filters = _filters(
        request,
        equals={"service_name": service_name, "metric_name": metric_name},
        from_=from_,
        to=to,
        license_id=license_id,
        limit=limit,
        offset=offset,
    )
    page = summaries.read_services(request.app.state.sessions, caller=caller, filters=filters)
    return ServiceHoursOut(
        from_=page.start, to=page.end, rows=[ServiceHourOut(**row) for row in page.rows], next_offset=page.next_offset
    )


@router.get(
    "/traces",
    response_model=TraceHoursOut,
    response_model_by_alias=True,
    responses=_ERRORS,
    summary="Spans per hour, service and operation",
    description=(
        "The columns of the `traces_service_summary` view. That view has no license column: an admin key without "
        "`license_id` reads the view (every license's spans together); a license key, or an admin key with "
        "`license_id`, gets the same figures computed from that license's spans only. " + _RANGE_DOC
    ),
)
def traces_hourly(
    request: Request,
    caller: ReadCaller,
    from_: str | None = _FROM,
    to: str | None = _TO,
    service_name: str | None = Query(None, examples=["orders"]),
    operation_name: str | None = Query(None, examples=["GET /orders/{id}"]),
    license_id: str | None = _LICENSE,
    limit: str | None = _LIMIT,
    offset: str | None = _OFFSET,
) -> TraceHoursOut:
    filters = _filters(
        request,
        equals={"service_name": service_name, "operation_name": operation_name},
        from_=from_,
        to=to,
        license_id=license_id,
        limit=limit,
        offset=offset,
    )
    page = summaries.read_traces(request.app.state.sessions, caller=caller, filters=filters)
    return TraceHoursOut(
        from_=page.start, to=page.end, rows=[TraceHourOut(**row) for row in page.rows], next_offset=page.next_offset
    )
