"""Data lifecycle: per-license retention overrides, Parquet archives of dropped partitions and their restore,
and the storage-used views."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.core.errors import InvalidInput, NotFound
from fernando_telemetry.services import archives, retention, rollups
from tests.helpers import add_event, add_license, add_span

GLOBAL = {"events_retention_days": 30, "metrics_retention_days": 180, "traces_retention_days": 30}


def _roll_up(session: Session) -> None:
    rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)


def _names(session: Session, license_id: int) -> set[str]:
    return set(
        session.execute(
            text("SELECT event_name FROM telemetry_events WHERE license_id = :l AND event_name LIKE 'life-%'"), {"l": license_id}
        ).scalars()
    )


def _table_rows(session: Session, table: str, where: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in session.execute(text(f"SELECT * FROM {table} WHERE {where} ORDER BY 1, 2")).all()]


class TestOverrides:
    def test_shorter_default_and_longer_retention_per_license(self, session: Session) -> None:
        now = datetime.now(UTC)
        short, default, long_ = (add_license(session, name).license_id for name in ("short", "default", "long"))
        for license_id in (short, default, long_):
            for days in (5, 20, 45):
                add_event(
                    session,
                    at=now - timedelta(days=days),
                    license_id=license_id,
                    event_name=f"life-{days}",
                    created_at=now - timedelta(days=days),
                )
        retention.set_override(session, license_id=short, data_kind="events", retention_days=10, now=now)
        retention.set_override(session, license_id=long_, data_kind="events", retention_days=60, now=now)
        _roll_up(session)

        cleanups = retention.run(session, now=now, **GLOBAL)

        assert _names(session, short) == {"life-5"}
        assert _names(session, default) == {"life-5", "life-20"}
        assert _names(session, long_) == {"life-5", "life-20", "life-45"}  # its partition was kept for it
        events = next(c for c in cleanups if c.table_name == "telemetry_events")
        assert events.cutoff <= now - timedelta(days=60)  # partitions dropped at the longest retention

    def test_rows_not_rolled_up_are_never_deleted_by_an_override(self, session: Session) -> None:
        now = datetime.now(UTC)
        license_id = add_license(session, "late").license_id
        add_event(
            session, at=now - timedelta(days=20), license_id=license_id, event_name="life-late"
        )  # created now: not rolled up
        retention.set_override(session, license_id=license_id, data_kind="events", retention_days=10, now=now)
        retention.run(session, now=now, **GLOBAL)
        assert _names(session, license_id) == {"life-late"}
        _roll_up(session)
        retention.run(session, now=now, **GLOBAL)
        assert _names(session, license_id) == set()

    def test_bad_overrides_are_refused_with_the_field(self, session: Session) -> None:
        now = datetime.now(UTC)
        license_id = add_license(session, "x").license_id
        with pytest.raises(InvalidInput, match="unknown data kind 'logs'"):
            retention.set_override(session, license_id=license_id, data_kind="logs", retention_days=3, now=now)
        with pytest.raises(InvalidInput, match="at least 1"):
            retention.set_override(session, license_id=license_id, data_kind="events", retention_days=0, now=now)
        with pytest.raises(NotFound):
            retention.set_override(session, license_id=987654321, data_kind="events", retention_days=3, now=now)
        assert retention.list_overrides(session, license_id=license_id) == []


class TestArchive:
    def test_expired_partitions_are_archived_then_restored_exactly(self, session: Session, tmp_path: Path) -> None:
        now = datetime.now(UTC)
        license_id = add_license(session, "archived").license_id
        old = (now - timedelta(days=50)).replace(hour=10, minute=0, second=0, microsecond=0)
        for i in range(25):
            add_span(
                session,
                at=old + timedelta(minutes=i),
                license_id=license_id,
                service_name="api",
                operation_name=f"op-{i % 3}",
                attributes={"i": i, "nested": {"ok": i % 2 == 0}, "text": "ünïcode ✓"},
                duration_ms=1.5 * i,
                created_at=old,
            )
        day_filter = f"start_time >= '{old:%Y-%m-%d}' AND start_time < '{old + timedelta(days=1):%Y-%m-%d}'"
        before = _table_rows(session, "traces", day_filter)
        assert len(before) == 25
        _roll_up(session)

        archived: list[retention.ArchivedPartition] = []
        retention.run(session, now=now, archive_dir=tmp_path, on_archived=archived.append, **GLOBAL)

        partition = f"traces_p{old:%Y%m%d}"
        assert session.execute(text("SELECT to_regclass(:p)"), {"p": partition}).scalar_one() is None  # dropped
        mine = [a for a in archived if a.partition_name == partition]
        assert len(mine) == 1 and mine[0].rows == 25
        parquet = tmp_path / "traces" / f"{partition}.parquet"
        manifest = json.loads((tmp_path / "traces" / f"{partition}.manifest.json").read_text())
        assert manifest["rows"] == 25 and manifest["compression"] == "zstd" and manifest["table"] == "traces"
        assert pq.ParquetFile(parquet).metadata.row_group(0).column(0).compression == "ZSTD"
        assert pq.read_table(parquet).num_rows == 25
        recorded = session.execute(
            text("SELECT row_count, sha256 FROM partition_archives WHERE partition_name = :p"), {"p": partition}
        ).one()
        assert tuple(recorded) == (25, manifest["sha256"])

        restored = archives.restore(session, parquet, into=None, now=now)
        assert (restored.rows_in_file, restored.rows_inserted) == (25, 25)
        assert _table_rows(session, "traces", day_filter) == before  # every column, exactly
        again = archives.restore(session, tmp_path / "traces" / f"{partition}.manifest.json", into=None, now=now)
        assert again.rows_inserted == 0  # repeatable

        side = archives.restore(session, parquet, into="traces_restored", now=now)
        assert side.rows_inserted == 25
        assert _table_rows(session, "traces_restored", "true") == before

    def test_a_damaged_archive_or_a_bad_path_is_refused(self, session: Session, tmp_path: Path) -> None:
        now = datetime.now(UTC)
        old = (now - timedelta(days=45)).replace(hour=3, minute=0, second=0, microsecond=0)
        add_event(session, at=old, event_name="life-damaged", created_at=old, event_id=uuid.uuid4())
        _roll_up(session)
        retention.run(session, now=now, archive_dir=tmp_path, **GLOBAL)
        parquet = tmp_path / "telemetry_events" / f"telemetry_events_p{old:%Y%m%d}.parquet"
        data = bytearray(parquet.read_bytes())
        data[len(data) // 2] ^= 0xFF
        parquet.write_bytes(bytes(data))
        with pytest.raises(InvalidInput, match="checksum"):
            archives.restore(session, parquet, into=None, now=now)
        with pytest.raises(NotFound, match="no manifest"):
            archives.restore(session, tmp_path / "nothing.parquet", into=None, now=now)
        with pytest.raises(InvalidInput, match="not an archive"):
            archives.restore(session, tmp_path / "notes.txt", into=None, now=now)
        with pytest.raises(InvalidInput, match="plain table name"):
            archives.restore(session, parquet, into="x; DROP TABLE users", now=now)


class TestStorageViews:
    def test_storage_per_kind_partition_and_license(self, session: Session) -> None:
        now = datetime.now(UTC)
        big, small = add_license(session, "big").license_id, add_license(session, "small").license_id
        for i in range(30):
            add_event(
                session,
                at=now - timedelta(hours=3, minutes=i),
                license_id=big,
                event_name="life-s",
                created_at=now - timedelta(hours=3),
            )
        for i in range(3):
            add_event(
                session,
                at=now - timedelta(hours=3, minutes=i),
                license_id=small,
                event_name="life-s",
                created_at=now - timedelta(hours=3),
            )
        _roll_up(session)
        session.execute(text("ANALYZE telemetry_events"))
        by_license = dict(
            session.execute(
                text(
                    "SELECT license_id, rows_estimate FROM storage_by_license WHERE data_kind = 'events' AND license_id IN (:a, :b)"
                ),
                {"a": big, "b": small},
            ).all()
        )
        assert by_license == {big: 30, small: 3}
        kinds = {row.data_kind: row for row in session.execute(text("SELECT * FROM storage_by_kind")).all()}
        assert {"events", "metrics", "traces", "business_metrics", "rollups", "alerting"} <= set(kinds)
        assert kinds["events"].total_bytes > 0 and kinds["events"].partitions > 0
        today = session.execute(
            text("SELECT rows_estimate, total_bytes FROM storage_by_partition WHERE partition_name = :p"),
            {"p": f"telemetry_events_p{(now - timedelta(hours=3)):%Y%m%d}"},
        ).one()
        assert today.total_bytes > 0
        assert today.rows_estimate == 33  # on Citus: the shards' figures, not the coordinator's empty partition
