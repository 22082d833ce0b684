"""What a dashboard page is: its template, the fragments the browser refreshes, its charts and its context;
and the request a page is built from (session, principal, clock, query string). Imports services and core.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fernando_telemetry.core import time_range
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import InvalidInput, field_problem
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.core.quotas import DEFAULT_QUOTAS, Quotas

__all__ = ["Page", "PageBuilder", "PageRequest", "RANGES", "WindowChoice"]

RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "3d": timedelta(days=3),
    "7d": timedelta(days=7),
}
"""The range choices of the pages' forms (``range=24h``)."""


@dataclass(frozen=True)
class WindowChoice:
    """A read window: ``[start, end)``, and the range name it came from (None for explicit from/to)."""

    start: datetime
    end: datetime
    range_name: str | None

    @property
    def span(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class PageRequest:
    """Everything a page builder gets: a session (the caller commits), who asks, the time, the query string."""

    session: Session
    principal: Principal
    now: datetime
    query: Sequence[tuple[str, str]] = ()
    refresh: bool = False
    """True when the browser refreshes an open page: only its charts and fragments are used."""
    quotas: Quotas = DEFAULT_QUOTAS
    """The per-license quotas the server was started with (forms that create rules and silences check them)."""
    cursor_key: bytes = b""
    """Signs the page's cursors (``core.cursor.derive_key`` of the server's secret key)."""

    @property
    def caller(self) -> Caller:
        """The signed-in key as the services see it, on the page's clock, so a change and its audit entry carry the
        moment the page was asked for."""
        return Caller.for_key(self.principal, clock=lambda: self.now)

    @property
    def license_scope(self) -> int | None:
        """The license the signed-in key sees (None: every license, admin keys), for the session-level reads and
        changes the page makes inside its one transaction."""
        return self.caller.visible_license()

    def text(self, name: str) -> str | None:
        """The first value of a parameter, stripped; None when absent or blank."""
        for key, value in self.query:
            if key == name:
                value = value.strip()
                if "\x00" in value:
                    raise InvalidInput(f"{name}: NUL characters are not allowed", details=[field_problem(name, "NUL")])
                return value or None
        return None

    def number(self, name: str) -> float | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if number != number or number in (float("inf"), float("-inf")):
            raise InvalidInput(f"{name}: {value[:40]!r} is not a number", details=[field_problem(name, "not a number")])
        return number

    def choice(self, name: str, allowed: Sequence[str], default: str) -> str:
        value = self.text(name)
        if value is None:
            return default
        if value not in allowed:
            raise InvalidInput(
                f"{name}: {value[:40]!r} is not one of {', '.join(allowed)}", details=[field_problem(name, "unknown value")]
            )
        return value

    def window(self, *, default_range: str, max_span: timedelta | None = None) -> WindowChoice:
        """``from``/``to`` when given (ISO 8601; a browser's ``datetime-local`` value is read as UTC), else
        ``range`` (one of ``RANGES``) ending now."""
        start = time_range.parse_instant(self.text("from"), parameter="from")
        end = time_range.parse_instant(self.text("to"), parameter="to")
        if start is None and end is None:
            name = self.choice("range", list(RANGES), default_range)
            return WindowChoice(self.now - RANGES[name], self.now, name)
        span = RANGES[self.choice("range", list(RANGES), default_range)]
        resolved = time_range.resolve(start=start, end=end, now=self.now, default_span=span, max_span=max_span)
        return WindowChoice(resolved.start, resolved.end, None)


@dataclass
class Page:
    """A built page. ``fragments`` maps a fragment id to its template: the page includes them, and the data
    endpoint renders them again for the browser's refresh. ``charts`` maps a chart id to a plotly figure."""

    title: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    charts: dict[str, dict[str, Any]] = field(default_factory=dict)
    fragments: Mapping[str, str] = field(default_factory=dict)
    status_code: int = 200
    refresh: bool = True


PageBuilder = Callable[[PageRequest], Page]
