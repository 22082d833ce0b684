"""Job runs: record when a scheduled job starts and how it ends, and read back the last run of each.

The scheduler (and ``jobs run`` on the command line) calls ``record_start`` and ``record_end`` each in a
transaction of its own, so a job that fails, or whose own transaction rolled back, is still recorded.
Imports storage and core.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.storage import job_runs as job_run_store
from fernando_telemetry.storage.job_runs import JobRunRow

__all__ = [
    "MAX_TEXT_CHARS",
    "JobRunOutcome",
    "JobRunRow",
    "claim_start",
    "describe_error",
    "last_runs",
    "record_end",
    "record_start",
]

MAX_TEXT_CHARS = 2000
"""Longest summary or error kept; a job's text is for people, not a log."""


class JobRunOutcome(StrEnum):
    OK = "ok"
    SKIPPED = "skipped"
    """The job did not run: another server held its lock."""
    FAILED = "failed"


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line, short enough to store."""
    message = " ".join(str(exc).split())
    return _clip(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def record_start(session: Session, *, job_name: str, now: datetime) -> None:
    _check_name(job_name)
    job_run_store.record_start(session, job_name=job_name, started_at=now)


CLAIM_SLACK_SHARE = 0.05
CLAIM_SLACK_MAX_S = 1.0
"""How much earlier than a whole interval after the last start a claim is still granted (see ``claim_start``)."""


def claim_start(session: Session, *, job_name: str, now: datetime, interval_s: float) -> bool:
    """Claim this interval's run of ``job_name`` for the caller: true (and its start noted) unless any server
    started it less than ``interval_s`` (less a small slack) before ``now``. The servers' clocks are compared, so
    keep them in sync.

    The slack (5% of the interval, at most 1 s) absorbs one server's own jitter: its run's recorded start is read a
    little after its claim, and its next tick may read the wall clock a little early, so an exact comparison would
    refuse a lone server every other tick. Two servers' runs are still at least ``interval_s - slack`` apart."""
    _check_name(job_name)
    if interval_s <= 0:
        raise InvalidInput(f"interval_s must be above 0, got {interval_s}")
    slack_s = min(CLAIM_SLACK_MAX_S, interval_s * CLAIM_SLACK_SHARE)
    return job_run_store.claim_start(
        session, job_name=job_name, started_at=now, not_started_since=now - timedelta(seconds=interval_s - slack_s)
    )


def record_end(
    session: Session,
    *,
    job_name: str,
    started_at: datetime,
    now: datetime,
    outcome: JobRunOutcome,
    summary: str | None = None,
    error: str | None = None,
    duration_ms: float,
) -> None:
    """Store the end of the run that began at ``started_at``; ``now`` is when it ended."""
    _check_name(job_name)
    if duration_ms < 0:
        raise InvalidInput(f"duration_ms must not be negative, got {duration_ms}")
    job_run_store.record_end(
        session,
        job_name=job_name,
        started_at=started_at,
        finished_at=now,
        outcome=JobRunOutcome(outcome).value,
        summary=_clip(summary) if summary is not None else None,
        error=_clip(error) if error is not None else None,
        duration_ms=duration_ms,
    )


def last_runs(session: Session) -> list[JobRunRow]:
    """Every job that has run at least once here, by name; empty on a database without the table."""
    if not job_run_store.exists(session):
        return []
    return job_run_store.list_runs(session)


def _check_name(job_name: str) -> None:
    if not job_name or len(job_name) > 64:
        raise InvalidInput(f"a job name has 1 to 64 characters, got {job_name!r}")


def _clip(value: str) -> str:
    return value if len(value) <= MAX_TEXT_CHARS else value[: MAX_TEXT_CHARS - 3] + "..."
