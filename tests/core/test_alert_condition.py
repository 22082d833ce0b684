"""The alert condition language: defaults, normalisation, every validation error with its field, fingerprints."""

from __future__ import annotations

from typing import Any

import pytest

from fernando_telemetry.core.alert_condition import Condition, Source, fingerprint, parse_condition
from fernando_telemetry.core.errors import InvalidInput

SEED = {"metric": "cpu_usage", "operator": ">", "threshold": 80}


def problems(config: Any) -> dict[str, dict[str, Any]]:
    """The details of the InvalidInput ``parse_condition`` raises, by field."""
    with pytest.raises(InvalidInput) as caught:
        parse_condition(config)
    return {detail["field"]: detail for detail in caught.value.details}


class TestDefaults:
    def test_seed_example_is_valid_as_written(self) -> None:
        """The seed's High CPU Usage condition parses, with system_metrics, avg over 5 minutes, and no for."""
        condition = parse_condition(SEED)
        assert condition.source is Source.SYSTEM_METRICS
        assert (condition.metric, condition.aggregation, condition.operator, condition.threshold) == (
            "cpu_usage",
            "avg",
            ">",
            80.0,
        )
        assert (condition.window_minutes, condition.for_minutes, condition.keep_firing_minutes) == (5, 0, 0)
        assert (condition.min_points, condition.no_data, condition.group_by, dict(condition.filters)) == (1, "ok", (), {})

    def test_to_config_fills_every_default(self) -> None:
        """The stored form names every field of the language."""
        assert parse_condition(SEED).to_config() == {
            "source": "system_metrics",
            "metric": "cpu_usage",
            "filters": {},
            "aggregation": "avg",
            "operator": ">",
            "threshold": 80.0,
            "window_minutes": 5,
            "group_by": [],
            "for_minutes": 0,
            "keep_firing_minutes": 0,
            "min_points": 1,
            "no_data": "ok",
        }

    @pytest.mark.parametrize(
        "config",
        [
            SEED,
            {"source": "telemetry_events", "filters": {"event_type": "error_event"}, "operator": ">", "threshold": 10},
            {"source": "telemetry_events", "metric": "payload.amount", "aggregation": "p95", "threshold": 100},
            {
                "source": "traces",
                "aggregation": "error_rate",
                "filters": {
                    "service_name": "api",
                    "http_status_code": {"gte": 500, "lt": 600},
                    "attributes.http.route": ["/a", "/b"],
                },
                "group_by": ["operation_name", "attributes.region"],
                "operator": ">=",
                "threshold": 0.05,
                "for_minutes": 3,
                "keep_firing_minutes": 2,
                "min_points": 20,
                "no_data": "keep",
            },
            {
                "source": "business_metrics",
                "metric": "daily_revenue",
                "operator": "<",
                "threshold": 100,
                "filters": {"dimensions.plan": "pro"},
            },
        ],
    )
    def test_round_trip(self, config: dict[str, Any]) -> None:
        """Parsing the normalised form gives the same condition back."""
        condition = parse_condition(config)
        assert parse_condition(condition.to_config()) == condition

    def test_per_source_defaults(self) -> None:
        """Events without a metric count; traces measure duration_ms; business metrics look back a day."""
        events = parse_condition({"source": "telemetry_events", "threshold": 1})
        assert (events.metric, events.aggregation, events.counts_rows, events.empty_value) == (None, "count", True, 0.0)
        traces = parse_condition({"source": "traces", "threshold": 1})
        assert (traces.metric, traces.aggregation, traces.counts_rows, traces.empty_value) == ("duration_ms", "avg", False, None)
        business = parse_condition({"source": "business_metrics", "metric": "mrr", "threshold": 1})
        assert business.window_minutes == 1440

    def test_filter_shorthands_normalise(self) -> None:
        """A scalar is eq, a list is in; the stored form keeps the shorthand."""
        condition = parse_condition({**SEED, "filters": {"service_name": "api", "host_name": ["a", "b"], "labels.x": {"ne": 1}}})
        assert dict(condition.filters) == {"service_name": {"eq": "api"}, "host_name": {"in": ["a", "b"]}, "labels.x": {"ne": 1}}
        assert condition.to_config()["filters"] == {"service_name": "api", "host_name": ["a", "b"], "labels.x": {"ne": 1}}

    def test_whole_floats_are_whole_numbers(self) -> None:
        """5.0 minutes is accepted as 5 (JSON has one number type)."""
        assert parse_condition({**SEED, "window_minutes": 5.0}).window_minutes == 5


