"""``HttpExporter``: sends batches to the ingest API with ``httpx``, gzip, an Idempotency-Key per batch and the
retry policy of ``retry``. Imports the standard library, ``httpx`` and ``fernando_telemetry.sdk`` only.
"""

from __future__ import annotations

import gzip
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from fernando_telemetry.sdk.exporter import ExportResult
from fernando_telemetry.sdk.retry import Outcome, RetryPolicy, classify, retry_after_s
from fernando_telemetry.sdk.wire import ENDPOINTS, encode_batch

__all__ = ["GZIP_LEVEL", "GZIP_MIN_BYTES", "HttpExporter"]

GZIP_MIN_BYTES = 1024
"""Bodies at least this long are sent gzip-compressed."""
GZIP_LEVEL = 1
"""Fastest: on a batch of events or spans it costs a third of level 6's CPU for bodies about 15% larger (still
about a seventh of the JSON). The worker's CPU is the host's CPU."""

_logger = logging.getLogger("fernando_telemetry.sdk")


def _sdk_version() -> str:
    try:
        from importlib.metadata import version

        return version("fernando-telemetry")
    except Exception:
        return "unknown"


class HttpExporter:
    """The default exporter: one ``POST`` per batch to ``{endpoint}/api/v1/...``, retried as the server asks.

    A batch carries one ``Idempotency-Key`` (a uuid4 hex) on every attempt, so a retry of a batch the server
    did commit (the answer was lost) is answered from the server's store instead of writing the rows twice.
    2xx commits; 429/503 wait ``Retry-After``; other 5xx, 408, timeouts and connection errors back off
    exponentially with jitter until ``max_retry_elapsed_s``; every other status drops the batch at once.
    """

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        max_retry_elapsed_s: float = 60.0,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        gzip_min_bytes: int = GZIP_MIN_BYTES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base_url = endpoint.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "User-Agent": f"fernando-telemetry-sdk/{_sdk_version()}",
        }
        self._timeout_s = timeout_s
        self._policy = RetryPolicy(
            max_elapsed_s=max_retry_elapsed_s, initial_backoff_s=initial_backoff_s, max_backoff_s=max_backoff_s
        )
        self._gzip_min_bytes = gzip_min_bytes
        self._transport = transport
        self._random = random.Random()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client: httpx.Client | None = None
        self._pid = os.getpid()

    def export(self, kind: str, items: Sequence[Mapping[str, Any]]) -> ExportResult:
        try:
            return self._export(kind, items)
        except Exception:  # a defect here must cost the batch, never the worker thread
            _logger.debug("telemetry export of %d %s failed unexpectedly", len(items), kind, exc_info=True)
            return ExportResult(failed=len(items))

    def shutdown(self) -> None:
        self._stop.set()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: S110
                pass

    def _export(self, kind: str, items: Sequence[Mapping[str, Any]]) -> ExportResult:
        batch = encode_batch(kind, items)
        if batch.item_count == 0:
            return ExportResult(rejected=batch.unencodable)
        if self._stop.is_set():
            return ExportResult(rejected=batch.unencodable, failed=batch.item_count)
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        body = batch.body
        if len(body) >= self._gzip_min_bytes:
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        url = self._base_url + ENDPOINTS[kind].path
        deadline = time.monotonic() + self._policy.max_elapsed_s
        retries = 0
        while True:
            wait_s: float | None
            try:
                response = self._http().post(url, content=body, headers=headers)
            except httpx.TransportError as exc:  # timeouts, refused and reset connections
                outcome, wait_s, why = Outcome.RETRY, None, type(exc).__name__
            else:
                outcome = classify(response.status_code)
                wait_s = retry_after_s(response.headers.get("retry-after")) if outcome is Outcome.RETRY_AFTER else None
                why = f"HTTP {response.status_code}"
                if outcome is Outcome.COMMITTED:
                    rejected = _rejected_count(response, batch.item_count)
                    return ExportResult(sent=batch.item_count - rejected, rejected=rejected + batch.unencodable, retries=retries)
                if outcome is Outcome.PERMANENT:
                    _logger.debug("telemetry batch of %d %s dropped: %s %s", batch.item_count, kind, why, response.text[:300])
                    return ExportResult(failed=batch.item_count, rejected=batch.unencodable, retries=retries)
            if wait_s is None:
                wait_s = self._policy.backoff_s(retries, self._random.random)
            if self._stop.is_set() or time.monotonic() + wait_s > deadline:
                _logger.debug("telemetry batch of %d %s dropped after %d retries: %s", batch.item_count, kind, retries, why)
                return ExportResult(failed=batch.item_count, rejected=batch.unencodable, retries=retries)
            if self._stop.wait(wait_s):
                return ExportResult(failed=batch.item_count, rejected=batch.unencodable, retries=retries)
            retries += 1

    def _http(self) -> httpx.Client:
        if self._pid != os.getpid():
            # In a forked child: the parent's pooled sockets are not ours and its threads may have held our
            # lock at the fork. Start over with fresh ones and leave the parent's connections alone.
            self._pid = os.getpid()
            self._lock = threading.Lock()
            stopped, self._stop = self._stop.is_set(), threading.Event()
            if stopped:
                self._stop.set()
            self._client = None
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    headers=self._headers, timeout=self._timeout_s, transport=self._transport, follow_redirects=False
                )
            return self._client


def _rejected_count(response: httpx.Response, item_count: int) -> int:
    """How many items the 2xx answer rejects one by one (``{"accepted": n, "rejected": [...]}``)."""
    try:
        answer = response.json()
    except ValueError:
        return 0
    rejected = answer.get("rejected") if isinstance(answer, dict) else None
    if not isinstance(rejected, list):
        return 0
    if rejected:
        _logger.debug("telemetry items rejected: %s", rejected[:5])
    return min(len(rejected), item_count)
