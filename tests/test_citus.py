"""The Citus layout on a real cluster (TEST_CITUS=1): placements, colocation, routing, idempotent upgrades,
tenant scope on the workers, partitions and rebalancing. The classification check runs everywhere."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from fernando_telemetry.services import partitions, schema, status
from fernando_telemetry.storage import citus
from fernando_telemetry.storage.database import make_engine, session_factory
from fernando_telemetry.storage.models import metadata
from fernando_telemetry.storage.tenant_scope import TENANT_ROLE, scope_connection
from tests.citus_cluster import CitusCluster
from tests.ingest_fixtures import make_tenant

ON_CITUS = os.environ.get("TEST_CITUS") == "1"
on_citus = pytest.mark.skipif(not ON_CITUS, reason="needs the Citus cluster: TEST_CITUS=1")

DISTRIBUTED = {t for t, p in citus.PLACEMENTS.items() if p is citus.Placement.DISTRIBUTED}
REFERENCE = {t for t, p in citus.PLACEMENTS.items() if p is citus.Placement.REFERENCE}
COORDINATOR = {t for t, p in citus.PLACEMENTS.items() if p is citus.Placement.COORDINATOR}

# what the layout cannot keep, and docs/DECISIONS.md lists with what guards integrity instead
UNENFORCED_KEYS = {
    "ingest_batches.fk_ingest_batches_api_key_id_api_keys",
    *(
        f"{table}.fk_{table}_license_id_licenses"
        for table in (
            "alert_deliveries",
            "alert_events",
            "alert_notifications",
            "alert_rules",
            "alerts",
            "api_keys",
            "audit_log",
            "notification_channels",
            "retention_overrides",
            "silences",
        )
    ),
    "alert_rule_states.fk_alert_rule_states_alert_id_alerts",
    "alert_rule_states.fk_alert_rule_states_rule_id_alert_rules",
    "alert_rules.fk_alert_rules_owner_user_id_users",
    "alerts.fk_alerts_acknowledged_by_users",
    "alerts.fk_alerts_assigned_to_users",
    "alerts.fk_alerts_resolved_by_users",
    "business_metrics.fk_business_metrics_license_id_licenses",
    "metric_streams.fk_metric_streams_license_id_licenses",
    "system_metrics.fk_system_metrics_license_id_licenses",
    "system_metrics.fk_system_metrics_user_id_users",
    "system_metrics_daily.fk_system_metrics_daily_license_id_licenses",
    "system_metrics_hourly.fk_system_metrics_hourly_license_id_licenses",
    "telemetry_events.fk_telemetry_events_license_id_licenses",
    "telemetry_events.fk_telemetry_events_user_id_users",
    "telemetry_events_daily.fk_telemetry_events_daily_license_id_licenses",
    "telemetry_events_hourly.fk_telemetry_events_hourly_license_id_licenses",
    "telemetry_resources.fk_telemetry_resources_license_id_licenses",
    "traces.fk_traces_license_id_licenses",
    "traces.fk_traces_user_id_users",
    "traces_daily.fk_traces_daily_license_id_licenses",
    "traces_hourly.fk_traces_hourly_license_id_licenses",
    "users.fk_users_license_id_licenses",
}


class TestClassification:
    def test_every_table_of_the_models_has_a_placement(self) -> None:
        """A table a revision adds fails here until storage/citus.py declares where it lives on Citus."""
        assert set(metadata.tables) - set(citus.PLACEMENTS) == set()

    def test_every_distributed_table_has_the_distribution_column(self) -> None:
        """Each distributed table has a NOT NULL license_id in its model."""
        for table in DISTRIBUTED:
            column = metadata.tables[table].columns[citus.DISTRIBUTION_COLUMN]
            assert column.nullable is False, table


@on_citus
class TestLayout:
    def test_tables_have_their_declared_kind(self, engine: Engine) -> None:
        """Distributed, reference and citus local tables are exactly those PLACEMENTS names."""
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT table_name::text, citus_table_type FROM citus_tables WHERE table_name::text NOT LIKE '%\\_p2%'")
            ).all()
            managed = connection.execute(text("SELECT logicalrelid::text FROM pg_dist_partition")).all()
        kinds = dict(rows)
        assert {t for t, k in kinds.items() if k == "distributed"} == DISTRIBUTED
        assert {t for t, k in kinds.items() if k == "reference"} == REFERENCE
        assert COORDINATOR and COORDINATOR.isdisjoint(t for (t,) in managed)

    def test_distributed_tables_are_colocated_on_license_id(self, engine: Engine) -> None:
        """One colocation group, distribution column license_id, NOT NULL in the database."""
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT logicalrelid::text, colocationid, column_to_column_name(logicalrelid, partkey) "
                    "FROM pg_dist_partition WHERE partmethod = 'h' AND NOT logicalrelid::text LIKE '%\\_p2%'"
                )
            ).all()
            nullable = connection.execute(
                text(
                    "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                    "WHERE c.relname = ANY(:tables) AND a.attname = 'license_id' AND NOT a.attnotnull"
                ),
                {"tables": sorted(DISTRIBUTED)},
            ).all()
        assert {t for t, _, _ in rows} == DISTRIBUTED
        assert len({colocation for _, colocation, _ in rows}) == 1
        assert {column for _, _, column in rows} == {"license_id"}
        assert nullable == []

    def test_foreign_keys_citus_cannot_hold_are_the_documented_ones(self, engine: Engine) -> None:
        """The keys of the models missing on Citus are exactly the list docs/DECISIONS.md explains."""
        expected = {table.name: {c.name for c in table.foreign_key_constraints if c.name} for table in metadata.tables.values()}
        with engine.connect() as connection:
            missing = citus.unenforced_foreign_keys(connection, {t: {str(n) for n in names} for t, names in expected.items()})
        assert set(missing) == UNENFORCED_KEYS

    def test_tenant_role_logs_in_and_set_commands_reach_the_workers(self, engine: Engine) -> None:
        """Citus connects to the workers as the tenant role and passes SET LOCAL on."""
        with engine.connect() as connection:
            login = connection.execute(text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": TENANT_ROLE}).scalar()
            propagate = connection.execute(text("SHOW citus.propagate_set_commands")).scalar()
        assert login is True
        assert propagate == "local"


@on_citus
class TestRouting:
    def test_a_row_lands_on_the_shard_of_its_license(self, committed_engine: Engine) -> None:
        """The worker holding the license's users shard has the row; the other worker has none of it."""
        license_id, user_id = _license(committed_engine)
        with committed_engine.connect() as connection:
            shard, port = connection.execute(
                text(
                    "SELECT s.shardid, n.nodeport FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) "
                    "JOIN pg_dist_node n ON n.groupid = p.groupid "
                    "WHERE s.shardid = get_shard_id_for_distribution_column('users', CAST(:l AS bigint))"
                ),
                {"l": license_id},
            ).one()
            ports = [p for (p,) in connection.execute(text("SELECT nodeport FROM pg_dist_node WHERE groupid > 0")).all()]
        database = committed_engine.url.database
        for other in ports:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{other}/{database}") as worker:
                # to_regclass, not pg_class: Citus hides shards from pg_class for ordinary clients
                found = worker.execute("SELECT to_regclass(%s) IS NOT NULL", (f"users_{shard}",)).fetchone()
                if other == port:
                    assert found == (True,)
                    stored = worker.execute(
                        f"SELECT count(*) FROM users_{shard} WHERE license_id = %s AND user_id = %s", (license_id, user_id)
                    ).fetchone()
                    assert stored == (1,)
                else:
                    assert found == (False,)

    def test_a_query_with_a_license_filter_runs_one_task(self, committed_engine: Engine) -> None:
        """EXPLAIN of a one-license query of a distributed table shows a single task (router plan)."""
        with committed_engine.connect() as connection:
            plan = "\n".join(
                row[0]
                for row in connection.execute(
                    text("EXPLAIN SELECT count(*) FROM telemetry_events WHERE license_id = 7 AND event_type = 'user_action'")
                ).all()
            )
            everywhere = "\n".join(
                row[0] for row in connection.execute(text("EXPLAIN SELECT count(*) FROM telemetry_events")).all()
            )
        assert "Task Count: 1\n" in plan + "\n"
        assert "Task Count: 1\n" not in everywhere + "\n"

    def test_tenant_scope_filters_rows_on_the_workers(self, committed_engine: Engine) -> None:
        """Scoped to a license, a count over all shards sees that license's users only."""
        first, _ = _license(committed_engine)
        second, _ = _license(committed_engine)
        with committed_engine.connect() as connection:
            scope_connection(connection, first)
            seen = connection.execute(
                text("SELECT DISTINCT license_id FROM users WHERE license_id IN (:a, :b)"), {"a": first, "b": second}
            ).all()
            connection.rollback()
        assert seen == [(first,)]


