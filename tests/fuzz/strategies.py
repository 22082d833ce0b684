"""Hypothesis strategies of hostile input: JSON values and ingest items, timestamps, ids, and OTLP protobuf requests.

The native API's items are what ``orjson.loads`` can produce (no lone surrogates, no NaN); the OTLP
requests are built as protobuf messages, so they can carry what the wire allows: any uint64 time,
ids of any length, NaN doubles, NUL characters, deep ``AnyValue`` nesting.
"""

from __future__ import annotations

import base64
import functools
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    SummaryDataPoint,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from fernando_telemetry.core.ingest import business, events, metrics, spans

__all__ = [
    "FIELDS_BY_KIND",
    "hostile_ids",
    "hostile_items",
    "hostile_text",
    "hostile_timestamps",
    "hostile_values",
    "json_values",
    "logs_requests",
    "metrics_requests",
    "nested_json",
    "otlp_json",
    "traces_requests",
    "valid_item",
]

FIELDS_BY_KIND = {
    "events": events.FIELDS,
    "system_metrics": metrics.FIELDS,
    "business_metrics": business.FIELDS,
    "spans": spans.FIELDS,
}

# -- JSON values as orjson.loads gives them ---------------------------------------------------------

_CHARACTERS = st.characters(codec="utf-8")  # every code point but lone surrogates, NUL included
_EDGY_STRINGS = st.sampled_from(
    ["", " ", "\x00", "a\x00b", "\u0000" * 3, "\ufeff", "\u202e", "İ", "ß", "\U0001f600", "\ufffd", "\\u0000", "%", "null"]
)


@functools.cache
def hostile_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Text with NULs, odd code points and, now and then, a string far past any column's width."""
    return st.one_of(
        st.text(_CHARACTERS, max_size=max_size),
        _EDGY_STRINGS,
        st.builds(
            lambda c, n: c * n,
            st.sampled_from(["x", "é", "\U0001f600", "\x00"]),
            st.sampled_from([199, 200, 201, 256, 1025, 10_001]),
        ),
    )


_EDGY_NUMBERS = st.sampled_from(
    [
        0,
        -0.0,
        1,
        -1,
        2**31 - 1,
        2**31,
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        1.8446744073709552e19,
        1e17,
        1e18,
        -1e18,
        1e308,
        -1e308,
        5e-324,
        0.1,
        999999999999999999.9999999,
        1e11,
        1e14,
        1e17 + 1,
        253402300800,
        -62135596801,
    ]
)


def _numbers() -> st.SearchStrategy[int | float]:
    return st.one_of(
        _EDGY_NUMBERS,
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
    )


@functools.cache
def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value orjson can parse: scalars, arrays and objects, keys included hostile."""
    scalars = st.one_of(st.none(), st.booleans(), _numbers(), hostile_text())
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(hostile_text(20), children, max_size=4)),
        max_leaves=max_leaves,
    )


def nested_json(depth: int) -> Any:
    """A JSON value nested ``depth`` levels deep, alternating arrays and objects."""
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


_DEEP_PAYLOAD = {"deep": nested_json(300)}  # deeper than the JSON serialiser writes (255)


# -- timestamps and ids -------------------------------------------------------------------------------

_OFFSETS = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=14)),
        timezone(timedelta(hours=-12)),
        timezone(timedelta(hours=23, minutes=59)),
        timezone(timedelta(hours=-23, minutes=-59)),
    ]
)


@functools.cache
def hostile_timestamps(now: datetime) -> st.SearchStrategy[Any]:
    """Instants far in the past or future, at the calendar's ends with offsets, as epoch numbers of any unit, or garbage."""
    naive = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59))
    near = st.datetimes(
        min_value=now.replace(tzinfo=None) - timedelta(days=400), max_value=now.replace(tzinfo=None) + timedelta(days=2)
    )
    iso = st.builds(lambda moment, zone: moment.replace(tzinfo=zone).isoformat(), st.one_of(naive, near), _OFFSETS)
    ends = st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:59:59.999999+00:00",
            "0001-01-01",
            "9999-12-31",
            "1970-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-30",
            "T",
            "",
            "now",
            "\x00",
            "2026-11-28T09:30:00+24:00",
            "2026-11-28T09:30:00\x00Z",
        ]
    )
    epoch = st.one_of(
        _EDGY_NUMBERS,
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.just(now.timestamp()),
        st.just(int(now.timestamp() * 1e9)),
    )
    return st.one_of(iso, ends, epoch, hostile_text(30))


