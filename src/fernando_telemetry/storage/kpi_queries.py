"""KPI SQL: set-based upserts of ``business_metrics`` from ``telemetry_events``, and the reads of the KPI API.

Each upsert is one ``INSERT ... SELECT ... ON CONFLICT ON CONSTRAINT uq_business_metrics_natural_key DO UPDATE``
for one KPI family and one period (or one retention cohort), per license and overall (the platform license, 0)
in the same statement: the per-license aggregate and the overall one combined by ``UNION ALL`` (not ``GROUPING
SETS``, which Citus cannot run over a distributed table); the same statements serve a single PostgreSQL and a
Citus cluster. A rerun replaces the values, never doubles them. The platform license's own events count in the
overall figures only: its row is the overall one.
Imports only the models and ``storage.results``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, column, false, or_, select, table, text, true, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.storage.models import BusinessMetric
from fernando_telemetry.storage.results import rows_affected

__all__ = [
    "KPI_SOURCE",
    "BusinessMetricRow",
    "KpiSummaryRow",
    "business_metrics",
    "kpi_summary",
    "upsert_acquisition",
    "upsert_engagement",
    "upsert_retention",
    "upsert_revenue",
]

KPI_SOURCE = "kpi_job"

_UPSERT_COLUMNS = """
INSERT INTO business_metrics (metric_name, metric_category, metric_value, currency, period_start, period_end,
                              period_type, license_id, dimensions, source, computed_at, updated_at)
"""

_ON_CONFLICT = """
ON CONFLICT ON CONSTRAINT uq_business_metrics_natural_key DO UPDATE
   SET metric_category = EXCLUDED.metric_category,
       metric_value = EXCLUDED.metric_value,
       currency = EXCLUDED.currency,
       period_end = EXCLUDED.period_end,
       source = EXCLUDED.source,
       computed_at = EXCLUDED.computed_at,
       updated_at = EXCLUDED.updated_at
"""

# Each statement aggregates per license (grouped by the distribution column, so Citus runs it on the shards) and
# writes the overall figures under the platform license beside them (UNION ALL), never with GROUPING SETS, which
# Citus cannot run over a distributed table. The platform license's own events count in the overall figures only.
# A user is a (license, user id) pair: user "4242" of license A and "4242" of license B are two active users of
# the platform, so the overall active users is the sum of every license's (the platform's own included); the
# overall sessions is a distinct count over all events (a session id is not tied to a license).
_ENGAGEMENT = (
    _UPSERT_COLUMNS
    + """
SELECT kpi.metric_name, 'user_engagement', kpi.metric_value, NULL, :period_start, :period_end, :period_type,
       totals.license_id, '{}'::jsonb, :source, :computed_at, :computed_at
  FROM (SELECT license_id, count(DISTINCT user_id) AS active_users, count(DISTINCT session_id) AS sessions,
               count(user_id) AS user_events
          FROM telemetry_events
         WHERE event_timestamp >= :period_start AND event_timestamp < :period_end
           AND license_id <> :platform_license
         GROUP BY license_id
         UNION ALL
        SELECT CAST(:platform_license AS bigint), count(DISTINCT (license_id, user_id)) FILTER (WHERE user_id IS NOT NULL),
               count(DISTINCT session_id), count(user_id)
          FROM telemetry_events
         WHERE event_timestamp >= :period_start AND event_timestamp < :period_end) AS totals
 CROSS JOIN LATERAL (VALUES
        ('active_users', totals.active_users::numeric),
        ('sessions', totals.sessions::numeric),
        ('events_per_active_user', round(totals.user_events::numeric / NULLIF(totals.active_users, 0), 6))
       ) AS kpi (metric_name, metric_value)
 WHERE kpi.metric_value IS NOT NULL
