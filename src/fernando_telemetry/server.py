"""``serve``: database (embedded or URL) -> migrations -> partitions -> app + scheduler under uvicorn.

Uvicorn turns Ctrl-C and SIGTERM into a graceful shutdown; then the scheduler stops, the pool closes
and an embedded PostgreSQL started here is stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import uvicorn

from fernando_telemetry import jobs, runtime
from fernando_telemetry.api import create_app
from fernando_telemetry.scheduler import Scheduler
from fernando_telemetry.services import schema
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import make_engine, session_factory

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def serve(settings: Settings, *, note: Callable[[str], None] = print) -> None:
    with runtime.database_url(settings, note=note) as url:
        engine = make_engine(url, pool_size=settings.db_pool_size, connect_timeout_s=settings.db_connect_timeout_s)
        try:
            schema.upgrade(engine)
            sessions = session_factory(engine)
            scheduled = jobs.default_jobs(settings)
            scheduler = Scheduler(sessions, scheduled)
            # partitions must exist before the first request is accepted; a failure here stops the start
            upkeep = next(job for job in scheduled if job.name == "partition_upkeep")
            note(upkeep.run(sessions, utc_now()).summary)
            scheduler.mark_ran(upkeep.name)
            if settings.scheduler_enabled:
                scheduler.start()
            app = create_app(engine=engine)
            note(f"serving on http://{settings.host}:{settings.port} (API docs at /docs)")
            config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info", lifespan="on")
            try:
                uvicorn.Server(config).run()
            finally:
                scheduler.stop()
        finally:
            engine.dispose()


def utc_now() -> datetime:
    return datetime.now(UTC)
