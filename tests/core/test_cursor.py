"""Keyset cursors: round trips, URL safety, and a clear InvalidInput for anything not issued by us."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from fernando_telemetry.core import cursor as cursors
from fernando_telemetry.core.cursor import Cursor
from fernando_telemetry.core.errors import InvalidInput

AT = datetime(2026, 11, 28, 9, 30, 0, 123456, tzinfo=UTC)
KEY = cursors.derive_key("cursor test secret")
DIGEST = cursors.query_digest({"equals": {"event_type": "error_event"}, "license_id": 7})


def a_cursor(**changes: object) -> Cursor:
    values: dict[str, object] = {
        "at": AT,
        "key": "0192f3a4-5b6c-7d8e-9f00-112233445566",
        "range_start": AT - timedelta(days=1),
        "query": DIGEST,
    }
    values.update(changes)
    return Cursor(**values)  # type: ignore[arg-type]


class TestRoundTrip:
    @pytest.mark.parametrize(
        "at",
        [AT, datetime(1970, 1, 1, tzinfo=UTC), datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
    )
    def test_decode_gives_back_what_was_encoded_to_the_microsecond(self, at: datetime) -> None:
        """Position, range start and query digest survive encoding unchanged."""
        original = a_cursor(at=at, range_start=at - timedelta(hours=3))
        assert cursors.decode(cursors.encode(original, key=KEY), query=DIGEST, key=KEY) == original

    def test_times_in_other_offsets_come_back_as_the_same_instant_in_utc(self) -> None:
        """A cursor made from a +02:00 time decodes to the equal UTC instant."""
        from datetime import timezone

        at = datetime(2026, 11, 28, 11, 30, tzinfo=timezone(timedelta(hours=2)))
        decoded = cursors.decode(cursors.encode(a_cursor(at=at), key=KEY), query=DIGEST, key=KEY)
        assert decoded.at == at and decoded.at.utcoffset() == timedelta(0)

    def test_tokens_are_url_safe_and_unpadded(self) -> None:
        """Tokens use only the base64url alphabet, so they go into a query string as they are."""
        for index in range(50):
            token = cursors.encode(a_cursor(key=str(uuid.uuid4()), at=AT + timedelta(microseconds=index)), key=KEY)
            assert re.fullmatch(r"[A-Za-z0-9_-]+", token)

    def test_naive_times_are_refused_when_building_a_cursor(self) -> None:
        """A cursor cannot hold a time without a zone."""
        with pytest.raises(ValueError):
            a_cursor(at=datetime(2026, 11, 28))


class TestGarbage:
    @pytest.mark.parametrize(
        "token",
        ["", "   ", "abc", "not a cursor!", "%%%%", "x" * 2000, "é" * 10, base64.urlsafe_b64encode(b"[1,2,3]").decode()],
    )
    def test_tokens_we_did_not_issue_are_invalid_input_naming_the_parameter(self, token: str) -> None:
        """Empty, short, non-base64, oversized, non-ASCII and checksum-less tokens are a 400 naming ``cursor``."""
        with pytest.raises(InvalidInput) as raised:
            cursors.decode(token, query=DIGEST, key=KEY)
        assert raised.value.message.startswith("cursor: not a cursor this API issued")
        assert raised.value.details[0]["field"] == "cursor"

    def test_a_truncated_token_is_refused(self) -> None:
        """Losing the end of a token (a bad copy and paste) is detected."""
        token = cursors.encode(a_cursor(), key=KEY)
        for cut in (1, 2, 5, len(token) // 2):
            with pytest.raises(InvalidInput, match="not a cursor this API issued"):
                cursors.decode(token[:-cut], query=DIGEST, key=KEY)

    def test_an_edited_token_is_refused(self) -> None:
        """Changing any one character of a token makes its checksum fail."""
        token = cursors.encode(a_cursor(), key=KEY)
        for index in range(len(token)):
            replacement = "A" if token[index] != "A" else "B"
            edited = token[:index] + replacement + token[index + 1 :]
            with pytest.raises(InvalidInput):
                cursors.decode(edited, query=DIGEST, key=KEY)

    def test_a_cursor_of_a_query_with_other_filters_is_refused_with_its_own_message(self) -> None:
        """A genuine cursor handed to another query says so, rather than silently reading from its position."""
        token = cursors.encode(a_cursor(), key=KEY)
        other = cursors.query_digest({"equals": {"event_type": "user_action"}, "license_id": 7})
        with pytest.raises(InvalidInput, match="belongs to a query with other filters"):
            cursors.decode(token, query=other, key=KEY)

    def test_a_cursor_signed_with_another_installations_key_is_refused(self) -> None:
        """A token forged with another key (the source's constant, another server's secret) is a 400."""
        forged = cursors.encode(a_cursor(at=datetime(9999, 12, 31, tzinfo=UTC)), key=cursors.derive_key("another secret"))
        with pytest.raises(InvalidInput, match="signature mismatch"):
            cursors.decode(forged, query=DIGEST, key=KEY)

    def test_the_parameter_name_is_the_callers(self) -> None:
        """Messages name the parameter the caller passes in (for endpoints that call it something else)."""
        with pytest.raises(InvalidInput, match=r"^page_token: "):
            cursors.decode("garbage", query=DIGEST, key=KEY, parameter="page_token")


class TestQueryDigest:
    def test_equal_filters_in_any_order_give_the_same_digest(self) -> None:
        """Key order does not matter; values do."""
        assert cursors.query_digest({"a": 1, "b": {"x": 1, "y": 2}}) == cursors.query_digest({"b": {"y": 2, "x": 1}, "a": 1})
        assert cursors.query_digest({"a": 1}) != cursors.query_digest({"a": 2})
        assert cursors.query_digest({"license_id": None}) != cursors.query_digest({"license_id": 1})
