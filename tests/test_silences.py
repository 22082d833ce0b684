"""Silences: the matcher language (every operator, field-level errors), and the service on real PostgreSQL
(create, list by state, change, expire, license scoping, applying to open alerts at once)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import Conflict, InvalidInput, NotFound
from fernando_telemetry.core.silence_matchers import matches_all, parse_matchers
from fernando_telemetry.services import silences
from tests.alert_fixtures import MINUTE, T0, add_alert, add_license, add_rule, alerts_of, events_of

LABELS = {"alertname": "High CPU Usage", "severity": "critical", "rule_id": "7", "host_name": "web-1", "team": "infra"}


class TestMatchers:
    @pytest.mark.parametrize(
        ("matcher", "matches"),
        [
            ({"name": "alertname", "value": "High CPU Usage"}, True),
            ({"name": "alertname", "op": "=", "value": "high cpu usage"}, False),
            ({"name": "severity", "op": "!=", "value": "warning"}, True),
            ({"name": "severity", "op": "!=", "value": "critical"}, False),
            ({"name": "host_name", "op": "=~", "value": "web-[0-9]+"}, True),
            ({"name": "host_name", "op": "=~", "value": "web"}, False),  # anchored: the whole value
            ({"name": "host_name", "op": "!~", "value": "db-.*"}, True),
            ({"name": "team", "op": "!~", "value": "infra|ops"}, False),
            ({"name": "region", "op": "=", "value": "eu"}, False),  # a missing label reads as ""
            ({"name": "region", "op": "!=", "value": "eu"}, True),
            ({"name": "rule_id", "value": 7}, True),  # numbers are compared as their text
            ({"name": "alertname", "isRegex": True, "isEqual": True, "value": "High.*"}, True),  # Alertmanager spelling
        ],
    )
    def test_operators(self, matcher: dict[str, Any], matches: bool) -> None:
        """Each operator, anchored regular expressions, missing labels, and Alertmanager's isRegex/isEqual."""
        extra = {"name": "rule_id", "value": "7"}  # keeps every silence from matching the empty label set
        assert matches_all(parse_matchers([matcher, extra]), LABELS) is matches

    @pytest.mark.parametrize(
        ("raw", "fields"),
        [
            (None, ["matchers"]),
            ([], ["matchers"]),
            ("alertname=x", ["matchers"]),
            ([42], ["matchers[0]"]),
            ([{"value": "x"}], ["matchers[0].name"]),
            ([{"name": "bad name!", "value": "x"}], ["matchers[0].name"]),
            ([{"name": "a", "op": "~=", "value": "x"}], ["matchers[0].op"]),
            ([{"name": "a", "op": "=~", "value": "("}], ["matchers[0].value"]),
            ([{"name": "a"}], ["matchers[0].value"]),
            ([{"name": "a", "value": "x", "colour": "red"}], ["matchers[0].colour"]),
            ([{"name": "a", "op": "!=", "value": "x"}], ["matchers"]),  # matches an empty label set: would mute everything
            ([{"name": "a", "op": "=~", "value": ".*"}], ["matchers"]),
            (
                [{"name": "", "op": "?", "value": "x"}, {"name": "b", "op": "=~", "value": "["}],
                ["matchers[0].name", "matchers[0].op", "matchers[1].value"],
            ),
        ],
    )
    def test_every_problem_is_named_by_its_field(self, raw: Any, fields: list[str]) -> None:
        """InvalidInput details list each bad field, all at once."""
        with pytest.raises(InvalidInput) as caught:
            parse_matchers(raw)
        assert [detail["field"] for detail in caught.value.details] == fields

    def test_a_bad_operator_lists_the_allowed_ones(self) -> None:
        """The op error says what is allowed."""
        with pytest.raises(InvalidInput) as caught:
            parse_matchers([{"name": "a", "op": "like", "value": "x"}])
        assert caught.value.details[0]["allowed"] == ["=", "!=", "=~", "!~"]


def _silence(session: Session, license_id: int | None, matchers: list[dict[str, Any]], **times: Any) -> silences.SilenceView:
    return silences.create(
        session,
        caller=Caller(actor="key:1", clock=lambda: times.get("now", T0)),
        license_id=license_id,
        matchers=matchers,
        starts_at=times.get("starts_at"),
        ends_at=times.get("ends_at", T0 + 60 * MINUTE),
        comment=times.get("comment"),
    )


