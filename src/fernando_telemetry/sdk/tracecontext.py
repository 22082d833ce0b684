"""W3C Trace Context: the ``SpanContext`` of a span and the ``traceparent`` header that carries it.

Imports only the standard library. See https://www.w3.org/TR/trace-context/#traceparent-header.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SpanContext", "format_traceparent", "is_span_id", "is_trace_id", "parse_traceparent"]

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class SpanContext:
    """The identity of one span: what a child needs to join the trace, and what a header carries."""

    trace_id: str
    """32 lowercase hex characters."""
    span_id: str
    """16 lowercase hex characters."""
    is_remote: bool = False
    """True when it came from another process (an incoming ``traceparent``)."""


def is_trace_id(value: object) -> bool:
    return _is_hex_id(value, 32)


def is_span_id(value: object) -> bool:
    return _is_hex_id(value, 16)


def _is_hex_id(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and _HEX.issuperset(value) and value != "0" * length


def parse_traceparent(header: str | bytes | None) -> SpanContext | None:
    """The remote parent a ``traceparent`` header names, or None when it is absent or invalid."""
    if header is None:
        return None
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            return None
    parts = header.strip().split("-")
    if len(parts) < 4:
        return None
    version, trace_id, span_id, flags = parts[0], parts[1], parts[2], parts[3]
    if len(version) != 2 or not _HEX.issuperset(version) or version == "ff":
        return None
    if version == "00" and len(parts) != 4:
        return None  # version 00 has exactly four fields; later versions may append more
    if len(flags) != 2 or not _HEX.issuperset(flags):
        return None
    if not (is_trace_id(trace_id) and is_span_id(span_id)):
        return None
    return SpanContext(trace_id, span_id, is_remote=True)


def format_traceparent(context: SpanContext) -> str:
    """The ``traceparent`` value for ``context``, flagged sampled (the SDK records every span)."""
    return f"00-{context.trace_id}-{context.span_id}-01"
