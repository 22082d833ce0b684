"""User SQL for ``POST /api/v1/query``: one read-only statement, as the query role, scoped to one license.

The statement runs on a connection of its own, logged in as ``fernando_telemetry_query`` (migration 0005),
in a read-only transaction with a statement timeout and a ``work_mem``, switched to the NOLOGIN role
``fernando_telemetry_query_reader`` (migration 0014: it cannot see or signal other backends, take advisory
locks or read statistics), sent with the extended protocol (so it can hold only one statement). Rows are
streamed and the answer stops at a row cap and a byte cap, whichever comes first. Before it runs, the owner commits a ``query_scopes`` row naming the connection's backend pid
and the license; the row-level security policies read that row, which user SQL can neither change nor
fake. The row is removed afterwards.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import ipaddress
import json
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from sqlalchemy import Engine, text

from fernando_telemetry.core.errors import DatabaseUnavailable, Forbidden, InvalidInput
from fernando_telemetry.storage import citus
from fernando_telemetry.storage.database import first_line, sqlalchemy_url
from fernando_telemetry.storage.tenant_scope import QUERY_READER_ROLE, QUERY_ROLE

__all__ = ["QueryResult", "query_role_url", "run_select"]


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float
    truncated_by: str | None = None
    """``rows`` (the row cap) or ``bytes`` (the byte cap) when ``truncated``."""
    result_bytes: int = 0
    """Size of the returned rows as JSON."""


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(
        value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network
    ):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return str(value)


def run_select(
    owner: Engine,
    query_url: str,
    statement: str,
    *,
    license_id: int,
    timeout_ms: int,
    row_cap: int,
    byte_cap: int = 10 * 1024 * 1024,
    work_mem_kb: int = 16 * 1024,
    connect_timeout_s: int = 5,
    monotonic: Callable[[], float] = time.monotonic,
) -> QueryResult:
    """Run ``statement`` for ``license_id``; at most ``row_cap`` rows and ``byte_cap`` bytes of JSON rows come
    back (``truncated`` and ``truncated_by`` say if the result was longer)."""
    try:
        connection = psycopg.connect(query_url, connect_timeout=connect_timeout_s, autocommit=False, options="-c timezone=UTC")
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"the query role cannot connect: {first_line(exc)}") from exc
    try:
        pid = connection.info.backend_pid
        with owner.begin() as owner_connection:
            owner_connection.execute(
                text(
                    "INSERT INTO query_scopes (backend_pid, license_id) VALUES (:pid, :license_id) "
                    "ON CONFLICT (backend_pid) DO UPDATE SET license_id = EXCLUDED.license_id, created_at = now()"
                ),
                {"pid": pid, "license_id": license_id},
            )
        try:
            return _run(
                connection,
                statement,
                timeout_ms=timeout_ms,
                row_cap=row_cap,
                byte_cap=byte_cap,
                work_mem_kb=work_mem_kb,
                monotonic=monotonic,
            )
        finally:
            with owner.begin() as owner_connection:
                owner_connection.execute(text("DELETE FROM query_scopes WHERE backend_pid = :pid"), {"pid": pid})
    finally:
        connection.close()


def runs_on_citus(owner: Engine) -> bool:
    """True when the database is a Citus cluster, where user SQL cannot be isolated (see ``services.user_query``)."""
    with owner.connect() as connection:
        return citus.has_citus(connection)


def query_role_url(owner_url: str) -> str:
    """The owner's database URL with the query role as user and no password (trust or peer setups)."""
    url = sqlalchemy_url(owner_url).set(drivername="postgresql", username=QUERY_ROLE, password=None)
    return url.render_as_string(hide_password=False)


def _run(
    connection: psycopg.Connection[Any],
    statement: str,
    *,
    timeout_ms: int,
    row_cap: int,
    byte_cap: int,
    work_mem_kb: int,
    monotonic: Callable[[], float],
) -> QueryResult:
    rows: list[list[Any]] = []
    size = 2  # the brackets of the list of rows
    truncated_by: str | None = None
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL transaction_read_only = on")
        cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        cursor.execute(f"SET LOCAL work_mem = {int(work_mem_kb)}")
        cursor.execute(f"SET LOCAL ROLE {QUERY_READER_ROLE}")
        started = monotonic()
        try:
            # stream() sends the statement with the extended protocol, which refuses more than one, and reads the
            # rows one by one: leaving the loop early cancels the rest, so a huge result is never held whole
            # psycopg declares an Iterator; it is a generator, whose close() runs its cleanup now
            stream = cast("Generator[Any, None, None]", cursor.stream(statement))
            try:
                for row in stream:
                    if len(rows) >= row_cap:
                        truncated_by = "rows"
                        break
                    values = [_json_value(value) for value in row]
                    row_bytes = len(json.dumps(values, ensure_ascii=False, default=str).encode()) + 1
                    if size + row_bytes > byte_cap:
                        truncated_by = "bytes"
                        break
                    size += row_bytes
                    rows.append(values)
            finally:
                stream.close()
        except pg_errors.QueryCanceled as exc:
            raise InvalidInput(
                f"the query ran past the statement timeout of {timeout_ms} ms; narrow it (time range, LIMIT)"
            ) from exc
        except pg_errors.InsufficientPrivilege as exc:
            raise Forbidden(
                f"the query reads something it may not: {first_line(exc)} (readable: the telemetry tables, their rollups and the views)"
            ) from exc
        except pg_errors.ReadOnlySqlTransaction as exc:
            raise InvalidInput("only a SELECT may run here: the query tried to change data") from exc
        except pg_errors.ConfigurationLimitExceeded as exc:
            raise InvalidInput(f"the query needs more temporary space than user SQL may use: {first_line(exc)}") from exc
        except psycopg.errors.SyntaxError as exc:
            if "multiple commands" in str(exc):
                raise InvalidInput("send exactly one SELECT statement (no semicolon-separated statements)") from exc
            raise InvalidInput(f"SQL error: {first_line(exc)}") from exc
        except psycopg.DatabaseError as exc:
            if type(exc) is psycopg.ProgrammingError and "didn't produce a result" in str(exc):
                # stream(): the statement was not one returning rows (a SET hidden behind a comment, ...)
                raise InvalidInput("the statement returned no rows: only a SELECT may run here") from exc
            raise InvalidInput(f"SQL error: {first_line(exc)}") from exc
        elapsed_ms = (monotonic() - started) * 1000.0
        if cursor.description is not None:
            columns = [column.name for column in cursor.description]
        else:  # no row came: the stream kept no description, ask the server for the statement's columns
            columns = _describe(connection, statement)
    connection.rollback()
    return QueryResult(
        columns=columns,
        rows=rows,
        truncated=truncated_by is not None,
        elapsed_ms=elapsed_ms,
        truncated_by=truncated_by,
        result_bytes=size,
    )


def _describe(connection: psycopg.Connection[Any], statement: str) -> list[str]:
    pgconn = connection.pgconn
    prepared = pgconn.prepare(b"", statement.encode(connection.info.encoding))
    if prepared.status != pq.ExecStatus.COMMAND_OK:
        raise InvalidInput(f"SQL error: {(prepared.error_message or b'').decode(errors='replace').splitlines()[0]}")
    described = pgconn.describe_prepared(b"")
    return [(described.fname(index) or b"").decode(connection.info.encoding) for index in range(described.nfields)]
