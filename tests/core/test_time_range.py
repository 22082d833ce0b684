"""Read query time ranges: ISO 8601 parsing to aware UTC, defaults from ``now``, order and length checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fernando_telemetry.core import time_range
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.core.time_range import TimeRange

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class TestParseInstant:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2026-11-28T09:30:00Z", datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
            ("2026-11-28T09:30:00.250+00:00", datetime(2026, 11, 28, 9, 30, 0, 250000, tzinfo=UTC)),
            ("2026-11-28T10:30:00+01:00", datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
            ("2026-11-28T10:30:00 01:00", datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
            ("2026-11-28T10:30 0100", datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
            ("2026-11-28T09:30:00", datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
            ("2026-11-28 09:30", datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
            ("2026-11-28", datetime(2026, 11, 28, tzinfo=UTC)),
            (" 2026-11-28T09:30:00-03:00 ", datetime(2026, 11, 28, 12, 30, tzinfo=UTC)),
        ],
    )
    def test_iso_instants_become_aware_utc(self, text: str, expected: datetime) -> None:
        """Offsets are honoured, no offset means UTC, and a '+' turned into a space by URL decoding still reads as '+'."""
        parsed = time_range.parse_instant(text, parameter="from")
        assert parsed == expected and parsed.utcoffset() == timedelta(0)

    @pytest.mark.parametrize("text", ["", "yesterday", "1764322200", "2026-13-01", "2026-11-28T25:00", "now-1h"])
    def test_anything_else_is_a_400_naming_the_parameter(self, text: str) -> None:
        """Unparseable text is InvalidInput whose message and details name the parameter."""
        with pytest.raises(InvalidInput, match=r"^to: .* is not an ISO 8601 timestamp") as raised:
            time_range.parse_instant(text, parameter="to")
        assert raised.value.details == [{"field": "to", "reason": "not an ISO 8601 timestamp"}]

    def test_absent_is_none(self) -> None:
        """No parameter, no instant."""
        assert time_range.parse_instant(None, parameter="from") is None


class TestResolve:
    def test_defaults_are_now_and_the_default_span_before_it(self) -> None:
        """Without from and to, the range is the default span ending now."""
        assert time_range.resolve(start=None, end=None, now=NOW, default_span=timedelta(hours=24)) == TimeRange(
            NOW - timedelta(hours=24), NOW
        )

    def test_a_given_end_moves_the_default_start_with_it(self) -> None:
        """Only to: from is the default span before to, not before now."""
        end = NOW - timedelta(days=3)
        assert time_range.resolve(start=None, end=end, now=NOW, default_span=timedelta(hours=1)).start == end - timedelta(hours=1)

    def test_a_given_start_keeps_end_at_now(self) -> None:
        """Only from: to is now."""
        start = NOW - timedelta(days=2)
        assert time_range.resolve(start=start, end=None, now=NOW, default_span=timedelta(hours=1)) == TimeRange(start, NOW)

    @pytest.mark.parametrize("gap", [timedelta(0), timedelta(seconds=-1), timedelta(days=-3)])
    def test_to_must_be_after_from(self, gap: timedelta) -> None:
        """An empty or reversed range is a 400 naming both bounds."""
        with pytest.raises(InvalidInput, match=r"^to \(.*\) must be after from \(.*\)$"):
            time_range.resolve(start=NOW, end=NOW + gap, now=NOW, default_span=timedelta(hours=1))

    def test_the_maximum_span_is_inclusive(self) -> None:
        """Exactly the maximum passes; a microsecond more is a 400 that says how long a range may be."""
        start = NOW - timedelta(days=31)
        assert time_range.resolve(start=start, end=NOW, now=NOW, default_span=timedelta(hours=1), max_span=timedelta(days=31))
        with pytest.raises(InvalidInput, match="longer than the 31 days one query may read; narrow from/to"):
            time_range.resolve(
                start=start - timedelta(microseconds=1),
                end=NOW,
                now=NOW,
                default_span=timedelta(hours=1),
                max_span=timedelta(days=31),
            )

    def test_without_a_maximum_any_length_passes(self) -> None:
        """max_span None means no length limit."""
        assert time_range.resolve(
            start=NOW - timedelta(days=3650), end=NOW, now=NOW, default_span=timedelta(hours=1)
        ).span == timedelta(days=3650)
