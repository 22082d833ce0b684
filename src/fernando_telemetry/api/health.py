"""Health routes: ``/healthz`` (the process is up) and ``/readyz`` (the database answers, within a bound)."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request

from fernando_telemetry.services.health import ReadinessCheck

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    # never touches the database nor a worker thread: it answers while the database hangs or the pool is exhausted
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers",
    responses={503: {"description": "The database does not answer; retry after the Retry-After header"}},
)
async def readyz(request: Request) -> dict[str, str]:
    readiness: ReadinessCheck = request.app.state.readiness
    now_s = time.monotonic()
    future, running_s = readiness.pending(now_s=now_s)
    # shielded: a timed-out wait must not cancel the ping others share; a hung database keeps it pending
    waiting = asyncio.wrap_future(future)
    waiting.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        await asyncio.wait_for(asyncio.shield(waiting), max(0.0, readiness.timeout_s - running_s))
    except TimeoutError:
        raise readiness.not_answering(running_s + time.monotonic() - now_s) from None
    return {"status": "ready", "database": "ok"}
