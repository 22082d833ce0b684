"""Histogram buckets (OTLP explicit-bounds and exponential) as finite ranges, and percentiles estimated from them.

Every histogram is first turned into ascending ``Bucket``s with finite bounds; ``quantile`` then finds the
bucket holding the rank ``q * total`` and interpolates linearly between that bucket's lower and upper
bound. Imports only the standard library.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bucket", "bucket_mean", "exponential_buckets", "explicit_buckets", "quantile", "quantiles"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """``count`` values lying between ``lower`` and ``upper`` (equal bounds: all of them at that one value)."""

    lower: float
    upper: float
    count: int


def explicit_buckets(
    bounds: Sequence[float], counts: Sequence[int], *, minimum: float | None = None, maximum: float | None = None
) -> list[Bucket]:
    """The buckets of an explicit-bounds histogram: bucket ``i`` holds values in ``(bounds[i-1], bounds[i]]``.

    The two open ends get finite bounds: the first bucket starts at ``minimum`` when the point has one, else
    at 0 (or at its upper bound when that is not positive, so all its values sit on that bound); the overflow
    bucket ends at ``maximum`` when given, else at the last bound. Without any bounds the one bucket is
    ``[minimum, maximum]``, or unknown (no buckets) if either is missing. Every bucket is then clamped to
    ``[minimum, maximum]``, since no value lies outside them. Raises ``ValueError`` on an inconsistent shape.
    """
    if not counts:
        return []
    if len(counts) != len(bounds) + 1:
        raise ValueError(
            f"bucket_counts has {len(counts)} entries; with {len(bounds)} explicit_bounds it must have {len(bounds) + 1}"
        )
    if isinstance(bounds, tuple):
        _check_bounds_cached(bounds)  # a stream's points repeat the same bounds
    else:
        _check_bounds(bounds)
    if not bounds:
        if minimum is None or maximum is None:
            return []
        return [Bucket(minimum, max(minimum, maximum), counts[0])]
    first_lower = minimum if minimum is not None else min(0.0, bounds[0])
    last_upper = maximum if maximum is not None else bounds[-1]
    edges = [first_lower, *bounds, last_upper]
    if minimum is not None or maximum is not None:  # clamped edge by edge: the same buckets as ``_clamped``, in one pass
        low = -math.inf if minimum is None else minimum
        high = math.inf if maximum is None else maximum
        edges = [min(max(edge, low), high) for edge in edges]
        return [Bucket(edges[i], max(edges[i], edges[i + 1]), count) for i, count in enumerate(counts)]
    return [Bucket(edges[i], edges[i + 1], count) for i, count in enumerate(counts)]


def exponential_buckets(
    scale: int,
    *,
    zero_count: int = 0,
    positive_offset: int = 0,
    positive_counts: Sequence[int] = (),
    negative_offset: int = 0,
    negative_counts: Sequence[int] = (),
    minimum: float | None = None,
    maximum: float | None = None,
) -> list[Bucket]:
    """The buckets of an exponential histogram in ascending order, clamped to ``[minimum, maximum]`` when given.

    With ``base = 2 ** (2 ** -scale)``, positive bucket ``index`` (``positive_offset`` + position) holds values
    in ``(base ** index, base ** (index + 1)]`` and negative bucket ``index`` their mirror image
    ``[-base ** (index + 1), -base ** index)``. The zero bucket (``|value| <= zero_threshold``) is taken as the
    single value 0. A bound too large for a float is infinite, and ``quantile`` then gives no answer there.
    """
    buckets = [
        Bucket(-_power(scale, negative_offset + position + 1), -_power(scale, negative_offset + position), count)
        for position, count in reversed(list(enumerate(negative_counts)))
    ]
    if zero_count:
        buckets.append(Bucket(0.0, 0.0, zero_count))
    buckets += [
        Bucket(_power(scale, positive_offset + position), _power(scale, positive_offset + position + 1), count)
        for position, count in enumerate(positive_counts)
    ]
    return _clamped(buckets, minimum, maximum)


def quantile(buckets: Sequence[Bucket], q: float) -> float | None:
    """The value at quantile ``q`` (0..1): linear within the first bucket whose cumulative count reaches ``q * total``.

    None when the buckets hold no values or the answer is not finite.
    """
    return _quantile(buckets, q, sum(bucket.count for bucket in buckets))


def quantiles(buckets: Sequence[Bucket], qs: Sequence[float]) -> tuple[float | None, ...]:
    """``quantile`` of each of ``qs``, the buckets' total counted once."""
    total = sum(bucket.count for bucket in buckets)
    return tuple(_quantile(buckets, q, total) for q in qs)


def _quantile(buckets: Sequence[Bucket], q: float, total: int) -> float | None:
    if total <= 0:
        return None
    rank = q * total
    cumulative = 0
    answer = None
    for bucket in buckets:
        if bucket.count <= 0:
            continue
        if cumulative + bucket.count >= rank:
            fraction = (rank - cumulative) / bucket.count
            answer = bucket.lower + (bucket.upper - bucket.lower) * fraction
            break
        cumulative += bucket.count
        answer = bucket.upper  # only reached past the last bucket, through float rounding of the rank
    return answer if answer is not None and math.isfinite(answer) else None


def bucket_mean(buckets: Sequence[Bucket]) -> float | None:
    """The mean estimated with every value at its bucket's midpoint (for a histogram that carries no sum)."""
    total = sum(bucket.count for bucket in buckets)
    if total <= 0:
        return None
    mean = sum(bucket.count * (bucket.lower + bucket.upper) / 2 for bucket in buckets) / total
    return mean if math.isfinite(mean) else None


def _check_bounds(bounds: Sequence[float]) -> None:
    if any(not math.isfinite(bound) for bound in bounds):
        raise ValueError("explicit_bounds must be finite numbers")
    if any(later <= earlier for earlier, later in zip(bounds, bounds[1:], strict=False)):
        raise ValueError("explicit_bounds must be strictly increasing")


@functools.lru_cache(maxsize=1024)
def _check_bounds_cached(bounds: tuple[float, ...]) -> None:
    """``_check_bounds``, remembered per bounds (raising is not cached: a bad shape is checked again)."""
    _check_bounds(bounds)


def _power(scale: int, index: int) -> float:
    """``base ** index`` for ``base = 2 ** (2 ** -scale)``, as ``2 ** (index * 2 ** -scale)``; infinite on overflow."""
    try:
        return 2.0 ** math.ldexp(index, -scale)
    except OverflowError:
        return math.inf


def _clamped(buckets: list[Bucket], minimum: float | None, maximum: float | None) -> list[Bucket]:
    if minimum is None and maximum is None:
        return buckets
    low = -math.inf if minimum is None else minimum
    high = math.inf if maximum is None else maximum
    clamped = []
    for bucket in buckets:
        lower = min(max(bucket.lower, low), high)
        upper = min(max(bucket.upper, low), high)
        clamped.append(Bucket(lower, max(lower, upper), bucket.count))
    return clamped
