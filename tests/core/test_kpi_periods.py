"""KPI periods: UTC boundaries of days, ISO weeks and months, the periods a range covers, and cohort days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from fernando_telemetry.core.enums import PeriodType
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.core.kpi_periods import (
    CohortCheck,
    Period,
    day_start,
    is_day_complete,
    kpi_period_type,
    parse_day,
    period_containing,
    periods_covering,
    recent_periods,
    retention_checks,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


class TestPeriodContaining:
    @pytest.mark.parametrize(
        ("period_type", "at", "start", "end", "label"),
        [
            ("daily", utc(2026, 11, 1, 0, 0), utc(2026, 11, 1), utc(2026, 11, 2), "2026-11-01"),
            ("daily", utc(2026, 11, 1, 23, 59, 59, 999_999), utc(2026, 11, 1), utc(2026, 11, 2), "2026-11-01"),
            ("daily", utc(2026, 12, 31, 12), utc(2026, 12, 31), utc(2027, 1, 1), "2026-12-31"),
            # Sunday belongs to the week that began on the Monday before
            ("weekly", utc(2026, 11, 8, 23), utc(2026, 11, 2), utc(2026, 11, 9), "2026-W45"),
            ("weekly", utc(2026, 11, 9, 0), utc(2026, 11, 9), utc(2026, 11, 16), "2026-W46"),
            # 2027-01-01 is a Friday of ISO week 53 of 2026, which spans the new year
            ("weekly", utc(2027, 1, 1, 8), utc(2026, 12, 28), utc(2027, 1, 4), "2026-W53"),
            # 2026-01-01 is a Thursday of ISO week 1 of 2026, which began in 2025
            ("weekly", utc(2026, 1, 1), utc(2025, 12, 29), utc(2026, 1, 5), "2026-W01"),
            ("monthly", utc(2026, 11, 30, 23, 59), utc(2026, 11, 1), utc(2026, 12, 1), "2026-11"),
            ("monthly", utc(2026, 12, 15), utc(2026, 12, 1), utc(2027, 1, 1), "2026-12"),
            ("monthly", utc(2028, 2, 29, 12), utc(2028, 2, 1), utc(2028, 3, 1), "2028-02"),
        ],
    )
    def test_boundaries_and_labels(self, period_type: str, at: datetime, start: datetime, end: datetime, label: str) -> None:
        """Each instant falls in the period whose UTC [start, end) holds it, named as people name it."""
        period = period_containing(period_type, at)
        assert (period.start, period.end, period.label) == (start, end, label)
        assert period.start <= at < period.end

    def test_an_instant_with_an_offset_is_placed_by_its_utc_day(self) -> None:
        """23:30 in New York on 1 November is already 2 November in UTC."""
        at = datetime(2026, 11, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
        assert period_containing("daily", at).first_day == date(2026, 11, 2)

    def test_a_day_can_be_given_instead_of_an_instant(self) -> None:
        """A date names its own UTC day."""
        assert period_containing("weekly", date(2026, 11, 4)).first_day == date(2026, 11, 2)

    def test_naive_instants_are_refused(self) -> None:
        """A datetime without a timezone is ambiguous and raises instead of guessing."""
        with pytest.raises(ValueError, match="timezone-aware"):
            period_containing("daily", datetime(2026, 11, 1, 12))

    @pytest.mark.parametrize("value", ["hourly", "yearly", ""])
    def test_only_daily_weekly_and_monthly_are_kpi_periods(self, value: str) -> None:
        """Hourly and unknown period types are refused with the allowed list."""
        with pytest.raises(InvalidInput, match="daily, weekly, monthly"):
            kpi_period_type(value)


class TestNeighbours:
    @pytest.mark.parametrize(
        ("period_type", "first_day", "previous", "following"),
        [
            ("daily", date(2026, 3, 1), date(2026, 2, 28), date(2026, 3, 2)),
            ("weekly", date(2026, 11, 2), date(2026, 10, 26), date(2026, 11, 9)),
            ("monthly", date(2026, 1, 1), date(2025, 12, 1), date(2026, 2, 1)),
            ("monthly", date(2026, 3, 1), date(2026, 2, 1), date(2026, 4, 1)),
        ],
    )
    def test_preceding_and_following(self, period_type: str, first_day: date, previous: date, following: date) -> None:
        """Neighbours start where this period's boundaries are, across month and year ends."""
        period = Period(PeriodType(period_type), first_day)
        assert period.preceding().first_day == previous and period.preceding().end == period.start
        assert period.following().first_day == following and period.following().start == period.end

    def test_recent_periods_are_the_previous_and_the_current(self) -> None:
        """On 3 January the recent months are December of the year before and January."""
        assert [p.label for p in recent_periods("monthly", utc(2027, 1, 3, 9))] == ["2026-12", "2027-01"]
        assert [p.label for p in recent_periods("daily", utc(2027, 1, 1, 0))] == ["2026-12-31", "2027-01-01"]

    def test_completeness_is_the_end_having_passed(self) -> None:
        """A period is complete from its end on, not a microsecond before."""
        day = period_containing("daily", utc(2026, 11, 1))
        assert not day.is_complete(utc(2026, 11, 1, 23, 59, 59, 999_999))
        assert day.is_complete(utc(2026, 11, 2))


