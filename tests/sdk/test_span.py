"""Spans: nesting through the current span, exception recording, correlation with events, and W3C ids."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from fernando_telemetry.sdk import (
    InMemoryExporter,
    SpanContext,
    TelemetryClient,
    current_span,
    current_span_context,
    format_traceparent,
    parse_traceparent,
)
from fernando_telemetry.sdk.ids import new_span_id, new_trace_and_span_id, new_trace_id, unix_ms, uuid7
from fernando_telemetry.sdk.items import iso_timestamp, iso_timestamp_after

MemoryClient = tuple[TelemetryClient, InMemoryExporter]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


class TestSpans:
    def test_nested_spans_share_the_trace_and_point_to_their_parent(self, memory_client: MemoryClient) -> None:
        """A span opened inside another is its child: same trace id, parent_span_id = the outer span id."""
        client, exporter = memory_client
        with client.span("outer", kind="server") as outer:
            with client.span("inner", attributes={"db.table": "users"}, user_id=9) as inner:
                assert current_span() is inner
            assert current_span() is outer
        assert current_span() is None
        client.flush(timeout_s=5)
        spans = {item["operation_name"]: item for item in exporter.items("spans")}
        assert spans["outer"]["trace_id"] == spans["inner"]["trace_id"] == outer.trace_id
        assert "parent_span_id" not in spans["outer"]
        assert spans["inner"]["parent_span_id"] == outer.span_id
        assert spans["inner"]["attributes"] == {"db.table": "users"}
        assert spans["inner"]["user_id"] == "9"
        assert spans["outer"]["span_kind"] == "server"
        assert spans["outer"]["service_name"] == "checkout"
        assert spans["outer"]["environment"] == "test"
        assert spans["outer"]["start_time"] == "2026-11-28T09:30:00.123456Z"
        assert spans["outer"]["duration_ms"] >= spans["inner"]["duration_ms"] >= 0

    def test_an_exception_marks_the_span_failed_and_propagates(self, memory_client: MemoryClient) -> None:
        """An exception leaving the block sets status error, error type and message, adds an exception event, and is re-raised."""
        client, exporter = memory_client
        with pytest.raises(ValueError, match="card declined"), client.span("charge"):
            raise ValueError("card declined")
        client.flush(timeout_s=5)
        (item,) = exporter.items("spans")
        assert item["status"] == "error"
        assert item["error_type"] == "ValueError"
        assert item["error_message"] == "card declined"
        (event,) = item["span_events"]
        assert event["name"] == "exception"
        assert event["attributes"]["exception.type"] == "ValueError"
        assert "card declined" in event["attributes"]["exception.stacktrace"]
        assert current_span() is None

    def test_events_recorded_inside_a_span_carry_its_ids(self, memory_client: MemoryClient) -> None:
        """track_event inside a span takes the span's trace and span ids; outside it takes none; given ids win."""
        client, exporter = memory_client
        with client.span("work") as span:
            client.track_event("inside")
            client.track_event("explicit", trace_id=TRACE_ID, span_id=SPAN_ID)
        client.track_event("outside")
        client.flush(timeout_s=5)
        events = {item["event_name"]: item for item in exporter.items("events")}
        assert (events["inside"]["trace_id"], events["inside"]["span_id"]) == (span.trace_id, span.span_id)
        assert (events["explicit"]["trace_id"], events["explicit"]["span_id"]) == (TRACE_ID, SPAN_ID)
        assert "trace_id" not in events["outside"]

    def test_a_remote_parent_continues_its_trace(self, memory_client: MemoryClient) -> None:
        """parent=SpanContext (e.g. from a traceparent header) makes the span a child in that trace."""
        client, exporter = memory_client
        with client.span("consume", kind="consumer", parent=SpanContext(TRACE_ID, SPAN_ID, is_remote=True)):
            assert current_span_context() is not None
        client.flush(timeout_s=5)
        (item,) = exporter.items("spans")
        assert (item["trace_id"], item["parent_span_id"]) == (TRACE_ID, SPAN_ID)

    def test_concurrent_tasks_keep_their_own_current_span(self, memory_client: MemoryClient) -> None:
        """Spans opened in concurrent asyncio tasks nest within their own task only."""
        client, exporter = memory_client

        async def request(name: str) -> None:
            async with client.span(f"{name}-outer"):
                await asyncio.sleep(0.01)
                with client.span(f"{name}-inner"):
                    await asyncio.sleep(0.01)

        async def main() -> None:
            await asyncio.gather(request("a"), request("b"))

        asyncio.run(main())
        client.flush(timeout_s=5)
        spans = {item["operation_name"]: item for item in exporter.items("spans")}
        for name in ("a", "b"):
            assert spans[f"{name}-inner"]["parent_span_id"] == spans[f"{name}-outer"]["span_id"]
            assert spans[f"{name}-inner"]["trace_id"] == spans[f"{name}-outer"]["trace_id"]
        assert spans["a-outer"]["trace_id"] != spans["b-outer"]["trace_id"]

    def test_a_span_is_sent_as_it_was_when_it_ended(self, memory_client: MemoryClient) -> None:
        """Changing a span after its block ended changes nothing that is sent (the worker builds the item later)."""
        client, exporter = memory_client
        with client.span("settled") as span:
            span.set_status("ok")
        span.set_status("error", "too late")
        span.operation_name = "renamed"
        client.flush(timeout_s=5)
        (item,) = exporter.items("spans")
        assert (item["operation_name"], item["status"]) == ("settled", "ok")
        assert "status_message" not in item

    def test_record_span_fills_the_service_and_environment(self, memory_client: MemoryClient) -> None:
        """A span dict handed to record_span gets the client's service name and environment unless it has its own."""
        client, exporter = memory_client
        client.record_span(
            {
                "trace_id": TRACE_ID,
                "span_id": SPAN_ID,
                "operation_name": "GET /x",
                "start_time": "2026-11-28T09:30:00Z",
                "duration_ms": 3,
            }
        )
        client.flush(timeout_s=5)
        (item,) = exporter.items("spans")
        assert (item["service_name"], item["environment"]) == ("checkout", "test")