def _hex(length: int) -> st.SearchStrategy[str]:
    return st.text("0123456789abcdefABCDEF", min_size=length, max_size=length)


@functools.cache
def hostile_ids() -> st.SearchStrategy[Any]:
    """W3C-ish ids of every wrong length, all zeros, non-hex, or not strings at all."""
    return st.one_of(
        st.integers(0, 40).flatmap(_hex),
        st.sampled_from(["0" * 32, "0" * 16, "g" * 32, "İ" * 16, "\x00" * 16, " " + "a" * 31, "A" * 32]),
    )


_EDGE_VALUES = st.sampled_from(
    [
        None,
        True,
        False,
        [],
        {},
        [None],
        {"": None},
        "",
        "\x00",
        "x" * 10_001,
        0,
        -1,
        2**64 - 1,
        1e308,
        -0.0,
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "0" * 32,
        "fe80::1%eth0",
        "999999999999999999.9999999",
    ]
)


@functools.cache
def hostile_values(now: datetime) -> st.SearchStrategy[Any]:
    """Whatever a field might be sent: an edge value, a number, text, a timestamp, an id, a small JSON value."""
    return st.one_of(_EDGE_VALUES, _numbers(), hostile_text(), hostile_timestamps(now), hostile_ids(), json_values(4))


# -- items of the native API ---------------------------------------------------------------------------

_ENUMS = {
    "event_type": ["user_action", "error_event", "USER_ACTION", "bogus"],
    "source": ["web", "api", "batch_job", "x"],
    "metric_type": ["gauge", "counter", "histogram", "timer", "nope"],
    "metric_category": ["revenue", "usage", "?"],
    "period_type": ["hourly", "daily", "weekly", "monthly", "yearly"],
    "span_kind": ["server", "client", "internal", "odd"],
    "status": ["ok", "error", "unset", "OK", "?"],
}
_TIME_FIELDS = {"event_timestamp", "timestamp", "period_start", "period_end", "start_time", "end_time"}
_ID_FIELDS = {"trace_id", "span_id", "parent_span_id", "event_id"}


def _field_value(field: str, now: datetime) -> st.SearchStrategy[Any]:
    plausible: st.SearchStrategy[Any]
    if field in _ENUMS:
        plausible = st.sampled_from(_ENUMS[field])
    elif field in _TIME_FIELDS:
        plausible = hostile_timestamps(now)
    elif field in _ID_FIELDS:
        plausible = st.one_of(hostile_ids(), st.uuids().map(str))
    elif field == "ip_address":
        plausible = st.one_of(
            st.ip_addresses().map(str), st.sampled_from(["fe80::1%eth0", "::ffff:1.2.3.4", "1.2.3.4/24", "localhost"])
        )
    elif field in ("payload", "labels", "attributes", "resource", "dimensions"):
        plausible = st.one_of(st.dictionaries(hostile_text(20), json_values(6), max_size=3), st.just(_DEEP_PAYLOAD))
    elif field == "span_events":
        plausible = st.lists(json_values(4), max_size=3)
    elif field == "currency":
        plausible = st.sampled_from(["EUR", "usd", "E1R", "EURO", "€€€", "\x00UR"])
    else:
        plausible = st.one_of(hostile_text(), _numbers())
    return st.one_of(plausible, hostile_values(now))


@functools.cache
def hostile_items(kind: str, now: datetime) -> st.SearchStrategy[Any]:
    """An item of ``kind`` with any subset of its fields set to hostile values, sometimes an unknown field, or not an object."""
    fields = sorted(FIELDS_BY_KIND[kind])
    item = st.fixed_dictionaries({}, optional={field: _field_value(field, now) for field in fields})
    with_unknown = st.builds(lambda base, key, value: {**base, key: value}, item, hostile_text(20), _EDGE_VALUES)
    # a valid item with one or two fields made hostile: a bad value is then not masked by its neighbours' failures
    one_bad = st.builds(
        lambda position, changes: {**valid_item(kind, "valid", now, position), **changes},
        st.integers(0, 50),
        st.lists(st.sampled_from(fields), min_size=1, max_size=2, unique=True).flatmap(
            lambda chosen: st.fixed_dictionaries({field: _field_value(field, now) for field in chosen})
        ),
    )
    return st.one_of(one_bad, one_bad, item, item, with_unknown, _EDGE_VALUES)


