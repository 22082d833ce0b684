"""Cold storage on a server with ``citus_columnar`` (the CI PostgreSQL 15 builds Citus first): old partitions turn
columnar without losing a row, queries, late rows, rollups, retention, archives and ``status`` keep working.

Skipped only where the server lacks the extension (``pg_available_extensions``), such as the embedded PostgreSQL 18.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from fernando_telemetry.composition import jobs
from fernando_telemetry.composition.wiring import build
from fernando_telemetry.core.partitioning import partition_for_day
from fernando_telemetry.services import cold_storage, partitions, retention, rollups, schema, status
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage import columnar
from fernando_telemetry.storage.archive import ArchivedPartition
from fernando_telemetry.storage.columnar import ColumnarSupport
from fernando_telemetry.storage.database import make_engine, session_factory
from tests.helpers import add_event, add_license, add_span
from tests.ingest_fixtures import Tenant, make_tenant

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
COLD_DAY = (NOW - timedelta(days=5)).date()
COLD_NOON = datetime.combine(COLD_DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)


@pytest.fixture(scope="module", autouse=True)
def _needs_columnar(server_url: str) -> None:
    with psycopg.connect(server_url) as connection:
        found = connection.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'citus_columnar'").fetchone()
    if found is None:
        pytest.skip("this PostgreSQL server has no citus_columnar extension (pg_available_extensions)")


def _storage(session: Session, table: str, day: Any) -> str:
    name = partition_for_day(table, day).name
    return next(p.access_method for p in cold_storage.partitions_of(session, table=table) if p.name == name)


def _convert(session: Session, table: str, day: Any) -> int:
    """Convert one partition (installing the extension in the session's transaction first)."""
    assert cold_storage.availability(session, install=True) == columnar.support(session)
    name = partition_for_day(table, day).name
    partition = next(p for p in cold_storage.partitions_of(session, table=table) if p.name == name)
    return cold_storage.convert(session, partition=partition, distributed=False)


def _count(session: Session, query: str, **params: Any) -> int:
    return int(session.execute(text(query), params).scalar_one())


class TestConversionInOneTransaction:
    def test_the_oldest_due_partition_is_converted_and_keeps_every_row(self, session: Session) -> None:
        """A step converts the oldest heap partition whose day ended ``after_days`` ago; a partition with rows keeps
        each of them, readable through the parent."""
        spans = [add_span(session, at=COLD_NOON + timedelta(minutes=i), duration_ms=float(i)) for i in range(30)]
        due = cold_storage.due_partitions(session, now=NOW, after_days=2)
        step = cold_storage.convert_step(session, now=NOW, after_days=2)
        assert step.converted == due[0].name and step.unavailable is None and step.busy is None
        assert all(p.upper_bound is not None and p.upper_bound <= NOW - timedelta(days=2) for p in due)
        assert partition_for_day("traces", NOW.date()).name not in {p.name for p in due}

        before = session.execute(text("SELECT span_id, duration_ms FROM traces ORDER BY span_id")).all()
        assert _convert(session, "traces", COLD_DAY) == 30
        assert _storage(session, "traces", COLD_DAY) == "columnar"
        assert session.execute(text("SELECT span_id, duration_ms FROM traces ORDER BY span_id")).all() == before
        assert {row[0] for row in before} == {span.span_id for span in spans}
        remaining = {p.name for p in cold_storage.due_partitions(session, now=NOW, after_days=2)}
        assert partition_for_day("traces", COLD_DAY).name not in remaining and step.converted not in remaining

    def test_columnar_takes_inserts_and_on_conflict_do_nothing_but_no_delete(self, session: Session) -> None:
        """What the ingest path needs works on a cold partition (INSERT, ON CONFLICT DO NOTHING on the primary key);
        DELETE does not, which is why retention turns a partition back to heap first."""
        span = add_span(session, at=COLD_NOON)
        _convert(session, "traces", COLD_DAY)
        add_span(session, at=COLD_NOON + timedelta(minutes=1))
        session.execute(
            text(
                "INSERT INTO traces (trace_id, span_id, operation_name, service_name, start_time, end_time, duration_ms) "
                "VALUES (:t, :s, 'GET /', 'web', :at, :at, 1) ON CONFLICT DO NOTHING"
            ),
            {"t": span.trace_id, "s": span.span_id, "at": COLD_NOON},
        )
        assert _count(session, "SELECT count(*) FROM traces WHERE start_time >= :d", d=COLD_NOON - timedelta(hours=1)) == 2
        with pytest.raises(Exception, match="not supported"), session.begin_nested():
            session.execute(text("DELETE FROM traces WHERE span_id = :s"), {"s": span.span_id})

    def test_partitions_retention_is_about_to_reach_stay_heap(self, session: Session) -> None:
        """Partitions within a day of the retention cutoff (the longest of the default and the overrides) are not
        due: retention would turn them back to heap, or drop them, right away."""
        day = partition_for_day("telemetry_events", (NOW - timedelta(days=50)).date())
        near = partition_for_day("telemetry_events", (NOW - timedelta(days=9)).date())

        def due(retention: dict[str, int]) -> set[str]:
            return {p.name for p in cold_storage.due_partitions(session, now=NOW, after_days=2, retention_days=retention)}

        assert {day.name, near.name} <= due({"telemetry_events": 90})
        assert day.name not in due({"telemetry_events": 30}) and near.name in due({"telemetry_events": 30})
        assert near.name not in due({"telemetry_events": 9})
        assert partition_for_day("traces", (NOW - timedelta(days=50)).date()).name in due({"telemetry_events": 9})
        license_ = add_license(session, "long")
        retention.set_override(session, license_id=license_.license_id, data_kind="events", retention_days=60, now=NOW)
        assert day.name in due({"telemetry_events": 30})

    def test_after_days_zero_turns_it_off(self, session: Session) -> None:
        """0 days: nothing is due, and the scheduler has no columnar job."""
        add_event(session, at=COLD_NOON)
        assert cold_storage.due_partitions(session, now=NOW, after_days=0) == []
        assert cold_storage.convert_step(session, now=NOW, after_days=0).converted is None
        assert "columnar" not in {job.name for job in jobs.default_jobs(Settings(columnar_after_days=0))}
        assert "columnar" in {job.name for job in jobs.default_jobs(Settings(columnar_after_days=2))}


def _roll_up(session: Session) -> None:
    rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)


