"""Metric series and the metric catalogue: one aggregated point per step bucket, gaps as None.

Routes call the use cases ``read_series`` / ``list_names`` with the request's ``Caller``; they open the read session
and call ``series(session, principal=..., request=..., now=...)`` / ``names``. Points come from a
``PointSource``: the rollups (``RollupPoints``: hourly and daily steps without labels or rate) and raw
rows (``RawPoints``: everything). ``source="auto"`` takes the first source in ``SOURCES`` that ``serves``
the request, ``"raw"``/``"rollup"`` force one by name. ``rate`` divides each bucket's increase by its seconds,
those elapsed by ``now`` for the bucket that has not ended (``SeriesResult.current_bucket``). Imports storage,
core, ``services.rollups`` and ``services.tenancy``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, TypedDict

from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core import series as series_math
from fernando_telemetry.core import time_range
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.containment import Condition
from fernando_telemetry.core.errors import InvalidInput, field_problem
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.core.series import Aggregation, Buckets, GroupBy, Step
from fernando_telemetry.services import rollups
from fernando_telemetry.services.tenancy import principal_of, visible_license
from fernando_telemetry.storage import metric_queries
from fernando_telemetry.storage.metric_queries import BucketValue, MetricName, MetricSelection

__all__ = [
    "CurrentBucket",
    "DEFAULT_NAMES_RANGE",
    "DEFAULT_RANGE",
    "MAX_SERIES",
    "MAX_TOTAL_POINTS",
    "MetricName",
    "MetricSelection",
    "PointSource",
    "RAW",
    "ROLLUP",
    "RawPoints",
    "RollupPoints",
    "SOURCES",
    "Series",
    "SeriesRequest",
    "SeriesResult",
    "bucket_seconds",
    "current_bucket",
    "list_names",
    "names",
    "read_series",
    "series",
]

DEFAULT_RANGE = timedelta(hours=1)
"""What a series without ``from`` covers: the hour before ``to``."""
DEFAULT_NAMES_RANGE = timedelta(days=7)
"""What the metric catalogue without ``from`` covers: the week before ``to``."""
MAX_SERIES = 500
"""Most series one request may return (``group_by`` on a label with more values is a 400)."""
MAX_TOTAL_POINTS = 500_000
"""Most points one request may return over all its series."""


class _SourceArguments(TypedDict):
    """The keywords every ``PointSource`` method takes, built once per request and given to each source tried."""

    selection: MetricSelection
    aggregation: Aggregation
    buckets: Buckets
    group_by: GroupBy | None


class PointSource(Protocol):
    """Where points come from: raw samples, or (later) rollups. Both must give the same answer."""

    name: str

    def serves(
        self,
        session: Session,
        *,
        selection: MetricSelection,
        aggregation: Aggregation,
        buckets: Buckets,
        group_by: GroupBy | None,
    ) -> bool:
        """Whether this source can answer the request (for example: the step is a multiple of its grain)."""
        ...

    def values(
        self,
        session: Session,
        *,
        selection: MetricSelection,
        aggregation: Aggregation,
        buckets: Buckets,
        group_by: GroupBy | None,
        now: datetime,
    ) -> list[BucketValue]:
        """One value per (group, bucket start) with data; buckets without data are left out. ``now`` ends the
        bucket that holds it: its rate is per second elapsed."""
        ...


class RawPoints:
    """Points aggregated from the raw ``system_metrics`` rows: serves every request."""

    name = "raw"

    def serves(
        self,
        session: Session,
        *,
        selection: MetricSelection,
        aggregation: Aggregation,
        buckets: Buckets,
        group_by: GroupBy | None,
    ) -> bool:
        return True

    def values(
        self,
        session: Session,
        *,
        selection: MetricSelection,
        aggregation: Aggregation,
        buckets: Buckets,
        group_by: GroupBy | None,
        now: datetime,
    ) -> list[BucketValue]:
        if aggregation is Aggregation.RATE:
            increases = metric_queries.bucket_increases(session, selection=selection, buckets=buckets, group_by=group_by)
            return [
                BucketValue(
                    increase.group,
                    increase.bucket_start,
                    None if increase.value is None else increase.value / bucket_seconds(increase.bucket_start, buckets.step, now),
                )
                for increase in increases
            ]
        return metric_queries.bucket_values(
            session, selection=selection, aggregation=aggregation, buckets=buckets, group_by=group_by
        )


class RollupPoints:
    """Points read from the hourly and daily rollups (and the raw tail): hourly or daily steps, no labels, no rate.

    Counts, sums, averages, minima and maxima equal the raw answer; percentiles are within the sketch's bound.
    """

    name = "rollup"

    def serves(
        self,
        session: Session,
        *,
        selection: MetricSelection,
        aggregation: Aggregation,
        buckets: Buckets,
        group_by: GroupBy | None,
    ) -> bool:
        return rollups.serves_series(
            step=buckets.step, agg=aggregation, labels={"": ""} if selection.labels else {}, group_by=group_by
        )

    def values(
        self,
        session: Session,
        *,
        selection: MetricSelection,
        aggregation: Aggregation,
        buckets: Buckets,
        group_by: GroupBy | None,
        now: datetime,
    ) -> list[BucketValue]:
        points = rollups.metric_points(
            session,
            metric_name=selection.metric_name,
            service_name=selection.service_name,
            host_name=selection.host_name,
            labels={},
            license_id=selection.license_id,
            start=buckets.first,
            end=buckets.end,
            step=buckets.step,
            agg=aggregation,
            group_by=group_by,
        )
        return [
            BucketValue(group, bucket_start, value)
            for group, by_bucket in points.items()
            for bucket_start, value in sorted(by_bucket.items())
        ]


RAW = RawPoints()
ROLLUP = RollupPoints()
SOURCES: tuple[PointSource, ...] = (ROLLUP, RAW)
"""Point sources in order of preference for ``source="auto"``; the last one must serve everything."""


@dataclass(frozen=True)
class SeriesRequest:
    """A series query; None means "not given" (then: the last hour, a step giving at most 1,440 points)."""

    metric_name: str
    service_name: str | None = None
    host_name: str | None = None
    labels: Sequence[Condition] = ()
    start: datetime | None = None
    end: datetime | None = None
    step: Step | None = None
    aggregation: Aggregation = Aggregation.AVG
    group_by: GroupBy | None = None
    license_id: int | None = None


@dataclass(frozen=True)
class Series:
    """One line: the group's values (``{}`` without ``group_by``) and one point per bucket."""

    group: dict[str, str | None]
    points: list[tuple[datetime, float | None]]