def valid_item(kind: str, marker: str, now: datetime, position: int, *, user_id: str | None = None) -> dict[str, Any]:
    """A valid item of ``kind`` carrying ``marker`` so a test can find its row; ``position`` makes it unique."""
    moment = (now - timedelta(minutes=5, seconds=position)).isoformat()
    if kind == "events":
        item: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "event_name": marker,
            "payload": {"position": position},
            "event_timestamp": moment,
        }
        if user_id is not None:
            item["user_id"] = user_id
        return item
    if kind == "system_metrics":
        return {"metric_name": marker, "value": float(position), "labels": {"position": position}, "timestamp": moment}
    if kind == "business_metrics":
        start = (now - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=position)
        return {
            "metric_name": marker,
            "metric_category": "revenue",
            "metric_value": position,
            "period_type": "hourly",
            "period_start": start.isoformat(),
        }
    return {
        "trace_id": uuid.uuid4().hex,
        "span_id": uuid.uuid4().hex[:16],
        "operation_name": marker,
        "service_name": "fuzz",
        "start_time": moment,
        "duration_ms": 1.5,
    }


# -- OTLP requests as protobuf messages -----------------------------------------------------------------

_UINT64 = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**63, 2**64 - 1]))
_DOUBLES = st.floats(allow_nan=True, allow_infinity=True)
_PB_TEXT = st.one_of(st.text(_CHARACTERS, max_size=30), _EDGY_STRINGS, st.just("n" * 300))
_PB_ID = st.one_of(st.binary(max_size=20), st.sampled_from([b"", b"\x00" * 16, b"\x00" * 8, b"\x01" * 16, b"\x01" * 8]))


def _any_values() -> st.SearchStrategy[AnyValue]:
    leaves = st.one_of(
        st.builds(lambda v: AnyValue(string_value=v), _PB_TEXT),
        st.builds(lambda v: AnyValue(int_value=v), st.integers(-(2**63), 2**63 - 1)),
        st.builds(lambda v: AnyValue(double_value=v), _DOUBLES),
        st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
        st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=20)),
        st.just(AnyValue()),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(children, max_size=3)),
            st.builds(
                lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs])),
                st.lists(st.tuples(_PB_TEXT, children), max_size=3),
            ),
        ),
        max_leaves=8,
    )


def _deep_any_value(depth: int) -> AnyValue:
    value = AnyValue(string_value="leaf")
    for _ in range(depth):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    return value


_ATTRIBUTE_KEYS = st.one_of(
    _PB_TEXT,
    st.sampled_from(
        [
            "service.name",
            "host.name",
            "enduser.id",
            "user.id",
            "license.id",
            "fernando.license_id",
            "http.request.method",
            "http.response.status_code",
            "http.route",
            "event.name",
            "session.id",
        ]
    ),
)


def _attributes() -> st.SearchStrategy[list[KeyValue]]:
    return st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), _ATTRIBUTE_KEYS, _any_values()), max_size=4)


def _times(now: datetime) -> st.SearchStrategy[int]:
    now_ns = int(now.timestamp() * 1e9)
    return st.one_of(_UINT64, st.integers(now_ns - 10**15, now_ns + 10**12))


def _span(now: datetime) -> st.SearchStrategy[Span]:
    def build(
        trace_id: bytes,
        span_id: bytes,
        parent: bytes,
        name: str,
        start: int,
        end: int,
        kind: int,
        attributes: list[KeyValue],
        event_attributes: list[KeyValue],
        status_code: int,
        status_message: str,
    ) -> Span:
        return Span(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=name,
            start_time_unix_nano=start,
            end_time_unix_nano=end,
            kind=kind,
            attributes=attributes,
            events=[Span.Event(name="exception", time_unix_nano=start, attributes=event_attributes)],
            status={"code": status_code, "message": status_message},
        )

    return st.builds(
        build,
        _PB_ID,
        _PB_ID,
        _PB_ID,
        _PB_TEXT,
        _times(now),
        _times(now),
        st.integers(0, 9),
        _attributes(),
        _attributes(),
        st.integers(0, 5),
        _PB_TEXT,
    )


