"""``serve``: database (embedded or URL) -> migrations -> partitions -> app + scheduler under uvicorn, and the
OTLP/gRPC receiver beside it.

Uvicorn turns Ctrl-C and SIGTERM into a graceful shutdown; then the gRPC receiver finishes its calls in
progress, the scheduler stops, the pool closes and an embedded PostgreSQL started here is stopped.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.api.otlp_grpc import OtlpGrpcReceiver
from fernando_telemetry.composition import jobs, runtime
from fernando_telemetry.composition.http_server import uvicorn_config
from fernando_telemetry.composition.scheduler import Scheduler, run_and_record
from fernando_telemetry.composition.wiring import Wiring, build
from fernando_telemetry.services import schema
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import session_factory

__all__ = ["OTLP_GRPC_GRACE_S", "RunningServer", "StopRequested", "otlp_grpc_address", "serve", "started"]

logger = logging.getLogger(__name__)

OTLP_GRPC_GRACE_S = 10.0
"""On the way out, how long OTLP/gRPC calls in progress may take to finish before they are cancelled."""


class StopRequested(Exception):
    """SIGTERM arrived: unwind like Ctrl-C does, so every cleanup below runs."""


def _raise_stop(signum: int, frame: object) -> None:
    raise StopRequested


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    # uvicorn captures SIGTERM while it serves and re-raises it once it has shut down; with the default
    # handler that would end the process before the embedded PostgreSQL is stopped.
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(settings: Settings, *, note: Callable[[str], None] = print) -> None:
    """Run until Ctrl-C or SIGTERM, then shut everything down in order and return."""
    try:
        with _stop_on_sigterm():
            _serve(settings, note=note)
    except (KeyboardInterrupt, StopRequested):
        note("stopped")


@dataclass
class RunningServer:
    """What ``started`` has running: the pool, its sessions, the scheduler and the app with its writer."""

    engine: Engine
    sessions: sessionmaker[Session]
    scheduler: Scheduler
    wiring: Wiring
    otlp_grpc: OtlpGrpcReceiver | None
    """The OTLP/gRPC receiver, serving; None when ``otlp_grpc_port`` is 0."""


@contextmanager
def started(settings: Settings, *, note: Callable[[str], None]) -> Iterator[RunningServer]:
    """Database (embedded or URL), migrations, partitions, the scheduler, the writer and the OTLP/gRPC receiver,
    up until the block ends.

    The gRPC port is bound first, so a taken port fails before the database starts. The app is not served
    here: ``serve`` runs it under uvicorn, ``demo`` beside its own services. On the way out the gRPC receiver
    lets its calls finish, the scheduler and the writer stop, the pool closes and an embedded PostgreSQL
    started here stops.
    """
    with ExitStack() as stack:
        receiver = None
        if settings.otlp_grpc_port:
            receiver = OtlpGrpcReceiver(
                host=settings.host,
                port=settings.otlp_grpc_port,
                workers=settings.otlp_grpc_workers,
                max_concurrent_rpcs=settings.otlp_grpc_max_concurrent_rpcs,
                max_message_bytes=settings.ingest_max_body_bytes,
            )
            stack.callback(receiver.stop, OTLP_GRPC_GRACE_S)  # also releases the port when the start fails
        engine = stack.enter_context(runtime.database_engine(settings, note=note, pool_size=settings.db_pool_size))
        schema.upgrade(engine)
        sessions = session_factory(engine)
        scheduled = jobs.default_jobs(settings)
        scheduler = Scheduler(sessions, scheduled)
        # partitions must exist before the first request is accepted; a failure here stops the start
        upkeep = next(job for job in scheduled if job.name == "partition_upkeep")
        note(run_and_record(sessions, upkeep, clock=utc_now).summary)
        scheduler.mark_ran(upkeep.name)
        if settings.scheduler_enabled:
            scheduler.start()
        stack.callback(scheduler.stop)
        wiring = build(settings, engine=engine, secret_key=runtime.secret_key(settings))
        wiring.start()
        stack.callback(wiring.stop)
        stack.callback(scheduler.stop)  # the scheduler first, then the writer, as before (stop is idempotent)
        if receiver is not None:
            receiver.start(sessions=wiring.app.state.sessions, ingestor=wiring.ingestor)
            stack.callback(receiver.stop, OTLP_GRPC_GRACE_S)  # before the writer stops: its calls wait for commits
        yield RunningServer(engine=engine, sessions=sessions, scheduler=scheduler, wiring=wiring, otlp_grpc=receiver)


def otlp_grpc_address(settings: Settings) -> str:
    """Where OTLP/gRPC is served, for people: ``host:port``, or "off"."""
    if not settings.otlp_grpc_port:
        return "off"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{host}:{settings.otlp_grpc_port}"


def _serve(settings: Settings, *, note: Callable[[str], None]) -> None:
    with started(settings, note=note) as running:
        note(f"serving on http://{settings.host}:{settings.port} (API docs at /docs)")
        note(f"OTLP/gRPC: {otlp_grpc_address(settings)}")
        uvicorn.Server(uvicorn_config(running.wiring.app, settings)).run()


def utc_now() -> datetime:
    return datetime.now(UTC)
