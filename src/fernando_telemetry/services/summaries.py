"""Hourly summaries of events, service metrics and spans for dashboards and scripts, scoped to the caller's license.

A summary reads every hour bucket that overlaps ``[from, to)``: ``from`` is rounded down and ``to`` up to
the hour. The events summary has the rows of the ``telemetry_events_hourly_summary`` view for the license, computed
with the pending hours read first. The
service-metric and span views have no license column: an admin key reading every license gets the views;
a license key (or an admin naming a license) gets the same columns computed from the raw rows of that
license. Event and span rows carry a rate per second over the time elapsed in their hour (``elapsed_s``:
the whole hour once it has ended, ``now - hour`` for the current one). Imports storage, core and
``services.tenancy``; never commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core import time_range
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.enums import EventType
from fernando_telemetry.core.errors import InvalidInput, field_problem
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.services.tenancy import principal_of, visible_license
from fernando_telemetry.storage import rollups, summary_queries
from fernando_telemetry.storage.summary_queries import SummaryQuery

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_RANGE",
    "MAX_LIMIT",
    "MAX_RANGE",
    "SummaryFilters",
    "SummaryPage",
    "elapsed_s",
    "events_hourly",
    "read_events_hourly",
    "read_services",
    "read_traces",
    "services",
    "traces",
]

DEFAULT_RANGE = timedelta(hours=24)
"""What a summary without ``from`` reads: the day before ``to``."""
MAX_RANGE = timedelta(days=31)
"""The longest range one summary may read."""
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000

_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class SummaryFilters:
    """What a summary asks for; None means "not given". ``equals`` holds the grouping-column filters."""

    start: datetime | None = None
    end: datetime | None = None
    equals: Mapping[str, str] = field(default_factory=dict)
    license_id: int | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


@dataclass(frozen=True)
class SummaryPage:
    """Hourly rows of ``[start, end)`` (whole hours), ordered by hour then group; ``next_offset`` None on the last page."""

    start: datetime
    end: datetime
    rows: list[dict[str, Any]]
    next_offset: int | None


def _floor_hour(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + _HOUR


def _query(filters: SummaryFilters, *, now: datetime, allowed: tuple[str, ...]) -> SummaryQuery:
    if not 1 <= filters.limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}, got {filters.limit}",
            details=[field_problem("limit", f"not in 1..{MAX_LIMIT}")],
        )
    if filters.offset < 0:
        raise InvalidInput(f"offset must be 0 or more, got {filters.offset}", details=[field_problem("offset", "negative")])
    unknown = sorted(set(filters.equals) - set(allowed))
    if unknown:
        raise InvalidInput(f"cannot filter this summary by {', '.join(unknown)}")
    window = time_range.resolve(start=filters.start, end=filters.end, now=now, default_span=DEFAULT_RANGE, max_span=MAX_RANGE)
    return SummaryQuery(
        start=_floor_hour(window.start),
        end=_ceil_hour(window.end),
        equals=dict(filters.equals),
        limit=filters.limit + 1,
        offset=filters.offset,
    )


def elapsed_s(bucket_start: datetime, *, now: datetime, bucket: timedelta = _HOUR) -> float:
    """Seconds of ``[bucket_start, bucket_start + bucket)`` that have passed at ``now``: the whole bucket once it
    has ended, ``now - bucket_start`` while it runs, 0 before it starts. What a rate over the bucket divides by."""
    return max(0.0, min(bucket, now - bucket_start).total_seconds())


def _with_rate(rows: list[dict[str, Any]], *, count: str, rate: str, now: datetime) -> list[dict[str, Any]]:
    """Each row with ``elapsed_s`` (see ``elapsed_s``) and ``rate`` = ``count`` / ``elapsed_s`` (None before the hour)."""
    for row in rows:
        seconds = elapsed_s(row["hour"], now=now)
        row["elapsed_s"] = seconds
        row[rate] = row[count] / seconds if seconds > 0 else None
    return rows


def _page(query: SummaryQuery, rows: list[dict[str, Any]]) -> SummaryPage:
    limit = query.limit - 1
    more = len(rows) > limit
    return SummaryPage(query.start, query.end, rows[:limit], query.offset + limit if more else None)


def events_hourly(session: Session, *, principal: Principal, filters: SummaryFilters, now: datetime) -> SummaryPage:
    """Events per hour, type and license as ``telemetry_events_hourly_summary`` has them, in the caller's license."""
    event_type = filters.equals.get("event_type")
    if event_type is not None and event_type not in EventType.__members__.values():
        raise InvalidInput(
            f"event_type: {event_type[:40]!r} is not one of {', '.join(member.value for member in EventType)}",
            details=[field_problem("event_type", "unknown value")],
        )
    query = _query(filters, now=now, allowed=("event_type",))
    license_id = visible_license(principal, filters.license_id)
    # the pending hours first, in their own statements: on Citus a query naming one license runs on one worker,
    # which cannot read the coordinator's rollup bookkeeping
    pending = rollups.pending_hours(session, table="telemetry_events", start=query.start, end=query.end)
    pending_spans = rollups.pending_hours(session, table="traces", start=query.start, end=query.end)
    rows = summary_queries.events_hourly(session, query, license_id=license_id, pending=pending, pending_spans=pending_spans)
    return _page(query, _with_rate(rows, count="events", rate="events_per_s", now=now))


def services(session: Session, *, principal: Principal, filters: SummaryFilters, now: datetime) -> SummaryPage:
    """Metric samples per hour, service and metric; the view for all licenses, raw rows for one."""
    query = _query(filters, now=now, allowed=("service_name", "metric_name"))
    license_id = visible_license(principal, filters.license_id)
    if license_id is None:
        return _page(query, summary_queries.services_hourly(session, query))
    return _page(query, summary_queries.services_for_license(session, query, license_id=license_id))


def traces(session: Session, *, principal: Principal, filters: SummaryFilters, now: datetime) -> SummaryPage:
    """Spans per hour, service and operation; the view for all licenses, raw rows for one."""
    query = _query(filters, now=now, allowed=("service_name", "operation_name"))
    license_id = visible_license(principal, filters.license_id)
    if license_id is None:
        rows = summary_queries.traces_hourly(session, query)
    else:
        rows = summary_queries.traces_for_license(session, query, license_id=license_id)
    return _page(query, _with_rate(rows, count="spans", rate="spans_per_s", now=now))


def read_events_hourly(sessions: sessionmaker[Session], *, caller: Caller, filters: SummaryFilters) -> SummaryPage:
    """The use case behind ``GET /api/v1/summaries/events-hourly``: one read transaction, the caller's license and clock."""
    with sessions() as session:
        return events_hourly(session, principal=principal_of(caller), filters=filters, now=caller.now())


def read_services(sessions: sessionmaker[Session], *, caller: Caller, filters: SummaryFilters) -> SummaryPage:
    """The use case behind ``GET /api/v1/summaries/services``."""
    with sessions() as session:
        return services(session, principal=principal_of(caller), filters=filters, now=caller.now())


def read_traces(sessions: sessionmaker[Session], *, caller: Caller, filters: SummaryFilters) -> SummaryPage:
    """The use case behind ``GET /api/v1/summaries/traces``."""
    with sessions() as session:
        return traces(session, principal=principal_of(caller), filters=filters, now=caller.now())
