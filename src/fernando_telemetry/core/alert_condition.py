"""The alert condition language: a small JSON document parsed into a ``Condition``, with defaults and
field-level errors listing every problem at once, plus the per-source whitelists of the fields it may
filter and group on. Pure; imports only core. Storage compiles a ``Condition`` into parameterised SQL.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fernando_telemetry.core.enums import EventSource, EventType, MetricCategory, MetricType, PeriodType, SpanKind, SpanStatus
from fernando_telemetry.core.errors import FieldProblems

__all__ = [
    "AGGREGATIONS",
    "COUNTED_AGGREGATIONS",
    "FILTER_OPERATORS",
    "MAX_FILTERS",
    "MAX_GROUP_BY",
    "MAX_MINUTES",
    "NO_DATA_POLICIES",
    "OPERATORS",
    "Condition",
    "FieldSpec",
    "Source",
    "SourceSpec",
    "fingerprint",
    "parse_condition",
    "source_spec",
]


class Source(StrEnum):
    SYSTEM_METRICS = "system_metrics"
    TELEMETRY_EVENTS = "telemetry_events"
    TRACES = "traces"
    BUSINESS_METRICS = "business_metrics"


AGGREGATIONS = ("avg", "min", "max", "sum", "count", "rate", "p50", "p90", "p95", "p99", "error_rate")
COUNTED_AGGREGATIONS = ("count", "rate")
"""On events and spans these count rows, so an empty window is a real 0, not "no data"."""
OPERATORS = (">", ">=", "<", "<=", "==", "!=")
NO_DATA_POLICIES = ("ok", "alert", "keep")
FILTER_OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte")
_COMPARISONS = ("gt", "gte", "lt", "lte")
MAX_MINUTES = 7 * 24 * 60
MAX_FILTERS = 20
MAX_GROUP_BY = 5
MAX_MIN_POINTS = 1_000_000
_MAX_NAME_CHARS = 200
_MAX_KEY_CHARS = 200
_MAX_TEXT_CHARS = 2000
_MAX_LIST_ITEMS = 100
_KEYS = (
    "source",
    "metric",
    "filters",
    "aggregation",
    "operator",
    "threshold",
    "window_minutes",
    "group_by",
    "for_minutes",
    "keep_firing_minutes",
    "min_points",
    "no_data",
)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One whitelisted column: its kind (``text``, ``number`` or ``vocabulary``), its allowed values, and uses."""

    column: str
    kind: str = "text"
    allowed: tuple[str, ...] = ()
    groupable: bool = True


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """What one source offers: its table, time column, fields, JSON document column and aggregations."""

    source: Source
    table: str
    time_column: str
    fields: Mapping[str, FieldSpec]
    json_column: str
    aggregations: tuple[str, ...]
    default_window_minutes: int
    metric_hint: str

    def filterable(self) -> list[str]:
        return sorted(self.fields) + [f"{self.json_column}.<key>"]

    def groupable(self) -> list[str]:
        return sorted(name for name, spec in self.fields.items() if spec.groupable) + [f"{self.json_column}.<key>"]


def _vocab(column: str, enum_class: type[StrEnum]) -> FieldSpec:
    return FieldSpec(column, "vocabulary", tuple(member.value for member in enum_class))


