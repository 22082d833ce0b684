"""Decoder fuzzing: hostile native items and OTLP requests (protobuf and JSON, random, truncated, mutated) never raise
anything but the domain's errors, every item ends as a row PostgreSQL will take or a rejection naming its index,
field and reason, and valid items beside bad ones still come out as rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from fernando_telemetry.composition.wiring import dump_json
from fernando_telemetry.core import otlp
from fernando_telemetry.core.errors import Malformed, SchemaMismatch
from fernando_telemetry.core.ingest import DecodeContext, Rejection, decode_items
from fernando_telemetry.services.ingest import KINDS
from tests.fuzz import strategies
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.storable import copy_row, problems

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
_MAX_REASON_CHARS = 1000


def _context(*, is_admin: bool = False, retention_days: int = 90) -> DecodeContext:
    return DecodeContext(
        now=NOW,
        earliest=NOW - timedelta(days=retention_days),
        latest=NOW + timedelta(hours=1),
        license_id=None if is_admin else 7,
        is_admin=is_admin,
        new_id=uuid.uuid4,
        dump_json=dump_json,
    )


def assert_well_formed(
    kind: str,
    rows: list[tuple[Any, ...]],
    indexes: list[int],
    rejections: list[Rejection],
    received: int,
    context: DecodeContext,
    *,
    skipped: int = 0,
) -> None:
    """Every item is a row or a rejection (or skipped) exactly once, rows are storable, rejections say where and why."""
    spec_kind = KINDS[kind]
    seen = sorted([*indexes, *(r.index for r in rejections)])
    assert len(seen) == len(set(seen)), f"an item is both a row and a rejection: {seen}"
    assert len(seen) + skipped == received
    assert all(0 <= index < received for index in seen)
    for decoded in rows:
        row = copy_row(kind, decoded)
        if row is None:
            continue
        found = problems(kind, spec_kind.spec.columns, row)
        assert not found, f"a decoded row PostgreSQL would refuse: {found}"
        if spec_kind.time_field is not None:
            moment = getattr(row, spec_kind.time_field)
            assert context.earliest <= moment <= context.latest, f"{moment} outside the accepted window"
    for rejection in rejections:
        assert rejection.reason and isinstance(rejection.reason, str)
        assert rejection.field is None or (isinstance(rejection.field, str) and rejection.field)
        # the answer is stored as jsonb with an Idempotency-Key: no NUL, and short enough to read
        assert "\x00" not in rejection.reason + (rejection.field or ""), f"a NUL in the rejection: {rejection}"
        assert len(rejection.reason) <= _MAX_REASON_CHARS, f"a {len(rejection.reason)}-character reason"
        assert len(rejection.field or "") <= 200


class TestNativeItems:
    @pytest.mark.parametrize("kind", sorted(strategies.FIELDS_BY_KIND))
    @given(data=st.data())
    @fuzz_settings(150)
    def test_hostile_items_become_rows_or_rejections(self, kind: str, data: st.DataObject) -> None:
        """Any item (hostile fields, unknown fields, not an object) is a storable row or a rejection with index and reason."""
        is_admin = data.draw(st.booleans(), label="is_admin")
        items = data.draw(st.lists(strategies.hostile_items(kind, NOW), max_size=6), label="items")
        context = _context(is_admin=is_admin)
        rows, indexes, rejections = decode_items(items, KINDS[kind].decode, context)
        assert_well_formed(kind, rows, indexes, rejections, len(items), context)

    @pytest.mark.parametrize("kind", sorted(strategies.FIELDS_BY_KIND))
    @given(data=st.data())
    @fuzz_settings(60)
    def test_valid_items_beside_hostile_ones_still_decode(self, kind: str, data: st.DataObject) -> None:
        """Valid items keep their rows, at their own indexes, whatever their neighbours hold."""
        hostile = data.draw(st.lists(strategies.hostile_items(kind, NOW), min_size=1, max_size=5), label="hostile")
        valid_count = data.draw(st.integers(1, 3), label="valid_count")
        items: list[Any] = list(hostile)
        positions = []
        for number in range(valid_count):
            at = data.draw(st.integers(0, len(items)), label="position")
            items.insert(at, strategies.valid_item(kind, "valid", NOW, number))
            positions = [p + 1 if p >= at else p for p in positions] + [at]
        context = _context()
        rows, indexes, rejections = decode_items(items, KINDS[kind].decode, context)
        assert_well_formed(kind, rows, indexes, rejections, len(items), context)
        assert set(positions) <= set(indexes), f"valid items at {sorted(positions)} were rejected: {rejections}"

    @pytest.mark.parametrize("depth", [10, 254, 255, 256, 1000, 5000])
    def test_deeply_nested_payload_is_a_row_or_a_rejection(self, depth: int) -> None:
        """A payload nested deeper than the JSON serialiser allows is rejected on its field, not raised."""
        context = _context()
        rows, indexes, rejections = decode_items(
            [{"event_name": "deep", "payload": {"v": strategies.nested_json(depth)}}], KINDS["events"].decode, context
        )
        assert_well_formed("events", rows, indexes, rejections, 1, context)
        if rejections:
            assert rejections[0].field == "payload"


class TestNativeRegressions:
    """Inputs the fuzzing found that once escaped as an exception or as a row PostgreSQL refuses."""

    @pytest.mark.parametrize(
        ("value", "kind", "field"),
        [
            ("0001-01-01T00:00:00+01:00", "events", "event_timestamp"),
            ("9999-12-31T23:59:59-01:00", "system_metrics", "timestamp"),
            ("0001-01-01T00:00:00+14:00", "spans", "start_time"),
            ("9999-12-31T23:59:59-12:00", "business_metrics", "period_start"),
        ],
    )
    def test_offsets_past_the_calendars_ends_are_rejected(self, value: str, kind: str, field: str) -> None:
        """A timestamp whose offset moves it past year 1 or 9999 in UTC is a rejection of its field (was an OverflowError)."""
        item = {**strategies.valid_item(kind, "x", NOW, 0), field: value}
        rows, _, rejections = decode_items([item], KINDS[kind].decode, _context())
        assert rows == []
        assert [(r.field, "out of range" in r.reason) for r in rejections] == [(field, True)]

    def test_business_metric_end_before_year_one_is_rejected(self) -> None:
        """A monthly period starting in December 9999 has no end in the calendar: a rejection, not an OverflowError."""
        item = {
            "metric_name": "m",
            "metric_category": "revenue",
            "metric_value": 1,
            "period_type": "monthly",
            "period_start": "9999-12-01T00:00:00Z",
        }
        rows, _, rejections = decode_items([item], KINDS["business_metrics"].decode, _context())
        assert rows == [] and len(rejections) == 1 and rejections[0].field in ("period_end", "period_start")

    @pytest.mark.parametrize("address", ["fe80::1%eth0", "fe80::1%1", "::1%lo"])
    def test_ipv6_zone_is_rejected(self, address: str) -> None:
        """PostgreSQL's inet has no IPv6 zone: such an address is a rejection (was a database error failing the batch)."""
        rows, _, rejections = decode_items([{"event_name": "x", "ip_address": address}], KINDS["events"].decode, _context())
        assert rows == []
        assert rejections[0].field == "ip_address" and "zone" in rejections[0].reason

    @pytest.mark.parametrize("value", ["999999999999999999.9999999", 999999999999999999.9999999, "-999999999999999999.9999995"])
    def test_money_that_rounds_past_18_digits_is_rejected(self, value: Any) -> None:
        """numeric(24, 6) rounds to 6 places first: a value that rounds to 10**18 is a rejection (was a numeric overflow)."""
        item = {
            "metric_name": "m",
            "metric_category": "revenue",
            "metric_value": value,
            "period_type": "daily",
            "period_start": "2026-11-27T00:00:00Z",
        }
        rows, _, rejections = decode_items([item], KINDS["business_metrics"].decode, _context())
        assert rows == []
        assert rejections[0].field == "metric_value" and "18 digits" in rejections[0].reason

    def test_unknown_field_with_nul_is_named_without_the_nul(self) -> None:
        """An unknown field's name is echoed printable (a raw NUL cannot be stored with the batch's Idempotency-Key answer)."""
        rows, _, rejections = decode_items([{"event_name": "x", "a\x00b": 1}], KINDS["events"].decode, _context())
        assert rows == []
        assert "\x00" not in (rejections[0].field or "")
        assert "a" in (rejections[0].field or "") and "unknown field" in rejections[0].reason

    @pytest.mark.parametrize("license_id", [0, -1, 2**63, 2**64 - 1])
    def test_admin_license_id_outside_bigint_is_rejected(self, license_id: int) -> None:
        """An admin key's license_id must fit the bigint column: past it is a rejection naming the range."""
        rows, _, rejections = decode_items(
            [{"event_name": "x", "license_id": license_id}], KINDS["events"].decode, _context(is_admin=True)
        )
        assert rows == []
        assert rejections[0].field == "license_id" and str(2**63 - 1) in rejections[0].reason

    def test_span_duration_past_the_calendar_is_rejected(self) -> None:
        """A duration_ms that puts the span's end past year 9999 is a rejection of that field (was an OverflowError)."""
        item = {**strategies.valid_item("spans", "x", NOW, 0), "duration_ms": 1.8e18}
        rows, _, rejections = decode_items([item], KINDS["spans"].decode, _context())
        assert rows == []
        assert [(r.field, "at most 1e+12" in r.reason) for r in rejections] == [("duration_ms", True)]

    def test_huge_values_are_not_echoed_whole(self) -> None:
        """A 70,000-character value is named by its length, not repeated back in the rejection."""
        huge = "9" * 70_000
        for field in ("event_timestamp", "event_id", "trace_id", "event_type", "ip_address"):
            _, _, rejections = decode_items([{"event_name": "x", field: huge}], KINDS["events"].decode, _context())
            assert len(rejections) == 1 and len(rejections[0].reason) < 400, field


