"""``archive restore`` attacked: crafted archives, other tables, rewritten files and manifests, widened ranges.

Real partitions of two licenses are archived by the retention job into a database of this module; each attack
runs the real command (``python -m fernando_telemetry archive restore``) against it on a copy of the archive,
and checks the outcome in the database: nothing written, no partition made, no key minted, the refusal one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.services import partitions, retention, rollups, schema
from fernando_telemetry.storage import archive as archive_store
from fernando_telemetry.storage.database import make_engine, session_factory
from tests.helpers import add_event, add_license

GLOBAL = {"events_retention_days": 30, "metrics_retention_days": 180, "traces_retention_days": 30}


@dataclass(frozen=True)
class Archived:
    url: str
    engine: Engine
    directory: Path
    partition: str
    license_a: int
    license_b: int

    @property
    def parquet(self) -> Path:
        return self.directory / "telemetry_events" / f"{self.partition}.parquet"

    @property
    def manifest(self) -> Path:
        return self.directory / "telemetry_events" / f"{self.partition}.manifest.json"

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar_one()

    def rows(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]


@pytest.fixture(scope="module")
def archived(database_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archived]:
    """Events of licenses A (3) and B (2) on a day 40 days back, rolled up, archived and dropped by retention."""
    url = database_factory()
    engine = make_engine(url, pool_size=2)
    schema.upgrade(engine)
    now = datetime.now(UTC)
    old = (now - timedelta(days=40)).replace(hour=10, minute=0, second=0, microsecond=0)
    directory = tmp_path_factory.mktemp("archives")
    with session_factory(engine).begin() as session:
        partitions.ensure_for_days(session, first_day=(now - timedelta(days=45)).date(), last_day=now.date() + timedelta(days=1))
        a, b = add_license(session, "A").license_id, add_license(session, "B").license_id
        for i, license_id in enumerate([a, a, a, b, b]):
            add_event(session, at=old + timedelta(minutes=i), license_id=license_id, event_name=f"restore-{i}", created_at=old)
    with session_factory(engine).begin() as session:
        rollups.refresh(session, now=now, safety_lag_s=0)
    with session_factory(engine).begin() as session:
        retention.run(session, now=now, archive_dir=directory, **GLOBAL)
    found = Archived(url, engine, directory, f"telemetry_events_p{old:%Y%m%d}", a, b)
    assert found.parquet.is_file() and found.scalar("SELECT to_regclass(:p) IS NULL", p=found.partition)
    yield found
    engine.dispose()


def _restore(archived: Archived, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": archived.url}
    return subprocess.run(
        [sys.executable, "-m", "fernando_telemetry", "archive", "restore", str(path), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    print(result.stderr)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for phrase in phrases:
        assert phrase in " ".join(result.stderr.split()), result.stderr


def _copy(archived: Archived, directory: Path) -> tuple[Path, Path]:
    """A copy of the real archive to tamper with: its Parquet file and manifest."""
    target = directory / "copy"
    target.mkdir()
    shutil.copy(archived.parquet, target / archived.parquet.name)
    shutil.copy(archived.manifest, target / archived.manifest.name)
    return target / archived.parquet.name, target / archived.manifest.name


def _reseal(parquet: Path, manifest_path: Path, table: pa.Table, **changes: object) -> None:
    """Rewrite the file and give the manifest beside it the file's own checksum (what an attacker can do)."""
    pq.write_table(table, parquet, compression="zstd")
    manifest = json.loads(manifest_path.read_text())
    manifest.update(sha256=hashlib.sha256(parquet.read_bytes()).hexdigest(), file_bytes=parquet.stat().st_size, **changes)
    manifest_path.write_text(json.dumps(manifest))


def _state(archived: Archived) -> tuple[object, ...]:
    return (
        archived.scalar("SELECT count(*) FROM api_keys"),
        archived.scalar("SELECT count(*) FROM audit_log WHERE action = 'archive.restore'"),
        archived.scalar("SELECT count(*) FROM telemetry_events WHERE event_name LIKE 'restore-%'"),
        archived.scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'telemetry_events'::regclass"),
    )


