"""The Citus layout: which table is distributed, reference or coordinator-only, and the idempotent step making it so.

``PLACEMENTS`` is the one declared classification; ``distribute`` applies it after the Alembic upgrade when the
database has the ``citus`` extension (``has_citus``): foreign keys Citus cannot hold are dropped before any table
changes kind, tables are distributed by ``license_id`` (colocated with ``users``), made reference tables or citus
local tables, and the dropped keys Citus can hold are added again. A second run finds nothing to do. Imports only core.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, text

from fernando_telemetry.core.errors import FernandoTelemetryError

__all__ = [
    "DISTRIBUTION_COLUMN",
    "PLACEMENTS",
    "CitusLayout",
    "CitusLayoutError",
    "CitusNode",
    "CitusTable",
    "Placement",
    "distribute",
    "has_citus",
    "nodes",
    "tables",
    "unenforced_foreign_keys",
]

logger = logging.getLogger(__name__)

DISTRIBUTION_COLUMN = "license_id"
COLOCATION_ANCHOR = "users"
"""The first distributed table; every other one is colocated with it, so joins on license_id stay on one node."""
TENANT_LOGIN_ROLES = ("fernando_telemetry_tenant",)
"""Roles a request switches to with SET LOCAL ROLE: Citus opens the worker connections as that role, so it logs in."""


SEQUENTIAL_FUNCTIONS = ("ensure_daily_partitions", "cleanup_old_telemetry_data", "cleanup_old_rollups")
"""SQL functions that create, attach or drop partitions of distributed tables: they run with one connection per worker
(``citus.multi_shard_modify_mode = 'sequential'`` as a function setting), else a partition distributed and attached in
one explicit transaction ends in a distributed deadlock with itself. Set again after every upgrade, since a
``CREATE OR REPLACE FUNCTION`` in a later revision drops it."""


UNREFERENCED_TABLES = ("licenses",)
"""Reference tables no foreign key points to on Citus (see ``_held_by_citus``)."""


class Placement(StrEnum):
    DISTRIBUTED = "distributed"
    """Hash-distributed by license_id, colocated with users: the per-license telemetry and its rollups."""
    REFERENCE = "reference"
    """Copied to every node: licenses and the small shared tables that policies, joins and foreign keys read."""
    COORDINATOR = "coordinator"
    """A plain PostgreSQL table on the coordinator, outside Citus's metadata: bookkeeping only the coordinator's jobs
    and writer use. Not a citus local table: those refuse row policies, cannot be written in a transaction after a
    parallel multi-shard statement when keys tie them to other tables, and cannot be read from a SQL function called
    in a query Citus pushes to a shard."""
    UNMANAGED = "unmanaged"
    """Left as it is (Alembic's own version table)."""


PLACEMENTS: dict[str, Placement] = {
    # per-license telemetry, keyed by license_id
    "users": Placement.DISTRIBUTED,
    "telemetry_events": Placement.DISTRIBUTED,
    "system_metrics": Placement.DISTRIBUTED,
    "traces": Placement.DISTRIBUTED,
    "telemetry_resources": Placement.DISTRIBUTED,
    "metric_streams": Placement.DISTRIBUTED,
    "business_metrics": Placement.DISTRIBUTED,
    "telemetry_events_hourly": Placement.DISTRIBUTED,
    "telemetry_events_daily": Placement.DISTRIBUTED,
    "system_metrics_hourly": Placement.DISTRIBUTED,
    "system_metrics_daily": Placement.DISTRIBUTED,
    "traces_hourly": Placement.DISTRIBUTED,
    "traces_daily": Placement.DISTRIBUTED,
    # shared and small: every node has a copy
    "licenses": Placement.REFERENCE,
    "api_keys": Placement.REFERENCE,
    "audit_log": Placement.REFERENCE,
    "alert_rules": Placement.REFERENCE,
    "alert_rule_states": Placement.COORDINATOR,  # its row policy reads alert_rules (a subquery): Citus refuses it
    "alerts": Placement.REFERENCE,
    "alert_events": Placement.REFERENCE,
    "alert_notifications": Placement.REFERENCE,
    "alert_deliveries": Placement.REFERENCE,
    "notification_channels": Placement.REFERENCE,
    "silences": Placement.REFERENCE,
    "retention_overrides": Placement.REFERENCE,
    "query_scopes": Placement.REFERENCE,
    # the coordinator's own bookkeeping
    "job_runs": Placement.COORDINATOR,
    "rollup_state": Placement.COORDINATOR,
    "rollup_dirty_buckets": Placement.COORDINATOR,
    "rollup_failures": Placement.COORDINATOR,
    "ingest_batches": Placement.COORDINATOR,
    "partition_archives": Placement.COORDINATOR,
    "retention_settings": Placement.COORDINATOR,
    "alembic_version": Placement.UNMANAGED,
}


class CitusLayoutError(FernandoTelemetryError):
    """The database cannot be given the Citus layout (an unclassified table, or Citus refused a step)."""

    code = "citus_layout_error"


@dataclass(frozen=True)
class CitusLayout:
    """What one ``distribute`` run changed; all empty when the layout was already in place."""

    distributed: tuple[str, ...]
    reference: tuple[str, ...]
    coordinator: tuple[str, ...]
    foreign_keys_dropped: tuple[str, ...]
    foreign_keys_restored: tuple[str, ...]
    policies_dropped: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.distributed or self.reference or self.coordinator or self.foreign_keys_dropped)


