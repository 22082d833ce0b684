"""HttpExporter against a real HTTP receiver: batching, gzip, idempotency keys, the retry policy, and a host that
stays fast while the server is dead or hangs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pytest

from fernando_telemetry.sdk import ClientStats, ItemKind, TelemetryClient
from fernando_telemetry.sdk.retry import Outcome, RetryPolicy, classify, retry_after_s
from tests.sdk.conftest import fast_exporter
from tests.sdk.receiver import Receiver, Reply, wait_until

MakeClient = Callable[..., TelemetryClient]


class TestHttpExporter:
    def test_each_kind_goes_to_its_endpoint_with_the_api_key(self, receiver: Receiver, make_client: MakeClient) -> None:
        """Events, metrics, KPIs and spans are posted to their own path, under their body key, with the Bearer key."""
        client = make_client(exporter=fast_exporter(receiver.url), service_name="svc", flush_interval_s=60)
        client.track_event("e")
        client.record_metric("m", 1)
        client.record_business_metric("k", 1, metric_category="usage", period_type="daily", period_start=date(2026, 11, 1))
        with client.span("s"):
            pass
        assert client.flush(timeout_s=10)
        seen = {(request.path, next(iter(request.json))) for request in receiver.requests}
        assert seen == {
            ("/api/v1/events", "events"),
            ("/api/v1/system-metrics", "metrics"),
            ("/api/v1/business-metrics", "metrics"),
            ("/api/v1/spans", "spans"),
        }
        for request in receiver.requests:
            assert request.headers["authorization"] == "Bearer test-key"
            assert request.headers["content-type"] == "application/json"
        assert client.stats == ClientStats(sent=4)

    def test_batches_hold_at_most_max_batch_items_and_large_bodies_are_gzipped(
        self, receiver: Receiver, make_client: MakeClient
    ) -> None:
        """120 events with max_batch_items=50 go as 50 + 50 + 20, gzip-compressed once a body passes 1 KB; a small body is not."""
        client = make_client(exporter=fast_exporter(receiver.url), max_batch_items=50, flush_interval_s=60)
        for n in range(120):
            client.track_event(f"e{n}", payload={"padding": "x" * 40})
        assert client.flush(timeout_s=10)
        requests = receiver.requests
        assert sorted(len(request.items) for request in requests) == [20, 50, 50]
        assert all(request.headers.get("content-encoding") == "gzip" for request in requests)
        assert all(request.raw_body[:2] == b"\x1f\x8b" for request in requests)
        assert [item["event_name"] for item in receiver.items()] == [f"e{n}" for n in range(120)]
        client.track_event("tiny")
        assert client.flush(timeout_s=10)
        assert "content-encoding" not in receiver.requests[-1].headers

    def test_the_idempotency_key_is_stable_across_retries_and_new_per_batch(
        self, receiver: Receiver, make_client: MakeClient
    ) -> None:
        """A batch retried after 500 and 502 carries the same Idempotency-Key each time; the next batch a new one."""
        receiver.script(Reply(500), Reply(502))
        client = make_client(exporter=fast_exporter(receiver.url), flush_interval_s=60)
        client.track_event("first")
        assert client.flush(timeout_s=10)
        client.track_event("second")
        assert client.flush(timeout_s=10)
        keys = [request.headers["idempotency-key"] for request in receiver.requests]
        assert len(keys) == 4
        assert keys[0] == keys[1] == keys[2] != keys[3]
        assert len(keys[0]) == 32 and int(keys[0], 16) >= 0
        assert client.stats == ClientStats(sent=2, retries=2)

    @pytest.mark.parametrize("status", [429, 503])
    def test_retry_after_is_honoured(self, receiver: Receiver, make_client: MakeClient, status: int) -> None:
        """After 429/503 with Retry-After: 1 the retry comes no sooner than a second later (backoff alone would be ~10 ms)."""
        receiver.script(Reply(status, headers={"Retry-After": "1"}))
        client = make_client(exporter=fast_exporter(receiver.url), flush_interval_s=60)
        client.track_event("busy")
        assert client.flush(timeout_s=10)
        first, second = receiver.requests
        assert second.received_at - first.received_at >= 0.95
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
        assert client.stats == ClientStats(sent=1, retries=1)

    def test_a_retry_after_beyond_the_retry_budget_drops_the_batch_at_once(
        self, receiver: Receiver, make_client: MakeClient
    ) -> None:
        """When Retry-After points past max_retry_elapsed_s the batch is dropped (failed) instead of waited for."""
        receiver.script(Reply(503, headers={"Retry-After": "3600"}))
        client = make_client(exporter=fast_exporter(receiver.url, max_retry_elapsed_s=2), flush_interval_s=60)
        client.track_event("busy")
        assert client.flush(timeout_s=10)
        assert len(receiver.requests) == 1
        assert client.stats == ClientStats(failed=1)

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 415, 422])
    def test_a_permanent_4xx_drops_the_batch_without_retrying(
        self, receiver: Receiver, make_client: MakeClient, status: int
    ) -> None:
        """A 4xx answer costs the batch (counted failed) after one attempt, and the next batch is sent normally."""
        receiver.script(Reply(status, body={"error": {"code": "bad", "message": "no", "details": []}}))
        client = make_client(exporter=fast_exporter(receiver.url), flush_interval_s=60)
        client.track_event("a")
        client.track_event("b")
        assert client.flush(timeout_s=10)
        client.track_event("c")
        assert client.flush(timeout_s=10)
        assert [len(request.items) for request in receiver.requests] == [2, 1]
        assert client.stats == ClientStats(sent=1, failed=2)

    def test_items_the_server_rejects_are_counted_and_not_retried(self, receiver: Receiver, make_client: MakeClient) -> None:
        """Per-item rejections in a 200 answer count as rejected; the rest as sent; nothing is sent again."""
        receiver.script(
            Reply(200, body={"accepted": 2, "rejected": [{"index": 1, "field": "event_timestamp", "reason": "too old"}]})
        )
        client = make_client(exporter=fast_exporter(receiver.url), flush_interval_s=60)
        for name in ("a", "b", "c"):
            client.track_event(name)
        assert client.flush(timeout_s=10)
        assert len(receiver.requests) == 1
        assert client.stats == ClientStats(sent=2, rejected=1)

    def test_a_server_that_keeps_failing_costs_the_batch_after_max_retry_elapsed(
        self, receiver: Receiver, make_client: MakeClient
    ) -> None:
        """Repeated 500s are retried with backoff until max_retry_elapsed_s, then the batch is counted failed."""
        receiver.script(*[Reply(500)] * 1000)
        client = make_client(exporter=fast_exporter(receiver.url, max_retry_elapsed_s=1.0), flush_interval_s=60)
        client.track_event("doomed")
        assert client.flush(timeout_s=10)
        attempts = len(receiver.requests)
        assert attempts >= 2
        assert client.stats == ClientStats(failed=1, retries=attempts - 1)

    def test_a_request_that_times_out_is_retried(self, receiver: Receiver, make_client: MakeClient) -> None:
        """A server that accepts but does not answer within timeout_s is tried again with the same key."""
        receiver.script(Reply(hold=True))
        client = make_client(exporter=fast_exporter(receiver.url, timeout_s=0.3), flush_interval_s=60)
        client.track_event("patient")
        assert client.flush(timeout_s=10)
        first, second = receiver.requests
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
        assert client.stats == ClientStats(sent=1, retries=1)


class TestUnreachableServer:
    def _record_in_thread(self, client: TelemetryClient, count: int) -> tuple[threading.Thread, list[int]]:
        """Record ``count`` events from another thread, sampling the queue length every 100 calls."""
        samples: list[int] = []

        def record() -> None:
            for n in range(count):
                client.track_event("flood", payload={"n": n})
                if n % 100 == 0:
                    samples.append(client.stats.queued)

        thread = threading.Thread(target=record)
        thread.start()
        return thread, samples

    def test_recording_returns_while_the_server_hangs(self, receiver: Receiver, make_client: MakeClient) -> None:
        """With the worker stuck in a request the server never answers, 10,000 calls return, the queue stays
        within max_queue_items and the overflow is counted dropped."""
        receiver.script(Reply(hold=True))
        client = make_client(
            exporter=fast_exporter(receiver.url, timeout_s=60), max_queue_items=1000, max_batch_items=100, flush_interval_s=0.05
        )
        client.track_event("first")
        receiver.wait_for(1)
        wait_until(lambda: receiver.holding == 1, 10, "the receiver to hold the first batch")
        thread, samples = self._record_in_thread(client, 10_000)
        thread.join(timeout=60)
        assert not thread.is_alive(), "recording blocked on the hanging server"
        assert receiver.holding == 1 and len(receiver.requests) == 1  # the server was hanging all along
        assert max(samples) <= 1000
        assert client.stats.queued == 1000
        assert client.stats.dropped == 9_000

    def test_recording_stays_bounded_when_nothing_listens(self, dead_url: str, make_client: MakeClient) -> None:
        """Against a dead address, 10,000 calls return, the queue never passes max_queue_items, and every
        item ends counted as failed or dropped once retries run out."""
        client = make_client(
            exporter=fast_exporter(dead_url, max_retry_elapsed_s=0.2),
            max_queue_items=1000,
            max_batch_items=100,
            flush_interval_s=0.05,
        )
        thread, samples = self._record_in_thread(client, 10_000)
        thread.join(timeout=60)
        assert not thread.is_alive(), "recording blocked on the dead server"
        assert max(samples) <= 1000
        assert client.flush(timeout_s=30)
        stats = client.stats
        assert stats.sent == 0
        assert stats.queued == 0
        assert stats.failed + stats.dropped == 10_000
        assert stats.failed > 0 and stats.retries > 0

    def test_shutdown_against_a_hanging_server_returns_within_its_timeout(
        self, receiver: Receiver, make_client: MakeClient
    ) -> None:
        """shutdown(timeout_s) returns although the worker is stuck on a server that never answers."""
        receiver.script(*[Reply(hold=True)] * 10)
        client = make_client(exporter=fast_exporter(receiver.url, timeout_s=60), flush_interval_s=0.05)
        client.track_event("stuck")
        receiver.wait_for(1)
        done = threading.Event()
        threading.Thread(target=lambda: (client.shutdown(timeout_s=0.2), done.set())).start()
        assert done.wait(30), "shutdown did not return"
        client.track_event("after")
        assert client.stats.dropped == 1


class TestRetryPolicy:
    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (200, Outcome.COMMITTED),
            (202, Outcome.COMMITTED),
            (429, Outcome.RETRY_AFTER),
            (503, Outcome.RETRY_AFTER),
            (500, Outcome.RETRY),
            (502, Outcome.RETRY),
            (504, Outcome.RETRY),
            (408, Outcome.RETRY),
            (400, Outcome.PERMANENT),
            (401, Outcome.PERMANENT),
            (403, Outcome.PERMANENT),
            (413, Outcome.PERMANENT),
            (415, Outcome.PERMANENT),
            (422, Outcome.PERMANENT),
            (301, Outcome.PERMANENT),
        ],
    )
    def test_status_codes_are_classified(self, status: int, outcome: Outcome) -> None:
        """Each status maps to commit, wait-as-told, back off, or drop."""
        assert classify(status) is outcome

    def test_retry_after_reads_seconds_and_http_dates(self) -> None:
        """Retry-After is delta-seconds or an HTTP date; garbage and absence give None, the past gives 0."""
        now = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
        assert retry_after_s("7", now=now) == 7.0
        assert retry_after_s(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
        assert retry_after_s(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
        assert retry_after_s("soon", now=now) is None
        assert retry_after_s(None, now=now) is None

    def test_backoff_doubles_up_to_its_cap_with_jitter(self) -> None:
        """Retry n waits between half and all of min(max_backoff_s, initial_backoff_s * 2**n)."""
        policy = RetryPolicy(initial_backoff_s=1.0, max_backoff_s=8.0)
        assert [policy.backoff_s(n, lambda: 0.0) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
        assert [policy.backoff_s(n, lambda: 1.0) for n in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_item_kinds_name_the_four_endpoints() -> None:
    """ItemKind has exactly the four kinds the ingest API takes."""
    assert {kind.value for kind in ItemKind} == {"events", "system_metrics", "business_metrics", "spans"}
