"""The in-process scheduler and its jobs, run against a real database."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.composition import jobs
from fernando_telemetry.composition.jobs import Job, JobOutcome
from fernando_telemetry.composition.scheduler import Scheduler
from fernando_telemetry.services import schema
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import make_engine, session_factory


@pytest.fixture()
def sessions(database_factory: Callable[[], str]):  # type: ignore[no-untyped-def]
    engine = make_engine(database_factory(), pool_size=2)
    schema.upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


class TestJobs:
    def test_partition_upkeep_job_uses_settings_and_injected_time(self, sessions: sessionmaker[Session]) -> None:
        """The upkeep job creates the window of its settings around the ``now`` it is given."""
        settings = Settings(partitions_days_back=0, partitions_days_ahead=7)
        outcome = jobs.partition_upkeep(settings)(sessions, datetime(2030, 1, 1, 5, tzinfo=UTC))
        assert outcome.ran
        assert "2030-01-01..2030-01-08: created 24" in outcome.summary
        with sessions() as session:
            assert session.execute(text("SELECT to_regclass('traces_p20300108') IS NOT NULL")).scalar_one()

    def test_a_job_running_elsewhere_is_skipped(self, sessions: sessionmaker[Session]) -> None:
        """While another connection holds the job's lock, the job skips its tick instead of running twice."""
        with sessions() as holder:
            holder.execute(text("SELECT pg_advisory_lock(hashtextextended('fernando_telemetry.job:retention', 0))"))
            outcome = jobs.retention_run(Settings())(sessions, datetime.now(UTC))
            holder.execute(text("SELECT pg_advisory_unlock_all()"))
        assert outcome == JobOutcome(ran=False, summary="retention: skipped, running elsewhere")
        assert jobs.retention_run(Settings())(sessions, datetime.now(UTC)).ran


class TestScheduler:
    def test_runs_each_job_at_its_interval_and_survives_failures(self, sessions: sessionmaker[Session]) -> None:
        """A failing job is counted and retried; the other job keeps its own rhythm; stop ends the thread."""
        calls: list[str] = []

        def ok(_sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
            calls.append("ok")
            return JobOutcome(ran=True, summary="ok")

        def broken(_sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
            calls.append("broken")
            raise RuntimeError("boom")

        scheduler = Scheduler(sessions, [Job("ok", 0.1, ok), Job("broken", 0.1, broken)])
        scheduler.mark_ran("ok")  # ran at start-up: its first scheduled run waits one interval
        scheduler.start()
        time.sleep(0.65)
        scheduler.stop()
        assert scheduler.failures["broken"] >= 3
        assert scheduler.runs["ok"] >= 3
        assert calls[0] == "broken"
        count = len(calls)
        time.sleep(0.3)
        assert len(calls) == count  # stopped means stopped


class TestHostMetrics:
    def test_host_metrics_job_records_the_servers_own_figures(self, sessions: sessionmaker[Session]) -> None:
        """One run stores CPU, memory, disk and network samples of this host, with sane values."""
        from fernando_telemetry.services import partitions as partition_service

        now = datetime.now(UTC)
        with sessions.begin() as session:
            partition_service.upkeep(session, now=now, days_back=0, days_ahead=7)
        outcome = jobs.host_metrics_run(Settings())(sessions, now)
        assert outcome.ran
        with sessions() as session:
            rows = dict(
                session.execute(
                    text("SELECT metric_name, value FROM system_metrics WHERE service_name = 'fernando-telemetry'")
                ).all()
            )
        assert {
            "host.cpu.utilization",
            "host.memory.used",
            "host.disk.utilization",
            "host.network.sent",
            "process.memory.rss",
        } <= set(rows)
        assert 0 <= rows["host.cpu.utilization"] <= 100
        assert rows["host.memory.used"] > 0
        assert 0 < rows["host.disk.utilization"] <= 100
        assert rows["process.memory.rss"] > 10_000_000  # this Python process holds more than 10 MB

    def test_the_collector_can_be_turned_off(self) -> None:
        """An interval of 0 leaves the collector out of the scheduler's jobs."""
        assert "host_metrics" in {job.name for job in jobs.default_jobs(Settings())}
        assert "host_metrics" not in {job.name for job in jobs.default_jobs(Settings(host_metrics_interval_s=0))}
