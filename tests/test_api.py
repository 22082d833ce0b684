"""The HTTP app in-process: health routes, the OpenAPI document, and the one error body shape."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from fernando_telemetry.api import create_app
from fernando_telemetry.api.app import ApiLimits
from fernando_telemetry.storage.database import make_engine
from tests.ingest_fixtures import new_token


@pytest.fixture()
def silent_database() -> Iterator[Engine]:
    """An engine on a port that accepts TCP connections and never answers, as a frozen PostgreSQL does (its kernel
    still completes handshakes); the connect timeout (30 s) is far beyond the bounds under test."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        engine = make_engine(f"postgresql://postgres@127.0.0.1:{listener.getsockname()[1]}/frozen", connect_timeout_s=30)
        try:
            yield engine
        finally:
            engine.dispose()


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

    def test_not_ready_when_the_database_hangs(self, silent_database: Engine) -> None:
        """A database that never answers: /readyz gives up on its ping and says 503 (not a late answer after the
        connect timeout); /healthz answers meanwhile; a second /readyz shares the ping still in flight."""
        client = TestClient(create_app(engine=silent_database))
        started = time.monotonic()
        first = client.get("/readyz")
        second = client.get("/readyz")
        print(f"\ntwo /readyz on a silent database answered in {time.monotonic() - started:.2f} s")
        assert first.status_code == 503 and first.headers["Retry-After"] == "2"
        assert "has not answered a ping" in first.json()["error"]["message"]
        assert second.status_code == 503 and "has not answered a ping" in second.json()["error"]["message"]
        assert client.get("/healthz").status_code == 200


class TestResponseDeadline:
    def test_a_route_waiting_on_a_hung_database_is_answered_503(self, silent_database: Engine) -> None:
        """A read whose key lookup waits on a database that never answers is answered 503 with Retry-After by the
        response deadline, in the error body shape; without the deadline it would wait for the connect timeout."""
        client = TestClient(create_app(engine=silent_database, limits=ApiLimits(response_timeout_s=1.0)))
        started = time.monotonic()
        response = client.get("/api/v1/events", headers={"Authorization": f"Bearer {new_token()}"})
        print(f"\nanswered in {time.monotonic() - started:.2f} s")
        assert response.status_code == 503 and response.headers["Retry-After"] == "2"
        assert response.json()["error"]["code"] == "response_timeout"

    def test_a_route_that_answers_in_time_is_untouched(self, engine: Engine) -> None:
        """Under the deadline the route's own answer goes out unchanged."""
        client = TestClient(create_app(engine=engine, limits=ApiLimits(response_timeout_s=5.0)))
        assert client.get("/readyz").json() == {"status": "ready", "database": "ok"}
        assert client.get("/nope").status_code == 404


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
