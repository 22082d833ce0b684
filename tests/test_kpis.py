"""Business KPIs: values computed from a small hand-made fixture against hand-computed figures, reruns,
the scheduler job, the backfill command, and the read endpoints with their tenant scoping.

The fixture (all times UTC, ``A`` a Monday about seven weeks ago, L1/L2 two licenses):

| # | user | license | when | session | type, payload |
|---|---|---|---|---|---|
| 11 | u4 | L2 | A-1 15:00 | s8 | |
| 1, 2 | u1 | L1 | A 09:00, 09:05 | s1 | |
| 3 | u1 | L1 | A 09:10 | s1 | business, amount 10.5 EUR (number) |
| 15 | u1 | L1 | A 09:20 | s1 | business, amount "abc" EUR (ignored) |
| 16 | u1 | L1 | A 09:30 | s1 | business, amount 99, no currency (ignored) |
| 13 | (none) | L1 | A 12:00 | s10 | |
| 14 | u5 | (none) | A 13:00 | s11 | |
| 12 | u4 | L2 | A 15:00 | s9 | business, amount "4.50" eur (string) |
| 7 | u2 | L1 | A 23:59:59.999999 | s5 | |
| 9 | u3 | L2 | A+1 00:00 | s7 | |
| 10 | u3 | L2 | A+1 00:30 | s7 | business, amount "20" usd |
| 4 | u1 | L1 | A+1 10:00 | s2 | |
| 18 | u4 | L1 | A+1 11:00 | s12 | |
| 8 | u2 | L1 | A+2 12:00 | s6 | |
| 5 | u1 | L1 | A+7 08:00 | s3 | |
| 17 | u1 | L1 | A+7 08:30 | s3 | business, amount -2.5 EUR (a refund) |
| 19 | u3 | L2 | A+8 09:00 | s13 | |
| 20 | u4 | L2 | A+8 10:00 | s14 | |
| 6 | u1 | L1 | A+30 12:00 | s4 | |
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from fernando_telemetry.composition import jobs
from fernando_telemetry.core.enums import EventType, PeriodType
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.core.kpi_periods import Period, day_start, period_containing
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.services import kpis
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import BusinessMetric
from tests.helpers import add_event, add_license, add_user
from tests.ingest_fixtures import Tenant, admin_key, make_tenant

D = Decimal


def _anchor_monday(today: date) -> date:
    """A Monday 45 to 51 days ago: its day +30 is over, and the shared database has partitions for day -1."""
    day = today - timedelta(days=45)
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class Fixture:
    a: date
    l1: int
    l2: int

    def at(self, days: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
        return day_start(self.a + timedelta(days=days)) + timedelta(
            hours=hour, minutes=minute, seconds=second, microseconds=micro
        )

    def daily(self, days: int) -> Period:
        return period_containing(PeriodType.DAILY, self.a + timedelta(days=days))


@pytest.fixture()
def fixture(session: Session) -> Fixture:
    """The events of the module docstring, in the test's rolled-back transaction."""
    a = _anchor_monday(datetime.now(UTC).date())
    l1, l2 = add_license(session, "L1").license_id, add_license(session, "L2").license_id
    suffix = uuid.uuid4().hex[:6]
    users = {name: f"{name}-{suffix}" for name in ("u1", "u2", "u3", "u4", "u5")}
    # a user is a (license, user id) pair: u4 of L2 and u4 of L1 are two users; u5 sends rows of the platform license
    for name, license_id in (("u1", l1), ("u2", l1), ("u3", l2), ("u4", l2), ("u4", l1), ("u5", PLATFORM_LICENSE_ID)):
        add_user(session, users[name], license_id=license_id)
    fx = Fixture(a, l1, l2)
    business = EventType.BUSINESS_EVENT
    rows: list[tuple[str | None, int, datetime, str, dict[str, Any] | None]] = [
        ("u4", l2, fx.at(-1, 15), "s8", None),
        ("u1", l1, fx.at(0, 9), "s1", None),
        ("u1", l1, fx.at(0, 9, 5), "s1", None),
        ("u1", l1, fx.at(0, 9, 10), "s1", {"amount": 10.5, "currency": "EUR"}),
        ("u1", l1, fx.at(0, 9, 20), "s1", {"amount": "abc", "currency": "EUR"}),
        ("u1", l1, fx.at(0, 9, 30), "s1", {"amount": 99}),
        (None, l1, fx.at(0, 12), "s10", None),
        ("u5", PLATFORM_LICENSE_ID, fx.at(0, 13), "s11", None),
        ("u4", l2, fx.at(0, 15), "s9", {"amount": "4.50", "currency": "eur"}),
        ("u2", l1, fx.at(0, 23, 59, 59, 999_999), "s5", None),
        ("u3", l2, fx.at(1), "s7", None),
        ("u3", l2, fx.at(1, 0, 30), "s7", {"amount": "20", "currency": "usd"}),
        ("u1", l1, fx.at(1, 10), "s2", None),
        ("u4", l1, fx.at(1, 11), "s12", None),
        ("u2", l1, fx.at(2, 12), "s6", None),
        ("u1", l1, fx.at(7, 8), "s3", None),
        ("u1", l1, fx.at(7, 8, 30), "s3", {"amount": -2.5, "currency": "EUR"}),
        ("u3", l2, fx.at(8, 9), "s13", None),
        ("u4", l2, fx.at(8, 10), "s14", None),
        ("u1", l1, fx.at(30, 12), "s4", None),
    ]
    for user, license_id, at, session_id, payload in rows:
        add_event(
            session,
            at=at,
            user_id=users[user] if user else None,
            license_id=license_id,
            session_id=f"{session_id}-{suffix}",
            event_type=business if payload is not None else EventType.USER_ACTION,
            event_name="purchase" if payload is not None else "page_view",
            payload=payload or {},
        )
    return fx