_VALUE_AGGREGATIONS = ("avg", "min", "max", "sum", "p50", "p90", "p95", "p99")
_SOURCES: dict[Source, SourceSpec] = {
    Source.SYSTEM_METRICS: SourceSpec(
        source=Source.SYSTEM_METRICS,
        table="system_metrics",
        time_column="timestamp",
        fields={
            "service_name": FieldSpec("service_name"),
            "host_name": FieldSpec("host_name"),
            "instance_id": FieldSpec("instance_id"),
            "metric_type": _vocab("metric_type", MetricType),
            "unit": FieldSpec("unit"),
            "user_id": FieldSpec("user_id", groupable=False),
            "license_id": FieldSpec("license_id", "number"),
        },
        json_column="labels",
        aggregations=("avg", "min", "max", "sum", "count", "rate", "p50", "p90", "p95", "p99"),
        default_window_minutes=5,
        metric_hint="the metric_name of the samples, e.g. cpu_usage",
    ),
    Source.TELEMETRY_EVENTS: SourceSpec(
        source=Source.TELEMETRY_EVENTS,
        table="telemetry_events",
        time_column="event_timestamp",
        fields={
            "event_type": _vocab("event_type", EventType),
            "event_name": FieldSpec("event_name"),
            "category": FieldSpec("category"),
            "source": _vocab("source", EventSource),
            "environment": FieldSpec("environment"),
            "app_version": FieldSpec("app_version"),
            "user_id": FieldSpec("user_id", groupable=False),
            "session_id": FieldSpec("session_id", groupable=False),
            "duration_ms": FieldSpec("duration_ms", "number", groupable=False),
            "license_id": FieldSpec("license_id", "number"),
        },
        json_column="payload",
        aggregations=("count", "rate", *_VALUE_AGGREGATIONS),
        default_window_minutes=5,
        metric_hint="omit it to count events, or name a numeric field to aggregate: duration_ms or payload.<key>",
    ),
    Source.TRACES: SourceSpec(
        source=Source.TRACES,
        table="traces",
        time_column="start_time",
        fields={
            "service_name": FieldSpec("service_name"),
            "operation_name": FieldSpec("operation_name"),
            "span_kind": _vocab("span_kind", SpanKind),
            "status": _vocab("status", SpanStatus),
            "http_status_code": FieldSpec("status_code", "number"),
            "http_method": FieldSpec("http_method"),
            "http_route": FieldSpec("http_route"),
            "error_type": FieldSpec("error_type"),
            "host_name": FieldSpec("host_name"),
            "environment": FieldSpec("environment"),
            "user_id": FieldSpec("user_id", groupable=False),
            "duration_ms": FieldSpec("duration_ms", "number", groupable=False),
            "license_id": FieldSpec("license_id", "number"),
        },
        json_column="attributes",
        aggregations=AGGREGATIONS,
        default_window_minutes=5,
        metric_hint="spans are measured by duration_ms (the only metric); count, rate and error_rate count spans",
    ),
    Source.BUSINESS_METRICS: SourceSpec(
        source=Source.BUSINESS_METRICS,
        table="business_metrics",
        time_column="period_end",
        fields={
            "metric_category": _vocab("metric_category", MetricCategory),
            "period_type": _vocab("period_type", PeriodType),
            "currency": FieldSpec("currency"),
            "source": FieldSpec("source"),
            "license_id": FieldSpec("license_id", "number"),
        },
        json_column="dimensions",
        aggregations=("avg", "min", "max", "sum", "count", "p50", "p90", "p95", "p99"),
        default_window_minutes=1440,
        metric_hint="the metric_name of the KPI, e.g. daily_revenue",
    ),
}


def source_spec(source: Source) -> SourceSpec:
    """The whitelist of ``source``: its table, time column, fields and aggregations."""
    return _SOURCES[source]


@dataclass(frozen=True)
class Condition:
    """A parsed, normalised condition: every field set, every name checked against its source's whitelist."""

    source: Source
    metric: str | None
    filters: Mapping[str, Any]
    aggregation: str
    operator: str
    threshold: float
    window_minutes: int
    group_by: tuple[str, ...] = ()
    for_minutes: int = 0
    keep_firing_minutes: int = 0
    min_points: int = 1
    no_data: str = "ok"
    _spec: SourceSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_spec", _SOURCES[self.source])

    @property
    def spec(self) -> SourceSpec:
        return self._spec

    @property
    def counts_rows(self) -> bool:
        """True when the value counts events or spans, so an empty window is 0 rather than no data."""
        return self.aggregation in COUNTED_AGGREGATIONS and self.source in (Source.TELEMETRY_EVENTS, Source.TRACES)

    @property
    def empty_value(self) -> float | None:
        """The value of a window without rows: 0 for counted events and spans, otherwise no data (None)."""
        return 0.0 if self.counts_rows else None

    def holds(self, value: float) -> bool:
        """Whether ``value`` (the aggregate) compared with the threshold by the operator is true."""
        threshold = self.threshold
        match self.operator:
            case ">":
                return value > threshold
            case ">=":
                return value >= threshold
            case "<":
                return value < threshold
            case "<=":
                return value <= threshold
            case "==":
                return value == threshold
            case "!=":
                return value != threshold
        raise ValueError(f"unknown operator {self.operator}")

    def verdict(self, value: float | None, points: int) -> bool | None:
        """True/False when there is enough data to judge, None (no data) when there is no value or, for
        aggregations other than counted events and spans, fewer than ``min_points`` rows."""
        if value is None or (not self.counts_rows and points < self.min_points):
            return None
        return self.holds(value)

    def to_config(self) -> dict[str, Any]:
        """The normalised JSON form, every default filled in (what a rule stores)."""
        return {
            "source": self.source.value,
            "metric": self.metric,
            "filters": _plain(self.filters),
            "aggregation": self.aggregation,
            "operator": self.operator,
            "threshold": self.threshold,
            "window_minutes": self.window_minutes,
            "group_by": list(self.group_by),
            "for_minutes": self.for_minutes,
            "keep_firing_minutes": self.keep_firing_minutes,
            "min_points": self.min_points,
            "no_data": self.no_data,
        }

    def describe(self) -> str:
        """One line for people: ``avg(cpu_usage) over 5m > 80``."""
        what = self.metric or ("events" if self.source is Source.TELEMETRY_EVENTS else self.source.value)
        return f"{self.aggregation}({what}) over {self.window_minutes}m {self.operator} {_number_text(self.threshold)}"


