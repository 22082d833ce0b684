"""``system_metrics`` items of ``POST /api/v1/system-metrics``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fernando_telemetry.core.enums import MetricType
from fernando_telemetry.core.ingest.common import (
    DecodeContext,
    check_fields,
    enum_value,
    finite_number,
    in_window,
    integer,
    json_object,
    license_ref,
    optional_text,
    required_text,
    timestamp,
    user_ref,
)

__all__ = ["COLUMNS", "FIELDS", "decode"]

COLUMNS = (
    "metric_name",
    "metric_type",
    "value",
    "unit",
    "service_name",
    "host_name",
    "instance_id",
    "labels",
    "sample_count",
    "p50",
    "p90",
    "p95",
    "p99",
    "user_id",
    "license_id",
    "timestamp",
)
FIELDS = frozenset(COLUMNS)
USER_COLUMN = COLUMNS.index("user_id")
LICENSE_COLUMN = COLUMNS.index("license_id")
TIME_COLUMN = COLUMNS.index("timestamp")


def decode(item: Mapping[str, Any], context: DecodeContext) -> tuple[Any, ...]:
    check_fields(item, FIELDS)
    return (
        required_text(item, "metric_name", 200),
        enum_value(item, "metric_type", MetricType, MetricType.GAUGE),
        finite_number(item, "value", required=True),
        optional_text(item, "unit", 32),
        optional_text(item, "service_name", 100),
        optional_text(item, "host_name", 255),
        optional_text(item, "instance_id", 255),
        json_object(item, "labels", context),
        integer(item, "sample_count", minimum=1, maximum=2**31 - 1, default=1),
        finite_number(item, "p50"),
        finite_number(item, "p90"),
        finite_number(item, "p95"),
        finite_number(item, "p99"),
        user_ref(item),
        license_ref(item, context),
        in_window(timestamp(item, "timestamp", default=context.now), "timestamp", context),
    )