def stored(
    session: Session, period: Period, *, metric_name: str | None = None
) -> dict[tuple[str, int | None, str | None], Decimal]:
    """The kpi_job rows of one period: (metric_name, license_id, currency) -> value."""
    rows = session.execute(
        text(
            "SELECT metric_name, license_id, currency, metric_value FROM business_metrics "
            "WHERE source = 'kpi_job' AND period_type = :type AND period_start = :start "
            "AND (CAST(:name AS text) IS NULL OR metric_name = :name)"
        ),
        {"type": str(period.period_type), "start": period.start, "name": metric_name},
    ).all()
    return {(name, license_id, currency): value for name, license_id, currency, value in rows}


def late_now(fx: Fixture) -> datetime:
    """An instant after every fixture day, so every retention value is final."""
    return fx.at(40, 6)


class TestEngagementAndAcquisition:
    def test_daily_values_of_day_a_match_the_hand_computed_ones(self, session: Session, fixture: Fixture) -> None:
        """Day A: active users, sessions, events per active user and new users per license and overall."""
        fx = fixture
        kpis.compute_period(session, period=fx.daily(0), now=late_now(fx))
        values = stored(session, fx.daily(0))
        l1, l2 = fx.l1, fx.l2
        expected = {
            # L1: u1, u2; sessions s1, s5, s10 (anonymous); 6 events by users
            ("active_users", l1, None): D(2),
            ("sessions", l1, None): D(3),
            ("events_per_active_user", l1, None): D(3),
            # L2: u4 only (its first event was on A-1, so not new)
            ("active_users", l2, None): D(1),
            ("sessions", l2, None): D(1),
            ("events_per_active_user", l2, None): D(1),
            # overall adds u5 (no license): 4 users, 5 sessions, 8 events by users
            ("active_users", PLATFORM_LICENSE_ID, None): D(4),
            ("sessions", PLATFORM_LICENSE_ID, None): D(5),
            ("events_per_active_user", PLATFORM_LICENSE_ID, None): D(2),
            ("new_users", l1, None): D(2),
            ("new_users", l2, None): D(0),
            ("new_users", PLATFORM_LICENSE_ID, None): D(3),
            ("revenue", l1, "EUR"): D("10.5"),
            ("revenue", l2, "EUR"): D("4.5"),
            ("revenue", PLATFORM_LICENSE_ID, "EUR"): D(15),
        }
        assert {key: value for key, value in values.items() if not key[0].startswith("retention")} == expected

    def test_a_user_id_new_to_a_license_is_a_new_user_there_and_overall(self, session: Session, fixture: Fixture) -> None:
        """Day A+1: u4 of L1 is new (u4 of L2, seen on A-1, is another user), and u3 of L2: two new users overall;
        the first instant of a day belongs to it."""
        fx = fixture
        kpis.compute_period(session, period=fx.daily(1), now=late_now(fx))
        values = stored(session, fx.daily(1))
        assert values[("new_users", fx.l1, None)] == 1
        assert values[("new_users", fx.l2, None)] == 1
        assert values[("new_users", PLATFORM_LICENSE_ID, None)] == 2
        assert values[("active_users", fx.l2, None)] == 1  # u3 at 00:00:00 exactly
        assert values[("events_per_active_user", PLATFORM_LICENSE_ID, None)] == D("1.333333")  # 4 events / 3 users
        assert values[("revenue", PLATFORM_LICENSE_ID, "USD")] == 20
        assert ("revenue", PLATFORM_LICENSE_ID, "EUR") not in values

    def test_weekly_values_cover_the_iso_week_monday_to_sunday(self, session: Session, fixture: Fixture) -> None:
        """The week of A (Monday A to Sunday A+6) against hand-computed figures, refunds netted."""
        fx = fixture
        week = period_containing(PeriodType.WEEKLY, fx.a)
        assert week.start == day_start(fx.a) and week.end == day_start(fx.a + timedelta(days=7))
        kpis.compute_period(session, period=week, now=late_now(fx))
        values = stored(session, week)
        l1, l2 = fx.l1, fx.l2
        assert values == {
            ("active_users", l1, None): D(3),
            ("sessions", l1, None): D(6),
            ("events_per_active_user", l1, None): D(3),
            ("active_users", l2, None): D(2),
            ("sessions", l2, None): D(2),
            ("events_per_active_user", l2, None): D("1.5"),
            # overall: six (license, user) pairs, u4 of L1 and u4 of L2 being two; 13 events by users
            ("active_users", PLATFORM_LICENSE_ID, None): D(6),
            ("sessions", PLATFORM_LICENSE_ID, None): D(9),
            ("events_per_active_user", PLATFORM_LICENSE_ID, None): D("2.166667"),
            ("new_users", l1, None): D(3),
            ("new_users", l2, None): D(1),
            ("new_users", PLATFORM_LICENSE_ID, None): D(5),
            ("revenue", l1, "EUR"): D("10.5"),
            ("revenue", l2, "EUR"): D("4.5"),
            ("revenue", l2, "USD"): D(20),
            ("revenue", PLATFORM_LICENSE_ID, "EUR"): D(15),
            ("revenue", PLATFORM_LICENSE_ID, "USD"): D(20),
        }
        refund_week = period_containing(PeriodType.WEEKLY, fx.a + timedelta(days=7))
        kpis.compute_period(session, period=refund_week, now=late_now(fx))
        assert stored(session, refund_week, metric_name="revenue") == {
            ("revenue", l1, "EUR"): D("-2.5"),
            ("revenue", PLATFORM_LICENSE_ID, "EUR"): D("-2.5"),
        }

    def test_monthly_period_runs_from_the_first_to_the_last_instant_of_the_month(self, session: Session) -> None:
        """A month counts an event at its first instant and at its last microsecond, not one at the next month's first."""
        today = datetime.now(UTC).date()
        first = (today.replace(day=1) - timedelta(days=40)).replace(day=1)
        month = period_containing(PeriodType.MONTHLY, first)
        license_id = add_license(session, "monthly").license_id
        instants = (month.start, month.end - timedelta(microseconds=1), month.end)
        for index, at in enumerate(instants):
            user_id = add_user(session, f"m{index}-{uuid.uuid4().hex[:6]}", license_id=license_id).user_id
            add_event(session, at=at, user_id=user_id, license_id=license_id, session_id=user_id)
        kpis.compute_period(session, period=month, now=datetime.now(UTC))
        values = stored(session, month)
        assert values[("active_users", license_id, None)] == 2
        assert values[("new_users", license_id, None)] == 2

    def test_an_empty_period_has_zero_platform_figures_and_no_license_rows(self, session: Session) -> None:
        """With no events at all, the platform-wide active users, sessions and new users are stored as 0."""
        day = period_containing(PeriodType.DAILY, datetime.now(UTC).date() - timedelta(days=100))
        kpis.compute_period(session, period=day, now=datetime.now(UTC))
        assert stored(session, day) == {
            ("active_users", PLATFORM_LICENSE_ID, None): 0,
            ("sessions", PLATFORM_LICENSE_ID, None): 0,
            ("new_users", PLATFORM_LICENSE_ID, None): 0,
        }

    def test_a_license_with_only_anonymous_events_has_zero_new_users(self, session: Session) -> None:
        """A license whose events of a period name no user gets new_users 0 (as active_users), not no row."""
        day = period_containing(PeriodType.DAILY, datetime.now(UTC).date() - timedelta(days=101))
        license_id = add_license(session, "anonymous only").license_id
        add_event(session, at=day.start + timedelta(hours=3), license_id=license_id, session_id="anon")
        kpis.compute_period(session, period=day, now=datetime.now(UTC))
        values = stored(session, day)
        assert values[("active_users", license_id, None)] == 0
        assert values[("new_users", license_id, None)] == 0
        assert values[("new_users", PLATFORM_LICENSE_ID, None)] == 0


