"""The SDK's default client: ``set_default_client``/``configure``, the environment, and the three call forms of
``track_telemetry_event``; nothing ever raises into the caller."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fernando_telemetry.sdk import (
    EventType,
    InMemoryExporter,
    RecordingSink,
    TelemetryClient,
    configure,
    dropped_without_client,
    get_default_client,
    set_default_client,
    track_telemetry_event,
)


@pytest.fixture(autouse=True)
def isolated_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no default client and no environment, and leaves the previous default in place."""
    monkeypatch.delenv("FERNANDO_TELEMETRY_URL", raising=False)
    monkeypatch.delenv("FERNANDO_TELEMETRY_API_KEY", raising=False)
    previous = set_default_client(None)
    try:
        yield
    finally:
        current = set_default_client(previous)
        if isinstance(current, TelemetryClient):
            current.shutdown(timeout_s=1.0)


class TestTrackTelemetryEvent:
    def test_keyword_only_call_goes_to_the_default_client(self) -> None:
        """The seed's form (every argument a keyword) records through the default client."""
        sink = RecordingSink()
        set_default_client(sink)
        asyncio.run(track_telemetry_event(event_type=EventType.API_EVENT, event_name="GET_/items", duration_ms=3, source="api"))
        assert sink.events == [{"event_name": "GET_/items", "event_type": "api_event", "duration_ms": 3, "source": "api"}]

    def test_name_first_and_explicit_client_forms(self) -> None:
        """A name given first uses the default; a client given first (or as client=) is used instead of it."""
        default, explicit = RecordingSink(), RecordingSink()
        set_default_client(default)
        asyncio.run(track_telemetry_event("job_started", event_type="system_event"))
        asyncio.run(track_telemetry_event(explicit, "job_done"))
        asyncio.run(track_telemetry_event(client=explicit, event_name="job_checked"))
        assert [event["event_name"] for event in default.events] == ["job_started"]
        assert [event["event_name"] for event in explicit.events] == ["job_done", "job_checked"]

    def test_a_bad_keyword_costs_the_item_not_the_caller(self) -> None:
        """An unknown keyword is a dropped, counted item of the default client; nothing is raised."""
        client = TelemetryClient("http://unused.invalid", "k", exporter=InMemoryExporter(), flush_interval_s=60)
        set_default_client(client)
        try:
            asyncio.run(track_telemetry_event(event_name="e", colour="red"))
            assert client.stats.dropped == 1
        finally:
            client.shutdown(timeout_s=1.0)

    def test_without_any_client_the_event_is_counted_as_dropped(self) -> None:
        """No default and no environment: the call returns, and the drop is counted."""
        before = dropped_without_client()
        asyncio.run(track_telemetry_event(event_name="lost"))
        assert get_default_client() is None
        assert dropped_without_client() == before + 1


class TestConfigure:
    def test_configure_sets_and_replaces_the_default(self) -> None:
        """configure makes a client the default; a second configure shuts the first down."""
        first = configure("http://127.0.0.1:9", "k1", exporter=InMemoryExporter(), flush_interval_s=60)
        second = configure("http://127.0.0.1:9", "k2", exporter=InMemoryExporter(), flush_interval_s=60)
        assert get_default_client() is second
        first.track_event("after shutdown")
        assert first.stats.dropped == 1

    def test_configure_reads_the_environment_and_refuses_without_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Missing URL or key is a ValueError naming the variable; with both set configure needs no argument."""
        with pytest.raises(ValueError, match="FERNANDO_TELEMETRY_URL"):
            configure()
        monkeypatch.setenv("FERNANDO_TELEMETRY_URL", "http://127.0.0.1:9")
        with pytest.raises(ValueError, match="FERNANDO_TELEMETRY_API_KEY"):
            configure()
        monkeypatch.setenv("FERNANDO_TELEMETRY_API_KEY", "k")
        assert isinstance(configure(flush_interval_s=60), TelemetryClient)

    def test_a_bad_url_in_the_environment_leaves_no_client(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A URL that is not http(s) makes no client (logged); recording then drops and counts."""
        monkeypatch.setenv("FERNANDO_TELEMETRY_URL", "ftp://nowhere")
        monkeypatch.setenv("FERNANDO_TELEMETRY_API_KEY", "k")
        set_default_client(None)
        assert get_default_client() is None
