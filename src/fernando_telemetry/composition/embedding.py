"""Telemetry of the platform's own backend written straight into the database, without an HTTP hop.

``DatabaseExporter`` is an SDK ``Exporter`` that hands each batch to the ingest service (same checks,
same group-commit writer as the HTTP API); ``in_process_client()`` wraps it in a ``TelemetryClient``, so
the SDK and the ``TelemetryMiddleware`` work unchanged: recording stays non-blocking, batching and
bounded queueing are the SDK's.

    client = in_process_client(wiring.ingestor, license_id=None, service_name="platform-api")
    app.add_middleware(TelemetryMiddleware, client=client, service_name="platform-api")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import FernandoTelemetryError, InvalidInput
from fernando_telemetry.core.keys import Principal, Scope
from fernando_telemetry.sdk import ExportResult, TelemetryClient
from fernando_telemetry.services import ingestion
from fernando_telemetry.services.ingest import KINDS, Ingestor

__all__ = ["DatabaseExporter", "in_process_client"]

logger = logging.getLogger(__name__)

# The in-process path acts as this principal: no key of its own (id 0 is never a real key).
_IN_PROCESS_KEY_ID = 0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DatabaseExporter:
    """Writes SDK batches through the ingest service; the rows belong to ``license_id`` (None: each item's own)."""

    def __init__(self, ingestor: Ingestor, *, license_id: int | None, clock: Callable[[], datetime] = _utc_now) -> None:
        scopes = frozenset({Scope.INGEST.value}) if license_id is not None else frozenset({Scope.INGEST.value, Scope.ADMIN.value})
        principal = Principal(api_key_id=_IN_PROCESS_KEY_ID, license_id=license_id, scopes=scopes)
        self._caller = Caller(actor="in-process", principal=principal, clock=clock)
        self._ingestor = ingestor
        self.is_shut_down = False

    def export(self, kind: str, items: Sequence[Mapping[str, Any]]) -> ExportResult:
        if self.is_shut_down:
            return ExportResult(failed=len(items))
        try:
            ingested = ingestion.ingest(
                self._ingestor,
                kind=KINDS[str(kind)],
                items=[dict(item) for item in items],
                caller=self._caller,
                endpoint=f"in-process-{kind}",
                now_s=time.monotonic(),
                metered=False,  # the platform's own telemetry: bounded by the SDK's queue, not by a key's rate
            )
        except InvalidInput:
            return ExportResult(failed=len(items))
        except (FernandoTelemetryError, KeyError) as exc:
            logger.warning("in-process telemetry batch of %d %s dropped: %s", len(items), kind, exc)
            return ExportResult(failed=len(items))
        return ExportResult(sent=ingested.accepted, rejected=len(ingested.rejections))

    def shutdown(self) -> None:
        self.is_shut_down = True


def in_process_client(
    ingestor: Ingestor, *, license_id: int | None, service_name: str, environment: str | None = None, **options: Any
) -> TelemetryClient:
    """A ``TelemetryClient`` whose batches go straight to the database of ``ingestor``."""
    return TelemetryClient(
        "in-process://",
        "in-process",
        service_name=service_name,
        environment=environment,
        exporter=DatabaseExporter(ingestor, license_id=license_id),
        **options,
    )