# -- OTLP -----------------------------------------------------------------------------------------------

_SIGNALS: dict[
    str, tuple[Callable[[bytes, str | None], Message], Callable[[Any, DecodeContext], otlp.DecodedBatch], str, Callable[..., Any]]
] = {
    "traces": (otlp.parse_traces_request, otlp.spans_from_request, "spans", strategies.traces_requests),
    "metrics": (otlp.parse_metrics_request, otlp.metric_rows_from_request, "system_metrics", strategies.metrics_requests),
    "logs": (otlp.parse_logs_request, otlp.event_rows_from_logs_request, "events", strategies.logs_requests),
}


def _item_count(signal: str, pb2_request: Any) -> int:
    if signal == "traces":
        return sum(len(s.spans) for r in pb2_request.resource_spans for s in r.scope_spans)
    if signal == "logs":
        return sum(len(s.log_records) for r in pb2_request.resource_logs for s in r.scope_logs)
    return sum(
        len(getattr(m, m.WhichOneof("data")).data_points) if m.WhichOneof("data") else 0
        for r in pb2_request.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
    )


def _parse_and_decode(signal: str, body: bytes, content_type: str, *, is_admin: bool = False) -> otlp.DecodedBatch | None:
    """Parse and decode a body: a domain error is an acceptable answer (None), any other exception fails the test."""
    parse, decode, kind, _ = _SIGNALS[signal]
    try:
        pb2_request = parse(body, content_type)
    except (Malformed, SchemaMismatch) as exc:
        assert exc.message and len(exc.message) <= 800
        return None
    context = _context(is_admin=is_admin)
    decoded = decode(pb2_request, context)
    assert_well_formed(
        kind, decoded.rows, decoded.indexes, decoded.rejections, decoded.received, context, skipped=decoded.skipped_count
    )
    assert decoded.received == _item_count(signal, pb2_request)
    assert len(decoded.message) < 4000
    return decoded


