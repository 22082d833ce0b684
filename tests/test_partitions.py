"""Daily partition upkeep: ahead of time, on demand, idempotent, UTC days, and safe beside writers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text

from fernando_telemetry.core.partitioning import PARTITIONED_TABLES, days_to_cover, partition_for_day
from fernando_telemetry.services import partitions, schema
from fernando_telemetry.storage import partitions as partition_store
from fernando_telemetry.storage.database import make_engine, session_factory


@pytest.fixture()
def fresh_url(database_factory: Callable[[], str]) -> str:
    """A migrated database with no partitions yet."""
    url = database_factory()
    engine = make_engine(url, pool_size=1)
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()
    return url


class TestPartitionArithmetic:
    @pytest.mark.parametrize(
        ("now", "back", "ahead", "expected"),
        [
            (datetime(2026, 3, 1, 0, 0, tzinfo=UTC), 2, 7, (date(2026, 2, 27), date(2026, 3, 8))),
            # 23:30 in New York is already the next UTC day
            (
                datetime(2026, 3, 1, 23, 30, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("America/New_York")),
                0,
                7,
                (date(2026, 3, 1), date(2026, 3, 8)),
            ),
        ],
    )
    def test_days_to_cover_counts_utc_days(self, now: datetime, back: int, ahead: int, expected: tuple[date, date]) -> None:
        """The window is computed on UTC calendar days whatever the timezone of ``now``."""
        assert days_to_cover(now=now, days_back=back, days_ahead=ahead) == expected

    def test_naive_now_is_refused(self) -> None:
        """A naive datetime is ambiguous and rejected."""
        with pytest.raises(ValueError, match="timezone-aware"):
            days_to_cover(now=datetime(2026, 1, 1), days_back=0, days_ahead=7)

    def test_partition_names_and_bounds(self) -> None:
        """A day's partition is named after the day and spans [00:00, next 00:00) UTC."""
        part = partition_for_day("traces", date(2026, 12, 31))
        assert part.name == "traces_p20261231"
        assert part.start_at == datetime(2026, 12, 31, tzinfo=UTC)
        assert part.end_at == datetime(2027, 1, 1, tzinfo=UTC)