"""
    + _ON_CONFLICT
)

# A user (a license and a user id; the platform license's rows form their own "license") is new in a period when it
# has an event in the period and none earlier in the table. The platform's figure counts every new pair, so it is
# the sum of every license's. "None earlier" is an EXISTS probe per user in the select list: PostgreSQL runs it
# as a subplan that stops at the first row of the (user_id, event_timestamp) index of each older partition (in
# WHERE, the planner may turn it into an anti-join that sorts every older event, which grows with the history),
# and, correlated on license_id, Citus runs it on the shard of the user's license. period_users keeps the licenses
# whose events in the period are all anonymous (a NULL user id, never new): they get new_users 0, not no row.
_PERIOD_USERS = """
period_users AS (
    SELECT pu.license_id, pu.user_id,
           pu.user_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM telemetry_events earlier
                            WHERE earlier.user_id = pu.user_id
                              AND earlier.license_id = pu.license_id
                              AND earlier.event_timestamp < :period_start) AS is_new
      FROM (SELECT DISTINCT license_id, user_id
              FROM telemetry_events
             WHERE event_timestamp >= :period_start AND event_timestamp < :period_end) AS pu
)"""

_ACQUISITION = (
    _UPSERT_COLUMNS
    + "WITH"
    + _PERIOD_USERS
    + """, per_license AS (
    SELECT license_id, count(*) FILTER (WHERE is_new) AS new_users
      FROM period_users
     GROUP BY license_id
)
SELECT 'new_users', 'acquisition', totals.new_users, NULL, :period_start, :period_end, :period_type,
       totals.license_id, '{}'::jsonb, :source, :computed_at, :computed_at
  FROM (SELECT license_id, new_users FROM per_license WHERE license_id <> :platform_license
         UNION ALL
        SELECT CAST(:platform_license AS bigint), coalesce(sum(new_users), 0) FROM per_license) AS totals
"""
    + _ON_CONFLICT
)

# Amounts are JSON numbers or numeric strings; anything else (and a currency that is not three letters)
# leaves the event out. The CASE guards the cast: filters may be evaluated in any order, CASE may not.
# Amounts of 10^15 or more are implausible and would overflow numeric(24,6) once summed. A currency's
# overall revenue is the sum of every license's (the platform's own included).
_REVENUE = (
    _UPSERT_COLUMNS
    + """
WITH per_license AS (
    SELECT license_id, currency, sum(amount) AS revenue
      FROM (SELECT license_id,
                   upper(payload ->> 'currency') AS currency,
                   CASE WHEN jsonb_typeof(payload -> 'amount') = 'number'
                          OR (jsonb_typeof(payload -> 'amount') = 'string'
                              AND payload ->> 'amount' ~ '^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]{1,3})?\\s*$')
                        THEN (payload ->> 'amount')::numeric
                   END AS amount
              FROM telemetry_events
             WHERE event_type = 'business_event'
               AND event_timestamp >= :period_start AND event_timestamp < :period_end
               AND payload ->> 'currency' ~ '^[A-Za-z]{3}$') AS amounts
     WHERE amount IS NOT NULL AND abs(amount) < 1e15
     GROUP BY license_id, currency
)
SELECT 'revenue', 'revenue', totals.revenue, totals.currency, :period_start, :period_end, :period_type,
       totals.license_id, jsonb_build_object('currency', totals.currency), :source, :computed_at, :computed_at
  FROM (SELECT license_id, currency, revenue FROM per_license WHERE license_id <> :platform_license
         UNION ALL
        SELECT CAST(:platform_license AS bigint), currency, sum(revenue) FROM per_license GROUP BY currency) AS totals
"""
    + _ON_CONFLICT
)

# The cohort of a day is its new users (the acquisition rule above, for that one day); its day-N
# retention is the share of them with an event of their license on day D+N (the platform's figure pools
# every license's cohort: its counts are the sums of every license's), again probed per user by EXISTS.
_RETENTION = (
    _UPSERT_COLUMNS
    + "WITH"
    + _PERIOD_USERS
    + """, checks AS (
    SELECT *
      FROM unnest(CAST(:offsets_days AS integer[]), CAST(:activity_starts AS timestamptz[]),
                  CAST(:activity_ends AS timestamptz[])) AS c (offset_days, activity_start, activity_end)
), per_license AS (
    SELECT cohort.license_id, checks.offset_days, count(*) AS cohort_users,
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM telemetry_events later
                                           WHERE later.user_id = cohort.user_id
                                             AND later.license_id = cohort.license_id
                                             AND later.event_timestamp >= checks.activity_start
                                             AND later.event_timestamp < checks.activity_end)) AS retained
      FROM period_users AS cohort
     CROSS JOIN checks
     WHERE cohort.is_new
     GROUP BY cohort.license_id, checks.offset_days
)
SELECT 'retention_d' || totals.offset_days, 'retention', round(totals.retained::numeric / totals.cohort_users, 6),
       NULL, :period_start, :period_end, :period_type, totals.license_id, '{}'::jsonb, :source, :computed_at, :computed_at
  FROM (SELECT license_id, offset_days, cohort_users, retained FROM per_license WHERE license_id <> :platform_license
         UNION ALL
        SELECT CAST(:platform_license AS bigint), offset_days, sum(cohort_users), sum(retained)
          FROM per_license
         GROUP BY offset_days) AS totals
