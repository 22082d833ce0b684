"""Schemathesis against the app's own OpenAPI document: every operation it holds at run time, valid (positive) and
schema-breaking (negative) requests generated from it, each sent with an ingest+read, a read-only or an admin key;
no answer is a 5xx or a traceback, and every 4xx outside OTLP carries the error body
(``{"error": {"code", "message", "details"}}``).

The document is read from the running app when the test starts, so routes added later are walked too. The
operations are looped over inside one test per mode (rather than ``schemathesis.pytest.from_fixture``, whose
lazy loader does not work with pytest 9), and every operation's failure is collected before the test fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from sqlalchemy import Engine
from sqlalchemy.exc import StatementError

from fernando_telemetry.api.errors import install_error_handlers
from fernando_telemetry.composition.wiring import Wiring, build
from fernando_telemetry.services import partitions
from fernando_telemetry.services import schema as migrations
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import make_engine, session_factory
from tests.fuzz.budget import fuzz_settings
from tests.ingest_fixtures import admin_key, make_tenant

_OTLP_PATHS = frozenset({"/v1/traces", "/v1/metrics", "/v1/logs"})
_MIN_OPERATIONS = 30  # the document held this many when the test was written; fewer means routes went missing


@pytest.fixture(scope="module")
def fuzz_engine(database_factory: Callable[[], str]) -> Iterator[Engine]:
    """A migrated database of this module's own: what the fuzzing creates, changes and deletes (licenses, rules,
    channels, silences...) stays out of the databases the other tests count rows in."""
    engine = make_engine(database_factory(), pool_size=4)
    migrations.upgrade(engine)
    today = datetime.now(UTC).date()
    with session_factory(engine).begin() as session:
        partitions.ensure_for_days(session, first_day=today - timedelta(days=7), last_day=today + timedelta(days=14))
    yield engine
    engine.dispose()


@pytest.fixture()
def fuzz_wiring(fuzz_engine: Engine) -> Iterator[Wiring]:
    """The server's app, writer and ingestor on the fuzzing database, writer running."""
    wiring = build(Settings(ingest_max_body_bytes=200_000), engine=fuzz_engine)
    wiring.start()
    try:
        yield wiring
    finally:
        wiring.stop()


@pytest.fixture()
def fuzz_client(fuzz_wiring: Wiring) -> Iterator[TestClient]:
    with TestClient(fuzz_wiring.app) as client:
        yield client


@pytest.fixture()
def fuzz_keys(fuzz_engine: Engine) -> list[str]:
    """A license's ingest+read key, its read-only key, and an admin key."""
    tenant = make_tenant(fuzz_engine)
    return [tenant.ingest_key, tenant.read_key, admin_key(fuzz_engine)]


def check_answer(case: Any, response: Any) -> None:
    """Below 500, no traceback, and a 4xx outside OTLP has the error body with a code and a message."""
    label = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{label} answered {response.status_code}: {response.text[:500]}\n{case.as_curl_command()}"
    assert "Traceback" not in response.text, f"{label} leaked a traceback"
    if 400 <= response.status_code < 500 and case.path not in _OTLP_PATHS:
        error = response.json().get("error") if response.text.startswith("{") else None
        assert isinstance(error, dict) and error.get("code") and error.get("message"), (
            f"{label} answered {response.status_code} without the error body: {response.text[:300]}\n{case.as_curl_command()}"
        )


def _fuzz_operation(operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @fuzz_settings(12)
    def run(case: Any) -> None:
        assert str((case.headers or {}).get("Authorization", "")).startswith("Bearer ft_"), "the header hook did not run"
        check_answer(case, case.call())

    run()


def _with_keys(schema: Any, keys: list[str]) -> Any:
    """The schema with a header hook: every generated request carries one of ``keys`` as its bearer token."""

    @schema.hook
    def flatmap_headers(context: Any, headers: dict[str, Any] | None) -> st.SearchStrategy[dict[str, Any]]:
        return st.sampled_from(keys).map(lambda key: {**(headers or {}), "Authorization": f"Bearer {key}"})

    return schema


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_no_generated_request_is_a_server_error(mode: GenerationMode, fuzz_wiring: Wiring, fuzz_keys: list[str]) -> None:
    """Every operation of the document, fuzzed from its schema with real keys, answers below 500 with a readable body."""
    schema = _with_keys(schemathesis.openapi.from_asgi("/openapi.json", fuzz_wiring.app), fuzz_keys)
    failures: list[str] = []
    walked = 0
    for result in schema.get_all_operations():
        walked += 1
        if not isinstance(result, Ok):
            failures.append(f"an operation Schemathesis cannot read: {result.err()}")
            continue
        operation = result.ok()
        try:
            _fuzz_operation(operation, mode)
        except Unsatisfiable:
            if mode is not GenerationMode.NEGATIVE:
                failures.append(f"{operation.label}: Schemathesis could not generate a single valid request")
            # else: an operation without parameters or body has no invalid request to send
        except Exception as exc:  # noqa: BLE001 -- every operation is walked; the failures are reported together
            failures.append(f"{getattr(operation, 'label', operation)}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert walked >= _MIN_OPERATIONS, f"only {walked} operations in the OpenAPI document"
    assert not failures, f"{len(failures)} of {walked} operations failed:\n\n" + "\n\n".join(failures)


class TestRegressions:
    """Requests the fuzzing found that once ended in a 500."""

    @pytest.mark.parametrize(
        ("path", "body"),
        [("/api/v1/admin/licenses/{id}", {"name": "\x00"}), ("/api/v1/admin/users/u-{id}", {"display_name": "a\x00b"})],
    )
    def test_nul_in_an_admin_upsert_is_a_400(
        self, path: str, body: dict[str, Any], fuzz_client: TestClient, fuzz_keys: list[str]
    ) -> None:
        """PostgreSQL text cannot hold NUL: the upsert is refused with a 400 saying so (was a DataError and a 500)."""
        admin = {"Authorization": f"Bearer {fuzz_keys[-1]}"}
        if "/users/" in path:  # a user belongs to a license: give it an existing one, so only the NUL is wrong
            license_id = 7_000_000 + uuid.uuid4().int % 10**6
            assert fuzz_client.put(f"/api/v1/admin/licenses/{license_id}", json={"name": "nul"}, headers=admin).status_code == 201
            body = {**body, "license_id": license_id}
        response = fuzz_client.put(path.format(id=uuid.uuid4().int % 10**9), json=body, headers=admin)
        assert response.status_code == 400, response.text[:300]
        error = response.json()["error"]
        assert error["code"] == "invalid_input" and "NUL" in error["message"]

    def test_a_value_outside_an_enum_column_is_a_400(self) -> None:
        """A query value SQLAlchemy cannot bind to an enum column (LookupError) is a 400 naming the allowed values."""
        app = FastAPI()
        install_error_handlers(app)

        @app.get("/boom")
        def boom() -> None:
            raise StatementError(
                "bind", "SELECT 1", {}, LookupError("'' is not among the defined enum values. Possible values: a, b")
            )

        @app.get("/other")
        def other() -> None:
            raise StatementError("bind", "SELECT 1", {}, KeyError("x"))

        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/boom")
            assert response.status_code == 400
            assert "Possible values: a, b" in response.json()["error"]["message"]
            assert client.get("/other").status_code == 500
