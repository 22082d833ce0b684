"""Events: a filtered, newest-first list with each event's payload, paged by cursor. Imports services and core."""

from __future__ import annotations

import json
from typing import Any

from fernando_telemetry.core import containment
from fernando_telemetry.core.enums import EventSource, EventType
from fernando_telemetry.core.errors import InvalidInput, field_problem
from fernando_telemetry.services import event_search
from fernando_telemetry.services.event_search import EventFilters
from fernando_telemetry.web.page import Page, PageRequest

__all__ = ["EQUALS", "build", "payload_pairs"]

EQUALS = ("event_type", "event_name", "user_id", "session_id", "source")
"""The equality filters of the form (each a column of ``telemetry_events``)."""


def payload_pairs(text: str | None) -> list[tuple[str, str]]:
    """``key=value`` lines of the payload box as ``("payload.key", "value")`` pairs."""
    pairs = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise InvalidInput(
                f"payload line {number}: {line[:60]!r} is not key=value (for example plan=pro)",
                details=[field_problem("payload", "not key=value")],
            )
        pairs.append((f"payload.{key.strip()}", value.strip()))
    return pairs


def build(request: PageRequest) -> Page:
    window = request.window(default_range="24h", max_span=event_search.MAX_RANGE)
    limit = int(request.choice("limit", ("25", "50", "100", "200"), "50"))
    equals = {name: value for name in EQUALS if (value := request.text(name)) is not None}
    payload_text = request.text("payload")
    filters = EventFilters(
        start=window.start,
        end=window.end,
        equals=equals,
        payload=containment.conditions("payload.", payload_pairs(payload_text)),
        cursor=request.text("cursor"),
        limit=limit,
    )
    page = event_search.search(
        request.session, principal=request.principal, filters=filters, now=request.now, cursor_key=request.cursor_key
    )
    events: list[dict[str, Any]] = [
        {**event, "payload_json": json.dumps(event["payload"], indent=2, sort_keys=True, default=str)} for event in page.events
    ]
    next_query = [(key, value) for key, value in request.query if key != "cursor"]
    if window.range_name is not None and not any(key in ("from", "to") for key, _ in next_query):
        # pin the window so the next page continues the same range rather than sliding with the clock
        next_query = [(k, v) for k, v in next_query if k != "range"] + [
            ("from", window.start.isoformat()),
            ("to", window.end.isoformat()),
        ]
    return Page(
        title="Events",
        template="events/page.html",
        context={
            "window": window,
            "events": events,
            "limit": limit,
            "equals": equals,
            "payload_text": payload_text or "",
            "event_types": [member.value for member in EventType],
            "sources": [member.value for member in EventSource],
            "next_cursor": page.next_cursor,
            "next_query": next_query,
            "paged": request.text("cursor") is not None,
        },
        fragments={"events-list": "events/_list.html"},
        refresh=request.text("cursor") is None,
    )
