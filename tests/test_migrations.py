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
