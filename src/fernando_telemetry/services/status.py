"""The state of an installation in one report: the database, its migration revision, rows and bytes of
every table and partition, the rollups' lag, the last run of each scheduled job, and on Citus the nodes and shards.

Row counts are the planner's estimates (``pg_class.reltuples``, scaled to the heap's current size as the
planner does), so the report is fast at any size; a relation never analyzed is counted exactly while
small and sampled otherwise; ``exact=True`` counts every relation. Imports
``services.job_runs``, ``services.schema`` and storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fernando_telemetry.services import job_runs, schema
from fernando_telemetry.storage import citus, columnar, status_queries
from fernando_telemetry.storage import rollups as rollup_store
from fernando_telemetry.storage.models import AlertRule
from fernando_telemetry.storage.rollups import RollupFailure
from fernando_telemetry.storage.status_queries import RelationFigures

__all__ = [
    "EXACT_COUNT_MAX_BYTES",
    "ClusterStatus",
    "MAX_FAILING_RULES",
    "FailingRule",
    "DatabaseStatus",
    "JobStatus",
    "Listeners",
    "PartitionStatus",
    "RollupFailure",
    "RollupLag",
    "StatusReport",
    "StorageKindStatus",
    "TableStatus",
    "report",
]

EXACT_COUNT_MAX_BYTES = 16 * 1024 * 1024
"""A relation without a usable estimate is counted exactly up to this heap size, and sampled above it."""

SAMPLE_PAGES = 256
"""Pages a sample reads when a larger relation without an estimate is sampled."""


@dataclass(frozen=True)
class DatabaseStatus:
    name: str
    server_version: str
    size_bytes: int
    revision: str | None
    """The migration revision of the database; None when it was never migrated."""
    head: str
    """The newest revision this code knows."""

    @property
    def up_to_date(self) -> bool:
        return self.revision == self.head


@dataclass(frozen=True)
class PartitionStatus:
    name: str
    day: date | None
    """The UTC day a daily partition holds; None for a default partition."""
    rows: int
    rows_exact: bool
    """False: ``rows`` is an estimate."""
    total_bytes: int
    storage: str = "heap"
    """``heap``, or ``columnar`` for a partition in cold storage."""


@dataclass(frozen=True)
class StorageKindStatus:
    """The partitions of one table stored one way, and what a row costs there (data, indexes and TOAST)."""

    storage: str
    partitions: int
    rows: int
    total_bytes: int

    @property
    def bytes_per_row(self) -> float | None:
        return self.total_bytes / self.rows if self.rows else None


@dataclass(frozen=True)
class TableStatus:
    name: str
    partitioned: bool
    rows: int
    rows_exact: bool
    """False when any part of ``rows`` is an estimate."""
    total_bytes: int
    """Heap, indexes and TOAST; for a partitioned table, the sum over its partitions."""
    partitions: list[PartitionStatus] = field(default_factory=list)

    @property
    def storage_kinds(self) -> list[StorageKindStatus]:
        """Per storage kind of its partitions (heap first): partitions, rows, bytes and bytes per row."""
        kinds: dict[str, StorageKindStatus] = {}
        for part in self.partitions:
            seen = kinds.get(part.storage, StorageKindStatus(part.storage, 0, 0, 0))
            kinds[part.storage] = StorageKindStatus(
                part.storage, seen.partitions + 1, seen.rows + part.rows, seen.total_bytes + part.total_bytes
            )
        return sorted(kinds.values(), key=lambda kind: (kind.storage != "heap", kind.storage))

    @property
    def oldest_day(self) -> date | None:
        days = [part.day for part in self.partitions if part.day is not None]
        return min(days) if days else None

    @property
    def newest_day(self) -> date | None:
        days = [part.day for part in self.partitions if part.day is not None]
        return max(days) if days else None


@dataclass(frozen=True)
class RollupLag:
    table: str
    watermark: datetime | None
    """Raw rows written up to here are rolled up; None before the first refresh."""
    lag_s: float | None
    """How far the watermark is behind ``now``; None before the first refresh."""
    refreshed_at: datetime | None
    dirty_hours: int
    dirty_days: int
    oldest_dirty: datetime | None


@dataclass(frozen=True)
class JobStatus:
    name: str
    interval_s: float | None
    """How often this server's scheduler runs it; None for a job recorded here but not scheduled."""
    last_started_at: datetime | None
    last_finished_at: datetime | None
    outcome: str | None
    """ok, skipped or failed of the last finished run; None when it never finished one."""
    summary: str | None
    error: str | None
    duration_ms: float | None
    runs: int
    failures: int

    @property
    def running(self) -> bool:
        """Started after its last end: running now, or stopped by a crash mid-run."""
        return self.last_started_at is not None and (
            self.last_finished_at is None or self.last_started_at > self.last_finished_at
        )