_JSON_MUTATIONS = st.sampled_from(["none", "hex_id_wrong_length", "time_as_text", "time_huge", "type_swap", "enum_out_of_range"])


def _mutate(document: Any, mutation: str, pick: int) -> Any:
    """One hostile change to the first few places of an OTLP/JSON document a mutation applies to."""
    targets: list[tuple[dict[str, Any], str]] = []
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                targets.append((node, key))
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    for count, (node, key) in enumerate(targets):
        if count % 3 != pick % 3:
            continue
        if mutation == "hex_id_wrong_length" and key in ("traceId", "spanId", "parentSpanId"):
            node[key] = "ab" * (pick % 20)
        elif mutation == "time_as_text" and key.endswith("UnixNano"):
            node[key] = ["soon", "-1", "1e400", "18446744073709551616", ""][pick % 5]
        elif mutation == "time_huge" and key.endswith("UnixNano"):
            node[key] = [2**64 - 1, 2**64, -1, 1.5][pick % 4]
        elif mutation == "type_swap":
            node[key] = [None, [], {}, "x", 1, True][pick % 6]
        elif mutation == "enum_out_of_range" and key in ("kind", "severityNumber", "code", "aggregationTemporality"):
            node[key] = [99, -1, "SPAN_KIND_BOGUS", 2**40][pick % 4]
    return document


