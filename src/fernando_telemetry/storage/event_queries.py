"""Event reads: one keyset page of ``telemetry_events`` newest first, and one event by id.

Returns rows as plain dicts of the table's columns. ``license_id=None`` reads every license: the
caller (``services.tenancy.visible_license``) decides who may. Imports only core and the models.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from fernando_telemetry.core.containment import Condition
from fernando_telemetry.storage.models import TelemetryEvent

__all__ = ["COLUMNS", "EQUALITY_FILTERS", "EventPageQuery", "event_by_id", "event_page"]

_TABLE = TelemetryEvent.__table__
COLUMNS: tuple[str, ...] = tuple(column.name for column in _TABLE.columns)
"""Every column of ``telemetry_events``, in table order: what a search returns per event."""

EQUALITY_FILTERS = ("event_type", "event_name", "user_id", "session_id", "source")
"""Columns a search may filter by equality."""

_FIRST_SLICE = timedelta(hours=1)
_SLICE_GROWTH = 4


@dataclass(frozen=True, slots=True)
class EventPageQuery:
    """One page: events in ``[start, end)`` matching every filter, strictly older than ``after`` in the
    order ``(event_timestamp DESC, event_id DESC)``, at most ``limit`` of them."""

    start: datetime
    end: datetime
    license_id: int | None
    equals: Mapping[str, str]
    payload: Sequence[Condition]
    after: tuple[datetime, uuid.UUID] | None
    limit: int


def event_page(session: Session, query: EventPageQuery) -> list[dict[str, Any]]:
    """The page, read newest slice first: an hour, then four times more each round, until the page is
    full or the range is read. A first page without selective filters then reads the last hour of a day's
    partition (through the BRIN index) instead of sorting the whole day; selective filters cost a few
    more index probes. Slices are disjoint and read in order, so their rows concatenate in page order."""
    rows: list[dict[str, Any]] = []
    slice_end, slice_span = query.end, _FIRST_SLICE
    while slice_end > query.start and len(rows) < query.limit:
        slice_start = max(query.start, slice_end - slice_span)
        rows += _slice(session, query, start=slice_start, end=slice_end, limit=query.limit - len(rows))
        slice_end, slice_span = slice_start, slice_span * _SLICE_GROWTH
    return rows


def _slice(session: Session, query: EventPageQuery, *, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
    timestamp, event_id = _TABLE.c.event_timestamp, _TABLE.c.event_id
    conditions: list[ColumnElement[bool]] = [timestamp >= start, timestamp < end]
    if query.license_id is not None:
        conditions.append(_TABLE.c.license_id == query.license_id)
    for name, value in query.equals.items():
        if name not in EQUALITY_FILTERS:
            raise ValueError(f"{name} is not a filterable column")
        conditions.append(_TABLE.c[name] == value)
    for alternatives in query.payload:
        conditions.append(or_(*(_TABLE.c.payload.contains(document) for document in alternatives)))
    if query.after is not None:
        after_timestamp, after_id = query.after
        # the plain bound on the partition key prunes partitions and is an index condition; the OR breaks ties
        conditions.append(timestamp <= after_timestamp)
        conditions.append(or_(timestamp < after_timestamp, event_id < after_id))
    statement = select(_TABLE).where(and_(*conditions)).order_by(timestamp.desc(), event_id.desc()).limit(limit)
    return [dict(row) for row in session.execute(statement).mappings()]


def event_by_id(session: Session, *, event_id: uuid.UUID, license_id: int | None) -> dict[str, Any] | None:
    """The event with this id in any partition (the primary key leads with ``event_id``), or None when
    there is none or it belongs to another license than ``license_id`` (when given)."""
    statement = select(_TABLE).where(_TABLE.c.event_id == event_id)
    if license_id is not None:
        statement = statement.where(_TABLE.c.license_id == license_id)
    # an id is unique in practice; should a client have reused one at two instants, show the newest
    row = session.execute(statement.order_by(_TABLE.c.event_timestamp.desc()).limit(1)).mappings().first()
    return None if row is None else dict(row)
