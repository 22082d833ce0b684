"""The percentile sketch: bucket keys, merging, and the error bound on skewed data, property-based.

Every quantile is compared with an exact sorted-list ``percentile_cont`` (rank ``q * (n - 1)``, linear
interpolation), the definition the sketch and the analytics views share.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fernando_telemetry.core.sketch import (
    KEY_LIMIT,
    KEY_OFFSET,
    MAX_MAGNITUDE,
    MIN_MAGNITUDE,
    RELATIVE_ACCURACY,
    Sketch,
    key_of,
    value_of,
)

FRACTIONS = (0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)
# float noise of the interpolation itself, far below the bound being tested
SLACK = 1e-9


def exact_quantile(ordered: Sequence[float], fraction: float) -> float:
    """percentile_cont over a sorted list: interpolate between the values at ranks floor and ceil of q * (n - 1)."""
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def allowed_error(ordered: Sequence[float], fraction: float) -> float:
    """The stated bound: relative to the exact quantile unless its two neighbours have opposite signs."""
    position = fraction * (len(ordered) - 1)
    lower_value, upper_value = ordered[math.floor(position)], ordered[math.ceil(position)]
    if lower_value < 0 < upper_value:
        scale = max(abs(lower_value), abs(upper_value))
    else:
        scale = abs(exact_quantile(ordered, fraction))
    return RELATIVE_ACCURACY * scale * (1 + SLACK) + MIN_MAGNITUDE


def assert_within_bound(values: Sequence[float]) -> None:
    ordered = sorted(values)
    sketch = Sketch.of(values)
    assert sketch.count == len(values)
    for rank in {0, len(ordered) // 3, len(ordered) // 2, len(ordered) - 1}:
        exact = ordered[rank]
        assert abs(sketch.value_at_rank(rank) - exact) <= RELATIVE_ACCURACY * abs(exact) * (1 + SLACK) + MIN_MAGNITUDE
    for fraction, estimate in zip(FRACTIONS, sketch.quantiles(FRACTIONS), strict=True):
        assert estimate is not None
        exact = exact_quantile(ordered, fraction)
        assert abs(estimate - exact) <= allowed_error(ordered, fraction), (fraction, estimate, exact)


# --- skewed distributions, drawn from a seed and parameters Hypothesis chooses ----------------------

Draw = Callable[[random.Random], float]


def lognormal(mu: float, sigma: float) -> Draw:
    return lambda rng: rng.lognormvariate(mu, sigma)


def pareto(alpha: float, scale: float) -> Draw:
    return lambda rng: scale * rng.paretovariate(alpha)


def bimodal(low: float, high: float) -> Draw:
    return lambda rng: rng.gauss(low, low / 10) if rng.random() < 0.8 else rng.gauss(high, high / 10)


distributions = st.one_of(
    st.builds(lognormal, st.floats(-5, 12), st.floats(0.1, 3.0)),
    st.builds(pareto, st.floats(0.5, 3.0), st.floats(1e-3, 1e3)),
    st.builds(bimodal, st.floats(1.0, 100.0), st.floats(1e3, 1e7)),
)


def draw_many(draw: Draw, seed: int, size: int) -> list[float]:
    rng = random.Random(seed)
    return [draw(rng) for _ in range(size)]


samples = st.builds(draw_many, distributions, st.integers(0, 2**32), st.integers(1, 3000))


finite_values = st.floats(min_value=-MAX_MAGNITUDE, max_value=MAX_MAGNITUDE, allow_nan=False, allow_infinity=False)
tiny_values = st.floats(min_value=MIN_MAGNITUDE, max_value=1e-250) | st.floats(min_value=-1e-250, max_value=-MIN_MAGNITUDE)
huge_values = st.floats(min_value=1e250, max_value=MAX_MAGNITUDE) | st.floats(min_value=-MAX_MAGNITUDE, max_value=-1e250)


class TestErrorBound:
    def test_the_stated_bound_is_within_the_promised_one_percent(self) -> None:
        """The sketch's relative accuracy (the bound every test below checks) is at most 1 %."""
        assert 0 < RELATIVE_ACCURACY <= 0.01

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(samples)
    def test_skewed_distributions_stay_within_the_bound(self, values: list[float]) -> None:
        """Lognormal, Pareto and bimodal samples of 1..3000 values: every rank and quantile within 0.75 %."""
        assert_within_bound(values)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(finite_values, min_size=1, max_size=300))
    def test_arbitrary_finite_values_of_both_signs_stay_within_the_bound(self, values: list[float]) -> None:
        """Any doubles, negative, zero and positive, from 1e-300 to 1e300 in magnitude, respect the bound."""
        assert_within_bound(values)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(tiny_values | huge_values | st.just(0.0), min_size=1, max_size=200))
    def test_tiny_and_huge_values_stay_within_the_bound(self, values: list[float]) -> None:
        """Magnitudes near 1e-300 and 1e300, mixed with zeros, keep the relative bound."""
        assert_within_bound(values)

    @settings(max_examples=50, deadline=None)
    @given(finite_values, st.integers(1, 5000))
    def test_constant_data_comes_back_exact(self, value: float, size: int) -> None:
        """A single repeated value is every quantile exactly, because estimates are clamped to min and max."""
        sketch = Sketch.of([value] * size)
        assert sketch.quantiles(FRACTIONS) == [value] * len(FRACTIONS)

    def test_values_under_the_smallest_magnitude_count_as_zero(self) -> None:
        """1e-310 is counted in the zero bucket: its estimate is off by less than MIN_MAGNITUDE."""
        sketch = Sketch.of([1e-310, 5.0, 6.0])
        assert sketch.zero_count == 1
        assert sketch.value_at_rank(0) == pytest.approx(1e-310, abs=MIN_MAGNITUDE)


