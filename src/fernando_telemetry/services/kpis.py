"""Business KPIs: computing them from ``telemetry_events`` into ``business_metrics``, and reading them back.

Every KPI of a period is recomputed whole by one set-based statement per family (engagement,
acquisition, revenue, and retention per cohort), upserted on the natural key, so reruns replace values.
Imports storage, core and ``services.tenancy``; never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core import cursor as cursors
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.containment import Condition
from fernando_telemetry.core.enums import MetricCategory, PeriodType
from fernando_telemetry.core.errors import Forbidden, InvalidInput, field_problem
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.core.kpi_periods import (
    KPI_PERIOD_TYPES,
    Period,
    day_start,
    periods_covering,
    recent_periods,
    retention_checks,
)
from fernando_telemetry.services import tenancy
from fernando_telemetry.storage import kpi_queries
from fernando_telemetry.storage.kpi_queries import BusinessMetricRow, KpiSummaryRow

__all__ = [
    "BusinessMetricPage",
    "BusinessMetricRow",
    "DEFAULT_LIMIT",
    "KPI_JOB_LOCK",
    "KpiSummaryPage",
    "KpiSummaryRow",
    "MAX_LIMIT",
    "MetricFilters",
    "PeriodOutcome",
    "backfill_periods",
    "business_metrics",
    "compute_period",
    "compute_recent",
    "kpi_summary",
    "list_business_metrics",
    "list_kpis",
    "oldest_computable_day",
    "recent_periods_due",
    "recompute_period",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class PeriodOutcome:
    """What recomputing one period wrote."""

    period: Period
    rows: int


def oldest_computable_day(*, now: datetime, events_retention_days: int) -> date:
    """The first whole UTC day whose raw events retention has not started dropping at ``now``."""
    return (now - timedelta(days=events_retention_days)).astimezone(UTC).date() + timedelta(days=1)


def compute_period(session: Session, *, period: Period, now: datetime, oldest_day: date | None = None) -> PeriodOutcome:
    """Recompute every KPI of ``period`` as of ``now``; returns how many rows were upserted.

    A daily period also recomputes the retention values it decides (see ``retention_checks``), for
    cohorts on or after ``oldest_day`` (the raw events of older cohorts may be partly gone).
    """
    rows = 0
    for upsert in (kpi_queries.upsert_engagement, kpi_queries.upsert_acquisition, kpi_queries.upsert_revenue):
        rows += upsert(session, period_type=period.period_type, start=period.start, end=period.end, computed_at=now)
    if period.period_type == PeriodType.DAILY:
        for check in retention_checks(period.first_day, now=now):
            if oldest_day is not None and check.cohort_day < oldest_day:
                continue
            rows += kpi_queries.upsert_retention(
                session,
                cohort_start=day_start(check.cohort_day),
                cohort_end=day_start(check.cohort_day + timedelta(days=1)),
                offsets_days=check.offsets_days,
                activity_windows=[
                    (day_start(check.activity_day(offset)), day_start(check.activity_day(offset) + timedelta(days=1)))
                    for offset in check.offsets_days
                ],
                computed_at=now,
            )
    return PeriodOutcome(period=period, rows=rows)


def recent_periods_due(
    *, now: datetime, events_retention_days: int, period_types: Sequence[PeriodType | str] = KPI_PERIOD_TYPES
) -> list[Period]:
    """The previous and current period of each type at ``now``: what the recurring job recomputes, so late
    events are counted. Periods that begin before the oldest day retention keeps are left out rather than
    overwritten with figures computed from what is left of them."""
    oldest_day = oldest_computable_day(now=now, events_retention_days=events_retention_days)
    return [
        period for period_type in period_types for period in recent_periods(period_type, now) if period.first_day >= oldest_day
    ]


def compute_recent(session: Session, *, now: datetime, events_retention_days: int) -> list[PeriodOutcome]:
    """The scheduler's work: every period of ``recent_periods_due``, in the caller's transaction."""
    oldest_day = oldest_computable_day(now=now, events_retention_days=events_retention_days)
    return [
        compute_period(session, period=period, now=now, oldest_day=oldest_day)
        for period in recent_periods_due(now=now, events_retention_days=events_retention_days)
    ]


def backfill_periods(
    *,
    period_types: Sequence[PeriodType | str],
    first_day: date,
    last_day: date,
    now: datetime,
    events_retention_days: int,
) -> list[Period]:
    """The periods a backfill of ``[first_day, last_day]`` recomputes, checked: not reversed, not in the
    future, not older than the raw events retention keeps."""
    if last_day < first_day:
        raise InvalidInput(f"the last day {last_day} is before the first day {first_day}")
    today = now.astimezone(UTC).date()
    if first_day > today:
        raise InvalidInput(f"the first day {first_day} is in the future (today is {today} UTC)")
    last_day = min(last_day, today)
    oldest_day = oldest_computable_day(now=now, events_retention_days=events_retention_days)
    periods = [period for period_type in period_types for period in periods_covering(period_type, first_day, last_day)]
    too_old = [period for period in periods if period.first_day < oldest_day]
    if too_old:
        raise InvalidInput(
            f"the {too_old[0].period_type} period {too_old[0].label} starts before {oldest_day}, the oldest day whose raw "
            f"events are all kept (events retention: {events_retention_days} days); its KPIs cannot be recomputed"
        )
    return periods


# --- reads ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricFilters:
    """What a read of stored KPI values asks for; None means "not given".

    ``license_id`` is the requested license (admin keys); ``overall`` asks for the platform-wide rows only.
    ``period_start_from``/``period_start_before`` bound ``period_start`` as ``[from, to)``.
    """

    license_id: int | None = None
    overall: bool = False
    metric_name: str | None = None
    metric_category: str | None = None
    period_type: str | None = None
    period_start_from: datetime | None = None
    period_start_before: datetime | None = None
    dimensions: Sequence[Condition] = ()
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class BusinessMetricPage:
    """Stored KPI values, newest period first; ``next_cursor`` is None on the last page."""

    business_metrics: list[BusinessMetricRow]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class KpiSummaryPage:
    """The newest value of each KPI series; ``next_offset`` is None on the last page."""

    kpis: list[KpiSummaryRow]
    next_offset: int | None


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}, got {limit}",
            details=[field_problem("limit", f"not in 1..{MAX_LIMIT}")],
        )


def _license_scope(principal: Principal, license_id: int | None, overall: bool) -> int | None:
    visible = tenancy.visible_license(principal, license_id)
    if overall and not principal.is_admin:
        raise Forbidden("overall=true reads the platform-wide KPIs of every license: it needs an admin key")
    if overall and license_id is not None:
        raise InvalidInput("give license_id or overall=true, not both", details=[field_problem("overall", "with license_id")])
    return visible


def _vocabulary(value: str | None, vocabulary: type[PeriodType] | type[MetricCategory], parameter: str) -> str | None:
    if value is None or value in vocabulary.__members__.values():
        return value
    raise InvalidInput(
        f"{parameter}: {value[:40]!r} is not one of {', '.join(member.value for member in vocabulary)}",
        details=[field_problem(parameter, "unknown value")],
    )


def business_metrics(session: Session, *, principal: Principal, filters: MetricFilters, cursor_key: bytes) -> BusinessMetricPage:
    """One page of the stored KPI values the caller may see, newest period first, keyset-paginated.

    A license key sees its license's rows; an admin key sees every license and the platform-wide rows
    (``license_id`` NULL), or one license, or (``overall``) the platform-wide rows only.
    """
    _check_limit(filters.limit)
    start, end = filters.period_start_from, filters.period_start_before
    if start is not None and end is not None and end <= start:
        raise InvalidInput(
            f"to ({end.isoformat()}) must be after from ({start.isoformat()})",
            details=[field_problem("to", "not after from")],
        )
    license_id = _license_scope(principal, filters.license_id, filters.overall)
    metric_category = _vocabulary(filters.metric_category, MetricCategory, "metric_category")
    period_type = _vocabulary(filters.period_type, PeriodType, "period_type")
    digest = cursors.query_digest(
        {
            "license_id": license_id,
            "overall": filters.overall,
            "metric_name": filters.metric_name,
            "metric_category": metric_category,
            "period_type": period_type,
            "from": start,
            "to": end,
            "dimensions": [list(condition) for condition in filters.dimensions],
        }
    )
    position = None if filters.cursor is None else cursors.decode(filters.cursor, query=digest, key=cursor_key)
    rows = kpi_queries.business_metrics(
        session,
        license_id=license_id,
        overall_only=filters.overall,
        metric_name=filters.metric_name,
        metric_category=metric_category,
        period_type=period_type,
        period_start_from=start,
        period_start_before=end,
        dimensions=filters.dimensions,
        after=None if position is None else (position.at, _cursor_id(position.key)),
        limit=filters.limit + 1,
    )
    if len(rows) <= filters.limit:
        return BusinessMetricPage(business_metrics=rows, next_cursor=None)
    page = rows[: filters.limit]
    last = page[-1]
    next_position = cursors.Cursor(
        at=last.period_start, key=str(last.business_metric_id), range_start=start or last.period_start, query=digest
    )
    return BusinessMetricPage(business_metrics=page, next_cursor=cursors.encode(next_position, key=cursor_key))


def _cursor_id(key: str) -> int:
    if not key.isdigit():
        raise InvalidInput("cursor: not a cursor of a business-metrics read", details=[field_problem("cursor", "bad key")])
    return int(key)


def kpi_summary(
    session: Session,
    *,
    principal: Principal,
    license_id: int | None = None,
    overall: bool = False,
    metric_name: str | None = None,
    metric_category: str | None = None,
    period_type: str | None = None,
    limit: int = MAX_LIMIT,
    offset: int = 0,
) -> KpiSummaryPage:
    """The newest value of each KPI series the caller may see, with the previous period's and the change."""
    _check_limit(limit)
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, got {offset}", details=[field_problem("offset", "negative")])
    rows = kpi_queries.kpi_summary(
        session,
        license_id=_license_scope(principal, license_id, overall),
        overall_only=overall,
        metric_name=metric_name,
        metric_category=_vocabulary(metric_category, MetricCategory, "metric_category"),
        period_type=_vocabulary(period_type, PeriodType, "period_type"),
        limit=limit + 1,
        offset=offset,
    )
    if len(rows) <= limit:
        return KpiSummaryPage(kpis=rows, next_offset=None)
    return KpiSummaryPage(kpis=rows[:limit], next_offset=offset + limit)


