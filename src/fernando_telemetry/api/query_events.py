"""Event search routes: ``GET /api/v1/events`` (filters, keyset pages) and ``GET /api/v1/events/{event_id}``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from fernando_telemetry.api.deps import ReadCaller
from fernando_telemetry.api.query_params import check_names, integer, prefixed
from fernando_telemetry.core import containment, time_range
from fernando_telemetry.services import event_search

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["query"])

_PAYLOAD_PREFIX = "payload."
_ALLOWED = {"from", "to", "cursor", "limit", "license_id", *event_search.EQUALITY_FILTERS}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed or out-of-range parameter, an unknown parameter, or a cursor of another query"},
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key lacks the read scope, or asks for another license"},
}


class EventOut(BaseModel):
    event_id: str
    event_type: str
    event_name: str
    category: str | None
    source: str
    user_id: str | None
    license_id: int | None
    session_id: str | None
    payload: dict[str, Any]
    duration_ms: float | None
    ip_address: str | None
    user_agent: str | None
    trace_id: str | None
    span_id: str | None
    environment: str | None
    app_version: str | None
    event_timestamp: datetime
    created_at: datetime


class EventPageOut(BaseModel):
    events: list[EventOut] = Field(description="Newest first: by event_timestamp, then event_id, descending")
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; null on the last page"
    )


def _event_out(row: dict[str, Any]) -> EventOut:
    return EventOut.model_validate(
        {
            **row,
            "event_id": str(row["event_id"]),
            "ip_address": None if row["ip_address"] is None else str(row["ip_address"]),
        }
    )


@router.get(
    "/events",
    response_model=EventPageOut,
    responses=_ERRORS,
    summary="Search events, newest first",
    description=(
        "Events in `[from, to)` (default: the 24 hours before `to`, which defaults to now; at most 31 days) "
        "matching every filter given. Payload filters are `payload.<key>=<value>`, repeatable and ANDed: a value "
        'that is JSON other than a string (`3`, `true`, `null`, `{"plan": "pro"}`) matches that JSON value or the '
        "same text as a string; any other value matches the string. Pages are keyset pages: pass `next_cursor` "
        "back as `cursor` with the same filters."
    ),
)
def search_events(
    request: Request,
    caller: ReadCaller,
    from_: str | None = Query(None, alias="from", description="ISO 8601 instant, inclusive", examples=["2026-11-28T00:00:00Z"]),
    to: str | None = Query(None, description="ISO 8601 instant, exclusive"),
    event_type: str | None = Query(None, examples=["error_event"]),
    event_name: str | None = Query(None),
    user_id: str | None = Query(None),
    session_id: str | None = Query(None),
    source: str | None = Query(None, examples=["web"]),
    license_id: str | None = Query(None, description="Admin keys: only this license's events"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: str | None = Query(
        None, description=f"Events per page, 1 to {event_search.MAX_LIMIT} (default {event_search.DEFAULT_LIMIT})"
    ),
) -> EventPageOut:
    check_names(request, allowed=_ALLOWED, prefixes=(_PAYLOAD_PREFIX,))
    equals = {
        name: value
        for name, value in {
            "event_type": event_type,
            "event_name": event_name,
            "user_id": user_id,
            "session_id": session_id,
            "source": source,
        }.items()
        if value is not None
    }
    filters = event_search.EventFilters(
        start=time_range.parse_instant(from_, parameter="from"),
        end=time_range.parse_instant(to, parameter="to"),
        equals=equals,
        payload=containment.conditions(_PAYLOAD_PREFIX, prefixed(request, _PAYLOAD_PREFIX)),
        license_id=integer(license_id, parameter="license_id", minimum=1),
        cursor=cursor,
        limit=integer(limit, parameter="limit", default=event_search.DEFAULT_LIMIT, minimum=1, maximum=event_search.MAX_LIMIT),
    )
    page = event_search.search_events(
        request.app.state.sessions, caller=caller, filters=filters, cursor_key=request.app.state.cursor_key
    )
    return EventPageOut(events=[_event_out(row) for row in page.events], next_cursor=page.next_cursor)


@router.get(
    "/events/{event_id}",
    response_model=EventOut,
    responses={**_ERRORS, 404: {"description": "No such event, or it belongs to another license"}},
    summary="One event by id",
)
def get_event(request: Request, caller: ReadCaller, event_id: str) -> EventOut:
    parsed_id = event_search.parse_event_id(event_id)
    row = event_search.get_event(request.app.state.sessions, caller=caller, event_id=parsed_id)
    return _event_out(row)