def test_a_crafted_archive_cannot_write_api_keys_or_users(archived: Archived, tmp_path: Path) -> None:
    before = _state(archived)
    columns = [
        row[0]
        for row in archived.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_keys' ORDER BY ordinal_position"
        )
    ]
    parquet, manifest_path = tmp_path / "mint.parquet", tmp_path / "mint.manifest.json"
    pq.write_table(pa.table({name: ["1"] for name in columns}), parquet)
    checksum = hashlib.sha256(parquet.read_bytes()).hexdigest()
    manifest = {
        "format": "fernando-telemetry-partition-archive/1",
        "table": "api_keys",
        "partition": "mint",
        "range_start": "2026-01-01T00:00:00+00:00",
        "range_end": "2026-01-02T00:00:00+00:00",
        "rows": 1,
        "columns": [{"name": name, "postgres_type": "text"} for name in columns],
        "file": "mint.parquet",
        "sha256": checksum,
    }
    manifest_path.write_text(json.dumps(manifest))
    _refused(_restore(archived, parquet), "'table' must be one of")  # as its own table
    manifest["table"] = "telemetry_events"
    manifest_path.write_text(json.dumps(manifest))
    for table in ("api_keys", "users", "licenses"):
        _refused(_restore(archived, parquet, "--into", table), f"into: {table!r} is a table of Fernando Telemetry")
    _refused(_restore(archived, parquet), "no archive of telemetry_events partition mint is recorded")
    assert _state(archived) == before  # no key minted, nothing written


def test_into_an_existing_table_is_refused(archived: Archived, tmp_path: Path) -> None:
    with archived.engine.begin() as connection:
        connection.execute(text("CREATE TABLE mine_already (note text)"))
    try:
        before = _state(archived)
        _refused(_restore(archived, archived.parquet, "--into", "mine_already"), "exists already")
        _refused(_restore(archived, archived.parquet, "--into", "telemetry_events"), "table of Fernando Telemetry")
        _refused(_restore(archived, archived.parquet, "--into", archived.partition[:-1] + "x; DROP"), "plain table name")
        assert archived.scalar("SELECT count(*) FROM mine_already") == 0
        assert _state(archived) == before
    finally:
        with archived.engine.begin() as connection:
            connection.execute(text("DROP TABLE mine_already"))


def test_a_rewritten_archive_with_its_own_checksum_is_refused(archived: Archived, tmp_path: Path) -> None:
    before = _state(archived)
    parquet, manifest_path = _copy(archived, tmp_path)
    table = pq.read_table(parquet)
    names = table.column("event_name").to_pylist()
    _reseal(
        parquet,
        manifest_path,
        table.set_column(table.schema.get_field_index("event_name"), "event_name", pa.array(["forged"] * len(names))),
    )
    _refused(_restore(archived, parquet), "differs from what was recorded", "sha256")
    # the file alone rewritten, the manifest kept: checked against the recorded checksum too
    shutil.copy(archived.manifest, manifest_path)
    _refused(_restore(archived, parquet), "does not match the checksum recorded")
    assert _state(archived) == before
    assert archived.scalar("SELECT to_regclass(:p) IS NULL", p=archived.partition)  # no partition made for it


def test_rows_moved_from_one_license_to_another_are_refused(archived: Archived, tmp_path: Path) -> None:
    before = _state(archived)
    parquet, manifest_path = _copy(archived, tmp_path)
    table = pq.read_table(parquet)
    moved = pa.array([archived.license_a] * table.num_rows, type=table.schema.field("license_id").type)
    _reseal(parquet, manifest_path, table.set_column(table.schema.get_field_index("license_id"), "license_id", moved))
    _refused(_restore(archived, parquet), "differs from what was recorded")
    assert _state(archived) == before
    assert archived.scalar("SELECT count(*) FROM telemetry_events WHERE license_id = :a", a=archived.license_a) == 0

    # the rows themselves are checked against the record too (a second line behind the checksum): the same
    # rewritten file with a record that vouches for its checksum but keeps the licenses it recorded
    with Session(archived.engine) as session, session.begin():
        manifest, _ = archive_store.read_manifest(parquet)
        recorded = archive_store.recorded_archive(session, table="telemetry_events", partition=archived.partition)
        assert recorded is not None and recorded.license_rows == {str(archived.license_a): 3, str(archived.license_b): 2}
        vouched = replace(recorded, sha256=manifest["sha256"])
        with pytest.raises(InvalidInput, match="rows of other licenses"):
            archive_store.restore_archive(
                session, parquet, manifest=manifest, recorded=vouched, into="moved_rows", now=datetime.now(UTC)
            )
        session.rollback()
    assert archived.scalar("SELECT to_regclass('moved_rows') IS NULL")


