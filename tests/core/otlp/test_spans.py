"""OTLP spans to ``traces`` rows: the mapping of each field, and per-span rejections in the partial-success model."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from fernando_telemetry.core.ingest import spans as native_spans
from fernando_telemetry.core.ingest.common import IngestBounds, decode_items
from fernando_telemetry.core.otlp import spans_from_request
from fernando_telemetry.core.otlp.values import unix_nano_datetime
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from tests.core.otlp.support import NOW, NOW_NS, SPAN_ID, TRACE_ID, context, key_values, ns, span, traces_request


def decoded(
    *pb2_spans: Span, resource: dict[str, Any] | None = None, scope: str = "", **context_options: Any
) -> list[dict[str, Any]]:
    """Rows as column -> value dicts; fails the test if any span was rejected."""
    batch = spans_from_request(traces_request(*pb2_spans, resource=resource, scope=scope), context(**context_options))
    assert batch.rejections == []
    return [dict(zip(native_spans.COLUMNS, row, strict=True)) for row in batch.rows]


def one(pb2_span: Span | None = None, **options: Any) -> dict[str, Any]:
    (row,) = decoded(pb2_span or span(), **options)
    return row


def rejection(pb2_span: Span, **context_options: Any) -> tuple[str | None, str]:
    batch = spans_from_request(traces_request(pb2_span), context(**context_options))
    assert batch.rows == []
    (only,) = batch.rejections
    return only.field, only.reason


class TestRowShape:
    def test_rows_have_the_native_span_columns(self) -> None:
        """A row is a tuple in ``core.ingest.spans.COLUMNS`` order, so the native writer stores it."""
        batch = spans_from_request(traces_request(span()), context())
        assert len(batch.rows[0]) == len(native_spans.COLUMNS)

    def test_a_row_equals_the_native_decoders_row_for_the_same_span(self) -> None:
        """The OTLP row of a span equals the native API's row for the same span given as JSON."""
        start = NOW - timedelta(minutes=1)
        pb2_span = span(
            parent_span_id=bytes.fromhex("00f067aa0ba902b7"),
            status=Status(code=Status.STATUS_CODE_OK),
            attributes={"http.request.method": "GET", "http.route": "/orders/{id}", "http.response.status_code": 200},
        )
        native_item = {
            "trace_id": TRACE_ID.hex(),
            "span_id": SPAN_ID.hex(),
            "parent_span_id": "00f067aa0ba902b7",
            "operation_name": "GET /orders/{id}",
            "service_name": "checkout",
            "span_kind": "server",
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(milliseconds=250)).isoformat(),
            "status": "ok",
            "status_code": 200,
            "http_method": "GET",
            "http_route": "/orders/{id}",
            "host_name": "web-1",
            "attributes": {"http.request.method": "GET", "http.route": "/orders/{id}", "http.response.status_code": 200},
            "resource": {"service.name": "checkout", "host.name": "web-1", "deployment.environment.name": "prod"},
            "environment": "prod",
        }
        native_rows, _, native_rejections = decode_items([native_item], native_spans.decode, context())
        assert native_rejections == []
        assert spans_from_request(traces_request(pb2_span), context()).rows == native_rows


