"""Fixtures of the SDK tests: a real HTTP receiver, an address nothing listens on, a fixed clock, a client factory."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from fernando_telemetry.sdk import HttpExporter, InMemoryExporter, TelemetryClient
from tests.sdk.receiver import Receiver

FIXED_NOW = datetime(2026, 11, 28, 9, 30, 0, 123456, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def dead_url() -> str:
    """A base URL on a port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def make_client() -> Iterator[Callable[..., TelemetryClient]]:
    """Build clients that are shut down (briefly) when the test ends."""
    clients: list[TelemetryClient] = []

    def make(endpoint: str = "http://unused.invalid", **options: Any) -> TelemetryClient:
        client = TelemetryClient(endpoint, "test-key", **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.shutdown(timeout_s=1.0)


@pytest.fixture
def memory_client(make_client: Callable[..., TelemetryClient]) -> tuple[TelemetryClient, InMemoryExporter]:
    """A client on an ``InMemoryExporter`` with a fixed clock and a slow timer (tests flush explicitly)."""
    exporter = InMemoryExporter()
    client = make_client(
        exporter=exporter, service_name="checkout", environment="test", clock=lambda: FIXED_NOW, flush_interval_s=60
    )
    return client, exporter


def fast_exporter(url: str, **options: Any) -> HttpExporter:
    """An ``HttpExporter`` with test-sized backoff so retries happen in milliseconds."""
    options.setdefault("initial_backoff_s", 0.01)
    options.setdefault("max_backoff_s", 0.05)
    options.setdefault("max_retry_elapsed_s", 5.0)
    options.setdefault("timeout_s", 5.0)
    return HttpExporter(url, "test-key", **options)