class TestPeriodsCovering:
    @pytest.mark.parametrize(
        ("period_type", "first_day", "last_day", "labels"),
        [
            ("daily", date(2026, 11, 1), date(2026, 11, 1), ["2026-11-01"]),
            ("daily", date(2026, 11, 30), date(2026, 12, 2), ["2026-11-30", "2026-12-01", "2026-12-02"]),
            # Wednesday to the next Tuesday touches two ISO weeks
            ("weekly", date(2026, 11, 4), date(2026, 11, 10), ["2026-W45", "2026-W46"]),
            ("weekly", date(2026, 11, 2), date(2026, 11, 8), ["2026-W45"]),
            ("monthly", date(2026, 1, 31), date(2026, 2, 1), ["2026-01", "2026-02"]),
            ("monthly", date(2026, 11, 1), date(2027, 1, 1), ["2026-11", "2026-12", "2027-01"]),
        ],
    )
    def test_every_period_touching_the_days(self, period_type: str, first_day: date, last_day: date, labels: list[str]) -> None:
        """A range of days gives each period holding at least one of them, oldest first."""
        assert [p.label for p in periods_covering(period_type, first_day, last_day)] == labels

    def test_a_reversed_range_is_refused(self) -> None:
        """The last day before the first is an error, not an empty list."""
        with pytest.raises(InvalidInput, match="2026-11-01 is before the first day 2026-11-02"):
            periods_covering("daily", date(2026, 11, 2), date(2026, 11, 1))


class TestRetentionChecks:
    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            # the day itself is not over: nothing is final
            (utc(2026, 11, 10, 18), []),
            # the day is over: it decides day-1/7/30 of three older cohorts; its own cohort needs the next day over
            (utc(2026, 11, 11, 0, 5), [("2026-10-11", (30,)), ("2026-11-03", (7,)), ("2026-11-09", (1,))]),
            (utc(2026, 11, 12, 0), [("2026-10-11", (30,)), ("2026-11-03", (7,)), ("2026-11-09", (1,)), ("2026-11-10", (1,))]),
            # long after: the day's own cohort at every offset, too
            (utc(2027, 1, 1), [("2026-10-11", (30,)), ("2026-11-03", (7,)), ("2026-11-09", (1,)), ("2026-11-10", (1, 7, 30))]),
        ],
    )
    def test_values_a_day_decides(self, now: datetime, expected: list[tuple[str, tuple[int, ...]]]) -> None:
        """Processing 10 November computes exactly the cohort values whose activity day is over at ``now``."""
        checks = retention_checks(date(2026, 11, 10), now=now)
        assert [(check.cohort_day.isoformat(), check.offsets_days) for check in checks] == expected

    def test_activity_day_is_the_cohort_day_plus_the_offset(self) -> None:
        """Day-30 retention of the 1 December cohort looks at 31 December."""
        assert CohortCheck(date(2026, 12, 1), (30,)).activity_day(30) == date(2026, 12, 31)

    def test_day_completeness(self) -> None:
        """A UTC day is complete at the next midnight."""
        assert not is_day_complete(date(2026, 11, 1), utc(2026, 11, 1, 23, 59))
        assert is_day_complete(date(2026, 11, 1), utc(2026, 11, 2))
        assert day_start(date(2026, 11, 1)) == utc(2026, 11, 1)


class TestParseDay:
    def test_a_date_is_read(self) -> None:
        """YYYY-MM-DD is a day."""
        assert parse_day(" 2026-11-01 ", "--from") == date(2026, 11, 1)

    @pytest.mark.parametrize("value", ["2026-13-01", "yesterday", "2026-11-01T00:00:00Z", ""])
    def test_anything_else_names_the_parameter(self, value: str) -> None:
        """A bad date is an error that names the option and the expected form."""
        with pytest.raises(InvalidInput, match="--from .* is not a date: use YYYY-MM-DD"):
            parse_day(value, "--from")