def fingerprint(rule_id: int, group_key: Mapping[str, str]) -> str:
    """A stable 64-hex-character identity of one rule and group key (key order does not matter)."""
    document = json.dumps([rule_id, sorted((str(k), str(v)) for k, v in group_key.items())], separators=(",", ":"))
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def parse_condition(config: Any, *, field: str = "condition_config") -> Condition:
    """Parse and validate a condition document; raise ``InvalidInput`` listing every problem found."""
    problems = FieldProblems(field)
    if not isinstance(config, Mapping):
        problems.add("", "must be a JSON object", example={"metric": "cpu_usage", "operator": ">", "threshold": 80})
        problems.raise_if_any("the condition")
    for key in config:
        if key not in _KEYS:
            problems.add(str(key), "is not a field of the condition language", allowed=list(_KEYS))

    source = _parse_source(config, problems)
    spec = _SOURCES[source] if source is not None else None
    metric = _parse_metric(config, spec, problems)
    aggregation = _parse_aggregation(config, spec, metric, problems)
    operator = _choice(config, "operator", OPERATORS, ">", problems)
    threshold = _parse_threshold(config, problems)
    window_minutes = _integer(config, "window_minutes", spec.default_window_minutes if spec else 5, 1, MAX_MINUTES, problems)
    for_minutes = _integer(config, "for_minutes", 0, 0, MAX_MINUTES, problems)
    keep_firing_minutes = _integer(config, "keep_firing_minutes", 0, 0, MAX_MINUTES, problems)
    min_points = _integer(config, "min_points", 1, 1, MAX_MIN_POINTS, problems)
    no_data = _choice(config, "no_data", NO_DATA_POLICIES, "ok", problems)
    filters = _parse_filters(config, spec, problems)
    group_by = _parse_group_by(config, spec, problems)
    problems.raise_if_any("the condition")
    assert source is not None and aggregation is not None and operator is not None and threshold is not None
    assert no_data is not None and filters is not None and group_by is not None
    return Condition(
        source=source,
        metric=metric,
        filters=filters,
        aggregation=aggregation,
        operator=operator,
        threshold=threshold,
        window_minutes=window_minutes,
        group_by=group_by,
        for_minutes=for_minutes,
        keep_firing_minutes=keep_firing_minutes,
        min_points=min_points,
        no_data=no_data,
    )


def _parse_source(config: Mapping[str, Any], problems: FieldProblems) -> Source | None:
    raw = config.get("source", Source.SYSTEM_METRICS.value)
    if raw is None:
        raw = Source.SYSTEM_METRICS.value
    try:
        return Source(raw) if isinstance(raw, str) else _raise()
    except ValueError:
        problems.add("source", f"must be one of the telemetry sources, not {_show(raw)}", allowed=[s.value for s in Source])
        return None


def _raise() -> Any:
    raise ValueError


def _parse_metric(config: Mapping[str, Any], spec: SourceSpec | None, problems: FieldProblems) -> str | None:
    raw = config.get("metric")
    if spec is None:
        return None
    if raw is not None and (not isinstance(raw, str) or not raw.strip() or len(raw) > _MAX_NAME_CHARS or "\x00" in raw):
        problems.add("metric", f"must be a non-empty string of at most {_MAX_NAME_CHARS} characters ({spec.metric_hint})")
        return None
    match spec.source:
        case Source.SYSTEM_METRICS | Source.BUSINESS_METRICS:
            if raw is None:
                problems.add("metric", f"is required for {spec.source.value}: {spec.metric_hint}")
            return raw
        case Source.TRACES:
            if raw not in (None, "duration_ms"):
                problems.add("metric", f"must be duration_ms or omitted for traces ({spec.metric_hint})", allowed=["duration_ms"])
            return "duration_ms"
        case Source.TELEMETRY_EVENTS:
            if raw is None or raw == "duration_ms":
                return raw
            key = _json_key(raw, spec.json_column)
            if key is None:
                problems.add(
                    "metric",
                    f"{_show(raw)} is not a numeric field of events; {spec.metric_hint} "
                    "(to count events of one name or type use filters.event_name / filters.event_type)",
                    allowed=["duration_ms", f"{spec.json_column}.<key>"],
                )
                return None
            return raw
    return raw  # pragma: no cover


