"""Regression tests of the defects the fault tests found, each small enough to run without killing anything."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from fernando_telemetry.composition.wiring import build
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import make_engine
from reliability.harness import free_port


@pytest.fixture()
def unreachable_database_client() -> Iterator[TestClient]:
    """The server's app on a database URL where nothing listens (PostgreSQL down or restarting)."""
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", pool_size=1, connect_timeout_s=2)
    wiring = build(Settings(), engine=engine)
    try:
        with TestClient(wiring.app) as client:
            yield client
    finally:
        engine.dispose()


class TestDatabaseDown:
    """Found by test_database_restart: with PostgreSQL down, the key lookup's connection error was a 500 (and
    Starlette then dropped the keep-alive connection); it is a 503 with Retry-After, like the writer's own."""

    @pytest.mark.parametrize(
        ("method", "path"),
        [("POST", "/api/v1/events"), ("GET", "/api/v1/events"), ("GET", "/api/v1/metrics/names")],
    )
    def test_routes_answer_503_with_retry_after(self, unreachable_database_client: TestClient, method: str, path: str) -> None:
        """A route whose key lookup cannot reach the database answers 503 ``database_unavailable`` with Retry-After."""
        response = unreachable_database_client.request(
            method, path, headers={"Authorization": "Bearer ft_" + "0" * 48, "Content-Type": "application/json"}, content=b"{}"
        )
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "2"
        assert response.json()["error"]["code"] == "database_unavailable"
        assert "127.0.0.1" not in response.text, "the answer names the database's address"

    @pytest.mark.parametrize("content_type", ["application/x-protobuf", "application/json"])
    def test_otlp_answers_503_with_a_status_body(self, unreachable_database_client: TestClient, content_type: str) -> None:
        """OTLP routes answer the same 503 with Retry-After, with the google.rpc.Status body OTLP exporters read."""
        response = unreachable_database_client.post(
            "/v1/traces", headers={"Authorization": "Bearer ft_" + "0" * 48, "Content-Type": content_type}, content=b""
        )
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "2"
        pb2_status = status_pb2.Status()
        if content_type == "application/x-protobuf":
            pb2_status.ParseFromString(response.content)
        else:
            json_format.Parse(response.text, pb2_status)
        assert pb2_status.code == code_pb2.UNAVAILABLE

    def test_keep_alive_connection_survives(self, unreachable_database_client: TestClient) -> None:
        """Several requests in a row on one client all get their 503 (none is cut off)."""
        statuses = [
            unreachable_database_client.get("/api/v1/events", headers={"X-API-Key": "ft_" + "1" * 48}).status_code
            for _ in range(5)
        ]
        assert statuses == [503] * 5

    def test_readyz_answers_503(self, unreachable_database_client: TestClient) -> None:
        response = unreachable_database_client.get("/readyz")
        assert response.status_code == 503 and response.headers.get("retry-after")