def list_business_metrics(
    sessions: sessionmaker[Session], *, caller: Caller, filters: MetricFilters, cursor_key: bytes
) -> BusinessMetricPage:
    """The use case behind ``GET /api/v1/business-metrics``: one read transaction, the caller's license scope."""
    with sessions() as session:
        return business_metrics(session, principal=tenancy.principal_of(caller), filters=filters, cursor_key=cursor_key)


def list_kpis(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    license_id: int | None = None,
    overall: bool = False,
    metric_name: str | None = None,
    metric_category: str | None = None,
    period_type: str | None = None,
    limit: int = MAX_LIMIT,
    offset: int = 0,
) -> KpiSummaryPage:
    """The use case behind ``GET /api/v1/kpis``."""
    with sessions() as session:
        return kpi_summary(
            session,
            principal=tenancy.principal_of(caller),
            license_id=license_id,
            overall=overall,
            metric_name=metric_name,
            metric_category=metric_category,
            period_type=period_type,
            limit=limit,
            offset=offset,
        )


KPI_JOB_LOCK = "fernando_telemetry.job:kpis"
"""The advisory lock the scheduled KPI job takes (``composition.jobs``: ``fernando_telemetry.job:<name>``)."""


def recompute_period(sessions: sessionmaker[Session], *, caller: Caller, period: Period, oldest_day: date | None) -> int:
    """The use case behind ``kpis compute``, one period: its own transaction, after the KPI job's lock; the rows written.

    Waiting for the job's lock means a running job finishes first, and skips its ticks while this holds it, so the two
    never upsert the same rows in different orders (a deadlock)."""
    with sessions.begin() as session:
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": KPI_JOB_LOCK})
        return compute_period(session, period=period, now=caller.now(), oldest_day=oldest_day).rows