def _parse_aggregation(
    config: Mapping[str, Any], spec: SourceSpec | None, metric: str | None, problems: FieldProblems
) -> str | None:
    if spec is None:
        return None
    default = "count" if spec.source is Source.TELEMETRY_EVENTS and metric is None else "avg"
    raw = config.get("aggregation", default)
    if raw is None:
        raw = default
    if not isinstance(raw, str) or raw not in AGGREGATIONS:
        problems.add("aggregation", f"{_show(raw)} is not an aggregation", allowed=list(spec.aggregations))
        return None
    allowed = list(spec.aggregations)
    if spec.source is Source.TELEMETRY_EVENTS and config.get("metric") is None:
        allowed = list(COUNTED_AGGREGATIONS)
    if raw not in allowed:
        if raw == "error_rate":
            reason = (
                "error_rate is the share of spans with status error, so it applies to the traces source only"
                if spec.source is not Source.TRACES
                else "error_rate is not available here"
            )
        elif spec.source is Source.TELEMETRY_EVENTS and raw in _VALUE_AGGREGATIONS:
            reason = f"{raw} needs a numeric field to aggregate: set metric to duration_ms or payload.<key>"
        elif spec.source is Source.BUSINESS_METRICS and raw == "rate":
            reason = "rate is a per-second increase of a counter; KPI values are per period, so it does not apply"
        else:
            reason = f"{raw} is not available for {spec.source.value}"
        problems.add("aggregation", reason, allowed=allowed)
        return None
    return raw


def _choice(config: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str, problems: FieldProblems) -> str | None:
    raw = config.get(name, default)
    if raw is None:
        raw = default
    if not isinstance(raw, str) or raw not in allowed:
        problems.add(name, f"{_show(raw)} is not one of the allowed values", allowed=list(allowed))
        return None
    return raw


def _parse_threshold(config: Mapping[str, Any], problems: FieldProblems) -> float | None:
    if "threshold" not in config or config["threshold"] is None:
        problems.add("threshold", "is required: the number the aggregate is compared with", example=80)
        return None
    raw = config["threshold"]
    if not _is_number(raw):
        problems.add("threshold", f"must be a finite number, not {_show(raw)}", example=80)
        return None
    return float(raw)


def _integer(config: Mapping[str, Any], name: str, default: int, low: int, high: int, problems: FieldProblems) -> int:
    raw = config.get(name, default)
    if raw is None:
        return default
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        problems.add(name, f"must be a whole number from {low} to {high}, not {_show(raw)}")
        return default
    if not low <= raw <= high:
        problems.add(name, f"must be from {low} to {high} (got {raw})")
        return default
    return raw


def _json_key(name: Any, json_column: str) -> str | None:
    if not isinstance(name, str) or not name.startswith(json_column + "."):
        return None
    key = name[len(json_column) + 1 :]
    if not key or len(key) > _MAX_KEY_CHARS or "\x00" in key:
        return None
    return key


def _parse_group_by(config: Mapping[str, Any], spec: SourceSpec | None, problems: FieldProblems) -> tuple[str, ...] | None:
    raw = config.get("group_by", [])
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        problems.add("group_by", "must be a list of field names", example=["service_name"])
        return None
    if len(raw) > MAX_GROUP_BY:
        problems.add("group_by", f"holds at most {MAX_GROUP_BY} fields (got {len(raw)})")
        return None
    if spec is None:
        return tuple(raw)
    names: list[str] = []
    for index, name in enumerate(raw):
        where = f"group_by[{index}]"
        if not isinstance(name, str):
            problems.add(where, f"must be a field name, not {_show(name)}", allowed=spec.groupable())
        elif name in names:
            problems.add(where, f"{name} is listed twice")
        elif (name in spec.fields and spec.fields[name].groupable) or _json_key(name, spec.json_column) is not None:
            names.append(name)
        else:
            problems.add(where, f"{_show(name)} cannot be grouped on for {spec.source.value}", allowed=spec.groupable())
    return tuple(names)


