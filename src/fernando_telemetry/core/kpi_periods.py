"""KPI periods as pure values: daily, weekly (ISO weeks, Monday start) and monthly boundaries in UTC,
and the day arithmetic of retention cohorts. Imports nothing but the standard library and core.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from fernando_telemetry.core.enums import PeriodType
from fernando_telemetry.core.errors import InvalidInput

__all__ = [
    "KPI_PERIOD_TYPES",
    "RETENTION_OFFSETS_DAYS",
    "CohortCheck",
    "Period",
    "day_start",
    "is_day_complete",
    "kpi_period_type",
    "parse_day",
    "period_containing",
    "periods_covering",
    "recent_periods",
    "retention_checks",
]

KPI_PERIOD_TYPES: tuple[PeriodType, ...] = (PeriodType.DAILY, PeriodType.WEEKLY, PeriodType.MONTHLY)
RETENTION_OFFSETS_DAYS: tuple[int, ...] = (1, 7, 30)


def day_start(day: date) -> datetime:
    """UTC midnight at the start of ``day``."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def _utc_day(at: datetime) -> date:
    if at.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return at.astimezone(UTC).date()


def _first_day(period_type: PeriodType, day: date) -> date:
    if period_type == PeriodType.DAILY:
        return day
    if period_type == PeriodType.WEEKLY:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_first_day(period_type: PeriodType, first_day: date) -> date:
    if period_type == PeriodType.DAILY:
        return first_day + timedelta(days=1)
    if period_type == PeriodType.WEEKLY:
        return first_day + timedelta(days=7)
    return date(first_day.year + 1, 1, 1) if first_day.month == 12 else date(first_day.year, first_day.month + 1, 1)


@dataclass(frozen=True, slots=True)
class Period:
    """One KPI period ``[start, end)`` in UTC; build it with ``period_containing``."""

    period_type: PeriodType
    first_day: date

    @property
    def end_day(self) -> date:
        """The first day after the period."""
        return _next_first_day(self.period_type, self.first_day)

    @property
    def start(self) -> datetime:
        return day_start(self.first_day)

    @property
    def end(self) -> datetime:
        return day_start(self.end_day)

    @property
    def label(self) -> str:
        """How people name the period: ``2026-11-02``, ``2026-W45`` (ISO week) or ``2026-11``."""
        if self.period_type == PeriodType.DAILY:
            return self.first_day.isoformat()
        if self.period_type == PeriodType.WEEKLY:
            year, week, _ = self.first_day.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.first_day:%Y-%m}"

    def is_complete(self, now: datetime) -> bool:
        """Whether the period has ended at ``now``."""
        return self.end <= now

    def following(self) -> Period:
        return Period(self.period_type, self.end_day)

    def preceding(self) -> Period:
        return Period(self.period_type, _first_day(self.period_type, self.first_day - timedelta(days=1)))


def kpi_period_type(value: str | PeriodType) -> PeriodType:
    """The period type of a KPI computation; hourly KPIs are not computed."""
    try:
        period_type = PeriodType(value)
    except ValueError:
        period_type = None
    if period_type not in KPI_PERIOD_TYPES:
        allowed = ", ".join(p.value for p in KPI_PERIOD_TYPES)
        raise InvalidInput(f"period {str(value)!r} is not one of {allowed}")
    return period_type


def period_containing(period_type: PeriodType | str, at: datetime | date) -> Period:
    """The daily, weekly or monthly period that contains the instant or UTC day ``at``."""
    kind = kpi_period_type(period_type)
    day = _utc_day(at) if isinstance(at, datetime) else at
    return Period(kind, _first_day(kind, day))


def periods_covering(period_type: PeriodType | str, first_day: date, last_day: date) -> list[Period]:
    """Every period holding at least one day of ``[first_day, last_day]`` (both included), oldest first."""
    if last_day < first_day:
        raise InvalidInput(f"the last day {last_day} is before the first day {first_day}")
    periods = [period_containing(period_type, first_day)]
    while periods[-1].end_day <= last_day:
        periods.append(periods[-1].following())
    return periods


def recent_periods(period_type: PeriodType | str, now: datetime) -> list[Period]:
    """The previous and the current period at ``now``: what a recurring job recomputes for late data."""
    current = period_containing(period_type, now)
    return [current.preceding(), current]


def is_day_complete(day: date, now: datetime) -> bool:
    """Whether the UTC ``day`` has ended at ``now``."""
    return day_start(day + timedelta(days=1)) <= now


@dataclass(frozen=True, slots=True)
class CohortCheck:
    """Retention of the cohort of ``cohort_day`` (users first seen that day) ``offsets_days`` days later."""

    cohort_day: date
    offsets_days: tuple[int, ...]

    def activity_day(self, offset_days: int) -> date:
        """The day whose activity decides retention at ``offset_days``."""
        return self.cohort_day + timedelta(days=offset_days)


def retention_checks(
    day: date, *, now: datetime, offsets_days: tuple[int, ...] = RETENTION_OFFSETS_DAYS
) -> list[CohortCheck]:
    """The retention values that processing ``day`` (re)computes, each only once its activity day is complete.

    Two kinds: the cohort of ``day`` itself at every offset whose day ``day + N`` is over (what a backfill
    of old days needs), and the cohorts ``day - N`` whose day-N value this day decides, once ``day`` is over
    (what the recurring job needs to pick up, each day, the values that just became final).
    """
    wanted: dict[date, set[int]] = {}
    for offset in offsets_days:
        if offset < 1:
            raise ValueError(f"retention offsets are at least 1 day, got {offset}")
        if is_day_complete(day + timedelta(days=offset), now):
            wanted.setdefault(day, set()).add(offset)
        if is_day_complete(day, now):
            wanted.setdefault(day - timedelta(days=offset), set()).add(offset)
    return [CohortCheck(cohort_day, tuple(sorted(offsets))) for cohort_day, offsets in sorted(wanted.items())]


def parse_day(value: str, parameter: str) -> date:
    """A ``YYYY-MM-DD`` day given as ``parameter``; a clear error naming it otherwise."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{parameter} {value!r} is not a date: use YYYY-MM-DD") from None