class TestResource:
    def test_resource_attributes_name_service_host_and_environment(self) -> None:
        """service.name, host.name and deployment.environment.name fill their columns; the whole resource is kept."""
        row = one(
            resource={
                "service.name": "billing",
                "host.name": "db-2",
                "deployment.environment.name": "staging",
                "k8s.pod.name": "p",
            }
        )
        assert (row["service_name"], row["host_name"], row["environment"]) == ("billing", "db-2", "staging")
        assert json.loads(row["resource"]) == {
            "service.name": "billing",
            "host.name": "db-2",
            "deployment.environment.name": "staging",
            "k8s.pod.name": "p",
        }

    @pytest.mark.parametrize(
        ("resource", "expected"),
        [
            ({"deployment.environment": "qa"}, "qa"),
            ({"deployment.environment": "qa", "deployment.environment.name": "prod"}, "prod"),
            ({}, None),
        ],
    )
    def test_the_older_environment_key_is_read_too(self, resource: dict[str, Any], expected: str | None) -> None:
        """deployment.environment (before semconv 1.27) names the environment when the newer key is absent."""
        assert one(resource=resource)["environment"] == expected

    @pytest.mark.parametrize(
        ("resource", "service_name", "host_name"),
        [
            ({}, "unknown_service", None),
            ({"service.name": "  "}, "unknown_service", None),
            ({"service.name": ["a"], "host.name": True}, "unknown_service", None),
            ({"service.name": 5, "host.name": "h"}, "5", "h"),
        ],
    )
    def test_a_resource_without_a_service_name_is_unknown_service(
        self, resource: dict[str, Any], service_name: str, host_name: str | None
    ) -> None:
        """A missing, blank or structured service.name is unknown_service; a number is taken as its text."""
        row = one(resource=resource)
        assert (row["service_name"], row["host_name"]) == (service_name, host_name)

    def test_a_resource_over_the_row_limit_keeps_the_service_keys_first_and_counts_what_it_drops(self) -> None:
        """Past ``max_resource_chars`` attributes are dropped (service and host first kept), the columns untouched."""
        resource = {"big.1": "x" * 300, "small": "s", "big.2": "y" * 300, "host.name": "h", "service.name": "billing"}
        limited = replace(context(), bounds=IngestBounds(max_resource_chars=200))
        batch = spans_from_request(traces_request(span(), resource=resource), limited)
        (row,) = [dict(zip(native_spans.COLUMNS, row, strict=True)) for row in batch.rows]
        stored = json.loads(row["resource"])
        assert len(row["resource"]) <= 200
        assert stored == {"service.name": "billing", "host.name": "h", "small": "s", "fernando.dropped_attributes_count": 2}
        assert (row["service_name"], row["host_name"]) == ("billing", "h")

    def test_a_resource_within_the_row_limit_is_stored_whole(self) -> None:
        resource = {"service.name": "billing", "k": "v" * 150}
        limited = replace(context(), bounds=IngestBounds(max_resource_chars=len(json.dumps(resource, separators=(",", ":")))))
        (row,) = spans_from_request(traces_request(span(), resource=resource), limited).rows
        assert json.loads(row[native_spans.COLUMNS.index("resource")]) == resource

    def test_a_long_scope_name_is_clipped(self) -> None:
        attributes = json.loads(one(scope="s" * 1000)["attributes"])
        assert attributes == {"otel.scope.name": "s" * IngestBounds().max_scope_chars}

    def test_the_instrumentation_scope_joins_the_attributes(self) -> None:
        """The scope name is kept as otel.scope.name, as exporters to Zipkin and Jaeger write it."""
        assert json.loads(one(scope="io.opentelemetry.flask")["attributes"]) == {"otel.scope.name": "io.opentelemetry.flask"}


class TestIds:
    def test_ids_are_lowercase_hex(self) -> None:
        """Trace, span and parent ids are stored as lowercase hexadecimal text."""
        row = one(
            span(trace_id=bytes.fromhex("5B8EFFF798038103D269B633813FC60C"), parent_span_id=bytes.fromhex("ABCDEF0123456789"))
        )
        assert (row["trace_id"], row["span_id"], row["parent_span_id"]) == (
            "5b8efff798038103d269b633813fc60c",
            "eee19b7ec3c1b174",
            "abcdef0123456789",
        )

    def test_an_empty_parent_is_a_root_span(self) -> None:
        """A span without parent_span_id is a root: the column is NULL."""
        assert one()["parent_span_id"] is None

    @pytest.mark.parametrize(
        ("fields", "field", "reason"),
        [
            ({"trace_id": b""}, "trace_id", "is required"),
            ({"trace_id": bytes(16)}, "trace_id", "must not be all zeros"),
            ({"trace_id": bytes(8)}, "trace_id", "must be 32 hexadecimal characters"),
            ({"span_id": b""}, "span_id", "is required"),
            ({"span_id": bytes(8)}, "span_id", "must not be all zeros"),
            ({"span_id": TRACE_ID}, "span_id", "must be 16 hexadecimal characters"),
            ({"parent_span_id": bytes(8)}, "parent_span_id", "must not be all zeros"),
            ({"parent_span_id": b"\x01\x02"}, "parent_span_id", "must be 16 hexadecimal characters"),
        ],
    )
    def test_missing_zero_or_wrong_length_ids_are_rejected(self, fields: dict[str, Any], field: str, reason: str) -> None:
        """An id that is missing, all zeros or of the wrong length rejects the span, naming the field."""
        found_field, found_reason = rejection(span(**fields))
        assert found_field == field
        assert reason in found_reason


