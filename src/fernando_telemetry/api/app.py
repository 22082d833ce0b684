"""The FastAPI application factory; it receives its engine and plain values, never reads settings itself."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from fernando_telemetry import __version__
from fernando_telemetry.api import health
from fernando_telemetry.api.errors import install_error_handlers

__all__ = ["create_app"]


def create_app(*, engine: Engine) -> FastAPI:
    app = FastAPI(
        title="Fernando Telemetry",
        version=__version__,
        description="Telemetry backend: events, metrics, KPIs, traces and alerts in one PostgreSQL database.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.engine = engine
    install_error_handlers(app)
    app.include_router(health.router)
    return app
