"""``job_runs`` in SQL: one row per scheduled job with its last start, last end, outcome and counters.

Each write is a single upsert, so the caller can record a run in a transaction of its own that is as
short as one statement. Imports nothing of the project (its SQL names the
``job_runs`` table).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["JobRunRow", "claim_start", "exists", "list_runs", "record_end", "record_start"]


@dataclass(frozen=True)
class JobRunRow:
    job_name: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: str | None
    last_summary: str | None
    last_error: str | None
    last_duration_ms: float | None
    runs: int
    failures: int


def exists(session: Session) -> bool:
    """Whether the table is there (a database migrated to an older revision has none)."""
    return bool(session.execute(text("SELECT to_regclass('job_runs') IS NOT NULL")).scalar_one())


def record_start(session: Session, *, job_name: str, started_at: datetime) -> None:
    """Note that ``job_name`` started; the outcome of the previous run stays until this one ends."""
    session.execute(
        text(
            """
            INSERT INTO job_runs (job_name, last_started_at) VALUES (:job_name, :started_at)
            ON CONFLICT (job_name) DO UPDATE SET last_started_at = excluded.last_started_at
            """
        ),
        {"job_name": job_name, "started_at": started_at},
    )


def claim_start(session: Session, *, job_name: str, started_at: datetime, not_started_since: datetime) -> bool:
    """Note that ``job_name`` starts at ``started_at`` unless a run of it started after ``not_started_since``;
    whether this caller won the run. One upsert: its row lock makes claims of several servers take turns."""
    claimed = session.execute(
        text(
            """
            INSERT INTO job_runs (job_name, last_started_at) VALUES (:job_name, :started_at)
            ON CONFLICT (job_name) DO UPDATE SET last_started_at = excluded.last_started_at
             WHERE job_runs.last_started_at IS NULL OR job_runs.last_started_at <= :not_started_since
            RETURNING job_name
            """
        ),
        {"job_name": job_name, "started_at": started_at, "not_started_since": not_started_since},
    ).first()
    return claimed is not None


def record_end(
    session: Session,
    *,
    job_name: str,
    started_at: datetime,
    finished_at: datetime,
    outcome: str,
    summary: str | None,
    error: str | None,
    duration_ms: float,
) -> None:
    """Store how a run ended and count it (a failure also counts as a failure)."""
    failed = 1 if outcome == "failed" else 0
    session.execute(
        text(
            """
            INSERT INTO job_runs (job_name, last_started_at, last_finished_at, last_outcome, last_summary, last_error,
                                  last_duration_ms, runs, failures)
            VALUES (:job_name, :started_at, :finished_at, :outcome, :summary, :error, :duration_ms, 1, :failed)
            ON CONFLICT (job_name) DO UPDATE
               SET last_started_at = excluded.last_started_at,
                   last_finished_at = excluded.last_finished_at,
                   last_outcome = excluded.last_outcome,
                   last_summary = excluded.last_summary,
                   last_error = excluded.last_error,
                   last_duration_ms = excluded.last_duration_ms,
                   runs = job_runs.runs + 1,
                   failures = job_runs.failures + excluded.failures
            """
        ),
        {
            "job_name": job_name,
            "started_at": started_at,
            "finished_at": finished_at,
            "outcome": outcome,
            "summary": summary,
            "error": error,
            "duration_ms": duration_ms,
            "failed": failed,
        },
    )


def list_runs(session: Session) -> list[JobRunRow]:
    rows = session.execute(
        text(
            """
            SELECT job_name, last_started_at, last_finished_at, last_outcome, last_summary, last_error,
                   last_duration_ms, runs, failures
              FROM job_runs ORDER BY job_name
            """
        )
    )
    return [JobRunRow(*row) for row in rows]
