"""Per-license retention overrides in SQL: read and change them, and delete one license's expired raw rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.storage.results import rows_affected

__all__ = ["KIND_TABLES", "clear", "delete_expired", "has_expired", "list_all", "not_rolled_up_since", "upsert"]

KIND_TABLES: dict[str, tuple[str, str]] = {
    "events": ("telemetry_events", "event_timestamp"),
    "metrics": ("system_metrics", "timestamp"),
    "traces": ("traces", "start_time"),
}
"""data kind -> (raw table, its time column); both are fixed names, never user input."""


def list_all(session: Session, *, license_id: int | None = None) -> list[tuple[int, str, int]]:
    """(license_id, data_kind, retention_days), by license and kind."""
    query = "SELECT license_id, data_kind, retention_days FROM retention_overrides"
    params: dict[str, object] = {}
    if license_id is not None:
        query += " WHERE license_id = :license_id"
        params["license_id"] = license_id
    rows = session.execute(text(query + " ORDER BY license_id, data_kind"), params).all()
    return [(int(license_), str(kind), int(days)) for license_, kind, days in rows]


def upsert(session: Session, *, license_id: int, data_kind: str, retention_days: int, now: datetime) -> None:
    session.execute(
        text(
            "INSERT INTO retention_overrides (license_id, data_kind, retention_days, created_at, updated_at) "
            "VALUES (:license_id, :kind, :days, :now, :now) ON CONFLICT (license_id, data_kind) "
            "DO UPDATE SET retention_days = EXCLUDED.retention_days, updated_at = EXCLUDED.updated_at"
        ),
        {"license_id": license_id, "kind": data_kind, "days": retention_days, "now": now},
    )


def clear(session: Session, *, license_id: int, data_kind: str | None) -> int:
    query = "DELETE FROM retention_overrides WHERE license_id = :license_id"
    params: dict[str, object] = {"license_id": license_id}
    if data_kind is not None:
        query += " AND data_kind = :kind"
        params["kind"] = data_kind
    return rows_affected(session.execute(text(query), params))


def not_rolled_up_since(session: Session, *, table: str) -> datetime | None:
    """The oldest hour of ``table`` the rollups do not hold yet (pending rows, dirty buckets); None when all are."""
    _, time_column = next(spec for spec in KIND_TABLES.values() if spec[0] == table)
    pending = session.execute(
        text(
            f"SELECT min(date_trunc('hour', {time_column}, 'UTC')) FROM {table} WHERE created_at > "  # noqa: S608 fixed names
            "coalesce((SELECT watermark FROM rollup_state WHERE source_table = :table), '-infinity')"
        ),
        {"table": table},
    ).scalar_one()
    dirty = session.execute(
        text("SELECT min(bucket_start) FROM rollup_dirty_buckets WHERE source_table = :table"), {"table": table}
    ).scalar_one()
    candidates = [value for value in (pending, dirty) if value is not None]
    return min(candidates) if candidates else None


def delete_expired(
    session: Session,
    *,
    data_kind: str,
    cutoff: datetime,
    license_id: int | None,
    except_licenses: list[int],
    partition: str | None = None,
) -> int:
    """Delete raw rows of ``data_kind`` older than ``cutoff``: of one license, or (``license_id`` None) of every
    license not in ``except_licenses`` and of rows without a license. ``partition``: only from that partition of
    the kind's table (a name from the catalog)."""
    table, time_column = KIND_TABLES[data_kind]
    where, params = _expired(time_column, cutoff=cutoff, license_id=license_id, except_licenses=except_licenses)
    result = session.execute(text(f"DELETE FROM {_relation(table, partition)} WHERE {where}"), params)  # noqa: S608 fixed names
    return rows_affected(result)


def has_expired(
    session: Session, *, data_kind: str, cutoff: datetime, license_id: int | None, except_licenses: list[int], partition: str
) -> bool:
    """Whether ``delete_expired`` with the same arguments would delete anything from ``partition``."""
    table, time_column = KIND_TABLES[data_kind]
    where, params = _expired(time_column, cutoff=cutoff, license_id=license_id, except_licenses=except_licenses)
    found = session.execute(text(f"SELECT EXISTS (SELECT 1 FROM {_relation(table, partition)} WHERE {where})"), params)  # noqa: S608 fixed names
    return bool(found.scalar_one())


def _expired(
    time_column: str, *, cutoff: datetime, license_id: int | None, except_licenses: list[int]
) -> tuple[str, dict[str, object]]:
    if license_id is not None:
        return f"{time_column} < :cutoff AND license_id = :license_id", {"cutoff": cutoff, "license_id": license_id}
    return (
        f"{time_column} < :cutoff AND (license_id IS NULL OR license_id <> ALL(:except_licenses))",
        {"cutoff": cutoff, "except_licenses": except_licenses},
    )


def _relation(table: str, partition: str | None) -> str:
    return table if partition is None else '"' + partition.replace('"', '""') + '"'
