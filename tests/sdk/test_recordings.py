"""sdk.recordings: each recording tuple names exactly the parameters of its item function, and builds that item."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest

from fernando_telemetry.sdk import items
from fernando_telemetry.sdk.recordings import (
    BusinessMetricRecording,
    EventRecording,
    MetricRecording,
    SpanRecording,
    event_wire_item,
    metric_wire_item,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


class TestRecordings:
    @pytest.mark.parametrize(
        ("recording", "item_function"),
        [
            (EventRecording, items.event_item),
            (MetricRecording, items.metric_item),
            (BusinessMetricRecording, items.business_metric_item),
            (SpanRecording, items.span_item),
        ],
    )
    def test_the_fields_are_the_item_functions_parameters(
        self, recording: type[NamedTuple], item_function: Callable[..., Any]
    ) -> None:
        """A parameter added to an item function without its recording field (or the other way) fails here."""
        assert sorted(recording._fields) == sorted(_parameters(item_function))

    def test_an_event_recording_builds_its_item_by_name(self) -> None:
        """Fields next to each other in the tuple reach their own item field (no positional mix-up)."""
        recording = EventRecording(**{**dict.fromkeys(EventRecording._fields), "event_name": "signup", "now": NOW})
        recording = recording._replace(event_type="user_action", source="sdk", session_id="s-1", category="growth")
        item = event_wire_item(recording)
        assert (item["event_name"], item["session_id"], item["category"]) == ("signup", "s-1", "growth")
        assert item["event_timestamp"] == "2026-03-01T12:00:00.000000Z"

    def test_a_metric_recording_builds_its_item_by_name(self) -> None:
        """p50 and p99, neighbours of other numbers in the tuple, land in their own fields."""
        fields = {**dict.fromkeys(MetricRecording._fields), "metric_name": "latency", "value": 2.0, "now": NOW}
        recording = MetricRecording(**fields)._replace(metric_type="histogram", p50=1.5, p99=9.5, sample_count=4)
        item = metric_wire_item(recording)
        assert (item["value"], item["p50"], item["p99"], item["sample_count"]) == (2.0, 1.5, 9.5, 4)
        assert "p90" not in item
