"""Reading OTLP/HTTP bodies: binary protobuf and OTLP/JSON to the same request messages, and clear errors otherwise."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Exemplar, Gauge, Metric, NumberDataPoint
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from fernando_telemetry.core.errors import InvalidInput, Malformed, SchemaMismatch, UnsupportedMediaType
from fernando_telemetry.core.otlp import (
    JSON,
    PROTOBUF,
    event_rows_from_logs_request,
    media_type,
    metric_rows_from_request,
    parse_logs_request,
    parse_metrics_request,
    parse_traces_request,
    spans_from_request,
)
from tests.core.otlp.support import NOW_NS, SPAN_ID, TRACE_ID, context, logs_request, metrics_request, span, traces_request

_ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def otlp_json(pb2_message: Any) -> bytes:
    """The OTLP/JSON encoding of a message: protobuf's JSON mapping with integer enums and hex (not base64) ids."""
    document = json_format.MessageToDict(pb2_message, use_integers_for_enums=True)

    def hexed(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: base64.b64decode(value).hex() if key in _ID_KEYS else hexed(value) for key, value in node.items()}
        if isinstance(node, list):
            return [hexed(item) for item in node]
        return node

    return json.dumps(hexed(document)).encode()


def spec_span(**overrides: Any) -> dict[str, Any]:
    """A span as the OTLP specification's JSON example writes it: hex ids, int64 as strings, integer enums."""
    values = {
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "EEE19B7EC3C1B173",
        "name": "I'm a server span",
        "startTimeUnixNano": str(NOW_NS - 10**9),
        "endTimeUnixNano": str(NOW_NS),
        "kind": 2,
        "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}],
    }
    values.update(overrides)
    return values


def spec_body(*spans: dict[str, Any], **top: Any) -> bytes:
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
                "scopeSpans": [{"scope": {"name": "my.library", "version": "1.0.0"}, "spans": list(spans)}],
            }
        ],
        **top,
    }
    return json.dumps(document).encode()


def parsed_span(body: bytes) -> Span:
    return parse_traces_request(body, JSON).resource_spans[0].scope_spans[0].spans[0]


class TestMediaType:
    @pytest.mark.parametrize(
        ("content_type", "expected"),
        [
            ("application/x-protobuf", PROTOBUF),
            ("application/protobuf", PROTOBUF),
            ("Application/X-Protobuf", PROTOBUF),
            ("application/json", JSON),
            ("application/json; charset=utf-8", JSON),
        ],
    )
    def test_the_two_otlp_encodings_are_recognised(self, content_type: str, expected: str) -> None:
        """Both OTLP/HTTP encodings are recognised, whatever the case and parameters of the header."""
        assert media_type(content_type) == expected

    @pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/grpc", "application/x-www-form-urlencoded"])
    def test_another_content_type_is_unsupported(self, content_type: str | None) -> None:
        """Any other content type is refused as unsupported (415), naming the two that work."""
        with pytest.raises(UnsupportedMediaType, match="application/x-protobuf or application/json"):
            parse_traces_request(b"{}", content_type)


class TestProtobufBodies:
    def test_a_serialised_request_reads_back_equal(self) -> None:
        """A binary protobuf body reads back as the message that was serialised."""
        pb2_request = traces_request(span(), span(span_id=bytes.fromhex("0102030405060708")))
        assert parse_traces_request(pb2_request.SerializeToString(), PROTOBUF) == pb2_request

    def test_an_empty_body_is_an_empty_request(self) -> None:
        """An empty protobuf body is a valid request with nothing in it (protobuf's encoding of the empty message)."""
        assert len(parse_metrics_request(b"", PROTOBUF).resource_metrics) == 0

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(traces_request(span()).SerializeToString()[:-7], id="truncated"),
            pytest.param(traces_request(span()).SerializeToString()[:40], id="cut-in-half"),
            pytest.param(b"\xff" * 16, id="bad-tag"),
            pytest.param(b"not a protobuf message at all", id="text"),
            pytest.param(bytes.fromhex("9a0f26c1d4e8b3a7716e5d4c3b2a1908f7e6d5c4b3a29180"), id="random"),
            pytest.param(b"\x0a\x05abc", id="length-past-end"),
        ],
    )
    def test_bytes_that_are_not_a_request_are_malformed(self, body: bytes) -> None:
        """Truncated or random bytes raise ``Malformed`` naming the message that was expected."""
        with pytest.raises(Malformed, match="not a valid protobuf ExportTraceServiceRequest"):
            parse_traces_request(body, PROTOBUF)

    def test_malformed_is_invalid_input(self) -> None:
        """The error belongs to the core hierarchy, so the API answers it as a 4xx."""
        with pytest.raises(InvalidInput):
            parse_logs_request(b"\xff\xff", "application/x-protobuf")


