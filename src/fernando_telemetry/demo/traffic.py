"""Simulated shoppers: a loop on its own thread sending requests to the shop's edge at a steady rate.

Each request is one shopper's step (browse a product, search, look at the cart, check out, log in), with
the shopper's user id and session in headers, so the telemetry is attributed to the demo's customers.
Some shoppers are more active than others (a Pareto choice), sessions change now and then. It counts what
it sent, and the answers that were server errors, for the console's status line.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from fernando_telemetry.demo.shop import CURRENCIES, SESSION_HEADER, USER_HEADER

__all__ = ["Traffic", "TrafficCounts"]

STEPS = (("product", 0.4), ("search", 0.2), ("cart", 0.15), ("checkout", 0.17), ("login", 0.08))
QUERIES = ("shoes", "lamp", "coffee", "headphones", "desk", "backpack", "kettle")
AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) Mobile/15E148",
)
MAX_IN_FLIGHT = 64


@dataclass(frozen=True)
class TrafficCounts:
    sent: int
    server_errors: int
    failed: int
    """Requests that got no answer at all (connection refused, timeout)."""


class Traffic:
    """Sends ``rate_per_s`` requests a second to ``base_url`` until stopped."""

    def __init__(self, base_url: str, *, customers: Sequence[str], rate_per_s: float, seed: int = 5) -> None:
        self._base_url = base_url
        self._customers = list(customers)
        self._interval_s = 1.0 / rate_per_s
        self._rng = random.Random(seed)
        self._sessions: dict[str, str] = {}
        self._sent = self._server_errors = self._failed = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()

    def counts(self) -> TrafficCounts:
        with self._lock:
            return TrafficCounts(self._sent, self._server_errors, self._failed)

    def start(self) -> Traffic:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._ready.set()
        in_flight: set[asyncio.Task[None]] = set()
        limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=16)
        async with httpx.AsyncClient(base_url=self._base_url, timeout=10.0, limits=limits) as client:
            while not self._stopping.is_set():
                if len(in_flight) < MAX_IN_FLIGHT:  # a shop slower than the rate: skip rather than pile up
                    task = asyncio.create_task(self._step(client))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                # exponential gaps: arrivals of independent shoppers
                delay = self._rng.expovariate(1.0 / self._interval_s)
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                except TimeoutError:
                    pass
            if in_flight:
                await asyncio.wait(in_flight, timeout=10.0)

    def _shopper(self) -> tuple[str | None, str | None]:
        if not self._customers or self._rng.random() < 0.08:  # an anonymous visitor
            return None, None
        user_id = self._customers[min(len(self._customers) - 1, int(self._rng.paretovariate(1.1)) - 1)]
        if user_id not in self._sessions or self._rng.random() < 0.03:
            self._sessions[user_id] = uuid.UUID(int=self._rng.getrandbits(128)).hex[:16]
        return user_id, self._sessions[user_id]

    async def _step(self, client: httpx.AsyncClient) -> None:
        rng = self._rng
        user_id, session_id = self._shopper()
        headers = {"user-agent": rng.choice(AGENTS)}
        if user_id and session_id:
            headers[USER_HEADER] = user_id
            headers[SESSION_HEADER] = session_id
        step = rng.choices([name for name, _ in STEPS], weights=[weight for _, weight in STEPS])[0]
        if step == "checkout" and user_id is None:
            step = "product"
        try:
            if step == "product":
                response = await client.get(f"/api/v1/products/{rng.randint(1, 120)}", headers=headers)
            elif step == "search":
                response = await client.get("/api/v1/search", params={"q": rng.choice(QUERIES)}, headers=headers)
            elif step == "cart":
                response = await client.get("/api/v1/cart", headers=headers)
            elif step == "checkout":
                currency = rng.choices([c for c, _ in CURRENCIES], weights=[w for _, w in CURRENCIES])[0]
                order = {"items": rng.randint(1, 4), "currency": currency}
                response = await client.post("/api/v1/checkout", json=order, headers=headers)
            else:
                response = await client.post("/api/v1/login", headers=headers)
        except httpx.HTTPError:
            with self._lock:
                self._sent += 1
                self._failed += 1
            return
        with self._lock:
            self._sent += 1
            if response.status_code >= 500:
                self._server_errors += 1
