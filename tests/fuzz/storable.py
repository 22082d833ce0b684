"""What PostgreSQL will take in a column, checked on a decoded row without a database: the rules the fuzz tests hold rows to.

A decoder that accepts an item promises a row the COPY will not refuse; a refused row would fail its whole
request, valid items included. The rules come from the models' column types plus what PostgreSQL adds:
no NUL in text or jsonb, valid UTF-8, widths, integer ranges, finite doubles, ``numeric(24, 6)``'s 18
digits, ``inet`` without an IPv6 zone, aware timestamps.
"""

from __future__ import annotations

import ipaddress
import json
import math
import uuid
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import BigInteger, DateTime, Double, Enum, Integer, Numeric, SmallInteger, String, Table
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB, UUID

from fernando_telemetry.core.ingest import metrics
from fernando_telemetry.core.metric_points import advance
from fernando_telemetry.storage import models

__all__ = ["TABLES", "problems"]

TABLES: dict[str, Table] = {
    "events": models.TelemetryEvent.__table__,  # type: ignore[dict-item]
    "system_metrics": models.SystemMetric.__table__,  # type: ignore[dict-item]
    "business_metrics": models.BusinessMetric.__table__,  # type: ignore[dict-item]
    "spans": models.Trace.__table__,  # type: ignore[dict-item]
}
_INTEGER_RANGES = {SmallInteger: 2**15, Integer: 2**31, BigInteger: 2**63}


def copy_row(kind: str, row: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The row the writer copies: a metric row's cumulative point completed as its new stream's first point (None:
    it stores nothing); a span row as decoded (the writer's hook puts a uuid it computes, never from input, in
    ``resource_id``)."""
    if not isinstance(row, metrics.CumulativeMetricRow):
        return row
    increment, _ = advance(None, row.point)
    return None if increment is None else metrics.completed(row, increment)


def problems(kind: str, columns: tuple[str, ...], row: tuple[Any, ...]) -> list[str]:
    """Why PostgreSQL would refuse ``row`` (in ``columns`` order) for the table of ``kind``; empty when it would not."""
    table = TABLES[kind]
    found: list[str] = []
    if len(row) != len(columns):
        return [f"{len(row)} values for {len(columns)} columns"]
    for name, value in zip(columns, row, strict=True):
        column = table.c[name]
        reason = _problem(column.type, value, nullable=column.nullable or column.server_default is not None)
        if reason:
            found.append(f"{name}: {reason} ({value!r:.80})")
    return found


def _problem(column_type: Any, value: Any, *, nullable: bool) -> str | None:
    if value is None:
        return None if nullable else "NULL in a NOT NULL column"
    if isinstance(value, str):
        if "\x00" in value:
            return "NUL character in text"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "not valid UTF-8"
    if isinstance(column_type, ARRAY):
        if not isinstance(value, list):
            return "not a list"
        reasons = (_problem(column_type.item_type, element, nullable=False) for element in value)
        return next((f"an element is {reason}" for reason in reasons if reason), None)
    if isinstance(column_type, Enum):
        return None if value in column_type.enums else "not in the vocabulary"
    if isinstance(column_type, String):
        if not isinstance(value, str):
            return "not a string"
        return f"longer than {column_type.length}" if column_type.length and len(value) > column_type.length else None
    if isinstance(column_type, JSONB):
        if not isinstance(value, str):
            return "jsonb not given as JSON text"
        if "\\u0000" in value:
            return "\\u0000 in jsonb"
        try:
            json.loads(value)
        except ValueError as exc:
            return f"not JSON: {exc}"
        return None
    if isinstance(column_type, INET):
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return "not an IP address"
        return "IPv6 zone (%) in inet" if "%" in value else None
    if isinstance(column_type, UUID):
        return None if isinstance(value, uuid.UUID) else "not a UUID"
    if isinstance(column_type, DateTime):
        if not isinstance(value, datetime) or value.tzinfo is None:
            return "not an aware datetime"
        return None
    if isinstance(column_type, Double):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "not a number"
        return None if math.isfinite(value) else "not finite"
    if isinstance(column_type, Numeric):
        if not isinstance(value, Decimal) or not value.is_finite():
            return "not a finite decimal"
        scale = column_type.scale or 0
        digits = (column_type.precision or 1000) - scale
        if abs(value) >= Decimal(10) ** digits:
            return f"over {digits} digits before the point"
        with localcontext() as exact:
            exact.prec = digits + scale + 2
            rounded = value.quantize(Decimal(1).scaleb(-scale))
        return (
            f"over {digits} digits before the point once rounded to {scale} places"
            if abs(rounded) >= Decimal(10) ** digits
            else None
        )
    for integer_type, bound in _INTEGER_RANGES.items():
        if type(column_type) is integer_type:
            if isinstance(value, bool) or not isinstance(value, int):
                return "not an integer"
            return None if -bound <= value < bound else "out of the integer range"
    return None