class TestOtlpWire:
    @pytest.mark.parametrize("signal", sorted(_SIGNALS))
    @given(body=st.binary(max_size=400))
    @fuzz_settings(100)
    def test_random_bytes_are_malformed_or_decode(self, signal: str, body: bytes) -> None:
        """Random bytes as protobuf: a 400-class error, or a message whose items decode to rows or rejections."""
        _parse_and_decode(signal, body, "application/x-protobuf")

    @pytest.mark.parametrize("signal", sorted(_SIGNALS))
    @given(data=st.data())
    @fuzz_settings(60)
    def test_generated_requests_decode_to_rows_or_rejections(self, signal: str, data: st.DataObject) -> None:
        """Hostile but well-formed protobuf requests decode item by item; nothing escapes as an exception."""
        pb2_request = data.draw(_SIGNALS[signal][3](NOW), label="request")
        decoded = _parse_and_decode(
            signal, pb2_request.SerializeToString(), "application/x-protobuf", is_admin=data.draw(st.booleans(), label="is_admin")
        )
        assert decoded is not None

    @pytest.mark.parametrize("signal", sorted(_SIGNALS))
    @given(data=st.data())
    @fuzz_settings(40)
    def test_truncated_and_flipped_protobuf(self, signal: str, data: st.DataObject) -> None:
        """A valid request cut short or with bytes changed is a 400-class error or decodes, never an exception."""
        body = bytearray(data.draw(_SIGNALS[signal][3](NOW), label="request").SerializeToString())
        if body:
            cut = data.draw(st.integers(0, len(body)), label="cut")
            flips = data.draw(st.lists(st.tuples(st.integers(0, len(body) - 1), st.integers(0, 255)), max_size=3), label="flips")
            for position, byte in flips:
                body[position] = byte
            body = body[:cut]
        _parse_and_decode(signal, bytes(body), "application/x-protobuf")

    @pytest.mark.parametrize("signal", sorted(_SIGNALS))
    @given(data=st.data())
    @fuzz_settings(40)
    def test_otlp_json_with_hostile_changes(self, signal: str, data: st.DataObject) -> None:
        """OTLP/JSON with ids of the wrong length, times as text or past uint64, swapped types, unknown enums."""
        document = strategies.otlp_json(data.draw(_SIGNALS[signal][3](NOW), label="request"))
        mutated = _mutate(document, data.draw(_JSON_MUTATIONS, label="mutation"), data.draw(st.integers(0, 60), label="pick"))
        _parse_and_decode(signal, json.dumps(mutated).encode(), "application/json")

    @pytest.mark.parametrize("signal", sorted(_SIGNALS))
    @given(body=st.one_of(st.binary(max_size=200), strategies.json_values().map(dump_json).map(str.encode)))
    @fuzz_settings(60)
    def test_random_json_bodies(self, signal: str, body: bytes) -> None:
        """Random bytes and random JSON documents as OTLP/JSON: a 400-class error or items decoded."""
        _parse_and_decode(signal, body, "application/json")

    @pytest.mark.parametrize(
        "body",
        [
            b"[" * 100_000,
            b'{"resourceSpans":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            b"NaN",
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":1e999}]}]}]}',
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":NaN}]}]}]}',
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\\ud800"}]}]}]}',
            b"\xff\xfe{}",
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"\\u0000"}]}]}]}',
        ],
        ids=["deep-array", "deep-in-field", "nan", "1e999", "nan-field", "lone-surrogate", "utf16-bom", "nul-id"],
    )
    def test_nasty_json_bodies(self, body: bytes) -> None:
        """Deep nesting, NaN, 1e999, a lone surrogate, a BOM, a NUL id: each a 400-class error or decoded items."""
        _parse_and_decode("traces", body, "application/json")

    @pytest.mark.parametrize("depth", [10, 45, 48, 60, 200, 5000])
    def test_deeply_nested_any_value(self, depth: int) -> None:
        """An attribute value nested past protobuf's recursion limit is a 400-class error, a shallower one a row or rejection."""
        start_ns = int(NOW.timestamp() * 1e9)
        pb2_span = Span(
            trace_id=b"\x01" * 16,
            span_id=b"\x02" * 8,
            name="deep",
            start_time_unix_nano=start_ns,
            end_time_unix_nano=start_ns + 1000,
        )
        # written by hand: the protobuf runtime will not build a message deeper than it reads
        value = _field(1, b"leaf")
        for _ in range(depth):
            value = _field(5, _field(1, value))  # AnyValue.array_value -> ArrayValue.values
        span_bytes = pb2_span.SerializeToString() + _field(9, _field(1, b"deep") + _field(2, value))
        body = _field(1, _field(2, _field(2, span_bytes)))  # request.resource_spans.scope_spans.spans
        decoded = _parse_and_decode("traces", body, "application/x-protobuf")
        attribute = (
            '{"key":"deep","value":' + '{"arrayValue":{"values":[' * depth + '{"stringValue":"leaf"}' + "]}}" * depth + "}"
        )
        span_json = (
            f'{{"traceId":"{"01" * 16}","spanId":"{"02" * 8}","name":"deep","startTimeUnixNano":"{start_ns}",'
            f'"endTimeUnixNano":"{start_ns + 1000}","attributes":[{attribute}]}}'
        )
        decoded_json = _parse_and_decode(
            "traces", f'{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span_json}]}}]}}]}}'.encode(), "application/json"
        )
        for answer in (decoded, decoded_json):
            if depth <= 45:
                assert answer is not None and len(answer.rows) == 1
            else:
                assert answer is None, "past protobuf's nesting limit the body is refused whole"


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload
