"""``business_metrics`` items of ``POST /api/v1/business-metrics``; stored by upsert on the natural key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fernando_telemetry.core.enums import MetricCategory, PeriodType
from fernando_telemetry.core.ingest.common import (
    DecodeContext,
    ItemError,
    check_fields,
    enum_value,
    json_object,
    license_ref,
    numeric,
    optional_text,
    period_end,
    required_text,
    timestamp,
)
from fernando_telemetry.core.ingest.rows import KpiRow

__all__ = ["COLUMNS", "FIELDS", "KpiRow", "decode"]

COLUMNS = KpiRow._fields
FIELDS = frozenset(COLUMNS)


def decode(item: Mapping[str, Any], context: DecodeContext) -> KpiRow:
    check_fields(item, FIELDS)
    period_type = enum_value(item, "period_type", PeriodType)
    start = timestamp(item, "period_start")
    if start > context.latest:  # first: a period starting in year 9999 has no default end in the calendar
        raise ItemError("period_start", f"{start.isoformat()} is in the future")
    end = timestamp(item, "period_end", default=period_end(period_type, start))
    if end <= start:
        raise ItemError("period_end", f"{end.isoformat()} must be after period_start {start.isoformat()}")
    currency = optional_text(item, "currency", 3)
    if currency is not None and not (len(currency) == 3 and currency.isalpha()):
        raise ItemError("currency", f"{currency!r} is not an ISO 4217 code such as EUR or USD")
    return KpiRow(
        metric_name=required_text(item, "metric_name", 200),
        metric_category=enum_value(item, "metric_category", MetricCategory),
        metric_value=numeric(item, "metric_value", required=True),
        currency=currency.upper() if currency else None,
        period_start=start,
        period_end=end,
        period_type=period_type,
        license_id=license_ref(item, context),
        dimensions=json_object(item, "dimensions", context),
        target_value=numeric(item, "target_value"),
        previous_value=numeric(item, "previous_value"),
        source=optional_text(item, "source", 64) or "api",
    )
