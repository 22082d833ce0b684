"""Row-level security from the application's side: the license a session is scoped to, applied per transaction.

A request authenticated by a license key sets ``current_license`` (a context variable, so it follows the
request into worker threads); every transaction of a session factory passed to ``install`` then starts
with ``SET LOCAL ROLE fernando_telemetry_tenant`` and the license setting the policies read (migration
0005). With no license set (admin keys, jobs, the CLI) the connecting role is kept and sees every license.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "LICENSE_SETTING",
    "QUERY_READER_ROLE",
    "QUERY_ROLE",
    "TENANT_ROLE",
    "current_license",
    "install",
    "scope_connection",
    "scoped",
]

TENANT_ROLE = "fernando_telemetry_tenant"
QUERY_ROLE = "fernando_telemetry_query"
QUERY_READER_ROLE = "fernando_telemetry_query_reader"
"""User SQL runs as this NOLOGIN role (``SET LOCAL ROLE``): it holds none of the login role's privileges (migration 0014)."""
LICENSE_SETTING = "fernando_telemetry.license_id"

current_license: ContextVar[int | None] = ContextVar("fernando_telemetry_current_license", default=None)


@contextlib.contextmanager
def scoped(license_id: int | None) -> Iterator[None]:
    """Scope the sessions opened inside the block to ``license_id`` (None: no scoping)."""
    token = current_license.set(license_id)
    try:
        yield
    finally:
        current_license.reset(token)


def scope_connection(connection: Any, license_id: int, *, role: str = TENANT_ROLE) -> None:
    """Switch the open transaction of ``connection`` to ``role`` with ``license_id`` for the policies."""
    # SET LOCAL statements, not set_config(): Citus sends the license setting on to the workers, where the policies
    # of distributed tables run, only as a SET LOCAL statement (citus.propagate_set_commands = 'local')
    connection.exec_driver_sql(f"SET LOCAL {LICENSE_SETTING} = '{int(license_id)}'; SET LOCAL ROLE \"{role}\"")


def install(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Make every transaction of ``sessions`` honour ``current_license``; returns ``sessions``."""

    @event.listens_for(sessions, "after_begin")
    def _apply_scope(session: Session, transaction: Any, connection: Any) -> None:
        license_id = current_license.get()
        if license_id is not None:
            scope_connection(connection, license_id)

    return sessions
