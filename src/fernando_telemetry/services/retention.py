"""Retention: archive expired partitions (optional), drop them and trim the boundary, per table, then apply
per-license overrides.

Shared span resources (``telemetry_resources``) not seen for the longest span retention (and a day) are deleted
with them. Partitions hold every license's rows of a day, so they are dropped at the LONGEST retention any license
has for that kind (the global default or an override); the rows of licenses whose own retention is shorter
are then deleted row by row, never before the rollups hold them. Before a partition is dropped it can be
written to Parquet (``storage.archive``) in ``archive_dir``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import InvalidInput, NotFound, field_problem
from fernando_telemetry.services import audit, cold_storage
from fernando_telemetry.storage import archive as archive_store
from fernando_telemetry.storage import metric_streams, resources
from fernando_telemetry.storage import retention as retention_store
from fernando_telemetry.storage import retention_overrides as overrides_store
from fernando_telemetry.storage.archive import ArchivedPartition
from fernando_telemetry.storage.models import IngestBatch, License, PartitionArchive
from fernando_telemetry.storage.results import rows_affected
from fernando_telemetry.storage.retention import TableCleanup

__all__ = [
    "ArchivedPartition",
    "DATA_KINDS",
    "TableCleanup",
    "clear_override",
    "expire_idempotency_keys",
    "list_overrides",
    "put_override",
    "read_overrides",
    "remove_override",
    "run",
    "set_override",
]

DATA_KINDS = tuple(overrides_store.KIND_TABLES)

RESOURCE_GRACE = timedelta(days=1)
"""How long past the longest span retention a resource is kept after it was last seen: its ``last_seen_at`` moves at
most hourly, and a span may start up to ``max_future_s`` after it arrived, so its last spans outlive it a little."""


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _check_kind(data_kind: str) -> None:
    if data_kind not in DATA_KINDS:
        raise InvalidInput(
            f"unknown data kind {data_kind!r}: use {', '.join(DATA_KINDS)}",
            details=[field_problem("data_kind", "unknown", allowed=list(DATA_KINDS))],
        )


def set_override(session: Session, *, license_id: int, data_kind: str, retention_days: int, now: datetime) -> None:
    """Keep ``license_id``'s raw ``data_kind`` rows ``retention_days`` days instead of the global default."""
    _check_kind(data_kind)
    if retention_days < 1:
        raise InvalidInput(
            f"retention_days must be at least 1, got {retention_days}", details=[field_problem("retention_days", "below 1")]
        )
    if session.get(License, license_id) is None:
        raise NotFound(f"license {license_id} does not exist")
    overrides_store.upsert(session, license_id=license_id, data_kind=data_kind, retention_days=retention_days, now=now)


def clear_override(session: Session, *, license_id: int, data_kind: str | None = None) -> int:
    if data_kind is not None:
        _check_kind(data_kind)
    return overrides_store.clear(session, license_id=license_id, data_kind=data_kind)


def list_overrides(session: Session, *, license_id: int | None = None) -> list[tuple[int, str, int]]:
    return overrides_store.list_all(session, license_id=license_id)


def run(
    session: Session,
    *,
    now: datetime,
    events_retention_days: int,
    metrics_retention_days: int,
    traces_retention_days: int,
    archive_dir: Path | None = None,
    on_archived: Callable[[ArchivedPartition], None] | None = None,
) -> list[TableCleanup]:
    defaults = {"events": events_retention_days, "metrics": metrics_retention_days, "traces": traces_retention_days}
    for kind, days in defaults.items():
        if days < 1:
            raise InvalidInput(f"{kind}_retention_days must be at least 1 day, got {days}")
    retention_store.record_archive_policy(session, archive_before_drop=archive_dir is not None, now=now)
    overrides = overrides_store.list_all(session)
    longest = {kind: max([days, *(d for _, k, d in overrides if k == kind)]) for kind, days in defaults.items()}

    if archive_dir is not None:
        for kind, days in longest.items():
            table, _ = overrides_store.KIND_TABLES[kind]
            for partition in archive_store.expired_partitions(session, table=table, cutoff=_hour(now - timedelta(days=days))):
                if _already_archived(session, partition):
                    continue
                archived = archive_store.archive_partition(session, partition, directory=archive_dir, now=now)
                if on_archived is not None:
                    on_archived(archived)

    for kind, days in longest.items():
        _thaw_boundary(session, kind, now, days)
    cleanups = retention_store.cleanup_old_telemetry_data(
        session,
        events_retention_days=longest["events"],
        metrics_retention_days=longest["metrics"],
        traces_retention_days=longest["traces"],
        as_of=now,
    )
    extra_deleted = {kind: _apply_overrides(session, kind, now, defaults[kind], longest[kind], overrides) for kind in defaults}
    table_kind = {table: kind for kind, (table, _) in overrides_store.KIND_TABLES.items()}
    resource_cutoff = now - timedelta(days=longest["traces"]) - RESOURCE_GRACE
    # never past the oldest partition still there: one kept past its time (not archived, not rolled up) keeps the
    # resources its spans point at
    oldest = archive_store.expired_partitions(session, table="traces", cutoff=now)[:1]
    if oldest:
        resource_cutoff = min(resource_cutoff, oldest[0].range_start - RESOURCE_GRACE)
    resources_deleted = resources.expire(session, cutoff=resource_cutoff)
    return [
        TableCleanup(
            c.table_name,
            c.cutoff,
            c.partitions_dropped,
            c.rows_dropped,
            c.rows_deleted + extra_deleted.get(table_kind.get(c.table_name, ""), 0),
            c.partitions_kept,
        )
        for c in cleanups
    ] + [TableCleanup("telemetry_resources", resource_cutoff, 0, 0, resources_deleted)]


