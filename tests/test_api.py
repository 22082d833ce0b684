"""The HTTP app in-process: health routes, the OpenAPI document, and the one error body shape."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from fernando_telemetry.api import create_app
from fernando_telemetry.storage.database import make_engine


class TestHealth:
    def test_ready_when_the_database_answers(self, engine: Engine) -> None:
        """/healthz and /readyz answer 200 with a reachable database."""
        client = TestClient(create_app(engine=engine))
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready", "database": "ok"}

    def test_not_ready_without_a_database(self) -> None:
        """With nothing listening, /readyz is a 503 error body with Retry-After; /healthz still answers."""
        dead = make_engine("postgresql://postgres@127.0.0.1:9/nothing", connect_timeout_s=1)
        client = TestClient(create_app(engine=dead))
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "2"
        body = response.json()
        assert body["error"]["code"] == "database_unavailable"
        assert "does not answer" in body["error"]["message"]
        assert client.get("/healthz").status_code == 200


class TestErrorsAndDocs:
    def test_unknown_route_uses_the_error_body(self, engine: Engine) -> None:
        """A 404 has the same JSON error shape as every other error."""
        response = TestClient(create_app(engine=engine)).get("/nope")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    def test_openapi_lists_the_routes(self, engine: Engine) -> None:
        """The OpenAPI document and its page are served."""
        client = TestClient(create_app(engine=engine))
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/healthz", "/readyz"} <= set(paths)
        assert client.get("/docs").status_code == 200
