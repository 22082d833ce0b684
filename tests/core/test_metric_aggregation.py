"""combine: the parts of a bucket add up to its value, percentiles from merged sketches, never means of means."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fernando_telemetry.core.metric_aggregation import MetricPart, combine
from fernando_telemetry.core.series import Aggregation
from fernando_telemetry.core.sketch import Sketch
from tests.core.test_sketch import allowed_error, exact_quantile


def part(values: list[float], *, exact: bool = False, value_sum: float | None = None) -> MetricPart:
    keys, counts = Sketch.of(values).to_arrays()
    ordered = sorted(values)
    return MetricPart(
        samples=1,
        observations=len(values),
        value_sum=sum(values) if value_sum is None else value_sum,
        weighted_sum=sum(values),
        value_min=ordered[0],
        value_max=ordered[-1],
        quantiles=tuple(exact_quantile(ordered, q) for q in (0.5, 0.9, 0.95, 0.99)) if exact else None,
        sketch_keys=keys,
        sketch_counts=counts,
    )


LOW = [float(value) for value in range(1, 51)]
HIGH = [float(value) for value in range(51, 101)]


class TestCombine:
    @pytest.mark.parametrize(
        ("aggregation", "expected"),
        [
            (Aggregation.COUNT, 100.0),
            (Aggregation.SUM, 5050.0),
            (Aggregation.AVG, 50.5),
            (Aggregation.MIN, 1.0),
            (Aggregation.MAX, 100.0),
        ],
    )
    def test_counts_sums_and_extremes_add_up(self, aggregation: Aggregation, expected: float) -> None:
        """Two halves of 1..100: count 100, sum 5050, avg 50.5 (not the mean of the halves' means), min 1, max 100."""
        assert combine([part(LOW), part(HIGH)], aggregation) == pytest.approx(expected)

    @pytest.mark.parametrize("aggregation", [Aggregation.P50, Aggregation.P90, Aggregation.P95, Aggregation.P99])
    def test_percentiles_come_from_the_merged_sketches(self, aggregation: Aggregation) -> None:
        """The halves' exact percentiles are ignored when merging: p95 of both is about 95.05, not 72.5."""
        fraction = aggregation.quantile
        assert fraction is not None
        ordered = LOW + HIGH
        value = combine([part(LOW, exact=True), part(HIGH, exact=True)], aggregation)
        assert value is not None and abs(value - exact_quantile(ordered, fraction)) <= allowed_error(ordered, fraction)

    def test_one_part_with_exact_percentiles_answers_them(self) -> None:
        """A single part that knows its exact percentiles gives them as they are."""
        assert combine([part(LOW, exact=True)], Aggregation.P90) == exact_quantile(LOW, 0.9)

    def test_sum_is_the_parts_sum_not_the_weighted_one(self) -> None:
        """A counter part's sum is its increments (value_sum), whatever its weighted sum."""
        assert combine([part([1.0, 2.0], value_sum=7.0)], Aggregation.SUM) == 7.0

    def test_no_observation_has_no_average_or_percentile(self) -> None:
        """A part of zero observations: count 0, avg and p50 None."""
        empty = MetricPart(0, 0, 0.0, 0.0, None, None, None, [], [])
        assert combine([empty], Aggregation.COUNT) == 0.0
        assert combine([empty], Aggregation.AVG) is None and combine([empty], Aggregation.P50) is None
        assert combine([empty], Aggregation.MIN) is None

    @pytest.mark.parametrize("aggregation", [Aggregation.P50, Aggregation.P95, Aggregation.P99])
    def test_a_part_without_extremes_is_bounded_by_its_own_sketch(self, aggregation: Aggregation) -> None:
        """A part whose extremes are unknown (a cumulative histogram's later increment): its percentiles are neither
        clamped to another part's extremes nor unbounded, alone or merged."""
        unknown = replace(part(HIGH), value_min=None, value_max=None)
        fraction = {Aggregation.P50: 0.5, Aggregation.P95: 0.95, Aggregation.P99: 0.99}[aggregation]
        for parts, values in (([unknown], HIGH), ([part(LOW), unknown], LOW + HIGH)):
            actual = combine(parts, aggregation)
            ordered = sorted(values)
            assert actual is not None and abs(actual - exact_quantile(ordered, fraction)) <= allowed_error(ordered, fraction)

    def test_rate_is_not_combined_from_parts(self) -> None:
        """rate needs increments and their intervals."""
        with pytest.raises(ValueError, match="rate"):
            combine([part(LOW)], Aggregation.RATE)
