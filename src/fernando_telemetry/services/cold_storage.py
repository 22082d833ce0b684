"""Cold storage: daily partitions whose whole day is older than a setting are rewritten as columnar, one per
transaction, and partitions that must lose rows (retention) are turned back to heap first.

Where the server lacks the ``columnar`` access method nothing is converted and ``availability`` says why.
Imports storage and core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fernando_telemetry.core.partitioning import PARTITIONED_TABLES
from fernando_telemetry.storage import columnar
from fernando_telemetry.storage import retention_overrides as overrides_store
from fernando_telemetry.storage.columnar import ColumnarSupport, PartitionStorage

__all__ = [
    "COLUMNAR",
    "HEAP",
    "ColdStep",
    "ColumnarSupport",
    "PartitionStorage",
    "availability",
    "convert_step",
    "due_partitions",
    "partitions_of",
    "thaw",
    "thaw_boundary",
]

COLUMNAR = columnar.COLUMNAR
HEAP = columnar.HEAP

LOCK_TIMEOUT_MS = 2000
"""How long a conversion waits for its partition's lock; a partition still busy then is tried on the next run."""


@dataclass(frozen=True)
class ColdStep:
    """What one conversion transaction did."""

    converted: str | None
    """The partition now columnar; None when there was nothing to do (or it was busy)."""
    rows: int
    busy: str | None = None
    """A partition skipped because its lock was not free within the timeout."""
    unavailable: str | None = None
    """Why nothing could be converted on this server; None when columnar is usable."""


def availability(session: Session, *, install: bool) -> ColumnarSupport | str:
    """The server's columnar support; with ``install``, create the extension where it is available and missing.
    Returns the support, or the server's reason why creating the extension failed."""
    found = columnar.support(session)
    if found.installed or not found.available or not install:
        return found
    failure = columnar.install(session)
    if failure is not None:
        return f"extension {columnar.EXTENSION} is available but could not be created: {failure}"
    return columnar.support(session)


def partitions_of(session: Session, *, table: str) -> list[PartitionStorage]:
    """The partitions of ``table`` with their storage kind and size, in bound order."""
    return columnar.partitions(session, table=table)


def due_partitions(
    session: Session, *, now: datetime, after_days: int, retention_days: Mapping[str, int] | None = None
) -> list[PartitionStorage]:
    """Heap partitions whose whole day ended ``after_days`` days before ``now`` or earlier, oldest first (after_days 0:
    none). With ``retention_days`` (the default retention per table), partitions that retention will delete rows from
    or drop within a day are left as they are: the longest retention of the table (its default or a license's
    override) falls inside them or past them, and turning them columnar would only have retention turn them back."""
    if after_days <= 0:
        return []
    horizon = now - timedelta(days=after_days)
    keep_from = _retention_horizons(session, now=now, retention_days=retention_days or {})
    due = [
        partition
        for table in PARTITIONED_TABLES
        for partition in columnar.partitions(session, table=table)
        if partition.access_method == columnar.HEAP
        and partition.upper_bound is not None
        and partition.upper_bound <= horizon
        and (table not in keep_from or (partition.lower_bound is not None and partition.lower_bound >= keep_from[table]))
    ]
    return sorted(due, key=lambda partition: (partition.upper_bound, partition.table))


def _retention_horizons(session: Session, *, now: datetime, retention_days: Mapping[str, int]) -> dict[str, datetime]:
    """Per table, where the partitions worth converting start: a day after its retention cutoff (the longest of the
    default and every license's override), since the cutoff moves a day per day."""
    overrides = overrides_store.list_all(session)
    horizons = {}
    for kind, (table, _) in overrides_store.KIND_TABLES.items():
        if table not in retention_days:
            continue
        longest = max([retention_days[table], *(days for _, k, days in overrides if k == kind)])
        horizons[table] = now - timedelta(days=longest - 1)
    return horizons


def convert_step(
    session: Session,
    *,
    now: datetime,
    after_days: int,
    retention_days: Mapping[str, int] | None = None,
    skip: frozenset[str] = frozenset(),
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> ColdStep:
    """Convert the oldest due partition (see ``due_partitions``) not in ``skip`` to columnar in the caller's transaction, which should hold
    nothing else: the partition's rewrite is the transaction. A lock not granted within ``lock_timeout_ms`` raises
    nothing: the step reports the partition ``busy`` after rolling back to before it."""
    found = availability(session, install=True)
    if isinstance(found, str):
        return ColdStep(converted=None, rows=0, unavailable=found)
    if not found.installed:
        return ColdStep(converted=None, rows=0, unavailable=found.reason)
    due = due_partitions(session, now=now, after_days=after_days, retention_days=retention_days)
    candidates = [p for p in due if p.name not in skip]
    if not candidates:
        return ColdStep(converted=None, rows=0)
    partition = candidates[0]
    try:
        with session.begin_nested():
            columnar.lock_partition(session, relation=partition.name, lock_timeout_ms=lock_timeout_ms)
    except DBAPIError as error:
        if columnar.is_lock_timeout(error):
            return ColdStep(converted=None, rows=0, busy=partition.name)
        raise
    try:
        with session.begin_nested():
            rows = convert(session, partition=partition, distributed=found.distributed)
    except DBAPIError as error:
        if columnar.is_not_permitted(error):
            reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
            return ColdStep(converted=None, rows=0, unavailable=f"this role may not convert partitions: {reason}")
        raise
    return ColdStep(converted=partition.name, rows=rows)


def convert(session: Session, *, partition: PartitionStorage, distributed: bool) -> int:
    """Rewrite one heap partition as columnar and prove no row was lost (else raise, and the caller rolls back)."""
    before = columnar.row_count(session, relation=partition.name)
    distributed = distributed and columnar.is_distributed(session, relation=partition.name)
    columnar.set_access_method(
        session, table=partition.table, relation=partition.name, method=columnar.COLUMNAR, distributed=distributed
    )
    after = columnar.row_count(session, relation=partition.name)
    if after != before:
        raise RuntimeError(f"{partition.name}: {before} rows before the columnar rewrite, {after} after; rolled back")
    return after


def thaw(session: Session, *, table: str, start: datetime | None, end: datetime | None) -> list[str]:
    """Turn back to heap every columnar partition of ``table`` that meets ``[start, end)`` (None: unbounded), so
    its rows can be deleted; returns their names. The columnar job converts them again on its next run."""
    thawed = []
    for partition in columnar.partitions(session, table=table):
        if partition.access_method != columnar.COLUMNAR:
            continue
        if start is not None and partition.upper_bound is not None and partition.upper_bound <= start:
            continue
        if end is not None and partition.lower_bound is not None and partition.lower_bound >= end:
            continue
        distributed = columnar.is_distributed(session, relation=partition.name)
        columnar.set_access_method(session, table=table, relation=partition.name, method=columnar.HEAP, distributed=distributed)
        thawed.append(partition.name)
    return thawed


def thaw_boundary(session: Session, *, table: str, cutoff: datetime) -> list[str]:
    """Turn back to heap the columnar partition that holds ``cutoff`` strictly inside it (retention's boundary
    partition, where rows before ``cutoff`` are DELETEd): a DELETE cannot even be planned over a columnar partition."""
    for partition in columnar.partitions(session, table=table):
        if partition.access_method != columnar.COLUMNAR or partition.lower_bound is None or partition.upper_bound is None:
            continue
        if partition.lower_bound < cutoff < partition.upper_bound:
            return thaw(session, table=table, start=partition.lower_bound, end=partition.upper_bound)
    return []
