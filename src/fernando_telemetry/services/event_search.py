"""Event search: filtered, newest-first pages of events with keyset cursors, and one event by id.

Routes call the use cases ``search_events`` / ``get_event`` with the request's ``Caller``; they open the read
session and call ``search(session, principal=..., filters=..., now=..., cursor_key=...)`` / ``get``, which share a session. The caller's license
comes from ``tenancy.visible_license``, so a key only ever reads its own license's events. Imports
storage, core and ``services.tenancy``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core import cursor as cursors
from fernando_telemetry.core import time_range
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.containment import Condition
from fernando_telemetry.core.enums import EventSource, EventType
from fernando_telemetry.core.errors import InvalidInput, NotFound, field_problem
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.services.tenancy import principal_of, visible_license
from fernando_telemetry.storage import event_queries
from fernando_telemetry.storage.event_queries import EQUALITY_FILTERS, EventPageQuery

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_RANGE",
    "EQUALITY_FILTERS",
    "EventFilters",
    "EventPage",
    "MAX_LIMIT",
    "MAX_RANGE",
    "get",
    "get_event",
    "parse_event_id",
    "search",
    "search_events",
]

DEFAULT_RANGE = timedelta(hours=24)
"""What a search without ``from`` reads: the day before ``to``."""
MAX_RANGE = timedelta(days=31)
"""The longest range one search may read."""
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class EventFilters:
    """What a search asks for; None means "not given"."""

    start: datetime | None = None
    end: datetime | None = None
    equals: Mapping[str, str] = field(default_factory=dict)
    payload: Sequence[Condition] = ()
    license_id: int | None = None
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class EventPage:
    """One page of events (every column), newest first; ``next_cursor`` is None on the last page."""

    events: list[dict[str, Any]]
    next_cursor: str | None


def search(session: Session, *, principal: Principal, filters: EventFilters, now: datetime, cursor_key: bytes) -> EventPage:
    if not 1 <= filters.limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}, got {filters.limit}",
            details=[field_problem("limit", f"not in 1..{MAX_LIMIT}")],
        )
    unknown = sorted(set(filters.equals) - set(EQUALITY_FILTERS))
    if unknown:
        raise InvalidInput(f"cannot filter events by {', '.join(unknown)}")
    for name, vocabulary in (("event_type", EventType), ("source", EventSource)):
        value = filters.equals.get(name)
        if value is not None and value not in vocabulary.__members__.values():
            raise InvalidInput(
                f"{name}: {value[:40]!r} is not one of {', '.join(member.value for member in vocabulary)}",
                details=[field_problem(name, "unknown value")],
            )
    license_id = visible_license(principal, filters.license_id)
    digest = cursors.query_digest(
        {"license_id": license_id, "equals": dict(filters.equals), "payload": [list(c) for c in filters.payload]}
    )
    position = None if filters.cursor is None else cursors.decode(filters.cursor, query=digest, key=cursor_key)
    start = filters.start if filters.start is not None or position is None else position.range_start
    window = time_range.resolve(
        start=start, end=filters.end, now=now, default_span=DEFAULT_RANGE, max_span=None if position else MAX_RANGE
    )
    if position is not None:
        # rows newer than the cursor were on earlier pages: they neither count towards the range limit nor show
        end = min(window.end, position.at + timedelta(microseconds=1))
        if end <= window.start:
            return EventPage(events=[], next_cursor=None)
        window = time_range.resolve(start=window.start, end=end, now=now, default_span=DEFAULT_RANGE, max_span=MAX_RANGE)
    after = None if position is None else (position.at, _cursor_id(position.key))
    rows = event_queries.event_page(
        session,
        EventPageQuery(
            start=window.start,
            end=window.end,
            license_id=license_id,
            equals=filters.equals,
            payload=filters.payload,
            after=after,
            limit=filters.limit + 1,
        ),
    )
    if len(rows) <= filters.limit:
        return EventPage(events=rows, next_cursor=None)
    page = rows[: filters.limit]
    last = page[-1]
    next_position = cursors.Cursor(at=last["event_timestamp"], key=str(last["event_id"]), range_start=window.start, query=digest)
    return EventPage(events=page, next_cursor=cursors.encode(next_position, key=cursor_key))


def get(session: Session, *, principal: Principal, event_id: uuid.UUID) -> dict[str, Any]:
    """One event by id; ``NotFound`` when there is none, or it belongs to a license the key cannot read."""
    row = event_queries.event_by_id(session, event_id=event_id, license_id=visible_license(principal))
    if row is None:
        raise NotFound(f"no event {event_id}")
    return row


def parse_event_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise InvalidInput(
            f"event_id: {text[:60]!r} is not a UUID such as 0192f3a4-5b6c-7d8e-9f00-112233445566",
            details=[field_problem("event_id", "not a UUID")],
        ) from None


def _cursor_id(key: str) -> uuid.UUID:
    try:
        return uuid.UUID(key)
    except ValueError:
        raise InvalidInput("cursor: not a cursor of an events search", details=[field_problem("cursor", "bad key")]) from None


def search_events(sessions: sessionmaker[Session], *, caller: Caller, filters: EventFilters, cursor_key: bytes) -> EventPage:
    """The use case behind ``GET /api/v1/events``: one read transaction, the caller's license and clock."""
    with sessions() as session:
        return search(session, principal=principal_of(caller), filters=filters, now=caller.now(), cursor_key=cursor_key)


def get_event(sessions: sessionmaker[Session], *, caller: Caller, event_id: uuid.UUID) -> dict[str, Any]:
    """The use case behind ``GET /api/v1/events/{event_id}``."""
    with sessions() as session:
        return get(session, principal=principal_of(caller), event_id=event_id)
