"""KPIs: active users (daily, weekly, monthly), retention cohorts, revenue by period and currency, and the
newest value of every KPI with its change. Imports services and core.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from fernando_telemetry.core.enums import PeriodType
from fernando_telemetry.services import kpis
from fernando_telemetry.services.kpis import BusinessMetricRow, MetricFilters
from fernando_telemetry.web import charts
from fernando_telemetry.web.page import Page, PageRequest
from fernando_telemetry.web.pages.common import active_users, kpi_overall

__all__ = ["COHORT_DAYS", "HISTORY", "RETENTION_OFFSETS", "build"]

COHORT_DAYS = 30
RETENTION_OFFSETS = ("retention_d1", "retention_d7", "retention_d30")
HISTORY: dict[str, timedelta] = {"daily": timedelta(days=30), "weekly": timedelta(weeks=16), "monthly": timedelta(days=370)}
"""How far back each period type's charts reach."""
_MAX_PAGES = 5


def _values(request: PageRequest, *, metric_name: str, period_type: str, since: datetime) -> list[BusinessMetricRow]:
    rows: list[BusinessMetricRow] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = kpis.business_metrics(
            request.session,
            principal=request.principal,
            filters=MetricFilters(
                overall=kpi_overall(request.principal),
                metric_name=metric_name,
                period_type=period_type,
                period_start_from=since,
                cursor=cursor,
                limit=kpis.MAX_LIMIT,
            ),
            cursor_key=request.cursor_key,
        )
        rows += page.business_metrics
        cursor = page.next_cursor
        if cursor is None:
            break
    return rows


def build(request: PageRequest) -> Page:
    revenue_period = request.choice("revenue_period", ("daily", "weekly", "monthly"), "daily")
    now = request.now

    active: dict[str, list[tuple[datetime, float | None]]] = {}
    for period_type, label in (("daily", "DAU"), ("weekly", "WAU"), ("monthly", "MAU")):
        rows = _values(request, metric_name="active_users", period_type=period_type, since=now - HISTORY[period_type])
        active[f"{label} ({period_type})"] = sorted(
            (row.period_start, float(row.metric_value)) for row in rows if not row.dimensions
        )

    cohort_since = now - timedelta(days=COHORT_DAYS)
    retention: dict[datetime, dict[str, float]] = defaultdict(dict)
    for name in RETENTION_OFFSETS:
        for row in _values(request, metric_name=name, period_type=PeriodType.DAILY.value, since=cohort_since):
            retention[row.period_start][name] = float(row.metric_value)
    cohort_sizes = {
        row.period_start: float(row.metric_value)
        for row in _values(request, metric_name="new_users", period_type="daily", since=cohort_since)
    }
    cohorts = sorted(retention, reverse=True)
    cohort_labels = [f"{day:%Y-%m-%d} ({cohort_sizes.get(day, 0):,.0f} new)" for day in cohorts]
    retention_chart = charts.heatmap(
        "Retention by daily cohort",
        x=["day 1", "day 7", "day 30"],
        y=cohort_labels,
        z=[[retention[day].get(name) for name in RETENTION_OFFSETS] for day in cohorts],
    )

    revenue: dict[str, list[tuple[datetime, float | None]]] = defaultdict(list)
    for row in _values(request, metric_name="revenue", period_type=revenue_period, since=now - HISTORY[revenue_period]):
        revenue[row.currency or "?"].append((row.period_start, float(row.metric_value)))
    revenue_chart = charts.bars(
        f"Revenue per {revenue_period.removesuffix('ly').replace('dai', 'day')} by currency",
        {currency: sorted(points) for currency, points in sorted(revenue.items())},
        y_title="amount",
        stacked=False,
    )

    summary = kpis.kpi_summary(request.session, principal=request.principal, overall=kpi_overall(request.principal))
    return Page(
        title="KPIs",
        template="kpis/page.html",
        context={
            "users": active_users(request.session, request.principal),
            "summary": summary.kpis,
            "revenue_period": revenue_period,
            "cohort_count": len(cohorts),
        },
        charts={
            "active-users": charts.lines("Active users", active, y_title="users"),
            "retention-cohorts": retention_chart,
            "revenue": revenue_chart,
        },
        fragments={"kpis-stats": "kpis/_stats.html", "kpis-summary": "kpis/_summary.html"},
    )