class TestNameKindAndTiming:
    def test_name_is_the_operation(self) -> None:
        """The span name is the operation_name; one past the column width is cut to 255 characters."""
        assert one(span(name="SELECT orders"))["operation_name"] == "SELECT orders"
        assert one(span(name="x" * 300))["operation_name"] == "x" * 255

    @pytest.mark.parametrize("name", ["", "   "])
    def test_a_span_without_a_name_is_rejected(self, name: str) -> None:
        """A span needs a name (the OTLP specification requires one)."""
        assert rejection(span(name=name))[0] == "name"

    @pytest.mark.parametrize(
        ("kind", "expected"),
        [
            (Span.SPAN_KIND_UNSPECIFIED, "unspecified"),
            (Span.SPAN_KIND_INTERNAL, "internal"),
            (Span.SPAN_KIND_SERVER, "server"),
            (Span.SPAN_KIND_CLIENT, "client"),
            (Span.SPAN_KIND_PRODUCER, "producer"),
            (Span.SPAN_KIND_CONSUMER, "consumer"),
            (9, "unspecified"),
        ],
    )
    def test_kind_maps_to_span_kind(self, kind: int, expected: str) -> None:
        """Each SpanKind becomes its lowercase name; a value from a newer protocol is unspecified."""
        assert one(span(kind=kind))["span_kind"] == expected

    def test_times_come_from_unix_nanos(self) -> None:
        """Start and end are aware UTC datetimes; duration_ms keeps the nanosecond difference."""
        start_ns = NOW_NS - 5 * 10**9 + 123_456_789
        row = one(span(start_time_unix_nano=start_ns, end_time_unix_nano=start_ns + 1_500_001))
        assert row["start_time"] == NOW - timedelta(seconds=5) + timedelta(microseconds=123_456)
        assert row["start_time"].tzinfo is not None
        assert row["end_time"] == unix_nano_datetime(start_ns + 1_500_001)
        assert row["duration_ms"] == pytest.approx(1.500001)

    def test_a_zero_length_span_is_kept(self) -> None:
        """A span that ends when it starts lasts 0 ms."""
        assert one(span(end_time_unix_nano=NOW_NS - 60 * 10**9))["duration_ms"] == 0

    @pytest.mark.parametrize(
        ("fields", "field", "reason"),
        [
            ({"end_time_unix_nano": NOW_NS - 61 * 10**9}, "end_time_unix_nano", "is before start_time_unix_nano"),
            ({"end_time_unix_nano": 0}, "end_time_unix_nano", "is before start_time_unix_nano"),
            ({"start_time_unix_nano": 0}, "start_time_unix_nano", "is required"),
            ({"start_time_unix_nano": ns(NOW - timedelta(days=31))}, "start_time_unix_nano", "older than the accepted window"),
            ({"start_time_unix_nano": ns(NOW + timedelta(hours=2))}, "start_time_unix_nano", "in the future"),
        ],
    )
    def test_impossible_or_out_of_window_times_are_rejected(self, fields: dict[str, Any], field: str, reason: str) -> None:
        """An end before the start, a missing start, or a start outside the accepted window rejects the span."""
        values = {"start_time_unix_nano": NOW_NS - 60 * 10**9, "end_time_unix_nano": NOW_NS, **fields}
        if "start_time_unix_nano" in fields and "end_time_unix_nano" not in fields:
            values["end_time_unix_nano"] = max(values["start_time_unix_nano"], 1)
        found_field, found_reason = rejection(span(**values))
        assert found_field == field
        assert reason in found_reason


class TestStatus:
    @pytest.mark.parametrize(
        ("code", "expected"),
        [(Status.STATUS_CODE_UNSET, "unset"), (Status.STATUS_CODE_OK, "ok"), (Status.STATUS_CODE_ERROR, "error"), (7, "unset")],
    )
    def test_status_code_maps_to_status(self, code: int, expected: str) -> None:
        """UNSET, OK and ERROR become unset, ok, error; an unknown code is unset."""
        assert one(span(status=Status(code=code)))["status"] == expected

    def test_status_message_is_kept(self) -> None:
        """The status message is status_message; an empty one is NULL."""
        assert one(span(status=Status(code=2, message="card declined")))["status_message"] == "card declined"
        assert one()["status_message"] is None