@dataclass(frozen=True)
class Listeners:
    """Where a server with these settings listens (the configuration read by ``status``, not a probe of a process)."""

    host: str
    http_port: int
    otlp_grpc_port: int | None
    """The OTLP/gRPC receiver's port; None when it is turned off."""


@dataclass(frozen=True)
class FailingRule:
    """An enabled alert rule whose last evaluation did not succeed: ``status`` ``error`` (``error`` says why, a
    timeout included) or ``too_many_groups``."""

    rule_id: int
    license_id: int | None
    name: str
    status: str
    error: str | None
    last_evaluated_at: datetime | None


@dataclass(frozen=True)
class StatusReport:
    generated_at: datetime
    database: DatabaseStatus
    tables: list[TableStatus]
    rollups: list[RollupLag]
    jobs: list[JobStatus]
    listeners: Listeners | None = None
    failing_rules: list[FailingRule] = field(default_factory=list)
    """At most ``MAX_FAILING_RULES`` of them, the most recently evaluated first."""
    rollup_failures: list[RollupFailure] = field(default_factory=list)
    """Buckets whose rollup recomputation failed (error and when); every other bucket advanced."""
    cold_storage: str = ""
    """Whether this server can keep old partitions as columnar, and if not, why."""
    cluster: ClusterStatus | None = None
    """On Citus: the nodes and the distributed tables; None on a single PostgreSQL server."""


@dataclass(frozen=True)
class ClusterStatus:
    """A Citus cluster: its nodes with their shard placements, and the tables Citus manages."""

    nodes: list[citus.CitusNode]
    tables: list[citus.CitusTable]


MAX_FAILING_RULES = 50


def report(
    session: Session,
    *,
    now: datetime,
    exact: bool = False,
    scheduled_jobs: Mapping[str, float] | None = None,
    count_below_bytes: int = EXACT_COUNT_MAX_BYTES,
    listeners: Listeners | None = None,
) -> StatusReport:
    """The whole report, read in the caller's session. ``scheduled_jobs`` maps the names of the jobs this
    server schedules to their interval, so a job that never ran is listed too. A relation without a usable
    estimate is counted when its heap is at most ``count_below_bytes``, sampled otherwise. ``listeners``
    (from the settings) is passed through to the report."""
    figures = status_queries.database_figures(session)
    database = DatabaseStatus(
        name=figures.name,
        server_version=figures.server_version,
        size_bytes=figures.size_bytes,
        revision=status_queries.alembic_revision(session),
        head=schema.head(),
    )
    return StatusReport(
        generated_at=now,
        database=database,
        tables=_tables(session, exact=exact, block_size=figures.block_size, count_below_bytes=count_below_bytes),
        rollups=_rollups(session, now=now),
        jobs=_jobs(session, scheduled_jobs or {}),
        listeners=listeners,
        failing_rules=[] if database.revision is None else _failing_rules(session),
        rollup_failures=_rollup_failures(session),
        cold_storage=columnar.support(session).reason,
        cluster=_cluster(session),
    )


def _cluster(session: Session) -> ClusterStatus | None:
    connection = session.connection()
    if not citus.has_citus(connection):
        return None
    return ClusterStatus(nodes=citus.nodes(connection), tables=citus.tables(connection))


def _failing_rules(session: Session) -> list[FailingRule]:
    columns = (
        AlertRule.rule_id,
        AlertRule.license_id,
        AlertRule.name,
        AlertRule.last_evaluation_status,
        AlertRule.last_error,
        AlertRule.last_evaluated_at,
    )
    query = (
        select(*columns)
        .where(AlertRule.enabled, AlertRule.last_evaluation_status.is_not(None), AlertRule.last_evaluation_status != "ok")
        .order_by(AlertRule.last_evaluated_at.desc().nulls_last(), AlertRule.rule_id)
        .limit(MAX_FAILING_RULES)
    )
    try:
        with session.begin_nested():  # a database behind head may lack these columns: the rest of the report still stands
            rows = session.execute(query).all()
    except DBAPIError:
        return []
    return [FailingRule(row[0], row[1], row[2], row[3] or "", row[4], row[5]) for row in rows]