@functools.cache
def traces_requests(now: datetime) -> st.SearchStrategy[ExportTraceServiceRequest]:
    """Trace export requests with hostile spans, resources and scopes."""

    def build(resources: list[tuple[list[KeyValue], list[tuple[str, list[Span]]]]], deep: bool) -> ExportTraceServiceRequest:
        pb2_request = ExportTraceServiceRequest()
        for attributes, scopes in resources:
            pb2_resource_spans = pb2_request.resource_spans.add()
            pb2_resource_spans.resource.attributes.extend(attributes)
            if deep:
                pb2_resource_spans.resource.attributes.add(key="deep", value=_deep_any_value(40))
            for scope_name, pb2_spans in scopes:
                pb2_scope_spans = pb2_resource_spans.scope_spans.add()
                pb2_scope_spans.scope.name = scope_name
                pb2_scope_spans.spans.extend(pb2_spans)
        return pb2_request

    scopes = st.lists(st.tuples(_PB_TEXT, st.lists(_span(now), max_size=3)), max_size=2)
    return st.builds(build, st.lists(st.tuples(_attributes(), scopes), max_size=2), st.booleans())


def _number_point(now: datetime) -> st.SearchStrategy[NumberDataPoint]:
    return st.builds(
        lambda value, as_int, time, attributes, flags: NumberDataPoint(
            time_unix_nano=time,
            attributes=attributes,
            flags=flags,
            **({"as_int": as_int} if value is None else {"as_double": value}),
        ),
        st.one_of(st.none(), _DOUBLES),
        st.integers(-(2**63), 2**63 - 1),
        _times(now),
        _attributes(),
        st.integers(0, 1),
    )


def _histogram_point(now: datetime) -> st.SearchStrategy[HistogramDataPoint]:
    def build(
        count: int, total: float | None, bounds: list[float], counts: list[int], low: float | None, high: float | None, time: int
    ) -> HistogramDataPoint:
        pb2_point = HistogramDataPoint(count=count, explicit_bounds=bounds, bucket_counts=counts, time_unix_nano=time)
        for name, value in (("sum", total), ("min", low), ("max", high)):
            if value is not None:
                setattr(pb2_point, name, value)
        return pb2_point

    small = st.integers(0, 2**64 - 1)
    return st.builds(
        build,
        small,
        st.one_of(st.none(), _DOUBLES),
        st.lists(_DOUBLES, max_size=5),
        st.lists(small, max_size=6),
        st.one_of(st.none(), _DOUBLES),
        st.one_of(st.none(), _DOUBLES),
        _times(now),
    )


def _exponential_point(now: datetime) -> st.SearchStrategy[ExponentialHistogramDataPoint]:
    def build(
        count: int, scale: int, zero: int, offset: int, counts: list[int], total: float | None, time: int
    ) -> ExponentialHistogramDataPoint:
        pb2_point = ExponentialHistogramDataPoint(
            count=count,
            scale=scale,
            zero_count=zero,
            time_unix_nano=time,
            positive={"offset": offset, "bucket_counts": counts},
            negative={"offset": -offset, "bucket_counts": counts[::-1]},
        )
        if total is not None:
            pb2_point.sum = total
        return pb2_point

    return st.builds(
        build,
        st.integers(0, 2**64 - 1),
        st.integers(-(2**31), 2**31 - 1),
        st.integers(0, 2**64 - 1),
        st.integers(-(2**31) + 1, 2**31 - 1),
        st.lists(st.integers(0, 2**64 - 1), max_size=5),
        st.one_of(st.none(), _DOUBLES),
        _times(now),
    )


