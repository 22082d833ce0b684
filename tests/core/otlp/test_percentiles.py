"""Percentiles interpolated from histogram buckets, checked against values computed by hand.

Rule under test: the rank is ``q * total``; the answer lies in the first non-empty bucket whose cumulative
count reaches the rank, at ``lower + (upper - lower) * (rank - count_before) / bucket_count``.
"""

from __future__ import annotations

import math

import pytest

from fernando_telemetry.core.otlp.percentiles import Bucket, bucket_mean, explicit_buckets, exponential_buckets, quantile

QUANTILES = (0.5, 0.9, 0.95, 0.99)


def percentiles(buckets: list[Bucket]) -> list[float | None]:
    return [quantile(buckets, q) for q in QUANTILES]


class TestExplicitBuckets:
    @pytest.mark.parametrize(
        ("bounds", "counts", "minimum", "maximum", "expected"),
        [
            pytest.param(
                [10, 20, 50],
                [2, 4, 3, 1],
                None,
                None,
                [Bucket(0, 10, 2), Bucket(10, 20, 4), Bucket(20, 50, 3), Bucket(50, 50, 1)],
                id="first-from-0-overflow-at-last-bound",
            ),
            pytest.param(
                [10, 20, 50],
                [2, 4, 3, 1],
                2,
                80,
                [Bucket(2, 10, 2), Bucket(10, 20, 4), Bucket(20, 50, 3), Bucket(50, 80, 1)],
                id="ends-from-min-and-max",
            ),
            pytest.param(
                [10, 20, 50],
                [0, 4, 0, 0],
                12,
                18,
                [Bucket(12, 12, 0), Bucket(12, 18, 4), Bucket(18, 18, 0), Bucket(18, 18, 0)],
                id="clamped-to-min-max",
            ),
            pytest.param(
                [-5, 0, 5],
                [1, 1, 1, 1],
                None,
                None,
                [Bucket(-5, -5, 1), Bucket(-5, 0, 1), Bucket(0, 5, 1), Bucket(5, 5, 1)],
                id="non-positive-first-bound",
            ),
            pytest.param([], [10], 1, 3, [Bucket(1, 3, 10)], id="no-bounds-with-min-max"),
            pytest.param([], [10], None, 3, [], id="no-bounds-without-min"),
            pytest.param([1, 2], [], None, None, [], id="no-counts"),
        ],
    )
    def test_buckets_get_finite_bounds(
        self, bounds: list[float], counts: list[int], minimum: float | None, maximum: float | None, expected: list[Bucket]
    ) -> None:
        """Open ends are closed by min/max when given, else 0 (or the first bound) and the last bound."""
        assert explicit_buckets(bounds, counts, minimum=minimum, maximum=maximum) == expected

    @pytest.mark.parametrize(
        ("bounds", "counts", "message"),
        [
            ([1, 2], [1, 1], "bucket_counts has 2 entries; with 2 explicit_bounds it must have 3"),
            ([1, 2], [1, 1, 1, 1], "must have 3"),
            ([2, 1], [1, 1, 1], "strictly increasing"),
            ([1, 1], [1, 1, 1], "strictly increasing"),
            ([1, math.inf], [1, 1, 1], "finite"),
        ],
    )
    def test_an_inconsistent_histogram_is_refused(self, bounds: list[float], counts: list[int], message: str) -> None:
        """Counts that do not match the bounds, or bounds out of order, raise ``ValueError`` saying so."""
        with pytest.raises(ValueError, match=message):
            explicit_buckets(bounds, counts)


class TestExponentialBuckets:
    @pytest.mark.parametrize(
        ("scale", "offset", "counts", "expected"),
        [
            pytest.param(0, 0, [1, 2, 1], [Bucket(1, 2, 1), Bucket(2, 4, 2), Bucket(4, 8, 1)], id="scale-0-base-2"),
            pytest.param(-1, 1, [2], [Bucket(4, 16, 2)], id="scale-minus-1-base-4"),
            pytest.param(1, -2, [4], [Bucket(0.5, 2**-0.5, 4)], id="scale-1-base-root-2"),
            pytest.param(3, 8, [1], [Bucket(2.0, 2 ** (9 / 8), 1)], id="scale-3"),
        ],
    )
    def test_positive_bucket_index_i_holds_base_to_the_i_up_to_base_to_the_i_plus_1(
        self, scale: int, offset: int, counts: list[int], expected: list[Bucket]
    ) -> None:
        """With base 2**(2**-scale), positive bucket i holds (base**i, base**(i+1)]."""
        buckets = exponential_buckets(scale, positive_offset=offset, positive_counts=counts)
        assert [(b.lower, b.upper, b.count) for b in buckets] == [pytest.approx((b.lower, b.upper, b.count)) for b in expected]

    def test_negative_zero_and_positive_buckets_ascend(self) -> None:
        """Negative buckets mirror the positive ones and come first, most negative first, then zero, then positive."""
        buckets = exponential_buckets(
            0, zero_count=3, negative_offset=0, negative_counts=[1, 5], positive_offset=1, positive_counts=[2]
        )
        assert buckets == [Bucket(-4, -2, 5), Bucket(-2, -1, 1), Bucket(0, 0, 3), Bucket(2, 4, 2)]

    def test_min_and_max_clamp_the_outer_buckets(self) -> None:
        """The recorded min and max narrow the buckets that reach past them."""
        buckets = exponential_buckets(0, positive_counts=[1, 2, 1], minimum=1.5, maximum=5)
        assert buckets == [Bucket(1.5, 2, 1), Bucket(2, 4, 2), Bucket(4, 5, 1)]

    def test_a_bound_too_large_for_a_float_is_infinite(self) -> None:
        """An index past the float range gives an infinite bound instead of an overflow error."""
        assert exponential_buckets(0, positive_offset=2000, positive_counts=[1]) == [Bucket(math.inf, math.inf, 1)]