class TestRetention:
    def test_cohort_of_day_a_and_the_cohort_day_a_decides(self, session: Session, fixture: Fixture) -> None:
        """Processing day A stores cohort A's day-1/7/30 retention and cohort A-1's day-1 retention."""
        fx = fixture
        kpis.compute_period(session, period=fx.daily(0), now=late_now(fx))
        third = D("0.333333")
        # cohort A: L1 {u1, u2}, overall {u1, u2, u5}; u1 comes back on A+1, A+7 and A+30, nobody else does
        assert stored(session, fx.daily(0), metric_name="retention_d1") == {
            ("retention_d1", fx.l1, None): D("0.5"),
            ("retention_d1", PLATFORM_LICENSE_ID, None): third,
        }
        assert stored(session, fx.daily(0), metric_name="retention_d7") == {
            ("retention_d7", fx.l1, None): D("0.5"),
            ("retention_d7", PLATFORM_LICENSE_ID, None): third,
        }
        assert stored(session, fx.daily(0), metric_name="retention_d30") == {
            ("retention_d30", fx.l1, None): D("0.5"),
            ("retention_d30", PLATFORM_LICENSE_ID, None): third,
        }
        # cohort A-1: u4 in L2 (and overall), back on A in L2
        assert stored(session, fx.daily(-1)) == {("retention_d1", fx.l2, None): 1, ("retention_d1", PLATFORM_LICENSE_ID, None): 1}

    def test_activity_in_another_license_does_not_retain_a_license_cohort(self, session: Session, fixture: Fixture) -> None:
        """Cohort A+1: u4 of L1 is never back (u4 of L2 is another user), so L1 keeps 0; u3 is back on A+8 in L2;
        the platform's cohort is both, half of it back on day 7."""
        fx = fixture
        kpis.compute_period(session, period=fx.daily(1), now=late_now(fx))
        values = stored(session, fx.daily(1))
        assert {key: value for key, value in values.items() if key[0].startswith("retention")} == {
            ("retention_d1", fx.l1, None): 0,
            ("retention_d7", fx.l1, None): 0,
            ("retention_d30", fx.l1, None): 0,
            ("retention_d1", fx.l2, None): 0,
            ("retention_d7", fx.l2, None): 1,
            ("retention_d30", fx.l2, None): 0,
            ("retention_d1", PLATFORM_LICENSE_ID, None): 0,
            ("retention_d7", PLATFORM_LICENSE_ID, None): D("0.5"),
            ("retention_d30", PLATFORM_LICENSE_ID, None): 0,
        }

    def test_a_value_is_only_stored_once_its_day_is_over(self, session: Session, fixture: Fixture) -> None:
        """At A+3 noon cohort A has its day-1 value only: days A+7 and A+30 are not over yet."""
        fx = fixture
        kpis.compute_period(session, period=fx.daily(0), now=fx.at(3, 12))
        names = {key[0] for key in stored(session, fx.daily(0))}
        assert "retention_d1" in names and "retention_d7" not in names and "retention_d30" not in names

    def test_processing_the_decisive_day_fills_in_older_cohorts(self, session: Session, fixture: Fixture) -> None:
        """Processing day A+7 alone stores cohort A's day-7 value, as the recurring job does the day after."""
        fx = fixture
        kpis.compute_period(session, period=fx.daily(7), now=fx.at(8, 0, 5))
        assert stored(session, fx.daily(0)) == {
            ("retention_d7", fx.l1, None): D("0.5"),
            ("retention_d7", PLATFORM_LICENSE_ID, None): D("0.333333"),
        }


