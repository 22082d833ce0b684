"""Job runs: every scheduled run is recorded (start, end, outcome, counters) in transactions of its own,
failures included, by the scheduler, at server start and by ``jobs run`` on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.composition.jobs import Job, JobOutcome
from fernando_telemetry.composition.scheduler import Scheduler, run_and_record
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.services import job_runs, schema
from fernando_telemetry.services.job_runs import JobRunOutcome
from fernando_telemetry.storage.database import make_engine, session_factory

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A wall clock and a monotonic clock that move together, only when told."""

    def __init__(self) -> None:
        self.now = T0
        self.mono = 100.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono


@pytest.fixture(scope="module")
def job_db_url(database_factory: Callable[[], str]) -> str:
    url = database_factory()
    engine = make_engine(url, pool_size=1)
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture()
def sessions(job_db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(job_db_url, pool_size=2)
    factory = session_factory(engine)
    with factory.begin() as session:
        session.execute(text("DELETE FROM job_runs"))
    yield factory
    engine.dispose()


def _runs(sessions: sessionmaker[Session]) -> dict[str, job_runs.JobRunRow]:
    with sessions() as session:
        return {run.job_name: run for run in job_runs.last_runs(session)}


def _ok(_sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
    return JobOutcome(ran=True, summary=f"did the work at {now:%H:%M}")


def _skipped(_sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
    return JobOutcome(ran=False, summary="skipped, running elsewhere")


def _broken(_sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
    raise RuntimeError("disk\nfull")


class TestService:
    def test_start_then_end_counts_runs_and_failures(self, sessions: sessionmaker[Session]) -> None:
        """A start leaves the previous outcome in place; each end counts a run, and a failed end a failure."""
        with sessions.begin() as session:
            job_runs.record_start(session, job_name="retention", now=T0)
        run = _runs(sessions)["retention"]
        assert (run.last_started_at, run.last_finished_at, run.last_outcome, run.runs) == (T0, None, None, 0)
        with sessions.begin() as session:
            job_runs.record_end(
                session, job_name="retention", started_at=T0, now=T0 + timedelta(seconds=2), outcome=JobRunOutcome.OK,
                summary="done", duration_ms=2000.0,
            )  # fmt: skip
            job_runs.record_start(session, job_name="retention", now=T0 + timedelta(hours=1))
        run = _runs(sessions)["retention"]
        assert run.last_outcome == "ok" and run.last_summary == "done" and run.last_started_at == T0 + timedelta(hours=1)
        with sessions.begin() as session:
            job_runs.record_end(
                session, job_name="retention", started_at=T0 + timedelta(hours=1), now=T0 + timedelta(hours=1, seconds=1),
                outcome=JobRunOutcome.FAILED, error="RuntimeError: boom", duration_ms=1000.0,
            )  # fmt: skip
        run = _runs(sessions)["retention"]
        assert (run.last_outcome, run.last_error, run.last_summary, run.runs, run.failures) == (
            "failed",
            "RuntimeError: boom",
            None,
            2,
            1,
        )
        assert run.last_finished_at == T0 + timedelta(hours=1, seconds=1) and run.last_duration_ms == 1000.0

    def test_long_texts_are_clipped_and_bad_input_refused(self, sessions: sessionmaker[Session]) -> None:
        """Summaries are kept to MAX_TEXT_CHARS; an empty name or a negative duration is refused."""
        with sessions.begin() as session:
            job_runs.record_end(
                session, job_name="kpis", started_at=T0, now=T0, outcome=JobRunOutcome.OK, summary="x" * 5000, duration_ms=0.0
            )
            with pytest.raises(InvalidInput):
                job_runs.record_start(session, job_name="", now=T0)
            with pytest.raises(InvalidInput):
                job_runs.record_end(session, job_name="kpis", started_at=T0, now=T0, outcome=JobRunOutcome.OK, duration_ms=-1.0)
        summary = _runs(sessions)["kpis"].last_summary
        assert summary is not None and len(summary) == job_runs.MAX_TEXT_CHARS and summary.endswith("...")

    def test_describe_error_is_one_line(self) -> None:
        """An exception becomes ``Type: message`` on one line."""
        assert job_runs.describe_error(RuntimeError("disk\nfull")) == "RuntimeError: disk full"
        assert job_runs.describe_error(KeyError()) == "KeyError"


class TestRunAndRecord:
    def test_a_job_that_works_is_recorded_ok_with_its_duration(self, sessions: sessionmaker[Session]) -> None:
        """Outcome ok, the job's summary, the start it was given as ``now`` and the duration of the monotonic clock."""
        clock = FakeClock()

        def takes_three_seconds(job_sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
            clock.advance(3.0)
            return _ok(job_sessions, now)

        outcome = run_and_record(sessions, Job("rollups", 60, takes_three_seconds), clock=clock.wall, monotonic=clock.monotonic)
        assert outcome == JobOutcome(ran=True, summary="did the work at 12:00")
        run = _runs(sessions)["rollups"]
        assert (run.last_outcome, run.last_summary, run.last_error, run.runs, run.failures) == (
            "ok",
            "did the work at 12:00",
            None,
            1,
            0,
        )
        assert run.last_started_at == T0
        assert run.last_finished_at == T0 + timedelta(seconds=3)
        assert run.last_duration_ms == pytest.approx(3000.0)

    def test_a_skipped_job_is_recorded_skipped(self, sessions: sessionmaker[Session]) -> None:
        """A job that found its lock taken is a run with outcome skipped, not a failure."""
        run_and_record(sessions, Job("kpis", 60, _skipped))
        run = _runs(sessions)["kpis"]
        assert (run.last_outcome, run.runs, run.failures) == ("skipped", 1, 0)

    def test_a_failing_job_is_recorded_and_its_error_raised(self, sessions: sessionmaker[Session]) -> None:
        """The failure is stored with its error in its own transaction, then raised to the caller."""
        with pytest.raises(RuntimeError, match="disk"):
            run_and_record(sessions, Job("retention", 60, _broken))
        run = _runs(sessions)["retention"]
        assert (run.last_outcome, run.last_error, run.runs, run.failures) == ("failed", "RuntimeError: disk full", 1, 1)

    def test_a_job_whose_transaction_rolled_back_is_still_recorded(self, sessions: sessionmaker[Session]) -> None:
        """The job's own writes roll back with its failure; the record of the run does not."""

        def writes_then_fails(job_sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
            with job_sessions.begin() as session:
                session.execute(text("INSERT INTO licenses (name) VALUES ('rolled back')"))
                session.execute(text("SELECT 1 / 0"))
            return JobOutcome(ran=True, summary="unreachable")

        with pytest.raises(Exception, match="division by zero"):
            run_and_record(sessions, Job("partition_upkeep", 60, writes_then_fails))
        with sessions() as session:
            assert session.execute(text("SELECT count(*) FROM licenses WHERE name = 'rolled back'")).scalar_one() == 0
        run = _runs(sessions)["partition_upkeep"]
        assert run.last_outcome == "failed" and "division by zero" in (run.last_error or "")

    def test_an_unreachable_database_costs_the_record_not_the_run(self, caplog: pytest.LogCaptureFixture) -> None:
        """With no database to record in, the job still runs and its outcome is returned; the lost record is logged."""
        engine = make_engine("postgresql://postgres@127.0.0.1:9/nowhere", pool_size=1, connect_timeout_s=1)
        try:
            outcome = run_and_record(session_factory(engine), Job("host_metrics", 15, _ok))
        finally:
            engine.dispose()
        assert outcome.ran
        assert "could not record a run of job host_metrics" in caplog.text


class TestScheduler:
    def test_run_once_records_every_outcome_and_keeps_going(self, sessions: sessionmaker[Session]) -> None:
        """The scheduler's runs land in job_runs: the failing job counts its failures, the others their runs."""
        clock = FakeClock()
        scheduled = [Job("ok", 1, _ok), Job("broken", 1, _broken), Job("skipped", 1, _skipped)]
        scheduler = Scheduler(sessions, scheduled, clock=clock.wall, monotonic=clock.monotonic)
        for _ in range(2):
            for job in scheduled:
                scheduler.run_once(job)
        found = _runs(sessions)
        assert (found["ok"].runs, found["ok"].failures, found["ok"].last_outcome) == (2, 0, "ok")
        assert (found["broken"].runs, found["broken"].failures, found["broken"].last_outcome) == (2, 2, "failed")
        assert (found["skipped"].runs, found["skipped"].last_outcome) == (2, "skipped")
        assert scheduler.failures["broken"] == 2 and scheduler.runs["ok"] == 2


class TestOnceAcrossServers:
    def test_two_schedulers_run_a_shared_job_once_per_interval(self, sessions: sessionmaker[Session]) -> None:
        """Two schedulers (two servers) on one database whose ticks fall apart: a ``once_across_servers`` job runs
        once per interval between them; the other server's tick in that interval is claimed elsewhere and not run."""
        calls: list[str] = []

        def counted(server: str) -> Callable[[sessionmaker[Session], datetime], JobOutcome]:
            def run(job_sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
                calls.append(server)
                return _ok(job_sessions, now)

            return run

        clock = FakeClock()
        job_a = Job("kpis", 10, counted("a"), once_across_servers=True)
        job_b = Job("kpis", 10, counted("b"), once_across_servers=True)
        first = Scheduler(sessions, [job_a], clock=clock.wall, monotonic=clock.monotonic)
        second = Scheduler(sessions, [job_b], clock=clock.wall, monotonic=clock.monotonic)
        for _ in range(3):
            first.run_once(job_a)
            clock.advance(4)  # the second server's timer is 4 s behind the first's
            second.run_once(job_b)
            clock.advance(6)
        assert calls == ["a", "a", "a"]
        assert second.claimed_elsewhere["kpis"] == 3
        assert _runs(sessions)["kpis"].runs == 3  # a tick claimed elsewhere leaves no run behind
        clock.advance(10)
        second.run_once(job_b)  # the first server is gone: the second takes over at its next tick
        assert calls[-1] == "b"

    def test_a_job_of_every_server_is_not_claimed(self, sessions: sessionmaker[Session]) -> None:
        """Without ``once_across_servers`` (host metrics, the dispatcher) each server runs every tick."""
        clock = FakeClock()
        servers = [Scheduler(sessions, [Job("host_metrics", 10, _ok)], clock=clock.wall, monotonic=clock.monotonic) for _ in "ab"]
        for scheduler in servers:
            scheduler.run_once(Job("host_metrics", 10, _ok))
        assert [scheduler.runs["host_metrics"] for scheduler in servers] == [1, 1]

    def test_claim_start_refuses_inside_the_interval(self, sessions: sessionmaker[Session]) -> None:
        """The claim is refused while the last start is less than an interval old (less its 1 s slack, which absorbs
        one server's own jitter), granted from then on."""
        with sessions.begin() as session:
            assert job_runs.claim_start(session, job_name="retention", now=T0, interval_s=60)
            assert not job_runs.claim_start(session, job_name="retention", now=T0 + timedelta(seconds=30), interval_s=60)
            assert not job_runs.claim_start(session, job_name="retention", now=T0 + timedelta(seconds=58.9), interval_s=60)
            assert job_runs.claim_start(session, job_name="retention", now=T0 + timedelta(seconds=59.2), interval_s=60)
            # a short interval's slack is 5% of it: 0.1 s of 2 s
            assert job_runs.claim_start(session, job_name="rollups", now=T0, interval_s=2)
            assert not job_runs.claim_start(session, job_name="rollups", now=T0 + timedelta(seconds=1.85), interval_s=2)
            assert job_runs.claim_start(session, job_name="rollups", now=T0 + timedelta(seconds=1.95), interval_s=2)
            with pytest.raises(InvalidInput):
                job_runs.claim_start(session, job_name="retention", now=T0, interval_s=0)


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "fernando_telemetry", *args], env=env, capture_output=True, text=True, timeout=120
    )


class TestCommandLine:
    def test_jobs_run_is_recorded_and_listed(self, sessions: sessionmaker[Session], job_db_url: str) -> None:
        """``jobs run partition_upkeep`` runs the job, records it, and ``jobs list`` shows the run."""
        result = _cli("jobs", "run", "partition_upkeep", database_url=job_db_url)
        assert result.returncode == 0, result.stderr
        assert "partition upkeep" in result.stdout
        run = _runs(sessions)["partition_upkeep"]
        assert (run.last_outcome, run.runs, run.failures) == ("ok", 1, 0)
        assert run.last_summary is not None and run.last_summary.strip() == result.stdout.strip()
        listed = _cli("jobs", "list", database_url=job_db_url)
        assert listed.returncode == 0, listed.stderr
        line = next(line for line in listed.stdout.splitlines() if "partition_upkeep" in line)
        assert " ok " in line
        assert "never" in next(line for line in listed.stdout.splitlines() if "retention" in line)

    def test_an_unknown_job_is_one_line(self, job_db_url: str) -> None:
        """A name that is not a job: one line naming the jobs there are, exit 1."""
        result = _cli("jobs", "run", "vacuum", database_url=job_db_url)
        assert result.returncode == 1
        assert "no job named 'vacuum'" in result.stderr
        assert "partition_upkeep, retention" in result.stderr  # the names there are, sorted
        assert len(result.stderr.strip().splitlines()) == 1

    def test_jobs_run_refuses_a_database_without_the_schema(self, database_factory: Callable[[], str]) -> None:
        """On an empty database the job is not run: one line says to migrate first."""
        result = _cli("jobs", "run", "retention", database_url=database_factory())
        assert result.returncode == 1
        assert "run 'fernando-telemetry db upgrade'" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
