"""One batch ingested, whatever way it came: the ``ingest`` use case and its ``Ingested`` outcome.

The native routes (``api.ingest``), OTLP/HTTP and OTLP/gRPC (through ``services.otlp_export``) and the in-process
exporter (``composition.embedding``) all call ``ingest``; they parse, build the ``Caller`` and shape the answer.
The order of the steps is one for every path:

1. replay: a batch already committed under its Idempotency-Key gets its stored answer, and nothing else is checked;
2. size: a body that is not an array of items, or holds more than the request limit, is refused whole;
3. rate: the key's and its license's token buckets (``RateLimited``, 429);
4. admission: a full write queue (``Overloaded``, 503) before a license over its fair share (``OverFairShare``, 429);
5. decode, then ``Ingestor.store`` (unknown licenses, users, partitions, the writer; it asks admission again).

The paths used to differ without a reason, and now follow this order: OTLP checked admission before the rate and
took the rate's tokens after decoding (for the same item count), native requests refused an oversize array only after
drawing its tokens. An oversize request now costs no tokens, and a request over its rate costs no decoding.
Imports core and services.ingest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fernando_telemetry.core import otlp
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import Forbidden
from fernando_telemetry.core.ingest.common import DecodeContext, Rejection
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.services.ingest import Ingestor, Kind, RowBatch, Stored

__all__ = ["Ingested", "OtlpItems", "ingest"]


@dataclass(frozen=True, slots=True)
class OtlpItems:
    """A parsed OTLP export request, with its decoder and the size of the body it came in (which budgets the
    resource copies its rows may store)."""

    pb2_request: Any
    decode: Callable[[Any, DecodeContext], otlp.DecodedBatch]
    body_bytes: int


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one ``ingest`` call did: items received, rows committed, every rejection ordered by index, and the
    native answer ``{"accepted": n, "rejected": [...]}`` (a replay's is the answer stored the first time)."""

    received: int
    accepted: int
    rejections: tuple[Rejection, ...]
    answer: dict[str, Any]
    replayed: bool = False


def ingest(
    ingestor: Ingestor,
    *,
    kind: Kind,
    items: Any,
    caller: Caller,
    endpoint: str,
    now_s: float,
    idempotency_key: str | None = None,
    metered: bool = True,
) -> Ingested:
    """Store one batch for ``caller``'s key; blocking (run it on a worker thread), it returns once the rows are committed.

    ``items`` is a native body's array (any JSON value: a non-array is ``InvalidInput``) or an ``OtlpItems``.
    ``endpoint`` names the batch's route for its Idempotency-Key; ``now_s`` is a monotonic reading for the rate
    buckets; the caller's clock, read once, dates the batch. ``metered=False`` skips the rate buckets: the in-process
    exporter is the platform's own telemetry, bounded by its SDK queue rather than a key's rate.
    """
    principal = _principal_of(caller)
    replay = ingestor.replayed(principal=principal, endpoint=endpoint, idempotency_key=idempotency_key)
    if replay is not None:
        return _ingested(Stored.replay_of(replay))
    if isinstance(items, OtlpItems):
        count = otlp.item_count(items.pb2_request)
        ingestor.check_otlp_size(count)
    else:
        count = ingestor.check_items(kind, items)
    if metered:
        # an empty request still takes one token, so a key cannot spin on empty batches for free
        ingestor.check_rate(principal, max(1, count), now_s=now_s)
    ingestor.check_admission(principal, count)
    now = caller.now()
    if isinstance(items, OtlpItems):
        context = ingestor.otlp_context(kind, principal, now, body_bytes=items.body_bytes, items=count)
        decoded = items.decode(items.pb2_request, context)
        batch = RowBatch(decoded.rows, decoded.indexes, decoded.rejections, received=decoded.received, received_at=now)
    else:
        batch = ingestor.decode(kind, items, principal=principal, now=now)
    stored = ingestor.store(kind, batch, principal=principal, endpoint=endpoint, idempotency_key=idempotency_key)
    return _ingested(stored, received=batch.received)


def _ingested(stored: Stored, *, received: int | None = None) -> Ingested:
    # a replayed answer does not say how many items the first request held: its accepted and rejected ones
    total = stored.accepted + len(stored.rejections) if received is None else received
    return Ingested(total, stored.accepted, stored.rejections, stored.answer, replayed=stored.replayed)


def _principal_of(caller: Caller) -> Principal:
    if caller.principal is None:
        raise Forbidden("ingest needs an API key with the ingest scope; the operator and jobs do not ingest")
    return caller.principal
