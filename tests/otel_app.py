"""A small FastAPI app for the ``opentelemetry-instrument`` test: run by uvicorn in a subprocess, instrumented
from outside with OpenTelemetry's defaults (no OpenTelemetry code in here)."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}
