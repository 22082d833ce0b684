"""Cumulative points to increments, histogram subtraction and buckets to sketches: pure arithmetic."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from fernando_telemetry.core.buckets import Bucket
from fernando_telemetry.core.metric_points import (
    CumulativePoint,
    Histogram,
    Increment,
    StreamState,
    advance,
    largest_remainder,
    samples_increment,
    sketch_from_buckets,
    subtract_histogram,
)
from fernando_telemetry.core.sketch import RELATIVE_ACCURACY, Sketch

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(points: list[CumulativePoint]) -> list[Increment | None]:
    state: StreamState | None = None
    increments = []
    for point in points:
        increment, state = advance(state, point)
        increments.append(increment)
    return increments


class TestCounterStreams:
    def test_increments_are_differences_and_a_drop_counts_from_zero(self) -> None:
        """10 -> 15 -> 3 (a reset) -> 8: increments 10 (whole, from the start), 5, 3, 5, each over its interval."""
        points = [CumulativePoint("number", at(s), at(0), value=v) for s, v in ((10, 10.0), (20, 15.0), (30, 3.0), (40, 8.0))]
        increments = run(points)
        assert [i.value for i in increments if i] == [10.0, 5.0, 3.0, 5.0]
        assert [i.start_time for i in increments if i] == [at(0), at(10), at(20), at(30)]
        assert [i.cumulative_value for i in increments if i] == [10.0, 15.0, 3.0, 8.0]

    def test_a_repeat_at_or_before_the_last_time_is_ignored(self) -> None:
        """A point not newer than the stream's last one (a retried export) stores nothing and leaves the state."""
        state: StreamState | None = None
        _, state = advance(state, CumulativePoint("number", at(10), at(0), value=10.0))
        for seconds in (10, 5):
            increment, same = advance(state, CumulativePoint("number", at(seconds), at(0), value=99.0))
            assert (increment, same) == (None, state)

    def test_without_a_start_the_first_point_is_a_baseline_of_zero(self) -> None:
        """A running total with no known start: the first point adds 0 and keeps its total; the next adds the difference."""
        increments = run(
            [CumulativePoint("number", at(10), None, value=500.0), CumulativePoint("number", at(20), None, value=520.0)]
        )
        assert [(i.value, i.start_time, i.cumulative_value) for i in increments if i] == [
            (0.0, None, 500.0),
            (20.0, at(10), 520.0),
        ]


def explicit(*counts: int) -> Histogram:
    return Histogram(tuple(counts), bounds=(10.0, 20.0, 50.0))


class TestHistogramStreams:
    def test_the_increment_is_the_bucket_difference(self) -> None:
        """Counts, count and sum are subtracted; the extremes of a later increment are unknown."""
        first = CumulativePoint(
            "histogram", at(10), at(0), histogram=explicit(1, 2, 0, 0), count=3, total=40.0, minimum=5, maximum=18
        )
        second = CumulativePoint(
            "histogram", at(20), at(0), histogram=explicit(1, 3, 2, 0), count=6, total=120.0, minimum=5, maximum=45
        )
        whole, later = run([first, second])
        assert whole is not None and later is not None
        assert (whole.sample_count, whole.value, whole.minimum, whole.maximum) == (3, pytest.approx(40 / 3), 5, 18)
        assert (later.sample_count, later.value, later.minimum, later.maximum, later.start_time) == (
            3,
            pytest.approx(80 / 3),
            None,
            None,
            at(10),
        )
        assert sum(later.sketch_counts or ()) == 3

    def test_unchanged_counts_store_nothing(self) -> None:
        """A repeated export of the same totals is an interval without values: no row."""
        point = CumulativePoint("histogram", at(10), at(0), histogram=explicit(1, 2, 0, 0), count=3, total=40.0)
        later = CumulativePoint("histogram", at(20), at(0), histogram=explicit(1, 2, 0, 0), count=3, total=40.0)
        assert run([point, later])[1] is None

    @pytest.mark.parametrize(
        "second",
        [
            explicit(0, 1, 0, 0),  # a bucket dropped
            Histogram((1, 2, 0), bounds=(10.0, 20.0)),  # the bounds changed
        ],
    )
    def test_a_drop_or_new_bounds_is_a_reset(self, second: Histogram) -> None:
        """After a reset the point is counted whole, from zero."""
        first = CumulativePoint("histogram", at(10), at(0), histogram=explicit(1, 2, 0, 0), count=3, total=40.0)
        reset = CumulativePoint("histogram", at(20), at(0), histogram=second, count=second.total, total=15.0)
        increment = run([first, reset])[1]
        assert increment is not None and increment.sample_count == second.total

    def test_exponential_counts_are_compared_at_the_lower_scale(self) -> None:
        """The SDK lowers the scale as the range grows: the previous counts are merged to the new scale first."""
        before = Histogram((1, 1, 1, 1), scale=1, offset=0)  # indexes 0..3 at scale 1
        after = Histogram((3, 3), scale=0, offset=0)  # indexes 0, 1 at scale 0 hold 2 + 2 old, 1 + 1 new
        difference = subtract_histogram(after, before)
        assert difference == Histogram((1, 1), scale=0, offset=0)
        assert subtract_histogram(before, after) is None  # a higher scale cannot follow from adding values

    def test_summary_increments_use_count_and_sum_and_keep_the_quantiles(self) -> None:
        """A summary's increment is its count and sum difference; the quantiles are as sent."""
        first = CumulativePoint("summary", at(10), at(0), count=10, total=100.0, percentiles=(9.0, None, None, None))
        second = CumulativePoint("summary", at(20), at(0), count=30, total=500.0, percentiles=(12.0, None, None, None))
        _, later = run([first, second])
        assert later is not None
        assert (later.sample_count, later.value, later.percentiles[0], later.sketch_keys) == (20, 20.0, 12.0, None)