def test_rows_outside_the_recorded_day_are_refused(archived: Archived, tmp_path: Path) -> None:
    parquet, manifest_path = _copy(archived, tmp_path)
    table = pq.read_table(parquet)
    later = pa.array(
        [t + timedelta(days=5) for t in table.column("event_timestamp").to_pylist()],
        type=table.schema.field("event_timestamp").type,
    )
    _reseal(parquet, manifest_path, table.set_column(table.schema.get_field_index("event_timestamp"), "event_timestamp", later))
    with Session(archived.engine) as session, session.begin():
        manifest, _ = archive_store.read_manifest(parquet)
        recorded = archive_store.recorded_archive(session, table="telemetry_events", partition=archived.partition)
        assert recorded is not None
        with pytest.raises(InvalidInput, match="outside its partition's recorded range"):
            archive_store.restore_archive(
                session,
                parquet,
                manifest=manifest,
                recorded=replace(recorded, sha256=manifest["sha256"]),
                into="late_rows",
                now=datetime.now(UTC),
            )
        session.rollback()


def test_a_widened_range_is_refused_and_makes_no_partition(archived: Archived, tmp_path: Path) -> None:
    before = _state(archived)
    parquet, manifest_path = _copy(archived, tmp_path)
    manifest = json.loads(manifest_path.read_text())
    manifest["range_start"] = (datetime.fromisoformat(manifest["range_start"]) - timedelta(days=92)).isoformat()
    manifest_path.write_text(json.dumps(manifest))
    _refused(_restore(archived, parquet), "differs from what was recorded", "range_start")
    assert _state(archived) == before  # partitions of telemetry_events: as many as before


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b"{}",
        b'{"format": "fernando-telemetry-partition-archive/1", "table": "telemetry_events"}',
        "rows",
        "file",
        "range_start",
        "columns",
        "sha256",
        b"[" * 100_000,
    ],
    ids=["broken-json", "binary", "list", "empty", "no-partition", "rows", "file", "range", "columns", "sha256", "deep"],
)
def test_a_malformed_manifest_is_one_line(archived: Archived, tmp_path: Path, content: bytes | str) -> None:
    parquet, manifest_path = _copy(archived, tmp_path)
    if isinstance(content, bytes):
        manifest_path.write_bytes(content)
    else:
        manifest = json.loads(manifest_path.read_text())
        manifest[content] = {
            "rows": "5",
            "file": "../../../etc/passwd",
            "range_start": "yesterday",
            "columns": [{"name": 'x"; DROP TABLE users; --'}],
            "sha256": None,
        }[content]
        manifest_path.write_text(json.dumps(manifest))
    before = _state(archived)
    _refused(_restore(archived, parquet), "not a valid manifest")
    assert _state(archived) == before


def test_a_valid_restore_works_and_is_audited(archived: Archived) -> None:
    result = _restore(archived, archived.parquet, "--into", "restored_events")
    print(result.stdout, result.stderr)
    assert result.returncode == 0 and "restored 5 of 5 rows into restored_events" in result.stdout
    assert archived.scalar("SELECT count(*) FROM restored_events WHERE license_id = :b", b=archived.license_b) == 2

    result = _restore(archived, archived.manifest)
    assert result.returncode == 0 and "restored 5 of 5 rows into telemetry_events" in result.stdout, result.stderr
    per_license = dict(
        archived.rows("SELECT license_id, count(*) FROM telemetry_events WHERE event_name LIKE 'restore-%' GROUP BY license_id")
    )
    assert per_license == {archived.license_a: 3, archived.license_b: 2}

    with archived.engine.connect() as connection:
        entries = connection.execute(
            text("SELECT actor, target_id, details FROM audit_log WHERE action = 'archive.restore' ORDER BY entry_id")
        ).all()
    assert [(actor, details["into"], details["rows_inserted"], details["partition"]) for actor, _, details in entries] == [
        ("cli", "restored_events", 5, archived.partition),
        ("cli", "telemetry_events", 5, archived.partition),
    ]
    assert all("operator" in details and details["rows_in_file"] == 5 for _, _, details in entries)
