"""One run of a scheduler job in its own process, as the scheduler runs it, with a way to die mid-way.

``run_in_process(...)`` forks the run from a clean server process (``multiprocessing`` forkserver, with the
project imported once), so a run costs no interpreter start. From a shell:
``python -m reliability.jobrunner --database-url URL --job rollups|retention|kpis --now ISO [--kill-at N | --terminate-at N]``.

Settings come from the environment (``FERNANDO_TELEMETRY_*``) like the server's. Every SQL statement the job
sends and every commit is a numbered point; ``kill_at=N`` sends the process SIGKILL just before point N, and
``terminate_at=N`` has PostgreSQL end the job's connection (``pg_terminate_backend``) just before it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

import psycopg
from sqlalchemy import event

from fernando_telemetry.composition import jobs
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.database import libpq_url, make_engine, session_factory

__all__ = ["APPLICATION_NAME", "KILLED", "main", "run", "run_in_process"]

APPLICATION_NAME = "reliability-job"
KILLED = -signal.SIGKILL
"""The exit code of a run killed at its point."""
FAILED = 3
"""The exit code of a run whose job raised (the scheduler would log it and run the job at its next tick)."""


def run(database_url: str, job_name: str, now: datetime, *, kill_at: int = 0, terminate_at: int = 0) -> dict[str, Any]:
    """Run the job once: ``{"ran", "summary", "points"}``, or ``{"ran": False, "error", "points"}`` if it raised."""
    settings = load_settings(database_url=database_url)
    job = next(j for j in jobs.default_jobs(settings) if j.name == job_name)
    engine = make_engine(database_url, pool_size=1, application_name=APPLICATION_NAME)
    points = 0

    def point(connection: Any) -> None:
        nonlocal points
        points += 1
        if points == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # never reached
        if points == terminate_at:
            backend_pid = connection.connection.dbapi_connection.info.backend_pid
            with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s, 10000)", (backend_pid,))

    event.listen(engine, "before_cursor_execute", lambda connection, *rest: point(connection))
    event.listen(engine, "commit", point)
    try:
        outcome = job.run(session_factory(engine), now)
    except Exception as exc:
        return {"ran": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}", "points": points}
    finally:
        try:
            engine.dispose()
        except Exception:  # noqa: S110  (a connection ended under it)
            pass
    return {"ran": outcome.ran, "summary": outcome.summary, "points": points}


def _child(sender: Connection, env: Mapping[str, str], args: tuple[Any, ...], options: dict[str, int]) -> None:
    os.environ.update(env)
    result = run(*args, **options)
    sender.send(result)
    sender.close()
    if "error" in result:
        sys.exit(FAILED)


_context = multiprocessing.get_context("forkserver")


def run_in_process(
    database_url: str, job_name: str, now: datetime, *, env: Mapping[str, str], kill_at: int = 0, terminate_at: int = 0
) -> tuple[int, dict[str, Any]]:
    """``run`` in a child process; its exit code (0, ``FAILED`` or ``KILLED``) and its result (empty when killed)."""
    _context.set_forkserver_preload(["reliability.jobrunner"])
    receiver, sender = _context.Pipe(duplex=False)
    process = _context.Process(
        target=_child, args=(sender, dict(env), (database_url, job_name, now), {"kill_at": kill_at, "terminate_at": terminate_at})
    )
    process.start()
    sender.close()
    result: dict[str, Any] = {}
    try:
        result = receiver.recv()
    except EOFError:  # killed before it could answer
        pass
    process.join(300)
    if process.exitcode is None:
        process.kill()
        raise AssertionError(f"the {job_name} run did not end in 300 s")
    return process.exitcode, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--job", choices=("rollups", "retention", "kpis"), required=True)
    parser.add_argument("--now", required=True, help="The job's clock, ISO 8601 with a zone.")
    parser.add_argument("--kill-at", type=int, default=0)
    parser.add_argument("--terminate-at", type=int, default=0)
    args = parser.parse_args()
    result = run(
        args.database_url, args.job, datetime.fromisoformat(args.now), kill_at=args.kill_at, terminate_at=args.terminate_at
    )
    print(json.dumps(result))
    sys.exit(FAILED if "error" in result else 0)


if __name__ == "__main__":
    main()