class TestRetentionOnColumnar:
    def test_boundary_inside_a_columnar_partition_deletes_exactly_the_expired_rows(self, session: Session) -> None:
        """The cutoff falls inside a columnar partition: it goes back to heap, rows before the cutoff are deleted,
        rows after it stay; an older columnar partition is dropped whole."""
        now = NOW.replace(hour=12)
        cutoff = now - timedelta(days=90)
        kept = add_event(session, at=cutoff + timedelta(hours=1))
        add_event(session, at=cutoff - timedelta(hours=1))
        add_event(session, at=cutoff - timedelta(hours=2))
        add_event(session, at=now - timedelta(days=95))
        _roll_up(session)
        _convert(session, "telemetry_events", cutoff.date())
        _convert(session, "telemetry_events", (now - timedelta(days=95)).date())

        cleanups = {
            c.table_name: c
            for c in retention.run(
                session, now=now, events_retention_days=90, metrics_retention_days=180, traces_retention_days=30
            )
        }

        assert cleanups["telemetry_events"].rows_deleted == 2
        assert cleanups["telemetry_events"].rows_dropped == 1
        assert session.execute(text("SELECT event_id FROM telemetry_events")).scalars().all() == [kept.event_id]
        assert _storage(session, "telemetry_events", cutoff.date()) == "heap"

    def test_a_shorter_license_override_thaws_only_partitions_holding_its_rows(self, session: Session) -> None:
        """A license kept 30 days: its older rows in columnar partitions are deleted (those partitions go back to
        heap); another license's rows stay, and a columnar partition without the license's rows stays columnar."""
        now = NOW.replace(hour=12)
        short, other = add_license(session, "short"), add_license(session, "other")
        retention.set_override(session, license_id=short.license_id, data_kind="events", retention_days=30, now=now)
        day_40, day_35, day_50 = ((now - timedelta(days=d)).date() for d in (40, 35, 50))
        add_event(session, at=now - timedelta(days=40), license_id=short.license_id)
        add_event(session, at=now - timedelta(days=35), license_id=short.license_id)
        add_event(session, at=now - timedelta(days=40), license_id=other.license_id)
        add_event(session, at=now - timedelta(days=50), license_id=other.license_id)
        _roll_up(session)
        for day in (day_40, day_35, day_50):
            _convert(session, "telemetry_events", day)

        cleanups = {
            c.table_name: c
            for c in retention.run(
                session, now=now, events_retention_days=90, metrics_retention_days=180, traces_retention_days=30
            )
        }

        assert cleanups["telemetry_events"].rows_deleted == 2
        licenses = session.execute(text("SELECT license_id FROM telemetry_events")).scalars().all()
        assert sorted(licenses) == [other.license_id, other.license_id]
        assert (_storage(session, "telemetry_events", day_40), _storage(session, "telemetry_events", day_35)) == ("heap", "heap")
        assert _storage(session, "telemetry_events", day_50) == "columnar"

    def test_an_expired_columnar_partition_is_archived_then_dropped(self, session: Session, tmp_path: Path) -> None:
        """Archiving reads a columnar partition like any other: the Parquet file holds its rows."""
        now = NOW.replace(hour=12)
        old = now - timedelta(days=100)
        ids = {add_event(session, at=old + timedelta(minutes=i)).event_id for i in range(3)}
        _roll_up(session)
        _convert(session, "telemetry_events", old.date())
        archived: list[ArchivedPartition] = []

        retention.run(
            session,
            now=now,
            events_retention_days=90,
            metrics_retention_days=180,
            traces_retention_days=30,
            archive_dir=tmp_path,
            on_archived=archived.append,
        )

        (mine,) = [a for a in archived if a.partition_name == partition_for_day("telemetry_events", old.date()).name]
        table = pq.read_table(mine.path)
        assert {uuid.UUID(value) for value in table.column("event_id").to_pylist()} == ids
        assert (
            _count(session, "SELECT count(*) FROM telemetry_events WHERE event_timestamp < :c", c=now - timedelta(days=90)) == 0
        )


