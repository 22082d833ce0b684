"""Foreign keys and unique keys as the platform expects them, enforced by PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from fernando_telemetry.core.enums import AlertStatus, MetricCategory, PeriodType, Severity
from fernando_telemetry.storage.models import Alert, AlertRule, BusinessMetric, TelemetryEvent, User
from tests.helpers import add_event, add_license, add_metric, add_span, add_user

NOW = datetime.now(UTC)


def _fails(session: Session, action) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            action()


class TestForeignKeys:
    @pytest.mark.parametrize("add_row", [add_event, add_metric, add_span])
    def test_unknown_user_is_refused(self, session: Session, add_row) -> None:  # type: ignore[no-untyped-def]
        """A telemetry row of a license naming a user that license does not have is refused (ingest registers it first)."""
        license_ = add_license(session)
        _fails(session, lambda: add_row(session, at=NOW, user_id="nobody", license_id=license_.license_id))

    @pytest.mark.parametrize("add_row", [add_event, add_metric, add_span])
    def test_user_of_another_license_is_refused(self, session: Session, add_row) -> None:  # type: ignore[no-untyped-def]
        """The key is (license_id, user_id): license A's row cannot point at license B's user of the same id."""
        a, b = add_license(session, "A"), add_license(session, "B")
        add_user(session, "u-b", license_id=b.license_id)
        _fails(session, lambda: add_row(session, at=NOW, user_id="u-b", license_id=a.license_id))
        add_row(session, at=NOW, user_id="u-b", license_id=b.license_id)

    @pytest.mark.parametrize("add_row", [add_event, add_metric, add_span])
    def test_row_of_no_license_keeps_its_user_id_unlinked(self, session: Session, add_row) -> None:  # type: ignore[no-untyped-def]
        """MATCH SIMPLE: a row without a license keeps the user id it was sent with, with no user row."""
        row = add_row(session, at=NOW, user_id="nobody-at-all")
        assert row.user_id == "nobody-at-all"

    @pytest.mark.parametrize("add_row", [add_event, add_metric, add_span])
    def test_unknown_license_is_refused(self, session: Session, add_row) -> None:  # type: ignore[no-untyped-def]
        """A telemetry row naming a license that does not exist is refused."""
        _fails(session, lambda: add_row(session, at=NOW, license_id=987654321))

    def test_known_user_and_license_are_accepted_and_related(self, session: Session) -> None:
        """Rows of a known user and license are stored and reachable through the relationships."""
        license_ = add_license(session)
        add_user(session, "u-1", license_id=license_.license_id)
        event = add_event(session, at=NOW, user_id="u-1", license_id=license_.license_id)
        found = session.scalars(select(TelemetryEvent).where(TelemetryEvent.user_id == "u-1")).one()
        assert found.event_id == event.event_id
        assert (
            session.execute(
                text("SELECT u.license_id FROM telemetry_events e JOIN users u USING (user_id) WHERE e.event_id = :id"),
                {"id": event.event_id},
            ).scalar_one()
            == license_.license_id
        )

    def test_relationships_join_users_on_license_and_id(self, session: Session) -> None:
        """TelemetryEvent.user and User.events match license and user id: B's user of the same id is not A's."""
        a, b = add_license(session, "A"), add_license(session, "B")
        add_user(session, "same", license_id=a.license_id)
        add_user(session, "same", license_id=b.license_id)
        event = add_event(session, at=NOW, user_id="same", license_id=a.license_id)
        session.expire_all()
        found = session.scalars(
            select(TelemetryEvent).where(TelemetryEvent.event_id == event.event_id).options(selectinload(TelemetryEvent.user))
        ).one()
        assert found.user is not None and found.user.license_id == a.license_id
        users = session.scalars(select(User).where(User.user_id == "same").options(selectinload(User.events))).all()
        assert {user.license_id: len(user.events) for user in users} == {a.license_id: 1, b.license_id: 0}

    def test_deleting_a_user_keeps_their_telemetry_unattributed(self, session: Session) -> None:
        """A user removed by the platform leaves their events with user_id NULL (license kept), not deleted."""
        license_ = add_license(session)
        add_user(session, "leaver", license_id=license_.license_id)
        event = add_event(session, at=NOW, user_id="leaver", license_id=license_.license_id)
        session.execute(text("DELETE FROM users WHERE user_id = 'leaver'"))
        assert session.execute(
            text("SELECT user_id, license_id FROM telemetry_events WHERE event_id = :id"), {"id": event.event_id}
        ).one() == (None, license_.license_id)

    def test_alert_needs_an_existing_rule_and_users(self, session: Session) -> None:
        """An alert's rule and its acknowledging / assigned users must exist."""
        rule = AlertRule(name="cpu", condition_config={"metric": "cpu_usage", "operator": ">", "threshold": 80})
        session.add(rule)
        session.flush()

        def alert(**fields) -> None:  # type: ignore[no-untyped-def]
            session.add(Alert(severity=Severity.WARNING, title="t", fingerprint="f", triggered_at=NOW, **fields))
            session.flush()

        _fails(session, lambda: alert(rule_id=rule.rule_id + 1000))
        license_ = add_license(session)
        _fails(session, lambda: alert(rule_id=rule.rule_id, assigned_to="ghost", license_id=license_.license_id))
        alert(rule_id=rule.rule_id)


