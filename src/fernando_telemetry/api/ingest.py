"""Native batch ingest: ``POST /api/v1/events``, ``/system-metrics``, ``/business-metrics``, ``/spans``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from fernando_telemetry.api.body import parse_json, read_json_bytes
from fernando_telemetry.api.deps import IngestKey, caller_of
from fernando_telemetry.api.schemas import IngestAnswer, ingest_body_schema
from fernando_telemetry.core.errors import InvalidInput, SchemaMismatch
from fernando_telemetry.core.ingest import metrics, spans
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.services import ingestion
from fernando_telemetry.services.ingest import KINDS, Ingestor

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["ingest"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed body (invalid JSON or gzip)"},
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key lacks the ingest scope"},
    413: {"description": "Body over the size limit once decompressed"},
    415: {"description": "Content-Type other than application/json, or an unknown Content-Encoding"},
    422: {"description": "The body is not an object with the expected array"},
    429: {
        "description": "The key or its license is over its rate, or the license holds more than its fair share of a "
        "filling write queue; retry after Retry-After seconds"
    },
    503: {"description": "Too much in flight or the database is down; retry after Retry-After seconds"},
}

_EXAMPLES: dict[str, dict[str, Any]] = {
    "events": {
        "event_type": "user_action",
        "event_name": "checkout_completed",
        "user_id": "u-42",
        "session_id": "s-9",
        "payload": {"plan": "pro", "amount": 49.0},
        "event_timestamp": "2026-11-28T09:30:00Z",
    },
    "system_metrics": {
        "metric_name": "cpu_usage",
        "metric_type": "gauge",
        "value": 73.5,
        "unit": "percent",
        "service_name": "api",
        "host_name": "web-1",
        "labels": {"region": "eu"},
    },
    "business_metrics": {
        "metric_name": "revenue",
        "metric_category": "revenue",
        "metric_value": "1234.50",
        "currency": "EUR",
        "period_type": "daily",
        "period_start": "2026-11-27T00:00:00Z",
    },
    "spans": {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "operation_name": "GET /cart",
        "service_name": "web",
        "span_kind": "server",
        "start_time": "2026-11-28T09:30:00Z",
        "duration_ms": 12.5,
        "status": "ok",
        "status_code": 200,
    },
}


_ITEM_FIELDS = {"system_metrics": metrics.FIELDS, "spans": spans.FIELDS}
"""Item fields where they differ from the stored columns (metric items: temporality, buckets, samples; spans: no
``resource_id``, the writer sets it)."""


def _docs(kind_name: str) -> dict[str, Any]:
    kind = KINDS[kind_name]
    accepted = _ITEM_FIELDS.get(kind_name, frozenset(kind.spec.columns))
    names = [column for column in kind.spec.columns if column in accepted] + sorted(accepted - set(kind.spec.columns))
    fields = {name: "see the guide" for name in names}
    return ingest_body_schema(kind.body_key, fields, _EXAMPLES[kind_name])


async def _ingest(request: Request, principal: Principal, kind_name: str, endpoint: str) -> dict[str, Any]:
    ingestor: Ingestor = request.app.state.ingestor
    kind = KINDS[kind_name]
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise InvalidInput("the Idempotency-Key header must be 1 to 200 characters")
    caller = caller_of(request, principal)
    body = await read_json_bytes(request, max_bytes=request.app.state.limits.max_body_bytes)

    def work() -> dict[str, Any]:
        # parsing and decoding happen here, off the event loop, so it keeps reading other requests meanwhile
        document = parse_json(body)
        if not isinstance(document, dict) or kind.body_key not in document:
            raise SchemaMismatch(
                f"the body must be a JSON object with an array '{kind.body_key}': {{\"{kind.body_key}\": [...]}}"
            )
        ingested = ingestion.ingest(
            ingestor,
            kind=kind,
            items=document[kind.body_key],
            caller=caller,
            endpoint=endpoint,
            now_s=time.monotonic(),
            idempotency_key=idempotency_key,
        )
        return ingested.answer

    return await run_in_threadpool(work)


@router.post(
    "/events",
    response_model=IngestAnswer,
    responses=_ERRORS,
    openapi_extra=_docs("events"),
    summary="Ingest a batch of product and system events",
)
async def ingest_events(request: Request, principal: IngestKey) -> dict[str, Any]:
    return await _ingest(request, principal, "events", "events")


@router.post(
    "/system-metrics",
    response_model=IngestAnswer,
    responses=_ERRORS,
    openapi_extra=_docs("system_metrics"),
    summary="Ingest a batch of system metric samples",
)
async def ingest_system_metrics(request: Request, principal: IngestKey) -> dict[str, Any]:
    return await _ingest(request, principal, "system_metrics", "system-metrics")


@router.post(
    "/business-metrics",
    response_model=IngestAnswer,
    responses=_ERRORS,
    openapi_extra=_docs("business_metrics"),
    summary="Ingest (upsert) a batch of business KPI values",
)
async def ingest_business_metrics(request: Request, principal: IngestKey) -> dict[str, Any]:
    return await _ingest(request, principal, "business_metrics", "business-metrics")


@router.post(
    "/spans",
    response_model=IngestAnswer,
    responses=_ERRORS,
    openapi_extra=_docs("spans"),
    summary="Ingest a batch of trace spans",
)
async def ingest_spans(request: Request, principal: IngestKey) -> dict[str, Any]:
    return await _ingest(request, principal, "spans", "spans")
