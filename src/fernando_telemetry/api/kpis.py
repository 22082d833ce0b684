"""KPI read routes: ``GET /api/v1/business-metrics`` (stored values, filtered, keyset pages) and
``GET /api/v1/kpis`` (the newest value of each KPI with the previous one and the change)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from fernando_telemetry.api.deps import ReadCaller
from fernando_telemetry.api.query_params import check_names, integer, prefixed
from fernando_telemetry.core import containment, time_range
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.services import kpis

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["query"])

_DIMENSIONS_PREFIX = "dimensions."
_SCOPE = {"license_id", "overall"}
_FILTERS = {"metric_name", "metric_category", "period_type"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed or out-of-range parameter, an unknown parameter, or a cursor of another query"},
    401: {"description": "Missing or unknown API key"},
    403: {
        "description": "The key lacks the read scope, asks for another license, or asks for overall=true without being an admin key"
    },
}
_LICENSE_DOC = "Admin keys: only this license's values"
_OVERALL_DOC = "Admin keys: `true` for the platform-wide values only (stored with license_id null)"


class BusinessMetricOut(BaseModel):
    business_metric_id: int
    metric_name: str
    metric_category: str
    metric_value: float
    currency: str | None
    period_type: str
    period_start: datetime
    period_end: datetime
    license_id: int | None = Field(description="null: the platform-wide value over every license")
    dimensions: dict[str, Any]
    target_value: float | None
    previous_value: float | None
    source: str = Field(
        description="kpi_job for values the KPI job computed; api for values sent to POST /api/v1/business-metrics"
    )
    computed_at: datetime
    created_at: datetime = Field(description="When the row was first stored")
    updated_at: datetime = Field(description="When the row was last replaced (a recomputation, or a re-sent value)")


class BusinessMetricPageOut(BaseModel):
    business_metrics: list[BusinessMetricOut] = Field(description="Newest period first, then newest row first")
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; null on the last page"
    )


class KpiOut(BaseModel):
    metric_name: str
    metric_category: str
    period_type: str
    license_id: int | None = Field(description="null: the platform-wide value over every license")
    dimensions: dict[str, Any]
    currency: str | None
    period_start: datetime = Field(description="Start of the newest stored period of this KPI")
    period_end: datetime
    metric_value: float
    previous_value: float | None = Field(description="Value of the stored period before it")
    change: float | None
    change_pct: float | None = Field(description="Change in percent of |previous_value|; null when that is 0 or missing")
    target_value: float | None
    computed_at: datetime


class KpiPageOut(BaseModel):
    kpis: list[KpiOut] = Field(description="By category, name, period type, then license (platform-wide first)")
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null on the last page")


def _flag(text: str | None, *, parameter: str) -> bool:
    if text is None:
        return False
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise InvalidInput(
        f"{parameter}: {text[:40]!r} is not true or false", details=[{"field": parameter, "reason": "not a boolean"}]
    )


@router.get(
    "/business-metrics",
    response_model=BusinessMetricPageOut,
    responses=_ERRORS,
    summary="Stored KPI values, newest period first",
    description=(
        "KPI values (computed by the KPI job, or sent to `POST /api/v1/business-metrics`) matching every filter given. "
        "`from`/`to` bound `period_start` as `[from, to)`. Dimension filters are `dimensions.<key>=<value>`, repeatable "
        "and ANDed (`dimensions.currency=EUR`); a value that is JSON other than a string (`7`, `true`) also matches that "
        "JSON value. A license key reads its own license's values; an admin key reads every license and the "
        "platform-wide values (license_id null), or `license_id=N`, or `overall=true`. Keyset pages: pass `next_cursor` "
        "back as `cursor` with the same filters."
    ),
)
def list_business_metrics(
    request: Request,
    caller: ReadCaller,
    metric_name: str | None = Query(None, examples=["active_users"]),
    metric_category: str | None = Query(None, examples=["user_engagement"]),
    period_type: str | None = Query(None, examples=["daily"]),
    from_: str | None = Query(None, alias="from", description="ISO 8601 instant: period_start at or after it"),
    to: str | None = Query(None, description="ISO 8601 instant: period_start before it"),
    license_id: str | None = Query(None, description=_LICENSE_DOC),
    overall: str | None = Query(None, description=_OVERALL_DOC),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: str | None = Query(None, description=f"Values per page, 1 to {kpis.MAX_LIMIT} (default {kpis.DEFAULT_LIMIT})"),
) -> BusinessMetricPageOut:
    check_names(request, allowed={"from", "to", "cursor", "limit", *_SCOPE, *_FILTERS}, prefixes=(_DIMENSIONS_PREFIX,))
    filters = kpis.MetricFilters(
        license_id=integer(license_id, parameter="license_id", minimum=1),
        overall=_flag(overall, parameter="overall"),
        metric_name=metric_name,
        metric_category=metric_category,
        period_type=period_type,
        period_start_from=time_range.parse_instant(from_, parameter="from"),
        period_start_before=time_range.parse_instant(to, parameter="to"),
        dimensions=containment.conditions(_DIMENSIONS_PREFIX, prefixed(request, _DIMENSIONS_PREFIX)),
        cursor=cursor,
        limit=integer(limit, parameter="limit", default=kpis.DEFAULT_LIMIT, minimum=1, maximum=kpis.MAX_LIMIT),
    )
    page = kpis.list_business_metrics(
        request.app.state.sessions, caller=caller, filters=filters, cursor_key=request.app.state.cursor_key
    )
    return BusinessMetricPageOut(
        business_metrics=[BusinessMetricOut.model_validate(asdict(row)) for row in page.business_metrics],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/kpis",
    response_model=KpiPageOut,
    responses=_ERRORS,
    summary="The newest value of each KPI, with the previous period's and the change",
    description=(
        "One row per KPI series (name, period type, license, dimensions) from the `business_metrics_kpi_summary` view: "
        "the newest stored period, the value of the stored period before it, and the change. Scoping as for "
        "`/api/v1/business-metrics`."
    ),
)
def list_kpis(
    request: Request,
    caller: ReadCaller,
    metric_name: str | None = Query(None, examples=["active_users"]),
    metric_category: str | None = Query(None, examples=["retention"]),
    period_type: str | None = Query(None, examples=["weekly"]),
    license_id: str | None = Query(None, description=_LICENSE_DOC),
    overall: str | None = Query(None, description=_OVERALL_DOC),
    limit: str | None = Query(None, description=f"Rows per page, 1 to {kpis.MAX_LIMIT} (default {kpis.MAX_LIMIT})"),
    offset: str | None = Query(None, description="Rows to skip: next_offset of the previous page"),
) -> KpiPageOut:
    check_names(request, allowed={"limit", "offset", *_SCOPE, *_FILTERS})
    page = kpis.list_kpis(
        request.app.state.sessions,
        caller=caller,
        metric_name=metric_name,
        metric_category=metric_category,
        period_type=period_type,
        license_id=integer(license_id, parameter="license_id", minimum=1),
        overall=_flag(overall, parameter="overall"),
        limit=integer(limit, parameter="limit", default=kpis.MAX_LIMIT, minimum=1, maximum=kpis.MAX_LIMIT),
        offset=integer(offset, parameter="offset", default=0, minimum=0),
    )
    return KpiPageOut(kpis=[KpiOut.model_validate(asdict(row)) for row in page.kpis], next_offset=page.next_offset)