class TestHttp:
    @pytest.mark.parametrize(
        ("attributes", "method", "status_code"),
        [
            ({"http.request.method": "post", "http.response.status_code": 201}, "POST", 201),
            ({"http.method": "GET", "http.status_code": 404}, "GET", 404),
            (
                {"http.request.method": "PUT", "http.method": "GET", "http.response.status_code": 500, "http.status_code": 200},
                "PUT",
                500,
            ),
            ({"http.response.status_code": "503"}, None, 503),
            ({"http.response.status_code": 99}, None, None),
            ({"http.response.status_code": 600}, None, None),
            ({"http.response.status_code": "OK"}, None, None),
            ({"http.response.status_code": 200.0, "http.request.method": 5}, None, None),
            ({"http.request.method": "X" * 40}, "X" * 16, None),
            ({}, None, None),
        ],
    )
    def test_http_attributes_fill_method_and_status_code(
        self, attributes: dict[str, Any], method: str | None, status_code: int | None
    ) -> None:
        """Current and pre-1.21 HTTP attribute names fill http_method (upper case) and status_code (100-599, else NULL)."""
        row = one(span(attributes=attributes))
        assert (row["http_method"], row["status_code"]) == (method, status_code)

    def test_http_route_is_kept(self) -> None:
        """http.route is the http_route column."""
        assert one(span(attributes={"http.route": "/users/:id"}))["http_route"] == "/users/:id"

    def test_an_out_of_range_status_code_stays_in_the_attributes(self) -> None:
        """A status code the column cannot take is not lost: the attribute keeps it."""
        row = one(span(attributes={"http.response.status_code": 999}))
        assert json.loads(row["attributes"])["http.response.status_code"] == 999


class TestEventsAndExceptions:
    def test_the_first_exception_event_gives_error_type_and_message(self) -> None:
        """The first event named exception gives error_type and error_message; later ones do not override it."""
        events = [
            Span.Event(name="retry", time_unix_nano=NOW_NS - 30 * 10**9),
            Span.Event(
                name="exception",
                time_unix_nano=NOW_NS - 20 * 10**9,
                attributes=key_values({"exception.type": "TimeoutError", "exception.message": "upstream slow"}),
            ),
            Span.Event(name="exception", attributes=key_values({"exception.type": "ValueError"})),
        ]
        row = one(span(events=events))
        assert (row["error_type"], row["error_message"]) == ("TimeoutError", "upstream slow")

    def test_a_span_without_an_exception_event_has_no_error(self) -> None:
        """Without an exception event, error_type and error_message are NULL."""
        row = one(span(events=[Span.Event(name="cache.miss")]))
        assert (row["error_type"], row["error_message"]) == (None, None)

    def test_all_events_become_the_span_events_array(self) -> None:
        """Every event is kept in span_events as {name, time (ISO 8601), attributes}."""
        events = [
            Span.Event(name="cache.miss", time_unix_nano=ns(NOW - timedelta(seconds=59)), attributes=key_values({"key": "o:1"})),
            Span.Event(name="no.time"),
        ]
        assert json.loads(one(span(events=events))["span_events"]) == [
            {"name": "cache.miss", "time": "2026-11-28T11:59:01+00:00", "attributes": {"key": "o:1"}},
            {"name": "no.time", "time": None, "attributes": {}},
        ]


class TestAttributes:
    def test_attributes_are_a_json_object_of_converted_values(self) -> None:
        """Attribute values of every AnyValue kind become JSON (bytes as base64)."""
        attributes = {"s": "x", "b": True, "i": 7, "d": 0.25, "a": [1, "two"], "kv": {"inner": False}, "raw": b"\x00\xff"}
        assert json.loads(one(span(attributes=attributes))["attributes"]) == {
            "s": "x",
            "b": True,
            "i": 7,
            "d": 0.25,
            "a": [1, "two"],
            "kv": {"inner": False},
            "raw": "AP8=",
        }

    def test_attributes_too_large_to_store_reject_the_span(self) -> None:
        """Attributes over the native 64 KiB JSON limit reject the span with the native reason."""
        field, reason = rejection(span(attributes={"db.statement": "x" * 70_000}))
        assert field == "attributes"
        assert "at most 65536 are allowed" in reason


