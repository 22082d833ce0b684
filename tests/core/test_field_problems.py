"""``field_problem`` and ``FieldProblems``: the one shape of a field's problem in ``details``, and the one
collector that raises every problem of an input at once."""

from __future__ import annotations

import pytest

from fernando_telemetry.core.errors import FieldProblems, InvalidInput, field_problem


class TestFieldProblem:
    @pytest.mark.parametrize(
        ("args", "extra", "expected"),
        [
            (("limit", "not in 1..500"), {}, {"field": "limit", "reason": "not in 1..500"}),
            (
                ("type", "unknown"),
                {"allowed": ("email", "slack")},
                {"field": "type", "reason": "unknown", "allowed": ["email", "slack"]},
            ),
            (("x", "bad"), {"allowed": None, "example": None}, {"field": "x", "reason": "bad"}),
            (("name", "in use"), {"rules": ["a"]}, {"field": "name", "reason": "in use", "rules": ["a"]}),
        ],
    )
    def test_shape(self, args: tuple[str, str], extra: dict, expected: dict) -> None:
        """Field and reason first, hints after; None hints left out; ``allowed`` always a list."""
        assert field_problem(*args, **extra) == expected


class TestFieldProblems:
    def test_nothing_collected_raises_nothing(self) -> None:
        """An input without problems passes."""
        problems = FieldProblems()
        problems.raise_if_any("the rule")
        assert not problems and len(problems) == 0

    def test_counted_message_lists_every_problem(self) -> None:
        """Every problem is in ``details`` and in the message, with their count."""
        problems = FieldProblems()
        problems.add("name", "is required")
        problems.add("severity", "is not a severity", allowed=["info", "critical"])
        with pytest.raises(InvalidInput) as caught:
            problems.raise_if_any("the rule")
        assert caught.value.message == "the rule has 2 problems: name is required; severity is not a severity"
        assert caught.value.details == [
            {"field": "name", "reason": "is required"},
            {"field": "severity", "reason": "is not a severity", "allowed": ["info", "critical"]},
        ]

    def test_uncounted_message_names_short_allowed_lists(self) -> None:
        """The listing form names the allowed values when there are at most six."""
        problems = FieldProblems()
        problems.add("type", "must be one of the channel types", allowed=("email", "slack", "webhook"))
        problems.add("to", "is required")
        with pytest.raises(InvalidInput, match=r"^the channel is not valid: type must be one of the channel types "
                           r"\(email, slack, webhook\); to is required$"):  # fmt: skip
            problems.raise_if_any("the channel is not valid", counted=False)

    @pytest.mark.parametrize(("field", "expected"), [("threshold", "condition_config.threshold"), ("", "condition_config")])
    def test_prefix_names_the_part_checked(self, field: str, expected: str) -> None:
        """Fields of a sub-document are reported under its name; the document itself by its name alone."""
        problems = FieldProblems("condition_config")
        problems.add(field, "is wrong")
        assert [detail["field"] for detail in problems] == [expected]
        with pytest.raises(InvalidInput, match=r"^the condition has 1 problem: "):
            problems.raise_if_any("the condition")