@dataclass(frozen=True)
class _ForeignKey:
    table: str
    name: str
    referenced: str
    definition: str


@dataclass(frozen=True)
class CitusNode:
    """One node of the cluster and how many shard placements it holds."""

    host: str
    port: int
    group_id: int
    """0: the coordinator."""
    active: bool
    shards: int


@dataclass(frozen=True)
class CitusTable:
    """One table Citus manages (partitions left out): its kind, shards and colocation group."""

    name: str
    kind: str
    """distributed, reference or local (a citus local table on the coordinator)."""
    shard_count: int
    colocation_id: int


def nodes(connection: Connection) -> list[CitusNode]:
    """The coordinator and the workers, with the shard placements each holds."""
    rows = connection.execute(
        text(
            "SELECT n.nodename, n.nodeport, n.groupid, n.isactive, count(p.placementid) "
            "FROM pg_dist_node n LEFT JOIN pg_dist_placement p ON p.groupid = n.groupid "
            "WHERE n.noderole = 'primary' GROUP BY 1, 2, 3, 4 ORDER BY 3, 1, 2"
        )
    ).all()
    return [CitusNode(host=h, port=int(p), group_id=int(g), active=bool(a), shards=int(c)) for h, p, g, a, c in rows]


def tables(connection: Connection) -> list[CitusTable]:
    """The tables in Citus's metadata, partitions left out."""
    rows = connection.execute(
        text(
            "SELECT t.table_name::text, t.citus_table_type, t.shard_count, t.colocation_id FROM citus_tables t "
            "JOIN pg_class c ON c.oid = t.table_name WHERE NOT c.relispartition ORDER BY 2, 1"
        )
    ).all()
    return [CitusTable(name=n, kind=k, shard_count=int(s), colocation_id=int(c)) for n, k, s, c in rows]


def has_citus(connection: Connection) -> bool:
    """True when the connected database has the citus extension."""
    return connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'")).first() is not None


