"""Alembic revisions: upgrade -> downgrade -> upgrade on an empty database, and no drift from the models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, text

from fernando_telemetry.services import schema
from fernando_telemetry.storage.database import make_engine
from fernando_telemetry.storage.models import metadata

VIEWS = {
    "telemetry_events_hourly_summary",
    "system_metrics_service_summary",
    "business_metrics_kpi_summary",
    "traces_service_summary",
    "storage_by_partition",
    "storage_by_kind",
    "storage_by_license",
}
FUNCTIONS = {
    "ensure_daily_partitions",
    "cleanup_old_telemetry_data",
    "cleanup_old_rollups",
    "rollup_sketch_key",
    "rollup_sketch_value",
    "rollup_sketch_quantiles",
    "rollup_concat",
    "rollup_pending_hours",
    "telemetry_events_hour_summary",
    "system_metrics_hour_aggregate",
    "traces_hour_summary",
}


def _objects(engine) -> tuple[set[str], set[str], set[str]]:  # type: ignore[no-untyped-def]
    inspector = inspect(engine)
    tables = set(inspector.get_table_names()) - {"alembic_version"}
    views = set(inspector.get_view_names())
    with engine.connect() as connection:
        functions = set(
            connection.execute(text("SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace")).scalars()
        )
    return tables, views, functions


class TestMigrations:
    def test_upgrade_downgrade_upgrade_builds_and_removes_the_whole_schema(self, database_factory: Callable[[], str]) -> None:
        """Head builds every table, view and function; base removes them all; head builds them again."""
        engine = make_engine(database_factory(), pool_size=1)
        try:
            schema.upgrade(engine)
            tables, views, functions = _objects(engine)
            assert tables == set(metadata.tables)
            assert views == VIEWS
            assert FUNCTIONS <= functions
            assert schema.current(engine).up_to_date

            schema.downgrade(engine, revision="base")
            tables, views, functions = _objects(engine)
            assert tables == set()
            assert views == set()
            assert not FUNCTIONS & functions
            assert schema.current(engine).current is None

            schema.upgrade(engine)
            assert _objects(engine)[0] == set(metadata.tables)
            assert schema.drift(engine) == []
        finally:
            engine.dispose()

    def test_models_and_migrated_schema_do_not_drift(self, engine) -> None:  # type: ignore[no-untyped-def]
        """Alembic's comparison of the models with the migrated database (partitions excluded) finds nothing."""
        assert schema.drift(engine) == []

    def test_drift_check_notices_a_difference(self, database_factory: Callable[[], str]) -> None:
        """The drift check is not vacuous: a column dropped behind the models' back is reported."""
        engine = make_engine(database_factory(), pool_size=1)
        try:
            schema.upgrade(engine)
            with engine.begin() as connection:
                connection.execute(text("ALTER TABLE licenses DROP COLUMN plan"))
            differences = schema.drift(engine)
            assert any("plan" in repr(difference) for difference in differences)
        finally:
            engine.dispose()


class TestUsersByLicense:
    def test_0009_copies_license_less_users_into_the_licenses_naming_them(self, database_factory: Callable[[], str]) -> None:
        """Revision 0009: a user of no license is copied into each license whose rows name it (data kept, origin
        migration), a license naming another license's user gets a bare row of its own, license-less users are
        removed (their rows of no license keep the id); downgrade keeps one row per id and every row's user."""
        engine = make_engine(database_factory(), pool_size=1)
        day = datetime(2026, 11, 2, tzinfo=UTC)
        try:
            schema.upgrade(engine, revision="0008")
            with engine.begin() as connection:
                connection.execute(
                    text("SELECT ensure_daily_partitions('telemetry_events', CAST(:d AS date), CAST(:d AS date))"),
                    {"d": day.date()},
                )
                connection.execute(text("INSERT INTO licenses (license_id, name) VALUES (1, 'L1'), (2, 'L2')"))
                connection.execute(
                    text(
                        "INSERT INTO users (user_id, license_id, email) VALUES ('solo', NULL, 'solo@x.io'), ('owned', 1, 'o@x.io'), "
                        "('idle', NULL, 'idle@x.io')"
                    )
                )
                for minute, (license_id, user_id) in enumerate(
                    ((1, "solo"), (2, "solo"), (2, "solo"), (2, "owned"), (1, "owned"), (None, "solo"))
                ):
                    connection.execute(
                        text(
                            "INSERT INTO telemetry_events (event_id, event_type, event_name, user_id, license_id, event_timestamp) "
                            "VALUES (gen_random_uuid(), 'user_action', 'e', :u, :l, :t)"
                        ),
                        {"u": user_id, "l": license_id, "t": day + timedelta(minutes=minute)},
                    )
            schema.upgrade(engine, revision="0009")
            with engine.connect() as connection:
                users = {
                    (row.license_id, row.user_id): (row.email, row.origin, row.first_seen_at, row.last_seen_at)
                    for row in connection.execute(text("SELECT * FROM users"))
                }
                loose = connection.execute(text("SELECT user_id FROM telemetry_events WHERE license_id IS NULL")).scalars().all()
            assert users == {
                (1, "solo"): ("solo@x.io", "migration", day, day),
                (2, "solo"): ("solo@x.io", "migration", day + timedelta(minutes=1), day + timedelta(minutes=2)),
                (1, "owned"): ("o@x.io", "platform", day + timedelta(minutes=4), day + timedelta(minutes=4)),
                (2, "owned"): (None, "migration", day + timedelta(minutes=3), day + timedelta(minutes=3)),
            }
            assert loose == ["solo"]

            schema.downgrade(engine, revision="0008")
            with engine.connect() as connection:
                users = {row.user_id: row.license_id for row in connection.execute(text("SELECT user_id, license_id FROM users"))}
                named = connection.execute(text("SELECT count(*) FROM telemetry_events WHERE user_id IS NOT NULL")).scalar_one()
            assert users == {"solo": 1, "owned": 1}
            assert named == 6
        finally:
            engine.dispose()