class TestStatus:
    def test_status_counts_rows_and_bytes_by_storage_kind(self, session: Session) -> None:
        """``status`` reports heap and columnar partitions of a table apart, with exact columnar row counts."""
        for i in range(7):
            add_span(session, at=COLD_NOON + timedelta(minutes=i))
        add_span(session, at=NOW)
        _convert(session, "traces", COLD_DAY)

        found = status.report(session, now=NOW, exact=True)

        traces = next(t for t in found.tables if t.name == "traces")
        kinds = {kind.storage: kind for kind in traces.storage_kinds}
        assert kinds["columnar"].partitions == 1 and kinds["columnar"].rows == 7
        assert kinds["heap"].rows == 1
        assert kinds["columnar"].bytes_per_row == kinds["columnar"].total_bytes / 7
        cold = next(p for p in traces.partitions if p.day == COLD_DAY)
        assert (cold.storage, cold.rows, cold.rows_exact) == ("columnar", 7, True)
        assert found.cold_storage == "columnar access method installed"

    def test_estimated_status_does_not_sample_a_columnar_partition(self, session: Session) -> None:
        """Without ``exact``, a columnar partition (which has no sample scan) is counted from its stripe metadata."""
        for i in range(4):
            add_event(session, at=COLD_NOON + timedelta(minutes=i))
        _convert(session, "telemetry_events", COLD_DAY)
        found = status.report(session, now=NOW, count_below_bytes=0)
        events = next(t for t in found.tables if t.name == "telemetry_events")
        cold = next(p for p in events.partitions if p.day == COLD_DAY)
        assert (cold.storage, cold.rows, cold.rows_exact) == ("columnar", 4, True)


class TestWithoutTheMethod:
    def test_a_role_that_may_not_create_the_extension_gets_the_reason(
        self, server_url: str, database_factory: Callable[[], str]
    ) -> None:
        """Where the extension cannot be created (it needs a superuser), nothing is converted and the step says why."""
        url = database_factory()
        role = f"ft_cold_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        engine = make_engine(url, pool_size=1)
        try:
            with session_factory(engine)() as session:
                session.execute(text(f'SET ROLE "{role}"'))
                found = cold_storage.availability(session, install=True)
                step = cold_storage.convert_step(session, now=NOW, after_days=2)
                session.rollback()
        finally:
            engine.dispose()
            with psycopg.connect(server_url, autocommit=True) as connection:
                connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        assert isinstance(found, str) and "could not be created" in found and "permission denied" in found
        assert step.converted is None and step.unavailable == found

    def test_the_reason_names_the_missing_extension(self) -> None:
        """The text ``status`` and the job print on a server without the extension (the embedded PostgreSQL 18)."""
        absent = ColumnarSupport(installed=False, available=False, distributed=False)
        assert absent.reason == "extension citus_columnar is not available on this server (pg_available_extensions)"
        assert ColumnarSupport(installed=False, available=True, distributed=False).reason.endswith("not created yet")


# --- the job, the ingest path and the query API on a database of its own (these commit) ---


@pytest.fixture(scope="module")
def cold_engine(database_factory: Callable[[], str]) -> Iterator[Engine]:
    url = database_factory()
    engine = make_engine(url, pool_size=4)
    schema.upgrade(engine)
    with session_factory(engine).begin() as session:
        partitions.ensure_for_days(session, first_day=NOW.date() - timedelta(days=7), last_day=NOW.date() + timedelta(days=7))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def cold_client(cold_engine: Engine) -> Iterator[TestClient]:
    wiring = build(Settings(ingest_max_body_bytes=200_000), engine=cold_engine)
    wiring.start()
    try:
        with TestClient(wiring.app) as client:
            yield client
    finally:
        wiring.stop()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _post(client: TestClient, tenant: Tenant, kind: str, items: list[dict[str, Any]]) -> None:
    answer = client.post(f"/api/v1/{kind}", json={kind: items}, headers=_auth(tenant.ingest_key)).json()
    assert answer == {"accepted": len(items), "rejected": []}, answer


