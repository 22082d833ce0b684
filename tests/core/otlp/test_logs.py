"""OTLP log records to ``telemetry_events`` rows: name, type, payload, trace context, time and tenancy."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber

from fernando_telemetry.core.ingest import events as native_events
from fernando_telemetry.core.otlp import event_rows_from_logs_request
from tests.core.otlp.support import NOW, NOW_NS, SPAN_ID, TRACE_ID, any_value, context, key_values, logs_request, ns


def record(body: Any = "user signed in", **fields: Any) -> LogRecord:
    attributes = fields.pop("attributes", {})
    values = {"time_unix_nano": NOW_NS, "severity_number": SeverityNumber.SEVERITY_NUMBER_INFO, "severity_text": "INFO"}
    values.update(fields)
    return LogRecord(body=any_value(body), attributes=key_values(attributes), **values)


def one(
    pb2_record: LogRecord | None = None, *, resource: dict[str, Any] | None = None, scope: str = "", **context_options: Any
) -> dict[str, Any]:
    batch = event_rows_from_logs_request(
        logs_request(pb2_record or record(), resource=resource, scope=scope), context(**context_options)
    )
    assert batch.rejections == []
    (row,) = batch.rows
    return dict(zip(native_events.COLUMNS, row, strict=True))


def rejected(pb2_record: LogRecord) -> tuple[str | None, str]:
    batch = event_rows_from_logs_request(logs_request(pb2_record), context())
    assert batch.rows == []
    (only,) = batch.rejections
    return only.field, only.reason


class TestFixedColumns:
    def test_rows_have_the_native_event_columns(self) -> None:
        """A row is a tuple in ``core.ingest.events.COLUMNS`` order."""
        batch = event_rows_from_logs_request(logs_request(record()), context())
        assert len(batch.rows[0]) == len(native_events.COLUMNS)

    def test_every_log_is_an_otlp_sourced_log_event_with_a_new_id(self) -> None:
        """category is "log", source is "otlp", and event_id comes from the context's id generator."""
        row = one()
        assert (row["category"], row["source"], row["event_id"]) == ("log", "otlp", uuid.UUID(int=1))
        assert (row["duration_ms"], row["ip_address"]) == (None, None)

    def test_resource_gives_environment_and_version(self) -> None:
        """deployment.environment.name is environment and service.version is app_version."""
        row = one(resource={"service.name": "web", "deployment.environment": "prod", "service.version": "2.4.1"})
        assert (row["environment"], row["app_version"]) == ("prod", "2.4.1")


class TestNameAndType:
    @pytest.mark.parametrize(
        ("pb2_record", "expected"),
        [
            (record("checkout failed", event_name="checkout.failed"), "checkout.failed"),
            (record("checkout failed", attributes={"event.name": "payment.declined"}), "payment.declined"),
            (record("checkout failed", event_name="a", attributes={"event.name": "b"}), "a"),
            (record("  user signed in  "), "user signed in"),
            (record("x" * 200), "x" * 200),
            (record("x" * 201), "log"),
            (record({"msg": "structured"}), "log"),
            (record(None), "log"),
            (record(""), "log"),
            (record("body", attributes={"event.name": "e" * 300}), "e" * 200),
        ],
    )
    def test_event_name_is_the_event_then_a_short_body_then_log(self, pb2_record: LogRecord, expected: str) -> None:
        """The record's event_name, else its event.name attribute, else a string body of at most 200 characters, else "log"."""
        assert one(pb2_record)["event_name"] == expected

    @pytest.mark.parametrize(
        ("severity_number", "severity_text", "event_type"),
        [
            (SeverityNumber.SEVERITY_NUMBER_TRACE, "TRACE", "system_event"),
            (SeverityNumber.SEVERITY_NUMBER_INFO, "INFO", "system_event"),
            (SeverityNumber.SEVERITY_NUMBER_WARN4, "WARN", "system_event"),
            (SeverityNumber.SEVERITY_NUMBER_ERROR, "ERROR", "error_event"),
            (SeverityNumber.SEVERITY_NUMBER_ERROR3, "", "error_event"),
            (SeverityNumber.SEVERITY_NUMBER_FATAL4, "FATAL", "error_event"),
            (SeverityNumber.SEVERITY_NUMBER_UNSPECIFIED, "error", "error_event"),
            (SeverityNumber.SEVERITY_NUMBER_UNSPECIFIED, "Critical", "error_event"),
            (SeverityNumber.SEVERITY_NUMBER_UNSPECIFIED, "notice", "system_event"),
            (SeverityNumber.SEVERITY_NUMBER_INFO, "ERROR", "system_event"),
        ],
    )
    def test_error_and_worse_is_an_error_event(self, severity_number: int, severity_text: str, event_type: str) -> None:
        """Severity ERROR (17) and above is an error_event, else a system_event; without a number, an error-like text decides."""
        assert one(record(severity_number=severity_number, severity_text=severity_text))["event_type"] == event_type


