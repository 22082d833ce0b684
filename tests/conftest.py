"""Shared fixtures: a real PostgreSQL for the whole run, fresh databases on it, a migrated one, and
a session per test inside a transaction that is rolled back.

Without ``TEST_DATABASE_URL`` a throwaway embedded PostgreSQL 18 is started (the same mechanism as
``serve``); with it, databases are created on that server and dropped at the end. With ``TEST_CITUS=1`` the server
is a throwaway Citus cluster (``tests/citus_cluster.py``: a coordinator and two workers of the machine's PostgreSQL 15
with Citus), every database is created on all its nodes, and ``schema.upgrade`` distributes the tables; tests marked
``single_node`` are skipped there.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fernando_telemetry.composition.wiring import Wiring, build
from fernando_telemetry.services import partitions, schema
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import libpq_url, make_engine, session_factory, sqlalchemy_url
from fernando_telemetry.storage.embedded import EmbeddedPostgres
from tests.citus_cluster import CitusCluster

# Servers the tests start (``serve``, ``demo`` subprocesses inherit this) keep the OTLP/gRPC receiver off unless a
# test names a port: two of them must never race for the fixed default 4317.
os.environ.setdefault("FERNANDO_TELEMETRY_OTLP_GRPC_PORT", "0")
# Nor do they turn old partitions of the shared databases into columnar ones (which refuse UPDATE and DELETE, and
# which other tests' rows are in): tests/test_columnar.py runs the cold storage job on its own databases.
os.environ.setdefault("FERNANDO_TELEMETRY_COLUMNAR_AFTER_DAYS", "0")


ON_CITUS = os.environ.get("TEST_CITUS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not ON_CITUS:
        return
    for item in items:
        marker = item.get_closest_marker("single_node")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "single-node only")
            item.add_marker(pytest.mark.skip(reason=f"not on Citus: {reason}"))


@pytest.fixture(scope="session")
def citus_cluster() -> Iterator[CitusCluster | None]:
    """The run's Citus cluster under TEST_CITUS=1, else None."""
    if not ON_CITUS:
        yield None
        return
    cluster = CitusCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def server_url(citus_cluster: CitusCluster | None) -> Iterator[str]:
    """URL of a maintenance database on the PostgreSQL server the run uses."""
    if citus_cluster is not None:
        yield citus_cluster.url
        return
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield libpq_url(external)
        return
    root = Path(tempfile.mkdtemp(prefix="ft-test-pg-"))
    cluster = EmbeddedPostgres(root, port=0, database="postgres", durable=False)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def server_version(server_url: str) -> int:
    with psycopg.connect(server_url) as connection:
        return int(connection.info.server_version) // 10000


@pytest.fixture(scope="session")
def database_factory(server_url: str, citus_cluster: CitusCluster | None) -> Iterator[Callable[[], str]]:
    """Create empty databases on the test server (on every node of the Citus cluster, with the extension); all are
    dropped when the run ends."""
    created: list[str] = []

    def create() -> str:
        name = f"ft_test_{uuid.uuid4().hex[:10]}"
        if citus_cluster is not None:
            return citus_cluster.create_database(name)
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return sqlalchemy_url(server_url).set(database=name).set(drivername="postgresql").render_as_string(hide_password=False)

    yield create
    if citus_cluster is not None:
        return  # the cluster's directory goes with it
    with psycopg.connect(server_url, autocommit=True) as connection:
        for name in created:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def migrated_url(database_factory: Callable[[], str]) -> str:
    """A database migrated to head with daily partitions from 120 days back to 14 ahead."""
    url = database_factory()
    engine = make_engine(url, pool_size=1)
    try:
        schema.upgrade(engine)
        today = datetime.now(UTC).date()
        with session_factory(engine).begin() as session:
            partitions.ensure_for_days(session, first_day=today - timedelta(days=120), last_day=today + timedelta(days=14))
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def committed_url(database_factory: Callable[[], str]) -> str:
    """A second migrated database for tests whose writes are committed (the ingest path, live servers),
    so they never show up in the rolled-back tests that count rows of the shared one."""
    url = database_factory()
    engine = make_engine(url, pool_size=1)
    try:
        schema.upgrade(engine)
        today = datetime.now(UTC).date()
        with session_factory(engine).begin() as session:
            partitions.ensure_for_days(session, first_day=today - timedelta(days=7), last_day=today + timedelta(days=14))
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def committed_engine(committed_url: str) -> Iterator[Engine]:
    engine = make_engine(committed_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture()
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test; service commits become savepoints."""
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture()
def running_wiring(committed_engine: Engine) -> Iterator[Wiring]:
    """The server's writer, ingestor and app on the committed-writes database, writer running."""
    # the tests' HTTP receivers listen on loopback, which webhooks may reach only when allowed
    wiring = build(Settings(ingest_max_body_bytes=200_000, webhook_allowed_networks="127.0.0.0/8"), engine=committed_engine)
    wiring.start()
    try:
        yield wiring
    finally:
        wiring.stop()


@pytest.fixture()
def client(running_wiring: Wiring) -> Iterator[TestClient]:
    with TestClient(running_wiring.app) as test_client:
        yield test_client


@pytest.fixture()
def live_server(running_wiring: Wiring) -> Iterator[str]:
    """The app served by uvicorn on a free local port, for clients that speak real HTTP; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(running_wiring.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
