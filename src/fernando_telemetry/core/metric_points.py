"""Metric points as increments: cumulative totals and bucket counts turned into deltas, buckets into sketches.

A cumulative stream (a running total, or running histogram/summary counts) becomes one increment per
point: the difference from the stream's previous point, with reset detection (a value or any bucket
count that drops restarts the count from zero, as Prometheus does). Histogram buckets become the
mergeable sketch of ``core.sketch`` by spreading each bucket's count over the sketch buckets it overlaps.
Pure arithmetic; imports only the standard library and ``fernando_telemetry.core``.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from fernando_telemetry.core.buckets import Bucket, bucket_mean, explicit_buckets, exponential_buckets, quantiles
from fernando_telemetry.core.sketch import GAMMA, KEY_OFFSET, LN_GAMMA, MAX_MAGNITUDE, MIN_MAGNITUDE, key_of

__all__ = [
    "MAX_SAMPLE_COUNT",
    "PERCENTILES",
    "CumulativePoint",
    "Histogram",
    "Increment",
    "StreamState",
    "advance",
    "histogram_increment",
    "largest_remainder",
    "samples_increment",
    "sketch_from_buckets",
    "subtract_histogram",
]

PERCENTILES = (0.5, 0.9, 0.95, 0.99)
"""The quantiles stored as p50, p90, p95, p99."""

MAX_SAMPLE_COUNT = 2**31 - 1
"""``sample_count`` is a PostgreSQL integer: larger counts are clamped to it."""

ZERO_FLOOR = 1e-4
"""A bucket reaching down to 0 is spread over ``(upper * ZERO_FLOOR, upper]``; the share below goes to that floor."""

MAX_SPREAD = 4096
"""A bucket overlapping more sketch buckets than this (astronomic bounds) is counted at its geometric middle."""


@dataclass(frozen=True, slots=True)
class Histogram:
    """A histogram point's bucket counts, explicit (``bounds`` set) or exponential (``scale`` set).

    Explicit: ``counts[i]`` values in ``(bounds[i-1], bounds[i]]`` (the ends open). Exponential: positive bucket
    ``offset + i`` holds ``counts[i]`` values, negative bucket ``negative_offset + i`` holds ``negative_counts[i]``,
    and ``zero_count`` values are (about) zero.
    """

    counts: tuple[int, ...]
    bounds: tuple[float, ...] | None = None
    scale: int | None = None
    offset: int = 0
    zero_count: int = 0
    negative_offset: int = 0
    negative_counts: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts) + self.zero_count + sum(self.negative_counts)

    def buckets(self, *, minimum: float | None = None, maximum: float | None = None) -> list[Bucket]:
        """Ascending finite buckets, bounded by ``minimum``/``maximum`` when known (see ``core.otlp.percentiles``)."""
        if self.scale is None:
            return explicit_buckets(self.bounds or (), self.counts, minimum=minimum, maximum=maximum)
        return exponential_buckets(
            self.scale,
            zero_count=self.zero_count,
            positive_offset=self.offset,
            positive_counts=list(self.counts),
            negative_offset=self.negative_offset,
            negative_counts=list(self.negative_counts),
            minimum=minimum,
            maximum=maximum,
        )


@dataclass(frozen=True, slots=True)
class CumulativePoint:
    """One point of a cumulative stream, as sent: running totals since ``start_time``.

    ``kind`` is ``number`` (``value`` is the running total), ``histogram`` (``histogram``, ``count``, ``total``
    and the running ``minimum``/``maximum``) or ``summary`` (``count``, ``total`` and the quantiles as sent).
    """

    kind: str
    time: datetime
    start_time: datetime | None = None
    """The stream's start (OTLP ``start_time_unix_nano``); None when the sender did not say."""
    value: float = 0.0
    histogram: Histogram | None = None
    count: int = 0
    total: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    percentiles: tuple[float | None, ...] = (None, None, None, None)


@dataclass(frozen=True, slots=True)
class StreamState:
    """What a stream remembers of its last point."""

    last_time: datetime
    value: float | None = None
    count: int | None = None
    total: float | None = None
    histogram: Histogram | None = None


