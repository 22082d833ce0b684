"""Cumulative metric streams in the database: the writer hook's locking, the plain-row fast path, and expiry."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from fernando_telemetry.core.enums import MetricType
from fernando_telemetry.core.ingest.metrics import COLUMNS, compose
from fernando_telemetry.core.metric_points import CumulativePoint, Increment
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.services import host_metrics, retention
from fernando_telemetry.storage import metric_streams
from fernando_telemetry.storage.database import session_factory

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(hours=1)


def row(name: str, value: float, at: datetime, *, cumulative: bool = True) -> tuple[Any, ...]:
    return compose(
        metric_name=name,
        metric_type="counter" if cumulative else "gauge",
        unit=None,
        service_name="svc",
        host_name=None,
        instance_id=None,
        labels="{}",
        user_id=None,
        license_id=PLATFORM_LICENSE_ID,
        time=at,
        increment=None if cumulative else Increment(value),
        point=CumulativePoint("number", at, START, value=value) if cumulative else None,
    )


def as_dict(copy_row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(COLUMNS, copy_row, strict=True))


def streams_named(engine: Engine, name: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM metric_streams WHERE metric_name = :n"), {"n": name}).scalar_one()


class TestPrepare:
    def test_two_writers_on_one_stream_wait_for_each_other(self, committed_url: str) -> None:
        """A writer holding a stream makes another wait, which then sees the first one's point: 10 then 25 is 10 + 15."""
        name = "orders_" + uuid.uuid4().hex[:8]
        first = psycopg.connect(committed_url)
        second = psycopg.connect(committed_url)
        results: list[list[tuple[Any, ...]]] = []
        try:
            (whole,) = metric_streams.prepare(first, [row(name, 10.0, NOW - timedelta(minutes=2))])  # holds the lock

            def later() -> None:
                results.append(metric_streams.prepare(second, [row(name, 25.0, NOW - timedelta(minutes=1))]))
                second.commit()

            thread = threading.Thread(target=later)
            thread.start()
            first.commit()
            thread.join(30)
        finally:
            first.close()
            second.close()
        assert as_dict(whole)["value"] == 10.0 and as_dict(whole)["start_time"] == START
        ((increment,),) = results
        assert (as_dict(increment)["value"], as_dict(increment)["start_time"]) == (15.0, NOW - timedelta(minutes=2))

    def test_plain_rows_pass_without_touching_the_state(self, committed_url: str, committed_engine: Engine) -> None:
        """A gauge row is copied as it is and creates no stream."""
        name = "level_" + uuid.uuid4().hex[:8]
        with psycopg.connect(committed_url) as connection:
            (copied,) = metric_streams.prepare(connection, [row(name, 3.0, NOW, cumulative=False)])
        assert len(copied) == len(COLUMNS) and as_dict(copied)["value"] == 3.0
        assert streams_named(committed_engine, name) == 0

    def test_a_rolled_back_batch_leaves_no_state(self, committed_url: str, committed_engine: Engine) -> None:
        """The state is written in the caller's transaction: rolled back with the rows, the point counts again."""
        name = "retry_" + uuid.uuid4().hex[:8]
        with psycopg.connect(committed_url) as connection:
            metric_streams.prepare(connection, [row(name, 10.0, NOW)])
            connection.rollback()
            (again,) = metric_streams.prepare(connection, [row(name, 10.0, NOW)])
        assert as_dict(again)["value"] == 10.0


class TestExpiry:
    def test_streams_not_seen_for_the_retention_are_forgotten(self, committed_url: str, committed_engine: Engine) -> None:
        """The retention job removes streams whose last point is older than the metrics retention, and only those."""
        old, fresh = "old_" + uuid.uuid4().hex[:8], "fresh_" + uuid.uuid4().hex[:8]
        with psycopg.connect(committed_url) as connection:
            metric_streams.prepare(connection, [row(old, 1.0, NOW), row(fresh, 1.0, NOW)])
            connection.execute("UPDATE metric_streams SET last_seen = now() - interval '200 days' WHERE metric_name = %s", (old,))
        with session_factory(committed_engine).begin() as session:
            removed = retention.expire_metric_streams(session, now=datetime.now(UTC), metrics_retention_days=180)
        assert removed >= 1
        assert (streams_named(committed_engine, old), streams_named(committed_engine, fresh)) == (0, 1)


class TestHostMetrics:
    def test_the_host_collectors_running_totals_are_stored_as_increments(self, session: Session) -> None:
        """The built-in collector's counters (bytes sent since boot) go through their streams like any cumulative counter."""
        name = "host.network.sent." + uuid.uuid4().hex[:6]
        booted = NOW - timedelta(days=3)
        for value, at in ((1000.0, NOW - timedelta(minutes=2)), (1500.0, NOW - timedelta(minutes=1))):
            samples = [
                host_metrics.HostSample(name, MetricType.COUNTER, value, "bytes", {}, booted),
                host_metrics.HostSample(name + ".level", MetricType.GAUGE, 7.0, "percent", {}),
            ]
            assert host_metrics.record(session, samples, now=at, service_name="fernando-telemetry", host_name="h1") == 2
        stored = session.execute(
            text('SELECT value, start_time FROM system_metrics WHERE metric_name = :n ORDER BY "timestamp"'), {"n": name}
        ).all()
        assert [tuple(row) for row in stored] == [(1000.0, booted), (500.0, NOW - timedelta(minutes=2))]

    def test_a_real_reading_is_stored(self, session: Session) -> None:
        """A reading of this machine stores every sample, its counters as the first points of their streams."""
        samples = host_metrics.collect()
        assert host_metrics.record(session, samples, now=NOW, service_name="ft-" + uuid.uuid4().hex[:6]) == len(samples)