"""
    + _ON_CONFLICT
)


def _upsert(session: Session, statement: str, params: Mapping[str, Any]) -> int:
    result = session.execute(text(statement), {"source": KPI_SOURCE, "platform_license": PLATFORM_LICENSE_ID, **params})
    return rows_affected(result)


def _period_params(period_type: str, start: datetime, end: datetime, computed_at: datetime) -> dict[str, Any]:
    return {"period_type": str(period_type), "period_start": start, "period_end": end, "computed_at": computed_at}


def upsert_engagement(session: Session, *, period_type: str, start: datetime, end: datetime, computed_at: datetime) -> int:
    """active_users, sessions and events_per_active_user of ``[start, end)``; returns rows written."""
    return _upsert(session, _ENGAGEMENT, _period_params(period_type, start, end, computed_at))


def upsert_acquisition(session: Session, *, period_type: str, start: datetime, end: datetime, computed_at: datetime) -> int:
    """new_users of ``[start, end)``; returns rows written."""
    return _upsert(session, _ACQUISITION, _period_params(period_type, start, end, computed_at))


def upsert_revenue(session: Session, *, period_type: str, start: datetime, end: datetime, computed_at: datetime) -> int:
    """revenue by currency of ``[start, end)`` from business events; returns rows written."""
    return _upsert(session, _REVENUE, _period_params(period_type, start, end, computed_at))


def upsert_retention(
    session: Session,
    *,
    cohort_start: datetime,
    cohort_end: datetime,
    offsets_days: Sequence[int],
    activity_windows: Sequence[tuple[datetime, datetime]],
    computed_at: datetime,
) -> int:
    """retention_dN of the daily cohort ``[cohort_start, cohort_end)`` for each N with its activity window."""
    if not offsets_days:
        return 0
    return _upsert(
        session,
        _RETENTION,
        {
            **_period_params("daily", cohort_start, cohort_end, computed_at),
            "offsets_days": list(offsets_days),
            "activity_starts": [start for start, _ in activity_windows],
            "activity_ends": [end for _, end in activity_windows],
        },
    )


# --- reads ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BusinessMetricRow:
    """One stored KPI value."""

    business_metric_id: int
    metric_name: str
    metric_category: str
    metric_value: Decimal
    currency: str | None
    period_type: str
    period_start: datetime
    period_end: datetime
    license_id: int | None
    dimensions: dict[str, Any]
    target_value: Decimal | None
    previous_value: Decimal | None
    source: str
    computed_at: datetime
    created_at: datetime
    """when the row was first stored"""
    updated_at: datetime
    """when it was last replaced (a KPI job's recomputation, an ingest retry with a new value)"""


@dataclass(frozen=True, slots=True)
class KpiSummaryRow:
    """The newest value of one KPI series (name, period type, license, dimensions) with the one before."""

    metric_name: str
    metric_category: str
    period_type: str
    license_id: int | None
    dimensions: dict[str, Any]
    currency: str | None
    period_start: datetime
    period_end: datetime
    metric_value: Decimal
    previous_value: Decimal | None
    change: Decimal | None
    change_pct: Decimal | None
    target_value: Decimal | None
    computed_at: datetime


def _license_condition(license_column: Any, *, license_id: int | None, overall_only: bool) -> ColumnElement[bool]:
    if license_id is not None:
        return license_column == license_id
    if overall_only:
        return license_column == PLATFORM_LICENSE_ID
    return true()


def business_metrics(
    session: Session,
    *,
    license_id: int | None,
    overall_only: bool = False,
    metric_name: str | None = None,
    metric_category: str | None = None,
    period_type: str | None = None,
    period_start_from: datetime | None = None,
    period_start_before: datetime | None = None,
    dimensions: Sequence[Sequence[Mapping[str, Any]]] = (),
    after: tuple[datetime, int] | None = None,
    limit: int,
) -> list[BusinessMetricRow]:
    """Stored KPI values, newest period first then newest row; ``after`` is the last (period_start, id) seen.

    ``license_id`` None reads every license and the platform-wide rows (admin), unless ``overall_only``.
    ``dimensions`` are containment conditions, ANDed; each is a list of alternative documents (``@>`` any).
    """
    bm = BusinessMetric
    conditions: list[ColumnElement[bool]] = [_license_condition(bm.license_id, license_id=license_id, overall_only=overall_only)]
    if metric_name is not None:
        conditions.append(bm.metric_name == metric_name)
    if metric_category is not None:
        conditions.append(bm.metric_category == metric_category)
    if period_type is not None:
        conditions.append(bm.period_type == period_type)
    if period_start_from is not None:
        conditions.append(bm.period_start >= period_start_from)
    if period_start_before is not None:
        conditions.append(bm.period_start < period_start_before)
    for alternatives in dimensions:
        conditions.append(or_(false(), *(bm.dimensions.contains(document) for document in alternatives)))
    if after is not None:
        conditions.append(tuple_(bm.period_start, bm.business_metric_id) < tuple_(*after))
    statement = (
        select(
            bm.business_metric_id,
            bm.metric_name,
            bm.metric_category,
            bm.metric_value,
            bm.currency,
            bm.period_type,
            bm.period_start,
            bm.period_end,
            bm.license_id,
            bm.dimensions,
            bm.target_value,
            bm.previous_value,
            bm.source,
            bm.computed_at,
            bm.created_at,
            bm.updated_at,
        )
        .where(and_(*conditions))
        .order_by(bm.period_start.desc(), bm.business_metric_id.desc())
        .limit(limit)
    )
    return [
        BusinessMetricRow(
            row.business_metric_id,
            row.metric_name,
            str(row.metric_category),
            row.metric_value,
            row.currency,
            str(row.period_type),
            row.period_start,
            row.period_end,
            row.license_id,
            row.dimensions,
            row.target_value,
            row.previous_value,
            row.source,
            row.computed_at,
            row.created_at,
            row.updated_at,
        )
        for row in session.execute(statement)
    ]


_KPI_VIEW = table(
    "business_metrics_kpi_summary",
    *(
        column(name)
        for name in (
            "metric_name",
            "metric_category",
            "period_type",
            "license_id",
            "dimensions",
            "currency",
            "period_start",
            "period_end",
            "metric_value",
            "previous_value",
            "change",
            "change_pct",
            "target_value",
            "computed_at",
        )
    ),
)


def kpi_summary(
    session: Session,
    *,
    license_id: int | None,
    overall_only: bool = False,
    metric_name: str | None = None,
    metric_category: str | None = None,
    period_type: str | None = None,
    limit: int,
    offset: int = 0,
) -> list[KpiSummaryRow]:
    """Rows of ``business_metrics_kpi_summary``, by category, name, period type, license (platform first)."""
    view = _KPI_VIEW.c
    conditions: list[ColumnElement[bool]] = [
        _license_condition(view.license_id, license_id=license_id, overall_only=overall_only)
    ]
    if metric_name is not None:
        conditions.append(view.metric_name == metric_name)
    if metric_category is not None:
        conditions.append(view.metric_category == metric_category)
    if period_type is not None:
        conditions.append(view.period_type == period_type)
    statement = (
        select(_KPI_VIEW)
        .where(and_(*conditions))
        .order_by(
            view.metric_category,
            view.metric_name,
            view.period_type,
            view.license_id.asc().nulls_first(),
            text("dimensions::text"),
        )
        .limit(limit)
        .offset(offset)
    )
    return [KpiSummaryRow(**row._mapping) for row in session.execute(statement)]
