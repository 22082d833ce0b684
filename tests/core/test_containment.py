"""Containment filters from query parameters: the value rule, literal keys, merging, and the limits."""

from __future__ import annotations

from typing import Any

import pytest

from fernando_telemetry.core import containment
from fernando_telemetry.core.errors import InvalidInput


class TestValueAlternatives:
    @pytest.mark.parametrize(
        ("text", "alternatives"),
        [
            ("pro", ["pro"]),
            ("3", [3, "3"]),
            ("-2.5", [-2.5, "-2.5"]),
            ("true", [True, "true"]),
            ("false", [False, "false"]),
            ("null", [None, "null"]),
            ('{"plan": "pro"}', [{"plan": "pro"}, '{"plan": "pro"}']),
            ('["a"]', [["a"], '["a"]']),
            ('"quoted"', ['"quoted"']),
            ("", [""]),
            ("True", ["True"]),
            ("NaN", ["NaN"]),
            ("Infinity", ["Infinity"]),
            ("1e400", ["1e400"]),
            ("[1e400]", ["[1e400]"]),
            ("3 apples", ["3 apples"]),
            ('["\\u0000"]', ['["\\u0000"]']),
            ('{"a": "x\\u0000"}', ['{"a": "x\\u0000"}']),
        ],
    )
    def test_non_string_json_matches_the_value_or_the_text_anything_else_the_text(
        self, text: str, alternatives: list[Any]
    ) -> None:
        """Numbers, booleans, null, objects and arrays give two alternatives; other text (and what PostgreSQL
        cannot store as JSON, like NaN, 1e400 or an escaped NUL) only itself."""
        assert containment.value_alternatives(text) == alternatives


class TestConditions:
    def test_string_values_merge_into_one_containment(self) -> None:
        """Plain values of different keys become one document, the one-index-probe case."""
        pairs = [("payload.plan", "pro"), ("payload.country", "PT")]
        assert containment.conditions("payload.", pairs) == [({"plan": "pro", "country": "PT"},)]

    def test_json_values_get_their_own_or_condition(self) -> None:
        """A number is its own condition with the number and the string as alternatives."""
        pairs = [("payload.plan", "pro"), ("payload.seats", "3")]
        assert containment.conditions("payload.", pairs) == [({"plan": "pro"},), ({"seats": 3}, {"seats": "3"})]

    def test_a_repeated_key_is_anded_not_overwritten(self) -> None:
        """Two values of one key are two conditions (both must hold), e.g. two elements of an array."""
        pairs = [("payload.tags", '["a"]'), ("payload.tags", '["b"]'), ("payload.plan", "x"), ("payload.plan", "y")]
        assert containment.conditions("payload.", pairs) == [
            ({"plan": "x"},),
            ({"tags": ["a"]}, {"tags": '["a"]'}),
            ({"tags": ["b"]}, {"tags": '["b"]'}),
            ({"plan": "y"},),
        ]

    def test_keys_are_literal_dots_included(self) -> None:
        """payload.http.route is the top-level key "http.route", not a path."""
        assert containment.conditions("payload.", [("payload.http.route", "/x")]) == [({"http.route": "/x"},)]

    def test_other_parameters_are_ignored_and_none_gives_no_condition(self) -> None:
        """Only names with the prefix count."""
        assert containment.conditions("labels.", [("payload.a", "1"), ("limit", "5")]) == []

    @pytest.mark.parametrize("name", ["payload.", "payload." + "k" * 201])
    def test_a_missing_or_overlong_key_is_a_400(self, name: str) -> None:
        """The parameter must name a key of 1 to 200 characters."""
        with pytest.raises(InvalidInput, match="name a key after 'payload.'"):
            containment.conditions("payload.", [(name, "v")])

    def test_an_overlong_value_is_a_400(self) -> None:
        """Values over 2,000 characters are refused."""
        with pytest.raises(InvalidInput, match="over 2000 characters"):
            containment.conditions("payload.", [("payload.a", "v" * 2001)])

    def test_at_most_twenty_filters(self) -> None:
        """Twenty filters pass, twenty-one are a 400."""
        pairs = [(f"labels.k{index}", "v") for index in range(containment.MAX_CONDITIONS)]
        assert len(containment.conditions("labels.", pairs)[0][0]) == containment.MAX_CONDITIONS
        with pytest.raises(InvalidInput, match="at most 20 labels.<key> filters"):
            containment.conditions("labels.", [*pairs, ("labels.more", "v")])