def distribute(connection: Connection) -> CitusLayout:
    """Give every public table its declared placement; the caller commits. Idempotent."""
    tables = _public_tables(connection)
    unclassified = sorted(set(tables) - set(PLACEMENTS))
    if unclassified:
        raise CitusLayoutError(
            f"table(s) {', '.join(unclassified)} have no Citus placement: declare them in storage/citus.py PLACEMENTS"
        )
    current = _current_kinds(connection)
    pending = {
        table: PLACEMENTS[table]
        for table in tables
        if PLACEMENTS[table] not in (Placement.UNMANAGED, Placement.COORDINATOR) and current.get(table) != PLACEMENTS[table]
    }
    _prepare_roles(connection)
    _set_function_settings(connection)
    _rule_states_policy_without_subquery(connection)
    _storage_views_from_shards(connection)
    if not pending:
        return CitusLayout((), (), (), (), ())
    keys = _foreign_keys(connection, touching=set(pending))
    for key in keys:
        connection.execute(text(f'ALTER TABLE "{key.table}" DROP CONSTRAINT "{key.name}"'))
    policies = _policies_reading_other_tables(connection, tables=set(pending))
    for table, policy in policies:
        # the user-SQL isolation policies (query_scopes by pg_backend_pid(), single-node only): without them the
        # query reader role sees no row of the table, and user SQL is refused on Citus (services.user_query)
        connection.execute(text(f'DROP POLICY "{policy}" ON "{table}"'))
    reference = sorted(t for t, p in pending.items() if p is Placement.REFERENCE)
    for table in reference:
        connection.execute(text("SELECT create_reference_table(CAST(:t AS regclass))"), {"t": table})
    coordinator: list[str] = []  # plain tables: nothing to do
    distributed = [t for t in PLACEMENTS if pending.get(t) is Placement.DISTRIBUTED]
    for table in distributed:
        anchor = "none" if table == COLOCATION_ANCHOR else COLOCATION_ANCHOR
        if table != COLOCATION_ANCHOR and current.get(COLOCATION_ANCHOR) is not Placement.DISTRIBUTED:
            if COLOCATION_ANCHOR not in distributed:
                raise CitusLayoutError(f"{COLOCATION_ANCHOR} must be distributed before {table}")
        connection.execute(
            text("SELECT create_distributed_table(CAST(:t AS regclass), :column, colocate_with => :anchor)"),
            {"t": table, "column": DISTRIBUTION_COLUMN, "anchor": anchor},
        )
    restored = []
    for key in keys:
        if not _held_by_citus(key):
            continue
        savepoint = connection.begin_nested()
        try:
            connection.execute(text(f'ALTER TABLE "{key.table}" ADD CONSTRAINT "{key.name}" {key.definition}'))
        except Exception as exc:  # Citus refuses the key: it stays dropped, and unenforced_foreign_keys names it
            savepoint.rollback()
            logger.info("foreign key %s.%s not kept on Citus: %s", key.table, key.name, str(exc).splitlines()[0])
        else:
            savepoint.commit()
            restored.append(f"{key.table}.{key.name}")
    return CitusLayout(
        distributed=tuple(distributed),
        reference=tuple(reference),
        coordinator=tuple(coordinator),
        foreign_keys_dropped=tuple(f"{key.table}.{key.name}" for key in keys),
        foreign_keys_restored=tuple(restored),
        policies_dropped=tuple(f"{table}.{policy}" for table, policy in policies),
    )


def unenforced_foreign_keys(connection: Connection, expected: dict[str, set[str]]) -> list[str]:
    """Of ``expected`` (table -> constraint names, the models' keys), those missing from the database."""
    rows = connection.execute(
        text(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
        )
    ).all()
    present = {(table, name) for table, name in rows}
    return sorted(f"{table}.{name}" for table, names in expected.items() for name in names if (table, name) not in present)