class TestIdempotency:
    def test_a_rerun_replaces_values_and_keeps_the_same_rows(self, session: Session, fixture: Fixture) -> None:
        """Computing the same periods twice leaves the same rows (same ids, same count), with the later computed_at."""
        fx = fixture
        week = period_containing(PeriodType.WEEKLY, fx.a)
        query = text(
            "SELECT business_metric_id, metric_name, license_id, currency, period_type, period_start, metric_value, source "
            "FROM business_metrics ORDER BY business_metric_id"
        )
        first_now, second_now = late_now(fx), late_now(fx) + timedelta(hours=1)
        outcomes = [kpis.compute_period(session, period=period, now=first_now) for period in (fx.daily(0), week)]
        before = session.execute(query).all()
        again = [kpis.compute_period(session, period=period, now=second_now) for period in (fx.daily(0), week)]
        after = session.execute(query).all()
        assert before == after and len(after) == sum(outcome.rows for outcome in outcomes) == sum(
            outcome.rows for outcome in again
        )
        assert session.execute(text("SELECT DISTINCT computed_at FROM business_metrics")).scalars().all() == [second_now]

    def test_late_data_changes_the_value_on_the_next_run(self, session: Session, fixture: Fixture) -> None:
        """An event arriving after a run is counted by the next run of the same period, in place."""
        fx = fixture
        kpis.compute_period(session, period=fx.daily(2), now=late_now(fx))
        assert stored(session, fx.daily(2))[("active_users", fx.l1, None)] == 1
        user_id = session.execute(
            text("SELECT user_id FROM users WHERE user_id LIKE 'u1-%' AND license_id = :l"), {"l": fx.l1}
        ).scalar_one()
        add_event(session, at=fx.at(2, 18), user_id=user_id, license_id=fx.l1, session_id="late")
        kpis.compute_period(session, period=fx.daily(2), now=late_now(fx))
        assert stored(session, fx.daily(2))[("active_users", fx.l1, None)] == 2


