"""Templates of the dashboard: the Jinja2 environment (autoescaped), its filters, and where files live.
Imports core only.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from fernando_telemetry.core.enums import EventSource, EventType
from fernando_telemetry.core.series import Aggregation, Step

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "environment"]

_HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = _HERE / "templates"
STATIC_DIR = _HERE / "static"


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "–"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _input_time(moment: datetime | None) -> str:
    """A ``datetime-local`` input's value (read back as UTC)."""
    return "" if moment is None else moment.strftime("%Y-%m-%dT%H:%M")


def _number(value: float | int | Decimal | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{float(value):,.{digits}f}"


def _percent(value: float | Decimal | None, digits: int = 1) -> str:
    return "–" if value is None else f"{float(value) * 100:.{digits}f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, input_time=_input_time, number=_number, percent=_percent, ms=_ms, pretty=_pretty)
    env.globals.update(
        event_types=[member.value for member in EventType],
        event_sources=[member.value for member in EventSource],
        aggregations=[member.value for member in Aggregation],
        steps=[member.value for member in Step],
        ranges=["1h", "6h", "24h", "3d", "7d"],
    )
    return env