@dataclass(frozen=True)
class CurrentBucket:
    """The bucket holding ``now``: it has not ended, so its values cover what arrived in its first ``elapsed_s``
    seconds, and its ``rate`` divides by them (not by the step)."""

    bucket_start: datetime
    elapsed_s: float


@dataclass(frozen=True)
class SeriesResult:
    metric_name: str
    step: Step
    aggregation: Aggregation
    buckets: Buckets
    source: str
    series: list[Series] = field(default_factory=list)
    current_bucket: CurrentBucket | None = None


def bucket_seconds(bucket_start: datetime, step: Step, now: datetime) -> float:
    """The seconds a rate of the bucket divides by: the step's, or those elapsed by ``now`` in the bucket that
    holds it (at least a millisecond, so a bucket that has just begun is not a division by zero)."""
    if bucket_start <= now < bucket_start + step.delta:
        return max((now - bucket_start).total_seconds(), 0.001)
    return float(step.seconds)


def current_bucket(buckets: Buckets, now: datetime) -> CurrentBucket | None:
    """The bucket of ``buckets`` that holds ``now``, if one does."""
    if not buckets.first <= now < buckets.end:
        return None
    start = series_math.align_down(now, buckets.step)
    return CurrentBucket(bucket_start=start, elapsed_s=bucket_seconds(start, buckets.step, now))


