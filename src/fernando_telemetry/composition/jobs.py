"""Background jobs: each opens a session, runs one service call and commits. Run by the scheduler or once from the CLI.

A job takes a transaction-scoped advisory lock named after itself, so two servers on one database
never run the same job at once; the second skips that tick. The lock alone does not make a job run once per
interval (three servers whose timers are apart each take the free lock in turn), so the scheduler also claims a
``once_across_servers`` job's interval in ``job_runs`` before it runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.composition import notification_wiring
from fernando_telemetry.services import alert_evaluation, cold_storage, host_metrics, kpis, partitions, retention, rollups
from fernando_telemetry.settings import Settings

__all__ = [
    "Job",
    "JobOutcome",
    "alert_evaluation_run",
    "columnar_run",
    "default_jobs",
    "host_metrics_run",
    "kpi_run",
    "notification_dispatch",
    "partition_upkeep",
    "retention_run",
    "rollup_refresh",
]

COLUMNAR_STEPS_PER_RUN = 50
"""Most partitions one run of the columnar job converts (one transaction each), so a first run on a large
database leaves other jobs their turn; the next run goes on."""

ROLLUP_STEPS_PER_RUN = 100
"""Most refresh transactions in one run of the rollup job, so a long backfill leaves other jobs their turn."""


@dataclass(frozen=True)
class JobOutcome:
    ran: bool
    summary: str


@dataclass(frozen=True)
class Job:
    name: str
    interval_s: float
    run: Callable[[sessionmaker[Session], datetime], JobOutcome]
    once_across_servers: bool = False
    """Run once per interval across every server on the database (the scheduler claims the interval in
    ``job_runs``); false: every server runs it at its own interval."""


def _job_lock(session: Session, name: str) -> bool:
    """Take the job's transaction-scoped advisory lock if it is free."""
    return bool(
        session.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"fernando_telemetry.job:{name}"}
        ).scalar_one()
    )


def _with_job_lock(sessions: sessionmaker[Session], name: str, work: Callable[[Session], str]) -> JobOutcome:
    with sessions.begin() as session:
        if not _job_lock(session, name):
            return JobOutcome(ran=False, summary=f"{name}: skipped, running elsewhere")
        return JobOutcome(ran=True, summary=work(session))


