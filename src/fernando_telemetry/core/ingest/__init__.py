"""Decoders of the native ingest API: one JSON item in, one typed row (``core.ingest.rows``, a
``NamedTuple`` in COPY column order) or a reason out.

Pure: they take ``now``, the id generator and the JSON serialiser from the caller.
"""

from fernando_telemetry.core.ingest import business, events, metrics, rows, spans
from fernando_telemetry.core.ingest.common import DecodeContext, ItemError, Rejection, decode_items

__all__ = ["DecodeContext", "ItemError", "Rejection", "business", "decode_items", "events", "metrics", "rows", "spans"]
