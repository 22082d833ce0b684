"""A mergeable percentile sketch with a relative error bound (log-bucketed, as DDSketch).

A value ``x > 0`` is counted in bucket ``k = ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``,
``a = RELATIVE_ACCURACY``; every value of bucket ``k``, the range ``(gamma^(k-1), gamma^k]``, lies within
``a * x`` of the bucket's estimate ``2 * gamma^k / (gamma + 1)``. Negative values are counted by their
magnitude in a mirrored store, zeros (and magnitudes under ``MIN_MAGNITUDE``) in a zero count. Sketches
merge by adding counts, so hourly sketches add up to a day, a week or a month with the same bound.

Quantiles use ``percentile_cont``'s rank definition: for a fraction ``q`` of ``n`` values the rank is
``q * (n - 1)`` (0-based), interpolated linearly between the values at ranks ``floor`` and ``ceil``.
The bound, tested in ``tests/core/test_sketch.py``:

- the value at any rank is within ``RELATIVE_ACCURACY`` (0.75 %) of the exact value at that rank, for
  magnitudes in ``[MIN_MAGNITUDE, MAX_MAGNITUDE]`` (smaller ones count as 0, an absolute error under
  ``MIN_MAGNITUDE``);
- so an interpolated quantile is within 0.75 % of the exact ``percentile_cont`` whenever the two
  neighbouring values do not have opposite signs (durations never do); across a sign change the error is
  at most ``0.75 % * max(|lower|, |upper|)``;
- the first and last ranks are the exact minimum and maximum, and every other estimate is clamped to
  them, so constant data comes back exact.

Stored form (the rollup tables' ``*_sketch_keys int[]`` and ``*_sketch_counts bigint[]``): one ascending
array of order-preserving keys and one of counts. Key 0 is the zero count; a positive bucket ``k`` is
``k + KEY_OFFSET``; a negative value's bucket ``k`` is ``-(k + KEY_OFFSET)``; so sorting the keys sorts
the values, and SQL merges sketches with ``unnest`` and ``GROUP BY key``. The SQL functions
``rollup_sketch_key``, ``rollup_sketch_value`` and ``rollup_sketch_quantiles`` (revision 0003) compute the
same numbers. Pure; imports only the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "GAMMA",
    "KEY_LIMIT",
    "KEY_OFFSET",
    "LN_GAMMA",
    "MAX_MAGNITUDE",
    "MIN_MAGNITUDE",
    "RELATIVE_ACCURACY",
    "Sketch",
    "key_of",
    "value_of",
]

RELATIVE_ACCURACY = 0.0075
"""Largest relative error of the value at any rank (0.75 %), under the 1 % the product promises."""

GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LN_GAMMA = math.log(GAMMA)

MIN_MAGNITUDE = 1e-300
"""Magnitudes below this are counted as zero (their absolute error is below it)."""

MAX_MAGNITUDE = 1e300
"""The relative bound holds up to this magnitude; larger values are counted, their estimate is clamped."""

KEY_OFFSET = 50_000
"""Added to a bucket exponent in the stored key, so positive keys are > 0, negative < 0 and zero is 0."""

KEY_LIMIT = 49_999
"""Bucket exponents are clamped to ``[-KEY_LIMIT, KEY_LIMIT]`` (only infinities reach it)."""

_EXP_ARGUMENT_RANGE = (-708.0, 709.0)  # exp() beyond it under- or overflows a double (PostgreSQL raises)


def _exponent(magnitude: float) -> int:
    if math.isinf(magnitude):
        return KEY_LIMIT
    return max(-KEY_LIMIT, min(KEY_LIMIT, math.ceil(math.log(magnitude) / LN_GAMMA)))


def _estimate(exponent: int) -> float:
    low, high = _EXP_ARGUMENT_RANGE
    return 2.0 * math.exp(max(low, min(exponent * LN_GAMMA, high))) / (GAMMA + 1.0)


def key_of(value: float) -> int:
    """The stored, order-preserving key of the bucket that counts ``value``."""
    if math.isnan(value):
        raise ValueError("a sketch cannot count NaN")
    magnitude = abs(value)
    if magnitude < MIN_MAGNITUDE:
        return 0
    exponent = _exponent(magnitude) + KEY_OFFSET
    return exponent if value > 0 else -exponent


def value_of(key: int) -> float:
    """The estimate of every value counted under the stored ``key``."""
    if key == 0:
        return 0.0
    estimate = _estimate(abs(key) - KEY_OFFSET)
    return estimate if key > 0 else -estimate


@dataclass(slots=True)
class Sketch:
    """Counts of values per bucket, with the exact count, minimum and maximum of what was added.

    ``positive`` and ``negative`` map a bucket exponent (``ceil(log_gamma(|x|))``) to its count;
    ``zero_count`` counts zeros. Mutable accumulator: ``add`` and ``merge`` change it in place.
    """

    positive: dict[int, int] = field(default_factory=dict)
    negative: dict[int, int] = field(default_factory=dict)
    zero_count: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf

    @classmethod
    def of(cls, values: Iterable[float]) -> Sketch:
        sketch = cls()
        for value in values:
            sketch.add(value)
        return sketch

    @classmethod
    def from_arrays(
        cls, keys: Sequence[int] | None, counts: Sequence[int] | None, *, minimum: float | None, maximum: float | None
    ) -> Sketch:
        """The sketch stored as ``keys``/``counts`` (as in a rollup row) with that row's minimum and maximum;
        NULLs (a row without values) give an empty sketch. Unknown extremes of a sketch with values (a cumulative
        histogram's later increment) are the estimates of its lowest and highest counted keys: the sketch is
        bounded by its own distribution, not by another's extremes nor left unbounded."""
        keys, counts = keys or [], counts or []
        if len(keys) != len(counts):
            raise ValueError(f"{len(keys)} keys but {len(counts)} counts")
        counted = [key for key, count in zip(keys, counts, strict=True) if count > 0]
        if minimum is None and counted:
            minimum = value_of(min(counted))
        if maximum is None and counted:
            maximum = value_of(max(counted))
        sketch = cls(
            minimum=math.inf if minimum is None else minimum,
            maximum=-math.inf if maximum is None else maximum,
        )
        for key, count in zip(keys, counts, strict=True):
            sketch._add_key(key, count)
        return sketch

    @property
    def count(self) -> int:
        return self.zero_count + sum(self.positive.values()) + sum(self.negative.values())

    def add(self, value: float, count: int = 1) -> None:
        if count <= 0:
            return
        self._add_key(key_of(value), count)
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def merge(self, other: Sketch) -> None:
        """Add every count of ``other`` to this sketch: the result is the sketch of both inputs together."""
        for exponent, count in other.positive.items():
            self.positive[exponent] = self.positive.get(exponent, 0) + count
        for exponent, count in other.negative.items():
            self.negative[exponent] = self.negative.get(exponent, 0) + count
        self.zero_count += other.zero_count
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    def to_arrays(self) -> tuple[list[int], list[int]]:
        """The stored form: ascending keys and their counts."""
        pairs = [(-(exponent + KEY_OFFSET), count) for exponent, count in self.negative.items()]
        if self.zero_count:
            pairs.append((0, self.zero_count))
        pairs += [(exponent + KEY_OFFSET, count) for exponent, count in self.positive.items()]
        pairs.sort()
        return [key for key, _ in pairs], [count for _, count in pairs]

    def value_at_rank(self, rank: int) -> float:
        """Estimate of the ``rank``-th smallest value (0-based): the exact minimum and maximum at the ends,
        otherwise the bucket estimate clamped to them."""
        total = self.count
        if not 0 <= rank < total:
            raise IndexError(f"rank {rank} outside 0..{total - 1}")
        if rank == 0:
            return self.minimum
        if rank == total - 1:
            return self.maximum
        seen = 0
        keys, counts = self.to_arrays()
        for key, count in zip(keys, counts, strict=True):
            seen += count
            if seen > rank:
                return min(max(value_of(key), self.minimum), self.maximum)
        raise AssertionError("unreachable: counts add up to the total")

    def quantile(self, fraction: float) -> float | None:
        """The ``fraction`` quantile as ``percentile_cont`` defines it; None for an empty sketch."""
        return self.quantiles([fraction])[0]

    def quantiles(self, fractions: Sequence[float]) -> list[float | None]:
        """Several quantiles in one walk over the buckets (fractions in any order, each in [0, 1])."""
        if any(not 0.0 <= fraction <= 1.0 for fraction in fractions):
            raise ValueError(f"fractions must lie in [0, 1], got {list(fractions)}")
        total = self.count
        if total == 0:
            return [None for _ in fractions]
        keys, counts = self.to_arrays()
        cumulative: list[int] = []
        seen = 0
        for count in counts:
            seen += count
            cumulative.append(seen)

        def at(rank: int) -> float:
            if rank == 0:
                return self.minimum
            if rank == total - 1:
                return self.maximum
            # first bucket whose cumulative count passes the rank (binary search)
            low, high = 0, len(cumulative) - 1
            while low < high:
                middle = (low + high) // 2
                if cumulative[middle] > rank:
                    high = middle
                else:
                    low = middle + 1
            return min(max(value_of(keys[low]), self.minimum), self.maximum)

        results: list[float | None] = []
        for fraction in fractions:
            position = fraction * (total - 1)
            lower, upper = math.floor(position), math.ceil(position)
            low_value = at(lower)
            high_value = low_value if upper == lower else at(upper)
            results.append(low_value + (high_value - low_value) * (position - lower))
        return results

    def _add_key(self, key: int, count: int) -> None:
        if key == 0:
            self.zero_count += count
        elif key > 0:
            exponent = key - KEY_OFFSET
            self.positive[exponent] = self.positive.get(exponent, 0) + count
        else:
            exponent = -key - KEY_OFFSET
            self.negative[exponent] = self.negative.get(exponent, 0) + count
