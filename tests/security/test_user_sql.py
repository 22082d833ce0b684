"""User SQL (``POST /api/v1/query``) attacked with license A's key while license B uses it too: A cannot watch,
signal or lock anything of B or of the platform, cannot read platform-wide statistics, cannot take the
server's memory with a huge result or its workers with many concurrent queries; the documented views answer.
The tenant role reads only its own license row."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from fernando_telemetry.composition.jobs import _with_job_lock
from fernando_telemetry.composition.wiring import Wiring
from fernando_telemetry.services import tenancy
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.tenant_scope import QUERY_ROLE, scoped
from tests.ingest_fixtures import Tenant, make_tenant


def _query(base: str, tenant: Tenant, sql: str, *, timeout: float = 30.0) -> httpx.Response:
    return httpx.post(
        f"{base}/api/v1/query", headers={"Authorization": f"Bearer {tenant.read_key}"}, json={"sql": sql}, timeout=timeout
    )


def _wait_for(probe: Callable[[], Any], *, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("the background query never showed up in pg_stat_activity")


def _sessions_running(engine: Engine, marker: str) -> list[int]:
    # as the owner (superuser in tests): sees every backend and its text
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE usename = :role AND state = 'active' AND query LIKE :marker"),
                {"role": QUERY_ROLE, "marker": f"%{marker}%"},
            ).scalars()
        )


class _Background:
    """B's long query, run in a thread through the API."""

    def __init__(self, base: str, tenant: Tenant, sql: str) -> None:
        self.response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, args=(base, tenant, sql), daemon=True)
        self._thread.start()

    def _run(self, base: str, tenant: Tenant, sql: str) -> None:
        self.response = _query(base, tenant, sql)

    def join(self) -> httpx.Response:
        self._thread.join(60)
        assert self.response is not None
        return self.response


@pytest.fixture()
def slow_limits(running_wiring: Wiring) -> None:
    state = running_wiring.app.state
    state.query_limits = replace(state.query_limits, timeout_ms=20_000)


