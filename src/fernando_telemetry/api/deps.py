"""Request dependencies: the caller's key, checked for a scope, and the ``Caller`` built from it once per request.

Imports FastAPI, core and services (keys, tenancy).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from fernando_telemetry.core.caller import Caller, utc_now
from fernando_telemetry.core.keys import Principal, Scope
from fernando_telemetry.services import keys, tenancy

__all__ = [
    "AdminCaller",
    "AdminKey",
    "IngestKey",
    "ReadCaller",
    "ReadKey",
    "authenticate",
    "authenticate_key",
    "caller_of",
    "key_from",
    "presented_key",
    "request_id_of",
    "requires",
    "requires_caller",
]

# a request id a client sends is echoed into logs and audit details: only short tokens of safe characters are kept
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def presented_key(request: Request) -> str | None:
    return key_from(request.headers.get("authorization"), request.headers.get("x-api-key"))


def key_from(authorization: str | None, api_key: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` value, else of an ``X-API-Key`` value (HTTP headers, gRPC metadata)."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return api_key.strip() if api_key else None


def authenticate(request: Request, scope: Scope) -> Principal:
    """The caller's principal (blocking: run it in a thread): 401 without a valid key, 403 without ``scope``."""
    return authenticate_key(request.app.state.sessions, presented_key(request), scope)


def authenticate_key(sessions: sessionmaker[Session], token: str | None, scope: Scope) -> Principal:
    """``authenticate`` for a key already read from the request (blocking): ``Unauthorized``, ``Forbidden``."""
    with tenancy.unscoped(), sessions.begin() as session:
        principal = keys.authenticate(session, token=token, now=datetime.now(UTC))
    keys.require(principal, scope)
    return principal


def requires(scope: Scope) -> Callable[..., object]:
    """A dependency giving the caller's principal: 401 without a valid key, 403 without ``scope``."""

    async def dependency(request: Request) -> Principal:
        return await _enter(request, scope)

    return Depends(dependency)


async def _enter(request: Request, scope: Scope) -> Principal:
    """Authenticate the request and scope the rest of it to the key's license."""
    principal = await run_in_threadpool(authenticate, request, scope)
    request.state.principal = principal
    tenancy.enter(principal)  # the route's transactions now run under row-level security for its license
    return principal


IngestKey = Annotated[Principal, requires(Scope.INGEST)]
ReadKey = Annotated[Principal, requires(Scope.READ)]
AdminKey = Annotated[Principal, requires(Scope.ADMIN)]


def request_id_of(header: str | None, *, new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> str:
    """The ``X-Request-ID`` a client sent when it is a short safe token (letters, digits, ``._:-``, at most 64), else a new id."""
    if header is not None and _SAFE_REQUEST_ID.fullmatch(header):
        return header
    return new_id()


def caller_of(request: Request, principal: Principal) -> Caller:
    """The request as the services see it: its key, the app's clock (``app.state.clock`` when one is injected, as
    tests do) and its request id."""
    clock = getattr(request.app.state, "clock", None) or utc_now
    return Caller.for_key(principal, clock=clock, request_id=request_id_of(request.headers.get("x-request-id")))


def requires_caller(scope: Scope) -> Callable[..., object]:
    """A dependency giving the request's ``Caller``, built once from its key (401 without one, 403 without ``scope``)."""

    async def dependency(request: Request) -> Caller:
        caller = caller_of(request, await _enter(request, scope))
        request.state.caller = caller
        return caller

    return Depends(dependency)


ReadCaller = Annotated[Caller, requires_caller(Scope.READ)]
AdminCaller = Annotated[Caller, requires_caller(Scope.ADMIN)]