class TestCounterIncrementsMigration:
    def test_stored_counter_totals_become_increments_and_back(self, database_factory: Callable[[], str]) -> None:
        """Revision 0010 turns each counter series' running totals into increments (first 0 with its total kept,
        a drop counted from zero, start_time the previous sample's time); gauges stay; the downgrade restores totals."""
        from datetime import UTC, datetime, timedelta

        from fernando_telemetry.services import partitions
        from fernando_telemetry.storage.database import session_factory

        engine = make_engine(database_factory(), pool_size=1)
        now = datetime.now(UTC).replace(microsecond=0)
        times = [now - timedelta(minutes=m) for m in (4, 3, 2, 1)]
        try:
            schema.upgrade(engine, revision="0008")
            with session_factory(engine).begin() as session:
                partitions.ensure_for_days(session, first_day=now.date() - timedelta(days=1), last_day=now.date())
            insert = text(
                'INSERT INTO system_metrics (metric_name, metric_type, value, labels, "timestamp") '
                "VALUES (:n, :t, :v, CAST(:l AS jsonb), :at)"
            )
            with engine.begin() as connection:
                for value, moment in zip((10.0, 15.0, 3.0, 8.0), times, strict=True):
                    connection.execute(insert, {"n": "requests", "t": "counter", "v": value, "l": '{"pod": "a"}', "at": moment})
                connection.execute(insert, {"n": "requests", "t": "counter", "v": 100.0, "l": '{"pod": "b"}', "at": times[1]})
                connection.execute(insert, {"n": "cpu", "t": "gauge", "v": 55.0, "l": "{}", "at": times[1]})
            schema.upgrade(engine, revision="0010")
            select = text(
                "SELECT labels->>'pod', value, cumulative_value, start_time FROM system_metrics "
                "WHERE metric_name = :n ORDER BY labels->>'pod', \"timestamp\""
            )
            with engine.connect() as connection:
                rows = [tuple(row) for row in connection.execute(select, {"n": "requests"})]
                gauge = connection.execute(text("SELECT value, start_time FROM system_metrics WHERE metric_name = 'cpu'")).one()
            assert rows == [
                ("a", 0.0, 10.0, None),
                ("a", 5.0, 15.0, times[0]),
                ("a", 3.0, 3.0, times[1]),
                ("a", 5.0, 8.0, times[2]),
                ("b", 0.0, 100.0, None),
            ]
            assert tuple(gauge) == (55.0, None)
            with engine.connect() as connection:
                dirty = connection.execute(
                    text("SELECT count(*) FROM rollup_dirty_buckets WHERE source_table = 'system_metrics' AND grain = 'hour'")
                ).scalar_one()
            assert dirty == len({moment.replace(minute=0, second=0) for moment in times})  # recomputed by the next refresh
            schema.downgrade(engine, revision="0008")
            with engine.connect() as connection:
                totals = (
                    connection.execute(
                        text(
                            "SELECT value FROM system_metrics WHERE metric_name = 'requests' ORDER BY labels->>'pod', \"timestamp\""
                        )
                    )
                    .scalars()
                    .all()
                )
            assert totals == [10.0, 15.0, 3.0, 8.0, 100.0]
        finally:
            engine.dispose()


class TestMetricAggregationRevision:
    def test_rolled_up_metric_hours_are_marked_for_recompute(self, database_factory: Callable[[], str]) -> None:
        """Revision 0011 marks every metric rollup hour from the raw horizon on dirty (older ones keep their rows),
        and its downgrade restores the 0003 view with its grants."""
        engine = make_engine(database_factory(), pool_size=1)
        try:
            schema.upgrade(engine, revision="0008")
            with engine.begin() as connection:
                for hour in ("2026-11-01 10:00+00", "2026-11-03 10:00+00"):
                    connection.execute(
                        text(
                            "INSERT INTO system_metrics_hourly (bucket_start, metric_name, samples, value_sum, observations, "
                            "weighted_sum, value_min, value_max, value_p50, value_p90, value_p95, value_p99, value_sketch_keys, "
                            "value_sketch_counts) VALUES (:hour, 'm', 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, '{}', '{}')"
                        ),
                        {"hour": hour},
                    )
                connection.execute(
                    text("UPDATE rollup_state SET raw_horizon = '2026-11-02 00:00+00' WHERE source_table = 'system_metrics'")
                )
            schema.upgrade(engine, revision="0011")
            with engine.connect() as connection:
                marked = connection.execute(
                    text("SELECT bucket_start FROM rollup_dirty_buckets WHERE source_table = 'system_metrics' AND grain = 'hour'")
                ).scalars()
                assert [hour.isoformat() for hour in marked] == ["2026-11-03T10:00:00+00:00"]
            schema.downgrade(engine, revision="0008")
            with engine.connect() as connection:
                columns = connection.execute(
                    text("SELECT column_name FROM information_schema.columns WHERE table_name = 'system_metrics_service_summary'")
                ).scalars()
                assert "observations" not in set(columns)
                granted = connection.execute(
                    text("SELECT has_table_privilege('fernando_telemetry_tenant', 'system_metrics_service_summary', 'SELECT')")
                ).scalar_one()
                assert granted is True
        finally:
            engine.dispose()
