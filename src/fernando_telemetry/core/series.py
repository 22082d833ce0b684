"""Metric series arithmetic: steps, aggregations, grouping, UTC bucket alignment and gap filling.

Buckets are aligned to multiples of the step since the Unix epoch, so a ``1d`` bucket starts at UTC
midnight and ``5m`` buckets at :00, :05, ... whatever ``from`` says. Pure; imports only core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from fernando_telemetry.core.errors import InvalidInput, field_problem
from fernando_telemetry.core.time_range import TimeRange

__all__ = [
    "AUTO_STEP_POINTS",
    "MAX_POINTS",
    "Aggregation",
    "Buckets",
    "GroupBy",
    "Step",
    "align_down",
    "auto_step",
    "buckets_for",
    "fill_gaps",
    "parse_aggregation",
    "parse_group_by",
    "parse_step",
]

MAX_POINTS = 11_000
"""Most points one series may have (a week at one minute is 10,080)."""

AUTO_STEP_POINTS = 1_440
"""With no step given, the smallest step that keeps a series at or under this many points."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GROUP_COLUMNS = ("host_name", "service_name")
_LABEL_PREFIX = "labels."
_MAX_LABEL_KEY_CHARS = 200


class Step(StrEnum):
    ONE_MINUTE = "1m"
    FIVE_MINUTES = "5m"
    ONE_HOUR = "1h"
    ONE_DAY = "1d"

    @property
    def seconds(self) -> int:
        return {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}[self.value]

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)


class Aggregation(StrEnum):
    """How the rows of one bucket become its value (rows follow the ingest contract: a counter row is an
    increment over ``(start_time, timestamp]``, a histogram-like row the mean, count and sketch of its values).

    ``count`` is the number of observations (the sum of ``sample_count``: 1 for a plain sample, n for a
    histogram row); ``sum`` adds counter increments, gauge values and histogram ``value * sample_count``;
    ``avg`` is the sum of ``value * sample_count`` over the observations; ``min``/``max`` come from the rows'
    ``min_value``/``max_value`` (else their sketch's first and last keys, else ``value``); ``p50``..``p99`` are
    percentiles of the merged per-row sketches (a row without sketch is ``sample_count`` copies of its value),
    exact (``percentile_cont``) when every row is one plain value. ``rate`` is per-second increase: counter increments and histogram
    observations, each spread over its interval in proportion to its overlap with the bucket (at most
    ``RATE_LOOKBACK``, an hour, back from its timestamp; without ``start_time`` charged at its timestamp);
    for a gauge, its rises between consecutive samples of a series, spread over the time between them. The
    bucket holding ``now`` divides by the seconds elapsed in it.
    """

    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    RATE = "rate"
    P50 = "p50"
    P90 = "p90"
    P95 = "p95"
    P99 = "p99"

    @property
    def quantile(self) -> float | None:
        """0.5 for p50 ... 0.99 for p99; None for the others."""
        return {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}.get(self.value)


@dataclass(frozen=True, slots=True)
class GroupBy:
    """One series per distinct value of a column (``host_name``, ``service_name``) or of a label."""

    column: str | None = None
    label: str | None = None

    @property
    def name(self) -> str:
        """The key of the series' ``group`` object: the parameter as given (``host_name``, ``labels.region``)."""
        return self.column if self.column is not None else f"{_LABEL_PREFIX}{self.label}"


@dataclass(frozen=True, slots=True)
class Buckets:
    """``count`` consecutive buckets of one step, the first starting at ``first``."""

    first: datetime
    step: Step
    count: int

    @property
    def end(self) -> datetime:
        """Where the last bucket ends: every bucket is whole, so this is ``to`` aligned up."""
        return self.first + self.step.delta * self.count

    def starts(self) -> list[datetime]:
        return [self.first + self.step.delta * index for index in range(self.count)]


def parse_step(text: str | None, *, parameter: str = "step") -> Step | None:
    if text is None:
        return None
    try:
        return Step(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{parameter}: {text[:20]!r} is not a step; use one of {', '.join(step.value for step in Step)}",
            details=[field_problem(parameter, "unknown step")],
        ) from None


def parse_aggregation(text: str | None, *, parameter: str = "agg") -> Aggregation:
    if text is None:
        return Aggregation.AVG
    try:
        return Aggregation(text.strip().lower())
    except ValueError:
        raise InvalidInput(
            f"{parameter}: {text[:20]!r} is not an aggregation; use one of {', '.join(agg.value for agg in Aggregation)}",
            details=[field_problem(parameter, "unknown aggregation")],
        ) from None


def parse_group_by(text: str | None, *, parameter: str = "group_by") -> GroupBy | None:
    if text is None or not text.strip():
        return None
    name = text.strip()
    if name in _GROUP_COLUMNS:
        return GroupBy(column=name)
    if name.startswith(_LABEL_PREFIX) and 0 < len(name) - len(_LABEL_PREFIX) <= _MAX_LABEL_KEY_CHARS:
        return GroupBy(label=name[len(_LABEL_PREFIX) :])
    raise InvalidInput(
        f"{parameter}: {name[:40]!r} cannot be grouped by; use host_name, service_name or labels.<key>",
        details=[field_problem(parameter, "unknown grouping")],
    )


def align_down(moment: datetime, step: Step) -> datetime:
    """The start of the bucket holding ``moment``."""
    offset_s = (moment - _EPOCH) // timedelta(seconds=1)
    return _EPOCH + timedelta(seconds=offset_s - offset_s % step.seconds)


def auto_step(time_range: TimeRange) -> Step:
    """The smallest step giving at most ``AUTO_STEP_POINTS`` points over the range (``1d`` at worst)."""
    for step in Step:
        if _bucket_count(time_range, step) <= AUTO_STEP_POINTS:
            return step
    return Step.ONE_DAY


def buckets_for(time_range: TimeRange, step: Step, *, max_points: int = MAX_POINTS) -> Buckets:
    """The buckets covering the range: from ``start`` aligned down, through the bucket holding ``end``'s
    last instant. More than ``max_points`` is refused with a 400 naming a step that fits."""
    count = _bucket_count(time_range, step)
    if count > max_points:
        fitting = next((wider.value for wider in Step if _bucket_count(time_range, wider) <= max_points), None)
        hint = f"use step={fitting} or a shorter range" if fitting else "use a shorter range"
        raise InvalidInput(
            f"step={step.value} gives {count:,} points over this range, more than the {max_points:,} allowed; {hint}",
            details=[field_problem("step", f"{count} points > {max_points}")],
        )
    return Buckets(first=align_down(time_range.start, step), step=step, count=count)


def fill_gaps(buckets: Buckets, values: Mapping[datetime, float | None]) -> list[tuple[datetime, float | None]]:
    """One ``(bucket start, value)`` per bucket, in time order; a bucket without a value gets None.
    Values for instants that are not bucket starts of ``buckets`` are ignored."""
    return [(start, values.get(start)) for start in buckets.starts()]


def _bucket_count(time_range: TimeRange, step: Step) -> int:
    first = align_down(time_range.start, step)
    return -(-(time_range.end - first) // step.delta)