class TestTraceparent:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            (f"00-{TRACE_ID}-{SPAN_ID}-01", SpanContext(TRACE_ID, SPAN_ID, is_remote=True)),
            (f"00-{TRACE_ID}-{SPAN_ID}-00".encode(), SpanContext(TRACE_ID, SPAN_ID, is_remote=True)),
            (f"  00-{TRACE_ID}-{SPAN_ID}-01 ", SpanContext(TRACE_ID, SPAN_ID, is_remote=True)),
            (f"01-{TRACE_ID}-{SPAN_ID}-01-future", SpanContext(TRACE_ID, SPAN_ID, is_remote=True)),
            (f"00-{TRACE_ID}-{SPAN_ID}-01-extra", None),
            (f"ff-{TRACE_ID}-{SPAN_ID}-01", None),
            (f"00-{TRACE_ID.upper()}-{SPAN_ID}-01", None),
            (f"00-{'0' * 32}-{SPAN_ID}-01", None),
            (f"00-{TRACE_ID}-{'0' * 16}-01", None),
            (f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01", None),
            (f"00-{TRACE_ID}-{SPAN_ID}-1", None),
            ("garbage", None),
            ("", None),
            (b"\xff\xfe", None),
            (None, None),
        ],
    )
    def test_parse(self, header: str | bytes | None, expected: SpanContext | None) -> None:
        """A valid traceparent gives the remote parent; anything malformed gives None (start a new trace)."""
        assert parse_traceparent(header) == expected

    def test_format_round_trips(self) -> None:
        """format_traceparent writes what parse_traceparent reads back."""
        context = SpanContext(new_trace_id(), new_span_id())
        assert format_traceparent(context) == f"00-{context.trace_id}-{context.span_id}-01"
        assert parse_traceparent(format_traceparent(context)) == SpanContext(context.trace_id, context.span_id, is_remote=True)


