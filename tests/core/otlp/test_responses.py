"""OTLP/HTTP answers: partial success set only when something was rejected, encoded as the request was."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from fernando_telemetry.core.errors import UnsupportedMediaType
from fernando_telemetry.core.ingest.common import Rejection
from fernando_telemetry.core.otlp import (
    JSON,
    PROTOBUF,
    logs_response,
    metrics_response,
    partial_success_message,
    response_body,
    traces_response,
)


class TestResponses:
    def test_a_full_success_has_no_partial_success(self) -> None:
        """Nothing rejected: the response is empty, as the OTLP specification asks."""
        assert not traces_response(0).HasField("partial_success")
        assert not metrics_response(0, "").HasField("partial_success")
        assert not logs_response(0).HasField("partial_success")

    def test_rejections_are_counted_per_signal(self) -> None:
        """Each signal's response carries its own rejected-items field and the message."""
        assert traces_response(2, "why").partial_success.rejected_spans == 2
        assert metrics_response(3, "why").partial_success.rejected_data_points == 3
        assert logs_response(4, "why").partial_success.rejected_log_records == 4
        assert logs_response(4, "why").partial_success.error_message == "why"

    def test_protobuf_requests_get_protobuf_answers(self) -> None:
        """A protobuf request is answered in protobuf, which reads back equal."""
        body, content_type = response_body(traces_response(1, "span 0: bad"), "application/x-protobuf")
        assert content_type == PROTOBUF
        assert ExportTraceServiceResponse.FromString(body) == traces_response(1, "span 0: bad")

    @pytest.mark.parametrize(
        ("pb2_response", "expected"),
        [
            (traces_response(1, "bad"), {"partialSuccess": {"rejectedSpans": "1", "errorMessage": "bad"}}),
            (metrics_response(0), {}),
            (logs_response(5, "x"), {"partialSuccess": {"rejectedLogRecords": "5", "errorMessage": "x"}}),
        ],
    )
    def test_json_requests_get_otlp_json_answers(
        self, pb2_response: ExportTraceServiceResponse | ExportMetricsServiceResponse | ExportLogsServiceResponse, expected: dict
    ) -> None:
        """A JSON request is answered in OTLP/JSON (lowerCamelCase keys, int64 as strings)."""
        body, content_type = response_body(pb2_response, "application/json; charset=utf-8")
        assert content_type == JSON
        assert json.loads(body) == expected

    def test_an_unsupported_content_type_has_no_answer_encoding(self) -> None:
        """Encoding for a content type OTLP does not use is refused."""
        with pytest.raises(UnsupportedMediaType):
            response_body(traces_response(0), "text/html")


class TestPartialSuccessMessage:
    @pytest.mark.parametrize(
        ("rejections", "received", "expected"),
        [
            ([], 3, ""),
            ([Rejection(0, "name", "is required")], 1, "rejected 1 of 1 span: span 0: name: is required"),
            ([Rejection(4, None, "bad")], 9, "rejected 1 of 9 spans: span 4: bad"),
            (
                [Rejection(i, "trace_id", "zeros") for i in (7, 1, 3, 5, 2)],
                10,
                "rejected 5 of 10 spans: span 1: trace_id: zeros; span 2: trace_id: zeros; span 3: trace_id: zeros; and 2 more",
            ),
        ],
    )
    def test_the_message_counts_and_names_the_first_reasons(
        self, rejections: list[Rejection], received: int, expected: str
    ) -> None:
        """The message says how many of how many were rejected and gives the first three reasons in request order."""
        assert partial_success_message(rejections, received=received, item_name="span") == expected