def series(
    session: Session,
    *,
    principal: Principal,
    request: SeriesRequest,
    now: datetime,
    source: str = "auto",
    sources: Sequence[PointSource] = SOURCES,
) -> SeriesResult:
    if not request.metric_name.strip():
        raise InvalidInput("metric_name is required", details=[field_problem("metric_name", "missing")])
    window = time_range.resolve(start=request.start, end=request.end, now=now, default_span=DEFAULT_RANGE)
    step = request.step if request.step is not None else series_math.auto_step(window)
    buckets = series_math.buckets_for(window, step)
    selection = MetricSelection(
        metric_name=request.metric_name,
        service_name=request.service_name,
        host_name=request.host_name,
        labels=request.labels,
        license_id=visible_license(principal, request.license_id),
    )
    arguments = _SourceArguments(selection=selection, aggregation=request.aggregation, buckets=buckets, group_by=request.group_by)
    chosen = _choose_source(session, source=source, sources=sources, arguments=arguments)
    by_group: dict[str | None, dict[datetime, float | None]] = defaultdict(dict)
    for bucket_value in chosen.values(session, **arguments, now=now):
        by_group[bucket_value.group][bucket_value.bucket_start] = bucket_value.value
    if len(by_group) > MAX_SERIES:
        raise InvalidInput(
            f"group_by={request.group_by.name if request.group_by else ''} gives {len(by_group):,} series, more than the "
            f"{MAX_SERIES} allowed; narrow the filters or group by something with fewer values",
            details=[field_problem("group_by", f"{len(by_group)} series > {MAX_SERIES}")],
        )
    if len(by_group) * buckets.count > MAX_TOTAL_POINTS:
        raise InvalidInput(
            f"{len(by_group):,} series of {buckets.count:,} points are more than the {MAX_TOTAL_POINTS:,} points one "
            "request may return; use a wider step, a shorter range or fewer groups",
            details=[field_problem("step", f"{len(by_group) * buckets.count} points > {MAX_TOTAL_POINTS}")],
        )
    if request.group_by is None:
        lines = [Series(group={}, points=series_math.fill_gaps(buckets, by_group.get(None, {})))]
    else:
        # groups in order of their value; samples without the column or label last
        ordered = sorted(by_group, key=lambda value: (value is None, value or ""))
        lines = [
            Series(group={request.group_by.name: value}, points=series_math.fill_gaps(buckets, by_group[value]))
            for value in ordered
        ]
    return SeriesResult(
        metric_name=request.metric_name,
        step=step,
        aggregation=request.aggregation,
        buckets=buckets,
        source=chosen.name,
        series=lines,
        current_bucket=current_bucket(buckets, now),
    )


def names(
    session: Session,
    *,
    principal: Principal,
    start: datetime | None,
    end: datetime | None,
    service_name: str | None,
    license_id: int | None,
    now: datetime,
) -> list[MetricName]:
    """The metrics with samples in the range (default: the week before ``to``) that the key may read."""
    window = time_range.resolve(start=start, end=end, now=now, default_span=DEFAULT_NAMES_RANGE)
    return metric_queries.metric_names(
        session,
        start=window.start,
        end=window.end,
        license_id=visible_license(principal, license_id),
        service_name=service_name,
    )


def _choose_source(session: Session, *, source: str, sources: Sequence[PointSource], arguments: _SourceArguments) -> PointSource:
    if source == "auto":
        for candidate in sources:
            if candidate.serves(session, **arguments):
                return candidate
        raise InvalidInput("no point source serves this request")
    named = next((candidate for candidate in sources if candidate.name == source), None)
    if named is None:
        available = ", ".join(["auto", *(candidate.name for candidate in sources)])
        raise InvalidInput(
            f"source: {source[:20]!r} is not available; use one of {available}",
            details=[field_problem("source", "unknown source")],
        )
    if not named.serves(session, **arguments):
        raise InvalidInput(
            f"source={source} cannot serve this request (step, aggregation or range); use source=auto",
            details=[field_problem("source", "cannot serve")],
        )
    return named


def read_series(sessions: sessionmaker[Session], *, caller: Caller, request: SeriesRequest, source: str = "auto") -> SeriesResult:
    """The use case behind ``GET /api/v1/metrics/series``: one read transaction, the caller's license and clock."""
    with sessions() as session:
        return series(session, principal=principal_of(caller), request=request, now=caller.now(), source=source)


def list_names(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    start: datetime | None,
    end: datetime | None,
    service_name: str | None,
    license_id: int | None,
) -> list[MetricName]:
    """The use case behind ``GET /api/v1/metrics/names``."""
    with sessions() as session:
        return names(
            session,
            principal=principal_of(caller),
            start=start,
            end=end,
            service_name=service_name,
            license_id=license_id,
            now=caller.now(),
        )
