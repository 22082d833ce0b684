"""core.ingest.rows: the metric row of a cumulative point, its stream key, and its completion as a stored row."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from fernando_telemetry.core.ingest import metrics
from fernando_telemetry.core.ingest.rows import CumulativeMetricRow, MetricRow
from fernando_telemetry.core.metric_points import CumulativePoint, Increment

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
START = NOW - timedelta(minutes=5)


def _row(*, point: CumulativePoint | None, license_id: int | None = 7) -> MetricRow:
    return metrics.compose(
        metric_name="requests",
        metric_type="counter",
        unit="1",
        service_name="api",
        host_name="h1",
        instance_id="pod-1",
        labels='{"route":"/x"}',
        user_id=None,
        license_id=license_id,
        time=NOW,
        increment=None if point is not None else Increment(3.0),
        point=point,
    )


class TestCumulativeMetricRow:
    def test_a_plain_row_is_a_metric_row_and_a_cumulative_one_carries_its_point(self) -> None:
        """``compose`` gives a plain ``MetricRow`` for an increment, a ``CumulativeMetricRow`` for a point."""
        point = CumulativePoint("number", NOW, START, value=12.0)
        plain, cumulative = _row(point=None), _row(point=point)
        assert type(plain) is MetricRow and plain.value == 3.0
        assert isinstance(cumulative, CumulativeMetricRow) and cumulative.point is point
        assert len(cumulative) == len(metrics.COLUMNS)

    def test_the_stream_key_is_the_hash_streams_were_stored_under(self) -> None:
        """The key hashes license, metric, type, service, host, instance, labels, kind and start, in that order:
        a change of it would start every stored stream over."""
        cumulative = _row(point=CumulativePoint("number", NOW, START, value=12.0))
        identity = [7, "requests", "counter", "api", "h1", "pod-1", '{"route":"/x"}', "number", START.isoformat()]
        expected = hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode()).hexdigest()
        assert isinstance(cumulative, CumulativeMetricRow) and cumulative.stream_key == expected

    def test_replace_keeps_the_point_and_rekeys_the_stream(self) -> None:
        """A row given another license keeps its point and gets that license's stream key."""
        point = CumulativePoint("number", NOW, START, value=12.0)
        cumulative = _row(point=point)
        moved = cumulative._replace(license_id=8)
        other = _row(point=point, license_id=8)
        assert isinstance(moved, CumulativeMetricRow) and isinstance(other, CumulativeMetricRow)
        assert (moved.point, moved.license_id, moved.stream_key) == (point, 8, other.stream_key)
        assert isinstance(cumulative, CumulativeMetricRow) and moved.stream_key != cumulative.stream_key

    def test_completed_is_a_plain_row_with_the_increment(self) -> None:
        """The stored row has the increment's measure and the point's identity, and no point of its own."""
        cumulative = _row(point=CumulativePoint("number", NOW, START, value=12.0))
        stored = metrics.completed(cumulative, Increment(5.0, start_time=START, cumulative_value=12.0))
        assert type(stored) is MetricRow
        assert (stored.value, stored.start_time, stored.cumulative_value) == (5.0, START, 12.0)
        assert (stored.metric_name, stored.license_id, stored.timestamp) == ("requests", 7, NOW)