def _prepare_roles(connection: Connection) -> None:
    # SET LOCAL of the license setting reaches the workers only with this; set for new sessions of this database
    connection.execute(
        text(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET citus.propagate_set_commands = %L', "
            "current_database(), 'local'); END $$"
        )
    )
    connection.execute(text("SET LOCAL citus.propagate_set_commands = 'local'"))
    # alert_rules keeps its condition columns in step by a row trigger, which then runs on every placement: the
    # trigger is deterministic and touches only its own row, what Citus's "unsafe" triggers need to be safe
    connection.execute(text("SET LOCAL citus.enable_unsafe_triggers = on"))
    # one connection per worker for the whole step: a foreign key to a reference table cannot be added in a
    # transaction that already used parallel connections on a distributed table
    connection.execute(text("SET LOCAL citus.multi_shard_modify_mode = 'sequential'"))
    for role in TENANT_LOGIN_ROLES:
        login = connection.execute(text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar()
        if login is False:
            connection.execute(text(f'ALTER ROLE "{role}" LOGIN'))


RULE_VISIBLE_FUNCTION = """
CREATE OR REPLACE FUNCTION alert_rule_visible(p_rule_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY INVOKER AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM alert_rules WHERE rule_id = p_rule_id);
END
$$
"""


def _rule_states_policy_without_subquery(connection: Connection) -> None:
    """The tenant policy of ``alert_rule_states`` (a rule's states are visible when the rule is) through a PL/pgSQL
    function: with the subquery of revision 0005 in the policy, Citus sends the tenant's statements on this
    coordinator table to a worker (the subquery reads a reference table), where the table does not exist."""
    qual = connection.execute(
        text("SELECT qual FROM pg_policies WHERE tablename = 'alert_rule_states' AND policyname = 'tenant_isolation'")
    ).scalar()
    if qual is None or "alert_rule_visible" in qual:
        return
    connection.execute(text(RULE_VISIBLE_FUNCTION))
    connection.execute(text(f'GRANT EXECUTE ON FUNCTION alert_rule_visible(bigint) TO "{TENANT_LOGIN_ROLES[0]}"'))
    connection.execute(text("DROP POLICY tenant_isolation ON alert_rule_states"))
    connection.execute(
        text(
            f'CREATE POLICY tenant_isolation ON alert_rule_states TO "{TENANT_LOGIN_ROLES[0]}" '
            "USING (alert_rule_visible(rule_id))"
        )
    )


SHARD_FIGURES_FUNCTION = r"""
CREATE OR REPLACE FUNCTION citus_relation_figures()
RETURNS TABLE (relid oid, rows_estimate bigint, total_bytes bigint)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $fn$
DECLARE
    failed text;
    answers text[];
BEGIN
    SELECT string_agg(r.nodeid::text || ': ' || r.result, '; ') FILTER (WHERE NOT r.success),
           array_agg(r.result) FILTER (WHERE r.success)
      INTO failed, answers
      FROM run_command_on_all_nodes($cmd$
        SELECT coalesce(json_agg(json_build_array(c.relname, greatest(c.reltuples, 0), pg_total_relation_size(c.oid))), '[]')
          FROM pg_class c
         WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND c.relname ~ '_[0-9]+$'
      $cmd$) r;
    IF failed IS NOT NULL THEN
        RAISE EXCEPTION 'storage figures: a Citus node did not answer its shard sizes (%)', failed;
    END IF;
    -- a shard of a reference table has a copy on every node: each shard counts once, at its largest copy
    RETURN QUERY
    SELECT per_shard.relid, sum(per_shard.tuples)::bigint, sum(per_shard.bytes)::bigint
      FROM (SELECT s.logicalrelid::oid AS relid, s.shardid, max((e.value->>1)::float8) AS tuples,
                   max((e.value->>2)::bigint) AS bytes
              FROM unnest(answers) AS a (answer)
             CROSS JOIN LATERAL json_array_elements(a.answer::json) e
              JOIN pg_dist_shard s
                ON e.value->>0 = (SELECT c.relname FROM pg_class c WHERE c.oid = s.logicalrelid) || '_' || s.shardid
             GROUP BY s.logicalrelid, s.shardid) per_shard
     GROUP BY per_shard.relid;
END
$fn$
"""
"""Rows (the planner's estimate) and bytes of every Citus table or partition, summed over its shards on all
nodes: on Citus the coordinator's tables are empty shells, so ``pg_class`` and ``pg_total_relation_size`` of them say
nothing. Raises when a node does not answer (never a silent zero)."""

STORAGE_VIEWS_ON_CITUS = (
    r"""
CREATE OR REPLACE VIEW storage_by_partition WITH (security_invoker = true) AS
SELECT CASE parent.relname
           WHEN 'telemetry_events' THEN 'events'
           WHEN 'system_metrics' THEN 'metrics'
           WHEN 'traces' THEN 'traces'
       END AS data_kind,
       parent.relname::text AS table_name,
       child.relname::text AS partition_name,
       (regexp_match(pg_get_expr(child.relpartbound, child.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz AS range_start,
       coalesce(f.rows_estimate, greatest(child.reltuples, 0)::bigint) AS rows_estimate,
       coalesce(f.total_bytes, pg_total_relation_size(child.oid)) AS total_bytes
  FROM pg_inherits i
  JOIN pg_class parent ON parent.oid = i.inhparent
  JOIN pg_class child ON child.oid = i.inhrelid
  LEFT JOIN citus_relation_figures() f ON f.relid = child.oid
 WHERE parent.relnamespace = 'public'::regnamespace
   AND parent.relname IN ('telemetry_events', 'system_metrics', 'traces')
""",
    r"""
CREATE OR REPLACE VIEW storage_by_kind WITH (security_invoker = true) AS
WITH figures AS (
    SELECT c.oid, coalesce(f.rows_estimate, greatest(c.reltuples, 0)::bigint) AS rows_estimate,
           coalesce(f.total_bytes, pg_total_relation_size(c.oid)) AS total_bytes
      FROM pg_class c LEFT JOIN citus_relation_figures() f ON f.relid = c.oid
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
)
SELECT data_kind, count(*)::integer AS partitions, sum(rows_estimate)::bigint AS rows_estimate, sum(total_bytes)::bigint AS total_bytes
  FROM storage_by_partition GROUP BY data_kind
UNION ALL
SELECT 'business_metrics', NULL::integer, sum(g.rows_estimate)::bigint, sum(g.total_bytes)::bigint
  FROM figures g WHERE g.oid = to_regclass('business_metrics')
UNION ALL
SELECT 'rollups', NULL::integer, sum(g.rows_estimate)::bigint, sum(g.total_bytes)::bigint
  FROM figures g
 WHERE g.oid IN (to_regclass('telemetry_events_hourly'), to_regclass('telemetry_events_daily'),
                 to_regclass('system_metrics_hourly'), to_regclass('system_metrics_daily'),
                 to_regclass('traces_hourly'), to_regclass('traces_daily'))
UNION ALL
SELECT 'alerting', NULL::integer, sum(g.rows_estimate)::bigint, sum(g.total_bytes)::bigint
  FROM figures g
 WHERE g.oid IN (to_regclass('alerts'), to_regclass('alert_events'), to_regclass('alert_deliveries'),
                 to_regclass('alert_notifications'), to_regclass('alert_rules'), to_regclass('alert_rule_states'))
""",
)


def _storage_views_from_shards(connection: Connection) -> None:
    """The storage views (revision 0006) with each distributed relation's rows and bytes summed over its shards."""
    done = connection.execute(
        text(
            "SELECT to_regprocedure('citus_relation_figures()') IS NOT NULL "
            "AND pg_get_viewdef('storage_by_kind'::regclass) LIKE '%citus_relation_figures%' "
            "AND pg_get_viewdef('storage_by_partition'::regclass) LIKE '%citus_relation_figures%'"
        )
    ).scalar_one()
    if done:
        return
    connection.execute(text(SHARD_FIGURES_FUNCTION))
    for view in STORAGE_VIEWS_ON_CITUS:
        connection.execute(text(view))


def _set_function_settings(connection: Connection) -> None:
    rows = connection.execute(
        text(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
            "AND p.proname = ANY(:names) AND NOT coalesce(p.proconfig @> ARRAY['citus.multi_shard_modify_mode=sequential'], false)"
        ),
        {"names": list(SEQUENTIAL_FUNCTIONS)},
    ).all()
    for (signature,) in rows:
        connection.execute(text(f"ALTER FUNCTION {signature} SET citus.multi_shard_modify_mode = 'sequential'"))


def _public_tables(connection: Connection) -> list[str]:
    rows = connection.execute(
        text(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
            "AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"
        )
    ).all()
    return [name for (name,) in rows]


def _current_kinds(connection: Connection) -> dict[str, Placement]:
    rows = connection.execute(
        text(
            "SELECT logicalrelid::text, partmethod, repmodel FROM pg_dist_partition "
            "WHERE logicalrelid::regclass::text NOT LIKE 'pg\\_%'"
        )
    ).all()
    kinds: dict[str, Placement] = {}
    for table, method, model in rows:
        if method == "h":
            kinds[table] = Placement.DISTRIBUTED
        elif method == "n":
            # both have no distribution method; reference tables replicate by two-phase commit ('t'), citus local
            # tables live on the coordinator only ('s')
            kinds[table] = Placement.REFERENCE if model == "t" else Placement.COORDINATOR
    return kinds


def _held_by_citus(key: _ForeignKey) -> bool:
    """Whether the layout keeps ``key``: among reference tables (except into ``licenses``) and among coordinator tables.

    Keys from distributed tables are left out even where Citus could hold them (to a reference table): such a key
    makes Citus refuse any change to a reference table, or a new partition, in a transaction that has already run a
    parallel multi-shard statement. Keys into ``licenses``: to change or lock a row of a reference table, Citus locks
    the shards of the reference tables it refers to, with ``lock_shard_resources`` on the workers as the current role,
    which needs more than the tenant role's SELECT on ``licenses``. Keys into distributed tables, and between a
    coordinator table and a Citus table, Citus refuses.
    """
    placement, referenced = PLACEMENTS.get(key.table), PLACEMENTS.get(key.referenced)
    if placement is Placement.REFERENCE and referenced is Placement.REFERENCE:
        return key.referenced not in UNREFERENCED_TABLES
    return placement is Placement.COORDINATOR and referenced is Placement.COORDINATOR


def _policies_reading_other_tables(connection: Connection, *, tables: set[str]) -> list[tuple[str, str]]:
    rows = connection.execute(
        text(
            "SELECT tablename, policyname FROM pg_policies WHERE schemaname = 'public' "
            "AND (qual ~* '\\mselect\\M' OR with_check ~* '\\mselect\\M') ORDER BY 1, 2"
        )
    ).all()
    return [(table, policy) for table, policy in rows if table in tables]


def _foreign_keys(connection: Connection, *, touching: set[str]) -> list[_ForeignKey]:
    rows = connection.execute(
        text(
            "SELECT conrelid::regclass::text, conname, confrelid::regclass::text, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace AND conparentid = 0 "
            "ORDER BY 1, 2"
        )
    ).all()
    return [
        _ForeignKey(table=table, name=name, referenced=referenced, definition=definition)
        for table, name, referenced, definition in rows
        if table in touching or referenced in touching
    ]