def _tables(session: Session, *, exact: bool, block_size: int, count_below_bytes: int) -> list[TableStatus]:
    found = status_queries.relations(session)
    partitions_of: dict[str, list[PartitionStatus]] = {}
    for relation in found:
        if relation.parent is not None:
            rows, rows_exact = _row_count(
                session, relation, exact=exact, block_size=block_size, count_below_bytes=count_below_bytes
            )
            day = relation.lower_bound.astimezone(UTC).date() if relation.lower_bound is not None else None
            partitions_of.setdefault(relation.parent, []).append(
                PartitionStatus(
                    name=relation.name,
                    day=day,
                    rows=rows,
                    rows_exact=rows_exact,
                    total_bytes=relation.total_bytes,
                    storage=relation.access_method,
                )
            )
    tables = []
    for relation in found:
        if relation.parent is not None:
            continue
        if relation.partitioned:
            parts = sorted(partitions_of.get(relation.name, []), key=lambda part: (part.day is None, part.day, part.name))
            tables.append(
                TableStatus(
                    name=relation.name,
                    partitioned=True,
                    rows=sum(part.rows for part in parts),
                    rows_exact=all(part.rows_exact for part in parts),
                    total_bytes=sum(part.total_bytes for part in parts),
                    partitions=parts,
                )
            )
        else:
            rows, rows_exact = _row_count(
                session, relation, exact=exact, block_size=block_size, count_below_bytes=count_below_bytes
            )
            tables.append(
                TableStatus(
                    name=relation.name, partitioned=False, rows=rows, rows_exact=rows_exact, total_bytes=relation.total_bytes
                )
            )
    return tables


def _row_count(
    session: Session, relation: RelationFigures, *, exact: bool, block_size: int, count_below_bytes: int
) -> tuple[int, bool]:
    """Rows of one table or partition and whether the figure is exact."""
    if relation.heap_bytes == 0:
        return 0, True  # no heap page: no row, whatever the statistics say
    if relation.access_method == columnar.COLUMNAR:
        return status_queries.columnar_rows(session, relation=relation.name), True
    if exact:
        return status_queries.count_rows(session, relation=relation.name), True
    pages_now = relation.heap_bytes / block_size
    if relation.reltuples >= 0 and relation.relpages > 0:
        # the planner's own extrapolation: the density of the last ANALYZE times the pages there are now
        return round(relation.reltuples / relation.relpages * pages_now), False
    if relation.heap_bytes <= count_below_bytes:
        return status_queries.count_rows(session, relation=relation.name), True
    percent = min(100.0, SAMPLE_PAGES / pages_now * 100.0)
    return status_queries.sample_rows(session, relation=relation.name, percent=percent), False


def _rollups(session: Session, *, now: datetime) -> list[RollupLag]:
    if not status_queries.table_exists(session, name="rollup_state"):
        return []
    return [
        RollupLag(
            table=each.table,
            watermark=each.watermark,
            lag_s=(now - each.watermark).total_seconds() if each.watermark is not None else None,
            refreshed_at=each.refreshed_at,
            dirty_hours=each.dirty_hours,
            dirty_days=each.dirty_days,
            oldest_dirty=each.oldest_dirty,
        )
        for each in rollup_store.statuses(session)
    ]


def _rollup_failures(session: Session) -> list[RollupFailure]:
    if not status_queries.table_exists(session, name="rollup_failures"):
        return []
    return rollup_store.failures(session)


def _jobs(session: Session, scheduled_jobs: Mapping[str, float]) -> list[JobStatus]:
    recorded = {run.job_name: run for run in job_runs.last_runs(session)}
    names = list(scheduled_jobs) + sorted(name for name in recorded if name not in scheduled_jobs)
    found = []
    for name in names:
        run = recorded.get(name)
        found.append(
            JobStatus(
                name=name,
                interval_s=scheduled_jobs.get(name),
                last_started_at=run.last_started_at if run else None,
                last_finished_at=run.last_finished_at if run else None,
                outcome=run.last_outcome if run else None,
                summary=run.last_summary if run else None,
                error=run.last_error if run else None,
                duration_ms=run.last_duration_ms if run else None,
                runs=run.runs if run else 0,
                failures=run.failures if run else 0,
            )
        )
    return found
