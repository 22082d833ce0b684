"""OTLP/HTTP receivers at ``/v1/traces``, ``/v1/metrics`` and ``/v1/logs`` (protobuf or JSON, optionally gzip).

Answers follow the OTLP/HTTP specification, in the request's encoding: ``{}`` (an empty
``Export*ServiceResponse``) on full success, ``partial_success`` with the rejected count and a message
when some items were refused, and a ``google.rpc.Status`` body with 4xx/5xx otherwise.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from google.rpc import status_pb2
from starlette.concurrency import run_in_threadpool

from fernando_telemetry.api.body import read_body
from fernando_telemetry.api.deps import authenticate, caller_of
from fernando_telemetry.api.errors import DATABASE_ERRORS, database_unavailable, rpc_code_for, status_for
from fernando_telemetry.core import otlp
from fernando_telemetry.core.errors import FernandoTelemetryError
from fernando_telemetry.core.keys import Scope
from fernando_telemetry.services import otlp_export
from fernando_telemetry.services.ingest import Ingestor

__all__ = ["router"]

router = APIRouter(tags=["otlp"])


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
    429: {"description": "Over the key's or the license's rate, or over the license's share of the write queue"},
    503: {"description": "Overloaded or database down; retry after Retry-After"},
}


async def _receive(request: Request, name: str) -> Response:
    signal = otlp_export.SIGNALS[name]
    content_type = request.headers.get("content-type")
    try:
        otlp.media_type(content_type)  # 415 before anything else is read
        principal = await run_in_threadpool(authenticate, request, Scope.INGEST)
        ingestor: Ingestor = request.app.state.ingestor
        body = await read_body(request, max_bytes=request.app.state.limits.max_body_bytes)
        # decoding happens off the event loop, so it keeps reading other requests meanwhile
        exported = await run_in_threadpool(
            functools.partial(
                otlp_export.export, ingestor, signal=signal, body=body, content_type=content_type,
                caller=caller_of(request, principal), now_s=time.monotonic(),
            )
        )  # fmt: skip
    except FernandoTelemetryError as exc:
        return _status_response(exc, content_type)
    except DATABASE_ERRORS as exc:  # the key lookup or a user check met a database that is down: 503, as a Status
        return _status_response(database_unavailable(exc, request), content_type)
    content, media = otlp.response_body(exported.response, content_type)
    return Response(content=content, media_type=media)


def _status_response(exc: FernandoTelemetryError, content_type: str | None) -> Response:
    status = status_for(exc)
    if status == 422:  # OTLP/HTTP has no 422: data that cannot be decoded or is otherwise invalid is a 400
        status = 400
    pb2_status = status_pb2.Status(code=rpc_code_for(status), message=exc.message)
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
