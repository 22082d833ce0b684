"""Failed requests counted where users look: the SDK middleware's failed requests (an exception, a 5xx) and an
OpenTelemetry SDK's server span with error status, sent to the real server, in ``telemetry_events_hourly_summary``
and ``GET /api/v1/summaries/events-hourly``, read from raw rows and again after a rollup refresh."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from sqlalchemy import Engine, text

from fernando_telemetry.core.keys import Principal
from fernando_telemetry.sdk import TelemetryClient, TelemetryMiddleware
from fernando_telemetry.services import rollups
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.web.page import PageRequest
from fernando_telemetry.web.pages import overview
from tests.ingest_fixtures import Tenant, make_tenant


@pytest.fixture()
def tenant(committed_engine: Engine) -> Tenant:
    return make_tenant(committed_engine)


def _shop(telemetry: TelemetryClient, service_name: str) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/broken")
    def broken() -> JSONResponse:
        return JSONResponse({"detail": "broken"}, status_code=500)

    @app.get("/down")
    def down() -> JSONResponse:
        return JSONResponse({"detail": "down"}, status_code=503)

    @app.get("/teapot")
    def teapot() -> JSONResponse:
        return JSONResponse({"detail": "no"}, status_code=418)

    app.add_middleware(TelemetryMiddleware, client=telemetry, service_name=service_name)
    return app


def _call(app: FastAPI, paths: list[str]) -> list[int]:
    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return [(await http.get(path)).status_code for path in paths]

    return asyncio.run(go())


def _view_totals(engine: Engine, license_id: int) -> dict[str, int]:
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT coalesce(sum(events), 0) AS events, coalesce(sum(errors), 0) AS errors, "
                "coalesce(sum(server_span_errors), 0) AS server_span_errors "
                "FROM telemetry_events_hourly_summary WHERE license_id = :license_id AND event_type = 'api_event'"
            ),
            {"license_id": license_id},
        ).one()
    return {key: int(value) for key, value in row._mapping.items()}


def _api_totals(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    response = client.get(
        "/api/v1/summaries/events-hourly",
        params={"event_type": "api_event"},
        headers={"Authorization": f"Bearer {tenant.read_key}"},
    )
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    return {key: sum(row[key] for row in rows) for key in ("events", "errors", "server_span_errors")}


def _overview_stats(engine: Engine, tenant: Tenant) -> dict[str, Any]:
    principal = Principal(api_key_id=0, license_id=tenant.license_id, scopes=frozenset({"read"}))
    with session_factory(engine)() as session:
        page = overview.build(PageRequest(session, principal, datetime.now(UTC), (("range", "6h"),)))
    return {key: page.context["stats"][key] for key in ("events", "error_events", "server_span_errors")}


def _refresh(engine: Engine) -> None:
    with session_factory(engine).begin() as session:
        rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)


def _rolled_up(engine: Engine, license_id: int) -> tuple[int, int]:
    """The hourly rollups' own counts: failed events (all types) and failed server spans of the license."""
    with engine.connect() as connection:
        events, spans = connection.execute(
            text(
                "SELECT (SELECT coalesce(sum(errors), 0) FROM telemetry_events_hourly WHERE license_id = :l), "
                "(SELECT coalesce(sum(server_errors), 0) FROM traces_hourly WHERE license_id = :l)"
            ),
            {"l": license_id},
        ).one()
    return int(events), int(spans)


class TestMiddlewareFailures:
    def test_an_exception_and_a_5xx_count_as_errors_in_the_view_and_the_api(
        self, live_server: str, client: TestClient, committed_engine: Engine, tenant: Tenant
    ) -> None:
        """Five requests through the real middleware (200, an exception, a 500, a 503, a 418) sent by a TelemetryClient:
        the api_event rows count 3 errors and 3 failed server spans, from raw rows and from the rollup alike."""
        telemetry = TelemetryClient(live_server, tenant.ingest_key, flush_interval_s=60)
        try:
            statuses = _call(_shop(telemetry, "shop-" + uuid.uuid4().hex[:6]), ["/ok", "/boom", "/broken", "/down", "/teapot"])
            assert statuses == [200, 500, 500, 503, 418]
            assert telemetry.flush(timeout_s=10)
            assert telemetry.stats.sent == 10, telemetry.stats
        finally:
            telemetry.shutdown(timeout_s=2)

        expected = {"events": 5, "errors": 3, "server_span_errors": 3}
        assert _view_totals(committed_engine, tenant.license_id) == expected
        assert _api_totals(client, tenant) == expected
        assert _overview_stats(committed_engine, tenant) == {"events": 5, "error_events": 3, "server_span_errors": 3}
        _refresh(committed_engine)
        assert _rolled_up(committed_engine, tenant.license_id) == (3, 3)
        assert _view_totals(committed_engine, tenant.license_id) == expected
        assert _api_totals(client, tenant) == expected


class TestOtlpServerSpans:
    def test_a_server_span_with_error_status_counts_in_the_events_summary(
        self, live_server: str, client: TestClient, committed_engine: Engine, tenant: Tenant
    ) -> None:
        """The official SDK's spans over OTLP/HTTP: the server span with status ERROR counts once in
        server_span_errors; an ok server span, an error client span and an error internal span do not."""
        exporter = OTLPSpanExporter(endpoint=f"{live_server}/v1/traces", headers={"Authorization": f"Bearer {tenant.ingest_key}"})
        provider = TracerProvider(resource=Resource.create({"service.name": "otel-shop"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("tests")
        try:
            with tracer.start_as_current_span("GET /fail", kind=trace_api.SpanKind.SERVER) as failing:
                failing.set_attribute("http.response.status_code", 500)
                with tracer.start_as_current_span("GET payments", kind=trace_api.SpanKind.CLIENT) as call:
                    call.set_status(Status(StatusCode.ERROR, "refused"))
                with tracer.start_as_current_span("charge", kind=trace_api.SpanKind.INTERNAL) as inner:
                    inner.set_status(Status(StatusCode.ERROR, "declined"))
                failing.set_status(Status(StatusCode.ERROR, "upstream failed"))
            with tracer.start_as_current_span("GET /ok", kind=trace_api.SpanKind.SERVER):
                pass
        finally:
            provider.shutdown()

        expected = {"events": 0, "errors": 0, "server_span_errors": 1}
        assert _view_totals(committed_engine, tenant.license_id) == expected
        assert _api_totals(client, tenant) == expected
        _refresh(committed_engine)
        assert _rolled_up(committed_engine, tenant.license_id) == (0, 1)
        assert _view_totals(committed_engine, tenant.license_id) == expected
        assert _api_totals(client, tenant) == expected