class TestBucketsToSketch:
    @pytest.mark.parametrize(
        ("total", "weights"),
        [(10, [1.0, 1.0, 1.0]), (1, [0.2, 0.5, 0.3]), (7, [0.001, 0.999]), (1000, [1 / 7] * 7)],
    )
    def test_largest_remainder_adds_up(self, total: int, weights: list[float]) -> None:
        """The integer shares add up to the total, each within 1 of its exact share."""
        shares = largest_remainder(total, list(enumerate(weights)))
        assert sum(count for _, count in shares) == total
        for key, count in shares:
            assert abs(count - total * weights[key] / sum(weights)) < 1

    def test_every_rank_lies_in_its_histogram_bucket(self) -> None:
        """Values spread over buckets: the sketch's value at each rank is inside the bucket holding that rank
        (give or take the sketch's own relative error)."""
        buckets = [
            Bucket(1.0, 5.0, 5),
            Bucket(5.0, 10.0, 5),
            Bucket(10.0, 25.0, 15),
            Bucket(25.0, 50.0, 25),
            Bucket(50.0, 100.0, 50),
        ]
        keys, counts = sketch_from_buckets(buckets)
        assert sum(counts) == 100
        sketch = Sketch.from_arrays(keys, counts, minimum=1.0, maximum=100.0)
        rank = 0
        for bucket in buckets:
            for _ in range(bucket.count):
                value = sketch.value_at_rank(rank)
                assert bucket.lower * (1 - RELATIVE_ACCURACY) <= value <= bucket.upper * (1 + RELATIVE_ACCURACY)
                rank += 1

    def test_zero_negative_and_point_buckets(self) -> None:
        """A bucket from 0, one across 0 and a single-value bucket keep their counts."""
        keys, counts = sketch_from_buckets([Bucket(-4.0, 2.0, 6), Bucket(0.0, 5.0, 10), Bucket(7.0, 7.0, 3)])
        assert sum(counts) == 19
        sketch = Sketch.from_arrays(keys, counts, minimum=-4.0, maximum=7.0)
        assert sketch.value_at_rank(18) == 7.0
        assert any(key < 0 for key in keys)

    def test_raw_samples_are_exact(self) -> None:
        """Raw samples give the exact count, mean, extremes and percentile_cont percentiles, and a sketch within its bound."""
        rng = random.Random(7)
        values = [rng.lognormvariate(3, 1) for _ in range(999)]
        increment = samples_increment(values)
        assert increment is not None
        ordered = sorted(values)
        assert (increment.sample_count, increment.minimum, increment.maximum) == (999, ordered[0], ordered[-1])
        assert increment.value == pytest.approx(math.fsum(values) / 999)
        assert increment.percentiles[0] == ordered[499]
        sketch = Sketch.from_arrays(increment.sketch_keys, increment.sketch_counts, minimum=ordered[0], maximum=ordered[-1])
        assert sketch.quantile(0.5) == pytest.approx(ordered[499], rel=RELATIVE_ACCURACY)