class TestPeriodsToCompute:
    def test_recent_periods_skip_those_retention_has_started_to_drop(self, session: Session) -> None:
        """With 4 days of events kept, the previous week and month are not recomputed from what is left of them."""
        now = datetime(2026, 11, 4, 10, tzinfo=UTC)  # a Wednesday
        outcomes = kpis.compute_recent(session, now=now, events_retention_days=4)
        assert [outcome.period.label for outcome in outcomes] == ["2026-11-03", "2026-11-04", "2026-W45", "2026-11"]

    def test_backfill_refuses_reversed_future_and_expired_ranges(self) -> None:
        """A backfill names the problem: to before from, from in the future, a period older than retention keeps."""
        now = datetime(2026, 11, 4, 10, tzinfo=UTC)
        plan = dict(now=now, events_retention_days=90)
        with pytest.raises(InvalidInput, match="before the first day"):
            kpis.backfill_periods(period_types=["daily"], first_day=date(2026, 11, 2), last_day=date(2026, 11, 1), **plan)
        with pytest.raises(InvalidInput, match="in the future"):
            kpis.backfill_periods(period_types=["daily"], first_day=date(2026, 11, 5), last_day=date(2026, 11, 6), **plan)
        with pytest.raises(InvalidInput, match="monthly period 2026-08 starts before 2026-08-07.*events retention: 90 days"):
            kpis.backfill_periods(period_types=["monthly"], first_day=date(2026, 8, 10), last_day=date(2026, 8, 11), **plan)
        periods = kpis.backfill_periods(
            period_types=["weekly"], first_day=date(2026, 10, 28), last_day=date(2026, 12, 31), **plan
        )
        assert [period.label for period in periods] == ["2026-W44", "2026-W45"]  # clipped at today


class TestJob:
    def test_the_job_computes_the_recent_periods_and_a_second_run_changes_nothing(self, committed_engine: Engine) -> None:
        """One run stores today's, this week's and this month's figures of a license; a rerun keeps the same rows."""
        tenant = make_tenant(committed_engine)
        sessions = session_factory(committed_engine)
        now = datetime.now(UTC)
        event_at = now - timedelta(seconds=1)
        with sessions.begin() as session:
            for index in range(3):
                add_event(session, at=event_at, user_id=tenant.user_id, license_id=tenant.license_id, session_id=f"s{index}")
        run = jobs.kpi_run(Settings())
        outcome = run(sessions, now)
        assert outcome.ran and outcome.summary.startswith("kpis: ")
        query = text(
            "SELECT business_metric_id, period_type, period_start, metric_name, metric_value FROM business_metrics "
            "WHERE license_id = :license ORDER BY business_metric_id"
        )
        with sessions() as session:
            first = session.execute(query, {"license": tenant.license_id}).all()
        by_period = {(row.period_type, row.metric_name): (row.period_start, row.metric_value) for row in first}
        for period_type in ("daily", "weekly", "monthly"):
            period = period_containing(period_type, event_at)
            assert by_period[(period_type, "active_users")] == (period.start, 1)
            assert by_period[(period_type, "sessions")] == (period.start, 3)
            assert by_period[(period_type, "new_users")] == (period.start, 1)
        assert run(sessions, now + timedelta(minutes=15)).ran
        with sessions() as session:
            assert session.execute(query, {"license": tenant.license_id}).all() == first

    def test_the_job_is_scheduled_at_its_interval_unless_turned_off(self) -> None:
        """The KPI job runs every 15 minutes by default; an interval of 0 leaves it out."""
        intervals = {job.name: job.interval_s for job in jobs.default_jobs(Settings())}
        assert intervals["kpis"] == 900
        assert "kpis" not in {job.name for job in jobs.default_jobs(Settings(kpi_interval_s=0))}


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "fernando_telemetry", *args], env=env, capture_output=True, text=True, timeout=120
    )


