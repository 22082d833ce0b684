"""Retention on real rows: old partitions dropped whole, boundary rows deleted, recent rows kept, counts returned.

Retention never removes raw rows the rollups do not hold yet (tests/test_rollups.py checks that), so the
tests here roll their rows up first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.services import retention, rollups
from fernando_telemetry.storage import partitions as partition_store
from tests.helpers import add_event, add_metric, add_span


def _count(session: Session, table: str) -> int:
    return session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _roll_up(session: Session) -> None:
    """Refresh the rollups up to this instant, so retention may remove the rows written so far."""
    rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)


class TestRetention:
    def test_drops_old_partitions_trims_the_boundary_and_keeps_recent_rows(self, session: Session) -> None:
        """Rows 100 days old go with their partitions, rows just past the cutoff are deleted, today's stay."""
        now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        events_cutoff = now - timedelta(days=90)
        traces_cutoff = now - timedelta(days=30)
        for days_ago in (100, 100, 95):
            add_event(session, at=now - timedelta(days=days_ago))
        add_event(session, at=events_cutoff - timedelta(hours=1))  # boundary partition, before the cutoff
        add_event(session, at=events_cutoff + timedelta(hours=1))  # boundary partition, after the cutoff
        add_event(session, at=now)
        add_metric(session, at=now - timedelta(days=100))  # within the 180 days of metrics
        add_metric(session, at=now)
        add_span(session, at=traces_cutoff - timedelta(days=5))
        add_span(session, at=traces_cutoff - timedelta(minutes=5))
        add_span(session, at=now - timedelta(days=1))
        _roll_up(session)

        cleanups = {
            c.table_name: c
            for c in retention.run(
                session, now=now, events_retention_days=90, metrics_retention_days=180, traces_retention_days=30
            )
        }

        events = cleanups["telemetry_events"]
        assert events.cutoff == events_cutoff
        assert events.rows_dropped == 3
        assert events.rows_deleted == 1
        assert events.partitions_dropped == 120 - 90  # the fixture made partitions from 120 days back
        assert _count(session, "telemetry_events") == 2
        remaining = session.execute(text("SELECT min(event_timestamp) FROM telemetry_events")).scalar_one()
        assert remaining == events_cutoff + timedelta(hours=1)

        assert cleanups["system_metrics"].rows_removed == 0
        assert cleanups["system_metrics"].partitions_dropped == 0
        assert _count(session, "system_metrics") == 2

        spans = cleanups["traces"]
        assert (spans.rows_dropped, spans.rows_deleted) == (1, 1)
        assert _count(session, "traces") == 1

        oldest = partition_store.list_partitions(session, table="telemetry_events")[0]
        assert datetime.fromisoformat(oldest.upper_bound) > events_cutoff
        assert datetime.fromisoformat(oldest.lower_bound) <= events_cutoff

    def test_second_run_removes_nothing(self, session: Session) -> None:
        """Retention is idempotent: run twice at the same instant, the second run reports zeros."""
        now = datetime.now(UTC)
        add_event(session, at=now - timedelta(days=100))
        _roll_up(session)
        retention.run(session, now=now, events_retention_days=90, metrics_retention_days=180, traces_retention_days=30)
        again = retention.run(session, now=now, events_retention_days=90, metrics_retention_days=180, traces_retention_days=30)
        assert all(c.partitions_dropped == 0 and c.rows_removed == 0 for c in again)

    def test_sql_function_defaults(self, session: Session) -> None:
        """Called with no arguments the SQL function uses 90 / 180 / 30 days from now()."""
        rows = session.execute(
            text("SELECT table_name, now() - cutoff FROM cleanup_old_telemetry_data() ORDER BY table_name")
        ).all()
        assert [(name, age.days) for name, age in rows] == [
            ("system_metrics", 180),
            ("telemetry_events", 90),
            ("traces", 30),
        ]

    def test_refuses_a_retention_under_one_day(self, session: Session) -> None:
        """Zero days would delete everything: refused by the service and by the SQL function."""
        with pytest.raises(InvalidInput, match="traces_retention_days must be at least 1"):
            retention.run(
                session, now=datetime.now(UTC), events_retention_days=90, metrics_retention_days=180, traces_retention_days=0
            )
        with pytest.raises(Exception, match="at least 1 day"):
            with session.begin_nested():
                session.execute(text("SELECT * FROM cleanup_old_telemetry_data(0)"))


class TestIdempotencyExpiry:
    def test_answers_older_than_the_window_are_forgotten(self, session: Session) -> None:
        """Stored batch answers older than the window are deleted; newer ones stay."""
        from fernando_telemetry.services import keys
        from fernando_telemetry.storage.models import IngestBatch

        license_id = keys.create_license(session, name="expiry")
        key = keys.create_key(session, license_id=license_id, scopes=["ingest"], new_token=lambda: "ft_" + "ab" * 20)
        now = datetime.now(UTC)
        session.add_all(
            [
                IngestBatch(
                    api_key_id=key.api_key_id,
                    endpoint="events",
                    idempotency_key="old",
                    response={},
                    created_at=now - timedelta(hours=25),
                ),
                IngestBatch(
                    api_key_id=key.api_key_id,
                    endpoint="events",
                    idempotency_key="new",
                    response={},
                    created_at=now - timedelta(hours=23),
                ),
            ]
        )
        session.flush()
        assert retention.expire_idempotency_keys(session, now=now, window_hours=24) == 1
        left = (
            session.execute(text("SELECT idempotency_key FROM ingest_batches WHERE api_key_id = :k"), {"k": key.api_key_id})
            .scalars()
            .all()
        )
        assert left == ["new"]