class TestIds:
    def test_uuid7_layout(self) -> None:
        """uuid7 puts the Unix milliseconds in the first 48 bits, version 7, the RFC 9562 variant, and random bits after."""
        moment = datetime(2026, 11, 28, 9, 30, 0, 123456, tzinfo=UTC)
        first, second = uuid.UUID(uuid7(moment)), uuid.UUID(uuid7(moment))
        assert first.version == 7
        assert first.variant == uuid.RFC_4122
        assert first.int >> 80 == 1795858200123
        assert first != second

    def test_uuid7_sorts_by_time(self) -> None:
        """Ids minted for later instants sort after earlier ones."""
        moments = [datetime(2026, 1, 1, tzinfo=UTC).replace(second=second) for second in range(0, 60, 7)]
        ids = [uuid7(moment) for moment in moments]
        assert sorted(reversed(ids)) == ids

    def test_trace_and_span_ids_are_w3c_hex(self) -> None:
        """Trace ids are 32 and span ids 16 lowercase hex characters, alone or drawn together for a root span."""
        root_trace_id, root_span_id = new_trace_and_span_id()
        for trace_id in (new_trace_id(), root_trace_id):
            assert len(trace_id) == 32 and int(trace_id, 16) > 0 and trace_id == trace_id.lower()
        for span_id in (new_span_id(), root_span_id):
            assert len(span_id) == 16 and int(span_id, 16) > 0 and span_id == span_id.lower()
        assert len({new_trace_and_span_id() for _ in range(1000)}) == 1000

    @pytest.mark.parametrize(
        ("moment", "milliseconds"),
        [
            (datetime(2026, 11, 28, 9, 30, 0, 123456, tzinfo=UTC), 1795858200123),
            (datetime(2026, 11, 28, 9, 30, 0, 123456), 1795858200123),  # naive: UTC
            (datetime(2026, 11, 28, 10, 30, 0, 123999, tzinfo=timezone(timedelta(hours=1))), 1795858200123),
            (datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC), -1),  # floored, as the timedelta division was
        ],
    )
    def test_unix_ms(self, moment: datetime, milliseconds: int) -> None:
        """Whole milliseconds since the epoch, in integers (no float to land a millisecond short)."""
        assert unix_ms(moment) == milliseconds


class TestTimestamps:
    @pytest.mark.parametrize(
        ("moment", "text"),
        [
            (datetime(2026, 11, 28, 9, 30, 0, 123456, tzinfo=UTC), "2026-11-28T09:30:00.123456Z"),
            (datetime(2026, 11, 28, 9, 30, 0, tzinfo=UTC), "2026-11-28T09:30:00.000000Z"),
            (datetime(2026, 11, 28, 9, 30, 0, 7), "2026-11-28T09:30:00.000007Z"),  # naive: UTC
            (datetime(2026, 11, 28, 11, 0, 0, 1, tzinfo=timezone(timedelta(hours=1, minutes=30))), "2026-11-28T09:30:00.000001Z"),
            (datetime(2026, 1, 1, 0, 0, 0, tzinfo=timezone(timedelta(hours=-5))), "2026-01-01T05:00:00.000000Z"),
            (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "1969-12-31T23:59:59.999999Z"),
            (datetime(999, 3, 4, 5, 6, 7, 8), "0999-03-04T05:06:07.000008Z"),
        ],
    )
    def test_iso_timestamp(self, moment: datetime, text: str) -> None:
        """ISO 8601 in UTC with microseconds and a Z, whatever the datetime's zone, also for the same second twice."""
        assert iso_timestamp(moment) == text
        assert iso_timestamp(moment) == text

    @pytest.mark.parametrize(
        ("duration_ms", "text"),
        [
            (0.0, "2026-11-28T09:30:00.999999Z"),
            (0.0004, "2026-11-28T09:30:00.999999Z"),
            (0.0016, "2026-11-28T09:30:01.000001Z"),
            (1500.25, "2026-11-28T09:30:02.500249Z"),
            (86_400_000.0, "2026-11-29T09:30:00.999999Z"),
        ],
    )
    def test_iso_timestamp_after(self, duration_ms: float, text: str) -> None:
        """The end of a span: its start plus the duration rounded to the microsecond, across seconds and days."""
        start = datetime(2026, 11, 28, 9, 30, 0, 999999, tzinfo=UTC)
        assert iso_timestamp_after(start, duration_ms) == text
