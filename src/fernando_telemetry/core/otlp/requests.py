"""OTLP/HTTP request bodies (binary protobuf or OTLP/JSON) to the collector's ``Export*ServiceRequest`` messages.

Bytes that do not decode raise ``Malformed``; JSON of the wrong shape ``SchemaMismatch`` saying where; another
content type ``UnsupportedMediaType``.
Imports only the standard library, ``google.protobuf``, ``opentelemetry.proto`` and ``fernando_telemetry.core``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from fernando_telemetry.core.errors import Malformed, SchemaMismatch, UnsupportedMediaType

__all__ = [
    "JSON",
    "PROTOBUF",
    "media_type",
    "item_count",
    "parse_logs_request",
    "parse_metrics_request",
    "parse_traces_request",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
# OTLP/JSON writes these bytes fields as hex (protobuf's own JSON mapping would expect base64)
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_ID_BYTES = (8, 16)
_MAX_REASON_CHARS = 600
_FAILED_FIELD = re.compile(r"Failed to parse (\w+) field: ")
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean", type(None): "null"}

RequestPb2 = TypeVar("RequestPb2", bound=Message)


def media_type(content_type: str | None) -> str:
    """``PROTOBUF`` or ``JSON`` for a Content-Type header (parameters such as ``charset`` ignored)."""
    essence = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        return _MEDIA_TYPES[essence]
    except KeyError:
        shown = repr(content_type) if content_type else "none"
        raise UnsupportedMediaType(f"Content-Type {shown} is not supported; OTLP/HTTP takes {PROTOBUF} or {JSON}") from None


def parse_traces_request(body: bytes, content_type: str | None) -> ExportTraceServiceRequest:
    """The body of ``POST /v1/traces``."""
    return _parsed(body, content_type, ExportTraceServiceRequest())


def parse_metrics_request(body: bytes, content_type: str | None) -> ExportMetricsServiceRequest:
    """The body of ``POST /v1/metrics``."""
    return _parsed(body, content_type, ExportMetricsServiceRequest())


def parse_logs_request(body: bytes, content_type: str | None) -> ExportLogsServiceRequest:
    """The body of ``POST /v1/logs``."""
    return _parsed(body, content_type, ExportLogsServiceRequest())


def item_count(pb2_request: Message) -> int:
    """Spans, metric data points or log records in a parsed export request, counted before any is decoded."""
    if isinstance(pb2_request, ExportTraceServiceRequest):
        return sum(len(scope.spans) for resource in pb2_request.resource_spans for scope in resource.scope_spans)
    if isinstance(pb2_request, ExportLogsServiceRequest):
        return sum(len(scope.log_records) for resource in pb2_request.resource_logs for scope in resource.scope_logs)
    if isinstance(pb2_request, ExportMetricsServiceRequest):
        total = 0
        for resource in pb2_request.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    total += max(1, len(getattr(metric, kind).data_points)) if kind else 1
        return total
    raise TypeError(f"not an OTLP export request: {type(pb2_request).__name__}")


def _parsed(body: bytes, content_type: str | None, pb2_request: RequestPb2) -> RequestPb2:
    name = pb2_request.DESCRIPTOR.name
    if media_type(content_type) == PROTOBUF:
        try:
            pb2_request.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise Malformed(f"the body is not a valid protobuf {name} ({len(body)} bytes): {_short(exc)}") from None
        return pb2_request
    document = _json_document(body, name)
    _ids_to_base64(document)
    try:
        return json_format.ParseDict(document, pb2_request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise SchemaMismatch(f"the body is not a valid OTLP/JSON {name}: {_short(_json_reason(exc))}") from None


def _json_document(body: bytes, name: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise Malformed(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise Malformed(f"the body is not UTF-8 JSON: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise Malformed("the body is not valid JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise SchemaMismatch(
            f"the body must be a JSON object (an OTLP {name}), got {_JSON_TYPES.get(type(document), type(document).__name__)}"
        )
    return document


def _ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite every trace/span id of an OTLP/JSON document, in place, from hex to the base64 ``ParseDict`` expects.

    Only OTLP ids use these keys (attribute keys are values, never JSON keys), so a walk of the whole
    document finds the ids of spans, links, log records and exemplars alike.
    """
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, value in list(node.items()):
                location = f"{path}.{key}" if path else key
                if key in _ID_KEYS and isinstance(value, str):
                    node[key] = _id_base64(value, location)
                elif isinstance(value, dict | list):
                    stack.append((value, location))
        elif isinstance(node, list):
            stack.extend((item, f"{path}[{position}]") for position, item in enumerate(node) if isinstance(item, dict | list))


def _id_base64(value: str, location: str) -> str:
    """A hex id as base64. Tolerated too: a base64 id of the right size (what protobuf's own JSON printer writes)."""
    if not value:
        return value
    try:
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except ValueError:
        pass
    try:
        if len(base64.b64decode(value, validate=True)) in _ID_BYTES:
            return value
    except (binascii.Error, ValueError):
        pass
    raise SchemaMismatch(f"the body is not valid OTLP/JSON: {location} must be a hexadecimal id, got {value[:40]!r}")


def _json_reason(exc: BaseException) -> str:
    """``ParseDict``'s nested "Failed to parse a field: Failed to parse b field: why" as "a.b: why"."""
    reason = str(exc) or type(exc).__name__
    fields = []
    while match := _FAILED_FIELD.match(reason):
        fields.append(match.group(1))
        reason = reason[match.end() :]
    reason = reason.rstrip(".")
    return f"{'.'.join(fields)}: {reason}" if fields and " at " not in reason else reason


def _short(exc: BaseException | str) -> str:
    reason = str(exc) or type(exc).__name__
    return reason if len(reason) <= _MAX_REASON_CHARS else reason[: _MAX_REASON_CHARS - 3] + "..."