class TestUpkeep:
    def test_creates_a_week_ahead_and_is_idempotent(self, fresh_url: str) -> None:
        """Upkeep makes every table's partitions from days_back to days_ahead; a second run creates none."""
        engine = make_engine(fresh_url, pool_size=1)
        now = datetime(2026, 6, 15, 13, 0, tzinfo=UTC)
        try:
            with session_factory(engine).begin() as session:
                first = partitions.upkeep(session, now=now, days_back=1, days_ahead=7)
            assert first.created == {table: 9 for table in PARTITIONED_TABLES}
            with session_factory(engine).begin() as session:
                second = partitions.upkeep(session, now=now, days_back=1, days_ahead=7)
                names = [p.name for p in partition_store.list_partitions(session, table="telemetry_events")]
            assert second.total_created == 0
            assert names == [
                f"telemetry_events_p{day:%Y%m%d}" for day in (date(2026, 6, 14) + timedelta(days=i) for i in range(9))
            ]
        finally:
            engine.dispose()

    def test_on_demand_partition_accepts_rows_of_that_day_only(self, fresh_url: str) -> None:
        """A partition made on demand for a past day takes that day's rows; a day without one is refused."""
        engine = make_engine(fresh_url, pool_size=1)
        try:
            with session_factory(engine).begin() as session:
                result = partitions.ensure_for_days(session, first_day=date(2025, 1, 10), last_day=date(2025, 1, 10))
                assert result.created == {table: 1 for table in PARTITIONED_TABLES}
                session.execute(
                    text(
                        "INSERT INTO telemetry_events (event_id, event_type, event_name, event_timestamp) VALUES (:id, 'user_action', 'x', :at)"
                    ),
                    {"id": uuid.uuid4(), "at": datetime(2025, 1, 10, 23, 59, 59, 999999, tzinfo=UTC)},
                )
            with session_factory(engine).begin() as session, pytest.raises(Exception, match="no partition"):
                session.execute(
                    text(
                        "INSERT INTO telemetry_events (event_id, event_type, event_name, event_timestamp) VALUES (:id, 'user_action', 'x', :at)"
                    ),
                    {"id": uuid.uuid4(), "at": datetime(2025, 1, 11, 0, 0, tzinfo=UTC)},
                )
        finally:
            engine.dispose()

    def test_bounds_are_utc_whatever_the_session_timezone(self, fresh_url: str) -> None:
        """Partitions made from a session in another timezone still start at UTC midnight."""
        engine = make_engine(fresh_url, pool_size=1)
        try:
            with session_factory(engine).begin() as session:
                session.execute(text("SET LOCAL TimeZone = 'Asia/Kolkata'"))
                partitions.ensure_for_days(session, first_day=date(2026, 2, 1), last_day=date(2026, 2, 1), tables=("traces",))
            with session_factory(engine).begin() as session:
                (part,) = partition_store.list_partitions(session, table="traces")
            assert part.name == "traces_p20260201"
            assert datetime.fromisoformat(part.lower_bound) == datetime(2026, 2, 1, tzinfo=UTC)
            assert datetime.fromisoformat(part.upper_bound) == datetime(2026, 2, 2, tzinfo=UTC)
        finally:
            engine.dispose()

    def test_rejects_a_table_that_is_not_partitioned(self, fresh_url: str) -> None:
        """Asking upkeep for another table is a clear error, in Python and in SQL."""
        engine = make_engine(fresh_url, pool_size=1)
        try:
            with session_factory(engine).begin() as session, pytest.raises(ValueError, match="not partitioned"):
                partition_store.ensure_daily_partitions(
                    session, table="users", first_day=date(2026, 1, 1), last_day=date(2026, 1, 1)
                )
            with session_factory(engine).begin() as session, pytest.raises(Exception, match="not a partitioned table"):
                session.execute(text("SELECT ensure_daily_partitions('users', DATE '2026-01-01', DATE '2026-01-01')"))
        finally:
            engine.dispose()


class TestUpkeepBesideWriters:
    def test_concurrent_upkeep_and_writes_lose_nothing(self, fresh_url: str) -> None:
        """Two upkeep loops creating hundreds of partitions while a writer inserts: no error, every row lands."""
        engine = make_engine(fresh_url, pool_size=2)
        today = datetime.now(UTC).date()
        with session_factory(engine).begin() as session:
            partitions.ensure_for_days(session, first_day=today, last_day=today)
        errors: list[BaseException] = []
        written = 0
        stop = threading.Event()
        libpq = fresh_url

        def writer() -> None:
            nonlocal written
            try:
                with psycopg.connect(libpq, autocommit=True) as connection:
                    while not stop.is_set() or written < 200:
                        connection.execute(
                            "INSERT INTO telemetry_events (event_id, event_type, event_name, event_timestamp) "
                            "VALUES (%s, 'user_action', 'tick', now())",
                            (uuid.uuid4(),),
                        )
                        written += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)

        def upkeeper(offset: int) -> None:
            try:
                for step in range(0, 120, 10):
                    with session_factory(engine).begin() as session:
                        start = today + timedelta(days=1 + step + offset % 5)
                        partitions.ensure_for_days(session, first_day=start, last_day=start + timedelta(days=14))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=writer)] + [threading.Thread(target=upkeeper, args=(i,)) for i in range(2)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads[1:]:
                thread.join(120)
            stop.set()
            threads[0].join(60)
            assert errors == []
            with engine.connect() as connection:
                stored = connection.execute(text("SELECT count(*) FROM telemetry_events")).scalar_one()
                parts = connection.execute(
                    text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'telemetry_events'::regclass")
                ).scalar_one()
            assert stored == written
            # today, then every day from today+1 up to today+(1+110+1)+14 = today+126, each exactly once
            assert parts == 1 + 126
        finally:
            stop.set()
            engine.dispose()
