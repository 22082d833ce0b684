"""``BatchProcessor``: the bounded queue between recording threads and the exporter, and the worker that drains it.

Standard library only. The hot path (``enqueue``) takes one short lock and never waits on I/O. An entry may be
a finished wire item or the raw material of one and the function that builds it: the worker builds it, so the
formatting, ids and checks cost the recording thread nothing. The worker thread wakes when a batch of one kind
is full or every ``flush_interval_s``, and exports per kind. After ``os.fork()`` the child gets a fresh lock and an empty
queue (the parent still sends what it queued), and its worker starts on the next recording.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from fernando_telemetry.sdk.exporter import Exporter, ExportResult
from fernando_telemetry.sdk.stats import ClientStats

__all__ = ["BatchProcessor", "Build", "Entry"]

Build = Callable[[Any], Any]
"""Turns a queued value into its wire item in the worker; raising drops the item (counted ``dropped``)."""
Entry = tuple[str, Any, "Build | None"]
"""What the queue holds: the item's kind, the item (or its raw material) and the ``Build`` for it (or None)."""

_logger = logging.getLogger("fernando_telemetry.sdk")


class BatchProcessor:
    """Queues items of any kind (drop-oldest when full) and hands them to an ``Exporter`` in batches per kind."""

    def __init__(self, exporter: Exporter, *, max_queue_items: int, max_batch_items: int, flush_interval_s: float) -> None:
        self._exporter = exporter
        self._max_queue_items = max_queue_items
        self._max_batch_items = max_batch_items
        self._flush_interval_s = flush_interval_s
        self._is_shut_down = False
        self._reset()
        _processors.add(self)

    def _reset(self) -> None:
        """Fresh synchronisation state and counters (at construction and in a forked child)."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._queue: deque[Entry] = deque()
        self._queued_by_kind: dict[str, int] = {}  # so that a full batch of one kind wakes the worker
        self._worker: threading.Thread | None = None
        self._flush_waiters: list[threading.Event] = []
        self._stopping = False
        self._in_flight = 0
        self._sent = self._rejected = self._failed = self._dropped = self._retries = 0

    # -- the hot path -------------------------------------------------------------------------------

    def enqueue(self, kind: str, item: Any, build: Build | None = None) -> None:
        """Queue one item (or, with ``build``, what the worker makes it from); a full queue loses its oldest item.

        Never raises past the caller's guard, never waits.
        """
        with self._lock:
            if self._is_shut_down:
                self._dropped += 1
                return
            queue = self._queue
            by_kind = self._queued_by_kind
            if len(queue) >= self._max_queue_items:
                by_kind[queue.popleft()[0]] -= 1
                self._dropped += 1
            queue.append((kind, item, build))
            of_kind = by_kind[kind] = by_kind.get(kind, 0) + 1
            if self._worker is None:
                self._start_worker_locked()
        if of_kind >= self._max_batch_items and not self._wake.is_set():
            self._wake.set()

    def enqueue_pair(self, first: Entry, second: Entry) -> None:
        """Queue two ``(kind, item, build)`` entries under one lock: what ``enqueue`` does twice, at half the cost."""
        with self._lock:
            if self._is_shut_down:
                self._dropped += 2
                return
            queue = self._queue
            by_kind = self._queued_by_kind
            queue.append(first)
            queue.append(second)
            by_kind[first[0]] = by_kind.get(first[0], 0) + 1
            by_kind[second[0]] = by_kind.get(second[0], 0) + 1
            excess = len(queue) - self._max_queue_items
            if excess > 0:  # the oldest go, as two enqueue() calls would have it
                for _ in range(excess):
                    by_kind[queue.popleft()[0]] -= 1
                self._dropped += excess
            of_kind = max(by_kind[first[0]], by_kind[second[0]])
            if self._worker is None:
                self._start_worker_locked()
        if of_kind >= self._max_batch_items and not self._wake.is_set():
            self._wake.set()

    def count_dropped(self) -> None:
        with self._lock:
            self._dropped += 1

    # -- control ------------------------------------------------------------------------------------

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            return ClientStats(
                queued=len(self._queue),
                sent=self._sent,
                rejected=self._rejected,
                failed=self._failed,
                dropped=self._dropped,
                retries=self._retries,
            )

    @property
    def is_shut_down(self) -> bool:
        return self._is_shut_down

    def flush(self, timeout_s: float | None) -> bool:
        """Export what is queued now; True when all of it has an outcome within ``timeout_s`` (None waits forever)."""
        with self._lock:
            if not self._queue and self._in_flight == 0:
                return True
            worker = self._worker
            if worker is None:
                if not self._start_worker_locked():
                    return False
            elif not worker.is_alive():
                return False  # stopped by shutdown: nobody left to export
            done = threading.Event()
            self._flush_waiters.append(done)
        self._wake.set()
        return done.wait(timeout_s)

    def shutdown(self, timeout_s: float | None) -> None:
        """Stop accepting items, export what is queued within ``timeout_s``, then stop the worker; idempotent."""
        worker = self.stop_soon()
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout_s)
            if not worker.is_alive():
                return
        # No worker, or it is still waiting on the network: cut its retries short and let it finish alone.
        self._shutdown_exporter()

    def stop_soon(self) -> threading.Thread | None:
        """Stop accepting items and ask the worker to drain and exit, without waiting; returns the worker."""
        with self._lock:
            self._is_shut_down = True
            self._stopping = True
            worker = self._worker
            if worker is None or not worker.is_alive():
                self._dropped += len(self._queue)  # no worker will ever send these
                self._queue.clear()
                self._queued_by_kind.clear()
                worker = None
        self._wake.set()
        return worker

    # -- the worker ---------------------------------------------------------------------------------

    def _start_worker_locked(self) -> bool:
        worker = threading.Thread(target=self._run, name="fernando-telemetry-export", daemon=True)
        try:
            worker.start()
        except RuntimeError:  # interpreter shutting down, or out of threads: keep the items, try again later
            return False
        self._worker = worker
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            with self._lock:
                waiters, self._flush_waiters = self._flush_waiters, []
                stopping = self._stopping
            try:
                self._drain()
            except Exception:  # a defect must not kill the worker: the queue would then only ever drop
                _logger.debug("telemetry worker round failed", exc_info=True)
            for waiter in waiters:
                waiter.set()
            if stopping:
                self._shutdown_exporter()
                return

    def _drain(self) -> None:
        """Export what is queued when the round begins, in batches of up to ``max_batch_items`` of one kind.

        Only that much: a steady stream of new items cannot keep a flush waiting for ever. Items are gathered
        per kind across the round, so a queue of interleaved kinds (a request's span and event) still goes out
        in full batches: one request (the costliest part of exporting) per ``max_batch_items`` items.
        """
        with self._lock:
            budget = len(self._queue)
        batches: dict[str, list[Any]] = {}
        try:
            while budget > 0:
                chunk = self._take(min(budget, self._max_batch_items))
                if not chunk:
                    break
                budget -= len(chunk)
                for kind, item in self._built(chunk):
                    batch = batches.setdefault(kind, [])
                    batch.append(item)
                    if len(batch) >= self._max_batch_items:
                        del batches[kind]
                        self._export(kind, batch)
            for kind, batch in batches.items():
                self._export(kind, batch)
        finally:
            with self._lock:
                self._in_flight = 0

    def _take(self, count: int) -> list[Entry]:
        """Up to ``count`` entries off the queue, in flight from now on."""
        with self._lock:
            queue, by_kind = self._queue, self._queued_by_kind
            chunk = [queue.popleft() for _ in range(min(count, len(queue)))]
            for kind, _item, _build in chunk:
                by_kind[kind] -= 1
            self._in_flight += len(chunk)
        return chunk

    def _built(self, chunk: list[Entry]) -> list[tuple[str, Any]]:
        """The chunk's wire items, each built now if it was queued as raw material; the ones that fail are dropped."""
        items: list[tuple[str, Any]] = []
        for kind, item, build in chunk:
            if build is None:
                items.append((kind, item))
                continue
            try:
                items.append((kind, build(item)))
            except Exception:  # an argument the recording call did not check: the item is dropped and counted
                with self._lock:
                    self._dropped += 1
                    self._in_flight -= 1
        return items

    def _export(self, kind: str, items: list[Any]) -> None:
        try:
            result = self._exporter.export(kind, items)
            if not isinstance(result, ExportResult):
                result = ExportResult(sent=len(items))
        except Exception:
            _logger.debug("telemetry exporter raised on %d %s", len(items), kind, exc_info=True)
            result = ExportResult(failed=len(items))
        sent = min(max(0, result.sent), len(items))
        rejected = min(max(0, result.rejected), len(items) - sent)
        failed = len(items) - sent - rejected  # whatever the exporter did not account for is lost
        with self._lock:
            self._sent += sent
            self._rejected += rejected
            self._failed += failed
            self._retries += max(0, result.retries)
            self._in_flight -= len(items)

    def _shutdown_exporter(self) -> None:
        try:
            self._exporter.shutdown()
        except Exception:
            _logger.debug("telemetry exporter raised on shutdown", exc_info=True)

    def _after_fork_in_child(self) -> None:
        self._reset()


_processors: weakref.WeakSet[BatchProcessor] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for processor in list(_processors):
        processor._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
