"""TelemetryClient: what recording produces, that it never raises, the bounded queue, flush/shutdown and fork."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from fernando_telemetry.sdk import ClientStats, InMemoryExporter, TelemetryClient, track_telemetry_event
from tests.sdk.conftest import FIXED_NOW, fast_exporter
from tests.sdk.receiver import Receiver, Reply, wait_until

MemoryClient = tuple[TelemetryClient, InMemoryExporter]


class TestRecording:
    def test_an_event_becomes_a_complete_wire_item(self, memory_client: MemoryClient) -> None:
        """track_event stamps the event with a UUIDv7 id and the clock's time, and keeps only the fields given."""
        client, exporter = memory_client
        client.track_event("checkout_completed", user_id=42, payload={"cart": 3}, duration_ms=12.5, license_id=7)
        assert client.flush(timeout_s=5)
        (item,) = exporter.items("events")
        assert item == {
            "event_id": item["event_id"],
            "event_type": "user_action",
            "event_name": "checkout_completed",
            "source": "sdk",
            "event_timestamp": "2026-11-28T09:30:00.123456Z",
            "user_id": "42",
            "license_id": 7,
            "payload": {"cart": 3},
            "duration_ms": 12.5,
            "environment": "test",
        }
        event_id = uuid.UUID(item["event_id"])
        assert event_id.version == 7
        assert event_id.int >> 80 == int(FIXED_NOW.timestamp() * 1000)

    def test_an_explicit_timestamp_dates_the_event_and_its_id(self, memory_client: MemoryClient) -> None:
        """A given timestamp replaces the clock, in the event and in the time part of its UUIDv7."""
        client, exporter = memory_client
        moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        client.track_event("imported", timestamp=moment)
        client.flush(timeout_s=5)
        (item,) = exporter.items("events")
        assert item["event_timestamp"] == "2026-01-02T03:04:05.000000Z"
        assert uuid.UUID(item["event_id"]).int >> 80 == int(moment.timestamp() * 1000)

    def test_the_payload_is_copied_at_record_time(self, memory_client: MemoryClient) -> None:
        """Changing the payload dict after recording does not change what is sent."""
        client, exporter = memory_client
        payload = {"step": 1}
        client.track_event("wizard", payload=payload)
        payload["step"] = 2
        client.flush(timeout_s=5)
        assert exporter.items("events")[0]["payload"] == {"step": 1}

    def test_metrics_and_kpis_become_wire_items(self, memory_client: MemoryClient) -> None:
        """record_metric defaults the service name; record_business_metric sends decimals as exact strings."""
        client, exporter = memory_client
        client.record_metric("http.latency", 41.5, metric_type="histogram", unit="ms", p95=120.0, labels={"route": "/x"})
        client.record_business_metric(
            "mrr",
            Decimal("1999.99"),
            metric_category="revenue",
            period_type="monthly",
            period_start=date(2026, 11, 1),
            currency="eur",
        )
        client.flush(timeout_s=5)
        assert exporter.items("system_metrics") == [
            {
                "metric_name": "http.latency",
                "metric_type": "histogram",
                "value": 41.5,
                "timestamp": "2026-11-28T09:30:00.123456Z",
                "unit": "ms",
                "labels": {"route": "/x"},
                "service_name": "checkout",
                "p95": 120.0,
            }
        ]
        assert exporter.items("business_metrics") == [
            {
                "metric_name": "mrr",
                "metric_category": "revenue",
                "metric_value": "1999.99",
                "period_type": "monthly",
                "period_start": "2026-11-01T00:00:00.000000Z",
                "currency": "EUR",
            }
        ]

    def test_metric_temporality_buckets_and_samples_become_wire_fields(self, memory_client: MemoryClient) -> None:
        """A delta counter sends its temporality and start; a histogram sends its buckets or raw samples and no value."""
        client, exporter = memory_client
        start = datetime(2026, 11, 28, 9, 29, tzinfo=UTC)
        client.record_metric("orders", 3, metric_type="counter", temporality="delta", start_time=start)
        client.record_metric("latency", metric_type="histogram", buckets={"bounds": [10, 50], "counts": [4, 5, 1]})
        client.record_metric("latency", metric_type="timer", samples=(12.5, 40, 7))
        client.flush(timeout_s=5)
        orders, by_buckets, by_samples = exporter.items("system_metrics")
        assert (orders["value"], orders["temporality"], orders["start_time"]) == (3, "delta", "2026-11-28T09:29:00.000000Z")
        assert by_buckets["buckets"] == {"bounds": [10, 50], "counts": [4, 5, 1]} and "value" not in by_buckets
        assert by_samples["samples"] == [12.5, 40, 7] and "value" not in by_samples

    def test_every_argument_reaches_its_field(self, memory_client: MemoryClient) -> None:
        """Each argument of track_event, record_metric and record_business_metric lands in its own wire field (the
        worker builds the items from the queued arguments: none may trade places)."""
        client, exporter = memory_client
        moment = datetime(2026, 11, 27, 8, 0, 1, 5, tzinfo=UTC)
        client.track_event(
            "paid",
            event_type="business_event",
            user_id="u-1",
            session_id="s-1",
            payload={"p": 1},
            duration_ms=2.5,
            category="billing",
            source="web",
            license_id=3,
            trace_id="a" * 32,
            span_id="b" * 16,
            ip_address="203.0.113.9",
            user_agent="agent/9",
            app_version="9.9.9",
            event_id="01890a5d-ac96-774b-bcce-b302099a8057",
            timestamp=moment,
        )
        client.record_metric(
            "queue.depth",
            4,
            metric_type="histogram",
            unit="items",
            labels={"q": "mail"},
            service_name="worker",
            host_name="host-1",
            instance_id="i-1",
            sample_count=10,
            p50=1.0,
            p90=2.0,
            p95=3.0,
            p99=4.0,
            user_id=5,
            timestamp=moment,
        )
        client.record_business_metric(
            "arr",
            "12.50",
            metric_category="revenue",
            period_type="daily",
            period_start=date(2026, 11, 1),
            period_end=datetime(2026, 11, 2, tzinfo=UTC),
            currency="usd",
            dimensions={"plan": "pro"},
            target_value=20,
            previous_value=Decimal("10.0"),
        )
        assert client.flush(timeout_s=5)
        assert exporter.items("events") == [
            {
                "event_id": "01890a5d-ac96-774b-bcce-b302099a8057",
                "event_type": "business_event",
                "event_name": "paid",
                "source": "web",
                "event_timestamp": "2026-11-27T08:00:01.000005Z",
                "category": "billing",
                "user_id": "u-1",
                "license_id": 3,
                "session_id": "s-1",
                "payload": {"p": 1},
                "duration_ms": 2.5,
                "ip_address": "203.0.113.9",
                "user_agent": "agent/9",
                "trace_id": "a" * 32,
                "span_id": "b" * 16,
                "environment": "test",
                "app_version": "9.9.9",
            }
        ]
        assert exporter.items("system_metrics") == [
            {
                "metric_name": "queue.depth",
                "metric_type": "histogram",
                "value": 4,
                "timestamp": "2026-11-27T08:00:01.000005Z",
                "unit": "items",
                "labels": {"q": "mail"},
                "service_name": "worker",
                "host_name": "host-1",
                "instance_id": "i-1",
                "sample_count": 10,
                "p50": 1.0,
                "p90": 2.0,
                "p95": 3.0,
                "p99": 4.0,
                "user_id": "5",
            }
        ]
        assert exporter.items("business_metrics") == [
            {
                "metric_name": "arr",
                "metric_category": "revenue",
                "metric_value": "12.50",
                "period_type": "daily",
                "period_start": "2026-11-01T00:00:00.000000Z",
                "period_end": "2026-11-02T00:00:00.000000Z",
                "currency": "USD",
                "dimensions": {"plan": "pro"},
                "target_value": 20,
                "previous_value": "10.0",
            }
        ]

    def test_the_async_helper_records_without_awaiting_io(self, memory_client: MemoryClient) -> None:
        """track_telemetry_event queues the event from a coroutine, like track_event."""
        client, exporter = memory_client
        asyncio.run(track_telemetry_event(client, "job_started", event_type="system_event", source="scheduler"))
        client.flush(timeout_s=5)
        assert [(item["event_name"], item["event_type"]) for item in exporter.items("events")] == [
            ("job_started", "system_event")
        ]


