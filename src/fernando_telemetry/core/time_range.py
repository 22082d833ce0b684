"""Time ranges of read queries: ``from``/``to`` parsed from ISO 8601, defaulted and bounded.

Pure: ``now`` is passed in. Imports only core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fernando_telemetry.core.errors import InvalidInput, field_problem

__all__ = ["EARLIEST", "LATEST", "TimeRange", "parse_instant", "resolve"]

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The first instant a query, silence or rule may name: nothing is stored before the Unix epoch."""
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""Instants from here on are refused: far enough for any plan, and far from year 9999, where adding a step
or a default span to a date would overflow."""

# "2026-11-28T09:30:00+01:00" sent unencoded in a URL arrives as "...09:30:00 01:00": '+' means space there
_SPACE_FOR_PLUS = re.compile(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")


@dataclass(frozen=True, slots=True)
class TimeRange:
    """The half-open interval ``[start, end)``, both aware UTC."""

    start: datetime
    end: datetime

    @property
    def span(self) -> timedelta:
        return self.end - self.start


def parse_instant(text: str | None, *, parameter: str) -> datetime | None:
    """An ISO 8601 instant as aware UTC (no offset means UTC); None when the parameter is absent.

    Raises ``InvalidInput`` naming ``parameter`` for anything else, and for instants outside
    ``[EARLIEST, LATEST)``.
    """
    if text is None:
        return None
    cleaned = _SPACE_FOR_PLUS.sub(r"\1+\2", text.strip())
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise InvalidInput(
            f"{parameter}: {text[:60]!r} is not an ISO 8601 timestamp such as 2026-11-28T09:30:00Z",
            details=[field_problem(parameter, "not an ISO 8601 timestamp")],
        ) from None
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" falls before year 1 in UTC
        moment = EARLIEST - timedelta(microseconds=1)
    if not EARLIEST <= moment < LATEST:
        raise InvalidInput(
            f"{parameter}: {text[:60]!r} is out of range; instants from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} "
            "(UTC) are accepted",
            details=[field_problem(parameter, "out of range")],
        )
    return moment


def resolve(
    *,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    default_span: timedelta,
    max_span: timedelta | None = None,
) -> TimeRange:
    """The range a query reads: ``end`` defaults to ``now``, ``start`` to ``default_span`` before ``end``.

    ``end`` must be after ``start``, and the range at most ``max_span`` long (when one is given).
    """
    resolved_end = end if end is not None else now
    resolved_start = start if start is not None else resolved_end - default_span
    if resolved_end <= resolved_start:
        raise InvalidInput(
            f"to ({resolved_end.isoformat()}) must be after from ({resolved_start.isoformat()})",
            details=[field_problem("to", "not after from")],
        )
    if max_span is not None and resolved_end - resolved_start > max_span:
        raise InvalidInput(
            f"the range from {resolved_start.isoformat()} to {resolved_end.isoformat()} is longer than the "
            f"{_describe(max_span)} one query may read; narrow from/to",
            details=[field_problem("from", f"range over {_describe(max_span)}")],
        )
    return TimeRange(resolved_start, resolved_end)


def _describe(span: timedelta) -> str:
    if span % timedelta(days=1) == timedelta(0):
        days = span // timedelta(days=1)
        return f"{days} day{'s' if days != 1 else ''}"
    hours = span / timedelta(hours=1)
    return f"{hours:g} hours"
