"""The one place where errors become HTTP responses: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.rpc import code_pb2
from sqlalchemy.exc import DataError, InterfaceError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from fernando_telemetry.core.errors import (
    Conflict,
    DatabaseUnavailable,
    FernandoTelemetryError,
    Forbidden,
    InvalidInput,
    Malformed,
    NotFound,
    NotSupported,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    SchemaMismatch,
    Unauthorized,
    UnsupportedMediaType,
)

__all__ = [
    "DATABASE_ERRORS",
    "DATABASE_RETRY_AFTER_S",
    "database_unavailable",
    "database_unavailable_on",
    "error_body",
    "install_error_handlers",
    "rpc_code_for",
    "status_for",
]

logger = logging.getLogger(__name__)

# most specific first
_STATUS_BY_ERROR: list[tuple[type[FernandoTelemetryError], int]] = [
    (Malformed, 400),
    (SchemaMismatch, 422),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (InvalidInput, 400),
    (RateLimited, 429),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Overloaded, 503),
    (DatabaseUnavailable, 503),
    (NotSupported, 501),
]


DATABASE_RETRY_AFTER_S = 2
"""``Retry-After`` of a 503 answered because the database could not be reached."""
DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
"""What SQLAlchemy raises when the database is down, restarting or dropped the connection, or when every pooled
connection is held by a query the database does not answer (a hung database): the pool's checkout times out."""


# the google.rpc.Code of each status, for OTLP answers (a google.rpc.Status body over HTTP, the status over gRPC):
# overload and a database that is down are UNAVAILABLE, a key over its rate RESOURCE_EXHAUSTED (both retryable
# with the RetryInfo sent beside them); everything the caller must change is final
_RPC_CODE_BY_STATUS = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    409: code_pb2.ABORTED,
    413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT,
    422: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


def database_unavailable(exc: OperationalError | InterfaceError | PoolTimeout, request: Request) -> DatabaseUnavailable:
    """The domain error of a database that cannot be reached (the reason is logged, not told to the caller)."""
    return database_unavailable_on(exc, f"{request.method} {request.url.path}")


def database_unavailable_on(exc: OperationalError | InterfaceError | PoolTimeout, where: str) -> DatabaseUnavailable:
    """``database_unavailable`` for a call named ``where`` (a gRPC method, say) rather than an HTTP request."""
    origin = getattr(exc, "orig", None) or exc  # a pool timeout has no DBAPI error beneath it
    reason = str(origin).strip().splitlines()[0] if str(origin).strip() else type(exc).__name__
    logger.warning("database unreachable on %s: %s", where, reason)
    return DatabaseUnavailable("the database is unavailable; retry shortly", retry_after_s=DATABASE_RETRY_AFTER_S)


def status_for(error: FernandoTelemetryError) -> int:
    for error_class, status in _STATUS_BY_ERROR:
        if isinstance(error, error_class):
            return status
    return 500


def rpc_code_for(status: int) -> int:
    """The ``google.rpc.Code`` (the gRPC status code) answering what HTTP answers with ``status``."""
    return _RPC_CODE_BY_STATUS.get(status, code_pb2.INTERNAL)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FernandoTelemetryError)
    async def _domain_error(request: Request, exc: FernandoTelemetryError) -> JSONResponse:
        headers = {}
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=status_for(exc), headers=headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def _database_unreachable(request: Request, exc: OperationalError | InterfaceError | PoolTimeout) -> JSONResponse:
        # The database is down, restarting or dropped the connection (a session's query, the key lookup): the
        # caller should come back, as after an overload, rather than see a 500.
        return await _domain_error(request, database_unavailable(exc, request))

    @app.exception_handler(DataError)
    async def _refused_value(request: Request, exc: DataError) -> JSONResponse:
        # A value PostgreSQL cannot store or compare (a NUL character in text, a number out of range, a malformed
        # literal) came from the request: the caller can act on it, so it is a 400 naming the reason, never a 500.
        reason = _first_line(exc.orig) if exc.orig is not None else type(exc).__name__
        logger.warning("database refused a value on %s %s: %s", request.method, request.url.path, reason)
        return JSONResponse(
            error_body("invalid_input", f"the database refused a value of this request: {reason}"), status_code=400
        )

    @app.exception_handler(StatementError)
    async def _statement_error(request: Request, exc: StatementError) -> JSONResponse:
        if type(exc.orig) is LookupError:  # a value outside an enum column's vocabulary, caught while binding it
            return JSONResponse(error_body("invalid_input", _first_line(exc.orig)), status_code=400)
        return await _unexpected(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(part) for part in error.get("loc", ())), "reason": error.get("msg", "invalid")}
            for error in exc.errors()
        ]
        return JSONResponse(
            error_body("validation_error", "the request does not match the schema; see details", details),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "an unexpected error occurred; it has been logged"), status_code=500)