class TestJsonBodies:
    def test_the_specification_example_decodes(self) -> None:
        """The OTLP/JSON example (hex ids in upper case, int64 as strings, enum as integer) becomes the right message."""
        pb2_span = parsed_span(spec_body(spec_span()))
        assert pb2_span.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
        assert pb2_span.span_id == bytes.fromhex("eee19b7ec3c1b174")
        assert pb2_span.parent_span_id == bytes.fromhex("eee19b7ec3c1b173")
        assert pb2_span.start_time_unix_nano == NOW_NS - 10**9
        assert pb2_span.kind == Span.SPAN_KIND_SERVER

    def test_json_and_protobuf_of_one_request_give_the_same_rows(self) -> None:
        """The two encodings of one request decode to identical rows."""
        pb2_request = traces_request(
            span(
                attributes={"http.request.method": "POST", "http.response.status_code": 201, "ratio": 0.5, "tags": ["a", "b"]},
                parent_span_id=bytes.fromhex("00f067aa0ba902b7"),
                status=Status(code=Status.STATUS_CODE_ERROR, message="payment declined"),
                events=[Span.Event(name="exception", time_unix_nano=NOW_NS - 10**9)],
            ),
            span(span_id=bytes.fromhex("0102030405060708"), kind=Span.SPAN_KIND_CLIENT),
            scope="shop.instrumentation",
        )
        from_protobuf = spans_from_request(parse_traces_request(pb2_request.SerializeToString(), PROTOBUF), context())
        from_json = spans_from_request(parse_traces_request(otlp_json(pb2_request), JSON), context())
        assert len(from_protobuf.rows) == 2
        assert from_json.rows == from_protobuf.rows

    def test_json_and_protobuf_metrics_and_logs_give_the_same_rows(self) -> None:
        """The same holds for metrics (with exemplar ids) and logs (with trace context)."""
        pb2_metrics = metrics_request(
            Metric(
                name="queue.depth",
                gauge=Gauge(
                    data_points=[
                        NumberDataPoint(
                            as_int=12,
                            time_unix_nano=NOW_NS,
                            exemplars=[Exemplar(as_int=12, trace_id=TRACE_ID, span_id=SPAN_ID, time_unix_nano=NOW_NS)],
                        )
                    ]
                ),
            )
        )
        pb2_logs = logs_request(
            LogRecord(time_unix_nano=NOW_NS, body=None, trace_id=TRACE_ID, span_id=SPAN_ID, severity_number=17)
        )
        assert parse_metrics_request(otlp_json(pb2_metrics), JSON) == pb2_metrics
        assert parse_logs_request(otlp_json(pb2_logs), JSON) == pb2_logs
        assert (
            metric_rows_from_request(parse_metrics_request(otlp_json(pb2_metrics), JSON), context()).rows
            == metric_rows_from_request(pb2_metrics, context()).rows
        )
        assert (
            event_rows_from_logs_request(parse_logs_request(otlp_json(pb2_logs), JSON), context()).rows
            == event_rows_from_logs_request(pb2_logs, context()).rows
        )

    @pytest.mark.parametrize(
        "start",
        [
            pytest.param(str(NOW_NS - 10**9), id="string"),
            pytest.param(NOW_NS - 10**9, id="number"),
        ],
    )
    def test_int64_fields_may_be_strings_or_numbers(self, start: Any) -> None:
        """A 64-bit integer reads the same written as a JSON string or a JSON number (exactly, past 2**53)."""
        assert parsed_span(spec_body(spec_span(startTimeUnixNano=start))).start_time_unix_nano == NOW_NS - 10**9

    @pytest.mark.parametrize(
        ("kind", "expected"),
        [(1, Span.SPAN_KIND_INTERNAL), (3, Span.SPAN_KIND_CLIENT), ("SPAN_KIND_CONSUMER", Span.SPAN_KIND_CONSUMER)],
    )
    def test_enums_are_integers_and_names_are_tolerated(self, kind: Any, expected: int) -> None:
        """Enums are integers as OTLP/JSON requires; their protobuf names are read too."""
        assert parsed_span(spec_body(spec_span(kind=kind))).kind == expected

    def test_an_unknown_enum_name_is_left_unset(self) -> None:
        """A status code name this version does not know leaves the field unset rather than failing the request."""
        assert parsed_span(spec_body(spec_span(status={"code": "STATUS_CODE_FROM_THE_FUTURE"}))).status.code == 0

    def test_unknown_fields_are_ignored(self) -> None:
        """Fields this version of the protocol does not know are skipped at every level."""
        body = spec_body(spec_span(futureField={"nested": [1, 2]}, anotherOne="x"), newTopLevel=True)
        assert parsed_span(body).name == "I'm a server span"

    def test_snake_case_keys_are_read_too(self) -> None:
        """The protobuf field names (snake_case) are accepted beside the lowerCamelCase JSON names."""
        document = {
            "resource_spans": [
                {"scope_spans": [{"spans": [{"trace_id": TRACE_ID.hex(), "span_id": SPAN_ID.hex(), "name": "x"}]}]}
            ]
        }
        pb2_span = parsed_span(json.dumps(document).encode())
        assert (pb2_span.trace_id, pb2_span.span_id, pb2_span.name) == (TRACE_ID, SPAN_ID, "x")

    def test_base64_ids_are_tolerated(self) -> None:
        """Ids in base64 (what protobuf's own JSON printer writes) are read when they are not hexadecimal."""
        body = spec_body(spec_span(traceId=base64.b64encode(TRACE_ID).decode(), spanId=base64.b64encode(SPAN_ID).decode()))
        pb2_span = parsed_span(body)
        assert (pb2_span.trace_id, pb2_span.span_id) == (TRACE_ID, SPAN_ID)

    def test_an_empty_id_is_an_absent_id(self) -> None:
        """An empty parentSpanId is a root span's, not an error."""
        assert parsed_span(spec_body(spec_span(parentSpanId=""))).parent_span_id == b""

    def test_a_wrong_length_hex_id_is_left_to_the_decoder(self) -> None:
        """A hex id of the wrong size still parses, so only that span is rejected, not the request."""
        pb2_request = parse_traces_request(spec_body(spec_span(traceId="abcd"), spec_span()), JSON)
        batch = spans_from_request(pb2_request, context())
        assert (len(batch.rows), batch.rejections_count, batch.rejections[0].field) == (1, 1, "trace_id")

    @pytest.mark.parametrize(
        ("body", "error", "message"),
        [
            pytest.param(
                b"{",
                Malformed,
                "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
                id="unclosed",
            ),
            pytest.param(b'{"resourceSpans": [}', Malformed, "line 1 column 20", id="bad-token"),
            pytest.param(b"", Malformed, "not valid JSON", id="empty"),
            pytest.param(b"\xc3\x28{}", Malformed, "not UTF-8 JSON: invalid continuation byte at byte 0", id="not-utf8"),
            pytest.param(b"[]", SchemaMismatch, "must be a JSON object .* got an array", id="array"),
            pytest.param(b'"text"', SchemaMismatch, "got a string", id="string"),
            pytest.param(b'{"resourceSpans": {}}', SchemaMismatch, "resourceSpans", id="object-for-list"),
            pytest.param(
                spec_body(spec_span(traceId="not-hex-at-all!")),
                SchemaMismatch,
                r"resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.traceId must be a hexadecimal id",
                id="bad-id",
            ),
            pytest.param(spec_body(spec_span(startTimeUnixNano="soon")), SchemaMismatch, "startTimeUnixNano", id="bad-int64"),
            pytest.param(
                spec_body(spec_span(name=42)),
                SchemaMismatch,
                "resourceSpans.scopeSpans.spans.name: expected string",
                id="number-for-string",
            ),
            pytest.param(
                spec_body(spec_span(attributes=[{"key": "k", "value": {"intValue": "1.5"}}])),
                SchemaMismatch,
                "intValue",
                id="bad-int",
            ),
            pytest.param(b"[" * 100_000 + b"]" * 100_000, Malformed, "nested too deeply", id="deep"),
        ],
    )
    def test_malformed_json_names_the_problem_and_where(self, body: bytes, error: type[Exception], message: str) -> None:
        """Broken JSON is ``Malformed``; JSON of the wrong shape is ``SchemaMismatch``; the message says where."""
        with pytest.raises(error, match=message):
            parse_traces_request(body, JSON)

    def test_log_and_exemplar_ids_are_hex_too(self) -> None:
        """Log record and exemplar ids are hex in OTLP/JSON as span ids are."""
        logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": TRACE_ID.hex(), "spanId": SPAN_ID.hex()}]}]}]}
        pb2_record = parse_logs_request(json.dumps(logs).encode(), JSON).resource_logs[0].scope_logs[0].log_records[0]
        assert (pb2_record.trace_id, pb2_record.span_id) == (TRACE_ID, SPAN_ID)
        exemplar = {"asDouble": 1.0, "traceId": TRACE_ID.hex(), "spanId": SPAN_ID.hex()}
        metrics = {
            "resourceMetrics": [
                {
                    "scopeMetrics": [
                        {"metrics": [{"name": "m", "gauge": {"dataPoints": [{"asDouble": 1, "exemplars": [exemplar]}]}}]}
                    ]
                }
            ]
        }
        pb2_point = (
            parse_metrics_request(json.dumps(metrics).encode(), JSON)
            .resource_metrics[0]
            .scope_metrics[0]
            .metrics[0]
            .gauge.data_points[0]
        )
        assert (pb2_point.exemplars[0].trace_id, pb2_point.exemplars[0].span_id) == (TRACE_ID, SPAN_ID)

    def test_an_attribute_named_like_an_id_is_not_rewritten(self) -> None:
        """Attribute keys are values, not JSON keys, so an attribute called traceId keeps its text."""
        attributes = [{"key": "traceId", "value": {"stringValue": "not hex"}}]
        assert parsed_span(spec_body(spec_span(attributes=attributes))).attributes[0].value.string_value == "not hex"
