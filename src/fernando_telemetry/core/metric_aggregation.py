"""How the parts of a bucket (raw rows aggregated per hour or bucket, rollup rows) become its value, for every
aggregation but ``rate``: counts and sums added, extremes of extremes, percentiles of the merged sketches.

One function for the series API (raw and rollups), the views' readers and metric alert rules, so they cannot
disagree. Pure; imports only core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fernando_telemetry.core.series import Aggregation
from fernando_telemetry.core.sketch import Sketch

__all__ = ["QUANTILE_FRACTIONS", "MetricPart", "combine"]

QUANTILE_FRACTIONS = (0.5, 0.9, 0.95, 0.99)
"""The fractions of ``MetricPart.quantiles`` (p50, p90, p95, p99)."""


@dataclass(frozen=True)
class MetricPart:
    """What some rows of one bucket and group add up to.

    ``samples`` is the number of rows, ``observations`` the sum of their ``sample_count``, ``value_sum`` the
    ``sum`` aggregation (increments of counters, ``value * sample_count`` of histogram-like rows, values of
    gauges), ``weighted_sum`` the sum of ``value * sample_count`` (the numerator of ``avg``), ``value_min`` and
    ``value_max`` the extremes (None: no observation). ``quantiles`` (p50, p90, p95, p99) describe exactly these
    rows when known (None otherwise); the sketch (ascending keys and their counts) merges with other parts.
    """

    samples: int
    observations: int
    value_sum: float
    weighted_sum: float
    value_min: float | None
    value_max: float | None
    quantiles: tuple[float | None, ...] | None
    sketch_keys: Sequence[int]
    sketch_counts: Sequence[int]


def combine(parts: Sequence[MetricPart], aggregation: Aggregation) -> float | None:
    """The value of ``aggregation`` over the rows ``parts`` describe together; None when none has a value
    (an average or a percentile of no observation). ``rate`` is not computed from parts."""
    if aggregation is Aggregation.RATE:
        raise ValueError("rate is computed from increments, not from parts")
    if not parts:
        return None
    observations = sum(part.observations for part in parts)
    match aggregation:
        case Aggregation.COUNT:
            return float(observations)
        case Aggregation.SUM:
            return math.fsum(part.value_sum for part in parts)
        case Aggregation.AVG:
            return math.fsum(part.weighted_sum for part in parts) / observations if observations else None
        case Aggregation.MIN:
            return min((part.value_min for part in parts if part.value_min is not None), default=None)
        case Aggregation.MAX:
            return max((part.value_max for part in parts if part.value_max is not None), default=None)
    fraction = aggregation.quantile
    if fraction is None:  # pragma: no cover - every aggregation is matched above
        raise ValueError(f"no value for {aggregation}")
    if len(parts) == 1 and parts[0].quantiles is not None:
        return parts[0].quantiles[QUANTILE_FRACTIONS.index(fraction)]
    merged = Sketch()
    for part in parts:
        merged.merge(Sketch.from_arrays(part.sketch_keys, part.sketch_counts, minimum=part.value_min, maximum=part.value_max))
    return merged.quantile(fraction)
