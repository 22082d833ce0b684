"""The request's ``Caller``: built once from its key, with the app's clock and a safe request id, and what the
use cases do with it (their clock, their license scope, their audit entry)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from starlette.requests import Request

from fernando_telemetry.api.deps import caller_of, request_id_of
from fernando_telemetry.core.caller import utc_now
from fernando_telemetry.core.keys import Principal, Scope
from tests.ingest_fixtures import admin_key, make_tenant

FIXED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _request(app: FastAPI, headers: dict[str, str]) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "app": app,
    }
    return Request(scope)


class TestRequestId:
    @pytest.mark.parametrize("header", ["abc123", "req-1.2:3_4", "A" * 64])
    def test_a_short_safe_token_is_kept(self, header: str) -> None:
        """A client's request id of at most 64 letters, digits and ``._:-`` is the request's id."""
        assert request_id_of(header, new_id=lambda: "generated") == header

    @pytest.mark.parametrize("header", [None, "", "A" * 65, "has space", "new\nline", "<script>", "é"])
    def test_anything_else_gets_a_new_id(self, header: str | None) -> None:
        """A missing, long or unsafe request id is replaced by a generated one."""
        assert request_id_of(header, new_id=lambda: "generated") == "generated"

    def test_the_default_id_is_a_fresh_hex_token(self) -> None:
        """Without a generator, two requests get two different 32-digit hex ids."""
        first, second = request_id_of(None), request_id_of(None)
        assert first != second and len(first) == 32 and int(first, 16) >= 0


class TestCallerOf:
    PRINCIPAL = Principal(api_key_id=7, license_id=3, scopes=frozenset({Scope.READ.value}))

    def test_the_caller_carries_the_key_the_header_and_the_apps_clock(self) -> None:
        """An injected ``app.state.clock`` is the caller's clock; the key gives the actor and the license."""
        app = FastAPI()
        app.state.clock = lambda: FIXED
        caller = caller_of(_request(app, {"X-Request-ID": "trace-42"}), self.PRINCIPAL)
        assert (caller.actor, caller.license_id, caller.request_id, caller.now()) == ("key:7", 3, "trace-42", FIXED)
        assert caller.visible_license() == 3

    def test_without_an_injected_clock_the_wall_clock_is_used(self) -> None:
        """An app with no clock in its state gives callers ``utc_now``."""
        caller = caller_of(_request(FastAPI(), {}), self.PRINCIPAL)
        assert caller.clock is utc_now
        assert caller.request_id is not None and len(caller.request_id) == 32


class TestUseCasesThroughTheApp:
    def test_an_admin_write_is_stamped_and_audited_by_the_injected_clock(
        self, client: TestClient, committed_engine: Engine
    ) -> None:
        """``PUT /admin/licenses`` reads the caller's clock once: the license's updated_at and its audit entry agree."""
        token = admin_key(committed_engine)
        tenant = make_tenant(committed_engine)
        client.app.state.clock = lambda: FIXED  # type: ignore[attr-defined]
        response = client.put(
            f"/api/v1/admin/licenses/{tenant.license_id}",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "put-license-1"},
            json={"name": "Clocked", "plan": "pro"},
        )
        assert response.status_code == 200, response.text
        with committed_engine.connect() as connection:
            updated_at = connection.execute(
                text("SELECT updated_at FROM licenses WHERE license_id = :l"), {"l": tenant.license_id}
            ).scalar_one()
            occurred_at, action, details = connection.execute(
                text(
                    "SELECT occurred_at, action, details FROM audit_log WHERE license_id = :l AND target_type = 'license' "
                    "ORDER BY entry_id DESC LIMIT 1"
                ),
                {"l": tenant.license_id},
            ).one()
        assert (updated_at, occurred_at, action) == (FIXED, FIXED, "license.update")
        assert details == {"fields": ["name", "plan"]}

    def test_a_read_resolves_its_default_window_by_the_callers_clock(self, client: TestClient, committed_engine: Engine) -> None:
        """``GET /api/v1/traces`` without from/to reads the hour before the caller's now, not the wall clock's."""
        tenant = make_tenant(committed_engine)
        client.app.state.clock = lambda: FIXED  # type: ignore[attr-defined]
        response = client.get("/api/v1/traces", headers={"Authorization": f"Bearer {tenant.read_key}"})
        assert response.status_code == 200, response.text
        window = response.json()
        assert (window["from"], window["to"]) == ("2026-03-04T04:06:07Z", "2026-03-04T05:06:07Z")

    def test_a_license_key_asking_for_another_license_is_refused(self, client: TestClient, committed_engine: Engine) -> None:
        """The caller's scope check: a license key naming another license gets 403, naming the license."""
        mine, theirs = make_tenant(committed_engine), make_tenant(committed_engine)
        response = client.get(
            "/api/v1/summaries/events-hourly",
            params={"license_id": theirs.license_id},
            headers={"Authorization": f"Bearer {mine.read_key}"},
        )
        assert response.status_code == 403, response.text
        assert str(theirs.license_id) in response.json()["error"]["message"]