@on_citus
class TestUnsupported:
    def test_user_sql_is_501_naming_citus(self, client: TestClient, committed_engine: Engine) -> None:
        """POST /api/v1/query answers 501 not_supported, naming Citus and the sql field."""
        tenant = make_tenant(committed_engine)
        response = client.post("/api/v1/query", headers={"Authorization": f"Bearer {tenant.read_key}"}, json={"sql": "SELECT 1"})
        assert response.status_code == 501
        error = response.json()["error"]
        assert error["code"] == "not_supported"
        assert "Citus" in error["message"]
        assert error["details"][0]["field"] == "sql"


@on_citus
class TestUpgrades:
    def test_a_second_upgrade_changes_nothing(self, migrated_url: str) -> None:
        """``db upgrade`` on a distributed database finds the layout in place."""
        engine = make_engine(migrated_url, pool_size=1)
        try:
            layout = schema.upgrade(engine)
        finally:
            engine.dispose()
        assert layout is not None
        assert not layout.changed

    def test_new_partitions_are_distributed(self, engine: Engine) -> None:
        """A partition the partition job creates is a distributed table colocated with its parent."""
        day = datetime.now(UTC).date() + timedelta(days=200)
        with session_factory(engine).begin() as session:
            partitions.ensure_for_days(session, first_day=day, last_day=day, tables=("traces",))
        name = f"traces_p{day:%Y%m%d}"
        with engine.connect() as connection:
            kind = connection.execute(
                text("SELECT citus_table_type FROM citus_tables WHERE table_name = CAST(:t AS regclass)"), {"t": name}
            ).scalar()
        assert kind == "distributed"


