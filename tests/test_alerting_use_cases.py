"""The alerting use cases called directly: each opens its own transaction on ``sessions``, checks the caller's license
scope and reads the caller's clock, so routes and other entry points only parse, call and shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import Forbidden, NotFound
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.services import alert_rules, alerts, notification_channels, silences
from fernando_telemetry.services.alerts import AlertFilters
from tests.alert_fixtures import T0, add_alert, add_license, add_rule

CONDITION = {"metric": "cpu_usage", "operator": ">", "threshold": 80}


@pytest.fixture()
def sessions(session: Session) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's connection: each use case's transaction is a savepoint of the test's, rolled back after."""
    yield sessionmaker(bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False)


def _key_caller(license_id: int, *, api_key_id: int = 41) -> Caller:
    principal = Principal(api_key_id=api_key_id, license_id=license_id, scopes=frozenset({"read"}))
    return Caller.for_key(principal, clock=lambda: T0)


class TestScope:
    def test_a_license_key_naming_another_license_is_refused(self, session: Session, sessions: sessionmaker[Session]) -> None:
        """Every use case given an explicit license checks it against the caller's, before opening a transaction."""
        own, other = add_license(session), add_license(session)
        caller = _key_caller(own)
        with pytest.raises(Forbidden, match=f"cannot read license {other}"):
            alerts.search_alerts(sessions, caller=caller, filters=AlertFilters(license_id=other), cursor_key=b"k")
        with pytest.raises(Forbidden, match=f"cannot create rules for license {other}"):
            alert_rules.create_rule(
                sessions, caller=caller, license_id=other, fields={"name": "x", "condition_config": CONDITION}
            )
        with pytest.raises(Forbidden):
            silences.open_silence(
                sessions, caller=caller, license_id=other, matchers=[{"name": "a", "value": "b"}], starts_at=None, ends_at=None
            )
        with pytest.raises(Forbidden):
            notification_channels.read_channels(sessions, caller=caller, license_id=other)

    def test_another_licenses_alert_is_not_found(self, session: Session, sessions: sessionmaker[Session]) -> None:
        """An alert outside the caller's license reads as missing, and cannot be acknowledged."""
        own, other = add_license(session), add_license(session)
        alert = add_alert(session, rule=add_rule(session, license_id=other, condition=CONDITION))
        session.flush()
        with pytest.raises(NotFound):
            alerts.read_alert(sessions, caller=_key_caller(own), alert_id=alert.alert_id)
        with pytest.raises(NotFound):
            alerts.acknowledge_alert(sessions, caller=_key_caller(own), alert_id=alert.alert_id)
        assert alerts.read_alert(sessions, caller=_key_caller(other), alert_id=alert.alert_id).status == "active"


class TestTransactions:
    def test_acknowledge_commits_its_change_and_history(self, session: Session, sessions: sessionmaker[Session]) -> None:
        """The change is committed by the use case: a later transaction reads it, with the caller as actor."""
        license_id = add_license(session)
        alert = add_alert(session, rule=add_rule(session, license_id=license_id, condition=CONDITION))
        session.flush()
        view = alerts.acknowledge_alert(sessions, caller=_key_caller(license_id), alert_id=alert.alert_id, note="on it")
        assert view.status == "acknowledged"
        history = alerts.read_history(sessions, caller=_key_caller(license_id), alert_id=alert.alert_id)
        assert history.alert.status == "acknowledged"
        assert history.events[-1].actor == "key:41"

    def test_open_silence_counts_its_duration_from_the_callers_clock(
        self, session: Session, sessions: sessionmaker[Session]
    ) -> None:
        """``duration_minutes`` runs from the caller's now; the silence and its audit entry carry that instant."""
        license_id = add_license(session)
        session.flush()
        view = silences.open_silence(
            sessions,
            caller=_key_caller(license_id),
            license_id=None,  # a license key's silence belongs to its license
            matchers=[{"name": "team", "value": "infra"}],
            starts_at=None,
            ends_at=None,
            duration_minutes=30,
        )
        assert (view.license_id, view.created_by, view.created_at) == (license_id, "key:41", T0)
        assert view.ends_at == T0 + timedelta(minutes=30)
        audited = session.execute(
            text("SELECT actor, occurred_at FROM audit_log WHERE action = 'silence.create' AND target_id = :id"),
            {"id": str(view.silence_id)},
        ).one()
        assert tuple(audited) == ("key:41", T0)
