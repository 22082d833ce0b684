"""One background thread that runs each job at its interval, inside the server process.

A failing job is logged and retried at its next tick; it never stops the others. The clock is injected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.jobs import Job

__all__ = ["Scheduler"]

logger = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
        self._thread: threading.Thread | None = None
        self._last_run_at: dict[str, float] = {}
        self.runs: dict[str, int] = {job.name: 0 for job in jobs}
        self.failures: dict[str, int] = {job.name: 0 for job in jobs}

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="fernando-telemetry-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def mark_ran(self, name: str) -> None:
        """Record that ``name`` just ran outside the loop (at start-up), so its next run waits an interval."""
        self._last_run_at[name] = self._monotonic()

    def run_once(self, job: Job) -> None:
        self.mark_ran(job.name)
        try:
            outcome = job.run(self._sessions, self._clock())
            self.runs[job.name] += 1
            logger.info("%s", outcome.summary)
        except Exception:
            self.failures[job.name] += 1
            logger.exception("job %s failed; it runs again at its next interval", job.name)

    def _loop(self) -> None:
        due = {job.name: self._last_run_at.get(job.name, self._monotonic() - job.interval_s) + job.interval_s for job in self._jobs}
        while not self._stop.is_set():
            for job in self._jobs:
                if self._stop.is_set():
                    return
                if self._monotonic() >= due[job.name]:
                    self.run_once(job)
                    due[job.name] = self._monotonic() + job.interval_s
            next_due = min(due.values(), default=self._monotonic() + 60)
            self._stop.wait(max(0.05, min(5.0, next_due - self._monotonic())))