def _already_archived(session: Session, partition: archive_store.ExpiredPartition) -> bool:
    """An archive of this partition exists and its file is still there (retention was blocked after it)."""
    path = session.scalar(
        select(PartitionArchive.path).where(
            PartitionArchive.table_name == partition.table_name, PartitionArchive.partition_name == partition.partition_name
        )
    )
    return path is not None and Path(path).is_file()


def _apply_overrides(
    session: Session, kind: str, now: datetime, default_days: int, longest_days: int, overrides: list[tuple[int, str, int]]
) -> int:
    """Delete the rows of licenses whose retention of ``kind`` is shorter than the partitions' horizon."""
    table, _ = overrides_store.KIND_TABLES[kind]
    own = {license_id: days for license_id, k, days in overrides if k == kind}
    groups: list[tuple[int | None, int]] = [(license_id, days) for license_id, days in own.items() if days < longest_days]
    if default_days < longest_days:
        groups.append((None, default_days))
    if not groups:
        return 0
    rolled_up_until = overrides_store.not_rolled_up_since(session, table=table)
    deleted = 0
    for license_id, days in groups:
        cutoff = _hour(now - timedelta(days=days))
        if rolled_up_until is not None:
            cutoff = min(cutoff, rolled_up_until)
        older = [p for p in cold_storage.partitions_of(session, table=table) if p.lower_bound is None or p.lower_bound < cutoff]
        if not any(p.access_method == cold_storage.COLUMNAR for p in older):
            deleted += overrides_store.delete_expired(
                session, data_kind=kind, cutoff=cutoff, license_id=license_id, except_licenses=sorted(own)
            )
            continue
        # a DELETE through the parent cannot even be planned over a columnar partition: delete partition by
        # partition, turning back to heap only the columnar ones that hold rows to delete
        for partition in older:
            if partition.access_method == cold_storage.COLUMNAR:
                if not overrides_store.has_expired(
                    session,
                    data_kind=kind,
                    cutoff=cutoff,
                    license_id=license_id,
                    except_licenses=sorted(own),
                    partition=partition.name,
                ):
                    continue
                cold_storage.thaw(session, table=table, start=partition.lower_bound, end=partition.upper_bound)
            deleted += overrides_store.delete_expired(
                session,
                data_kind=kind,
                cutoff=cutoff,
                license_id=license_id,
                except_licenses=sorted(own),
                partition=partition.name,
            )
    return deleted


def _thaw_boundary(session: Session, kind: str, now: datetime, longest_days: int) -> None:
    """Turn back to heap a columnar partition that ``cleanup_old_telemetry_data`` will DELETE rows from: the one
    its cutoff falls inside (the cutoff is computed the same way: the longest retention, held back to the oldest
    hour the rollups do not hold yet). Nothing to do while the table has no columnar partition."""
    table, _ = overrides_store.KIND_TABLES[kind]
    if not any(p.access_method == cold_storage.COLUMNAR for p in cold_storage.partitions_of(session, table=table)):
        return
    cutoff = _hour(now - timedelta(days=longest_days))
    rolled_up_until = overrides_store.not_rolled_up_since(session, table=table)
    if rolled_up_until is not None:
        cutoff = min(cutoff, rolled_up_until)
    cold_storage.thaw_boundary(session, table=table, cutoff=cutoff)


def expire_idempotency_keys(session: Session, *, now: datetime, window_hours: int) -> int:
    """Forget the stored answers of batches older than the deduplication window; returns how many."""
    result = session.execute(delete(IngestBatch).where(IngestBatch.created_at < now - timedelta(hours=window_hours)))
    return rows_affected(result)


def expire_metric_streams(session: Session, *, now: datetime, metrics_retention_days: int) -> int:
    """Forget the state of cumulative metric streams not seen for the metrics retention; returns how many.

    Their rows are past retention by then; a stream that sends again starts over from its next point."""
    return metric_streams.expire(session, cutoff=now - timedelta(days=metrics_retention_days))


def put_override(
    sessions: sessionmaker[Session], *, caller: Caller, license_id: int, data_kind: str, retention_days: int
) -> None:
    """The use case behind ``retention overrides set``: the override and its audit entry in one transaction."""
    with sessions.begin() as session:
        now = caller.now()
        set_override(session, license_id=license_id, data_kind=data_kind, retention_days=retention_days, now=now)
        audit.record(
            session,
            actor=caller.actor,
            action="retention.override",
            target_type="license",
            target_id=license_id,
            license_id=license_id,
            now=now,
            details={"data_kind": data_kind, "retention_days": retention_days},
        )


def remove_override(sessions: sessionmaker[Session], *, caller: Caller, license_id: int, data_kind: str | None = None) -> int:
    """The use case behind ``retention overrides clear``: how many overrides went, audited in the same transaction."""
    with sessions.begin() as session:
        removed = clear_override(session, license_id=license_id, data_kind=data_kind)
        audit.record(
            session,
            actor=caller.actor,
            action="retention.override_clear",
            target_type="license",
            target_id=license_id,
            license_id=license_id,
            now=caller.now(),
            details={"data_kind": data_kind},
        )
    return removed


def read_overrides(
    sessions: sessionmaker[Session], *, caller: Caller, license_id: int | None = None
) -> list[tuple[int, str, int]]:
    """The use case behind ``retention overrides list``."""
    with sessions() as session:
        return list_overrides(session, license_id=caller.visible_license(license_id))