@on_citus
class TestStatus:
    def test_status_lists_the_nodes_and_the_distributed_tables(self, session: Session) -> None:
        """The status report names the coordinator and the workers with their shards, and each managed table's kind."""
        found = status.report(session, now=datetime.now(UTC))
        assert found.cluster is not None
        roles = [node.group_id == 0 for node in found.cluster.nodes]
        assert roles.count(True) == 1 and roles.count(False) >= 2
        assert all(node.shards > 0 for node in found.cluster.nodes if node.group_id > 0)
        kinds = {table.name: table.kind for table in found.cluster.tables}
        assert {name for name, kind in kinds.items() if kind == "distributed"} == DISTRIBUTED
        assert {name for name, kind in kinds.items() if kind == "reference"} == REFERENCE


@on_citus
class TestRebalancing:
    @pytest.fixture()
    def cluster_database(self, citus_cluster: CitusCluster, database_factory: Callable[[], str]) -> Iterator[str]:
        url = database_factory()
        engine = make_engine(url, pool_size=1)
        try:
            schema.upgrade(engine)
        finally:
            engine.dispose()
        yield url

    def test_shards_move_to_an_added_worker_and_rows_stay_readable(
        self, citus_cluster: CitusCluster, cluster_database: str
    ) -> None:
        """After a worker joins and the shards are rebalanced, it holds shards and every user is still found."""
        engine = make_engine(cluster_database, pool_size=1)
        try:
            licenses = [_license(engine) for _ in range(8)]
            node = citus_cluster.add_worker()
            with engine.begin() as connection:
                connection.execute(text("SELECT rebalance_table_shards(shard_transfer_mode => 'block_writes')"))
            with engine.connect() as connection:
                on_new = connection.execute(
                    text(
                        "SELECT count(*) FROM pg_dist_placement p JOIN pg_dist_node n ON n.groupid = p.groupid "
                        "WHERE n.nodeport = :port"
                    ),
                    {"port": node.port_in_use},
                ).scalar()
                found = connection.execute(
                    text("SELECT count(*) FROM users WHERE license_id = ANY(:ids)"),
                    {"ids": [license_id for license_id, _ in licenses]},
                ).scalar()
        finally:
            engine.dispose()
        assert on_new and on_new > 0
        assert found == len(licenses)


def _license(engine: Engine) -> tuple[int, str]:
    """A new license with one user, committed; returns both ids."""
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        license_id = connection.execute(
            text("INSERT INTO licenses (name) VALUES (:n) RETURNING license_id"), {"n": f"citus-{uuid.uuid4().hex[:8]}"}
        ).scalar_one()
        connection.execute(text("INSERT INTO users (license_id, user_id) VALUES (:l, :u)"), {"l": license_id, "u": user_id})
    return int(license_id), user_id