GARBAGE: list[tuple[str, Callable[[TelemetryClient], Any]]] = [
    ("no event name", lambda c: c.track_event(None)),
    ("blank event name", lambda c: c.track_event("  ")),
    ("event name over 200 chars", lambda c: c.track_event("x" * 201)),
    ("number as event name", lambda c: c.track_event(123)),
    ("unknown event type", lambda c: c.track_event("e", event_type="nope")),
    ("unknown source", lambda c: c.track_event("e", source="fax")),
    ("payload not a mapping", lambda c: c.track_event("e", payload=["a"])),
    ("NaN duration", lambda c: c.track_event("e", duration_ms=float("nan"))),
    ("negative duration", lambda c: c.track_event("e", duration_ms=-1)),
    ("bad trace id", lambda c: c.track_event("e", trace_id="XYZ")),
    ("all-zero span id", lambda c: c.track_event("e", span_id="0" * 16)),
    ("object as user", lambda c: c.track_event("e", user_id=object())),
    ("license id as text", lambda c: c.track_event("e", license_id="7")),
    ("timestamp as text", lambda c: c.track_event("e", timestamp="yesterday")),
    ("event id not a UUID", lambda c: c.track_event("e", event_id="not-a-uuid")),
    ("metric value as text", lambda c: c.record_metric("m", "abc")),
    ("infinite metric value", lambda c: c.record_metric("m", float("inf"))),
    ("boolean metric value", lambda c: c.record_metric("m", True)),
    ("no metric name", lambda c: c.record_metric(None, 1)),
    ("unknown metric type", lambda c: c.record_metric("m", 1, metric_type="bogus")),
    ("labels not a mapping", lambda c: c.record_metric("m", 1, labels=5)),
    ("zero sample count", lambda c: c.record_metric("m", 1, sample_count=0)),
    ("no metric value nor buckets", lambda c: c.record_metric("m")),
    ("unknown temporality", lambda c: c.record_metric("m", 1, metric_type="counter", temporality="sometimes")),
    (
        "buckets without one more count",
        lambda c: c.record_metric("m", metric_type="histogram", buckets={"bounds": [1], "counts": [1]}),
    ),
    ("negative bucket count", lambda c: c.record_metric("m", metric_type="histogram", buckets={"bounds": [], "counts": [-1]})),
    ("samples as text", lambda c: c.record_metric("m", metric_type="histogram", samples="1,2")),
    ("start time as text", lambda c: c.record_metric("m", 1, metric_type="counter", start_time="today")),
    (
        "unknown KPI category",
        lambda c: c.record_business_metric("k", 1, metric_category="vibes", period_type="daily", period_start=date(2026, 1, 1)),
    ),
    (
        "currency not ISO 4217",
        lambda c: c.record_business_metric(
            "k", 1, metric_category="revenue", period_type="daily", period_start=date(2026, 1, 1), currency="EURO"
        ),
    ),
    (
        "period start as text",
        lambda c: c.record_business_metric("k", 1, metric_category="revenue", period_type="daily", period_start="2026"),
    ),
    (
        "KPI value not a number",
        lambda c: c.record_business_metric(
            "k", "lots", metric_category="revenue", period_type="daily", period_start=date(2026, 1, 1)
        ),
    ),
    ("span dict empty", lambda c: c.record_span({})),
    ("span not a mapping", lambda c: c.record_span("span")),
    (
        "span with an unknown field",
        lambda c: c.record_span(
            {"trace_id": "a" * 32, "span_id": "b" * 16, "operation_name": "x", "start_time": "t", "duration_ms": 1, "x": 1}
        ),
    ),
    ("unknown keyword through the async helper", lambda c: asyncio.run(track_telemetry_event(c, "e", colour="red"))),
]