class TestQuantile:
    @pytest.mark.parametrize(
        ("buckets", "expected"),
        [
            pytest.param(explicit_buckets([10, 20, 50], [2, 4, 3, 1]), [17.5, 50, 50, 50], id="explicit"),
            pytest.param(
                explicit_buckets([10, 20, 50], [2, 4, 3, 1], minimum=2, maximum=80), [17.5, 50, 65, 77], id="explicit-min-max"
            ),
            pytest.param(
                explicit_buckets([10, 20, 50], [0, 4, 0, 0], minimum=12, maximum=18),
                [15, 17.4, 17.7, 17.94],
                id="one-bucket-clamped",
            ),
            pytest.param(explicit_buckets([-5, 0, 5], [1, 1, 1, 1]), [0, 5, 5, 5], id="negative-bounds"),
            pytest.param(explicit_buckets([], [10], minimum=1, maximum=3), [2, 2.8, 2.9, 2.98], id="single-bucket"),
            pytest.param(exponential_buckets(0, positive_counts=[1, 2, 1]), [3, 6.4, 7.2, 7.84], id="exponential"),
            pytest.param(exponential_buckets(0, positive_counts=[1, 2, 1], maximum=5), [3, 4.6, 4.8, 4.96], id="exponential-max"),
            pytest.param(
                exponential_buckets(1, positive_offset=-2, positive_counts=[4]),
                [0.5 + (2**-0.5 - 0.5) * q for q in (0.5, 0.9, 0.95, 0.99)],
                id="exponential-scale-1",
            ),
            pytest.param(
                exponential_buckets(0, zero_count=1, negative_counts=[2], positive_offset=1, positive_counts=[1]),
                [-1, 3.2, 3.6, 3.92],
                id="exponential-negative-zero-positive",
            ),
            pytest.param(exponential_buckets(0, zero_count=5), [0, 0, 0, 0], id="only-zeros"),
        ],
    )
    def test_percentiles_match_hand_computed_values(self, buckets: list[Bucket], expected: list[float]) -> None:
        """p50/p90/p95/p99 equal the values worked out by hand from the rule in the module docstring."""
        assert percentiles(buckets) == pytest.approx(expected)

    @pytest.mark.parametrize(
        ("q", "expected"),
        [(0.0, 0.0), (0.1, 5.0), (0.2, 10.0), (0.25, 11.25), (0.6, 20.0), (0.75, 35.0), (1.0, 50.0)],
    )
    def test_rank_walks_the_cumulative_counts(self, q: float, expected: float) -> None:
        """Each rank lands in the right bucket: q*10 against cumulative counts 2, 6, 9, 10."""
        assert quantile(explicit_buckets([10, 20, 50], [2, 4, 3, 1]), q) == pytest.approx(expected)

    def test_empty_buckets_are_skipped(self) -> None:
        """A rank on a bucket boundary goes to the next non-empty bucket, not to an empty one between."""
        buckets = [Bucket(0, 1, 1), Bucket(1, 2, 0), Bucket(2, 3, 1)]
        assert quantile(buckets, 0.75) == pytest.approx(2.5)

    @pytest.mark.parametrize(
        "buckets",
        [
            pytest.param([], id="none"),
            pytest.param([Bucket(0, 1, 0), Bucket(1, 2, 0)], id="all-empty"),
            pytest.param(exponential_buckets(0, positive_offset=2000, positive_counts=[1]), id="infinite"),
        ],
    )
    def test_no_answer_without_values_or_finite_bounds(self, buckets: list[Bucket]) -> None:
        """Buckets with no values, or only infinite bounds, have no percentile."""
        assert quantile(buckets, 0.5) is None


class TestBucketMean:
    def test_the_mean_puts_each_value_at_its_bucket_midpoint(self) -> None:
        """(5*2 + 15*4 + 35*3 + 50*1) / 10 = 22.5."""
        assert bucket_mean(explicit_buckets([10, 20, 50], [2, 4, 3, 1])) == pytest.approx(22.5)

    def test_no_values_no_mean(self) -> None:
        """Without values there is no mean."""
        assert bucket_mean([Bucket(0, 1, 0)]) is None
