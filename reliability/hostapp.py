"""The host application of the SDK fault test, run in its own process: a FastAPI app whose requests the test times.

``python -m reliability.hostapp --variant plain|live|dead|hanging --port P [--endpoint URL --key KEY]``

``plain`` has no telemetry; the others have ``TelemetryMiddleware`` with a ``TelemetryClient`` sending to
``--endpoint`` (the real server, a port nobody listens on, a server that never answers). Routes:
``GET /items/{item_id}`` (the work being timed), ``POST /burst?n=`` (records ``n`` events with a payload, as a
busy host does) and ``GET /_stats`` (the client's counters and this process's memory; records nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import threading
from typing import Any

import psutil
import uvicorn
from fastapi import FastAPI

__all__ = ["build_app", "main"]

SERVICE = "reliability-host"


def build_app(variant: str, endpoint: str, key: str, *, max_queue_items: int, timeout_s: float) -> FastAPI:
    client = None
    if variant != "plain":
        from fernando_telemetry.sdk import TelemetryClient, TelemetryMiddleware

        client = TelemetryClient(
            endpoint,
            key,
            service_name=SERVICE,
            environment=f"reliability-host-{variant}",
            max_queue_items=max_queue_items,
            timeout_s=timeout_s,
        )
    recorded = {"burst": 0}
    process = psutil.Process(os.getpid())
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id, "name": f"item {item_id}", "price": 9.99, "in_stock": True}

    @app.post("/burst")
    async def burst(n: int = 1000) -> dict[str, int]:
        if client is not None:
            for number in range(n):
                client.track_event(
                    "burst_item",
                    event_type="business_event",
                    session_id="burst",
                    payload={"number": number, "note": "x" * 200, "tags": ["a", "b", "c"]},
                )
        recorded["burst"] += n
        return {"recorded": n}

    @app.get("/_stats")
    async def stats() -> dict[str, Any]:
        return {
            "rss_bytes": process.memory_info().rss,
            "threads": threading.active_count(),
            "burst_recorded": recorded["burst"],
            "stats": dataclasses.asdict(client.stats) if client is not None else None,
        }

    if client is not None:
        app.add_middleware(
            TelemetryMiddleware,
            client=client,
            service_name=SERVICE,
            excluded_paths=("/_stats",),
            environment=f"reliability-host-{variant}",
        )
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=("plain", "live", "dead", "hanging"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--endpoint", default="http://127.0.0.1:9")
    parser.add_argument("--key", default="none")
    parser.add_argument("--max-queue-items", type=int, default=2_000)
    parser.add_argument("--timeout-s", type=float, default=2.0)
    args = parser.parse_args()
    app = build_app(args.variant, args.endpoint, args.key, max_queue_items=args.max_queue_items, timeout_s=args.timeout_s)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
