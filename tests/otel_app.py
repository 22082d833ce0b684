"""A small FastAPI app for the ``opentelemetry-instrument`` test: run by uvicorn in a subprocess, instrumented
from outside with OpenTelemetry's defaults (no OpenTelemetry code in here)."""

from __future__ import annotations

import signal
import sys

from fastapi import FastAPI

# uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler it found at start. With
# the default one the interpreter dies there and skips its exit hooks, where the SDK flushes what it holds;
# ending as ``sys.exit(0)`` instead lets them run, as a process manager's stop should.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}