class TestHolds:
    @pytest.mark.parametrize(
        ("operator", "value", "expected"),
        [
            (">", 81, True),
            (">", 80, False),
            (">=", 80, True),
            ("<", 79, True),
            ("<", 80, False),
            ("<=", 80, True),
            ("==", 80, True),
            ("==", 80.5, False),
            ("!=", 80.5, True),
            ("!=", 80, False),
        ],
    )
    def test_operators(self, operator: str, value: float, expected: bool) -> None:
        """Each operator compares the value with the threshold 80."""
        assert parse_condition({**SEED, "operator": operator}).holds(value) is expected

    def test_verdict_needs_min_points(self) -> None:
        """Fewer rows than min_points is no data (None), enough rows is judged."""
        condition = parse_condition({**SEED, "min_points": 3})
        assert condition.verdict(90.0, 2) is None
        assert condition.verdict(90.0, 3) is True
        assert condition.verdict(None, 10) is None

    def test_counted_rows_ignore_min_points(self) -> None:
        """A count of events is a real number even over an empty window."""
        condition = parse_condition({"source": "telemetry_events", "operator": "<", "threshold": 1, "min_points": 5})
        assert condition.verdict(0.0, 0) is True


class TestErrors:
    def test_not_an_object(self) -> None:
        """A list is refused at the top level with an example."""
        found = problems([1, 2])
        assert found["condition_config"]["reason"] == "must be a JSON object"
        assert "example" in found["condition_config"]

    def test_every_problem_is_listed_at_once(self) -> None:
        """Five wrong fields give five details, each naming its field, why, and what is allowed."""
        found = problems(
            {"metric": "cpu", "aggregation": "median", "operator": "=>", "threshold": "high", "no_data": "maybe", "window": 5}
        )
        assert set(found) == {
            "condition_config.aggregation",
            "condition_config.operator",
            "condition_config.threshold",
            "condition_config.no_data",
            "condition_config.window",
        }
        assert found["condition_config.operator"]["allowed"] == [">", ">=", "<", "<=", "==", "!="]
        assert "p95" in found["condition_config.aggregation"]["allowed"]
        assert found["condition_config.no_data"]["allowed"] == ["ok", "alert", "keep"]
        assert "window_minutes" in found["condition_config.window"]["allowed"]

    def test_message_names_the_fields(self) -> None:
        """The one-line message lists each field so a CLI user sees them without the details."""
        with pytest.raises(InvalidInput) as caught:
            parse_condition({"metric": "cpu", "operator": "=>"})
        assert "condition_config.operator" in caught.value.message and "condition_config.threshold" in caught.value.message

    def test_field_prefix(self) -> None:
        """The caller picks the prefix of the field paths."""
        with pytest.raises(InvalidInput) as caught:
            parse_condition({"metric": "cpu"}, field="rule.condition_config")
        assert caught.value.details[0]["field"] == "rule.condition_config.threshold"

    @pytest.mark.parametrize(
        ("config", "field", "reason_part"),
        [
            ({"source": "logs", "threshold": 1}, "source", "telemetry sources"),
            ({"threshold": 1}, "metric", "is required for system_metrics"),
            ({"source": "business_metrics", "threshold": 1}, "metric", "is required for business_metrics"),
            ({"metric": "", "threshold": 1}, "metric", "non-empty"),
            ({"metric": 5, "threshold": 1}, "metric", "non-empty string"),
            ({"source": "traces", "metric": "cpu", "threshold": 1}, "metric", "duration_ms"),
            ({"source": "telemetry_events", "metric": "checkout", "threshold": 1}, "metric", "filters.event_name"),
            ({**SEED, "aggregation": "error_rate"}, "aggregation", "traces source only"),
            ({"source": "telemetry_events", "aggregation": "error_rate", "threshold": 1}, "aggregation", "traces source only"),
            ({"source": "business_metrics", "metric": "m", "aggregation": "rate", "threshold": 1}, "aggregation", "per period"),
            ({"source": "telemetry_events", "aggregation": "avg", "threshold": 1}, "aggregation", "needs a numeric field"),
            ({**SEED, "threshold": None}, "threshold", "is required"),
            ({**SEED, "threshold": True}, "threshold", "finite number"),
            ({**SEED, "threshold": float("nan")}, "threshold", "finite number"),
            ({**SEED, "threshold": 10**400}, "threshold", "finite number"),
            ({**SEED, "filters": {"labels.n": 10**400}}, "filters.labels.n", "a string, a finite number or a boolean"),
            (
                {"source": "traces", "threshold": 1, "filters": {"http_status_code": {"gt": 10**400}}},
                "filters.http_status_code.gt",
                "finite number",
            ),
            ({**SEED, "window_minutes": 0}, "window_minutes", "from 1 to 10080"),
            ({**SEED, "window_minutes": 10081}, "window_minutes", "from 1 to 10080"),
            ({**SEED, "window_minutes": 2.5}, "window_minutes", "whole number"),
            ({**SEED, "for_minutes": -1}, "for_minutes", "from 0"),
            ({**SEED, "keep_firing_minutes": "5"}, "keep_firing_minutes", "whole number"),
            ({**SEED, "min_points": 0}, "min_points", "from 1"),
            ({**SEED, "group_by": "host_name"}, "group_by", "must be a list"),
            ({**SEED, "group_by": ["a", "b", "c", "d", "e", "f"]}, "group_by", "at most 5"),
            ({**SEED, "group_by": ["password"]}, "group_by[0]", "cannot be grouped on"),
            ({**SEED, "group_by": ["user_id"]}, "group_by[0]", "cannot be grouped on"),
            ({**SEED, "group_by": ["host_name", "host_name"]}, "group_by[1]", "listed twice"),
            ({**SEED, "group_by": [3]}, "group_by[0]", "field name"),
            ({**SEED, "group_by": ["labels."]}, "group_by[0]", "cannot be grouped on"),
            ({**SEED, "group_by": ["payload.x"]}, "group_by[0]", "cannot be grouped on"),
            ({**SEED, "filters": []}, "filters", "must be an object"),
            ({**SEED, "filters": {"value; DROP TABLE x": 1}}, "filters.value; DROP TABLE x", "is not a field"),
            ({**SEED, "filters": {"operation_name": "x"}}, "filters.operation_name", "is not a field"),
            ({**SEED, "filters": {"metric_type": "meter"}}, "filters.metric_type", "not a known value"),
            ({**SEED, "filters": {"service_name": 5}}, "filters.service_name", "must be a string"),
            ({**SEED, "filters": {"service_name": {"gt": "a"}}}, "filters.service_name.gt", "compares numbers"),
            ({**SEED, "filters": {"service_name": {"like": "a"}}}, "filters.service_name.like", "not a filter operator"),
            ({**SEED, "filters": {"service_name": {}}}, "filters.service_name", "at least one operator"),
            ({**SEED, "filters": {"service_name": []}}, "filters.service_name", "list of 1 to 100"),
            ({**SEED, "filters": {"service_name": ["a", None]}}, "filters.service_name[1]", "cannot be null"),
            ({**SEED, "filters": {"labels.region": {"a": 1}}}, "filters.labels.region.a", "not a filter operator"),
            ({**SEED, "filters": {"labels.region": [[1]]}}, "filters.labels.region[0]", "a string, a finite number or a boolean"),
            ({**SEED, "filters": {"labels.n": {"gt": "x"}}}, "filters.labels.n.gt", "finite number"),
            (
                {"source": "traces", "threshold": 1, "filters": {"http_status_code": "500"}},
                "filters.http_status_code",
                "finite number",
            ),
            ({"source": "traces", "threshold": 1, "filters": {"status": "failed"}}, "filters.status", "not a known value"),
            ({"source": "traces", "threshold": 1, "filters": {"payload.x": 1}}, "filters.payload.x", "is not a field"),
            ({**SEED, "filters": {f"labels.k{i}": "v" for i in range(21)}}, "filters", "at most 20"),
        ],
    )
    def test_each_error(self, config: dict[str, Any], field: str, reason_part: str) -> None:
        """Each invalid field is reported under its own path with a reason that says why."""
        found = problems(config)
        assert f"condition_config.{field}" in found, found
        assert reason_part in found[f"condition_config.{field}"]["reason"]

    def test_disallowed_aggregation_lists_what_is_allowed(self) -> None:
        """error_rate on system metrics names the aggregations the source has."""
        detail = problems({**SEED, "aggregation": "error_rate"})["condition_config.aggregation"]
        assert detail["allowed"] == ["avg", "min", "max", "sum", "count", "rate", "p50", "p90", "p95", "p99"]

    def test_unknown_filter_lists_whitelist(self) -> None:
        """An unknown filter shows every field of the source and the JSON key form."""
        detail = problems({"source": "traces", "threshold": 1, "filters": {"nope": 1}})["condition_config.filters.nope"]
        assert "http_status_code" in detail["allowed"] and "attributes.<key>" in detail["allowed"]


class TestFingerprint:
    def test_stable_and_order_free(self) -> None:
        """Same rule and group key (in any order) give the same 64 hex characters."""
        first = fingerprint(7, {"host_name": "a", "service_name": "b"})
        assert first == fingerprint(7, {"service_name": "b", "host_name": "a"})
        assert len(first) == 64 and int(first, 16) >= 0

    def test_differs_by_rule_and_key(self) -> None:
        """Another rule or another group value gives another fingerprint."""
        base = fingerprint(7, {"host_name": "a"})
        assert base != fingerprint(8, {"host_name": "a"})
        assert base != fingerprint(7, {"host_name": "b"})
        assert fingerprint(7, {}) != fingerprint(7, {"host_name": ""})


def test_describe() -> None:
    """A condition reads as one line."""
    assert parse_condition(SEED).describe() == "avg(cpu_usage) over 5m > 80"
    assert isinstance(parse_condition(SEED), Condition)