def _events(count: int, *, at: datetime, name: str) -> list[dict[str, Any]]:
    return [
        {"event_type": "user_action", "event_name": name, "event_timestamp": _iso(at + timedelta(seconds=i)), "payload": {"i": i}}
        for i in range(count)
    ]


def _answers(client: TestClient, tenant: Tenant, trace_id: str) -> tuple[Any, Any, Any]:
    day_from, day_to = COLD_NOON - timedelta(hours=12), COLD_NOON + timedelta(hours=12)
    trace = client.get(f"/api/v1/traces/{trace_id}", headers=_auth(tenant.read_key))
    events = client.get(
        "/api/v1/events", params={"from": _iso(day_from), "to": _iso(day_to), "limit": "50"}, headers=_auth(tenant.read_key)
    )
    found = client.get(
        "/api/v1/traces",
        params={"from": _iso(day_from), "to": _iso(day_to), "service": "checkout"},
        headers=_auth(tenant.read_key),
    )
    assert trace.status_code == events.status_code == found.status_code == 200, (trace.text, events.text, found.text)
    return trace.json(), events.json(), found.json()


def _hourly_events(engine: Engine, license_id: int) -> int:
    with session_factory(engine)() as session:
        return _count(session, "SELECT coalesce(sum(events), 0) FROM telemetry_events_hourly WHERE license_id = :l", l=license_id)


class TestColdJob:
    def test_the_job_converts_old_days_and_the_api_answers_the_same(self, cold_engine: Engine, cold_client: TestClient) -> None:
        """Rows sent through the ingest API into an old day: after the job the partitions are columnar, the query
        API answers exactly as before, late rows COPYed into the cold day are stored and rolled up."""
        tenant = make_tenant(cold_engine)
        trace_id = uuid.uuid4().hex
        spans = [
            {
                "trace_id": trace_id,
                "span_id": f"{i + 1:016x}",
                "parent_span_id": None if i == 0 else "0000000000000001",
                "operation_name": f"op{i % 3}",
                "service_name": "checkout",
                "start_time": _iso(COLD_NOON + timedelta(milliseconds=10 * i)),
                "duration_ms": 5.0 + i,
            }
            for i in range(12)
        ]
        _post(cold_client, tenant, "spans", spans)
        _post(cold_client, tenant, "events", _events(40, at=COLD_NOON, name="before"))
        before = _answers(cold_client, tenant, trace_id)
        sessions = session_factory(cold_engine)

        outcome = jobs.columnar_run(Settings(columnar_after_days=2))(sessions, NOW)

        assert outcome.ran, outcome.summary
        with sessions() as session:
            assert _storage(session, "traces", COLD_DAY) == _storage(session, "telemetry_events", COLD_DAY) == "columnar"
            assert _storage(session, "traces", NOW.date()) == "heap"
            assert cold_storage.due_partitions(session, now=NOW, after_days=2) == []
        assert _answers(cold_client, tenant, trace_id) == before
        assert jobs.columnar_run(Settings(columnar_after_days=2))(sessions, NOW).summary == (
            "columnar: 0 partitions converted (0 rows)"
        )

        _post(cold_client, tenant, "events", _events(5, at=COLD_NOON + timedelta(hours=1), name="late"))
        with sessions.begin() as session:
            assert _count(session, "SELECT count(*) FROM telemetry_events WHERE license_id = :l", l=tenant.license_id) == 45
            assert _storage(session, "telemetry_events", COLD_DAY) == "columnar"
            rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)
        assert _hourly_events(cold_engine, tenant.license_id) == 45

    def test_a_busy_partition_is_left_for_the_next_run(self, cold_engine: Engine) -> None:
        """A partition locked by someone else past the lock timeout is skipped and reported; the next run converts it."""
        sessions = session_factory(cold_engine)
        day = (NOW - timedelta(days=4)).date()
        name = partition_for_day("system_metrics", day).name
        with sessions.begin() as session:
            cold_storage.thaw(session, table="system_metrics", start=None, end=None)
            assert _storage(session, "system_metrics", day) == "heap"
        holder = sessions()
        try:
            holder.execute(text(f'LOCK TABLE "{name}" IN ACCESS SHARE MODE'))
            outcome = jobs.columnar_run(Settings(columnar_after_days=2))(sessions, NOW)
            assert name in outcome.summary and "busy" in outcome.summary
            with sessions() as session:
                assert _storage(session, "system_metrics", day) == "heap"
        finally:
            holder.rollback()
            holder.close()
        outcome = jobs.columnar_run(Settings(columnar_after_days=2))(sessions, NOW)
        assert "busy" not in outcome.summary
        with sessions() as session:
            assert _storage(session, "system_metrics", day) == "columnar"