class TestUserAndLicense:
    @pytest.mark.parametrize(
        ("attributes", "resource", "expected"),
        [
            ({"enduser.id": "u-1"}, {}, "u-1"),
            ({"user.id": "u-2"}, {}, "u-2"),
            ({"enduser.id": "u-1", "user.id": "u-2"}, {}, "u-1"),
            ({"user.id": 42}, {}, "42"),
            ({}, {"user.id": "u-3"}, "u-3"),
            ({"user.id": "u-4"}, {"user.id": "u-3"}, "u-4"),
            ({"user.id": ""}, {}, None),
            ({"user.id": True}, {}, None),
            ({}, {}, None),
        ],
    )
    def test_user_comes_from_enduser_id_or_user_id(
        self, attributes: dict[str, Any], resource: dict[str, Any], expected: str | None
    ) -> None:
        """enduser.id, then user.id, on the span and then on the resource, is the user_id (integers as text)."""
        assert one(span(attributes=attributes), resource=resource)["user_id"] == expected

    def test_a_user_id_too_long_for_the_column_is_rejected(self) -> None:
        """A user id longer than any platform user's (128 characters) rejects the span, naming the attribute."""
        field, reason = rejection(span(attributes={"enduser.id": "u" * 200}))
        assert field == "attributes.enduser.id"
        assert "at most 128" in reason

    def test_a_license_key_owns_the_rows_whatever_the_data_says(self) -> None:
        """With a license's key, rows belong to that license even if an attribute names another."""
        assert one(span(attributes={"fernando.license_id": 99}))["license_id"] == 7

    @pytest.mark.parametrize(
        ("attributes", "resource", "expected"),
        [
            ({"fernando.license_id": 12}, {}, 12),
            ({"license.id": "13"}, {}, 13),
            ({}, {"fernando.license_id": 14}, 14),
            ({"fernando.license_id": 15}, {"fernando.license_id": 14}, 15),
            ({}, {}, PLATFORM_LICENSE_ID),
        ],
    )
    def test_an_admin_key_takes_the_license_from_the_data(
        self, attributes: dict[str, Any], resource: dict[str, Any], expected: int
    ) -> None:
        """With an admin key, fernando.license_id or license.id (span first, then resource) is the license; with
        neither, the platform license."""
        assert one(span(attributes=attributes), resource=resource, is_admin=True)["license_id"] == expected

    @pytest.mark.parametrize("value", ["acme", 0, -3, 1.5, True])
    def test_an_admin_keys_invalid_license_attribute_is_rejected(self, value: Any) -> None:
        """A license attribute that is not a positive integer rejects the span, naming the attribute."""
        field, reason = rejection(span(attributes={"fernando.license_id": value}), is_admin=True)
        assert field == "attributes.fernando.license_id"
        assert "positive integer" in reason


class TestPartialSuccess:
    def test_one_bad_span_is_rejected_and_the_others_kept(self) -> None:
        """A batch with one bad span gives rows for the others, one rejection, and a message naming the reason."""
        spans = [span(span_id=bytes([0, 0, 0, 0, 0, 0, 0, n + 1])) for n in range(4)]
        spans[2] = span(span_id=bytes.fromhex("00000000000000aa"), end_time_unix_nano=1)
        batch = spans_from_request(traces_request(*spans), context())
        assert [row[1] for row in batch.rows] == ["0000000000000001", "0000000000000002", "0000000000000004"]
        assert batch.indexes == [0, 1, 3]
        assert batch.rejections_count == 1
        assert batch.rejections[0].index == 2
        assert batch.message.startswith("rejected 1 of 4 spans: span 2: end_time_unix_nano: 1 is before start_time_unix_nano")

    def test_positions_run_across_resources_and_scopes(self) -> None:
        """Rejection indexes count spans across every resource and scope of the request, in order."""
        first = traces_request(span(), span(name=""))
        second = traces_request(span(trace_id=b""), resource={"service.name": "b"})
        first.resource_spans.extend(second.resource_spans)
        batch = spans_from_request(first, context())
        assert [(rejection.index, rejection.field) for rejection in batch.rejections] == [(1, "name"), (2, "trace_id")]
        assert batch.received == 3

    def test_nothing_rejected_means_an_empty_message(self) -> None:
        """A fully accepted batch has no partial-success message."""
        batch = spans_from_request(traces_request(span()), context())
        assert (batch.rejections_count, batch.message) == (0, "")

    def test_an_empty_request_decodes_to_nothing(self) -> None:
        """A request without spans is accepted with no rows."""
        batch = spans_from_request(traces_request(), context())
        assert (batch.rows, batch.rejections, batch.received) == ([], [], 0)