def test_a_cannot_read_bs_query_text_nor_signal_bs_backend(live_server: str, committed_engine: Engine, slow_limits: None) -> None:
    a, b = make_tenant(committed_engine), make_tenant(committed_engine)
    marker = f"secret_{uuid.uuid4().hex[:10]}"
    background = _Background(live_server, b, f"SELECT '{marker}' AS marker, pg_sleep(2)")
    pids = _wait_for(lambda: _sessions_running(committed_engine, marker))

    watching = _query(live_server, a, "SELECT pid, usename, query FROM pg_stat_activity")
    print("pg_stat_activity:", watching.status_code, watching.text[:300])
    assert marker not in watching.text
    assert watching.status_code == 403, watching.text

    # the function behind the view, called directly, is refused the same way
    direct = _query(live_server, a, f"SELECT * FROM pg_stat_get_activity({pids[0]})")
    assert marker not in direct.text
    assert direct.status_code == 403, direct.text

    for function in ("pg_cancel_backend", "pg_terminate_backend"):
        signal = _query(live_server, a, f"SELECT {function}({pids[0]})")
        print(function, signal.status_code, signal.text[:300])
        assert signal.status_code in (400, 403), signal.text
        assert "true" not in signal.text

    finished = background.join()
    assert finished.status_code == 200, finished.text
    assert finished.json()["rows"][0][0] == marker


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_advisory_lock(hashtextextended('fernando_telemetry.job:alert_evaluation', 0))",
        "SELECT pg_try_advisory_lock(hashtextextended('fernando_telemetry.job:alert_evaluation', 0))",
        "SELECT pg_advisory_xact_lock_shared(hashtextextended('fernando_telemetry.rollups', 0))",
        "SELECT pg_try_advisory_xact_lock(1, 2)",
    ],
)
def test_a_cannot_take_the_schedulers_advisory_locks(client: TestClient, committed_engine: Engine, sql: str) -> None:
    a = make_tenant(committed_engine)
    response = client.post("/api/v1/query", headers={"Authorization": f"Bearer {a.read_key}"}, json={"sql": sql})
    assert response.status_code == 403, response.text
    assert "permission denied for function pg_" in response.json()["error"]["message"]
    # the jobs still take their own lock
    outcome = _with_job_lock(session_factory(committed_engine), "alert_evaluation", lambda session: "ran")
    assert outcome.ran and outcome.summary == "ran"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT relname, n_live_tup FROM pg_stat_user_tables",
        "SELECT relname, heap_blks_read FROM pg_statio_user_tables",
        "SELECT numbackends, xact_commit FROM pg_stat_database",
        "SELECT pg_stat_get_live_tuples('telemetry_events'::regclass)",
        "SELECT reltuples FROM pg_class",
        "SELECT relpages FROM pg_class WHERE relname = 'api_keys'",
        "SELECT pg_total_relation_size('telemetry_events')",
        "SELECT pg_database_size(current_database())",
        "SELECT rolname FROM pg_roles",
        "SELECT attname, most_common_vals FROM pg_stats",
    ],
)
def test_a_cannot_read_platform_wide_statistics(client: TestClient, committed_engine: Engine, sql: str) -> None:
    a = make_tenant(committed_engine)
    response = client.post("/api/v1/query", headers={"Authorization": f"Bearer {a.read_key}"}, json={"sql": sql})
    assert response.status_code == 403, response.text
    assert "permission denied" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "view",
    [
        "telemetry_events_hourly_summary",
        "system_metrics_service_summary",
        "business_metrics_kpi_summary",
        "traces_service_summary",
    ],
)
def test_the_documented_views_answer_user_sql(client: TestClient, committed_engine: Engine, view: str) -> None:
    a = make_tenant(committed_engine)
    response = client.post(
        "/api/v1/query", headers={"Authorization": f"Bearer {a.read_key}"}, json={"sql": f"SELECT * FROM {view} LIMIT 5"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["columns"]


def test_a_600_mb_result_is_cut_at_the_byte_cap_and_says_so(client: TestClient, committed_engine: Engine) -> None:
    a = make_tenant(committed_engine)
    cap = client.app.state.query_limits.byte_cap
    started = time.monotonic()
    response = client.post(
        "/api/v1/query",
        headers={"Authorization": f"Bearer {a.read_key}"},
        json={"sql": "SELECT repeat('x', 60000) AS big FROM generate_series(1, 10000)"},
    )
    print(f"600 MB query answered in {time.monotonic() - started:.2f} s, {len(response.content)} bytes")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["truncated"] is True
    assert body["truncated_by"] == "bytes"
    assert f"{cap} bytes" in body["message"]
    assert 0 < body["row_count"] < 10_000
    assert len(response.content) < cap + 4096


def test_queries_over_the_per_key_limit_get_429_with_retry_after(
    live_server: str, running_wiring: Wiring, committed_engine: Engine
) -> None:
    state = running_wiring.app.state
    state.query_limits = replace(state.query_limits, timeout_ms=20_000, max_concurrent_per_key=2, retry_after_s=3)
    a, b = make_tenant(committed_engine), make_tenant(committed_engine)
    marker = f"busy_{uuid.uuid4().hex[:10]}"
    running = [_Background(live_server, a, f"SELECT '{marker}', pg_sleep(2)") for _ in range(2)]
    _wait_for(lambda: len(_sessions_running(committed_engine, marker)) == 2)

    refused = _query(live_server, a, "SELECT 1")
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == "3"
    assert "at once" in refused.json()["error"]["message"]
    # another key is not held back by A's queries
    other = _query(live_server, b, "SELECT 1")
    assert other.status_code == 200, other.text

    for background in running:
        assert background.join().status_code == 200
    assert _query(live_server, a, "SELECT 1").status_code == 200


def test_the_tenant_role_reads_only_its_own_license_row(committed_engine: Engine) -> None:
    a, b = make_tenant(committed_engine), make_tenant(committed_engine)
    sessions = tenancy.scope_sessions(session_factory(committed_engine))
    with scoped(a.license_id), sessions.begin() as session:
        seen = set(session.execute(text("SELECT license_id FROM licenses")).scalars())
        assert seen == {a.license_id}
        users = set(session.execute(text("SELECT license_id FROM users")).scalars())
        assert users == {a.license_id}
    with sessions.begin() as session:  # unscoped (admin keys, jobs): every license
        seen = set(session.execute(text("SELECT license_id FROM licenses")).scalars())
        assert {a.license_id, b.license_id} <= seen


@pytest.mark.parametrize(
    ("sql", "status"),
    [
        # back to the login role, which sees every user-SQL backend: set_config is not executable
        ("WITH r AS MATERIALIZED (SELECT set_config('role', 'none', true)) SELECT query FROM r, pg_stat_activity", 403),
        ("SELECT set_config('work_mem', '4GB', true)", 403),
        # a SET hidden behind a nested comment runs alone, in a transaction rolled back on a connection closed after it
        ("/* /* */ SELECT */ SET ROLE NONE", 400),
    ],
)
def test_user_sql_cannot_switch_back_to_the_login_role_or_raise_its_limits(
    client: TestClient, committed_engine: Engine, sql: str, status: int
) -> None:
    a = make_tenant(committed_engine)
    response = client.post("/api/v1/query", headers={"Authorization": f"Bearer {a.read_key}"}, json={"sql": sql})
    assert response.status_code == status, response.text
    after = client.post(
        "/api/v1/query",
        headers={"Authorization": f"Bearer {a.read_key}"},
        json={"sql": "SELECT current_user, current_setting('work_mem')"},
    )
    assert after.status_code == 200, after.text
    assert after.json()["rows"] == [["fernando_telemetry_query_reader", "16MB"]]