class TestBackfillCommand:
    def test_a_backfill_writes_each_period_once_however_often_it_runs(self, committed_engine: Engine, committed_url: str) -> None:
        """``kpis compute --from --to`` stores one row per KPI and day; running it again leaves the same rows."""
        tenant = make_tenant(committed_engine)
        today = datetime.now(UTC).date()
        first = today - timedelta(days=3)
        with session_factory(committed_engine).begin() as session:
            for days in range(3):
                add_event(
                    session,
                    at=day_start(first + timedelta(days=days)) + timedelta(hours=12),
                    user_id=tenant.user_id,
                    license_id=tenant.license_id,
                    session_id=f"s{days}",
                )
        query = text(
            "SELECT business_metric_id, period_start, metric_value FROM business_metrics "
            "WHERE license_id = :license AND metric_name = 'active_users' AND period_type = 'daily' ORDER BY period_start"
        )
        args = (
            "kpis",
            "compute",
            "--period",
            "daily",
            "--from",
            first.isoformat(),
            "--to",
            (first + timedelta(days=2)).isoformat(),
        )
        result = _cli(*args, database_url=committed_url)
        assert result.returncode == 0, result.stderr
        assert f"computed 3 periods ({first.isoformat()}..{(first + timedelta(days=2)).isoformat()})" in result.stdout
        with committed_engine.connect() as connection:
            rows = connection.execute(query, {"license": tenant.license_id}).all()
        assert [(row.period_start, row.metric_value) for row in rows] == [
            (day_start(first + timedelta(days=d)), 1) for d in range(3)
        ]
        assert _cli(*args, database_url=committed_url).returncode == 0
        with committed_engine.connect() as connection:
            assert connection.execute(query, {"license": tenant.license_id}).all() == rows

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("--from", "2026-11-05", "--to", "2026-11-01"), "error: --to 2026-11-01 is before --from 2026-11-05"),
            (("--from", "2026-02-30", "--to", "2026-03-01"), "error: --from '2026-02-30' is not a date: use YYYY-MM-DD"),
            (
                (
                    "--from",
                    "2026-11-01",
                ),
                "error: give both --from and --to",
            ),
            (
                (
                    "--period",
                    "hourly",
                ),
                "error: period 'hourly' is not one of daily, weekly, monthly",
            ),
            (("--from", "2000-01-01", "--to", "2000-01-02"), "events retention: 90 days"),
        ],
    )
    def test_bad_arguments_are_one_line_errors(self, args: tuple[str, ...], message: str, committed_url: str) -> None:
        """Bad dates, a reversed range, a lone --from, an unknown period, a range older than retention: one line, exit 1."""
        result = _cli("kpis", "compute", *args, database_url=committed_url)
        assert result.returncode == 1
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- read API -----------------------------------------------------------------------------------------


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Stored:
    """Two tenants with KPI rows named after a unique marker, and a platform-wide row."""

    marker: str
    mine: Tenant
    other: Tenant
    admin: str
    base: datetime


@pytest.fixture()
def stored_kpis(committed_engine: Engine) -> Stored:
    """Daily ``<marker>_users`` 10, 12, 15 for one tenant on three days (two rows on the last day: the row with
    dimensions {"plan": "pro"} too), 99 for the other tenant, 500 platform-wide; weekly revenue in EUR and USD."""
    mine, other = make_tenant(committed_engine), make_tenant(committed_engine)
    marker = f"k{uuid.uuid4().hex[:8]}"
    base = day_start(datetime.now(UTC).date() - timedelta(days=10))
    rows: list[dict[str, Any]] = []
    for days, value in ((0, 10), (1, 12), (2, 15)):
        rows.append(
            {
                "metric_name": f"{marker}_users",
                "metric_category": "user_engagement",
                "metric_value": value,
                "period_type": "daily",
                "period_start": base + timedelta(days=days),
                "license_id": mine.license_id,
            }
        )
    rows.append(
        {
            "metric_name": f"{marker}_users",
            "metric_category": "user_engagement",
            "metric_value": 7,
            "period_type": "daily",
            "period_start": base + timedelta(days=2),
            "license_id": mine.license_id,
            "dimensions": {"plan": "pro", "day": 7},
        }
    )
    rows.append(
        {
            "metric_name": f"{marker}_users",
            "metric_category": "user_engagement",
            "metric_value": 99,
            "period_type": "daily",
            "period_start": base + timedelta(days=2),
            "license_id": other.license_id,
        }
    )
    rows.append(
        {
            "metric_name": f"{marker}_users",
            "metric_category": "user_engagement",
            "metric_value": 500,
            "period_type": "daily",
            "period_start": base + timedelta(days=2),
            "license_id": None,
        }
    )
    for currency, value in (("EUR", "10.5"), ("USD", "20")):
        rows.append(
            {
                "metric_name": f"{marker}_revenue",
                "metric_category": "revenue",
                "metric_value": D(value),
                "currency": currency,
                "period_type": "weekly",
                "period_start": base,
                "license_id": mine.license_id,
                "dimensions": {"currency": currency},
            }
        )
    with session_factory(committed_engine).begin() as session:
        for row in rows:
            period_start = row["period_start"]
            period_end = period_start + timedelta(days=7 if row["period_type"] == "weekly" else 1)
            session.add(BusinessMetric(**{"dimensions": {}, **row, "period_end": period_end, "source": "kpi_job"}))
    return Stored(marker, mine, other, admin_key(committed_engine), base)


