"""``core.resource_keys``: the content hash that keys a stored resource."""

from __future__ import annotations

import pytest

from fernando_telemetry.core.resource_keys import canonical_json, resource_key


class TestResourceKey:
    def test_the_order_and_spacing_of_the_keys_sent_do_not_matter(self) -> None:
        """One content, one key: the JSON is canonical (sorted keys, no spaces) before it is hashed."""
        assert resource_key(7, '{"b": 2, "a": {"y": 1, "x": 0}}') == resource_key(7, '{"a":{"x":0,"y":1},"b":2}')

    @pytest.mark.parametrize(
        ("left", "right"),
        [
            ((7, '{"a": 1}'), (8, '{"a": 1}')),  # another license
            ((7, '{"a": 1}'), (None, '{"a": 1}')),  # rows of no license
            ((7, '{"a": 1}'), (7, '{"a": "1"}')),  # another value type
            ((1, '{"a": 1}'), (11, '{"a": 1}')),  # license digits never run into the JSON
        ],
    )
    def test_another_license_or_content_is_another_key(self, left: tuple[int | None, str], right: tuple[int | None, str]) -> None:
        """The license is hashed with the attributes: two licenses sending the same resource never share a row."""
        assert resource_key(*left) != resource_key(*right)

    def test_canonical_json_keeps_unicode_as_text(self) -> None:
        """Non-ASCII stays as it is (no escapes), so one text has one form."""
        assert canonical_json('{"z": "ü", "a": [1, 2]}') == '{"a":[1,2],"z":"ü"}'
