"""OTLP/HTTP receivers at ``/v1/traces``, ``/v1/metrics`` and ``/v1/logs`` (protobuf or JSON, optionally gzip).

Answers follow the OTLP/HTTP specification, in the request's encoding: ``{}`` (an empty
``Export*ServiceResponse``) on full success, ``partial_success`` with the rejected count and a message
when some items were refused, and a ``google.rpc.Status`` body with 4xx/5xx otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from starlette.concurrency import run_in_threadpool

from fernando_telemetry.api.body import read_body
from fernando_telemetry.api.deps import authenticate
from fernando_telemetry.api.errors import DATABASE_ERRORS, database_unavailable, status_for
from fernando_telemetry.core import otlp
from fernando_telemetry.core.errors import FernandoTelemetryError
from fernando_telemetry.core.ingest.common import DecodeContext
from fernando_telemetry.core.keys import Principal, Scope
from fernando_telemetry.services.ingest import KINDS, Ingestor, Kind, RowBatch

__all__ = ["router"]

router = APIRouter(tags=["otlp"])

_GRPC_CODE_BY_STATUS = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    409: code_pb2.ABORTED,
    413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT,
    422: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


@dataclass(frozen=True)
class _Signal:
    kind: Kind
    endpoint: str
    parse: Callable[[bytes, str | None], Any]
    decode: Callable[[Any, DecodeContext], otlp.DecodedBatch]
    answer: Callable[[int, str], Any]


_SIGNALS = {
    "traces": _Signal(KINDS["spans"], "otlp-traces", otlp.parse_traces_request, otlp.spans_from_request, otlp.traces_response),
    "metrics": _Signal(
        KINDS["system_metrics"], "otlp-metrics", otlp.parse_metrics_request, otlp.metric_rows_from_request, otlp.metrics_response
    ),
    "logs": _Signal(KINDS["events"], "otlp-logs", otlp.parse_logs_request, otlp.event_rows_from_logs_request, otlp.logs_response),
}

_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object", "description": "OTLP/JSON encoding"}},
        },
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Accepted; partial_success says how many items were rejected and why"},
    400: {"description": "Undecodable body (google.rpc.Status)"},
    401: {"description": "Missing or unknown API key"},
    415: {"description": "Content type other than application/x-protobuf or application/json"},
    429: {"description": "Over the key's rate; retry after Retry-After"},
    503: {"description": "Overloaded or database down; retry after Retry-After"},
}


def _ingest_decoded(
    ingestor: Ingestor, signal: _Signal, decoded: otlp.DecodedBatch, principal: Principal, *, now: datetime
) -> RowBatch:
    batch = RowBatch(decoded.rows, decoded.indexes, decoded.rejections, received=decoded.received, received_at=now)
    ingestor.store(signal.kind, batch, principal=principal, endpoint=signal.endpoint, idempotency_key=None)
    return batch


async def _receive(request: Request, name: str) -> Response:
    signal = _SIGNALS[name]
    content_type = request.headers.get("content-type")
    try:
        otlp.media_type(content_type)  # 415 before anything else is read
        principal = await run_in_threadpool(authenticate, request, Scope.INGEST)
        ingestor: Ingestor = request.app.state.ingestor
        body = await read_body(request, max_bytes=request.app.state.limits.max_body_bytes)

        def work() -> tuple[otlp.DecodedBatch, RowBatch]:
            # decoding happens here, off the event loop, so it keeps reading other requests meanwhile
            pb2_request = signal.parse(body, content_type)
            ingestor.check_otlp_size(otlp.item_count(pb2_request))
            now = datetime.now(UTC)
            decoded = signal.decode(pb2_request, ingestor.context(signal.kind, principal, now))
            ingestor.check_rate(principal, max(1, decoded.received), now_s=time.monotonic())
            return decoded, _ingest_decoded(ingestor, signal, decoded, principal, now=now)

        decoded, batch = await run_in_threadpool(work)
    except FernandoTelemetryError as exc:
        return _status_response(exc, content_type)
    except DATABASE_ERRORS as exc:  # the key lookup or a user check met a database that is down: 503, as a Status
        return _status_response(database_unavailable(exc, request), content_type)
    message = otlp.partial_success_message(batch.rejections, received=batch.received, item_name=decoded.item_name)
    content, media = otlp.response_body(signal.answer(len(batch.rejections), message), content_type)
    return Response(content=content, media_type=media)


def _status_response(exc: FernandoTelemetryError, content_type: str | None) -> Response:
    status = status_for(exc)
    if status == 422:  # OTLP/HTTP has no 422: data that cannot be decoded or is otherwise invalid is a 400
        status = 400
    pb2_status = status_pb2.Status(code=_GRPC_CODE_BY_STATUS.get(status, code_pb2.INTERNAL), message=exc.message)
    headers = {}
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    try:
        protobuf = otlp.media_type(content_type) == otlp.PROTOBUF
    except FernandoTelemetryError:
        protobuf = False
    if protobuf:
        return Response(pb2_status.SerializeToString(), status_code=status, media_type=otlp.PROTOBUF, headers=headers)
    return Response(
        json_format.MessageToJson(pb2_status, indent=None).encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


@router.post("/v1/traces", summary="OTLP/HTTP traces", openapi_extra=_DOC, responses=_RESPONSES)
async def otlp_traces(request: Request) -> Response:
    return await _receive(request, "traces")


@router.post("/v1/metrics", summary="OTLP/HTTP metrics", openapi_extra=_DOC, responses=_RESPONSES)
async def otlp_metrics(request: Request) -> Response:
    return await _receive(request, "metrics")


@router.post("/v1/logs", summary="OTLP/HTTP logs (stored as events)", openapi_extra=_DOC, responses=_RESPONSES)
async def otlp_logs(request: Request) -> Response:
    return await _receive(request, "logs")
