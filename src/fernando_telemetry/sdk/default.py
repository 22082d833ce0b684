"""The SDK's default client, as ``logging`` has a root logger: ``configure`` (or ``set_default_client``) sets
it once at start-up, and ``track_telemetry_event`` records through it from anywhere.

Imports the standard library and ``fernando_telemetry.sdk`` only. Without a configured client the first use
builds one from ``FERNANDO_TELEMETRY_URL`` and ``FERNANDO_TELEMETRY_API_KEY`` if both are set; otherwise the
event is dropped and counted (``dropped_without_client()``), and one WARNING is logged, once per process, on
the ``fernando_telemetry.sdk`` logger. Recording never raises and never blocks.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from fernando_telemetry.sdk.client import TelemetryClient
from fernando_telemetry.sdk.sink import TelemetrySink

__all__ = [
    "API_KEY_ENV",
    "URL_ENV",
    "configure",
    "dropped_without_client",
    "get_default_client",
    "set_default_client",
    "track_telemetry_event",
]

URL_ENV = "FERNANDO_TELEMETRY_URL"
"""The server's base URL for a default client built from the environment."""
API_KEY_ENV = "FERNANDO_TELEMETRY_API_KEY"
"""The ingest key for a default client built from the environment."""

logger = logging.getLogger("fernando_telemetry.sdk")

_lock = threading.Lock()
_default: TelemetrySink | None = None
_environment_tried = False
_warned = False
_dropped = 0


def configure(
    endpoint: str | None = None, api_key: str | None = None, *, environ: Mapping[str, str] | None = None, **options: Any
) -> TelemetryClient:
    """Build a ``TelemetryClient`` and make it the default; returns it (keep it to read ``stats`` or flush).

    ``endpoint`` and ``api_key`` fall back to ``FERNANDO_TELEMETRY_URL`` and ``FERNANDO_TELEMETRY_API_KEY``;
    ``options`` are ``TelemetryClient``'s keyword arguments. A client set before is shut down. Raises
    ``ValueError`` when the URL or key is missing or bad (configuration fails where the host can see it).
    """
    source = os.environ if environ is None else environ
    endpoint = endpoint if endpoint is not None else source.get(URL_ENV)
    api_key = api_key if api_key is not None else source.get(API_KEY_ENV)
    if not endpoint:
        raise ValueError(f"configure needs an endpoint (or {URL_ENV} in the environment)")
    if not api_key:
        raise ValueError(f"configure needs an api_key (or {API_KEY_ENV} in the environment)")
    client = TelemetryClient(endpoint, api_key, **options)
    previous = set_default_client(client)
    if isinstance(previous, TelemetryClient) and previous is not client:
        previous.shutdown()
    return client


def set_default_client(client: TelemetrySink | None) -> TelemetrySink | None:
    """Make ``client`` (any ``TelemetrySink``, e.g. a ``RecordingSink`` in tests) the default; None unsets it,
    and the next use looks at the environment again (and warns again if it finds no client there).

    Returns the previous default, not shut down (the caller owns it).
    """
    global _default, _environment_tried, _warned
    with _lock:
        previous, _default = _default, client
        _environment_tried = client is not None
        _warned = False
        return previous


def get_default_client() -> TelemetrySink | None:
    """The default client; built from the environment on first use when none was set (None if it cannot be)."""
    global _default, _environment_tried
    client = _default
    if client is not None or _environment_tried:
        return client
    with _lock:
        if _default is None and not _environment_tried:
            _environment_tried = True
            endpoint, api_key = os.environ.get(URL_ENV), os.environ.get(API_KEY_ENV)
            if endpoint and api_key:
                try:
                    _default = TelemetryClient(endpoint, api_key)
                except ValueError as exc:
                    logger.warning("fernando_telemetry: %s=%r does not make a client: %s", URL_ENV, endpoint, exc)
        return _default


def dropped_without_client() -> int:
    """Events ``track_telemetry_event`` dropped because no default client was configured."""
    return _dropped


async def track_telemetry_event(
    client: TelemetrySink | str | None = None, event_name: str | None = None, /, **fields: Any
) -> None:
    """Record one event from async code; only queues (no I/O inside), never raises.

    Three forms: ``await track_telemetry_event(event_type=EventType.API_EVENT, event_name="GET_/items",
    duration_ms=12, source="api")`` and ``await track_telemetry_event("job_started", ...)`` use the default
    client; ``await track_telemetry_event(client, "job_started", ...)`` uses ``client``. The other keywords
    are ``TelemetryClient.track_event``'s.
    """
    sink: TelemetrySink | None = None
    try:
        if isinstance(client, str):  # the event name, given first
            event_name = client
        else:
            sink = client
        if sink is None:
            sink = fields.pop("client", None)
        if event_name is None:
            event_name = fields.pop("event_name", None)
        if sink is None:
            sink = get_default_client()
        if sink is None:
            _drop_unconfigured()
            return
        sink.track_event(event_name, **fields)  # a missing name is the worker's to refuse
    except Exception:  # e.g. an unknown keyword: the item is lost, the caller is not
        if isinstance(sink, TelemetryClient):
            sink._drop()


def _drop_unconfigured() -> None:
    global _dropped, _warned
    with _lock:
        _dropped += 1
        warn, _warned = not _warned, True
    if warn:
        logger.warning(
            "fernando_telemetry: track_telemetry_event has no client; events are dropped (and counted) until "
            "configure() or set_default_client() is called, or %s and %s are set",
            URL_ENV,
            API_KEY_ENV,
        )