class TestPayload:
    def test_the_payload_keeps_body_severity_attributes_service_and_scope(self) -> None:
        """The payload holds the converted body, the severity, the attributes, the service and the logger scope."""
        pb2_record = record(
            {"order": 17, "items": ["a", "b"]},
            severity_number=SeverityNumber.SEVERITY_NUMBER_WARN,
            severity_text="WARNING",
            attributes={"code.function": "pay", "retry": True},
        )
        payload = json.loads(one(pb2_record, scope="shop.payments")["payload"])
        assert payload == {
            "body": {"order": 17, "items": ["a", "b"]},
            "severity_text": "WARNING",
            "severity_number": 13,
            "attributes": {"code.function": "pay", "retry": True},
            "service_name": "checkout",
            "scope": "shop.payments",
        }

    def test_an_unnamed_service_and_unset_severity_are_explicit(self) -> None:
        """Without service.name the payload says unknown_service; an empty severity text is null."""
        payload = json.loads(one(record(b"\x01", severity_text="", severity_number=0), resource={})["payload"])
        assert (payload["service_name"], payload["severity_text"], payload["severity_number"], payload["body"]) == (
            "unknown_service",
            None,
            0,
            "AQ==",
        )

    def test_a_payload_too_large_to_store_is_rejected(self) -> None:
        """A body over the native 64 KiB JSON limit rejects the record."""
        field, reason = rejected(record("x" * 70_000))
        assert field == "payload"
        assert "at most 65536" in reason


class TestTraceContext:
    def test_trace_and_span_ids_are_lowercase_hex(self) -> None:
        """The record's trace and span ids are stored as hex, tying the log to its span."""
        row = one(record(trace_id=TRACE_ID, span_id=SPAN_ID))
        assert (row["trace_id"], row["span_id"]) == (TRACE_ID.hex(), SPAN_ID.hex())

    @pytest.mark.parametrize("fields", [{}, {"trace_id": bytes(16), "span_id": bytes(8)}])
    def test_absent_or_zero_ids_are_null(self, fields: dict[str, bytes]) -> None:
        """A record outside any span (empty or all-zero ids) has NULL trace_id and span_id."""
        row = one(record(**fields))
        assert (row["trace_id"], row["span_id"]) == (None, None)

    @pytest.mark.parametrize(("fields", "field"), [({"trace_id": b"\x01\x02"}, "trace_id"), ({"span_id": TRACE_ID}, "span_id")])
    def test_an_id_of_the_wrong_length_is_rejected(self, fields: dict[str, bytes], field: str) -> None:
        """An id of the wrong length rejects the record, naming the field."""
        assert rejected(record(**fields))[0] == field


class TestTime:
    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"time_unix_nano": ns(NOW - timedelta(minutes=3))}, NOW - timedelta(minutes=3)),
            ({"time_unix_nano": 0, "observed_time_unix_nano": ns(NOW - timedelta(minutes=4))}, NOW - timedelta(minutes=4)),
            ({"time_unix_nano": 0}, NOW),
        ],
    )
    def test_time_is_the_event_time_then_the_observed_time_then_now(self, fields: dict[str, int], expected: Any) -> None:
        """event_timestamp is time_unix_nano, else observed_time_unix_nano, else now."""
        assert one(record(**fields))["event_timestamp"] == expected

    def test_a_record_in_the_future_is_rejected(self) -> None:
        """A record later than the accepted window is rejected."""
        field, reason = rejected(record(time_unix_nano=ns(NOW + timedelta(days=1))))
        assert field == "time_unix_nano"
        assert "in the future" in reason


class TestAttribution:
    def test_user_session_and_user_agent_come_from_attributes(self) -> None:
        """enduser.id / user.id is user_id; session.id and user_agent.original fill their columns."""
        row = one(record(attributes={"user.id": "u-5", "session.id": "s-1", "user_agent.original": "Mozilla/5.0"}))
        assert (row["user_id"], row["session_id"], row["user_agent"]) == ("u-5", "s-1", "Mozilla/5.0")

    def test_license_follows_the_key(self) -> None:
        """A license key's rows are its own; an admin key's rows take fernando.license_id from the data."""
        pb2_record = record(attributes={"fernando.license_id": 4})
        assert one(pb2_record)["license_id"] == 7
        assert one(pb2_record, is_admin=True)["license_id"] == 4


class TestPartialSuccess:
    def test_one_bad_record_is_rejected_and_the_others_kept(self) -> None:
        """A bad record among good ones is rejected alone, with a message naming it."""
        batch = event_rows_from_logs_request(logs_request(record(), record(span_id=b"\x01"), record()), context())
        assert (len(batch.rows), batch.rejections_count, batch.indexes) == (2, 1, [0, 2])
        assert batch.message.startswith("rejected 1 of 3 log records: log record 1: span_id: must be 16 hexadecimal characters")