def _summary_point(now: datetime) -> st.SearchStrategy[SummaryDataPoint]:
    return st.builds(
        lambda count, total, quantiles, time: SummaryDataPoint(
            count=count,
            sum=total,
            time_unix_nano=time,
            quantile_values=[SummaryDataPoint.ValueAtQuantile(quantile=q, value=v) for q, v in quantiles],
        ),
        st.integers(0, 2**64 - 1),
        _DOUBLES,
        st.lists(st.tuples(st.sampled_from([0.5, 0.9, 0.95, 0.99, math.nan, 2.0]), _DOUBLES), max_size=4),
        _times(now),
    )


def _metric(now: datetime) -> st.SearchStrategy[Metric]:
    def build(name: str, unit: str, kind: str, points: list[Any], monotonic: bool) -> Metric:
        pb2_metric = Metric(name=name, unit=unit)
        if kind == "sum":
            pb2_metric.sum.is_monotonic = monotonic
        getattr(pb2_metric, kind).data_points.extend(points)
        return pb2_metric

    return st.one_of(
        st.builds(
            build, _PB_TEXT, _PB_TEXT, st.sampled_from(["gauge", "sum"]), st.lists(_number_point(now), max_size=3), st.booleans()
        ),
        st.builds(build, _PB_TEXT, _PB_TEXT, st.just("histogram"), st.lists(_histogram_point(now), max_size=3), st.booleans()),
        st.builds(
            build,
            _PB_TEXT,
            _PB_TEXT,
            st.just("exponential_histogram"),
            st.lists(_exponential_point(now), max_size=3),
            st.booleans(),
        ),
        st.builds(build, _PB_TEXT, _PB_TEXT, st.just("summary"), st.lists(_summary_point(now), max_size=3), st.booleans()),
        st.builds(lambda name: Metric(name=name), _PB_TEXT),
    )


@functools.cache
def metrics_requests(now: datetime) -> st.SearchStrategy[ExportMetricsServiceRequest]:
    """Metric export requests with every data point type and hostile numbers, bounds, scales and times."""

    def build(resources: list[tuple[list[KeyValue], list[Metric]]]) -> ExportMetricsServiceRequest:
        pb2_request = ExportMetricsServiceRequest()
        for attributes, pb2_metrics in resources:
            pb2_resource_metrics = pb2_request.resource_metrics.add()
            pb2_resource_metrics.resource.attributes.extend(attributes)
            pb2_resource_metrics.scope_metrics.add().metrics.extend(pb2_metrics)
        return pb2_request

    return st.builds(build, st.lists(st.tuples(_attributes(), st.lists(_metric(now), max_size=3)), max_size=2))


def _log_record(now: datetime) -> st.SearchStrategy[LogRecord]:
    return st.builds(
        lambda time, observed, severity, text, body, attributes, trace_id, span_id, event_name: LogRecord(
            time_unix_nano=time,
            observed_time_unix_nano=observed,
            severity_number=severity,
            severity_text=text,
            body=body,
            attributes=attributes,
            trace_id=trace_id,
            span_id=span_id,
            event_name=event_name,
        ),
        _times(now),
        _times(now),
        st.integers(0, 30),
        _PB_TEXT,
        _any_values(),
        _attributes(),
        _PB_ID,
        _PB_ID,
        _PB_TEXT,
    )


@functools.cache
def logs_requests(now: datetime) -> st.SearchStrategy[ExportLogsServiceRequest]:
    """Log export requests with hostile bodies, attributes, ids and times."""

    def build(resources: list[tuple[list[KeyValue], list[LogRecord]]]) -> ExportLogsServiceRequest:
        pb2_request = ExportLogsServiceRequest()
        for attributes, pb2_records in resources:
            pb2_resource_logs = pb2_request.resource_logs.add()
            pb2_resource_logs.resource.attributes.extend(attributes)
            pb2_resource_logs.scope_logs.add().log_records.extend(pb2_records)
        return pb2_request

    return st.builds(build, st.lists(st.tuples(_attributes(), st.lists(_log_record(now), max_size=3)), max_size=2))


def otlp_json(pb2_request: Message) -> dict[str, Any]:
    """A request in OTLP/JSON: protobuf's JSON mapping with the ids as hex, as the specification writes them."""
    document = json_format.MessageToDict(pb2_request)
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return document
