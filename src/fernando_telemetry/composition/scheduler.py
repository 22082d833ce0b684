"""Background threads, one per job, that run each job at its interval inside the server process.

A thread per job means a slow run (a notification dispatch waiting on a slow receiver, a long rollup
backfill) never delays the others. A failing job is logged and retried at its next tick; it never stops
the others. Every run is recorded in
``job_runs`` (start, end, outcome), each record in a transaction of its own. The clock is injected.

Several servers on one database each run this scheduler. A ``once_across_servers`` job's tick first claims its
interval in ``job_runs`` (refused when any server started the job less than an interval ago), so the job runs once
per interval across all of them, not once per interval per server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.composition.jobs import Job, JobOutcome
from fernando_telemetry.services import job_runs
from fernando_telemetry.services.job_runs import JobRunOutcome

__all__ = ["Scheduler", "run_and_record"]

logger = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def run_and_record(
    sessions: sessionmaker[Session],
    job: Job,
    *,
    clock: Callable[[], datetime] = _utc_now,
    monotonic: Callable[[], float] = time.monotonic,
) -> JobOutcome:
    """Run ``job`` once and record its start and its end in ``job_runs``, each in a short transaction of its
    own; a failure is recorded, then raised again. A record that cannot be written is logged, never raised."""
    started_at = clock()
    _record(sessions, job.name, lambda session: job_runs.record_start(session, job_name=job.name, now=started_at))
    began = monotonic()

    def record_end(outcome: JobRunOutcome, *, summary: str | None = None, error: str | None = None) -> None:
        duration_ms, ended_at = (monotonic() - began) * 1000.0, clock()
        _record(
            sessions,
            job.name,
            lambda session: job_runs.record_end(
                session,
                job_name=job.name,
                started_at=started_at,
                now=ended_at,
                outcome=outcome,
                summary=summary,
                error=error,
                duration_ms=duration_ms,
            ),
        )

    try:
        outcome = job.run(sessions, started_at)
    except Exception as exc:
        record_end(JobRunOutcome.FAILED, error=job_runs.describe_error(exc))
        raise
    record_end(JobRunOutcome.OK if outcome.ran else JobRunOutcome.SKIPPED, summary=outcome.summary)
    return outcome


def _record(sessions: sessionmaker[Session], job_name: str, write: Callable[[Session], None]) -> None:
    try:
        with sessions.begin() as session:
            write(session)
    except Exception as exc:  # the database may be what failed the job: the run goes on, the record is lost
        logger.warning("could not record a run of job %s: %s", job_name, job_runs.describe_error(exc))


class Scheduler:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        jobs: list[Job],
        *,
        clock: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._jobs = jobs
        self._clock = clock
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_run_at: dict[str, float] = {}
        self.runs: dict[str, int] = {job.name: 0 for job in jobs}
        self.failures: dict[str, int] = {job.name: 0 for job in jobs}
        self.claimed_elsewhere: dict[str, int] = {job.name: 0 for job in jobs}

    def start(self) -> None:
        if self._threads:
            return
        self._threads = [
            threading.Thread(target=self._loop, args=(job,), name=f"fernando-telemetry-job-{job.name}", daemon=True)
            for job in self._jobs
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        deadline = self._monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._monotonic()))
        self._threads = []

    def mark_ran(self, name: str) -> None:
        """Record that ``name`` just ran outside the loop (at start-up), so its next run waits an interval."""
        self._last_run_at[name] = self._monotonic()

    def run_once(self, job: Job) -> None:
        self.mark_ran(job.name)
        if job.once_across_servers and not self._claim(job):
            # another server ran this interval's tick: without the claim, N servers whose timers are apart would
            # each take the job's (free) advisory lock in turn and run it N times an interval
            self.claimed_elsewhere[job.name] += 1
            logger.debug("job %s: this interval's run was claimed by another server", job.name)
            return
        try:
            outcome = run_and_record(self._sessions, job, clock=self._clock, monotonic=self._monotonic)
            self.runs[job.name] += 1
            logger.info("%s", outcome.summary)
        except Exception:
            self.failures[job.name] += 1
            logger.exception("job %s failed; it runs again at its next interval", job.name)

    def _claim(self, job: Job) -> bool:
        try:
            with self._sessions.begin() as session:
                return job_runs.claim_start(session, job_name=job.name, now=self._clock(), interval_s=job.interval_s)
        except Exception as exc:  # the database may be down: run anyway, so the failure is counted and recorded
            logger.warning("could not claim a run of job %s: %s", job.name, job_runs.describe_error(exc))
            return True

    def _loop(self, job: Job) -> None:
        due = self._last_run_at.get(job.name, self._monotonic() - job.interval_s) + job.interval_s
        while not self._stop.is_set():
            if self._monotonic() >= due:
                self.run_once(job)
                due = self._monotonic() + job.interval_s
            self._stop.wait(max(0.05, min(5.0, due - self._monotonic())))
