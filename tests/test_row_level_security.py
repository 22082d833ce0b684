"""Row-level security by license in the database itself, and ``POST /api/v1/query`` (user SQL, read-only, scoped)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from fernando_telemetry.core.keys import Principal
from fernando_telemetry.services import tenancy
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.tenant_scope import TENANT_ROLE, scoped
from tests.helpers import add_event
from tests.ingest_fixtures import Tenant, admin_key, make_tenant

USER_SQL_ON_CITUS = (
    "user SQL is refused on Citus (501): its isolation reads query_scopes by the coordinator's pg_backend_pid(), "
    "which the workers do not share"
)


def _event(engine: Engine, tenant: Tenant, marker: str) -> str:
    event_id = uuid.uuid4()
    with session_factory(engine).begin() as session:
        add_event(
            session,
            at=datetime.now(UTC) - timedelta(minutes=5),
            event_id=event_id,
            license_id=tenant.license_id,
            event_name=marker,
            user_id=tenant.user_id,
        )
    return str(event_id)


def test_a_scoped_session_runs_as_the_tenant_role_and_sees_only_its_license(committed_engine: Engine) -> None:
    a, b = make_tenant(committed_engine), make_tenant(committed_engine)
    _event(committed_engine, a, "rls-a")
    _event(committed_engine, b, "rls-b")
    sessions = tenancy.scope_sessions(session_factory(committed_engine))
    with scoped(a.license_id), sessions.begin() as session:
        assert session.execute(text("SELECT current_user")).scalar_one() == TENANT_ROLE
        names = set(session.execute(text("SELECT event_name FROM telemetry_events WHERE event_name LIKE 'rls-%'")).scalars())
        # no WHERE on license_id: the policy alone hides license B's row
        assert names == {"rls-a"}
    with sessions.begin() as session:  # unscoped (jobs, admin keys): every license
        names = set(session.execute(text("SELECT event_name FROM telemetry_events WHERE event_name LIKE 'rls-%'")).scalars())
        assert {"rls-a", "rls-b"} <= names


def test_a_scoped_session_cannot_write_rows_of_another_license(committed_engine: Engine) -> None:
    a, b = make_tenant(committed_engine), make_tenant(committed_engine)
    sessions = tenancy.scope_sessions(session_factory(committed_engine))
    with pytest.raises(ProgrammingError, match="row-level security"), scoped(a.license_id), sessions.begin() as session:
        add_event(session, at=datetime.now(UTC), license_id=b.license_id, event_name="forged")
    with session_factory(committed_engine)() as session:
        assert session.execute(text("SELECT count(*) FROM telemetry_events WHERE event_name = 'forged'")).scalar_one() == 0


def test_enter_scopes_license_keys_and_leaves_admin_keys_unscoped(committed_engine: Engine) -> None:
    from fernando_telemetry.storage.tenant_scope import current_license

    with scoped(None):
        tenancy.enter(Principal(api_key_id=1, license_id=7, scopes=frozenset({"read"})))
        assert current_license.get() == 7
    with scoped(None):
        tenancy.enter(Principal(api_key_id=2, license_id=None, scopes=frozenset({"admin"})))
        assert current_license.get() is None


@pytest.mark.single_node(reason=USER_SQL_ON_CITUS)
def test_query_returns_only_the_callers_license(client: TestClient, committed_engine: Engine) -> None:
    a, b = make_tenant(committed_engine), make_tenant(committed_engine)
    mine = _event(committed_engine, a, "q-mine")
    _event(committed_engine, b, "q-theirs")
    response = client.post(
        "/api/v1/query",
        headers={"Authorization": f"Bearer {a.read_key}"},
        json={"sql": "SELECT event_id, event_name, license_id FROM telemetry_events WHERE event_name LIKE 'q-%'"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == ["event_id", "event_name", "license_id"]
    assert body["rows"] == [[mine, "q-mine", a.license_id]]
    assert body["truncated"] is False


@pytest.mark.single_node(reason=USER_SQL_ON_CITUS)
def test_query_cannot_escape_its_license_by_changing_the_setting(client: TestClient, committed_engine: Engine) -> None:
    a, b = make_tenant(committed_engine), make_tenant(committed_engine)
    _event(committed_engine, b, "q-escape")
    sql = (
        "WITH s AS MATERIALIZED (SELECT set_config('fernando_telemetry.license_id', '"
        + str(b.license_id)
        + "', true) AS v) SELECT s.v, e.event_name FROM s, telemetry_events e WHERE e.event_name = 'q-escape'"
    )
    response = client.post("/api/v1/query", headers={"Authorization": f"Bearer {a.read_key}"}, json={"sql": sql})
    # set_config is not executable by user SQL (migration 0014); B's row never comes back
    assert response.status_code == 403, response.text
    assert "set_config" in response.json()["error"]["message"]
    assert "q-escape" not in response.text


@pytest.mark.single_node(reason=USER_SQL_ON_CITUS)
@pytest.mark.parametrize(
    ("sql", "status", "fragment"),
    [
        ("DELETE FROM telemetry_events", 400, "only a single SELECT"),
        ("SELECT 1; DELETE FROM telemetry_events", 400, "exactly one SELECT"),
        ("SELECT * FROM api_keys", 403, "may not"),
        ("SELECT * FROM users", 403, "may not"),
        ("WITH x AS (DELETE FROM telemetry_events RETURNING 1) SELECT * FROM x", 400, "change data"),
        ("SELECT set_config('role', 'postgres', true), (SELECT count(*) FROM api_keys)", 403, "may not"),
        ("SELECT set_config('role', 'postgres', true), query_to_xml('SELECT * FROM api_keys', true, true, '')", 403, "may not"),
        ("SELECT pg_sleep(10)", 400, "statement timeout"),
        ("SELEC 1", 400, "only a single SELECT"),
        ("SELECT nope FROM telemetry_events", 400, "SQL error"),
        ("", 400, "empty"),
    ],
)
def test_query_refuses_anything_but_one_select_on_telemetry(
    client: TestClient, committed_engine: Engine, sql: str, status: int, fragment: str
) -> None:
    a = make_tenant(committed_engine)
    client.app.state.query_limits = type(client.app.state.query_limits)(timeout_ms=300, row_cap=100)
    response = client.post("/api/v1/query", headers={"Authorization": f"Bearer {a.read_key}"}, json={"sql": sql})
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]["message"]


@pytest.mark.single_node(reason=USER_SQL_ON_CITUS)
def test_query_caps_rows_and_says_so(client: TestClient, committed_engine: Engine) -> None:
    a = make_tenant(committed_engine)
    response = client.post(
        "/api/v1/query",
        headers={"Authorization": f"Bearer {a.read_key}"},
        json={"sql": "SELECT g FROM generate_series(1, 50) AS g", "row_limit": 10},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["row_count"] == 10 and body["truncated"] is True
    assert [row[0] for row in body["rows"]] == list(range(1, 11))


@pytest.mark.single_node(reason=USER_SQL_ON_CITUS)
def test_admin_keys_name_the_license_they_query(client: TestClient, committed_engine: Engine) -> None:
    a = make_tenant(committed_engine)
    mine = _event(committed_engine, a, "q-admin")
    token = admin_key(committed_engine)
    refused = client.post("/api/v1/query", headers={"Authorization": f"Bearer {token}"}, json={"sql": "SELECT 1"})
    assert refused.status_code == 400 and "license_id" in refused.json()["error"]["message"]
    response = client.post(
        "/api/v1/query",
        headers={"Authorization": f"Bearer {token}"},
        json={"sql": "SELECT event_id FROM telemetry_events WHERE event_name = 'q-admin'", "license_id": a.license_id},
    )
    assert response.status_code == 200 and response.json()["rows"] == [[mine]]