class TestNeverRaises:
    @pytest.mark.parametrize(("case", "call"), GARBAGE, ids=[case for case, _ in GARBAGE])
    def test_a_bad_argument_drops_and_counts_the_item(
        self, memory_client: MemoryClient, case: str, call: Callable[[TelemetryClient], Any]
    ) -> None:
        """A bad argument returns normally, sends nothing and counts one dropped item."""
        client, exporter = memory_client
        assert call(client) is None
        assert client.flush(timeout_s=5)
        assert exporter.items() == []
        assert client.stats == ClientStats(dropped=1)

    def test_a_span_with_bad_arguments_still_runs_the_block(self, memory_client: MemoryClient) -> None:
        """span() with bad arguments yields a usable span, runs the block and sends nothing."""
        client, exporter = memory_client
        ran = False
        with client.span(None, kind="sideways") as span:  # type: ignore[arg-type]
            span.set_attribute("still", "works")
            ran = True
        client.flush(timeout_s=5)
        assert ran
        assert exporter.items() == []
        assert client.stats.dropped == 1

    def test_a_payload_json_cannot_encode_is_rejected_alone(
        self, receiver: Receiver, make_client: Callable[..., TelemetryClient]
    ) -> None:
        """An item whose payload is not JSON (an object, NaN, a dict that contains itself) is set aside and counted;
        its batch still goes."""
        client = make_client(exporter=fast_exporter(receiver.url), flush_interval_s=60)
        circular: dict[str, Any] = {}
        circular["self"] = circular
        client.track_event("good-1")
        client.track_event("bad-object", payload={"handle": object()})
        client.track_event("bad-nan", payload={"ratio": float("nan")})
        client.track_event("bad-cycle", payload={"loop": circular})
        client.track_event("good-2", payload={"when": FIXED_NOW, "id": uuid.UUID(int=1), "price": Decimal("1.10")})
        assert client.flush(timeout_s=10)
        items = receiver.items()
        assert [item["event_name"] for item in items] == ["good-1", "good-2"]
        assert items[1]["payload"] == {"when": FIXED_NOW.isoformat(), "id": str(uuid.UUID(int=1)), "price": "1.10"}
        assert (client.stats.sent, client.stats.rejected) == (2, 3)