def _values(response: Any) -> list[tuple[Any, ...]]:
    assert response.status_code == 200, response.text
    return [(item["license_id"], item["metric_value"], item["dimensions"]) for item in response.json()["business_metrics"]]


class TestBusinessMetricsApi:
    def test_a_license_key_reads_only_its_license(self, client: TestClient, stored_kpis: Stored) -> None:
        """A license key sees its own rows, never the other license's nor the platform-wide ones."""
        s = stored_kpis
        response = client.get(
            "/api/v1/business-metrics", params={"metric_name": f"{s.marker}_users"}, headers=_auth(s.mine.read_key)
        )
        assert sorted(_values(response), key=str) == sorted(
            [
                (s.mine.license_id, 15.0, {}),
                (s.mine.license_id, 7.0, {"plan": "pro", "day": 7}),
                (s.mine.license_id, 12.0, {}),
                (s.mine.license_id, 10.0, {}),
            ],
            key=str,
        )
        rows = response.json()["business_metrics"]
        assert all(datetime.fromisoformat(row["updated_at"]) >= datetime.fromisoformat(row["created_at"]) for row in rows)

    def test_other_licenses_and_platform_totals_are_forbidden_to_license_keys(
        self, client: TestClient, stored_kpis: Stored
    ) -> None:
        """Asking for another license, or for overall=true, with a license key is a 403."""
        s = stored_kpis
        for params in ({"license_id": s.other.license_id}, {"overall": "true"}):
            response = client.get("/api/v1/business-metrics", params=params, headers=_auth(s.mine.read_key))
            assert response.status_code == 403, params
            assert client.get("/api/v1/kpis", params=params, headers=_auth(s.mine.read_key)).status_code == 403

    def test_an_admin_reads_everything_one_license_or_the_platform_rows(self, client: TestClient, stored_kpis: Stored) -> None:
        """An admin key sees all three scopes, and narrows to one license or to the platform-wide rows."""
        s = stored_kpis
        name = {"metric_name": f"{s.marker}_users"}
        everything = _values(client.get("/api/v1/business-metrics", params=name, headers=_auth(s.admin)))
        assert {license_id for license_id, _, _ in everything} == {s.mine.license_id, s.other.license_id, PLATFORM_LICENSE_ID}
        other = _values(
            client.get("/api/v1/business-metrics", params={**name, "license_id": s.other.license_id}, headers=_auth(s.admin))
        )
        assert other == [(s.other.license_id, 99.0, {})]
        overall = _values(client.get("/api/v1/business-metrics", params={**name, "overall": "true"}, headers=_auth(s.admin)))
        assert overall == [(PLATFORM_LICENSE_ID, 500.0, {})]

    def test_filters_narrow_by_category_period_time_and_dimensions(self, client: TestClient, stored_kpis: Stored) -> None:
        """Category, period type, [from, to) on period_start, and dimension containment (text or JSON number) all apply."""
        s, headers = stored_kpis, _auth(stored_kpis.mine.read_key)

        def get(**params: Any) -> list[tuple[Any, ...]]:
            return _values(client.get("/api/v1/business-metrics", params=params, headers=headers))

        revenue = get(metric_category="revenue", metric_name=f"{s.marker}_revenue")
        assert sorted(value for _, value, _ in revenue) == [10.5, 20.0]
        assert get(metric_name=f"{s.marker}_revenue", period_type="daily") == []
        assert get(**{"metric_name": f"{s.marker}_revenue", "dimensions.currency": "EUR"}) == [
            (s.mine.license_id, 10.5, {"currency": "EUR"})
        ]
        day_1 = (s.base + timedelta(days=1)).isoformat()
        day_2 = (s.base + timedelta(days=2)).isoformat()
        assert get(**{"metric_name": f"{s.marker}_users", "from": day_1, "to": day_2}) == [(s.mine.license_id, 12.0, {})]
        assert get(**{"metric_name": f"{s.marker}_users", "dimensions.day": "7", "dimensions.plan": "pro"}) == [
            (s.mine.license_id, 7.0, {"plan": "pro", "day": 7})
        ]

    def test_keyset_pages_cover_every_row_once_across_equal_period_starts(self, client: TestClient, stored_kpis: Stored) -> None:
        """Pages of 1 walk the 6 visible rows (two share a period_start) newest first, each once, and end with a null cursor."""
        s, headers = stored_kpis, _auth(stored_kpis.admin)
        params: dict[str, Any] = {"metric_name": f"{s.marker}_users", "limit": 1}
        full = client.get("/api/v1/business-metrics", params={**params, "limit": 100}, headers=headers).json()["business_metrics"]
        assert len(full) == 6
        seen, cursor = [], None
        while True:
            body = client.get(
                "/api/v1/business-metrics", params={**params, **({"cursor": cursor} if cursor else {})}, headers=headers
            ).json()
            seen += body["business_metrics"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == full
        assert [row["period_start"] for row in seen] == sorted((row["period_start"] for row in seen), reverse=True)
        first = client.get("/api/v1/business-metrics", params=params, headers=headers).json()["next_cursor"]
        response = client.get(
            "/api/v1/business-metrics", params={**params, "cursor": first, "metric_category": "revenue"}, headers=headers
        )
        assert response.status_code == 400 and "other filters" in response.json()["error"]["message"]

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"from": "yesterday"}, "from"),
            ({"metric_category": "vibes"}, "metric_category"),
            ({"period_type": "yearly"}, "period_type"),
            ({"limit": "0"}, "limit"),
            ({"overall": "maybe"}, "overall"),
            ({"metrc_name": "x"}, "metrc_name"),
            ({"cursor": "garbage"}, "cursor"),
            ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
        ],
    )
    def test_bad_parameters_are_400s_naming_the_parameter(
        self, client: TestClient, stored_kpis: Stored, params: dict[str, str], field: str
    ) -> None:
        """A malformed, unknown or out-of-range parameter is a 400 whose details name it."""
        response = client.get("/api/v1/business-metrics", params=params, headers=_auth(stored_kpis.mine.read_key))
        assert response.status_code == 400, response.text
        assert response.json()["error"]["details"][0]["field"] == field

    def test_a_key_is_required(self, client: TestClient) -> None:
        """Without a key both KPI routes answer 401."""
        assert client.get("/api/v1/business-metrics").status_code == 401
        assert client.get("/api/v1/kpis").status_code == 401