class TestService:
    def test_create_checks_times_and_matchers_together(self, session: Session) -> None:
        """Bad matchers and bad times are reported in one error, each with its field."""
        with pytest.raises(InvalidInput) as caught:
            silences.create(
                session, caller=Caller(actor="key:1", clock=lambda: T0), license_id=None,
                matchers=[{"name": "a", "op": "?", "value": "x"}], starts_at=T0, ends_at=T0 - MINUTE,
            )  # fmt: skip
        assert [detail["field"] for detail in caught.value.details] == ["matchers[0].op", "ends_at"]
        with pytest.raises(InvalidInput, match="in the past"):
            _silence(session, None, [{"name": "a", "value": "x"}], starts_at=T0 - 10 * MINUTE, ends_at=T0 - MINUTE)
        with pytest.raises(InvalidInput, match="ends_at: missing"):
            silences.create(
                session,
                caller=Caller(actor="x", clock=lambda: T0),
                license_id=None,
                matchers=[{"name": "a", "value": "x"}],
                ends_at=None,
            )

    def test_states_and_listing(self, session: Session) -> None:
        """pending (starts later), active, expired (ended or expired by hand), each listed under its state."""
        license_id = add_license(session)
        later = _silence(session, license_id, [{"name": "a", "value": "1"}], starts_at=T0 + MINUTE)
        now_on = _silence(session, license_id, [{"name": "a", "value": "2"}])
        ended = _silence(session, license_id, [{"name": "a", "value": "3"}])
        silences.expire(
            session, caller=Caller(actor="key:1", clock=lambda: T0), silence_id=ended.silence_id, license_id=license_id
        )
        assert (later.state, now_on.state) == ("pending", "active")

        def listed(state: str | None) -> list[int]:
            page = silences.list_silences(session, license_id=license_id, now=T0, state=state)
            return sorted(view.silence_id for view in page.silences)

        assert listed("pending") == [later.silence_id]
        assert listed("active") == [now_on.silence_id]
        assert listed("expired") == [ended.silence_id]
        assert listed(None) == sorted([later.silence_id, now_on.silence_id, ended.silence_id])
        with pytest.raises(InvalidInput):
            silences.list_silences(session, license_id=license_id, now=T0, state="sleeping")

    def test_expire_twice_and_update_after_the_end_are_conflicts(self, session: Session) -> None:
        """An ended silence cannot be expired again or changed."""
        made = _silence(session, None, [{"name": "a", "value": "1"}])
        view = silences.expire(
            session, caller=Caller(actor="cli", clock=lambda: T0 + MINUTE), silence_id=made.silence_id, license_id=None
        )
        assert (view.state, view.expired_at, view.ends_at) == ("expired", T0 + MINUTE, T0 + MINUTE)
        with pytest.raises(Conflict):
            silences.expire(
                session, caller=Caller(actor="cli", clock=lambda: T0 + MINUTE), silence_id=made.silence_id, license_id=None
            )
        with pytest.raises(Conflict):
            silences.update(
                session,
                caller=Caller(actor="cli", clock=lambda: T0 + MINUTE),
                silence_id=made.silence_id,
                license_id=None,
                comment="x",
            )

    def test_another_license_cannot_see_or_expire_it(self, session: Session) -> None:
        """Scoped to license B, license A's silence is NotFound for get, update and expire."""
        mine, theirs = add_license(session), add_license(session)
        made = _silence(session, mine, [{"name": "a", "value": "1"}])
        for call in (
            lambda: silences.get(session, silence_id=made.silence_id, license_id=theirs, now=T0),
            lambda: silences.expire(
                session, caller=Caller(actor="key:2", clock=lambda: T0), silence_id=made.silence_id, license_id=theirs
            ),
            lambda: silences.update(
                session,
                caller=Caller(actor="key:2", clock=lambda: T0),
                silence_id=made.silence_id,
                license_id=theirs,
                comment="x",
            ),
        ):
            with pytest.raises(NotFound):
                call()
        assert silences.get(session, silence_id=made.silence_id, license_id=mine, now=T0).state == "active"

    def test_update_widens_a_silence_to_more_alerts_at_once(self, session: Session) -> None:
        """Changing the matchers suppresses the alerts they now cover; the change's actor is in their history."""
        license_id = add_license(session)
        rule = add_rule(session, license_id=license_id, condition={"metric": "cpu", "threshold": 80})
        web = add_alert(session, rule=rule, group_key={"host_name": "web-1"})
        db = add_alert(session, rule=rule, group_key={"host_name": "db-1"})
        made = _silence(session, license_id, [{"name": "host_name", "value": "web-1"}])
        assert made.alerts_changed == 1
        widened = silences.update(session, caller=Caller(actor="key:9", clock=lambda: T0 + MINUTE), silence_id=made.silence_id, license_id=license_id, matchers=[{"name": "host_name", "op": "=~", "value": "(web|db)-1"}])  # fmt: skip
        assert widened.alerts_changed == 1
        statuses = {alert.alert_id: alert.status for alert in alerts_of(session, rule)}
        assert statuses == {web.alert_id: "suppressed", db.alert_id: "suppressed"}
        assert events_of(session, db.alert_id) == [("suppress", "active", "suppressed", "key:9")]

    def test_a_platform_wide_silence_covers_every_license(self, session: Session) -> None:
        """license_id None: matches alerts of any license; a license silence only its own."""
        first, second = add_license(session), add_license(session)
        rules = [
            add_rule(session, license_id=lic, condition={"metric": "cpu", "threshold": 80}, severity="info")
            for lic in (first, second)
        ]
        for rule in rules:
            add_alert(session, rule=rule)
        _silence(session, first, [{"name": "severity", "value": "info"}])
        assert [alerts_of(session, rule)[0].status for rule in rules] == ["suppressed", "active"]
        _silence(session, None, [{"name": "severity", "value": "info"}])
        assert [alerts_of(session, rule)[0].status for rule in rules] == ["suppressed", "suppressed"]

    def test_a_pending_silence_applies_only_from_its_start(self, session: Session) -> None:
        """Created to start later: the open alert stays active until an evaluation at or after starts_at."""
        from fernando_telemetry.services import alert_evaluation

        license_id = add_license(session)
        rule = add_rule(session, license_id=license_id, condition={"metric": "cpu", "threshold": 80}, enabled=False)
        alert = add_alert(session, rule=rule)
        _silence(session, license_id, [{"name": "rule_id", "value": str(rule.rule_id)}], starts_at=T0 + 5 * MINUTE)
        assert alerts_of(session, rule)[0].status == "active"
        alert_evaluation.evaluate_due(session, now=T0 + 4 * MINUTE, rule_ids=set())
        assert alerts_of(session, rule)[0].status == "active"
        summary = alert_evaluation.evaluate_due(session, now=T0 + 5 * MINUTE, rule_ids=set())
        assert [(t.action, t.alert_id) for t in summary.transitions] == [("suppress", alert.alert_id)]
        assert alerts_of(session, rule)[0].status == "suppressed"