@dataclass(frozen=True, slots=True)
class Increment:
    """What one row stores: the values recorded in ``(start_time, time]``."""

    value: float
    start_time: datetime | None = None
    sample_count: int = 1
    percentiles: tuple[float | None, ...] = (None, None, None, None)
    sketch_keys: list[int] | None = None
    sketch_counts: list[int] | None = None
    minimum: float | None = None
    maximum: float | None = None
    cumulative_value: float | None = None


def advance(state: StreamState | None, point: CumulativePoint) -> tuple[Increment | None, StreamState]:
    """The increment ``point`` adds to its stream (None: nothing to store) and the stream's new state.

    - a point at or before the stream's last time is a repeat (a retried export): nothing, state unchanged;
    - the first point of a stream with a known start is whole: everything since ``start_time``;
    - the first point without a known start is the baseline: a counter stores an increment of 0 with its
      total in ``cumulative_value``, a histogram or summary stores nothing;
    - later points store the difference from the previous one, and a drop (any count lower than before)
      is a reset: the point is counted from zero, over ``(previous time, time]``.
    """
    if state is not None and point.time <= state.last_time:
        return None, state
    new_state = StreamState(point.time, point.value, point.count, point.total, point.histogram)
    if state is None:
        if point.start_time is None:
            baseline = Increment(0.0, cumulative_value=point.value) if point.kind == "number" else None
            return baseline, new_state
        return _whole(point, point.start_time), new_state
    start = state.last_time
    if point.kind == "number":
        previous = state.value or 0.0
        delta = point.value - previous if point.value >= previous else point.value
        return Increment(delta, start_time=start, cumulative_value=point.value), new_state
    if point.kind == "summary":
        count, total = point.count - (state.count or 0), None
        if count < 0:
            return _whole(point, start, exact=False), new_state
        if point.total is not None and state.total is not None:
            total = point.total - state.total
        if count == 0 or total is None:
            return None, new_state
        return Increment(total / count, start, min(count, MAX_SAMPLE_COUNT), point.percentiles), new_state
    histogram = point.histogram
    difference = None if histogram is None or state.histogram is None else subtract_histogram(histogram, state.histogram)
    count = point.count - (state.count or 0)
    if difference is None or count < 0:
        return _whole(point, start, exact=False), new_state
    total = point.total - state.total if point.total is not None and state.total is not None else None
    return histogram_increment(
        difference, count=count, total=total, start_time=start, minimum=point.minimum, maximum=point.maximum, exact=False
    ), new_state


def _whole(point: CumulativePoint, start: datetime, *, exact: bool = True) -> Increment | None:
    """All of a point's running totals as one increment (its stream's first point, or the first after a reset)."""
    if point.kind == "number":
        return Increment(point.value, start_time=start, cumulative_value=point.value)
    if point.kind == "summary":
        if point.count <= 0 or point.total is None:
            return None
        return Increment(point.total / point.count, start, min(point.count, MAX_SAMPLE_COUNT), point.percentiles)
    return histogram_increment(
        point.histogram or Histogram(()),
        count=point.count,
        total=point.total,
        start_time=start,
        minimum=point.minimum,
        maximum=point.maximum,
        exact=exact,
    )


def subtract_histogram(current: Histogram, previous: Histogram) -> Histogram | None:
    """``current - previous`` bucket by bucket; None when they are not comparable or a count dropped (a reset).

    Explicit histograms need the same bounds (a change of bounds is a reset). An exponential histogram whose
    scale went down (the SDK rescales as its range grows) is compared with the previous counts merged to the
    new scale; a higher scale than before cannot follow from adding values, so it is a reset.
    """
    if (current.scale is None) != (previous.scale is None):
        return None
    if current.scale is None:
        if current.bounds != previous.bounds or len(current.counts) != len(previous.counts):
            return None
        counts = tuple(now - before for now, before in zip(current.counts, previous.counts, strict=True))
        if any(count < 0 for count in counts):
            return None
        return Histogram(counts, bounds=current.bounds)
    assert previous.scale is not None
    if current.scale > previous.scale:
        return None
    shift = previous.scale - current.scale
    zero_count = current.zero_count - previous.zero_count
    positive = _difference(_indexed(current.offset, current.counts), _rescaled(previous.offset, previous.counts, shift))
    negative = _difference(
        _indexed(current.negative_offset, current.negative_counts),
        _rescaled(previous.negative_offset, previous.negative_counts, shift),
    )
    if positive is None or negative is None or zero_count < 0:
        return None
    offset, counts = _dense(positive)
    negative_offset, negative_counts = _dense(negative)
    return Histogram(
        counts,
        scale=current.scale,
        offset=offset,
        zero_count=zero_count,
        negative_offset=negative_offset,
        negative_counts=negative_counts,
    )


