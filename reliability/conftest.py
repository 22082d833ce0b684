"""Fixtures of the fault tests: the test suite's PostgreSQL (``TEST_DATABASE_URL`` or a throwaway embedded 18) and
its fresh databases, migrated databases with a tenant, an embedded PostgreSQL of a test's own (``own_cluster``), and
``figures``: what a test prints, shown in the terminal
summary and kept in ``reliability/results/``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fernando_telemetry.services import schema
from fernando_telemetry.storage.database import make_engine
from fernando_telemetry.storage.embedded import EmbeddedPostgres
from reliability.harness import LONG, REPORTED, Figures, free_port
from tests.conftest import citus_cluster, database_factory, server_url, server_version  # noqa: F401  (fixtures, shared)
from tests.ingest_fixtures import Tenant, make_tenant


@dataclass(frozen=True)
class TenantDatabase:
    url: str
    tenant: Tenant


@pytest.fixture()
def tenant_database(database_factory: Callable[[], str]) -> TenantDatabase:  # noqa: F811
    """A fresh database migrated to head, with one license, a user and its ingest key."""
    url = database_factory()
    engine = make_engine(url, pool_size=1)
    try:
        schema.upgrade(engine)
        tenant = make_tenant(engine)
    finally:
        engine.dispose()
    return TenantDatabase(url, tenant)


@pytest.fixture()
def own_cluster() -> Iterator[EmbeddedPostgres]:
    """A durable embedded PostgreSQL 18 of this test alone, on a fixed port, so it can be stopped and started."""
    root = Path(tempfile.mkdtemp(prefix="ft-reliability-pg-"))
    cluster = EmbeddedPostgres(root, port=free_port(), database="reliability", durable=True)
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    found = Figures(request.node.name)
    yield found
    report = getattr(request.node, "rep_call", None)
    found.finish("passed" if report is not None and report.passed else "FAILED" if report is not None else "not run")


@pytest.fixture()
def long_form() -> bool:
    return LONG


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTED:
        return
    terminalreporter.section("reliability figures")
    for header, lines in REPORTED:
        terminalreporter.write_line(header)
        for line in lines:
            terminalreporter.write_line("  " + line)
        terminalreporter.write_line("")
