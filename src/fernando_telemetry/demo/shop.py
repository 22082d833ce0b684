"""The demo application: a small shop of four FastAPI services on loopback ports, instrumented with the SDK.

``web`` (the edge the shoppers call) -> ``api`` -> ``inventory`` and ``payments``; each service runs the
``TelemetryMiddleware`` and a ``TelemetryClient`` sending to the telemetry server with the demo's ingest
key, propagates the W3C ``traceparent`` on its outgoing calls (inside a client span), times its simulated
database work as ``postgres`` client spans, records request counters, latency histograms and host gauges,
and ``api`` records purchases (business events with amount and currency) and hourly business metrics.
Imports the SDK, the demo's own ``hosting`` and ``incidents``, FastAPI and httpx only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fernando_telemetry.demo.hosting import ServerThread, bind
from fernando_telemetry.demo.incidents import Incidents
from fernando_telemetry.sdk import TelemetryClient, TelemetryMiddleware, current_span, format_traceparent

__all__ = ["SERVICES", "Shop", "ShopConfig"]

SERVICES = ("web", "api", "inventory", "payments")
"""The shop's services, named as the generated history names them (plus ``postgres`` for database spans)."""

CURRENCIES = (("EUR", 0.5), ("USD", 0.4), ("GBP", 0.1))
USER_HEADER = "x-demo-user"
SESSION_HEADER = "x-demo-session"


class GatewayTimeout(Exception):
    """The card network did not answer in time (what the payments service fails with during the burst)."""


class CardDeclined(Exception):
    """The card network refused the charge (a business outcome, not a server error)."""


@dataclass(frozen=True)
class ShopConfig:
    telemetry_url: str
    ingest_key: str
    license_id: int
    incidents: Incidents
    seed: int = 11
    metrics_interval_s: float = 5.0
    business_interval_s: float = 15.0
    on_webhook: Callable[[dict[str, Any]], None] = lambda payload: None
    """Called with the JSON body of each alert notification the web service receives at ``/hooks/alerts``."""


_MAX_SAMPLES = 10_000
"""Raw values the server takes in one metric item."""


@dataclass
class _Window:
    """Requests of one service since its last metrics report, and its running request count."""

    durations_ms: list[float] = field(default_factory=list)
    errors: int = 0
    total: int = 0


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([value for value, _ in choices], weights=[weight for _, weight in choices])[0]


class ShopService:
    """What every service of the shop shares: its telemetry clients, peers, simulated latency and figures."""

    def __init__(self, name: str, config: ShopConfig, *, database: TelemetryClient, peers: dict[str, str]) -> None:
        self.name = name
        self.config = config
        self.rng = random.Random(f"{config.seed}-{name}")
        self.telemetry = TelemetryClient(
            config.telemetry_url, config.ingest_key, service_name=name, environment="demo", flush_interval_s=1.0
        )
        self.database = database
        self.host_name = f"{name}-1"
        self._peer_urls = peers
        self.peers: dict[str, httpx.AsyncClient] = {}
        self.window = _Window()
        self.started_at = datetime.now(UTC)
        """When the running request count started from 0 (sent as the counter's start time, so it is exact)."""
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = [self._report_every]
        """Loops run while the service serves (the metrics reporter; ``api`` adds its business figures)."""

    # -- per request ------------------------------------------------------------------------------

    def customer(self, request: Request) -> tuple[str | None, str | None]:
        """The shopper and session of a request, also put where the middleware reads the user from."""
        user_id = request.headers.get(USER_HEADER) or None
        if user_id is not None:
            request.state.user_id = user_id
            request.state.license_id = self.config.license_id
        return user_id, request.headers.get(SESSION_HEADER) or None

    async def work(self, typical_ms: float, *, slow_ratio: float = 0.0, slow_factor: float = 15.0) -> None:
        """Simulated CPU time of a handler: log-normal around ``typical_ms``, now and then much slower."""
        delay_ms = self.rng.lognormvariate(0, 0.45) * typical_ms
        if self.rng.random() < slow_ratio:
            delay_ms *= slow_factor
        await asyncio.sleep(delay_ms / 1000)

    async def query(self, statement: str, *, user_id: str | None, typical_ms: float = 3.0, slow_ratio: float = 0.01) -> None:
        """A simulated database call, traced as a ``postgres`` client span under the current span."""
        operation = statement.split()[0]
        attributes = {"db.system": "postgresql", "db.statement": statement, "peer.service": "postgres"}
        with self.database.span(operation, kind="client", parent=current_span(), attributes=attributes, user_id=user_id):
            await self.work(typical_ms, slow_ratio=slow_ratio)

    async def call(self, peer: str, method: str, path: str, *, user_id: str | None, session_id: str | None,
                   json: Any = None, params: dict[str, Any] | None = None) -> httpx.Response:  # fmt: skip
        """An HTTP call to another service inside a client span whose ids travel in ``traceparent``."""
        attributes = {"peer.service": peer, "http.method": method, "http.url": path}
        with self.telemetry.span(f"{method} {peer}", kind="client", attributes=attributes, user_id=user_id) as span:
            headers = {"traceparent": format_traceparent(span.context)}
            if user_id:
                headers[USER_HEADER] = user_id
            if session_id:
                headers[SESSION_HEADER] = session_id
            response = await self.peers[peer].request(method, path, headers=headers, json=json, params=params)
            span.status_code = response.status_code
            if response.status_code >= 500:
                span.set_status("error", f"{peer} answered {response.status_code}")
            return response

    def event(self, name: str, *, event_type: str, user_id: str | None, session_id: str | None, **payload: Any) -> None:
        self.telemetry.track_event(
            name, event_type=event_type, source="web" if self.name == "web" else "api", user_id=user_id,
            session_id=session_id, payload=payload, license_id=self.config.license_id if user_id else None,
        )  # fmt: skip

    # -- figures ----------------------------------------------------------------------------------

    def observe(self, duration_ms: float, status_code: int) -> None:
        self.window.durations_ms.append(duration_ms)
        self.window.total += 1
        if status_code >= 500:
            self.window.errors += 1

    def report(self, interval_s: float) -> None:
        """Request counter, latency histogram and host gauges of the last interval, as system metrics."""
        durations = sorted(self.window.durations_ms)
        self.window.durations_ms = []
        labels = {"region": "eu-west-1", "demo": "shop"}
        common: dict[str, Any] = {
            "service_name": self.name,
            "host_name": self.host_name,
            "instance_id": f"{self.host_name}:8000",
            "labels": labels,
        }
        self.telemetry.record_metric(
            "http.requests", self.window.total, metric_type="counter", unit="1", start_time=self.started_at, **common
        )
        if 0 < len(durations) <= _MAX_SAMPLES:  # the raw values: the server keeps their distribution (a sketch)
            self.telemetry.record_metric("http.latency", metric_type="histogram", unit="ms", samples=durations, **common)
        elif durations:
            self.telemetry.record_metric(
                "http.latency", sum(durations) / len(durations), metric_type="histogram", unit="ms",
                sample_count=len(durations), p50=_percentile(durations, 0.5), p90=_percentile(durations, 0.9),
                p95=_percentile(durations, 0.95), p99=_percentile(durations, 0.99), **common,
            )  # fmt: skip
        load = min(1.0, len(durations) / max(interval_s, 1.0) / 20.0)
        failing = self.name == "payments" and self.config.incidents.payments_failing()
        cpu = min(100.0, max(1.0, 12 + 55 * load + (25 if failing else 0) + self.rng.gauss(0, 4)))
        memory = min(100.0, 38 + 20 * load + self.rng.gauss(0, 1.5))
        self.telemetry.record_metric("cpu_usage", round(cpu, 2), unit="percent", **common)
        self.telemetry.record_metric("memory_usage", round(memory, 2), unit="percent", **common)

    # -- lifecycle --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        self.peers = {name: httpx.AsyncClient(base_url=url, timeout=10.0) for name, url in self._peer_urls.items()}
        loops = [asyncio.create_task(loop()) for loop in self.background]
        try:
            yield
        finally:
            for task in loops:
                task.cancel()
            for client in self.peers.values():
                await client.aclose()

    async def _report_every(self) -> None:
        while True:
            await asyncio.sleep(self.config.metrics_interval_s)
            self.report(self.config.metrics_interval_s)

    def app(self) -> FastAPI:
        app = FastAPI(title=f"demo shop: {self.name}", lifespan=self.lifespan, docs_url=None, redoc_url=None, openapi_url=None)
        app.add_middleware(_Timing, service=self)
        app.add_middleware(TelemetryMiddleware, client=self.telemetry, service_name=self.name, environment="demo")
        return app


class _Timing:
    """Pure ASGI: each request's duration and status, for the service's own metrics."""

    def __init__(self, app: Any, *, service: ShopService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def timed_send(message: Any) -> None:
            nonlocal status
            if message.get("type") == "http.response.start":
                status = int(message.get("status", 500))
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.service.observe((time.perf_counter() - began) * 1000, status)


def _relay(response: httpx.Response) -> JSONResponse:
    """A downstream answer passed on; a downstream failure becomes this service's 502."""
    if response.status_code >= 500:
        return JSONResponse({"error": "upstream failed", "upstream_status": response.status_code}, status_code=502)
    return JSONResponse(response.json(), status_code=response.status_code)


def web_app(service: ShopService) -> FastAPI:
    app = service.app()

    def page(name: str, request: Request) -> tuple[str | None, str | None]:
        user_id, session_id = service.customer(request)
        service.event("page_view", event_type="user_action", user_id=user_id, session_id=session_id, page=name)
        return user_id, session_id

    @app.get("/api/v1/products/{product_id}")
    async def product(product_id: int, request: Request) -> JSONResponse:
        user_id, session_id = page("/products", request)
        await service.work(2)
        return _relay(await service.call("api", "GET", f"/products/{product_id}", user_id=user_id, session_id=session_id))

    @app.get("/api/v1/search")
    async def search(request: Request, q: str = "") -> JSONResponse:
        user_id, session_id = page("/search", request)
        service.event("search", event_type="user_action", user_id=user_id, session_id=session_id, query=q)
        return _relay(await service.call("api", "GET", "/search", params={"q": q}, user_id=user_id, session_id=session_id))

    @app.get("/api/v1/cart")
    async def cart(request: Request) -> JSONResponse:
        user_id, session_id = page("/cart", request)
        return _relay(await service.call("api", "GET", "/cart", user_id=user_id, session_id=session_id))

    @app.post("/api/v1/checkout")
    async def checkout(request: Request) -> JSONResponse:
        user_id, session_id = page("/checkout", request)
        service.event("checkout_started", event_type="user_action", user_id=user_id, session_id=session_id, page="/checkout")
        body = await request.json()
        return _relay(await service.call("api", "POST", "/orders", json=body, user_id=user_id, session_id=session_id))

    @app.post("/api/v1/login")
    async def login(request: Request) -> JSONResponse:
        user_id, session_id = service.customer(request)
        await service.work(25)  # password hashing
        if service.rng.random() < 0.04:
            service.event(
                "login_failed", event_type="security_event", user_id=user_id, session_id=session_id, reason="bad_password"
            )
            return JSONResponse({"error": "wrong password"}, status_code=401)
        service.event("login", event_type="user_action", user_id=user_id, session_id=session_id, page="/login")
        return JSONResponse({"ok": True})

    @app.post("/hooks/alerts")
    async def alert_hook(request: Request) -> JSONResponse:
        with contextlib.suppress(Exception):  # a receiver that cannot parse a payload still answers 200
            service.config.on_webhook(await request.json())
        return JSONResponse({"received": True})

    return app


def api_app(service: ShopService) -> FastAPI:
    app = service.app()

    @app.get("/products/{product_id}")
    async def product(product_id: int, request: Request) -> JSONResponse:
        user_id, session_id = service.customer(request)
        await service.query("SELECT * FROM products WHERE product_id = $1", user_id=user_id)
        stock = await service.call("inventory", "GET", f"/stock/{product_id}", user_id=user_id, session_id=session_id)
        if stock.status_code >= 500:
            return _relay(stock)
        return JSONResponse({"product_id": product_id, "price": round(5 + product_id % 40 * 2.5, 2), **stock.json()})

    @app.get("/search")
    async def search(request: Request, q: str = "") -> JSONResponse:
        user_id, session_id = service.customer(request)
        return _relay(await service.call("inventory", "GET", "/search", params={"q": q}, user_id=user_id, session_id=session_id))

    @app.get("/cart")
    async def cart(request: Request) -> JSONResponse:
        user_id, _ = service.customer(request)
        await service.query("SELECT * FROM cart_items WHERE user_id = $1", user_id=user_id, slow_ratio=0.03)
        return JSONResponse({"items": service.rng.randint(0, 5)})

    orders = _Orders()

    @app.post("/orders")
    async def order(request: Request) -> JSONResponse:
        user_id, session_id = service.customer(request)
        body = await request.json()
        items = int(body.get("items", 1))
        currency = str(body.get("currency", "EUR"))
        amount = round(sum(service.rng.lognormvariate(3.2, 0.6) for _ in range(max(1, items))), 2)
        order_id = f"o-{service.rng.getrandbits(40):010x}"
        orders.attempts += 1
        reserved = await service.call(
            "inventory", "POST", "/reservations", json={"items": items}, user_id=user_id, session_id=session_id
        )
        if reserved.status_code >= 400:
            return _relay(reserved)
        charge = {"order_id": order_id, "amount": amount, "currency": currency}
        charged = await service.call("payments", "POST", "/charges", json=charge, user_id=user_id, session_id=session_id)
        if charged.status_code >= 500:
            service.event("payment_failed", event_type="error_event", user_id=user_id, session_id=session_id,
                          error="GatewayTimeout", order_id=order_id, page="/checkout")  # fmt: skip
            return _relay(charged)
        if charged.status_code == 402:
            service.event("payment_declined", event_type="user_action", user_id=user_id, session_id=session_id,
                          order_id=order_id, reason="CardDeclined")  # fmt: skip
            return JSONResponse({"error": "card declined", "order_id": order_id}, status_code=402)
        await service.query("INSERT INTO orders (order_id, user_id, amount) VALUES ($1, $2, $3)", user_id=user_id)
        service.event("purchase", event_type="business_event", user_id=user_id, session_id=session_id,
                      order_id=order_id, amount=amount, currency=currency, items=items)  # fmt: skip
        orders.add(amount, currency)
        return JSONResponse({"order_id": order_id, "amount": amount, "currency": currency}, status_code=201)

    async def report_business() -> None:
        while True:
            await asyncio.sleep(service.config.business_interval_s)
            orders.report(service.telemetry, now=datetime.now(UTC))

    service.background.append(report_business)
    return app


@dataclass
class _Orders:
    """Orders of the current hour: what ``api`` reports as hourly business metrics."""

    hour: datetime | None = None
    attempts: int = 0
    count: int = 0
    revenue: dict[str, float] = field(default_factory=dict)
    per_currency: dict[str, int] = field(default_factory=dict)

    def add(self, amount: float, currency: str) -> None:
        self.count += 1
        self.revenue[currency] = self.revenue.get(currency, 0.0) + amount
        self.per_currency[currency] = self.per_currency.get(currency, 0) + 1

    def report(self, telemetry: TelemetryClient, *, now: datetime) -> None:
        hour = now.replace(minute=0, second=0, microsecond=0)
        if self.hour is not None and hour != self.hour:
            self.attempts, self.count, self.revenue, self.per_currency = 0, 0, {}, {}
        self.hour = hour
        common: dict[str, Any] = {"period_type": "hourly", "period_start": hour, "dimensions": {"shop": "demo"}}
        telemetry.record_business_metric("orders", self.count, metric_category="conversion", **common)
        if self.attempts:
            telemetry.record_business_metric(
                "checkout_success_rate", round(self.count / self.attempts, 4), metric_category="conversion", **common
            )
        for currency, total in self.revenue.items():
            telemetry.record_business_metric(
                "average_order_value", round(total / self.per_currency[currency], 2), metric_category="revenue",
                currency=currency, period_type="hourly", period_start=hour, dimensions={"shop": "demo", "currency": currency},
            )  # fmt: skip


def inventory_app(service: ShopService) -> FastAPI:
    app = service.app()

    @app.get("/stock/{product_id}")
    async def stock(product_id: int, request: Request) -> JSONResponse:
        user_id, _ = service.customer(request)
        await service.query("SELECT quantity FROM stock WHERE product_id = $1", user_id=user_id)
        return JSONResponse({"in_stock": service.rng.randint(0, 40)})

    @app.get("/search")
    async def search(request: Request, q: str = "") -> JSONResponse:
        user_id, _ = service.customer(request)
        await service.work(4)
        # a full-text search without its index now and then: the demo's slow requests
        await service.query("SELECT * FROM products WHERE name ILIKE $1", user_id=user_id, typical_ms=12, slow_ratio=0.05)
        return JSONResponse({"query": q, "results": service.rng.randint(0, 30)})

    @app.post("/reservations")
    async def reserve(request: Request) -> JSONResponse:
        user_id, _ = service.customer(request)
        await service.query("UPDATE stock SET quantity = quantity - $1 WHERE product_id = $2", user_id=user_id, typical_ms=5)
        return JSONResponse({"reserved": True}, status_code=201)

    return app


def payments_app(service: ShopService) -> FastAPI:
    app = service.app()

    @app.post("/charges")
    async def charge(request: Request) -> JSONResponse:
        user_id, _ = service.customer(request)
        body = await request.json()
        if service.config.incidents.payments_failing() and service.rng.random() < 0.7:
            await service.work(400)  # the card network hangs, then the gateway gives up
            span = current_span()
            if span is not None:
                span.record_exception(GatewayTimeout("card network did not answer within 400 ms"))
            return JSONResponse({"error": "gateway timeout", "order_id": body.get("order_id")}, status_code=503)
        await service.work(30, slow_ratio=0.02, slow_factor=10)  # the card network
        if service.rng.random() < 0.005:
            span = current_span()
            if span is not None:
                span.record_exception(RuntimeError("ledger write conflict"))
            return JSONResponse({"error": "internal error"}, status_code=500)
        if service.rng.random() < 0.03:
            return JSONResponse({"error": "card declined", "order_id": body.get("order_id")}, status_code=402)
        await service.query("INSERT INTO charges (order_id, amount, currency) VALUES ($1, $2, $3)", user_id=user_id)
        return JSONResponse({"charged": True, "order_id": body.get("order_id")}, status_code=201)

    return app


class Shop:
    """The four services, each on a free loopback port; ``start`` brings them up downstream first."""

    def __init__(self, config: ShopConfig, *, host: str = "127.0.0.1") -> None:
        self.config = config
        sockets: dict[str, socket.socket] = {name: bind(host, 0) for name in SERVICES}
        urls = {name: f"http://{host}:{sock.getsockname()[1]}" for name, sock in sockets.items()}
        self.database = TelemetryClient(
            config.telemetry_url, config.ingest_key, service_name="postgres", environment="demo", flush_interval_s=1.0
        )
        peers = {"web": {"api": urls["api"]}, "api": {"inventory": urls["inventory"], "payments": urls["payments"]}}
        builders = {"web": web_app, "api": api_app, "inventory": inventory_app, "payments": payments_app}
        self.services = {name: ShopService(name, config, database=self.database, peers=peers.get(name, {})) for name in SERVICES}
        self.servers = {
            name: ServerThread(builders[name](self.services[name]), sock=sockets[name], name=name) for name in SERVICES
        }
        self.urls = urls

    @property
    def web_url(self) -> str:
        return self.urls["web"]

    def start(self) -> Shop:
        try:
            for name in reversed(SERVICES):
                self.servers[name].start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Stop serving (the edge first), then send what the telemetry clients still hold."""
        for name in SERVICES:
            self.servers[name].stop()
        for service in self.services.values():
            service.telemetry.shutdown(flush_timeout_s)
        self.database.shutdown(flush_timeout_s)

    def __enter__(self) -> Shop:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
