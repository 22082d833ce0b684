"""The ``Exporter`` protocol the batch worker sends through, its result, and ``InMemoryExporter`` for tests.

Standard library only. An exporter is called from the worker thread only, one batch of one kind at a time.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = ["ExportResult", "Exporter", "InMemoryExporter", "ItemKind"]


class ItemKind(StrEnum):
    """What a batch holds; one ingest endpoint per kind."""

    EVENTS = "events"
    SYSTEM_METRICS = "system_metrics"
    BUSINESS_METRICS = "business_metrics"
    SPANS = "spans"


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What became of one batch. ``sent + rejected + failed`` is the batch size."""

    sent: int = 0
    """Items the receiver committed."""
    rejected: int = 0
    """Items refused one by one as permanently bad (never retried)."""
    failed: int = 0
    """Items dropped with their batch: a permanent error, or retries that ran out of time."""
    retries: int = 0
    """Attempts made after the first."""


@runtime_checkable
class Exporter(Protocol):
    """Sends batches somewhere. ``export`` must not raise and must return within its own time budget."""

    def export(self, kind: str, items: Sequence[Mapping[str, Any]]) -> ExportResult:
        """Deliver ``items`` (all of ``kind``, an ``ItemKind`` value) and say what became of them."""
        ...

    def shutdown(self) -> None:
        """Release connections and stop any wait in progress; idempotent."""
        ...


class InMemoryExporter:
    """Keeps every batch it is given, in order, and reports them all sent. Ships for tests of code that records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.batches: list[tuple[str, list[dict[str, Any]]]] = []
        self.is_shut_down = False
        _instances.add(self)

    def export(self, kind: str, items: Sequence[Mapping[str, Any]]) -> ExportResult:
        with self._lock:
            self.batches.append((str(kind), [dict(item) for item in items]))
        return ExportResult(sent=len(items))

    def shutdown(self) -> None:
        self.is_shut_down = True

    def items(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every item exported so far, of one kind or of all kinds."""
        with self._lock:
            return [item for batch_kind, batch in self.batches if kind is None or batch_kind == kind for item in batch]

    def clear(self) -> None:
        with self._lock:
            self.batches.clear()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # another thread of the parent may have held it at the fork


_instances: weakref.WeakSet[InMemoryExporter] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    for exporter in list(_instances):
        exporter._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)
