"""The platform's own FastAPI backend instrumented in-process: middleware -> SDK -> ingest service -> database."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import Engine, text

from fernando_telemetry.composition.wiring import Wiring
from fernando_telemetry.embedding import in_process_client
from fernando_telemetry.sdk import TelemetryMiddleware
from tests.ingest_fixtures import make_tenant


@pytest.fixture()
def engine(committed_engine: Engine) -> Engine:
    """These tests commit: they use the committed-writes database."""
    return committed_engine


class TestInProcessSink:
    async def _exercise(self, app: FastAPI) -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://platform") as client:
            assert (
                await client.get("/orders/17", headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
            ).status_code == 200
            assert (await client.get("/healthz")).status_code == 200

    def test_requests_of_the_platform_land_as_events_and_spans(self, running_wiring: Wiring, engine: Engine) -> None:
        """A request to an instrumented app becomes an api_event and a server span in the same database."""
        import asyncio

        tenant = make_tenant(engine)
        service = "platform-" + uuid.uuid4().hex[:6]
        client = in_process_client(
            running_wiring.ingestor, license_id=tenant.license_id, service_name=service, flush_interval_s=0.1
        )
        app = FastAPI()

        @app.get("/orders/{order_id}")
        async def order(order_id: int, request: Request) -> dict[str, int]:
            request.state.user_id = tenant.user_id
            return {"order_id": order_id}

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        app.add_middleware(TelemetryMiddleware, client=client, service_name=service)
        asyncio.run(self._exercise(app))
        assert client.flush(timeout_s=10)
        client.shutdown()
        with engine.connect() as connection:
            spans = connection.execute(text("SELECT * FROM traces WHERE service_name = :s"), {"s": service}).mappings().all()
            events = (
                connection.execute(
                    text("SELECT * FROM telemetry_events WHERE license_id = :l AND event_type = 'api_event'"),
                    {"l": tenant.license_id},
                )
                .mappings()
                .all()
            )
        assert len(spans) == 1  # /healthz is excluded
        span = spans[0]
        assert (span["http_route"], span["http_method"], span["status_code"], span["span_kind"]) == (
            "/orders/{order_id}",
            "GET",
            200,
            "server",
        )
        assert span["trace_id"] == "0af7651916cd43dd8448eb211c80319c" and span["parent_span_id"] == "b7ad6b7169203331"
        assert span["user_id"] == tenant.user_id and span["license_id"] == tenant.license_id
        assert len(events) == 1
        assert events[0]["user_id"] == tenant.user_id and events[0]["trace_id"] == span["trace_id"]
        assert events[0]["payload"]["route"] == "/orders/{order_id}"
        assert client.stats.failed == 0 and client.stats.rejected == 0


class TestSdkOverHttp:
    def test_the_sdk_lands_every_kind_on_the_real_server(self, live_server: str, engine: Engine) -> None:
        """Events, metrics, a KPI and nested spans recorded with the SDK are stored by the running server."""
        from datetime import UTC, datetime

        from fernando_telemetry.sdk import TelemetryClient

        tenant = make_tenant(engine)
        service = "sdk-" + uuid.uuid4().hex[:6]
        client = TelemetryClient(live_server, tenant.ingest_key, service_name=service, flush_interval_s=0.1)
        with client.span("checkout", kind="server", user_id=tenant.user_id):
            with client.span("charge card", kind="client"):
                client.track_event("checkout_completed", user_id=tenant.user_id, payload={"amount": 49.0})
        client.record_metric("cart.size", 3, labels={"plan": "pro"}, service_name=service)
        client.record_business_metric(
            "revenue_" + service,
            "49.00",
            metric_category="revenue",
            period_type="daily",
            period_start=datetime(2026, 11, 1, tzinfo=UTC),
            currency="EUR",
        )
        assert client.flush(timeout_s=20)
        client.shutdown()
        assert client.stats.sent == 5 and client.stats.failed == 0 and client.stats.rejected == 0
        with engine.connect() as connection:
            spans = connection.execute(
                text(
                    "SELECT operation_name, trace_id, span_id, parent_span_id FROM traces WHERE service_name = :s ORDER BY start_time"
                ),
                {"s": service},
            ).all()
            event = connection.execute(
                text(
                    "SELECT trace_id, span_id, license_id FROM telemetry_events WHERE event_name = 'checkout_completed' AND user_id = :u"
                ),
                {"u": tenant.user_id},
            ).one()
            metric = connection.execute(
                text("SELECT value, labels FROM system_metrics WHERE service_name = :s"), {"s": service}
            ).one()
            kpi = connection.execute(
                text("SELECT metric_value, currency FROM business_metrics WHERE metric_name = :n"), {"n": "revenue_" + service}
            ).one()
        assert [s.operation_name for s in spans] == ["checkout", "charge card"]
        assert spans[1].parent_span_id == spans[0].span_id and spans[0].trace_id == spans[1].trace_id
        assert (event.trace_id, event.span_id, event.license_id) == (spans[1].trace_id, spans[1].span_id, tenant.license_id)
        assert (metric.value, metric.labels) == (3.0, {"plan": "pro"})
        assert (str(kpi.metric_value), kpi.currency) == ("49.000000", "EUR")
