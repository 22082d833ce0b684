"""Helpers the pages share: every page of an hourly summary, the KPI scope of the signed-in key, hour buckets.
Imports services and core.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fernando_telemetry.core.keys import Principal
from fernando_telemetry.services import kpis, summaries
from fernando_telemetry.services.summaries import SummaryFilters, SummaryPage
from fernando_telemetry.web.page import PageRequest, WindowChoice

__all__ = ["MAX_SUMMARY_PAGES", "active_users", "hour_key", "hours_between", "kpi_overall", "summary_rows"]

MAX_SUMMARY_PAGES = 10
"""A chart reads at most this many pages of ``summaries.MAX_LIMIT`` rows (then says it is partial)."""

SummaryReader = Callable[..., SummaryPage]


def summary_rows(
    request: PageRequest, reader: SummaryReader, window: WindowChoice, *, equals: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Every row of one hourly summary over the window; True when it stopped at ``MAX_SUMMARY_PAGES``."""
    rows: list[dict[str, Any]] = []
    offset: int | None = 0
    for _ in range(MAX_SUMMARY_PAGES):
        page = reader(
            request.session,
            principal=request.principal,
            filters=SummaryFilters(
                start=window.start, end=window.end, equals=equals or {}, limit=summaries.MAX_LIMIT, offset=offset or 0
            ),
            now=request.now,
        )
        rows += page.rows
        offset = page.next_offset
        if offset is None:
            return rows, False
    return rows, True


def kpi_overall(principal: Principal) -> bool:
    """An admin key reads the platform-wide KPI rows (``overall``); a license key its license's rows."""
    return principal.is_admin


def active_users(session: Session, principal: Principal) -> dict[str, float | None]:
    """The newest DAU, WAU and MAU (``active_users`` of the current day, week and month so far)."""
    found: dict[str, float | None] = {"daily": None, "weekly": None, "monthly": None}
    page = kpis.kpi_summary(session, principal=principal, overall=kpi_overall(principal), metric_name="active_users")
    for row in page.kpis:
        if row.period_type in found and not row.dimensions:
            found[row.period_type] = float(row.metric_value)
    return found


def hour_key(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """The starts of the hours overlapping ``[start, end)``."""
    hours = []
    hour = hour_key(start)
    while hour < end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours
