"""Rollups: the incremental refresh of the hourly and daily tables, their retention, a forced rebuild of
some days, and metric series read from them (raw rows for what they do not hold, same answer either way).

A refresh step, under one advisory lock: move each raw table's watermark up to a safe instant and mark
dirty the hours of the rows written since; recompute the oldest dirty hours from raw rows (DELETE + INSERT),
marking their days dirty; recompute the ended dirty days from their hours. Every step is one transaction
of the caller: killed half-way it leaves nothing behind, and the next step does the same work again.
Buckets are recomputed under savepoints: one that fails is rolled back alone, recorded in ``rollup_failures``
and skipped for ``FAILURE_RETRY`` (it stays dirty, so readers take it from raw rows) while the rest advance.
Imports storage and core.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.core.metric_aggregation import MetricPart, combine
from fernando_telemetry.core.series import Aggregation, GroupBy, Step, align_down
from fernando_telemetry.storage import metric_rollups
from fernando_telemetry.storage import rollups as rollup_store
from fernando_telemetry.storage.metric_rollups import MetricFilter
from fernando_telemetry.storage.rollups import RollupCleanup, RollupFailure, SourceStatus

__all__ = [
    "RefreshStep",
    "RollupCleanup",
    "RollupFailure",
    "SourceStatus",
    "expire",
    "failures",
    "metric_points",
    "rebuild",
    "refresh",
    "refresh_step",
    "serves_series",
    "status",
]

TABLES = tuple(rollup_store.SOURCES)
FAILURE_RETRY = timedelta(hours=1)
"""How long a bucket whose recomputation failed is left out of the refresh before it is tried again."""
GIVE_UP_AFTER = 3
"""Failures after which a bucket is given up (its dirty mark cleared, its failure kept) so retention moves on."""
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class RefreshStep:
    """What one refresh step did; ``ran`` is False when another refresh held the lock."""

    ran: bool
    watermark: datetime | None = None
    hours_marked: int = 0
    hours_recomputed: int = 0
    days_recomputed: int = 0
    hours_remaining: int = 0
    days_remaining: int = 0
    recomputed: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Nothing left that a refresh could do now (days that have not ended wait for their end)."""
        return self.hours_remaining == 0 and self.days_remaining == 0


def refresh_step(
    session: Session,
    *,
    now: datetime,
    safety_lag_s: float,
    max_hours: int = 24,
    max_days: int = 7,
    wait: bool = False,
) -> RefreshStep:
    """One bounded step of the refresh: mark what changed, recompute up to ``max_hours`` dirty hours and
    ``max_days`` ended dirty days per raw table. Without ``wait``, gives up at once if a refresh runs elsewhere."""
    if max_hours < 1 or max_days < 1:
        raise InvalidInput(f"max_hours and max_days must be at least 1, got {max_hours} and {max_days}")
    if safety_lag_s < 0:
        raise InvalidInput(f"safety_lag_s must not be negative, got {safety_lag_s}")
    if not rollup_store.lock(session, wait=wait):
        return RefreshStep(ran=False)
    until = rollup_store.refresh_target(session, now=now, safety_lag_s=safety_lag_s)
    retry_before = now - FAILURE_RETRY
    marked = hours_done = days_done = hours_left = days_left = 0
    recomputed: dict[str, tuple[int, int]] = {}
    for table in TABLES:
        marked += rollup_store.mark_pending(session, table=table, until=until, now=now)
        horizon = rollup_store.raw_horizon(session, table=table)
        # hours whose raw rows retention has removed keep their rollups as they are
        hours = rollup_store.claim_dirty(session, table=table, grain="hour", limit=max_hours, retry_before=retry_before)
        live_hours = [hour for hour in hours if horizon is None or hour >= horizon]
        done_hours, dropped_hours = _isolated(
            session, table=table, grain="hour", buckets=live_hours, now=now, recompute=rollup_store.recompute_hours
        )
        changed = done_hours + dropped_hours
        cleared = [hour for hour in hours if hour not in live_hours or hour in changed]
        rollup_store.clear_dirty(session, table=table, grain="hour", buckets=cleared)
        rollup_store.mark_dirty(session, table=table, grain="day", buckets=sorted({_day_of(hour) for hour in changed}))
        days = rollup_store.claim_dirty(
            session, table=table, grain="day", limit=max_days, ended_by=until, retry_before=retry_before
        )
        live_days = [day for day in days if horizon is None or day >= horizon]
        done_days, dropped_days = _isolated(
            session, table=table, grain="day", buckets=live_days, now=now, recompute=rollup_store.recompute_days
        )
        rollup_store.clear_dirty(
            session,
            table=table,
            grain="day",
            buckets=[day for day in days if day not in live_days or day in done_days or day in dropped_days],
        )
        recomputed[table] = (len(done_hours), len(done_days))
        hours_done += len(done_hours)
        days_done += len(done_days)
        hours_left += rollup_store.count_dirty(session, table=table, grain="hour", retry_before=retry_before)
        days_left += rollup_store.count_dirty(session, table=table, grain="day", ended_by=until, retry_before=retry_before)
    return RefreshStep(
        ran=True,
        watermark=until,
        hours_marked=marked,
        hours_recomputed=hours_done,
        days_recomputed=days_done,
        hours_remaining=hours_left,
        days_remaining=days_left,
        recomputed=recomputed,
    )


def _isolated(
    session: Session,
    *,
    table: str,
    grain: str,
    buckets: list[datetime],
    now: datetime,
    recompute: Callable[..., int],
) -> tuple[list[datetime], list[datetime]]:
    """Recompute ``buckets`` under a savepoint; when that fails, each bucket under its own, recording the
    ones that fail in ``rollup_failures`` (their dirty mark stays, for a retry after ``FAILURE_RETRY``).
    A bucket failing for the ``GIVE_UP_AFTER``-th time is given up: its rollup rows are deleted and it is
    returned to be cleared, so the raw tables' retention is not held behind it (readers take it from raw
    rows while its failure is recorded). Returns the buckets recomputed and those given up."""
    if not buckets:
        return [], []
    argument = "hours" if grain == "hour" else "days"
    try:
        with session.begin_nested():
            recompute(session, table=table, **{argument: buckets})
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise
    else:
        rollup_store.forget_failures(session, table=table, grain=grain, buckets=buckets)
        return list(buckets), []
    done, given_up = [], []
    for bucket in buckets:
        try:
            with session.begin_nested():
                recompute(session, table=table, **{argument: [bucket]})
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            failures = rollup_store.record_failure(
                session, table=table, grain=grain, bucket_start=bucket, error=str(exc.orig or exc), now=now
            )
            if failures >= GIVE_UP_AFTER:
                rollup_store.drop_bucket(session, table=table, grain=grain, bucket_start=bucket)
                given_up.append(bucket)
        else:
            done.append(bucket)
    rollup_store.forget_failures(session, table=table, grain=grain, buckets=done)
    return done, given_up


def refresh(session: Session, *, now: datetime, safety_lag_s: float, max_hours: int = 24, max_days: int = 7) -> RefreshStep:
    """Refresh steps in the caller's transaction until nothing is left, waiting for the lock; the totals."""
    total = RefreshStep(ran=True)
    while True:
        step = refresh_step(session, now=now, safety_lag_s=safety_lag_s, max_hours=max_hours, max_days=max_days, wait=True)
        total = RefreshStep(
            ran=True,
            watermark=step.watermark,
            hours_marked=total.hours_marked + step.hours_marked,
            hours_recomputed=total.hours_recomputed + step.hours_recomputed,
            days_recomputed=total.days_recomputed + step.days_recomputed,
            hours_remaining=step.hours_remaining,
            days_remaining=step.days_remaining,
        )
        if step.done:
            return total


def rebuild(session: Session, *, first_day: date, last_day: date) -> int:
    """Mark every hour of ``[first_day, last_day]`` dirty in every rollup, so the next refresh recomputes them
    from raw rows (after a manual fix of raw data, say); returns how many hours were marked."""
    if last_day < first_day:
        raise InvalidInput(f"last day {last_day} is before first day {first_day}")
    if (last_day - first_day).days > 3660:
        raise InvalidInput("at most 3660 days can be rebuilt at once")
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    hours = [start + HOUR * index for index in range(((last_day - first_day).days + 1) * 24)]
    for table in TABLES:
        rollup_store.mark_dirty(session, table=table, grain="hour", buckets=hours)
        rollup_store.forget_failures(session, table=table, grain="hour", buckets=hours)  # tried again at once
    return len(hours) * len(TABLES)


def expire(session: Session, *, now: datetime, hourly_retention_days: int, daily_retention_days: int) -> list[RollupCleanup]:
    """Rollup retention: delete hourly rows older than ``hourly_retention_days`` and daily rows older than
    ``daily_retention_days``; hourly rows of hours still in raw rows, or of days not rolled up yet, are kept."""
    for name, days in (("hourly_retention_days", hourly_retention_days), ("daily_retention_days", daily_retention_days)):
        if days < 1:
            raise InvalidInput(f"{name} must be at least 1 day, got {days}")
    return rollup_store.cleanup_old_rollups(
        session, hourly_retention_days=hourly_retention_days, daily_retention_days=daily_retention_days, as_of=now
    )


def failures(session: Session) -> list[RollupFailure]:
    """The buckets whose last recomputation failed, with the error and when (retried after ``FAILURE_RETRY``)."""
    return rollup_store.failures(session)


def status(session: Session) -> list[SourceStatus]:
    """Per raw table: watermark, last refresh, raw horizon and the dirty buckets waiting."""
    return rollup_store.statuses(session)


# --- metric series from the rollups ---------------------------------------------------------------


def serves_series(*, step: Step, agg: Aggregation, labels: Mapping[str, str], group_by: GroupBy | None) -> bool:
    """Whether ``metric_points`` can answer: hourly or daily steps, no label filter or grouping (labels are not
    in the rollups), and any aggregation but ``rate`` (increments are spread over their intervals, which cross
    the rollups' hours; rate reads raw rows)."""
    return (
        step in (Step.ONE_HOUR, Step.ONE_DAY)
        and agg is not Aggregation.RATE
        and not labels
        and (group_by is None or group_by.column is not None)
    )


def metric_points(
    session: Session,
    *,
    metric_name: str,
    service_name: str | None,
    host_name: str | None,
    labels: Mapping[str, str],
    license_id: int | None,
    start: datetime,
    end: datetime,
    step: Step,
    agg: Aggregation,
    group_by: GroupBy | None,
) -> dict[str | None, dict[datetime, float | None]]:
    """Metric values per group and bucket over ``[start, end)``, from the rollups where they hold the data
    and from raw samples where they do not (pending hours, hours cut by ``start`` or ``end``).

    Returns ``{group value: {bucket start: value}}``: the group value is the ``host_name`` or ``service_name``
    of the series (None without ``group_by``); bucket starts are ``align_down(sample time, step)``; buckets
    without samples are absent. ``license_id`` None means every license. Values follow ``Aggregation``:
    counts, sums, averages, minimum and maximum equal the raw answer (``core.metric_aggregation.combine`` of
    the parts); a percentile is the stored one when one hourly row or one raw hour holds the bucket's rows, else
    from the merged sketches (within 0.75 %).
    Raises ``ValueError`` when ``serves_series`` is False (the caller reads raw rows instead).
    """
    if not serves_series(step=step, agg=agg, labels=labels, group_by=group_by):
        raise ValueError(f"rollups cannot serve step={step.value} agg={agg.value} with labels or label grouping")
    if end <= start:
        return {}
    metric_filter = MetricFilter(metric_name, service_name=service_name, host_name=host_name, license_id=license_id)
    group_column = group_by.column if group_by is not None else None
    first_hour, end_hour = align_down(start, Step.ONE_HOUR), _align_up(end, Step.ONE_HOUR)
    hours = [first_hour + HOUR * index for index in range((end_hour - first_hour) // HOUR)]
    pending = rollup_store.pending_hours(session, table="system_metrics", start=start, end=end)
    from_raw = {hour for hour in hours if hour in pending or hour < start or hour + HOUR > end}
    clean_days: list[datetime] = []
    if step is Step.ONE_DAY:
        dirty = rollup_store.dirty_days(session, table="system_metrics", start=start, end=end)
        days_with_raw = {_day_of(hour) for hour in from_raw}
        first_day = _align_up(start, Step.ONE_DAY)
        clean_days = [
            day
            for day in (first_day + DAY * index for index in range(max(0, (align_down(end, Step.ONE_DAY) - first_day) // DAY)))
            if day not in dirty and day not in days_with_raw
        ]
    in_clean_days = set(clean_days)
    hourly = [hour for hour in hours if hour not in from_raw and _day_of(hour) not in in_clean_days]
    parts = [
        *metric_rollups.rollup_parts(
            session, grain="daily", buckets=clean_days, metric_filter=metric_filter, group_column=group_column
        ),
        *metric_rollups.rollup_parts(
            session, grain="hourly", buckets=hourly, metric_filter=metric_filter, group_column=group_column
        ),
        *metric_rollups.raw_parts(
            session, hours=sorted(from_raw), start=start, end=end, metric_filter=metric_filter, group_column=group_column
        ),
    ]
    grouped: dict[tuple[str | None, datetime], list[MetricPart]] = defaultdict(list)
    for bucket_part in parts:
        grouped[(bucket_part.group, align_down(bucket_part.bucket_start, step))].append(bucket_part.part)
    points: dict[str | None, dict[datetime, float | None]] = defaultdict(dict)
    for (group, bucket), bucket_parts in grouped.items():
        points[group][bucket] = combine(bucket_parts, agg)
    for series in points.values():
        series_items = sorted(series.items())
        series.clear()
        series.update(series_items)
    return dict(points)


def _day_of(moment: datetime) -> datetime:
    return align_down(moment, Step.ONE_DAY)


def _align_up(moment: datetime, step: Step) -> datetime:
    start = align_down(moment, step)
    return start if start == moment else start + step.delta