class TestQueue:
    def test_a_full_queue_drops_the_oldest_and_counts_it(
        self, receiver: Receiver, make_client: Callable[..., TelemetryClient]
    ) -> None:
        """While the server holds the first batch, a full queue loses its oldest items; the newest are sent."""
        receiver.script(Reply(hold=True))
        client = make_client(
            exporter=fast_exporter(receiver.url, timeout_s=30), max_queue_items=5, max_batch_items=5, flush_interval_s=0.05
        )
        client.track_event("e0")
        receiver.wait_for(1)
        for n in range(1, 10):
            client.track_event(f"e{n}")
        assert client.stats.queued == 5
        assert client.stats.dropped == 4
        receiver.release()
        assert client.flush(timeout_s=10)
        assert [item["event_name"] for item in receiver.items()] == ["e0", "e5", "e6", "e7", "e8", "e9"]
        assert client.stats == ClientStats(sent=6, dropped=4)

    def test_a_full_batch_wakes_the_worker_before_the_timer(
        self, receiver: Receiver, make_client: Callable[..., TelemetryClient]
    ) -> None:
        """Reaching max_batch_items sends a batch although the flush timer is an hour away."""
        client = make_client(exporter=fast_exporter(receiver.url), max_batch_items=10, flush_interval_s=3600)
        for n in range(10):
            client.track_event(f"e{n}")
        (request,) = receiver.wait_for(1)
        assert len(request.items) == 10


