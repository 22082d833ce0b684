"""Alembic revisions: upgrade -> downgrade -> upgrade on an empty database, and no drift from the models."""

from __future__ import annotations

from collections.abc import Callable

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
    "system_metrics_hour_summary",
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