def _parse_filters(config: Mapping[str, Any], spec: SourceSpec | None, problems: FieldProblems) -> dict[str, Any] | None:
    raw = config.get("filters", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.add("filters", "must be an object of field: value", example={"service_name": "api"})
        return None
    if len(raw) > MAX_FILTERS:
        problems.add("filters", f"holds at most {MAX_FILTERS} fields (got {len(raw)})")
        return None
    if spec is None:
        return dict(raw)
    filters: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"filters.{name}"
        field_spec = spec.fields.get(name)
        if field_spec is None and _json_key(name, spec.json_column) is None:
            problems.add(
                where, f"{_show(name)} is not a field that can be filtered for {spec.source.value}", allowed=spec.filterable()
            )
            continue
        kind = field_spec.kind if field_spec is not None else "json"
        allowed_values = field_spec.allowed if field_spec is not None else ()
        normalised = _parse_filter_value(where, value, kind, allowed_values, problems)
        if normalised is not None:
            filters[name] = normalised
    return filters


def _parse_filter_value(
    where: str, value: Any, kind: str, allowed: tuple[str, ...], problems: FieldProblems
) -> dict[str, Any] | None:
    """Normalise a filter to ``{op: operand}``: a scalar is ``eq``, a list is ``in``, an object names its ops."""
    if isinstance(value, list):
        value = {"in": value}
    elif not isinstance(value, Mapping):
        value = {"eq": value}
    if not value:
        problems.add(where, "must name at least one operator", allowed=list(FILTER_OPERATORS))
        return None
    result: dict[str, Any] = {}
    for op, operand in value.items():
        at = f"{where}.{op}" if len(value) > 1 or op not in ("eq", "in") else where
        if op not in FILTER_OPERATORS:
            problems.add(at, f"{_show(op)} is not a filter operator", allowed=list(FILTER_OPERATORS))
            continue
        if op in _COMPARISONS and kind not in ("number", "json"):
            problems.add(
                at,
                f"{op} compares numbers; this field holds text, so use eq, ne, in or not_in",
                allowed=["eq", "ne", "in", "not_in"],
            )
            continue
        if op in ("in", "not_in"):
            if not isinstance(operand, list) or not operand or len(operand) > _MAX_LIST_ITEMS:
                problems.add(at, f"must be a list of 1 to {_MAX_LIST_ITEMS} values")
                continue
            checked = [_scalar(f"{at}[{i}]", item, kind, allowed, problems, nullable=False) for i, item in enumerate(operand)]
            if all(item is not _BAD for item in checked):
                result[op] = checked
            continue
        checked_one = _scalar(
            at, operand, "number" if op in _COMPARISONS else kind, allowed, problems, nullable=op in ("eq", "ne")
        )
        if checked_one is not _BAD:
            result[op] = checked_one
    return result if len(result) == len(value) else None


_BAD = object()


def _scalar(where: str, value: Any, kind: str, allowed: tuple[str, ...], problems: FieldProblems, *, nullable: bool) -> Any:
    if value is None:
        if nullable:
            return None
        problems.add(where, "cannot be null here")
        return _BAD
    if kind == "number":
        if not _is_number(value):
            problems.add(where, f"must be a finite number, not {_show(value)}")
            return _BAD
        return value
    if kind == "vocabulary":
        if value not in allowed:
            problems.add(where, f"{_show(value)} is not a known value", allowed=list(allowed))
            return _BAD
        return value
    if kind == "text":
        if not isinstance(value, str) or len(value) > _MAX_TEXT_CHARS or "\x00" in value:
            problems.add(where, f"must be a string of at most {_MAX_TEXT_CHARS} characters, not {_show(value)}")
            return _BAD
        return value
    # a JSON key: any JSON scalar (strings, numbers, booleans)
    if isinstance(value, str):
        if len(value) > _MAX_TEXT_CHARS or "\x00" in value:
            problems.add(where, f"must be at most {_MAX_TEXT_CHARS} characters without NUL")
            return _BAD
        return value
    if isinstance(value, bool) or _is_number(value):
        return value
    problems.add(where, f"must be a string, a finite number or a boolean, not {_show(value)}")
    return _BAD


def _is_number(value: Any) -> bool:
    """A JSON number a double can hold: not a boolean, not NaN or infinite, not an integer past 1e308."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _plain(filters: Mapping[str, Any]) -> dict[str, Any]:
    # stored compactly: a lone eq as the scalar, a lone in as the list
    plain: dict[str, Any] = {}
    for name, ops in filters.items():
        if len(ops) == 1 and "eq" in ops:
            plain[name] = ops["eq"]
        elif len(ops) == 1 and "in" in ops:
            plain[name] = list(ops["in"])
        else:
            plain[name] = dict(ops)
    return plain


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)
