"""Health routes: ``/healthz`` (the process is up) and ``/readyz`` (the database answers)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from fernando_telemetry.services import health

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers",
    responses={503: {"description": "The database does not answer; retry after the Retry-After header"}},
)
async def readyz(request: Request) -> dict[str, str]:
    await run_in_threadpool(health.check_database, request.app.state.engine)
    return {"status": "ready", "database": "ok"}