def _indexed(offset: int, counts: Sequence[int]) -> dict[int, int]:
    return {offset + position: count for position, count in enumerate(counts) if count}


def _rescaled(offset: int, counts: Sequence[int], shift: int) -> dict[int, int]:
    """Counts of exponential bucket indexes at a scale ``shift`` lower: ``shift`` halvings merge index pairs."""
    merged: dict[int, int] = {}
    for position, count in enumerate(counts):
        if count:
            index = (offset + position) >> shift
            merged[index] = merged.get(index, 0) + count
    return merged


def _difference(current: dict[int, int], previous: dict[int, int]) -> dict[int, int] | None:
    result = dict(current)
    for index, count in previous.items():
        left = result.get(index, 0) - count
        if left < 0:
            return None
        result[index] = left
    return {index: count for index, count in result.items() if count}


def _dense(counts: dict[int, int]) -> tuple[int, tuple[int, ...]]:
    if not counts:
        return 0, ()
    low, high = min(counts), max(counts)
    return low, tuple(counts.get(index, 0) for index in range(low, high + 1))


def histogram_increment(
    histogram: Histogram,
    *,
    count: int,
    total: float | None,
    start_time: datetime | None,
    minimum: float | None,
    maximum: float | None,
    exact: bool,
) -> Increment | None:
    """The row of ``count`` values spread over ``histogram``'s buckets (None when there are none).

    ``minimum``/``maximum`` bound the open-ended buckets (a cumulative point's running extremes bound its
    increment too); they are stored as the row's extremes only when ``exact`` (they are the increment's own).
    The mean is ``total / count``, else the bucket-midpoint estimate.
    """
    if count <= 0:
        return None
    buckets = histogram.buckets(minimum=minimum, maximum=maximum)
    mean = total / count if total is not None and math.isfinite(total) else bucket_mean(buckets)
    if mean is None:
        mean = minimum if minimum is not None and minimum == maximum else None
    if mean is None:
        return None
    keys, counts = sketch_from_buckets(buckets)
    return Increment(
        mean,
        start_time=start_time,
        sample_count=min(count, MAX_SAMPLE_COUNT),
        percentiles=quantiles(buckets, PERCENTILES),
        sketch_keys=keys or None,
        sketch_counts=counts or None,
        minimum=minimum if exact else None,
        maximum=maximum if exact else None,
    )


def samples_increment(values: Sequence[float], *, start_time: datetime | None = None) -> Increment | None:
    """The row of raw values: exact count, mean, extremes and percentiles (``percentile_cont``), and their sketch."""
    if not values:
        return None
    ordered = sorted(values)
    keys_counts: dict[int, int] = {}
    for value in ordered:
        key = key_of(value)
        keys_counts[key] = keys_counts.get(key, 0) + 1
    keys = sorted(keys_counts)
    return Increment(
        math.fsum(ordered) / len(ordered),
        start_time=start_time,
        sample_count=min(len(ordered), MAX_SAMPLE_COUNT),
        percentiles=tuple(_percentile_cont(ordered, q) for q in PERCENTILES),
        sketch_keys=keys,
        sketch_counts=[keys_counts[key] for key in keys],
        minimum=ordered[0],
        maximum=ordered[-1],
    )


def _percentile_cont(ordered: Sequence[float], fraction: float) -> float:
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def sketch_from_buckets(buckets: Sequence[Bucket]) -> tuple[list[int], list[int]]:
    """The sketch (stored form: ascending keys, counts) of values spread over ``buckets``.

    Each bucket's count is shared among the sketch buckets its range overlaps, in proportion to the overlap
    (values are taken as evenly spread within a bucket), rounded by largest remainder so the counts add up
    exactly; a bucket holding fewer values than the sketch buckets it spans places its values evenly instead
    (the same spread, rounded, at a cost in proportion to its count). A bucket reaching down to 0 starts at ``upper * ZERO_FLOOR``. The value at any rank then lies in
    the histogram bucket that holds that rank: the error is at most that bucket's width, plus the sketch's own.
    """
    merged: dict[int, int] = {}
    for bucket in buckets:
        if bucket.count <= 0:
            continue
        for key, count in _bucket_sketch(bucket.lower, bucket.upper, bucket.count):
            merged[key] = merged.get(key, 0) + count
    keys = sorted(merged)
    return keys, [merged[key] for key in keys]