def partition_upkeep(settings: Settings) -> Callable[[sessionmaker[Session], datetime], JobOutcome]:
    def run(sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
        def work(session: Session) -> str:
            result = partitions.upkeep(
                session, now=now, days_back=settings.partitions_days_back, days_ahead=settings.partitions_days_ahead
            )
            return f"partition upkeep {result.first_day}..{result.last_day}: created {result.total_created}"

        return _with_job_lock(sessions, "partition_upkeep", work)

    return run


def retention_run(settings: Settings) -> Callable[[sessionmaker[Session], datetime], JobOutcome]:
    def run(sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
        def work(session: Session) -> str:
            cleanups = retention.run(
                session,
                now=now,
                events_retention_days=settings.events_retention_days,
                metrics_retention_days=settings.metrics_retention_days,
                traces_retention_days=settings.traces_retention_days,
                archive_dir=settings.archive_dir,
            )
            expired = retention.expire_idempotency_keys(session, now=now, window_hours=settings.idempotency_window_hours)
            streams = retention.expire_metric_streams(session, now=now, metrics_retention_days=settings.metrics_retention_days)
            rollup_cleanups = rollups.expire(
                session,
                now=now,
                hourly_retention_days=settings.rollup_hourly_retention_days,
                daily_retention_days=settings.rollup_daily_retention_days,
            )
            return (
                "retention: "
                + ", ".join(
                    f"{c.table_name} -{c.partitions_dropped} partitions, -{c.rows_removed} rows"
                    + (f" ({c.partitions_kept} kept: not archived)" if c.partitions_kept else "")
                    for c in cleanups
                )
                + (
                    f", {expired} idempotency keys expired, {streams} metric streams expired, "
                    f"{sum(c.rows_deleted for c in rollup_cleanups)} rollup rows"
                )
            )

        return _with_job_lock(sessions, "retention", work)

    return run


def columnar_run(settings: Settings) -> Callable[[sessionmaker[Session], datetime], JobOutcome]:
    """Convert the partitions due for cold storage, one transaction each (each takes the job lock itself, so a
    second server skips); a partition whose lock is busy is left for the next run."""

    def run(sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
        converted: list[str] = []
        busy: list[str] = []
        rows = 0
        for _ in range(COLUMNAR_STEPS_PER_RUN):
            with sessions.begin() as session:
                if not _job_lock(session, "columnar"):
                    return JobOutcome(ran=False, summary="columnar: skipped, running elsewhere")
                step = cold_storage.convert_step(
                    session,
                    now=now,
                    after_days=settings.columnar_after_days,
                    retention_days={
                        "telemetry_events": settings.events_retention_days,
                        "system_metrics": settings.metrics_retention_days,
                        "traces": settings.traces_retention_days,
                    },
                    skip=frozenset(busy),
                )
            if step.unavailable is not None:
                return JobOutcome(ran=False, summary=f"columnar: nothing converted, {step.unavailable}")
            if step.busy is not None:
                busy.append(step.busy)
                continue
            if step.converted is None:
                break
            converted.append(step.converted)
            rows += step.rows
        summary = f"columnar: {len(converted)} partitions converted ({rows} rows)"
        if busy:
            summary += f", {len(busy)} busy, retried next run: {', '.join(busy)}"
        return JobOutcome(ran=True, summary=summary)

    return run


def host_metrics_run(settings: Settings) -> Callable[[sessionmaker[Session], datetime], JobOutcome]:
    def run(sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
        samples = host_metrics.collect(disk_path=settings.data_dir)
        with sessions.begin() as session:
            written = host_metrics.record(session, samples, now=now, service_name="fernando-telemetry")
        return JobOutcome(ran=True, summary=f"host metrics: {written} samples")

    return run


def kpi_run(settings: Settings) -> Callable[[sessionmaker[Session], datetime], JobOutcome]:
    def run(sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
        def work(session: Session) -> str:
            outcomes = kpis.compute_recent(session, now=now, events_retention_days=settings.events_retention_days)
            periods = ", ".join(outcome.period.label for outcome in outcomes)
            return f"kpis: {sum(outcome.rows for outcome in outcomes)} values for {periods}"

        return _with_job_lock(sessions, "kpis", work)

    return run


def rollup_refresh(settings: Settings) -> Callable[[sessionmaker[Session], datetime], JobOutcome]:
    """Refresh steps, one transaction each, until the rollups are current (or ``ROLLUP_STEPS_PER_RUN``).

    Each step takes the rollup lock itself (held for its transaction), so it does not use the job lock."""

    def run(sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
        hours = days = 0
        step = None
        for _ in range(ROLLUP_STEPS_PER_RUN):
            with sessions.begin() as session:
                step = rollups.refresh_step(
                    session, now=now, safety_lag_s=settings.rollup_safety_lag_s, max_hours=settings.rollup_batch_hours
                )
            if not step.ran:
                return JobOutcome(ran=False, summary="rollups: skipped, a refresh is running elsewhere")
            hours, days = hours + step.hours_recomputed, days + step.days_recomputed
            if step.done:
                break
        left = "" if step is None or step.done else f", {step.hours_remaining} hours and {step.days_remaining} days left"
        return JobOutcome(ran=True, summary=f"rollups: {hours} hours and {days} days recomputed{left}")

    return run


def alert_evaluation_run(settings: Settings) -> Callable[[sessionmaker[Session], datetime], JobOutcome]:
    """Evaluate the rules whose own interval has elapsed, in one transaction (a SAVEPOINT per rule); the
    notifications it queues are sent by the dispatcher after it commits."""

    def run(sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
        def work(session: Session) -> str:
            summary = alert_evaluation.evaluate_due(
                session,
                now=now,
                statement_timeout_ms=int(settings.alert_evaluation_statement_timeout_s * 1000),
                rule_timeout_ms=int(settings.alert_rule_timeout_s * 1000),
                license_budget_ms=int(settings.alert_license_budget_s * 1000),
                max_groups=settings.alert_max_groups_per_rule,
            )
            evaluated = len(summary.rules) - len(summary.deferred)
            return (
                f"alerts: {evaluated} rules evaluated, {len(summary.transitions)} transitions, "
                f"{summary.notifications} notifications queued, {len(summary.errors)} failed "
                f"({len(summary.timed_out)} timed out), {len(summary.deferred)} deferred to the next pass"
            )

        return _with_job_lock(sessions, "alert_evaluation", work)

    return run


def notification_dispatch(settings: Settings) -> Callable[[sessionmaker[Session], datetime], JobOutcome]:
    """Send the queued notifications that are due, no transaction open while sending. No job lock: dispatchers
    on several servers share the outbox through ``FOR UPDATE SKIP LOCKED``."""
    dispatch = notification_wiring.dispatcher(settings)

    def run(sessions: sessionmaker[Session], now: datetime) -> JobOutcome:
        return JobOutcome(ran=True, summary=dispatch(sessions, now).describe())

    return run


def default_jobs(settings: Settings) -> list[Job]:
    """Every scheduled job. Host metrics (each host its own figures) and notification dispatch (dispatchers share
    the outbox through ``FOR UPDATE SKIP LOCKED``) run in every server; the others once per interval across all."""
    jobs = [
        Job("partition_upkeep", settings.partition_upkeep_interval_s, partition_upkeep(settings), once_across_servers=True),
        Job("retention", settings.retention_interval_s, retention_run(settings), once_across_servers=True),
    ]
    if settings.columnar_after_days > 0:
        jobs.append(Job("columnar", settings.columnar_interval_s, columnar_run(settings), once_across_servers=True))
    if settings.host_metrics_interval_s > 0:
        jobs.append(Job("host_metrics", settings.host_metrics_interval_s, host_metrics_run(settings)))
    if settings.kpi_interval_s > 0:
        jobs.append(Job("kpis", settings.kpi_interval_s, kpi_run(settings), once_across_servers=True))
    if settings.rollup_refresh_interval_s > 0:
        jobs.append(Job("rollups", settings.rollup_refresh_interval_s, rollup_refresh(settings), once_across_servers=True))
    if settings.alert_evaluation_interval_s > 0:
        jobs.append(
            Job(
                "alert_evaluation", settings.alert_evaluation_interval_s, alert_evaluation_run(settings), once_across_servers=True
            )
        )
    if settings.notification_dispatch_interval_s > 0:
        jobs.append(Job("notification_dispatch", settings.notification_dispatch_interval_s, notification_dispatch(settings)))
    return jobs
