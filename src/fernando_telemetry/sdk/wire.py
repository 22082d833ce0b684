"""The ingest API's wire format: which path and body key each kind uses, and the JSON body of a batch.

Standard library only. A batch is encoded in one call of the C encoder over the whole list; only when that
fails are its items encoded one at a time, so one unencodable item (a payload holding an object JSON cannot
express, or NaN) is set aside alone instead of failing its whole batch.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from fernando_telemetry.sdk.exporter import ItemKind

__all__ = ["ENDPOINTS", "EncodedBatch", "Endpoint", "encode_batch"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    body_key: str


ENDPOINTS: dict[str, Endpoint] = {
    ItemKind.EVENTS: Endpoint("/api/v1/events", "events"),
    ItemKind.SYSTEM_METRICS: Endpoint("/api/v1/system-metrics", "metrics"),
    ItemKind.BUSINESS_METRICS: Endpoint("/api/v1/business-metrics", "metrics"),
    ItemKind.SPANS: Endpoint("/api/v1/spans", "spans"),
}


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    body: bytes
    """``{"<body_key>": [...]}`` as UTF-8 JSON; empty when no item could be encoded."""
    item_count: int
    unencodable: int


def encode_batch(kind: str, items: Sequence[Mapping[str, Any]]) -> EncodedBatch:
    """The request body for ``items`` of ``kind``, leaving out (and counting) items JSON cannot express."""
    body_key = ENDPOINTS[kind].body_key
    try:
        body = _encoder.encode({body_key: items if isinstance(items, list) else list(items)})
    except _UNENCODABLE:
        pass  # at least one item is bad: find it, item by item
    else:
        return EncodedBatch(body.encode(), len(items), 0)
    encoded: list[str] = []
    for item in items:
        try:
            encoded.append(_encoder.encode(item))
        except _UNENCODABLE:
            continue
    if not encoded:
        return EncodedBatch(b"", 0, len(items))
    body = f'{{"{body_key}":[{",".join(encoded)}]}}'
    return EncodedBatch(body.encode(), len(encoded), len(items) - len(encoded))


def _json_default(value: Any) -> Any:
    """The usual Python values that have one obvious JSON form; anything else makes the item unencodable."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_encoder = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, default=_json_default, ensure_ascii=False, check_circular=False
)
"""One encoder for every batch (``json.dumps`` with options builds a new one per call); it keeps no state between
calls. Without the circular check: a payload that contains itself ends in RecursionError, set aside like any
unencodable item, and every other batch skips the bookkeeping."""

_UNENCODABLE = (TypeError, ValueError, RecursionError, RuntimeError)
"""RuntimeError: the caller mutated a payload dict while it was being encoded."""