@functools.lru_cache(maxsize=16_384)
def _bucket_sketch(lower: float, upper: float, count: int) -> tuple[tuple[int, int], ...]:
    """The sketch (key, count) pairs of ``count`` values spread over ``[lower, upper]``: a pure function of its
    arguments, cached because successive points of a stream repeat the same bounds and often the same counts."""
    if count < _span(lower, upper):
        # fewer values than sketch buckets: the values themselves, evenly placed (the same spread, rounded, in
        # O(count) instead of O(sketch buckets))
        placed: dict[int, int] = {}
        step = (upper - lower) / count
        for position in range(count):
            key = key_of(max(-MAX_MAGNITUDE, min(lower + step * (position + 0.5), MAX_MAGNITUDE)))
            placed[key] = placed.get(key, 0) + 1
        return tuple(placed.items())
    return tuple(largest_remainder(count, _shares(lower, upper)))


def largest_remainder(total: int, shares: Sequence[tuple[int, float]]) -> list[tuple[int, int]]:
    """``total`` split by the weights of ``shares`` ((key, weight) pairs), in integers that add up to ``total``."""
    weight = math.fsum(share for _, share in shares)
    if weight <= 0:
        return [(shares[0][0], total)] if shares else []
    exact = [total * share / weight for _, share in shares]
    counts = [math.floor(amount) for amount in exact]
    left = total - sum(counts)
    if left > 0:
        for i in heapq.nsmallest(left, range(len(exact)), key=lambda i: (counts[i] - exact[i], i)):
            counts[i] += 1
    return [(shares[i][0], count) for i, count in enumerate(counts) if count]


def _span(lower: float, upper: float) -> int:
    """About how many sketch buckets the range ``[lower, upper]`` overlaps."""
    if not upper > lower:
        return 1
    span = 0
    for low, high in ((max(lower, 0.0), upper), (max(-upper, 0.0), -lower)):
        if high > 0:
            high = min(high, MAX_MAGNITUDE)
            span += key_of(high) - key_of(max(low, high * ZERO_FLOOR, MIN_MAGNITUDE)) + 1
    return span


def _shares(lower: float, upper: float) -> list[tuple[int, float]]:
    """(sketch key, fraction of the range) for the range ``[lower, upper]``."""
    lower = max(-MAX_MAGNITUDE, min(lower, MAX_MAGNITUDE))
    upper = max(-MAX_MAGNITUDE, min(upper, MAX_MAGNITUDE))
    if not upper > lower:
        return [(key_of(lower), 1.0)]
    width = upper - lower
    shares: list[tuple[int, float]] = []
    if upper > 0:
        positive_low = max(lower, 0.0)
        part = (upper - positive_low) / width
        shares += [(key, part * share) for key, share in _magnitude_shares(positive_low, upper)]
    if lower < 0:
        negative_high = min(upper, 0.0)
        part = (negative_high - lower) / width
        shares += [(-key, part * share) for key, share in _magnitude_shares(-negative_high, -lower)]
    return shares


def _magnitude_shares(low: float, high: float) -> list[tuple[int, float]]:
    """(positive sketch key, fraction) of the magnitudes ``(low, high]``, ``0 <= low < high``."""
    if high < MIN_MAGNITUDE:
        return [(0, 1.0)]
    floor = max(low, high * ZERO_FLOOR, MIN_MAGNITUDE)
    first, last = key_of(floor), key_of(high)
    if last - first > MAX_SPREAD:
        return [(key_of(math.sqrt(floor * high)), 1.0)]
    width = high - low
    shares = []
    bucket_high = math.exp((first - KEY_OFFSET) * LN_GAMMA)
    covered = low  # the first sketch bucket also takes everything below it
    for key in range(first, last + 1):
        top = min(high, bucket_high)
        shares.append((key, max(0.0, top - covered) / width))
        covered = max(covered, top)
        bucket_high *= GAMMA
    return shares