class TestUniqueKeys:
    def test_one_open_alert_per_rule_and_fingerprint(self, session: Session) -> None:
        """A second open alert for the same rule and group is refused; after resolving, a new one may open."""
        rule = AlertRule(name="errors", condition_config={})
        session.add(rule)
        session.flush()
        first = Alert(rule_id=rule.rule_id, severity=Severity.ERROR, title="t", fingerprint="svc=a", triggered_at=NOW)
        session.add(first)
        session.flush()
        _fails(
            session,
            lambda: (
                session.add(
                    Alert(rule_id=rule.rule_id, severity=Severity.ERROR, title="t", fingerprint="svc=a", triggered_at=NOW)
                ),
                session.flush(),
            ),
        )
        first.status = AlertStatus.RESOLVED
        session.flush()
        session.add(Alert(rule_id=rule.rule_id, severity=Severity.ERROR, title="t", fingerprint="svc=a", triggered_at=NOW))
        session.flush()

    def test_business_metric_natural_key_treats_null_license_as_one_value(self, session: Session) -> None:
        """The platform-wide KPI (license NULL) of a period exists once; an upsert replaces its value."""
        key = {
            "metric_name": "dau",
            "period_type": PeriodType.DAILY.value,
            "period_start": datetime(2026, 11, 1, tzinfo=UTC),
        }

        def insert(value: str) -> None:
            session.execute(
                text(
                    "INSERT INTO business_metrics (metric_name, metric_category, metric_value, period_start, period_end, period_type) "
                    "VALUES (:metric_name, 'user_engagement', :value, :period_start, :period_start + interval '1 day', :period_type) "
                    "ON CONFLICT ON CONSTRAINT uq_business_metrics_natural_key DO UPDATE SET metric_value = EXCLUDED.metric_value"
                ),
                {**key, "value": Decimal(value)},
            )

        insert("10")
        insert("12")
        values = session.scalars(select(BusinessMetric.metric_value).where(BusinessMetric.metric_name == "dau")).all()
        assert values == [Decimal("12")]
        _fails(
            session,
            lambda: (
                session.add(
                    BusinessMetric(
                        metric_name="dau",
                        metric_category=MetricCategory.USER_ENGAGEMENT,
                        metric_value=Decimal(1),
                        period_start=key["period_start"],
                        period_end=key["period_start"],
                        period_type=PeriodType.DAILY,
                    )
                ),
                session.flush(),
            ),
        )

    def test_closed_vocabularies_are_checked(self, session: Session) -> None:
        """An event type outside the vocabulary is refused by the database itself."""
        with pytest.raises(Exception, match="ck_telemetry_events_event_type"):
            with session.begin_nested():
                session.execute(
                    text(
                        "INSERT INTO telemetry_events (event_id, event_type, event_name, event_timestamp) VALUES (gen_random_uuid(), 'bogus', 'x', now())"
                    )
                )
