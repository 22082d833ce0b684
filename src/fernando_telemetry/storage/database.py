"""Connections to PostgreSQL: URL normalisation, the SQLAlchemy engine and session factory.

Imports only core. The caller owns transactions: sessions come from ``session_factory`` and the
entry point (request, job tick, CLI command) commits.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.errors import DatabaseUnavailable, InvalidInput

__all__ = [
    "KEEPALIVE",
    "driver_connection",
    "first_line",
    "libpq_url",
    "make_engine",
    "ping",
    "session_factory",
    "sqlalchemy_url",
]

KEEPALIVE: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}
"""libpq TCP settings: a database that stops answering (a frozen host, a dropped network) fails the
connection within about 30 s instead of hanging the request that holds it."""

_ACCEPTED_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg"}


def sqlalchemy_url(raw_url: str) -> URL:
    """Parse ``postgresql://``, ``postgres://`` or ``postgresql+psycopg://`` into a psycopg 3 URL."""
    try:
        url = make_url(raw_url.strip())
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise InvalidInput(
            f"database URL {_redact(raw_url)!r} is not a URL: expected postgresql://user@host:port/dbname"
        ) from exc
    if url.drivername not in _ACCEPTED_SCHEMES:
        raise InvalidInput(f"database URL scheme {url.drivername!r} is not supported: use postgresql:// or postgresql+psycopg://")
    if not url.database:
        raise InvalidInput(f"database URL {_redact(raw_url)!r} names no database: add /dbname after the host")
    return url.set(drivername="postgresql+psycopg")


def libpq_url(raw_url: str) -> str:
    """The same database as a libpq connection string, for plain psycopg connections (COPY)."""
    return sqlalchemy_url(raw_url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(
    raw_url: str, *, pool_size: int = 5, connect_timeout_s: int = 5, application_name: str = "fernando-telemetry"
) -> Engine:
    """An engine whose connections speak UTC, so ``date_trunc`` and day bounds mean UTC days."""
    return create_engine(
        sqlalchemy_url(raw_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": connect_timeout_s,
            "application_name": application_name,
            "options": "-c timezone=UTC",
            **KEEPALIVE,
        },
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine, *, timeout_ms: int = 2000) -> None:
    """Raise ``DatabaseUnavailable`` unless the database answers ``SELECT 1`` in time."""
    try:
        with engine.connect() as connection:
            connection.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
            connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"the database does not answer: {first_line(exc.orig)}") from exc


def first_line(exc: object) -> str:
    """The first line of an exception's message (its type name when empty), for one-line errors."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _redact(raw_url: str) -> str:
    try:
        return make_url(raw_url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return raw_url.split("@")[-1]


def driver_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under ``session``'s transaction, for COPY and psycopg's own SQL composition."""
    connection = session.connection().connection.driver_connection
    # SQLAlchemy types it as Any | None (None once the pool has invalidated it); every URL here uses psycopg 3
    if not isinstance(connection, psycopg.Connection):
        raise TypeError(f"expected a psycopg connection under the session, got {type(connection).__name__}")
    return connection