class TestLifecycle:
    def test_flush_and_shutdown_are_idempotent(self, memory_client: MemoryClient) -> None:
        """flush and shutdown can be called again and again; shutdown sends what was queued first."""
        client, exporter = memory_client
        assert client.flush() and client.flush()
        for n in range(3):
            client.track_event(f"e{n}")
        client.shutdown()
        client.shutdown()
        assert client.flush()
        assert len(exporter.items("events")) == 3
        assert exporter.is_shut_down
        assert client.stats == ClientStats(sent=3)

    def test_recording_after_shutdown_is_a_counted_no_op(self, memory_client: MemoryClient) -> None:
        """After shutdown every recording method returns quietly and counts a dropped item."""
        client, exporter = memory_client
        client.shutdown()
        client.track_event("late")
        client.record_metric("late", 1)
        with client.span("late"):
            pass
        assert exporter.items() == []
        assert client.stats == ClientStats(dropped=3)

    def test_flush_gives_up_after_its_timeout(self, receiver: Receiver, make_client: Callable[..., TelemetryClient]) -> None:
        """flush returns False when the server has not answered within timeout_s, and the item stays in flight."""
        receiver.script(Reply(hold=True))
        client = make_client(exporter=fast_exporter(receiver.url, timeout_s=30), flush_interval_s=60)
        client.track_event("slow")
        assert client.flush(timeout_s=0.2) is False
        receiver.release()
        assert client.flush(timeout_s=10) is True
        assert client.stats.sent == 1

    def test_a_client_can_be_garbage_collected(self) -> None:
        """Nothing global keeps a client alive; collecting it stops its worker after sending what it queued."""
        exporter = InMemoryExporter()
        client = TelemetryClient("http://unused.invalid", "k", exporter=exporter, flush_interval_s=60)
        client.track_event("last-words")
        reference = weakref.ref(client)
        del client
        gc.collect()
        assert reference() is None
        wait_until(lambda: exporter.is_shut_down, 10, "the worker to drain and stop")
        assert [item["event_name"] for item in exporter.items()] == ["last-words"]

    def test_interpreter_exit_flushes_what_is_queued(self, receiver: Receiver) -> None:
        """A program that records and exits without shutdown still delivers its events (atexit)."""
        program = textwrap.dedent(
            f"""
            from fernando_telemetry.sdk import TelemetryClient
            client = TelemetryClient({receiver.url!r}, "k", flush_interval_s=3600)
            for n in range(3):
                client.track_event(f"exit-{{n}}")
            """
        )
        subprocess.run([sys.executable, "-c", program], check=True, timeout=60)
        assert [item["event_name"] for item in receiver.items()] == ["exit-0", "exit-1", "exit-2"]

    def test_bad_configuration_fails_at_construction(self) -> None:
        """Configuration errors raise where the host builds the client, never later."""
        with pytest.raises(ValueError, match="max_queue_items"):
            TelemetryClient("http://x", "k", max_queue_items=0)
        with pytest.raises(ValueError, match="endpoint"):
            TelemetryClient("ftp://x", "k")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
class TestFork:
    def test_a_forked_child_records_and_flushes_on_its_own(
        self, receiver: Receiver, make_client: Callable[..., TelemetryClient]
    ) -> None:
        """After fork the child starts with an empty queue and fresh counters, and its own worker delivers its events;
        the parent still sends what it had queued, once."""
        client = make_client(exporter=fast_exporter(receiver.url), flush_interval_s=3600)
        client.track_event("queued-before-fork")
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            code = 1
            try:
                stats_at_start = client.stats
                client.track_event("from-child")
                delivered = client.flush(timeout_s=10)
                code = 0 if delivered and stats_at_start == ClientStats() and client.stats == ClientStats(sent=1) else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert client.flush(timeout_s=10)
        client.track_event("parent-after-fork")
        assert client.flush(timeout_s=10)
        assert sorted(item["event_name"] for item in receiver.items()) == [
            "from-child",
            "parent-after-fork",
            "queued-before-fork",
        ]
        assert client.stats == ClientStats(sent=2)