class TestKpiSummaryApi:
    def test_the_newest_value_with_the_previous_one_and_the_change(self, client: TestClient, stored_kpis: Stored) -> None:
        """The license's daily series ends at 15 after 12: change 3, +25%; the dimensioned series has no previous value."""
        s = stored_kpis
        response = client.get("/api/v1/kpis", params={"metric_name": f"{s.marker}_users"}, headers=_auth(s.mine.read_key))
        assert response.status_code == 200, response.text
        rows = {(row["license_id"], tuple(sorted(row["dimensions"]))): row for row in response.json()["kpis"]}
        assert set(rows) == {(s.mine.license_id, ()), (s.mine.license_id, ("day", "plan"))}
        plain = rows[(s.mine.license_id, ())]
        assert (plain["metric_value"], plain["previous_value"], plain["change"], plain["change_pct"]) == (15.0, 12.0, 3.0, 25.0)
        assert plain["period_start"].startswith((s.base + timedelta(days=2)).date().isoformat())
        assert rows[(s.mine.license_id, ("day", "plan"))]["previous_value"] is None

    def test_filters_and_scopes_apply_to_the_view(self, client: TestClient, stored_kpis: Stored) -> None:
        """Category and period type filter the view; an admin reads one license, or the platform rows only."""
        s = stored_kpis
        revenue = client.get(
            "/api/v1/kpis", params={"metric_category": "revenue", "period_type": "weekly"}, headers=_auth(s.mine.read_key)
        ).json()
        assert sorted(
            (row["currency"], row["metric_value"]) for row in revenue["kpis"] if row["metric_name"] == f"{s.marker}_revenue"
        ) == [("EUR", 10.5), ("USD", 20.0)]
        assert all(row["metric_category"] == "revenue" and row["period_type"] == "weekly" for row in revenue["kpis"])
        admin = _auth(s.admin)
        other = client.get(
            "/api/v1/kpis", params={"metric_name": f"{s.marker}_users", "license_id": s.other.license_id}, headers=admin
        ).json()
        assert [(row["license_id"], row["metric_value"]) for row in other["kpis"]] == [(s.other.license_id, 99.0)]
        overall = client.get("/api/v1/kpis", params={"metric_name": f"{s.marker}_users", "overall": "true"}, headers=admin).json()
        assert [(row["license_id"], row["metric_value"]) for row in overall["kpis"]] == [(PLATFORM_LICENSE_ID, 500.0)]

    def test_offset_pages(self, client: TestClient, stored_kpis: Stored) -> None:
        """limit and offset page through the view's rows; the last page has no next_offset."""
        s, admin = stored_kpis, _auth(stored_kpis.admin)
        params = {"metric_name": f"{s.marker}_users"}
        full = client.get("/api/v1/kpis", params=params, headers=admin).json()
        assert len(full["kpis"]) == 4 and full["next_offset"] is None
        first = client.get("/api/v1/kpis", params={**params, "limit": 3}, headers=admin).json()
        second = client.get("/api/v1/kpis", params={**params, "limit": 3, "offset": first["next_offset"]}, headers=admin).json()
        assert first["next_offset"] == 3 and second["next_offset"] is None
        assert first["kpis"] + second["kpis"] == full["kpis"]