class TestQuantiles:
    @pytest.mark.parametrize(
        ("values", "fraction", "exact"),
        [
            ([7.0], 0.99, 7.0),
            ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
            ([10.0, 20.0, 30.0, 40.0, 100.0], 0.9, 76.0),
            ([0.0, 10.0], 0.95, 9.5),
            ([-10.0, -5.0, -1.0], 0.5, -5.0),
            ([0.0, 0.0, 0.0, 1.0], 0.5, 0.0),
        ],
    )
    def test_hand_checked_quantiles(self, values: list[float], fraction: float, exact: float) -> None:
        """Small inputs whose percentile_cont is known by hand come back within the bound."""
        estimate = Sketch.of(values).quantile(fraction)
        assert estimate == pytest.approx(exact, rel=RELATIVE_ACCURACY, abs=1e-12)

    def test_an_empty_sketch_has_no_quantile(self) -> None:
        """With nothing counted every quantile is None, like percentile_cont over no rows."""
        assert Sketch().quantiles([0.5, 0.99]) == [None, None]

    def test_fractions_outside_zero_to_one_are_refused(self) -> None:
        """A fraction of 1.5 is a programming error, not a quantile."""
        with pytest.raises(ValueError, match="fractions"):
            Sketch.of([1.0]).quantile(1.5)

    def test_minimum_and_maximum_are_exact(self) -> None:
        """The 0 and 1 quantiles are the exact extremes, not bucket estimates."""
        assert Sketch.of([3.3, 1.1, 2.2]).quantiles([0.0, 1.0]) == [1.1, 3.3]


class TestKeys:
    @pytest.mark.parametrize(
        ("value", "key"),
        [
            (0.0, 0),
            (-0.0, 0),
            (1e-301, 0),
            (1.0, KEY_OFFSET),
            (-1.0, -KEY_OFFSET),
            (math.inf, KEY_LIMIT + KEY_OFFSET),
            (-math.inf, -(KEY_LIMIT + KEY_OFFSET)),
        ],
    )
    def test_known_keys(self, value: float, key: int) -> None:
        """Zero, tiny values, one and the infinities map to the keys the stored form documents."""
        assert key_of(value) == key

    def test_nan_is_refused(self) -> None:
        """NaN has no place in an ordered sketch."""
        with pytest.raises(ValueError, match="NaN"):
            key_of(math.nan)

    @settings(max_examples=300)
    @given(finite_values, finite_values)
    def test_keys_preserve_the_order_of_values(self, first: float, second: float) -> None:
        """A smaller value never gets a larger key, so ascending keys are ascending values."""
        if first <= second:
            assert key_of(first) <= key_of(second)
        else:
            assert key_of(first) >= key_of(second)

    @settings(max_examples=300)
    @given(finite_values)
    def test_a_keys_estimate_is_within_the_bound_of_each_value_it_counts(self, value: float) -> None:
        """value_of(key_of(x)) is within 0.75 % of x."""
        assert abs(value_of(key_of(value)) - value) <= RELATIVE_ACCURACY * abs(value) * (1 + SLACK) + MIN_MAGNITUDE


class TestMerge:
    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.lists(finite_values, max_size=100), min_size=1, max_size=8))
    def test_merging_parts_gives_the_sketch_of_the_whole(self, parts: list[list[float]]) -> None:
        """Sketches of hours merged together equal the sketch of all their values: same buckets, min and max."""
        merged = Sketch()
        for part in parts:
            merged.merge(Sketch.of(part))
        whole = Sketch.of(value for part in parts for value in part)
        assert merged.to_arrays() == whole.to_arrays()
        assert (merged.minimum, merged.maximum, merged.count) == (whole.minimum, whole.maximum, whole.count)

    @settings(max_examples=100, deadline=None)
    @given(samples, st.integers(1, 24))
    def test_quantiles_of_merged_hours_stay_within_the_bound(self, values: list[float], hours: int) -> None:
        """Values split over up to 24 hourly sketches and merged keep the bound against the exact quantiles."""
        merged = Sketch()
        for hour in range(hours):
            merged.merge(Sketch.of(values[hour::hours]))
        ordered = sorted(values)
        for fraction, estimate in zip(FRACTIONS, merged.quantiles(FRACTIONS), strict=True):
            assert estimate is not None
            assert abs(estimate - exact_quantile(ordered, fraction)) <= allowed_error(ordered, fraction)

    @settings(max_examples=100)
    @given(st.lists(finite_values, max_size=200))
    def test_the_stored_form_round_trips(self, values: list[float]) -> None:
        """to_arrays gives ascending keys with positive counts; from_arrays with min and max rebuilds the sketch."""
        sketch = Sketch.of(values)
        keys, counts = sketch.to_arrays()
        assert keys == sorted(set(keys)) and all(count > 0 for count in counts)
        minimum, maximum = (min(values), max(values)) if values else (None, None)
        rebuilt = Sketch.from_arrays(keys, counts, minimum=minimum, maximum=maximum)
        assert rebuilt.to_arrays() == (keys, counts)
        assert rebuilt.quantiles(FRACTIONS) == sketch.quantiles(FRACTIONS)

    def test_mismatched_arrays_are_refused(self) -> None:
        """Keys and counts of different lengths are a corrupt row, not a sketch."""
        with pytest.raises(ValueError, match="2 keys but 1 counts"):
            Sketch.from_arrays([1, 2], [3], minimum=0.0, maximum=1.0)
