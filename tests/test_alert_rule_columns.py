"""A rule's columns mean what they say: ``evaluation_window_minutes`` and ``pending_period_minutes`` are what the
evaluator uses and stay equal to ``condition_config`` whichever side is written (an ORM-made rule that sets only
the columns included), and ``alerts.affected_service`` names the one service a rule is restricted to."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fernando_telemetry.core.alert_condition import Source, source_spec
from fernando_telemetry.services import alert_evaluation
from fernando_telemetry.storage.models import AlertRule
from tests.alert_fixtures import MINUTE, T0, add_license, add_rule, add_sample, alerts_of, unique

CPU = {"metric": "cpu", "operator": ">", "threshold": 80}


def _orm_rule(session: Session, license_id: int, config: dict[str, Any], **columns: Any) -> AlertRule:
    """A rule made as the seed makes one: the ORM, no API, no validation."""
    rule = AlertRule(name=unique("orm"), condition_config=config, license_id=license_id, **columns)
    session.add(rule)
    session.flush()
    return rule


def _stored(session: Session, rule: AlertRule) -> tuple[int, int, dict[str, Any]]:
    row = session.execute(
        text("SELECT evaluation_window_minutes, pending_period_minutes, condition_config FROM alert_rules WHERE rule_id = :r"),
        {"r": rule.rule_id},
    ).one()
    return row[0], row[1], row[2]


@pytest.fixture()
def license_id(session: Session) -> int:
    return add_license(session)


class TestWindowColumns:
    def test_an_orm_rule_setting_only_the_columns_is_evaluated_over_them(self, session: Session, license_id: int) -> None:
        """Window 60 set as a column sees a sample 30 minutes old and fires; the same condition without it (the
        default 5-minute window) sees nothing. The condition is brought in line with the column."""
        metric = unique("cpu")
        add_sample(session, metric=metric, at=T0 - 30 * MINUTE, value=95.0, license_id=license_id)
        wide = _orm_rule(session, license_id, {**CPU, "metric": metric}, evaluation_window_minutes=60, pending_period_minutes=0)
        narrow = _orm_rule(session, license_id, {**CPU, "metric": metric})

        assert alert_evaluation.evaluate_rule(session, wide, now=T0).transitions[0].action == "fire"
        assert alert_evaluation.evaluate_rule(session, narrow, now=T0).transitions == []
        assert len(alerts_of(session, wide)) == 1 and alerts_of(session, narrow) == []
        window, pending, config = _stored(session, wide)
        assert (window, pending, config["window_minutes"], config["for_minutes"]) == (60, 0, 60, 0)
        assert _stored(session, narrow)[:2] == (5, 0)

    def test_a_pending_period_set_as_a_column_holds_the_alert_back(self, session: Session, license_id: int) -> None:
        """pending_period_minutes=10 on the ORM rule: the first true evaluation goes pending, not firing."""
        metric = unique("cpu")
        add_sample(session, metric=metric, at=T0 - MINUTE, value=95.0, license_id=license_id)
        rule = _orm_rule(session, license_id, {**CPU, "metric": metric}, pending_period_minutes=10)
        [transition] = alert_evaluation.evaluate_rule(session, rule, now=T0).transitions
        assert (transition.action, transition.to_state) == ("pending", "pending")
        assert alerts_of(session, rule) == []
        assert _stored(session, rule)[2]["for_minutes"] == 10

    def test_a_condition_set_alone_fills_the_columns(self, session: Session, license_id: int) -> None:
        """A rule written with window_minutes and for_minutes in its condition gets the same in its columns."""
        rule = add_rule(session, license_id=license_id, condition={**CPU, "window_minutes": 15, "for_minutes": 3})
        assert _stored(session, rule)[:2] == (15, 3)
        session.refresh(rule)
        assert (rule.evaluation_window_minutes, rule.pending_period_minutes) == (15, 3)

    def test_changing_a_column_changes_the_condition_and_the_evaluation(self, session: Session, license_id: int) -> None:
        """An ORM update of the column alone moves condition_config.window_minutes with it."""
        rule = add_rule(session, license_id=license_id, condition={**CPU, "window_minutes": 5})
        rule.evaluation_window_minutes = 30
        session.flush()
        assert _stored(session, rule)[2]["window_minutes"] == 30
        assert alert_evaluation.rule_condition(rule).window_minutes == 30

    def test_changing_the_condition_changes_the_column(self, session: Session, license_id: int) -> None:
        """An update of condition_config alone (as plain SQL would write it) moves the column."""
        rule = add_rule(session, license_id=license_id, condition={**CPU, "window_minutes": 5})
        session.execute(
            text("UPDATE alert_rules SET condition_config = condition_config || '{\"window_minutes\": 45}' WHERE rule_id = :r"),
            {"r": rule.rule_id},
        )
        assert _stored(session, rule)[0] == 45

    def test_a_column_and_a_condition_that_disagree_are_refused(self, session: Session, license_id: int) -> None:
        """Both given and different: the insert fails, naming both."""
        with pytest.raises(IntegrityError, match="evaluation_window_minutes .10. disagrees with condition_config.window_minutes"):
            with session.begin_nested():
                _orm_rule(session, license_id, {**CPU, "window_minutes": 20}, evaluation_window_minutes=10)

    @pytest.mark.parametrize("source", list(Source))
    def test_a_window_given_neither_way_is_the_condition_language_default(
        self, session: Session, license_id: int, source: Source
    ) -> None:
        """The trigger's default window per source is the condition language's (core.alert_condition)."""
        rule = _orm_rule(session, license_id, {"source": source.value, "metric": "m", "threshold": 1})
        assert _stored(session, rule)[:2] == (source_spec(source).default_window_minutes, 0)


class TestAffectedService:
    @pytest.mark.parametrize(
        ("service_filter", "expected"),
        [("checkout", "checkout"), (["checkout"], "checkout"), ({"in": ["checkout", "cart"]}, None)],
    )
    def test_a_rule_restricted_to_one_service_names_it_on_its_alerts(
        self, session: Session, license_id: int, service_filter: Any, expected: str | None
    ) -> None:
        """Not grouped by service, but filtered on one: the alert's affected_service is that service; on two, none."""
        metric = unique("latency")
        for service in ("checkout", "cart"):
            add_sample(session, metric=metric, at=T0 - MINUTE, value=95.0, license_id=license_id, service_name=service)
        rule = add_rule(
            session, license_id=license_id, condition={**CPU, "metric": metric, "filters": {"service_name": service_filter}}
        )
        alert_evaluation.evaluate_rule(session, rule, now=T0)
        [alert] = alerts_of(session, rule)
        assert alert.affected_service == expected
