"""OTLP scalar translations: AnyValue to JSON-ready Python, unix nanos to datetimes, text to column widths."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from fernando_telemetry.core.otlp.resources import resource_fields
from fernando_telemetry.core.otlp.values import attribute_dict, clipped, python_value, unix_nano_datetime
from tests.core.otlp.support import any_value, key_values


class TestPythonValue:
    @pytest.mark.parametrize(
        ("pb2_any_value", "expected"),
        [
            (AnyValue(string_value="text"), "text"),
            (AnyValue(string_value=""), ""),
            (AnyValue(bool_value=False), False),
            (AnyValue(int_value=-(2**63)), -(2**63)),
            (AnyValue(double_value=1.5), 1.5),
            (AnyValue(double_value=math.nan), "NaN"),
            (AnyValue(double_value=math.inf), "Infinity"),
            (AnyValue(double_value=-math.inf), "-Infinity"),
            (AnyValue(bytes_value=b"\x00\x01\xfe"), "AAH+"),
            (any_value([1, "a", [True]]), [1, "a", [True]]),
            (any_value({"k": {"n": 1.0}, "l": []}), {"k": {"n": 1.0}, "l": []}),
            (AnyValue(), None),
            (AnyValue(string_value="nul\x00inside"), "nul\ufffdinside"),
        ],
    )
    def test_each_kind_becomes_json_ready_python(self, pb2_any_value: AnyValue, expected: Any) -> None:
        """Every AnyValue kind converts to a value ``json.dumps`` writes as strict JSON that PostgreSQL can store."""
        value = python_value(pb2_any_value)
        assert value == expected
        assert "\\u0000" not in json.dumps(value, allow_nan=False)

    def test_a_repeated_key_keeps_its_last_value(self) -> None:
        """Attribute lists with a repeated key keep the last value, as SDKs overwrite attributes."""
        pb2_key_values = [KeyValue(key="k", value=AnyValue(int_value=1)), KeyValue(key="k", value=AnyValue(int_value=2))]
        assert attribute_dict(pb2_key_values) == {"k": 2}

    def test_nul_in_keys_is_replaced(self) -> None:
        """A NUL in an attribute key is replaced too, since jsonb cannot store it anywhere."""
        assert attribute_dict(key_values({"a\x00b": 1})) == {"a\ufffdb": 1}


class TestTimeAndText:
    @pytest.mark.parametrize(
        ("unix_nano", "expected"),
        [
            (0, datetime(1970, 1, 1, tzinfo=UTC)),
            (1_795_867_200_123_456_789, datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)),
            (2**64 - 1, datetime(2554, 7, 21, 23, 34, 33, 709551, tzinfo=UTC)),
        ],
    )
    def test_unix_nanos_become_aware_utc_datetimes(self, unix_nano: int, expected: datetime) -> None:
        """Nanoseconds since the epoch become UTC datetimes truncated to the microsecond, up to the uint64 maximum."""
        assert unix_nano_datetime(unix_nano) == expected

    @pytest.mark.parametrize(
        ("value", "width", "expected"),
        [("abc", 5, "abc"), ("abcdef", 3, "abc"), ("", 3, None), (None, 3, None), ("a\x00", 5, "a\ufffd")],
    )
    def test_clipped_cuts_to_the_column_width(self, value: str | None, width: int, expected: str | None) -> None:
        """Text is cut to the column width, empty text is NULL, and NUL is replaced."""
        assert clipped(value, width) == expected


class TestResourceFields:
    def test_long_values_are_cut_to_their_columns(self) -> None:
        """Resource values longer than their columns are cut: service 100, host 255, environment 32, version 64."""
        pb2_resource = Resource(
            attributes=key_values(
                {
                    "service.name": "s" * 150,
                    "host.name": "h" * 300,
                    "deployment.environment.name": "e" * 40,
                    "service.version": "v" * 70,
                }
            )
        )
        fields = resource_fields(pb2_resource)
        assert (
            len(fields.service_name),
            len(fields.host_name or ""),
            len(fields.environment or ""),
            len(fields.app_version or ""),
        ) == (
            100,
            255,
            32,
            64,
        )
