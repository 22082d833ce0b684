"""One OTLP export, whatever the transport: parse, store through ``ingestion.ingest``; answer ``Export*ServiceResponse``.

OTLP/HTTP (``api.otlp``) and OTLP/gRPC (``api.otlp_grpc``) both call ``export``, so a span, data point or log
record is decoded, limited and stored the same way whichever way it came. Whole-request problems raise the
domain errors of ``core.errors``; each transport maps them to its own status. Imports services and core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from fernando_telemetry.core import otlp
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.ingest.common import DecodeContext
from fernando_telemetry.services import ingestion
from fernando_telemetry.services.ingest import KINDS, Ingestor, Kind

__all__ = ["SIGNALS", "Exported", "Signal", "export"]


@dataclass(frozen=True)
class Signal:
    """One OTLP signal: where its rows go, how its request is parsed and decoded, and how it is answered."""

    name: str
    kind: Kind
    endpoint: str
    """The name the ingest path records the request under (idempotency and audit)."""
    parse: Callable[[bytes, str | None], Any]
    decode: Callable[[Any, DecodeContext], otlp.DecodedBatch]
    answer: Callable[[int, str], Message]
    item_name: str
    """What one item is, for the partial-success message: "span", "data point", "log record"."""


SIGNALS: dict[str, Signal] = {
    "traces": Signal(
        "traces",
        KINDS["spans"],
        "otlp-traces",
        otlp.parse_traces_request,
        otlp.spans_from_request,
        otlp.traces_response,
        "span",
    ),
    "metrics": Signal(
        "metrics",
        KINDS["system_metrics"],
        "otlp-metrics",
        otlp.parse_metrics_request,
        otlp.metric_rows_from_request,
        otlp.metrics_response,
        "data point",
    ),
    "logs": Signal(
        "logs",
        KINDS["events"],
        "otlp-logs",
        otlp.parse_logs_request,
        otlp.event_rows_from_logs_request,
        otlp.logs_response,
        "log record",
    ),
}


@dataclass(frozen=True)
class Exported:
    """What one export did: the items received, those stored, and the OTLP answer (with its partial success)."""

    received: int
    accepted: int
    rejected: int
    response: Message


def export(
    ingestor: Ingestor,
    *,
    signal: Signal,
    body: bytes,
    content_type: str | None,
    caller: Caller,
    now_s: float,
) -> Exported:
    """Store one OTLP request's items; blocking (run it on a worker thread), it returns once the rows are committed.

    ``body`` is the serialized ``Export*ServiceRequest`` (protobuf, or OTLP/JSON when ``content_type`` says so); it is
    parsed here, stored by ``ingestion.ingest`` and answered in the OTLP shape. Raises ``Malformed``/``SchemaMismatch``
    for a body that does not decode, ``PayloadTooLarge`` past the item limit, ``RateLimited`` over the key's or the
    license's rate, ``OverFairShare`` for a license holding more than its share of a filling write queue,
    ``Overloaded``/``DatabaseUnavailable`` when the writer cannot take the rows; items refused one by one are the
    answer's partial success. ``now_s`` is a monotonic clock reading for the rate limiter.
    """
    pb2_request = signal.parse(body, content_type)
    ingested = ingestion.ingest(
        ingestor,
        kind=signal.kind,
        items=ingestion.OtlpItems(pb2_request, signal.decode, body_bytes=len(body)),
        caller=caller,
        endpoint=signal.endpoint,
        now_s=now_s,
    )
    rejected = len(ingested.rejections)
    message = otlp.partial_success_message(ingested.rejections, received=ingested.received, item_name=signal.item_name)
    return Exported(
        received=ingested.received,
        accepted=ingested.accepted,
        rejected=rejected,
        response=signal.answer(rejected, message),
    )
